//! The model's worker (the `lucy-model` wasm, feature `model`): the classifier, off the page's
//! thread, so the page keeps painting and taking input while the CPU backend computes.
//! Requests are answered one at a time, in the order they came ([`super::protocol`]).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use burn::prelude::*;
use js_sys::Uint8Array;
use wasm_bindgen::prelude::*;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use super::protocol::{Backend, Envelope, Reply, Request};
use crate::classifier::{Classifier, Prediction, top_k};
use crate::explain::ClassMap;
use crate::fit::{EpochMetrics, teach};
use crate::preprocess::{Input, preprocess_bytes, preprocess_crop, preprocess_rgba};
use crate::weights::bundle::{decode_head, f32_bytes, f32_from_bytes, load_backbone};

/// The worker's state: the model once created, and the requests waiting for it.
#[derive(Default)]
struct Model {
    classifier: Option<Classifier>,
    /// Tests only: fail every request after this many answers (a backend breaking mid-session).
    fail_after: Option<u32>,
    answered: u32,
}

type Queue = Rc<RefCell<VecDeque<Envelope<Request>>>>;

/// The threaded model's pool: `initThreadPool(n)`, exported to its loader, starts `n` Web
/// Workers for rayon's global pool.
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

/// The threaded model's entry: its loader (static/lucy-model-threads_loader.js) calls it once
/// rayon's pool of Web Workers runs.
#[cfg(feature = "threads")]
#[wasm_bindgen(js_name = startWorker)]
pub fn start_worker() {
    start();
}

/// Install the message handler, then tell the page the worker is ready (messages posted
/// before that would be lost while the wasm compiles).
pub fn start() {
    console_error_panic_hook::set_once();
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let model = Rc::new(RefCell::new(Model::default()));
    let queue: Queue = Rc::default();
    let running = Rc::new(std::cell::Cell::new(false));
    let reply_scope = scope.clone();
    let onmessage = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        match Envelope::<Request>::from_js(&event.data()) {
            Ok(request) => queue.borrow_mut().push_back(request),
            Err(message) => web_sys::console::error_1(&message.into()),
        }
        if !running.replace(true) {
            let (queue, model, running, scope) = (
                queue.clone(),
                model.clone(),
                running.clone(),
                reply_scope.clone(),
            );
            wasm_bindgen_futures::spawn_local(async move {
                // One request at a time, in order, until the queue is empty.
                loop {
                    let Some(request) = queue.borrow_mut().pop_front() else {
                        break;
                    };
                    let id = request.id;
                    let progress_scope = scope.clone();
                    let progress =
                        move |epoch: &EpochMetrics| post_progress(&progress_scope, id, epoch);
                    let reply = answer(&model, request.body, &request.bytes, &progress).await;
                    post(&scope, id, reply);
                }
                running.set(false);
            });
        }
    });
    scope.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    onmessage.forget(); // lives as long as the worker
    let _ = scope.post_message(&"ready".into());
}

fn post(scope: &DedicatedWorkerGlobalScope, id: u32, (reply, bytes): (Reply, Vec<Uint8Array>)) {
    let (message, transfer) = Envelope {
        id,
        body: reply,
        bytes,
    }
    .to_js();
    let _ = scope.post_message_with_transfer(&message, &transfer);
}

/// A training epoch's metrics, on their way to the page while the worker trains on.
fn post_progress(scope: &DedicatedWorkerGlobalScope, id: u32, epoch: &EpochMetrics) {
    let message = js_sys::Object::new();
    let json = serde_json::to_string(epoch).expect("metrics serialise");
    let _ = js_sys::Reflect::set(&message, &"id".into(), &id.into());
    let _ = js_sys::Reflect::set(&message, &"progress".into(), &json.into());
    let _ = scope.post_message(&message);
}

/// An error that is the input's fault (a photo that does not decode, a head that does not fit).
fn input_error(message: impl std::fmt::Display) -> Reply {
    Reply::Failed {
        message: message.to_string(),
        input: true,
    }
}

fn backend_error(message: impl std::fmt::Display) -> Reply {
    Reply::Failed {
        message: message.to_string(),
        input: false,
    }
}

