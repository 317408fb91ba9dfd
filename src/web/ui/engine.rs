//! The page's side of the model's worker: start it (one of the model wasms, [`Build`], loaded
//! and compiled once, in the worker only), send it requests and await the replies. web-sys `Worker` rather
//! than gloo-worker: the page needs the worker's `error` event (a crashed worker must fail
//! every pending call, so the page can fall back to the CPU) and zero-copy transfer of weights
//! and camera frames, which gloo-worker's bincode messages would copy.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use js_sys::{Function, Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Event, MessageEvent, Worker, WorkerOptions, WorkerType};

use super::dom::window;
use crate::fit::EpochMetrics;
use crate::web::protocol::{Envelope, Reply, Request};

/// Which model wasm the worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// `lucy-model`: WebGPU and the CPU on one thread. Its loader script is trunk's
    /// (`data-loader-shim` in index.html).
    Single,
    /// `lucy-model-threads`: the CPU on every core (rayon on Web Workers sharing the wasm
    /// memory), for cross-origin isolated pages only. A module worker: its loader imports
    /// wasm-bindgen's ES module and starts the thread pool (static/). With `relaxed_simd`, the
    /// build on relaxed SIMD where the browser has it (the loader checks), else SIMD128's.
    Threaded { relaxed_simd: bool },
}

/// Why a call failed: the input (a photo that does not decode, a head that does not fit), or
/// the backend (an error, a crash, no answer in time).
#[derive(Debug)]
pub enum CallError {
    Input(String),
    Backend(String),
}

impl CallError {
    pub fn message(&self) -> &str {
        match self {
            CallError::Input(m) | CallError::Backend(m) => m,
        }
    }
}

type Pending = Rc<RefCell<HashMap<u32, (Function, Function)>>>;
/// Progress listeners of calls in flight (training's epochs), by call id.
type Listeners = Rc<RefCell<HashMap<u32, Box<dyn Fn(EpochMetrics)>>>>;

pub struct Engine {
    worker: Worker,
    build: Build,
    pending: Pending,
    listeners: Listeners,
    next_id: Cell<u32>,
    ready: Promise,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(Event)>,
}

