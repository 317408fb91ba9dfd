//! Offline use: `sw.js` keeps the app shell (both wasm modules included); the weights are in
//! the Cache API ([`super::loading`]).

use js_sys::{Promise, Reflect};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{ServiceWorker, ServiceWorkerRegistration, ServiceWorkerState};

use super::dom::{error_text, window};

/// Register `sw.js` and wait until it is active (or has failed): the model's worker starts
/// after it, so its 30 MB wasm comes from the shell the service worker keeps instead of a
/// second download. Without service workers (an insecure context), at once.
pub async fn register_service_worker() {
    let navigator = window().navigator();
    if !Reflect::has(&navigator, &"serviceWorker".into()).unwrap_or(false) {
        return; // the page works, online only
    }
    let registration = match JsFuture::from(navigator.service_worker().register("sw.js")).await {
        Ok(r) => r.unchecked_into::<ServiceWorkerRegistration>(),
        Err(e) => {
            web_sys::console::warn_1(&format!("no offline support: {}", error_text(&e)).into());
            return;
        }
    };
    if registration.active().is_some() {
        return;
    }
    if let Some(worker) = registration.installing().or_else(|| registration.waiting()) {
        settled(&worker).await;
    }
}

/// Until `worker` is activated or redundant (its install failed): a service worker always
/// ends in one of the two.
async fn settled(worker: &ServiceWorker) {
    let done = |w: &ServiceWorker| {
        matches!(
            w.state(),
            ServiceWorkerState::Activated | ServiceWorkerState::Redundant
        )
    };
    while !done(worker) {
        let changed = Promise::new(&mut |resolve, _| {
            worker.set_onstatechange(Some(&resolve));
        });
        let _ = JsFuture::from(changed).await;
    }
    worker.set_onstatechange(None);
}
