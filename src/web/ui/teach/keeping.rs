//! Keeping and restoring: the project back from IndexedDB on start, features again for a new
//! backbone, clearing.

use super::*;

pub(super) async fn restore(app: &Rc<App>) {
    let t = teach(app);
    let saved = match Store::open().await {
        Ok(store) => {
            let store = Rc::new(store);
            let saved = store.load().await;
            *t.store.borrow_mut() = Some(store);
            saved
        }
        Err(e) => {
            log(&format!(
                "This browser does not let lucy keep the project ({e}): what you teach lasts until the page closes."
            ));
            Ok(store::Saved::default())
        }
    };
    let saved = saved.unwrap_or_else(|e| {
        // Nothing is written over a project that may still be there.
        *t.store.borrow_mut() = None;
        log(&format!(
            "The saved project could not be read ({e}): it is left as it is, and what you \
             teach now lasts until the page closes. Reload to try again."
        ));
        store::Saved::default()
    });
    if saved.unreadable > 0 {
        log(&format!(
            "{} kept photos could not be read back and were left out.",
            saved.unreadable
        ));
    }
    let classes = saved
        .meta
        .as_ref()
        .map(|m| m.classes.clone())
        .unwrap_or_default();
    if classes.len() >= 2 {
        for class in &classes {
            add_class(app, class.id, &class.name);
        }
        t.next_id.set(saved.meta.as_ref().map_or(0, |m| m.next_id));
    } else {
        let (lucy, other) = (next_id(app), next_id(app));
        add_class(app, lucy, "Lucy");
        add_class(app, other, "Other");
        save_meta(app);
    }
    let first = t.classes.borrow()[0].id;
    let mut photos = saved.photos;
    photos.sort_by_key(|p| p.id);
    for mut photo in photos {
        if class_name(app, photo.class).is_none() {
            photo.class = first; // its class is gone: keep the photo, in the first class
        }
        show_photo(app, photo);
    }
    if let Some(head) = saved.head
        && let Ok(taught) = serde_json::from_str::<Taught>(&head.taught)
    {
        show_report(app, &taught, &head.photos);
        super::super::heads::restore_taught(app, Rc::new(head.head.clone()));
        let project = rebuild_project(app, &head);
        *t.last.borrow_mut() = Some(Lessoned {
            head: head.head,
            project,
        });
    }
    let backbone = t.backbone.borrow().clone();
    if !backbone.is_empty() {
        backbone_known(app, &backbone);
    }
    // The controls act on the project: they work once it is back.
    for id in ["teach-add-class", "teach-train", "teach-clear"] {
        by_id::<HtmlButtonElement>(id).set_disabled(false);
    }
    let _ = by_id::<HtmlElement>("teach").set_attribute("data-restored", "true");
    let n = t.photos.borrow().len();
    if n > 0 {
        status(&format!("Your project is back: {n} photos."));
    }
    refresh(app);
}

/// The last lesson's project again (for "Download project" after a reload): its kept lesson
/// with the features of the photos it was taught on — `None` once one of them is gone or has
/// features from another backbone (moves and renames since do not matter: the lesson keeps
/// the labels it was taught with).
fn rebuild_project(app: &App, record: &HeadRecord) -> Option<Project> {
    let lesson: Lesson = serde_json::from_str(&record.lesson).ok()?;
    let photos = teach(app).photos.borrow();
    let (mut names, mut features) = (vec![], vec![]);
    for id in &record.photos {
        let photo = photos.iter().find(|p| p.id == *id)?;
        if photo.backbone != record.backbone {
            return None;
        }
        names.push(photo.name.clone());
        features.extend_from_slice(&photo.features);
    }
    Some(Project {
        lesson,
        photos: names,
        backbone_sha256: record.backbone.clone(),
        features,
    })
}

/// The manifest names the backbone: photos whose features came from another one are
/// computed again from their kept crops (queued like any photo).
pub fn backbone_known(app: &Rc<App>, sha256: &str) {
    let t = teach(app);
    *t.backbone.borrow_mut() = sha256.to_string();
    let stale: Vec<u32> = t
        .photos
        .borrow()
        .iter()
        .filter(|p| p.backbone != sha256)
        .map(|p| p.id)
        .collect();
    if !stale.is_empty() {
        log(&format!(
            "The backbone changed since {} photos were added: their features are computed again.",
            stale.len()
        ));
    }
    for id in stale {
        t.waiting.set(t.waiting.get() + 1);
        app.enqueue(Job::Teach(TeachJob::Recompute { id }));
    }
}

/// Features again for a photo from its kept crop; the photo keeps its old features (and stays)
/// if that fails.
pub(super) async fn recompute(app: &Rc<App>, id: u32) {
    let t = teach(app);
    let store = t.store.borrow().clone();
    let crop = match &store {
        Some(store) => store.crop(id).await.ok().flatten(),
        None => None,
    };
    let found = match crop {
        Some(crop) => features_of(app, &Source::Crop(crop)).await.ok(),
        None => None,
    };
    let backbone = t.backbone.borrow().clone();
    let record = {
        let mut photos = t.photos.borrow_mut();
        match (photos.iter_mut().find(|p| p.id == id), found) {
            (Some(photo), Some((features, _))) => {
                photo.features = Rc::new(features);
                photo.backbone = backbone;
                Some(photo.record())
            }
            (Some(photo), None) => {
                log(&format!(
                    "{}: its features could not be computed again; it keeps the old ones.",
                    photo.name
                ));
                None
            }
            (None, _) => None,
        }
    };
    if let (Some(store), Some(record)) = (store, record)
        && let Err(e) = store.put_photo(&record, None).await
    {
        log(&format!(
            "{}: its new features could not be kept: {e}",
            record.name
        ));
    }
    done_waiting(app);
}

pub(super) async fn clear(app: &Rc<App>) {
    let t = teach(app);
    let store = t.store.borrow().clone();
    if let Some(store) = store
        && let Err(e) = store.clear().await
    {
        log(&format!("The project could not be cleared: {e}"));
        return;
    }
    for photo in t.photos.borrow_mut().drain(..) {
        photo.figure.remove();
    }
    for class in t.classes.borrow_mut().drain(..) {
        class.root.remove();
    }
    *t.last.borrow_mut() = None;
    by_id::<HtmlElement>("teach-report").set_hidden(true);
    by_id::<HtmlElement>("teach-report").set_inner_html("");
    let (lucy, other) = (next_id(app), next_id(app));
    add_class(app, lucy, "Lucy");
    add_class(app, other, "Other");
    save_meta(app);
    status("Cleared: a new project with Lucy and Other.");
    refresh(app);
}
