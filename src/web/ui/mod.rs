//! The page (the `lucy-page` wasm, feature `page`; no model code in it): the DOM, inputs,
//! loading and caching, the camera, results. The model runs in its own worker
//! ([`engine`]); this module owns the order of work:
//!
//! - every input is accepted from the first paint; photos and head files that arrive before
//!   the model is ready get their card at once ("waiting for the model") and join one queue,
//!   worked through in order once it is ready — nothing a user gives is dropped;
//! - camera frames never queue: the newest frame is classified whenever the model is free.

mod camera;
mod dom;
mod engine;
mod heads;
mod loading;
mod offline;
mod photos;
mod results;
mod teach;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use js_sys::{Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{HtmlElement, HtmlProgressElement};

use crate::classifier::Prediction;
use crate::explain::ClassMap;
use crate::web::protocol::{Backend, Reply, Request};
use dom::{by_id, set_text};
use engine::{CallError, Engine};
use loading::Bundle;
use results::Card;

/// How many classes each result shows.
const TOP_K: usize = 5;
/// A software WebGPU adapter can take a minute per photo; past this, WebGPU is given up.
const WEBGPU_TIMEOUT_MS: i32 = 180_000;
/// The threaded model answers a photo in well under a second, and builds itself in a few:
/// past this (a thread of its pool that failed leaves the others waiting for it), it is given
/// up for one thread.
const THREADED_TIMEOUT_MS: i32 = 120_000;
/// The head the page starts with.
const DEFAULT_HEAD: &str = crate::weights::bundle::IMAGENET_HEAD;

/// Work that must wait for the model, in arrival order.
enum Job {
    Photo { file: web_sys::File, card: Card },
    HeadFile { file: web_sys::File, card: Card },
    SelectHead(String),
    Teach(teach::TeachJob),
}

/// A classification: the top-5, the class activation map of each, the crop the model saw
/// (224 x 224 RGB, for drawing the maps), and the backend that answered.
pub struct Answer {
    pub predictions: Vec<Prediction>,
    pub maps: Vec<ClassMap>,
    pub crop: image::RgbImage,
    pub backend: Backend,
}

/// The model as loaded: the worker, the backend it runs, the bytes to rebuild it from.
struct Model {
    engine: Engine,
    backend: Backend,
    backbone: Rc<Vec<u8>>,
    /// The head in use (it changes with the selector).
    head: RefCell<Rc<Vec<u8>>>,
}

pub struct App {
    bundle: RefCell<Option<Rc<Bundle>>>,
    model: RefCell<Option<Rc<Model>>>,
    /// Heads loaded from disk this session, by file name.
    disk_heads: RefCell<Vec<(String, Rc<Vec<u8>>)>>,
    head_name: RefCell<String>,
    /// `?head=` chose the head: a head taught here earlier does not replace it.
    head_chosen_by_address: Cell<bool>,
    labels: RefCell<Vec<String>>,
    jobs: RefCell<VecDeque<Job>>,
    /// Why lucy could not start: work given after that is refused at once, never queued.
    failed: RefCell<Option<String>>,
    /// A job (or a camera frame) is with the model.
    busy: Cell<bool>,
    camera: RefCell<Option<Rc<camera::Camera>>>,
    teach: teach::Teach,
}

thread_local! {
    static APP: RefCell<Option<Rc<App>>> = const { RefCell::new(None) };
}

/// The page's entry point (`src/bin/lucy-page.rs`).
pub fn start() {
    console_error_panic_hook::set_once();
    let app = Rc::new(App {
        bundle: RefCell::default(),
        model: RefCell::default(),
        disk_heads: RefCell::default(),
        head_name: RefCell::new(DEFAULT_HEAD.to_string()),
        head_chosen_by_address: Cell::new(false),
        labels: RefCell::default(),
        jobs: RefCell::default(),
        failed: RefCell::default(),
        busy: Cell::new(false),
        camera: RefCell::default(),
        teach: teach::Teach::default(),
    });
    APP.with_borrow_mut(|a| *a = Some(app.clone()));
    // Inputs first: from the first paint, nothing the user gives is lost.
    photos::listen(&app);
    heads::listen(&app);
    camera::listen(&app);
    teach::start(&app);
    wasm_bindgen_futures::spawn_local(async move {
        if let Err(e) = app.load().await {
            let _ = dom::document()
                .body()
                .map(|b| b.set_attribute("data-ready", "error"));
            set_text("status", "lucy could not start.");
            by_id::<HtmlProgressElement>("download").set_hidden(true);
            Card::error("lucy could not start", &e);
            *app.failed.borrow_mut() = Some(e.clone());
            let waiting: Vec<Job> = app.jobs.borrow_mut().drain(..).collect();
            for job in waiting {
                app.refuse(job, &e);
            }
        }
    });
}

/// The model's time on a photo prepared once, `runs` times (for `bench/browser_peers.mjs`:
/// the counterpart of onnxruntime-web's `session.run`). Returns `{ top1, times }`.
pub async fn time_inference(photo: Vec<u8>, runs: u32, explain: bool) -> Result<JsValue, JsError> {
    let model = APP
        .with_borrow(|a| a.as_ref().and_then(|a| a.model.borrow().clone()))
        .ok_or_else(|| JsError::new("the model is not ready"))?;
    let reply = model
        .engine
        .call(
            Request::TimeInference { runs, explain },
            vec![Uint8Array::from(&photo[..])],
            None,
        )
        .await
        .map_err(|e| JsError::new(e.message()))?;
    let Reply::Timed { top1, times_ms } = reply else {
        return Err(JsError::new("unexpected reply"));
    };
    let result = js_sys::Object::new();
    let times: js_sys::Array = times_ms.iter().map(|t| JsValue::from(*t)).collect();
    let _ = js_sys::Reflect::set(&result, &"top1".into(), &(top1 as u32).into());
    let _ = js_sys::Reflect::set(&result, &"times".into(), &times);
    Ok(result.into())
}

impl App {
    /// Manifest, weights (cached), the model in its worker; then the queued work.
    async fn load(self: &Rc<Self>) -> Result<(), String> {
        set_text("status", "Loading the weights manifest…");
        let backend = choose_backend().await;
        // Threads need cross-origin isolation, which a host without COOP/COEP gets from the
        // service worker: on a first visit, once it controls the page (it keeps only the small
        // shell at install), one reload, before anything large downloads — unless the user
        // already gave work the reload would lose.
        if wants_threads(backend) && !offline::isolated() {
            offline::register_service_worker().await;
            if offline::reload_would_isolate()
                && self.jobs.borrow().is_empty()
                && offline::reload_for_isolation()
            {
                set_text("status", "Reloading once, to compute on every core…");
                return Ok(());
            }
        }
        // The model's worker starts once the service worker is ready (its wasm is then kept
        // by it), while the weights download.
        let engine: Rc<RefCell<Option<Result<Engine, String>>>> = Rc::default();
        let engine_started = {
            let engine = engine.clone();
            Promise::new(&mut |resolve, _| {
                let engine = engine.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    offline::register_service_worker().await;
                    *engine.borrow_mut() = Some(Engine::spawn(model_build(backend)));
                    let _ = resolve.call0(&JsValue::NULL);
                });
            })
        };
        let bundle = Rc::new(loading::load_manifest().await?);
        *self.bundle.borrow_mut() = Some(bundle.clone());
        let head_name = heads::first_head(self, &bundle.manifest);
        heads::fill_selector(self, &bundle.manifest);
        let started = dom::now_ms();
        let head_file = bundle.head_file(&head_name)?;
        let backbone_file = bundle
            .manifest
            .backbone_file(crate::weights::Precision::Int8)
            .map_err(|e| e.to_string())?
            .to_string();
        if let Some(entry) = bundle.manifest.files.get(&backbone_file) {
            teach::backbone_known(self, &entry.sha256);
        }
        let mut files = self
            .load_files(&bundle, &[&backbone_file, &head_file])
            .await?;
        let head = Rc::new(files.pop().expect("two files"));
        let backbone = Rc::new(files.pop().expect("two files"));
        let _ = JsFuture::from(engine_started).await;
        let engine = engine
            .borrow_mut()
            .take()
            .expect("set before the promise resolves")?;
        set_text(
            "status",
            &format!("Preparing the model on {}…", backend.describe()),
        );
        let model = self.create_model(engine, backend, backbone, head).await?;
        *self.model.borrow_mut() = Some(model);
        let _ = dom::document()
            .body()
            .map(|b| b.set_attribute("data-ready", "true"));
        photos::model_ready();
        camera::model_ready();
        let mut ready = format!(
            "Ready in {:.1} s. Choose photos, drop them here, paste one, or start the camera.",
            (dom::now_ms() - started) / 1000.0
        );
        if let Some(reason) = bundle.not_cached() {
            ready += &format!(
                " The weights could not be kept for the next visit ({reason}): it will download \
                 them again."
            );
        }
        set_text("status", &ready);
        self.clone().run_jobs();
        Ok(())
    }

    /// Bundle files with the download bar and status.
    async fn load_files(&self, bundle: &Bundle, names: &[&str]) -> Result<Vec<Vec<u8>>, String> {
        let bar: HtmlProgressElement = by_id("download");
        bar.set_hidden(false);
        let files = bundle
            .load_files(names, &|done, total| {
                bar.set_max(total);
                bar.set_value(done);
                set_text(
                    "status",
                    &format!(
                        "Loading weights: {:.1} of {:.1} MB",
                        done / 1e6,
                        total / 1e6
                    ),
                );
            })
            .await;
        bar.set_hidden(true);
        files
    }

    /// The model on `backend` in `engine`'s worker, from verified bytes; if the threaded
    /// model cannot start (shared memory refused, say), the single-threaded one instead.
    async fn create_model(
        &self,
        engine: Engine,
        backend: Backend,
        backbone: Rc<Vec<u8>>,
        head: Rc<Vec<u8>>,
    ) -> Result<Rc<Model>, String> {
        let threaded = engine.is_threaded();
        match self
            .create_model_in(engine, backend, backbone.clone(), head.clone())
            .await
        {
            Err(e) if threaded => {
                web_sys::console::warn_1(
                    &format!("the threaded model failed ({e}); computing on one thread").into(),
                );
                let engine = Engine::spawn(engine::Build::Single)?;
                self.create_model_in(engine, backend, backbone, head).await
            }
            created => created,
        }
    }

    async fn create_model_in(
        &self,
        engine: Engine,
        backend: Backend,
        backbone: Rc<Vec<u8>>,
        head: Rc<Vec<u8>>,
    ) -> Result<Rc<Model>, String> {
        let fail_after = (backend == Backend::WebGpu)
            .then(|| query("fail-webgpu-after").and_then(|n| n.parse().ok()))
            .flatten();
        let activation_max = (query("int8-bits").as_deref() == Some("7")).then_some(127);
        let reply = engine
            .call(
                Request::Create {
                    backend,
                    fail_after,
                    activation_max,
                },
                vec![Uint8Array::from(&backbone[..]), Uint8Array::from(&head[..])],
                engine.is_threaded().then_some(THREADED_TIMEOUT_MS),
            )
            .await
            .map_err(|e| e.message().to_string())?;
        let Reply::Created {
            backend,
            threads,
            int8,
            labels,
        } = reply
        else {
            return Err("unexpected reply from the model".into());
        };
        *self.labels.borrow_mut() = labels;
        let badge: HtmlElement = by_id("backend");
        badge.set_text_content(Some(&backend.badge(threads)));
        let _ = badge.set_attribute("data-backend", backend.key());
        let _ = badge.set_attribute("data-threads", &threads.to_string());
        // Which int8 kernel computes, for the curious (a tooltip) and the tests.
        match int8.filter(|_| backend == Backend::Cpu) {
            Some((kernel, bits)) => {
                let _ = badge.set_attribute("data-kernel", &kernel);
                let _ = badge.set_attribute(
                    "title",
                    &format!("int8 products on {kernel}, activations in {bits} bits"),
                );
            }
            None => {
                let _ = badge.remove_attribute("data-kernel");
                let _ = badge.remove_attribute("title");
            }
        }
        Ok(Rc::new(Model {
            engine,
            backend,
            backbone,
            head: RefCell::new(head),
        }))
    }

    /// The head a CPU fallback rebuilds with.
    fn set_model_head(&self, head: Rc<Vec<u8>>) {
        if let Some(model) = self.model() {
            *model.head.borrow_mut() = head;
        }
    }

    fn model(&self) -> Option<Rc<Model>> {
        self.model.borrow().clone()
    }

    fn enqueue(self: &Rc<Self>, job: Job) {
        self.queue(job, false);
    }

    /// Before everything waiting (a head the page restores must classify the photos queued).
    fn enqueue_first(self: &Rc<Self>, job: Job) {
        self.queue(job, true);
    }

    fn queue(self: &Rc<Self>, job: Job, first: bool) {
        let failed = self.failed.borrow().clone();
        if let Some(reason) = failed {
            return self.refuse(job, &reason);
        }
        if first {
            self.jobs.borrow_mut().push_front(job);
        } else {
            self.jobs.borrow_mut().push_back(job);
        }
        if self.model().is_some() && !self.busy.get() {
            self.clone().run_jobs();
        }
    }

    /// Work that will never run: lucy could not start. Each says so where it was given.
    fn refuse(&self, job: Job, reason: &str) {
        match job {
            Job::Photo { card, .. } | Job::HeadFile { card, .. } => {
                card.fail("Not classified", &format!("lucy could not start: {reason}"))
            }
            Job::Teach(job) => teach::refuse(self, job, reason),
            Job::SelectHead(_) => {}
        }
    }

    /// Work through the queue, in order, one job at a time.
    fn run_jobs(self: Rc<Self>) {
        if self.busy.replace(true) {
            return;
        }
        wasm_bindgen_futures::spawn_local(async move {
            loop {
                let Some(job) = self.jobs.borrow_mut().pop_front() else {
                    break;
                };
                match job {
                    Job::Photo { file, card } => photos::classify(&self, &file, &card).await,
                    Job::HeadFile { file, card } => heads::load_file(&self, &file, &card).await,
                    Job::SelectHead(name) => heads::select(&self, &name).await,
                    Job::Teach(job) => teach::run(&self, job).await,
                }
            }
            self.busy.set(false);
        });
    }

    /// Take the model for one camera frame, if it is free (frames never queue).
    fn try_take_model(&self) -> bool {
        !self.busy.replace(true)
    }

    /// Give the model back after a camera frame; work that arrived meanwhile starts.
    fn give_back_model(self: &Rc<Self>) {
        self.busy.set(false);
        if !self.jobs.borrow().is_empty() {
            self.clone().run_jobs();
        }
    }

    /// Top-K and their maps for a photo or a camera frame.
    async fn classify(
        &self,
        make: &dyn Fn() -> (Request, Vec<Uint8Array>),
    ) -> Result<Answer, CallError> {
        let (reply, bytes, backend) = self.ask(make).await?;
        answer((reply, bytes), backend)
    }

    /// One request to the model (`make` builds it and its payload: again for a retry, since
    /// payloads are transferred), and the backend that answered. A failure that is not the
    /// input's moves the session from WebGPU to the CPU, or from the threaded model to one
    /// thread, then tries once more.
    async fn ask(
        &self,
        make: &dyn Fn() -> (Request, Vec<Uint8Array>),
    ) -> Result<(Reply, Vec<Uint8Array>, Backend), CallError> {
        let model = self
            .model()
            .ok_or_else(|| CallError::Backend("the model is not ready".into()))?;
        let on_gpu = model.backend == Backend::WebGpu;
        let threaded = model.engine.is_threaded();
        let (request, bytes) = make();
        let timeout = if on_gpu {
            Some(WEBGPU_TIMEOUT_MS)
        } else {
            threaded.then_some(THREADED_TIMEOUT_MS)
        };
        match model
            .engine
            .call_with_payload(request, bytes, timeout)
            .await
        {
            Ok((reply, bytes)) => Ok((reply, bytes, model.backend)),
            Err(CallError::Backend(reason)) if on_gpu || threaded => {
                let model = self.fall_back(&model, &reason).await?;
                let (request, bytes) = make();
                let (reply, bytes) = model.engine.call_with_payload(request, bytes, None).await?;
                Ok((reply, bytes, model.backend))
            }
            Err(e) => Err(e),
        }
    }

    /// WebGPU, or the threaded model, failed mid-session (an error, a lost device, a crash,
    /// no answer): drop that worker, rebuild in a fresh one from the verified bytes held — on
    /// the CPU, and on one thread if threads failed — and carry on.
    async fn fall_back(&self, failed: &Rc<Model>, reason: &str) -> Result<Rc<Model>, CallError> {
        if let Some(current) = self.model()
            && !Rc::ptr_eq(&current, failed)
        {
            return Ok(current); // another call already fell back
        }
        failed.engine.terminate();
        let build = if failed.backend == Backend::WebGpu {
            web_sys::console::warn_1(
                &format!("WebGPU failed ({reason}); switching to the CPU backend").into(),
            );
            model_build(Backend::Cpu)
        } else {
            web_sys::console::warn_1(
                &format!("the threaded model failed ({reason}); computing on one thread").into(),
            );
            engine::Build::Single
        };
        let engine = Engine::spawn(build).map_err(CallError::Backend)?;
        let model = self
            .create_model(
                engine,
                Backend::Cpu,
                failed.backbone.clone(),
                failed.head.borrow().clone(),
            )
            .await
            .map_err(CallError::Backend)?;
        *self.model.borrow_mut() = Some(model.clone());
        Ok(model)
    }
}

