//! The classes: each one's card (name, count, "Add photos to <name>", camera burst, remove,
//! thumbnails; drop and paste targets), renaming, adding and removing, and keeping them.

use super::*;

pub(super) fn fresh_class_name(app: &App) -> String {
    let classes = teach(app).classes.borrow();
    (classes.len() + 1..)
        .map(|n| format!("Class {n}"))
        .find(|name| !classes.iter().any(|c| c.name.eq_ignore_ascii_case(name)))
        .expect("some number is free")
}

/// A class's card: its name (renamable), photo count, "Add photos to <name>", a camera
/// burst button, "Remove class", its thumbnails; photos can be dropped on it or pasted into it.
pub(super) fn add_class(app: &Rc<App>, id: u32, name: &str) {
    let root: HtmlElement = element("div");
    root.set_class_name("class");
    root.set_tab_index(0);
    let _ = root.set_attribute("data-class-id", &id.to_string());
    let header: HtmlElement = element("div");
    header.set_class_name("class-header");
    let name_input: HtmlInputElement = element("input");
    name_input.set_value(name);
    let _ = name_input.set_attribute("aria-label", "Class name");
    name_input.set_class_name("class-name");
    let count = text("span", "count", "0 photos");
    let add: HtmlElement = element("label");
    add.set_class_name("button");
    let add_text = text("span", "", &format!("Add photos to {name}"));
    let input: HtmlInputElement = element("input");
    input.set_type("file");
    input.set_accept("image/*");
    input.set_multiple(true);
    input.set_hidden(true);
    let _ = add.append_child(&add_text);
    let _ = add.append_child(&input);
    let capture: HtmlButtonElement = element("button");
    capture.set_type("button");
    capture.set_text_content(Some("Hold to capture"));
    capture.set_class_name("capture");
    let remove: HtmlButtonElement = element("button");
    remove.set_type("button");
    remove.set_class_name("remove-class");
    remove.set_text_content(Some("Remove class"));
    for node in [
        name_input.unchecked_ref::<HtmlElement>(),
        &count,
        &add,
        capture.unchecked_ref(),
        remove.unchecked_ref(),
    ] {
        let _ = header.append_child(node);
    }
    let thumbs: HtmlElement = element("div");
    thumbs.set_class_name("thumbs");
    let _ = root.append_child(&header);
    let _ = root.append_child(&thumbs);
    let _ = by_id::<HtmlElement>("teach-classes").append_child(&root);

    let active = EventListenerOptions::enable_prevent_default();
    let mut listeners = vec![
        {
            let (app, picker) = (app.clone(), input.clone());
            EventListener::new(&input, "change", move |_| {
                add_files(&app, id, picker.files());
                picker.set_value("");
            })
        },
        {
            let (app, field) = (app.clone(), name_input.clone());
            EventListener::new(&name_input, "change", move |_| rename(&app, id, &field))
        },
        {
            let app = app.clone();
            EventListener::new(&remove, "click", move |_| remove_class(&app, id))
        },
        {
            let app = app.clone();
            EventListener::new(&capture, "pointerdown", move |_| {
                let app = app.clone();
                wasm_bindgen_futures::spawn_local(async move { burst(&app, id).await });
            })
        },
        // Pasting into a focused class adds to it (not to the classifier's results).
        {
            let app = app.clone();
            EventListener::new(&root, "paste", move |e: &Event| {
                e.stop_propagation();
                let files = e
                    .dyn_ref::<web_sys::ClipboardEvent>()
                    .and_then(web_sys::ClipboardEvent::clipboard_data)
                    .and_then(|d| d.files());
                add_files(&app, id, files);
            })
        },
        {
            let (app, zone) = (app.clone(), root.clone());
            EventListener::new_with_options(&root, "drop", active, move |e| {
                e.prevent_default();
                e.stop_propagation();
                let _ = zone.class_list().remove_1("over");
                let files = e
                    .dyn_ref::<DragEvent>()
                    .and_then(DragEvent::data_transfer)
                    .and_then(|d| d.files());
                add_files(&app, id, files);
            })
        },
    ];
    for kind in ["dragenter", "dragover"] {
        let zone = root.clone();
        listeners.push(EventListener::new_with_options(
            &root,
            kind,
            active,
            move |e| {
                e.prevent_default();
                e.stop_propagation();
                let _ = zone.class_list().add_1("over");
            },
        ));
    }
    for kind in ["pointerup", "pointerleave", "pointercancel"] {
        let app = app.clone();
        listeners.push(EventListener::new(&capture, kind, move |_| {
            teach(&app).capturing.set(false)
        }));
    }
    {
        let zone = root.clone();
        listeners.push(EventListener::new(&root, "dragleave", move |_| {
            let _ = zone.class_list().remove_1("over");
        }));
    }
    // The class's elements live as long as its card; listeners die with the page.
    listeners.into_iter().for_each(EventListener::forget);
    teach(app).classes.borrow_mut().push(Class {
        id,
        name: name.to_string(),
        root,
        name_input,
        add_text,
        capture,
        count,
        thumbs,
    });
}

