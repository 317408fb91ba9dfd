//! "Teach lucy": classes of photos (from files, drops, paste or a camera burst), each photo's
//! backbone features computed once by the model's worker, everything kept in IndexedDB
//! ([`store`]); "Train" fits a head in the worker with the same code as `lucy train`
//! ([`crate::fit::teach`]), shows how it went ([`report`]) and puts the new head to use.
//!
//! Work that needs the model (features, training) joins the page's one queue, so photos given
//! while the model loads wait their turn and training runs after the photos added before it.

mod report;
mod store;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use gloo_events::{EventListener, EventListenerOptions};
use gloo_file::{Blob, ObjectUrl};
use gloo_timers::future::TimeoutFuture;
use js_sys::Uint8Array;
use wasm_bindgen::JsCast;
use web_sys::{
    CanvasRenderingContext2d, DragEvent, Event, File, FileList, HtmlButtonElement,
    HtmlCanvasElement, HtmlElement, HtmlImageElement, HtmlInputElement, HtmlProgressElement,
    HtmlSelectElement, HtmlVideoElement,
};

use super::dom::{add_option, by_id, element, now_ms, set_text, text, window};
use super::engine::CallError;
use super::photos::display_name;
use super::{App, Job};
use crate::fit::{EpochMetrics, Lesson, Project, Taught};
use crate::model::FEATURES;
use crate::preprocess::INPUT_SIDE;
use crate::web::protocol::{Reply, Request};
use crate::weights::bundle::sha256_hex;
use store::{ClassRecord, HeadRecord, Meta, PhotoRecord, Store};

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