/// The reply to `request`, with its payloads (a classification's crop).
async fn answer(
    model: &RefCell<Model>,
    request: Request,
    bytes: &[Uint8Array],
    progress: &dyn Fn(&EpochMetrics),
) -> (Reply, Vec<Uint8Array>) {
    match request {
        Request::FeaturesOfBytes => match preprocess_bytes(&payload(bytes, 0)) {
            Ok(input) => features(model, &input).await,
            Err(e) => (input_error(e), Vec::new()),
        },
        Request::FeaturesOfCrop => match preprocess_crop(&payload(bytes, 0)) {
            Ok(input) => features(model, &input).await,
            Err(e) => (input_error(e), Vec::new()),
        },
        Request::FeaturesOfRgba { width, height } => {
            match preprocess_rgba(&payload(bytes, 0), width, height) {
                Ok(input) => features(model, &input).await,
                Err(e) => (input_error(e), Vec::new()),
            }
        }
        // Training needs only the features it is sent, not the backbone: no turn to take.
        Request::Train { lesson } => {
            let features = f32_from_bytes(&payload(bytes, 0));
            match teach(&lesson, &features, &mut |epoch| progress(epoch)) {
                Ok((head, taught)) => {
                    (Reply::Trained { taught }, vec![Uint8Array::from(&head[..])])
                }
                Err(e) => (input_error(e), Vec::new()),
            }
        }
        Request::ClassifyBytes { top } => match preprocess_bytes(&payload(bytes, 0)) {
            Ok(input) => classify(model, &input, top).await,
            Err(e) => (input_error(e), Vec::new()),
        },
        Request::ClassifyRgba { width, height, top } => {
            match preprocess_rgba(&payload(bytes, 0), width, height) {
                Ok(input) => classify(model, &input, top).await,
                Err(e) => (input_error(e), Vec::new()),
            }
        }
        other => (reply_without_payload(model, other, bytes).await, Vec::new()),
    }
}

fn payload(bytes: &[Uint8Array], i: usize) -> Vec<u8> {
    bytes.get(i).map(Uint8Array::to_vec).unwrap_or_default()
}

/// Take the model for one request: `None` with the reply when it cannot answer (not built yet,
/// or a test asked the backend to fail from now on).
fn take_turn(model: &RefCell<Model>) -> Option<Reply> {
    let mut state = model.borrow_mut();
    if state.classifier.is_none() {
        return Some(backend_error("the model is not built yet"));
    }
    if state.fail_after.is_some_and(|n| state.answered >= n) {
        return Some(backend_error("the backend failed (a test asked it to)"));
    }
    state.answered += 1;
    None
}

/// The backbone's features of one photo, and the crop it saw.
// The model stays borrowed while the backend's answer is awaited: no other request can
// borrow it meanwhile, since requests are answered one at a time (the module's doc).
#[allow(clippy::await_holding_refcell_ref)]
async fn features(model: &RefCell<Model>, input: &Input) -> (Reply, Vec<Uint8Array>) {
    if let Some(refused) = take_turn(model) {
        return (refused, Vec::new());
    }
    let state = model.borrow();
    let classifier = state.classifier.as_ref().expect("checked by take_turn");
    let features = classifier.features(std::slice::from_ref(input));
    match read(features.into_data_async().await) {
        Ok(features) => (
            Reply::Features,
            vec![
                Uint8Array::from(&f32_bytes(&features)[..]),
                Uint8Array::from(&input.to_rgb().into_raw()[..]),
            ],
        ),
        Err(e) => (backend_error(e), Vec::new()),
    }
}

// The model stays borrowed while the backend's answer is awaited: no other request can
// borrow it meanwhile, since requests are answered one at a time (the module's doc).
#[allow(clippy::await_holding_refcell_ref)]
async fn classify(model: &RefCell<Model>, input: &Input, top: usize) -> (Reply, Vec<Uint8Array>) {
    if let Some(refused) = take_turn(model) {
        return (refused, Vec::new());
    }
    let state = model.borrow();
    let classifier = state.classifier.as_ref().expect("checked by take_turn");
    match explained(classifier, input, top).await {
        Ok((predictions, maps)) => (
            Reply::Classified { predictions, maps },
            vec![Uint8Array::from(&input.to_rgb().into_raw()[..])],
        ),
        Err(e) => (backend_error(e), Vec::new()),
    }
}