pub(super) fn class_name(app: &App, id: u32) -> Option<String> {
    teach(app)
        .classes
        .borrow()
        .iter()
        .find(|c| c.id == id)
        .map(|c| c.name.clone())
}

pub(super) fn rename(app: &Rc<App>, id: u32, field: &HtmlInputElement) {
    let name = field.value().trim().to_string();
    let taken = teach(app)
        .classes
        .borrow()
        .iter()
        .any(|c| c.id != id && c.name.eq_ignore_ascii_case(&name));
    let old = class_name(app, id).unwrap_or_default();
    if name.is_empty() || taken {
        log(&format!(
            "A class needs a name of its own: “{name}” is {}; it stays “{old}”.",
            if name.is_empty() { "empty" } else { "taken" }
        ));
        field.set_value(&old);
        return;
    }
    if let Some(class) = teach(app)
        .classes
        .borrow_mut()
        .iter_mut()
        .find(|c| c.id == id)
    {
        class.name = name;
    }
    save_meta(app);
    refresh(app);
}

pub(super) fn remove_class(app: &Rc<App>, id: u32) {
    let t = teach(app);
    if t.classes.borrow().len() <= 2 {
        log("Teaching needs at least two classes: rename this one instead.");
        return;
    }
    let name = class_name(app, id).unwrap_or_default();
    let ids: Vec<u32> = t
        .photos
        .borrow()
        .iter()
        .filter(|p| p.class == id)
        .map(|p| p.id)
        .collect();
    if !ids.is_empty()
        && !window()
            .confirm_with_message(&format!(
                "Remove the class “{name}” and its {} photos?",
                ids.len()
            ))
            .unwrap_or(false)
    {
        return;
    }
    for photo in ids {
        remove_photo(app, photo);
    }
    let mut classes = t.classes.borrow_mut();
    if let Some(i) = classes.iter().position(|c| c.id == id) {
        classes.remove(i).root.remove();
    }
    drop(classes);
    save_meta(app);
    refresh(app);
}

/// Labels, counts, every photo's class selector, and which buttons can act.
pub(super) fn refresh(app: &App) {
    let t = teach(app);
    let classes = t.classes.borrow();
    let photos = t.photos.borrow();
    for class in classes.iter() {
        let n = photos.iter().filter(|p| p.class == class.id).count();
        class
            .count
            .set_text_content(Some(&format!("{n} photo{}", if n == 1 { "" } else { "s" })));
        let _ = class
            .root
            .set_attribute("aria-label", &format!("Class {}", class.name));
        class
            .add_text
            .set_text_content(Some(&format!("Add photos to {}", class.name)));
        let _ = class.capture.set_attribute(
            "aria-label",
            &format!("Hold to capture photos for {} from the camera", class.name),
        );
        if class.name_input.value() != class.name {
            class.name_input.set_value(&class.name);
        }
    }
    for photo in photos.iter() {
        fill_class_options(&photo.select, &classes, photo.class);
    }
    let waiting = t.waiting.get();
    set_text(
        "teach-count",
        &format!(
            "{} photo{} in {} classes{}",
            photos.len(),
            if photos.len() == 1 { "" } else { "s" },
            classes.len(),
            if waiting > 0 {
                format!(", {waiting} being added")
            } else {
                String::new()
            }
        ),
    );
    let last = t.last.borrow();
    by_id::<HtmlButtonElement>("teach-download-head").set_disabled(last.is_none());
    let project: HtmlButtonElement = by_id("teach-download-project");
    let has_project = last.as_ref().is_some_and(|l| l.project.is_some());
    project.set_disabled(!has_project);
    project.set_title(if last.is_some() && !has_project {
        "Some photos of the last training are gone or were recomputed: train again to download its project"
    } else {
        ""
    });
}

pub(super) fn fill_class_options(select: &HtmlSelectElement, classes: &[Class], chosen: u32) {
    select.set_inner_html("");
    for class in classes {
        add_option(select, &class.id.to_string(), &class.name);
    }
    select.set_value(&chosen.to_string());
}

pub(super) fn save_meta(app: &Rc<App>) {
    let Some(store) = teach(app).store.borrow().clone() else {
        return;
    };
    let meta = Meta {
        classes: teach(app)
            .classes
            .borrow()
            .iter()
            .map(|c| ClassRecord {
                id: c.id,
                name: c.name.clone(),
            })
            .collect(),
        next_id: teach(app).next_id.get(),
    };
    wasm_bindgen_futures::spawn_local(async move {
        if let Err(e) = store.save_meta(&meta).await {
            log(&format!("The classes could not be kept: {e}"));
        }
    });
}