/// The last lesson: what "Download head" and "Download project" give.
struct Lessoned {
    head: Vec<u8>,
    lesson: Lesson,
    names: Vec<String>,
    features: Vec<f32>,
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

// ---------------------------------------------------------------------------------------
// Classes

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
                    if let Some(last) = teach(&app).last.borrow().as_ref() {
                        let project = Project {
                            lesson: last.lesson.clone(),
                            photos: last.names.clone(),
                            backbone_sha256: teach(&app).backbone.borrow().clone(),
                            features: last.features.clone(),
                        };
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
                    let app = app.clone();
                    wasm_bindgen_futures::spawn_local(async move { clear(&app).await });
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

fn fresh_class_name(app: &App) -> String {
    let classes = teach(app).classes.borrow();
    (classes.len() + 1..)
        .map(|n| format!("Class {n}"))
        .find(|name| !classes.iter().any(|c| c.name.eq_ignore_ascii_case(name)))
        .expect("some number is free")
}

/// A class's card: its name (renamable), photo count, "Add photos to <name>", a camera
/// burst button, "Remove class", its thumbnails; photos can be dropped on it or pasted into it.
fn add_class(app: &Rc<App>, id: u32, name: &str) {
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

fn class_name(app: &App, id: u32) -> Option<String> {
    teach(app)
        .classes
        .borrow()
        .iter()
        .find(|c| c.id == id)
        .map(|c| c.name.clone())
}

fn rename(app: &Rc<App>, id: u32, field: &HtmlInputElement) {
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

fn remove_class(app: &Rc<App>, id: u32) {
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
fn refresh(app: &App) {
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
    let has_head = t.last.borrow().is_some();
    by_id::<HtmlButtonElement>("teach-download-head").set_disabled(!has_head);
    by_id::<HtmlButtonElement>("teach-download-project").set_disabled(!has_head);
}

fn fill_class_options(select: &HtmlSelectElement, classes: &[Class], chosen: u32) {
    select.set_inner_html("");
    for class in classes {
        add_option(select, &class.id.to_string(), &class.name);
    }
    select.set_value(&chosen.to_string());
}

fn save_meta(app: &Rc<App>) {
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

// ---------------------------------------------------------------------------------------
// Photos in

fn add_files(app: &Rc<App>, class: u32, files: Option<FileList>) {
    let Some(files) = files else { return };
    let t = teach(app);
    for file in (0..files.length()).filter_map(|i| files.get(i)) {
        t.waiting.set(t.waiting.get() + 1);
        app.enqueue(Job::Teach(TeachJob::File { file, class }));
    }
    if app.model().is_none() {
        status("Photos wait for the model, then are added in order.");
    }
    refresh(app);
}

/// Frames from the running camera into `class`, a few a second, while the button is held.
async fn burst(app: &Rc<App>, class: u32) {
    let t = teach(app);
    if app.camera.borrow().is_none() {
        log("Start the camera first (Camera, above), then hold the button to take photos.");
        return;
    }
    if t.capturing.replace(true) {
        return;
    }
    let video: HtmlVideoElement = by_id("video");
    let canvas: HtmlCanvasElement = element("canvas");
    let Some(context) = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .map(JsCast::unchecked_into::<CanvasRenderingContext2d>)
    else {
        t.capturing.set(false);
        log("This browser has no 2D canvas: camera photos cannot be taken.");
        return;
    };
    let mut taken = 0;
    while t.capturing.get() && app.camera.borrow().is_some() {
        let (width, height) = (video.video_width(), video.video_height());
        if width > 0 {
            canvas.set_width(width);
            canvas.set_height(height);
            let pixels = context
                .draw_image_with_html_video_element(&video, 0.0, 0.0)
                .and_then(|()| context.get_image_data(0.0, 0.0, width as f64, height as f64));
            if let Ok(pixels) = pixels {
                taken += 1;
                t.waiting.set(t.waiting.get() + 1);
                app.enqueue(Job::Teach(TeachJob::Frame {
                    rgba: pixels.data().0,
                    width,
                    height,
                    class,
                    name: format!("camera {:.0}-{taken}", now_ms()),
                }));
                refresh(app);
            }
        }
        TimeoutFuture::new(BURST_INTERVAL_MS).await;
    }
    t.capturing.set(false);
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
    }
}

fn done_waiting(app: &App) {
    let t = teach(app);
    t.waiting.set(t.waiting.get().saturating_sub(1));
    refresh(app);
}

enum Source {
    Bytes(Vec<u8>),
    Rgba(Vec<u8>, u32, u32),
}

impl Source {
    fn request(&self) -> (Request, Vec<Uint8Array>) {
        match self {
            Source::Bytes(bytes) => (Request::FeaturesOfBytes, vec![Uint8Array::from(&bytes[..])]),
            Source::Rgba(rgba, width, height) => (
                Request::FeaturesOfRgba {
                    width: *width,
                    height: *height,
                },
                vec![Uint8Array::from(&rgba[..])],
            ),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Source::Bytes(b) | Source::Rgba(b, ..) => b,
        }
    }
}

/// The backbone's features of a photo, and the 224 x 224 crop it saw.
async fn features_of(app: &App, source: &Source) -> Result<(Vec<f32>, image::RgbImage), CallError> {
    let (reply, bytes, _) = app.ask(&|| source.request()).await?;
    let side = INPUT_SIDE as u32;
    match (reply, bytes.as_slice()) {
        (Reply::Features, [features, crop]) => {
            let features = store::f32s(&features.to_vec());
            let crop = image::RgbImage::from_raw(side, side, crop.to_vec());
            match crop {
                Some(crop) if features.len() == FEATURES => Ok((features, crop)),
                _ => Err(CallError::Backend(
                    "the model sent malformed features".into(),
                )),
            }
        }
        _ => Err(CallError::Backend("unexpected reply from the model".into())),
    }
}

/// Add one photo: once per content (the same photo again is named, not recomputed), its
/// features from the model, kept in IndexedDB with its thumbnail and crop, then shown.
async fn add_photo(app: &Rc<App>, class: u32, name: String, source: Source, id: Option<u32>) {
    let t = teach(app);
    let hash = sha256_hex(source.bytes());
    if let Some(same) = t.photos.borrow().iter().find(|p| p.hash == hash) {
        let in_class = class_name(app, same.class).unwrap_or_default();
        log(&format!(
            "{name} is already in {in_class} (as {}): it was not added again.",
            same.name
        ));
        return;
    }
    let (features, crop) = match features_of(app, &source).await {
        Ok(found) => found,
        Err(e) => {
            log(&format!("{name} was not added: {}", e.message()));
            return;
        }
    };
    if class_name(app, class).is_none() {
        log(&format!(
            "{name} was not added: its class was removed meanwhile."
        ));
        return;
    }
    let thumbnail = encode_thumbnail(&crop);
    let crop_png = encode_png(&crop);
    let record = PhotoRecord {
        id: id.unwrap_or_else(|| next_id(app)),
        class,
        name,
        hash,
        backbone: t.backbone.borrow().clone(),
        features,
        thumbnail,
    };
    let store = t.store.borrow().clone();
    if let Some(store) = store {
        if let Err(e) = store.put_photo(&record, Some(&crop_png)).await {
            log(&if e.full {
                format!(
                    "Storage is full: {} was not added. The {} photos kept so far are safe; \
                     remove some photos or free space in the browser, then add it again.",
                    record.name,
                    t.photos.borrow().len()
                )
            } else {
                format!("{} was not added: it could not be kept ({e}).", record.name)
            });
            return;
        }
    }
    show_photo(app, record);
    stale_report(app);
    refresh(app);
}

fn encode_thumbnail(crop: &image::RgbImage) -> Vec<u8> {
    let small = image::imageops::thumbnail(crop, THUMBNAIL_SIDE, THUMBNAIL_SIDE);
    let mut out = Vec::new();
    let _ = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80).encode_image(&small);
    out
}

fn encode_png(crop: &image::RgbImage) -> Vec<u8> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    let _ = image::codecs::png::PngEncoder::new(&mut out).write_image(
        crop.as_raw(),
        crop.width(),
        crop.height(),
        image::ExtendedColorType::Rgb8,
    );
    out
}

/// A photo's thumbnail in its class: image, class selector (move it), remove button.
fn show_photo(app: &Rc<App>, record: PhotoRecord) {
    let t = teach(app);
    let blob = Blob::new_with_options(&record.thumbnail[..], Some("image/jpeg"));
    let url = Rc::new(ObjectUrl::from(blob));
    let figure: HtmlElement = element("figure");
    figure.set_class_name("thumb");
    let _ = figure.set_attribute("data-photo-id", &record.id.to_string());
    let _ = figure.set_attribute("title", &record.name);
    let img: HtmlImageElement = element("img");
    img.set_src(&url);
    img.set_alt(&record.name);
    let (select, remove) = photo_controls(app, record.id, &record.name);
    let caption: HtmlElement = element("figcaption");
    let _ = caption.append_child(&select);
    let _ = caption.append_child(&remove);
    let _ = figure.append_child(&img);
    let _ = figure.append_child(&caption);
    let class = t
        .classes
        .borrow()
        .iter()
        .find(|c| c.id == record.class)
        .map(|c| c.thumbs.clone());
    if let Some(thumbs) = class {
        let _ = thumbs.prepend_with_node_1(&figure);
    }
    t.next_id.set(t.next_id.get().max(record.id + 1));
    t.photos.borrow_mut().push(Photo {
        id: record.id,
        class: record.class,
        name: record.name,
        hash: record.hash,
        backbone: record.backbone,
        features: Rc::new(record.features),
        thumbnail: Rc::new(record.thumbnail),
        url,
        figure,
        select,
    });
}

/// A class selector and a remove button acting on photo `id` (in its thumbnail, and in the
/// list of wrong validation photos).
fn photo_controls(app: &Rc<App>, id: u32, name: &str) -> (HtmlSelectElement, HtmlButtonElement) {
    let select: HtmlSelectElement = element("select");
    let _ = select.set_attribute("aria-label", &format!("Class of {name}"));
    fill_class_options(&select, &teach(app).classes.borrow(), u32::MAX);
    let remove: HtmlButtonElement = element("button");
    remove.set_type("button");
    remove.set_class_name("remove");
    remove.set_text_content(Some("×"));
    let _ = remove.set_attribute("aria-label", &format!("Remove {name}"));
    let on_move = {
        let (app, picker) = (app.clone(), select.clone());
        EventListener::new(&select, "change", move |_| {
            if let Ok(class) = picker.value().parse() {
                move_photo(&app, id, class);
            }
        })
    };
    let on_remove = {
        let app = app.clone();
        EventListener::new(&remove, "click", move |_| {
            remove_photo(&app, id);
            stale_report(&app);
            refresh(&app);
        })
    };
    on_move.forget();
    on_remove.forget();
    (select, remove)
}

fn move_photo(app: &Rc<App>, id: u32, class: u32) {
    let t = teach(app);
    let mut photos = t.photos.borrow_mut();
    let Some(photo) = photos.iter_mut().find(|p| p.id == id) else {
        return;
    };
    if photo.class == class {
        return;
    }
    photo.class = class;
    if let Some(target) = t.classes.borrow().iter().find(|c| c.id == class) {
        let _ = target.thumbs.prepend_with_node_1(&photo.figure);
    }
    let record = photo.record();
    drop(photos);
    // The row in the wrong-photos list goes: it is fixed.
    if let Some(row) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| {
            d.query_selector(&format!("#teach-wrong [data-photo-id=\"{id}\"]"))
                .ok()
        })
        .flatten()
    {
        row.remove();
    }
    if let Some(store) = t.store.borrow().clone() {
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = store.put_photo(&record, None).await {
                log(&format!(
                    "The move of {} could not be kept: {e}",
                    record.name
                ));
            }
        });
    }
    stale_report(app);
    refresh(app);
}

