//! Photos in: the file picker (many at once), drag and drop, paste. gloo-events for the
//! listeners (removed with their owner, no leaked closures to manage), gloo-file to read a
//! `File` into bytes.

use std::rc::Rc;

use gloo_events::{EventListener, EventListenerOptions};
use js_sys::Uint8Array;
use wasm_bindgen::JsCast;
use web_sys::{DragEvent, Event, File, FileList, HtmlElement, HtmlInputElement};

use super::dom::{by_id, document, now_ms, set_text};
use super::results::Card;
use super::{App, Job, TOP_K};
use crate::web::protocol::Request;

const WAITING: &str = "Waiting for the model: this photo is classified as soon as it is ready.";

pub fn listen(app: &Rc<App>) {
    let input: HtmlInputElement = by_id("files");
    let on_change = {
        let app = app.clone();
        let picker = input.clone();
        EventListener::new(&input, "change", move |_| {
            add_files(&app, picker.files());
            picker.set_value(""); // the same photo can be chosen again
        })
    };
    let drop_zone: HtmlElement = by_id("drop");
    // preventDefault on dragover/drop needs non-passive listeners.
    let active = EventListenerOptions::enable_prevent_default();
    let mut listeners = vec![on_change];
    for kind in ["dragenter", "dragover"] {
        let zone = drop_zone.clone();
        listeners.push(EventListener::new_with_options(
            &drop_zone,
            kind,
            active,
            move |e| {
                e.prevent_default();
                let _ = zone.class_list().add_1("over");
            },
        ));
    }
    {
        let zone = drop_zone.clone();
        listeners.push(EventListener::new(&drop_zone, "dragleave", move |_| {
            let _ = zone.class_list().remove_1("over");
        }));
    }
    {
        let (zone, app) = (drop_zone.clone(), app.clone());
        listeners.push(EventListener::new_with_options(
            &drop_zone,
            "drop",
            active,
            move |e| {
                e.prevent_default();
                let _ = zone.class_list().remove_1("over");
                let files = e
                    .dyn_ref::<DragEvent>()
                    .and_then(DragEvent::data_transfer)
                    .and_then(|d| d.files());
                add_files(&app, files);
            },
        ));
    }
    {
        let app = app.clone();
        listeners.push(EventListener::new(
            &document(),
            "paste",
            move |e: &Event| {
                let Some(data) = e
                    .dyn_ref::<web_sys::ClipboardEvent>()
                    .and_then(web_sys::ClipboardEvent::clipboard_data)
                else {
                    return;
                };
                add_files(&app, data.files());
            },
        ));
    }
    // The page lives as long as its listeners.
    listeners.into_iter().for_each(EventListener::forget);
}

/// The model is ready: the drop zone stops saying photos will wait.
pub fn model_ready() {
    set_text("drop-note", "");
}

fn add_files(app: &Rc<App>, files: Option<FileList>) {
    let Some(files) = files else { return };
    let ready = app.model().is_some();
    for file in (0..files.length()).filter_map(|i| files.get(i)) {
        let name = display_name(&file, "pasted photo");
        let thumbnail = file
            .type_()
            .starts_with("image/")
            .then(|| web_sys::Url::create_object_url_with_blob(&file).ok())
            .flatten();
        let card = Card::new(&name, thumbnail.as_deref());
        card.waiting(if ready { "Classifying…" } else { WAITING });
        app.enqueue(Job::Photo { file, card });
    }
}

pub fn display_name(file: &File, fallback: &str) -> String {
    let name = file.name();
    if name.is_empty() {
        fallback.to_string()
    } else {
        name
    }
}

/// The bytes of a picked, dropped or pasted file; `None` once `card` says why not.
pub async fn read_file(file: &File, name: &str, card: &Card) -> Option<Vec<u8>> {
    match gloo_file::futures::read_as_bytes(&gloo_file::Blob::from(file.clone())).await {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            card.fail(&format!("{name} could not be read"), &e.to_string());
            None
        }
    }
}

/// Read and classify one photo, filling its card.
pub async fn classify(app: &Rc<App>, file: &File, card: &Card) {
    let name = display_name(file, "pasted photo");
    card.waiting("Classifying…");
    let started = now_ms();
    let Some(bytes) = read_file(file, &name, card).await else {
        return;
    };
    let make = || {
        (
            Request::ClassifyBytes { top: TOP_K },
            vec![Uint8Array::from(&bytes[..])],
        )
    };
    match app.classify(&make).await {
        Ok(answer) => {
            let note = format!(
                "{} ms on {}",
                (now_ms() - started).round(),
                answer.backend.describe()
            );
            card.show(answer, &note);
        }
        Err(e) => card.fail(&format!("{name} could not be classified"), e.message()),
    }
}
