//! Heads: the selector (every head of the manifest, plus heads loaded from disk this session)
//! and "Load a head file…". Both are taken at any time; before the model is ready they wait
//! in the queue like photos.

use std::rc::Rc;

use gloo_events::EventListener;
use js_sys::Uint8Array;
use web_sys::{HtmlInputElement, HtmlSelectElement};

use super::dom::{add_option, by_id, set_text};
use super::photos::{display_name, read_file};
use super::results::Card;
use super::teach::HEAD_CHOICE;
use super::{App, Job};
use crate::web::protocol::{Reply, Request};
use crate::weights::Manifest;
use crate::weights::bundle::IMAGENET_HEAD;

pub fn listen(app: &Rc<App>) {
    let select: HtmlSelectElement = by_id("head");
    let on_select = {
        let (app, chosen) = (app.clone(), select.clone());
        EventListener::new(&select, "change", move |_| {
            app.enqueue(Job::SelectHead(chosen.value()));
        })
    };
    let input: HtmlInputElement = by_id("head-file");
    let on_file = {
        let (app, picker) = (app.clone(), input.clone());
        EventListener::new(&input, "change", move |_| {
            if let Some(file) = picker.files().and_then(|f| f.get(0)) {
                let card = Card::new(&display_name(&file, "head file"), None);
                card.waiting(if app.model().is_some() {
                    "Loading the head…"
                } else {
                    "Waiting for the model: this head is loaded as soon as it is ready."
                });
                app.enqueue(Job::HeadFile { file, card });
            }
            picker.set_value("");
        })
    };
    on_select.forget();
    on_file.forget();
}

/// The head the page starts with: `?head=NAME`, else the manifest's default head (the
/// site's own, see README "Host your own"), else ImageNet. An unknown name is an error card
/// and ImageNet.
pub fn first_head(app: &App, manifest: &Manifest) -> String {
    let asked = super::query("head");
    let wanted = asked
        .clone()
        .or_else(|| manifest.default_head.clone())
        .unwrap_or_else(|| IMAGENET_HEAD.to_string());
    let name = if manifest.head(&wanted).is_ok() {
        wanted
    } else {
        let known: Vec<&str> = manifest.heads.iter().map(|h| h.name.as_str()).collect();
        Card::error(
            &format!("No head named “{wanted}”"),
            &format!(
                "This site has the heads {}; lucy starts with {IMAGENET_HEAD}.",
                known.join(", ")
            ),
        );
        IMAGENET_HEAD.to_string()
    };
    app.head_chosen_by_address.set(asked.is_some());
    *app.head_name.borrow_mut() = name.clone();
    name
}

/// The manifest's heads (names only: a head's labels live in its file, shown once loaded),
/// then the heads loaded this session (from disk, or taught here).
pub fn fill_selector(app: &App, manifest: &Manifest) {
    let select: HtmlSelectElement = by_id("head");
    select.set_inner_html("");
    for head in &manifest.heads {
        let text = if head.name == IMAGENET_HEAD {
            "ImageNet (1000 classes)"
        } else {
            &head.name
        };
        add_option(&select, &head.name, text);
    }
    for (name, _) in app.disk_heads.borrow().iter() {
        add_option(&select, name, &disk_head_text(name));
    }
    select.set_value(&app.head_name.borrow());
    select.set_disabled(false);
}

fn disk_head_text(name: &str) -> String {
    if name == HEAD_CHOICE {
        "Taught in this page".to_string()
    } else {
        format!("{name} (from disk)")
    }
}

/// Offer a head under `name` in the selector for this session (replacing one of that name).
fn remember(app: &App, name: &str, bytes: Rc<Vec<u8>>) {
    let mut disk = app.disk_heads.borrow_mut();
    if !disk.iter().any(|(n, _)| n == name) {
        add_option(
            &by_id::<HtmlSelectElement>("head"),
            name,
            &disk_head_text(name),
        );
    }
    disk.retain(|(n, _)| n != name);
    disk.push((name.to_string(), bytes));
}