fn remove_photo(app: &Rc<App>, id: u32) {
    let t = teach(app);
    let mut photos = t.photos.borrow_mut();
    let Some(i) = photos.iter().position(|p| p.id == id) else {
        return;
    };
    let photo = photos.remove(i);
    photo.figure.remove();
    drop(photos);
    if let Some(row) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| {
            d.query_selector(&format!("#teach-wrong [data-photo-id=\"{id}\"]"))
                .ok()
        })
        .flatten()
    {
        row.remove();
    }
    if let Some(store) = t.store.borrow().clone() {
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = store.delete_photo(id).await {
                log(&format!("The removal of a photo could not be kept: {e}"));
            }
        });
    }
}

/// The photos changed since the last training: its report no longer describes them.
fn stale_report(app: &App) {
    if teach(app).last.borrow().is_some() {
        let _ = by_id::<HtmlElement>("teach-report").set_attribute("data-stale", "true");
    }
}

// ---------------------------------------------------------------------------------------
// Training

async fn train(app: &Rc<App>) {
    let t = teach(app);
    let Some(model) = app.model() else {
        status("The model is not ready.");
        return;
    };
    let classes: Vec<(u32, String)> = t
        .classes
        .borrow()
        .iter()
        .map(|c| (c.id, c.name.clone()))
        .collect();
    let (mut ids, mut names, mut labels, mut features) = (vec![], vec![], vec![], vec![]);
    for photo in t.photos.borrow().iter() {
        if let Some(label) = classes.iter().position(|(id, _)| *id == photo.class) {
            ids.push(photo.id);
            names.push(photo.name.clone());
            labels.push(label);
            features.extend_from_slice(&photo.features);
        }
    }
    let lesson = Lesson::new(
        HEAD_NAME,
        classes.iter().map(|(_, n)| n.clone()).collect(),
        labels,
    );
    let epochs = lesson.config.epochs;
    let bar: HtmlProgressElement = by_id("teach-progress");
    bar.set_max(epochs as f64);
    bar.set_value(0.0);
    bar.set_hidden(false);
    by_id::<HtmlButtonElement>("teach-train").set_disabled(true);
    status(&format!("Training on {} photos…", ids.len()));
    let started = now_ms();
    let on_epoch = {
        let bar = bar.clone();
        Box::new(move |epoch: EpochMetrics| {
            bar.set_value(epoch.epoch as f64);
            status(&format!(
                "Training: epoch {} of {epochs}, validation accuracy {:.2}",
                epoch.epoch, epoch.val_accuracy
            ));
        })
    };
    let reply = model
        .engine
        .call_with_progress(
            Request::Train {
                lesson: lesson.clone(),
            },
            vec![Uint8Array::from(&store::f32_bytes(&features)[..])],
            on_epoch,
        )
        .await;
    let seconds = (now_ms() - started) / 1000.0;
    bar.set_hidden(true);
    by_id::<HtmlButtonElement>("teach-train").set_disabled(false);
    let (taught, head) = match reply {
        Ok((Reply::Trained { taught }, bytes)) if !bytes.is_empty() => (taught, bytes[0].to_vec()),
        Ok(_) => {
            status("Training failed: unexpected reply from the model.");
            return;
        }
        Err(e) => {
            status(&format!("Not trained: {}", e.message()));
            return;
        }
    };
    let _ = by_id::<HtmlElement>("teach-status")
        .set_attribute("data-seconds", &format!("{seconds:.3}"));
    *t.last.borrow_mut() = Some(Lessoned {
        head: head.clone(),
        lesson,
        names,
        features,
    });
    show_report(app, &taught, &ids);
    let accuracy = taught.confusion.accuracy;
    match super::heads::use_taught(app, Rc::new(head.clone())).await {
        Ok(()) => status(&format!(
            "Trained on {} photos in {seconds:.2} s: validation accuracy {accuracy:.2} (epoch {} of {} kept). \
             The new head is in use for photos and the camera.",
            ids.len(),
            taught.best_epoch,
            taught.history.len()
        )),
        Err(e) => status(&format!(
            "Trained (validation accuracy {accuracy:.2}), but the head could not be used: {e}"
        )),
    }
    if let Some(store) = t.store.borrow().clone() {
        let record = HeadRecord {
            head,
            taught: serde_json::to_string(&taught).expect("taught serialises"),
            photos: ids,
        };
        if let Err(e) = store.put_head(&record).await {
            log(&format!(
                "The new head could not be kept for the next visit: {e}"
            ));
        }
    }
    refresh(app);
}