fn answer((reply, bytes): (Reply, Vec<Uint8Array>), backend: Backend) -> Result<Answer, CallError> {
    let side = crate::preprocess::INPUT_SIDE as u32;
    match reply {
        Reply::Classified { predictions, maps } => {
            let crop = bytes
                .first()
                .and_then(|b| image::RgbImage::from_raw(side, side, b.to_vec()))
                .ok_or_else(|| CallError::Backend("the model sent no crop".into()))?;
            Ok(Answer {
                predictions,
                maps,
                crop,
                backend,
            })
        }
        _ => Err(CallError::Backend("unexpected reply from the model".into())),
    }
}

/// `?name=value` of the page's address.
fn query(name: &str) -> Option<String> {
    let search = dom::window().location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search)
        .ok()?
        .get(name)
}

/// The CPU computes on every core where it can (`?threads=1` keeps one thread, to compare).
fn wants_threads(backend: Backend) -> bool {
    backend == Backend::Cpu && query("threads").as_deref() != Some("1")
}

/// The model wasm for `backend`: the threaded one where it wants threads and the page is
/// cross-origin isolated (with relaxed SIMD where the browser has it, unless `?int8=simd128`),
/// else the single-threaded one.
fn model_build(backend: Backend) -> engine::Build {
    if wants_threads(backend) && offline::isolated() {
        engine::Build::Threaded {
            relaxed_simd: query("int8").as_deref() != Some("simd128"),
        }
    } else {
        engine::Build::Single
    }
}

/// `?backend=cpu|webgpu` when given; else WebGPU when the browser really returns an adapter.
async fn choose_backend() -> Backend {
    match query("backend").as_deref() {
        Some("cpu") => Backend::Cpu,
        Some("webgpu") => Backend::WebGpu,
        _ if webgpu_adapter().await => Backend::WebGpu,
        _ => Backend::Cpu,
    }
}

/// `navigator.gpu.requestAdapter()` is not null (read through `Reflect`: web-sys's WebGPU
/// bindings are unstable APIs, and this one call is all the page needs).
async fn webgpu_adapter() -> bool {
    let navigator = dom::window().navigator();
    let Ok(gpu) = js_sys::Reflect::get(&navigator, &"gpu".into()) else {
        return false;
    };
    if gpu.is_undefined() || gpu.is_null() {
        return false;
    }
    let request = js_sys::Reflect::get(&gpu, &"requestAdapter".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    let Some(promise) = request
        .and_then(|f| f.call0(&gpu).ok())
        .and_then(|p| p.dyn_into::<js_sys::Promise>().ok())
    else {
        return false;
    };
    JsFuture::from(promise)
        .await
        .is_ok_and(|adapter| !adapter.is_null() && !adapter.is_undefined())
}