/// Requests whose replies carry no payload: building the model, heads, timings.
// The model stays borrowed while the backend's answer is awaited: no other request can
// borrow it meanwhile, since requests are answered one at a time (the module's doc).
#[allow(clippy::await_holding_refcell_ref)]
async fn reply_without_payload(
    model: &RefCell<Model>,
    request: Request,
    bytes: &[Uint8Array],
) -> Reply {
    let payload = |i: usize| payload(bytes, i);
    if let Request::Create {
        backend,
        fail_after,
        activation_max,
    } = request
    {
        let created = create(backend, &payload(0), &payload(1)).await.and_then(
            |(mut classifier, backend)| {
                if let Some(max) = activation_max {
                    classifier.set_activation_max(max)?;
                }
                Ok((classifier, backend))
            },
        );
        return match created {
            Ok((classifier, backend)) => {
                let labels = classifier.labels().to_vec();
                let int8 = classifier.int8_kernel().map(|(kernel, max)| {
                    (kernel.name().to_string(), u8::BITS - max.leading_zeros())
                });
                *model.borrow_mut() = Model {
                    classifier: Some(classifier),
                    fail_after,
                    answered: 0,
                };
                Reply::Created {
                    backend,
                    threads: crate::model::cpu_threads(),
                    int8,
                    labels,
                }
            }
            Err(e) => backend_error(format!("the model could not be built: {e}")),
        };
    }
    if let Some(refused) = take_turn(model) {
        return refused;
    }
    let state = model.borrow();
    let classifier = state.classifier.as_ref().expect("checked above");
    match request {
        Request::Create { .. }
        | Request::ClassifyBytes { .. }
        | Request::ClassifyRgba { .. }
        | Request::FeaturesOfBytes
        | Request::FeaturesOfCrop
        | Request::FeaturesOfRgba { .. }
        | Request::Train { .. } => {
            unreachable!("answered by `answer`")
        }
        Request::SetHead { file } => {
            let head = match decode_head(&file, &payload(0)) {
                Ok(head) => head,
                Err(e) => return input_error(e),
            };
            drop(state);
            let mut state = model.borrow_mut();
            let classifier = state.classifier.as_mut().expect("checked above");
            match classifier.set_head(head) {
                Ok(()) => Reply::HeadSet {
                    labels: classifier.labels().to_vec(),
                },
                Err(e) => input_error(e),
            }
        }
        Request::TimeInference { runs, explain } => {
            let input = match preprocess_bytes(&payload(0)) {
                Ok(input) => input,
                Err(e) => return input_error(e),
            };
            let top1 = match probabilities(classifier, &input).await {
                Ok(p) => top_k(&p, classifier.labels(), 1)[0].index,
                Err(e) => return backend_error(e),
            };
            let mut times_ms = Vec::new();
            for _ in 0..runs {
                let started = now_ms();
                let run = if explain {
                    explained(classifier, &input, 5).await.map(|_| ())
                } else {
                    probabilities(classifier, &input).await.map(|_| ())
                };
                if let Err(e) = run {
                    return backend_error(e);
                }
                times_ms.push(now_ms() - started);
            }
            Reply::Timed { top1, times_ms }
        }
    }
}

/// WebGPU when asked and available (burn-wgpu, initialised asynchronously), else the CPU.
async fn create(
    backend: Backend,
    backbone: &[u8],
    head: &[u8],
) -> Result<(Classifier, Backend), String> {
    let (device, backend) = match backend {
        #[cfg(feature = "model")]
        Backend::WebGpu => match Device::wgpu_options().init_async().await {
            Ok(device) => (device, Backend::WebGpu),
            Err(e) => {
                web_sys::console::warn_1(
                    &format!("WebGPU unavailable ({e}); using the CPU").into(),
                );
                (Device::flex(), Backend::Cpu)
            }
        },
        // The threaded build has no WebGPU (the page asks it for the CPU only).
        #[cfg(not(feature = "model"))]
        Backend::WebGpu => (Device::flex(), Backend::Cpu),
        Backend::Cpu => (Device::flex(), Backend::Cpu),
    };
    let backbone = load_backbone("backbone", backbone, &device).map_err(|e| e.to_string())?;
    let head = decode_head("head", head).map_err(|e| e.to_string())?;
    let classifier = Classifier::new(backbone, head, &device).map_err(|e| e.to_string())?;
    Ok((classifier, backend))
}

/// Top-`top` predictions and the class activation map of each. Only the probabilities and
/// the maps come back from the GPU, asynchronously.
async fn explained(
    classifier: &Classifier,
    input: &Input,
    top: usize,
) -> Result<(Vec<Prediction>, Vec<ClassMap>), String> {
    let (probabilities, maps) = classifier.probabilities_and_maps(std::slice::from_ref(input));
    let probabilities = read(probabilities.into_data_async().await)?;
    let maps = read(maps.into_data_async().await)?;
    Ok(classifier.explanation(&probabilities, &maps, top, None))
}

fn read<E: std::fmt::Debug>(data: Result<burn::tensor::TensorData, E>) -> Result<Vec<f32>, String> {
    let data = data.map_err(|e| format!("reading the result failed: {e:?}"))?;
    data.as_slice::<f32>()
        .map(<[f32]>::to_vec)
        .map_err(|e| format!("unexpected result type: {e:?}"))
}

/// Only the probabilities come back from the GPU, asynchronously (a blocking read panics on
/// WebGPU).
async fn probabilities(classifier: &Classifier, input: &Input) -> Result<Vec<f32>, String> {
    read(
        classifier
            .probabilities(std::slice::from_ref(input))
            .into_data_async()
            .await,
    )
}

fn now_ms() -> f64 {
    js_sys::global()
        .unchecked_into::<DedicatedWorkerGlobalScope>()
        .performance()
        .map_or(0.0, |p| p.now())
}
