//! The camera: start/stop, front, back or a named camera, a live label with confidence and
//! frames per second. Frames go video → canvas → RGBA → the model; the newest frame is
//! classified whenever the model is free, never a queue; paused while the tab is hidden.
//! gloo-timers for the pauses between frames.

use std::cell::Cell;
use std::rc::Rc;

use gloo_events::EventListener;
use gloo_timers::future::TimeoutFuture;
use js_sys::{Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    CanvasRenderingContext2d, HtmlButtonElement, HtmlCanvasElement, HtmlElement, HtmlSelectElement,
    HtmlVideoElement, MediaDeviceInfo, MediaDeviceKind, MediaStream,
};

use super::dom::{add_option, by_id, document, element, error_name, error_text, now_ms, set_text};
use super::results::{Card, draw_map};
use super::{App, TOP_K};
use crate::preprocess::CropRegion;
use crate::web::protocol::Request;

/// The page's message for a camera the user (or the browser) refused.
pub const DENIED_TITLE: &str = "Camera permission denied";
const DENIED_DETAIL: &str =
    "Allow camera access for this site in the browser's settings, then press Start again.";
const START: &str = "Start camera";
const START_WAITING: &str = "Start camera (once the model is ready)";

pub struct Camera {
    stream: MediaStream,
    running: Cell<bool>,
    frames: Cell<u32>,
    since_ms: Cell<f64>,
}

pub fn listen(app: &Rc<App>) {
    let start_button: HtmlButtonElement = by_id("camera-start");
    start_button.set_disabled(true);
    start_button.set_text_content(Some(START_WAITING));
    let on_start = {
        let app = app.clone();
        EventListener::new(&start_button, "click", move |_| {
            let app = app.clone();
            wasm_bindgen_futures::spawn_local(async move { start(&app).await });
        })
    };
    let on_stop = {
        let app = app.clone();
        EventListener::new(&by_id::<HtmlElement>("camera-stop"), "click", move |_| {
            stop(&app)
        })
    };
    // Frames per second count from when the tab was last shown.
    let why: HtmlButtonElement = by_id("live-why");
    let on_why = {
        let button = why.clone();
        EventListener::new(&why, "click", move |_| {
            let on = button.get_attribute("aria-pressed").as_deref() != Some("true");
            let _ = button.set_attribute("aria-pressed", &on.to_string());
            by_id::<HtmlCanvasElement>("live-map").set_hidden(!on);
        })
    };
    let on_visibility = {
        let app = app.clone();
        EventListener::new(&document(), "visibilitychange", move |_| {
            if let Some(camera) = app.camera.borrow().as_ref() {
                camera.since_ms.set(now_ms());
                camera.frames.set(0);
            }
        })
    };
    for listener in [on_start, on_stop, on_why, on_visibility] {
        listener.forget();
    }
    wasm_bindgen_futures::spawn_local(list_cameras());
}

/// The model is ready: the camera can start.
pub fn model_ready() {
    let button: HtmlButtonElement = by_id("camera-start");
    button.set_text_content(Some(START));
    button.set_disabled(false);
}

/// Back, front, then each camera by name (names appear once permission is granted).
async fn list_cameras() {
    let select: HtmlSelectElement = by_id("camera");
    let Ok(devices) = super::dom::window().navigator().media_devices() else {
        return; // no camera API: start says so
    };
    let Ok(promise) = devices.enumerate_devices() else {
        return;
    };
    let Ok(list) = JsFuture::from(promise).await else {
        return;
    };
    let previous = select.value();
    select.set_inner_html("");
    add_option(&select, "environment", "back camera");
    add_option(&select, "user", "front camera");
    let list = js_sys::Array::from(&list);
    let cameras = list
        .iter()
        .map(JsCast::unchecked_into::<MediaDeviceInfo>)
        .filter(|d| d.kind() == MediaDeviceKind::Videoinput);
    for (i, camera) in cameras.enumerate() {
        let label = camera.label();
        let text = if label.is_empty() {
            format!("camera {}", i + 1)
        } else {
            label
        };
        add_option(&select, &format!("device:{}", camera.device_id()), &text);
    }
    if !previous.is_empty() {
        select.set_value(&previous);
    }
}