/// The report of a lesson over `ids` (the photos in the lesson's order): curve, matrix,
/// the wrong validation photos worst first, and which photos were held out.
fn show_report(app: &Rc<App>, taught: &Taught, ids: &[u32]) {
    let list = report::show(taught);
    let _ = by_id::<HtmlElement>("teach-report").remove_attribute("data-stale");
    let t = teach(app);
    let photos = t.photos.borrow();
    for photo in photos.iter() {
        let _ = photo.figure.set_attribute("data-split", "train");
    }
    let classes = &taught.confusion.classes;
    let mut wrong = Vec::new();
    for (&index, probabilities) in taught.val.iter().zip(&taught.val_probabilities) {
        let Some(photo) = ids
            .get(index)
            .and_then(|id| photos.iter().find(|p| p.id == *id))
        else {
            continue;
        };
        let _ = photo.figure.set_attribute("data-split", "val");
        let truth = t
            .classes
            .borrow()
            .iter()
            .find(|c| c.id == photo.class)
            .and_then(|c| classes.iter().position(|n| *n == c.name));
        let predicted = crate::fit::argmax(probabilities);
        if let Some(truth) = truth
            && truth != predicted
        {
            wrong.push((
                probabilities[truth],
                photo,
                predicted,
                probabilities[predicted],
            ));
        }
    }
    wrong.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (_, photo, predicted, p) in wrong {
        let item: HtmlElement = element("li");
        let _ = item.set_attribute("data-photo-id", &photo.id.to_string());
        let img: HtmlImageElement = element("img");
        img.set_src(&photo.url);
        img.set_alt(&photo.name);
        let truth = class_name(app, photo.class).unwrap_or_default();
        let words = text(
            "span",
            "",
            &format!(
                "{}: {truth}, taken for {} ({:.0} %)",
                photo.name,
                classes[predicted],
                100.0 * p
            ),
        );
        let (select, remove) = photo_controls(app, photo.id, &photo.name);
        fill_class_options(&select, &t.classes.borrow(), photo.class);
        for node in [
            img.unchecked_ref::<HtmlElement>(),
            &words,
            select.unchecked_ref(),
            remove.unchecked_ref(),
        ] {
            let _ = item.append_child(node);
        }
        let _ = list.append_child(&item);
    }
}

