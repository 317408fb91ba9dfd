//! "Teach lucy": classes of photos (from files, drops, paste or a camera burst), each photo's
//! backbone features computed once by the model's worker, everything kept in IndexedDB
//! ([`store`]); "Train" fits a head in the worker with the same code as `lucy train`
//! ([`crate::fit::teach`]), shows how it went ([`report`]) and puts the new head to use.
//!
//! Work that needs the model (features, training) joins the page's one queue, so photos given
//! while the model loads wait their turn and training runs after the photos added before it.
//!
//! This file holds the state and the entry points; [`classes`], [`photos`], [`training`] and
//! [`keeping`] (restore, recompute, clear) are its parts, and see each other and the imports
//! below through `use super::*` (one concern a file, one shared vocabulary).

mod classes;
mod keeping;
mod photos;
mod report;
mod store;
mod training;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use gloo_events::{EventListener, EventListenerOptions};
use gloo_file::{Blob, ObjectUrl};
use gloo_timers::future::TimeoutFuture;
use js_sys::Uint8Array;
use wasm_bindgen::JsCast;
use web_sys::{
    DragEvent, Event, File, FileList, HtmlButtonElement, HtmlElement, HtmlImageElement,
    HtmlInputElement, HtmlProgressElement, HtmlSelectElement, HtmlVideoElement,
};

use super::camera::FrameReader;
use super::dom::{add_option, by_id, element, now_ms, set_text, text, window};
use super::engine::CallError;
use super::photos::display_name;
use super::{App, Job};
use crate::fit::{EpochMetrics, Lesson, Project, Taught};
use crate::model::FEATURES;
use crate::preprocess::INPUT_SIDE;
use crate::web::protocol::{Reply, Request};
use crate::weights::bundle::{f32_bytes, f32_from_bytes, sha256_hex};
use classes::*;
pub use keeping::backbone_known;
use keeping::*;
use photos::*;
use store::{ClassRecord, HeadRecord, Meta, PhotoRecord, Store};
use training::*;

/// The head a lesson makes: its name inside the file, the file name it downloads as, and its
/// value in the head selector (not a manifest name: those are letters, digits, - and _).
pub const HEAD_NAME: &str = "taught";
const HEAD_FILE: &str = "head-taught.safetensors";
const PROJECT_FILE: &str = "lucy-project.safetensors";
pub const HEAD_CHOICE: &str = "page:taught";
/// Thumbnails kept per photo: 96 x 96 JPEG.
const THUMBNAIL_SIDE: u32 = 96;
/// Camera bursts: a frame every this many milliseconds while the button is held.
const BURST_INTERVAL_MS: u32 = 300;

/// Work for the model, in the page's queue.
pub enum TeachJob {
    File {
        file: File,
        class: u32,
    },
    Frame {
        rgba: Vec<u8>,
        width: u32,
        height: u32,
        class: u32,
        name: String,
    },
    /// Features again, from the kept crop, for a photo computed by another backbone.
    Recompute {
        id: u32,
    },
    Train,
    /// In the queue, so work given before it (photos being added, a training) finishes first
    /// and cannot write into the cleared project.
    Clear,
}

struct Class {
    id: u32,
    name: String,
    root: HtmlElement,
    name_input: HtmlInputElement,
    add_text: HtmlElement,
    capture: HtmlButtonElement,
    count: HtmlElement,
    thumbs: HtmlElement,
}

struct Photo {
    id: u32,
    class: u32,
    name: String,
    hash: String,
    backbone: String,
    features: Rc<Vec<f32>>,
    thumbnail: Rc<Vec<u8>>,
    url: Rc<ObjectUrl>,
    figure: HtmlElement,
    select: HtmlSelectElement,
}

impl Photo {
    /// As kept in IndexedDB.
    fn record(&self) -> PhotoRecord {
        PhotoRecord {
            id: self.id,
            class: self.class,
            name: self.name.clone(),
            hash: self.hash.clone(),
            backbone: self.backbone.clone(),
            features: self.features.to_vec(),
            thumbnail: self.thumbnail.to_vec(),
        }
    }
}

/// The last lesson: what "Download head" and "Download project" give (the project only while
/// the photos it was taught on are all there with the same features).
struct Lessoned {
    head: Vec<u8>,
    project: Option<Project>,
}

#[derive(Default)]
pub struct Teach {
    store: RefCell<Option<Rc<Store>>>,
    classes: RefCell<Vec<Class>>,
    photos: RefCell<Vec<Photo>>,
    next_id: Cell<u32>,
    /// Photos given but not yet added (waiting for the model, or being computed).
    waiting: Cell<usize>,
    /// The int8 backbone's sha256, once the manifest is read.
    backbone: RefCell<String>,
    last: RefCell<Option<Lessoned>>,
    /// A camera burst is under way.
    capturing: Cell<bool>,
}

/// The page's entry: listeners, then the saved project (or Lucy and Other).
pub fn start(app: &Rc<App>) {
    listen_controls(app);
    let app = app.clone();
    wasm_bindgen_futures::spawn_local(async move { restore(&app).await });
}