/// `{ video: { facingMode } | { deviceId: { exact } }, audio: false }`.
fn constraints(choice: &str) -> Object {
    let video = Object::new();
    match choice.strip_prefix("device:") {
        Some(id) => {
            let exact = Object::new();
            let _ = Reflect::set(&exact, &"exact".into(), &id.into());
            let _ = Reflect::set(&video, &"deviceId".into(), &exact);
        }
        None => {
            let _ = Reflect::set(&video, &"facingMode".into(), &choice.into());
        }
    }
    let all = Object::new();
    let _ = Reflect::set(&all, &"video".into(), &video);
    let _ = Reflect::set(&all, &"audio".into(), &false.into());
    all
}

async fn start(app: &Rc<App>) {
    let start_button: HtmlButtonElement = by_id("camera-start");
    let Some(devices) = super::dom::window()
        .navigator()
        .media_devices()
        .ok()
        .filter(|d| !JsValue::from(d).is_undefined())
    else {
        Card::error(
            "No camera",
            "This browser does not offer camera access (it needs https or localhost).",
        );
        return;
    };
    start_button.set_disabled(true); // no second stream from a double click
    let choice = by_id::<HtmlSelectElement>("camera").value();
    let choice = if choice.is_empty() {
        "environment".to_string()
    } else {
        choice
    };
    let stream =
        match devices.get_user_media_with_constraints(&constraints(&choice).unchecked_into()) {
            Ok(promise) => JsFuture::from(promise).await,
            Err(e) => Err(e),
        };
    let stream: MediaStream = match stream {
        Ok(stream) => stream.unchecked_into(),
        Err(e) => {
            start_button.set_disabled(false);
            let (title, detail) = match error_name(&e).as_deref() {
                Some("NotAllowedError" | "SecurityError") => (DENIED_TITLE, DENIED_DETAIL.into()),
                Some("NotFoundError" | "OverconstrainedError") => (
                    "No camera found",
                    "Connect a camera or choose another one, then press Start again.".into(),
                ),
                _ => ("The camera could not start", error_text(&e)),
            };
            Card::error(title, &detail);
            return;
        }
    };
    let video: HtmlVideoElement = by_id("video");
    video.set_src_object(Some(&stream));
    if let Ok(playing) = video.play() {
        let _ = JsFuture::from(playing).await;
    }
    let camera = Rc::new(Camera {
        stream,
        running: Cell::new(true),
        frames: Cell::new(0),
        since_ms: Cell::new(now_ms()),
    });
    *app.camera.borrow_mut() = Some(camera.clone());
    by_id::<HtmlButtonElement>("camera-stop").set_disabled(false);
    by_id::<HtmlElement>("live").set_hidden(false);
    wasm_bindgen_futures::spawn_local(list_cameras());
    frames(app, &camera, &video).await;
}

fn stop(app: &App) {
    let Some(camera) = app.camera.borrow_mut().take() else {
        return;
    };
    camera.running.set(false);
    for track in camera.stream.get_tracks().iter() {
        track.unchecked_into::<web_sys::MediaStreamTrack>().stop();
    }
    by_id::<HtmlVideoElement>("video").set_src_object(None);
    by_id::<HtmlButtonElement>("camera-start").set_disabled(false);
    by_id::<HtmlButtonElement>("camera-stop").set_disabled(true);
}