// ---------------------------------------------------------------------------------------
// Keeping and restoring

async fn restore(app: &Rc<App>) {
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
            Ok(store::Saved {
                meta: None,
                photos: Vec::new(),
                head: None,
            })
        }
    };
    let saved = saved.unwrap_or_else(|e| {
        log(&format!("The saved project could not be read: {e}"));
        store::Saved {
            meta: None,
            photos: Vec::new(),
            head: None,
        }
    });
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
        super::heads::restore_taught(app, Rc::new(head.head.clone()));
        *t.last.borrow_mut() = rebuild_lesson(app, &taught, head.head, &head.photos);
    }
    let backbone = t.backbone.borrow().clone();
    if !backbone.is_empty() {
        backbone_known(app, &backbone);
    }
    let _ = by_id::<HtmlElement>("teach").set_attribute("data-restored", "true");
    let n = t.photos.borrow().len();
    if n > 0 {
        status(&format!("Your project is back: {n} photos."));
    }
    refresh(app);
}

/// The last lesson again (for downloads after a reload), from the photos it was taught on.
fn rebuild_lesson(app: &App, taught: &Taught, head: Vec<u8>, ids: &[u32]) -> Option<Lessoned> {
    let t = teach(app);
    let photos = t.photos.borrow();
    let classes = &taught.confusion.classes;
    let (mut names, mut labels, mut features) = (vec![], vec![], vec![]);
    for id in ids {
        let photo = photos.iter().find(|p| p.id == *id)?;
        let class = class_name(app, photo.class)?;
        labels.push(classes.iter().position(|c| *c == class)?);
        names.push(photo.name.clone());
        features.extend_from_slice(&photo.features);
    }
    Some(Lessoned {
        head,
        lesson: Lesson::new(HEAD_NAME, classes.clone(), labels),
        names,
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
async fn recompute(app: &Rc<App>, id: u32) {
    let t = teach(app);
    let store = t.store.borrow().clone();
    let crop = match &store {
        Some(store) => store.crop(id).await.ok().flatten(),
        None => None,
    };
    let found = match crop {
        Some(crop) => features_of(app, &Source::Bytes(crop)).await.ok(),
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

async fn clear(app: &Rc<App>) {
    let t = teach(app);
    if let Some(store) = t.store.borrow().clone()
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