fn teach(app: &App) -> &Teach {
    &app.teach
}

/// A line in the teaching log (newest first): what was refused, what was not kept, and why.
fn log(message: &str) {
    let list: HtmlElement = by_id("teach-log");
    let item = text("li", "", message);
    let _ = list.prepend_with_node_1(&item);
    while list.child_element_count() > 30 {
        if let Some(last) = list.last_element_child() {
            last.remove();
        }
    }
}

fn status(message: &str) {
    set_text("teach-status", message);
}

fn listen_controls(app: &Rc<App>) {
    let listeners = [
        {
            let app = app.clone();
            EventListener::new(
                &by_id::<HtmlElement>("teach-add-class"),
                "click",
                move |_| {
                    let name = fresh_class_name(&app);
                    add_class(&app, next_id(&app), &name);
                    save_meta(&app);
                    refresh(&app);
                },
            )
        },
        {
            let app = app.clone();
            EventListener::new(&by_id::<HtmlElement>("teach-train"), "click", move |_| {
                status("Training waits for the photos added before it…");
                app.enqueue(Job::Teach(TeachJob::Train));
            })
        },
        {
            let app = app.clone();
            EventListener::new(
                &by_id::<HtmlElement>("teach-download-head"),
                "click",
                move |_| {
                    if let Some(last) = teach(&app).last.borrow().as_ref() {
                        download(HEAD_FILE, &last.head);
                    }
                },
            )
        },
        {
            let app = app.clone();
            EventListener::new(
                &by_id::<HtmlElement>("teach-download-project"),
                "click",
                move |_| {
                    let last = teach(&app).last.borrow();
                    if let Some(project) = last.as_ref().and_then(|l| l.project.as_ref()) {
                        download(PROJECT_FILE, &project.encode());
                    }
                },
            )
        },
        {
            let app = app.clone();
            EventListener::new(&by_id::<HtmlElement>("teach-clear"), "click", move |_| {
                let count = teach(&app).photos.borrow().len();
                let question = format!(
                    "Remove all {count} photos, the classes and the head taught here? This cannot be undone."
                );
                if window().confirm_with_message(&question).unwrap_or(false) {
                    status("Clearing once the work in progress is done…");
                    app.enqueue(Job::Teach(TeachJob::Clear));
                }
            })
        },
    ];
    listeners.into_iter().for_each(EventListener::forget);
}

fn next_id(app: &App) -> u32 {
    let t = teach(app);
    let id = t.next_id.get();
    t.next_id.set(id + 1);
    id
}

/// Work from the queue: the model is this job's alone until it returns.
pub async fn run(app: &Rc<App>, job: TeachJob) {
    match job {
        TeachJob::File { file, class } => {
            let name = display_name(&file, "pasted photo");
            match gloo_file::futures::read_as_bytes(&Blob::from(file)).await {
                Ok(bytes) => add_photo(app, class, name, Source::Bytes(bytes), None).await,
                Err(e) => log(&format!(
                    "{name} was not added: it could not be read ({e})."
                )),
            }
            done_waiting(app);
        }
        TeachJob::Frame {
            rgba,
            width,
            height,
            class,
            name,
        } => {
            add_photo(app, class, name, Source::Rgba(rgba, width, height), None).await;
            done_waiting(app);
        }
        TeachJob::Recompute { id } => recompute(app, id).await,
        TeachJob::Train => train(app).await,
        TeachJob::Clear => clear(app).await,
    }
}

/// A job that will never run (lucy could not start): say so for each photo.
pub fn refuse(app: &App, job: TeachJob, reason: &str) {
    match job {
        TeachJob::File { file, .. } => {
            log(&format!(
                "{} was not added: lucy could not start: {reason}",
                display_name(&file, "pasted photo")
            ));
            done_waiting(app);
        }
        TeachJob::Frame { name, .. } => {
            log(&format!(
                "{name} was not added: lucy could not start: {reason}"
            ));
            done_waiting(app);
        }
        TeachJob::Recompute { .. } => done_waiting(app),
        TeachJob::Train => status(&format!("Not trained: lucy could not start: {reason}")),
        TeachJob::Clear => status(&format!("Not cleared: lucy could not start: {reason}")),
    }
}

fn done_waiting(app: &App) {
    let t = teach(app);
    t.waiting.set(t.waiting.get().saturating_sub(1));
    refresh(app);
}

/// Save `bytes` as a file through a temporary link.
fn download(file_name: &str, bytes: &[u8]) {
    let url = ObjectUrl::from(Blob::new_with_options(
        bytes,
        Some("application/octet-stream"),
    ));
    let link: web_sys::HtmlAnchorElement = element("a");
    link.set_href(&url);
    link.set_download(file_name);
    link.click();
    // The browser has the file once the click is handled; the URL can go a moment later.
    wasm_bindgen_futures::spawn_local(async move {
        TimeoutFuture::new(10_000).await;
        drop(url);
    });
}