/// A head just taught in the page: in use at once, and in the selector.
pub async fn use_taught(app: &Rc<App>, bytes: Rc<Vec<u8>>) -> Result<(), String> {
    set_head(app, HEAD_CHOICE, bytes.clone()).await?;
    remember(app, HEAD_CHOICE, bytes);
    *app.head_name.borrow_mut() = HEAD_CHOICE.to_string();
    show_head(app, "Head");
    Ok(())
}

/// The head taught here on an earlier visit: offered again, and used first unless the
/// address asks for another (`?head=`).
pub fn restore_taught(app: &Rc<App>, bytes: Rc<Vec<u8>>) {
    remember(app, HEAD_CHOICE, bytes);
    if !app.head_chosen_by_address.get() && super::query("head").is_none() {
        app.enqueue_first(Job::SelectHead(HEAD_CHOICE.to_string()));
    }
}

fn show_head(app: &App, what: &str) {
    let labels = app.labels.borrow().join(" / ");
    let labels: String = labels.chars().take(120).collect();
    let name = app.head_name.borrow().clone();
    let name = if name == HEAD_CHOICE {
        disk_head_text(&name)
    } else {
        name
    };
    set_text("status", &format!("{what}: {name} ({labels})"));
    by_id::<HtmlSelectElement>("head").set_value(&app.head_name.borrow());
}

/// Switch to a head of the manifest, or one loaded from disk earlier (by file name).
pub async fn select(app: &Rc<App>, name: &str) {
    let from_disk = app
        .disk_heads
        .borrow()
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, bytes)| bytes.clone());
    let (file, bytes) = match from_disk {
        Some(bytes) => (name.to_string(), bytes),
        None => match load_manifest_head(app, name).await {
            Ok(found) => found,
            Err(e) => {
                Card::error("That head could not be loaded", &e);
                show_head(app, "Head");
                return;
            }
        },
    };
    match set_head(app, &file, bytes).await {
        Ok(()) => {
            *app.head_name.borrow_mut() = name.to_string();
            show_head(app, "Head");
        }
        Err(e) => {
            Card::error("That head could not be loaded", &e);
            show_head(app, "Head");
        }
    }
}

async fn load_manifest_head(app: &App, name: &str) -> Result<(String, Rc<Vec<u8>>), String> {
    let bundle = app
        .bundle
        .borrow()
        .clone()
        .ok_or("the manifest is not loaded")?;
    let file = bundle.head_file(name)?;
    let mut files = app.load_files(&bundle, &[&file]).await?;
    Ok((file, Rc::new(files.pop().expect("one file"))))
}

/// A head file from disk: used at once, and offered in the selector for this session.
pub async fn load_file(app: &Rc<App>, file: &web_sys::File, card: &Card) {
    let name = display_name(file, "head file");
    let Some(bytes) = read_file(file, &name, card).await.map(Rc::new) else {
        return;
    };
    match set_head(app, &name, bytes.clone()).await {
        Ok(()) => {
            *app.head_name.borrow_mut() = name.clone();
            remember(app, &name, bytes);
            show_head(app, "Head from disk");
            card.done(&format!("Head in use: {}", app.labels.borrow().join(" / ")));
        }
        Err(e) => card.fail(&format!("{name} is not a head for this model"), &e),
    }
}

/// Give the model a new head; the labels come back from the head file itself.
async fn set_head(app: &App, file: &str, bytes: Rc<Vec<u8>>) -> Result<(), String> {
    let model = app.model().ok_or("the model is not ready")?;
    let reply = model
        .engine
        .call(
            Request::SetHead {
                file: file.to_string(),
            },
            vec![Uint8Array::from(&bytes[..])],
            None,
        )
        .await
        .map_err(|e| e.message().to_string())?;
    let Reply::HeadSet { labels } = reply else {
        return Err("unexpected reply from the model".into());
    };
    *app.labels.borrow_mut() = labels;
    app.set_model_head(bytes);
    Ok(())
}