impl Engine {
    pub fn spawn(build: Build) -> Result<Self, String> {
        let worker = match build {
            Build::Single => Worker::new("lucy-model_loader.js"),
            Build::Threaded { relaxed_simd } => {
                let options = WorkerOptions::new();
                options.set_type(WorkerType::Module);
                // The loader reads its name: "simd128" keeps it off relaxed SIMD.
                options.set_name(if relaxed_simd {
                    "lucy-model"
                } else {
                    "simd128"
                });
                Worker::new_with_options("lucy-model-threads_loader.js", &options)
            }
        }
        .map_err(|e| format!("the model's worker did not start: {e:?}"))?;
        let pending: Pending = Rc::default();
        let listeners: Listeners = Rc::default();
        // Settled by the worker's first message ("ready"), or by its failure to start.
        let ready_settle: Rc<RefCell<Option<(Function, Function)>>> = Rc::default();
        let ready = {
            let settle = ready_settle.clone();
            Promise::new(&mut |resolve, reject| *settle.borrow_mut() = Some((resolve, reject)))
        };
        let on_message = {
            let (pending, ready) = (pending.clone(), ready_settle.clone());
            let listeners = listeners.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                let data = event.data();
                if data.as_string().as_deref() == Some("ready") {
                    if let Some((resolve, _)) = ready.borrow_mut().take() {
                        let _ = resolve.call1(&JsValue::NULL, &JsValue::TRUE);
                    }
                    return;
                }
                let id = js_sys::Reflect::get(&data, &"id".into())
                    .ok()
                    .and_then(|id| id.as_f64());
                let progress = js_sys::Reflect::get(&data, &"progress".into())
                    .ok()
                    .and_then(|p| p.as_string());
                if let (Some(id), Some(progress)) = (id, progress) {
                    if let (Some(listener), Ok(epoch)) = (
                        listeners.borrow().get(&(id as u32)),
                        serde_json::from_str(&progress),
                    ) {
                        listener(epoch);
                    }
                    return;
                }
                if let Some((resolve, _)) =
                    id.and_then(|id| pending.borrow_mut().remove(&(id as u32)))
                {
                    let _ = resolve.call1(&JsValue::NULL, &data);
                }
            })
        };
        let on_error = {
            let (pending, ready) = (pending.clone(), ready_settle.clone());
            // An `ErrorEvent` for an error in the worker, a plain `Event` when its script did not
            // load (missing, blocked, not JavaScript): `message` is read, not assumed.
            Closure::<dyn FnMut(Event)>::new(move |event: Event| {
                event.prevent_default(); // handled here: not an uncaught error on the page
                let message = js_sys::Reflect::get(&event, &"message".into())
                    .ok()
                    .and_then(|m| m.as_string())
                    .unwrap_or_else(|| "its script did not load".into());
                let reason = JsValue::from(format!("the model stopped: {message}"));
                if let Some((_, reject)) = ready.borrow_mut().take() {
                    let _ = reject.call1(&JsValue::NULL, &reason);
                }
                for (_, (_, reject)) in pending.borrow_mut().drain() {
                    let _ = reject.call1(&JsValue::NULL, &reason);
                }
            })
        };
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Ok(Self {
            worker,
            build,
            pending,
            listeners,
            next_id: Cell::new(0),
            ready,
            _on_message: on_message,
            _on_error: on_error,
        })
    }

    /// Send `request` with its payloads (transferred: the arrays are empty afterwards) and
    /// await the reply; `timeout_ms` bounds the wait, the worker's start included (a stuck GPU
    /// never answers; a thread pool that cannot start never says it is ready).
    pub async fn call(
        &self,
        request: Request,
        bytes: Vec<Uint8Array>,
        timeout_ms: Option<i32>,
    ) -> Result<Reply, CallError> {
        self.call_with_payload(request, bytes, timeout_ms)
            .await
            .map(|(reply, _)| reply)
    }

    /// [`Self::call`], with the reply's payloads.
    pub async fn call_with_payload(
        &self,
        request: Request,
        bytes: Vec<Uint8Array>,
        timeout_ms: Option<i32>,
    ) -> Result<(Reply, Vec<Uint8Array>), CallError> {
        self.send(request, bytes, timeout_ms, None).await
    }

    /// [`Self::call_with_payload`] for a call that reports progress (training's epochs).
    pub async fn call_with_progress(
        &self,
        request: Request,
        bytes: Vec<Uint8Array>,
        on_progress: Box<dyn Fn(EpochMetrics)>,
    ) -> Result<(Reply, Vec<Uint8Array>), CallError> {
        self.send(request, bytes, None, Some(on_progress)).await
    }

    async fn send(
        &self,
        request: Request,
        bytes: Vec<Uint8Array>,
        timeout_ms: Option<i32>,
        on_progress: Option<Box<dyn Fn(EpochMetrics)>>,
    ) -> Result<(Reply, Vec<Uint8Array>), CallError> {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        if let Some(listener) = on_progress {
            self.listeners.borrow_mut().insert(id, listener);
        }
        let reply = self.exchange(id, request, bytes, timeout_ms).await;
        self.listeners.borrow_mut().remove(&id);
        reply
    }

    async fn exchange(
        &self,
        id: u32,
        request: Request,
        bytes: Vec<Uint8Array>,
        timeout_ms: Option<i32>,
    ) -> Result<(Reply, Vec<Uint8Array>), CallError> {
        let deadline = timeout_ms.map(timeout);
        let within = |promise: Promise| match &deadline {
            Some(deadline) => Promise::race(&js_sys::Array::of2(&promise, deadline)),
            None => promise,
        };
        let no_answer = || {
            let seconds = timeout_ms.unwrap_or(0) / 1000;
            CallError::Backend(format!("no answer after {seconds} s"))
        };
        let ready = JsFuture::from(within(self.ready.clone()))
            .await
            .map_err(|e| CallError::Backend(super::dom::error_text(&e)))?;
        if ready.is_undefined() {
            return Err(no_answer());
        }
        let pending = self.pending.clone();
        let reply = Promise::new(&mut |resolve, reject| {
            pending.borrow_mut().insert(id, (resolve, reject));
        });
        let (message, transfer) = Envelope {
            id,
            body: request,
            bytes,
        }
        .to_js();
        self.worker
            .post_message_with_transfer(&message, &transfer)
            .map_err(|e| CallError::Backend(format!("the model's worker is gone: {e:?}")))?;
        let data = JsFuture::from(within(reply))
            .await
            .map_err(|e| CallError::Backend(super::dom::error_text(&e)))?;
        if data.is_undefined() {
            self.pending.borrow_mut().remove(&id);
            return Err(no_answer());
        }
        let reply = Envelope::<Reply>::from_js(&data).map_err(CallError::Backend)?;
        match reply.body {
            Reply::Failed { message, input } if input => Err(CallError::Input(message)),
            Reply::Failed { message, .. } => Err(CallError::Backend(message)),
            body => Ok((body, reply.bytes)),
        }
    }

    /// Whether this worker runs the threaded model.
    pub fn is_threaded(&self) -> bool {
        matches!(self.build, Build::Threaded { .. })
    }

    pub fn terminate(&self) {
        self.worker.terminate();
    }
}

/// A worker nobody holds any more (a failed model, a replaced one) stops.
impl Drop for Engine {
    fn drop(&mut self) {
        self.worker.terminate();
        // Its handlers are dropped with it: no late message may reach them.
        self.worker.set_onmessage(None);
        self.worker.set_onerror(None);
    }
}

/// A promise that resolves to `undefined` after `ms` milliseconds.
fn timeout(ms: i32) -> Promise {
    Promise::new(&mut |resolve, _| {
        let _ = window().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
    })
}