/// With "Why?" on, the top class's map over the square of the video the model saw.
fn show_map(answer: &super::Answer, width: u32, height: u32) {
    let canvas: HtmlCanvasElement = by_id("live-map");
    let on = by_id::<HtmlElement>("live-why")
        .get_attribute("aria-pressed")
        .as_deref()
        == Some("true");
    let Some(map) = answer.maps.first().filter(|_| on) else {
        return;
    };
    let region = CropRegion::of(width, height);
    let style = canvas.style();
    let percent = |v: f32, of: u32| format!("{}%", 100.0 * v / of as f32);
    let _ = style.set_property("left", &percent(region.x, width));
    let _ = style.set_property("top", &percent(region.y, height));
    let _ = style.set_property("width", &percent(region.side, width));
    let _ = style.set_property("height", &percent(region.side, height));
    draw_map(&canvas, &answer.crop, map);
    let _ = canvas.set_attribute("data-why-label", &map.label);
}

/// Video frames as RGBA pixels: video → canvas → `getImageData` (the live label and the
/// teaching bursts).
pub struct FrameReader {
    canvas: HtmlCanvasElement,
    context: CanvasRenderingContext2d,
}

impl FrameReader {
    /// `None` when the browser has no 2D canvas.
    pub fn new() -> Option<Self> {
        let canvas: HtmlCanvasElement = element("canvas");
        let options = Object::new();
        let _ = Reflect::set(&options, &"willReadFrequently".into(), &true.into());
        let context = canvas
            .get_context_with_context_options("2d", &options)
            .ok()
            .flatten()?
            .unchecked_into::<CanvasRenderingContext2d>();
        Some(Self { canvas, context })
    }

    /// The video's current frame: its RGBA pixels, width and height.
    pub fn read(&self, video: &HtmlVideoElement) -> Result<(Vec<u8>, u32, u32), JsValue> {
        let (width, height) = (video.video_width(), video.video_height());
        self.canvas.set_width(width);
        self.canvas.set_height(height);
        self.context
            .draw_image_with_html_video_element(video, 0.0, 0.0)?;
        let pixels = self
            .context
            .get_image_data(0.0, 0.0, width as f64, height as f64)?;
        Ok((pixels.data().0, width, height))
    }
}

/// The newest frame, whenever the model is free, until the camera stops.
async fn frames(app: &Rc<App>, camera: &Camera, video: &HtmlVideoElement) {
    let Some(reader) = FrameReader::new() else {
        Card::error(
            "The camera could not start",
            "This browser has no 2D canvas.",
        );
        return;
    };
    while camera.running.get() {
        if document().hidden() || video.video_width() == 0 || !app.try_take_model() {
            TimeoutFuture::new(100).await;
            continue;
        }
        let (width, height) = (video.video_width(), video.video_height());
        let result = match reader.read(video) {
            Ok((rgba, ..)) => {
                let make = || {
                    (
                        Request::ClassifyRgba {
                            width,
                            height,
                            top: TOP_K,
                        },
                        vec![Uint8Array::from(&rgba[..])],
                    )
                };
                app.classify(&make)
                    .await
                    .map_err(|e| e.message().to_string())
            }
            Err(e) => Err(error_text(&e)),
        };
        app.give_back_model();
        if !camera.running.get() {
            break;
        }
        match result {
            Ok(answer) => {
                camera.frames.set(camera.frames.get() + 1);
                let seconds = (now_ms() - camera.since_ms.get()) / 1000.0;
                show_map(&answer, width, height);
                if let Some(top) = answer.predictions.first() {
                    set_text(
                        "live-label",
                        &format!("{} {:.0} %", top.label, 100.0 * top.probability),
                    );
                }
                set_text(
                    "live-fps",
                    &format!("{:.1} frames/s", camera.frames.get() as f64 / seconds),
                );
                let _ = by_id::<HtmlElement>("live")
                    .set_attribute("data-frames", &camera.frames.get().to_string());
            }
            Err(e) => set_text("live-label", &format!("error: {e}")),
        }
        // A short pause between frames keeps the page calm.
        TimeoutFuture::new(30).await;
    }
}
