//! The messages between the page (`web::ui`) and the model's worker (`web::worker`).
//!
//! Each message is a plain JS object `{ id, json, bytes }`: `json` is the request or reply
//! below, serialised; `bytes` holds the large payloads (weights, photos, camera pixels) as
//! `Uint8Array`s whose buffers are transferred, not copied.

use js_sys::{Array, Object, Reflect, Uint8Array};
use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsCast, JsValue};

use crate::classifier::Prediction;
use crate::explain::ClassMap;
use crate::fit::{Lesson, Taught};

/// What the page asks of the model, one at a time, answered in order.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// Build the model on `backend` from `bytes[0]` (backbone) and `bytes[1]` (head), both
    /// verified by the page. `fail_after` (tests only): answer that many requests, then fail
    /// every later one as a broken backend would.
    Create {
        backend: Backend,
        fail_after: Option<u32>,
        /// On the CPU in int8: quantize activations to at most this (127: 7 bits, what relaxed
        /// SIMD computes, on any kernel — `?int8-bits=7`, to compare the kernels exactly).
        activation_max: Option<u8>,
    },
    /// Swap the head for `bytes[0]` (named `file` in errors).
    SetHead { file: String },
    /// Top-`top` predictions and their maps for the photo file in `bytes[0]`.
    ClassifyBytes { top: usize },
    /// Top-`top` predictions and their maps for RGBA pixels in `bytes[0]` (camera frames).
    ClassifyRgba { width: u32, height: u32, top: usize },
    /// Teaching: the backbone's 2048 features of the photo file in `bytes[0]`.
    FeaturesOfBytes,
    /// Teaching: the features of a kept 224 x 224 crop (an image file) in `bytes[0]`, used as it
    /// is (no resize): features again for a new backbone.
    FeaturesOfCrop,
    /// Teaching: the features of RGBA pixels in `bytes[0]` (camera frames).
    FeaturesOfRgba { width: u32, height: u32 },
    /// Fit a head (`fit::teach`) on features in `bytes[0]` (2048 little-endian f32 per photo,
    /// in the lesson's order). Each epoch's metrics arrive as progress messages
    /// (`{ id, progress }`) before the reply.
    Train { lesson: Lesson },
    /// The model alone, `runs` times, on the photo in `bytes[0]` prepared once (benchmarks);
    /// with `explain`, the top-5 class activation maps too.
    TimeInference { runs: u32, explain: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Backend {
    WebGpu,
    Cpu,
}

impl Backend {
    /// For the badge and the result cards.
    pub fn describe(self) -> &'static str {
        match self {
            Backend::WebGpu => "WebGPU",
            // The browser build always has SIMD128, so the int8 file computes in int8.
            Backend::Cpu => "CPU (wasm, int8)",
        }
    }

    /// The badge: the backend, and on the CPU how many threads compute.
    pub fn badge(self, threads: usize) -> String {
        match self {
            Backend::WebGpu => self.describe().to_string(),
            Backend::Cpu => {
                let plural = if threads == 1 { "" } else { "s" };
                format!("CPU (wasm, int8, {threads} thread{plural})")
            }
        }
    }

    /// The `data-backend` attribute and `?backend=` value.
    pub fn key(self) -> &'static str {
        match self {
            Backend::WebGpu => "webgpu",
            Backend::Cpu => "cpu",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    /// The backend that really runs (WebGPU that fails to start falls back to the CPU), and
    /// the threads the CPU computes on.
    Created {
        backend: Backend,
        threads: usize,
        /// On the CPU in int8: the kernel's name and the activations' bits (8, or 7 with
        /// relaxed SIMD).
        int8: Option<(String, u32)>,
        labels: Vec<String>,
    },
    HeadSet {
        labels: Vec<String>,
    },
    /// The predictions, the class activation map of each, and (in `bytes[0]`) the 224 x 224
    /// RGB crop the model saw, for drawing the maps over.
    Classified {
        predictions: Vec<Prediction>,
        maps: Vec<ClassMap>,
    },
    /// In `bytes[0]` the 2048 features (little-endian f32), in `bytes[1]` the 224 x 224 RGB
    /// crop the model saw (thumbnails, and recomputing features for another backbone).
    Features,
    /// In `bytes[0]` the head file.
    Trained {
        taught: Taught,
    },
    Timed {
        top1: usize,
        times_ms: Vec<f64>,
    },
    /// `input`: the photo (or head file) was the problem, not the backend.
    Failed {
        message: String,
        input: bool,
    },
}

/// A message on its way: `id` pairs a reply with its request.
pub struct Envelope<T> {
    pub id: u32,
    pub body: T,
    pub bytes: Vec<Uint8Array>,
}

impl<T: Serialize> Envelope<T> {
    /// The JS object to post, and the buffers to transfer with it.
    pub fn to_js(&self) -> (JsValue, Array) {
        let object = Object::new();
        let json = serde_json::to_string(&self.body).expect("messages serialise");
        let bytes = Array::new();
        let transfer = Array::new();
        for b in &self.bytes {
            bytes.push(b);
            transfer.push(&b.buffer());
        }
        // Setting properties on a fresh plain object cannot fail.
        let _ = Reflect::set(&object, &"id".into(), &self.id.into());
        let _ = Reflect::set(&object, &"json".into(), &json.into());
        let _ = Reflect::set(&object, &"bytes".into(), &bytes);
        (object.into(), transfer)
    }
}

impl<T: for<'de> Deserialize<'de>> Envelope<T> {
    pub fn from_js(value: &JsValue) -> Result<Self, String> {
        let field = |name: &str| Reflect::get(value, &name.into()).unwrap_or(JsValue::UNDEFINED);
        let id = field("id").as_f64().ok_or("a message without an id")? as u32;
        let json = field("json")
            .as_string()
            .ok_or("a message without a body")?;
        let body =
            serde_json::from_str(&json).map_err(|e| format!("an unreadable message: {e}"))?;
        let bytes = field("bytes")
            .dyn_into::<Array>()
            .map(|a| a.iter().map(|b| b.unchecked_into()).collect())
            .unwrap_or_default();
        Ok(Self { id, body, bytes })
    }
}
