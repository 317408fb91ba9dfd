//! Offline use: `sw.js` keeps the app shell (the page's wasm, and the model wasm this browser
//! runs, once fetched); the weights are in the Cache API ([`super::loading`]). Cross-origin
//! isolation: `sw.js` adds COOP/COEP, and a first visit reloads once to get them.

use js_sys::{Promise, Reflect};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{ServiceWorker, ServiceWorkerRegistration, ServiceWorkerState};

use super::dom::{error_text, window};

/// Register `sw.js` and wait until it is active (or has failed): the model's worker starts
/// after it, so the service worker keeps the model wasm as the worker fetches it. Without
/// service workers (an insecure context), at once.
pub async fn register_service_worker() {
    let navigator = window().navigator();
    if !Reflect::has(&navigator, &"serviceWorker".into()).unwrap_or(false) {
        return; // the page works, online only
    }
    let registration = match JsFuture::from(navigator.service_worker().register("sw.js")).await {
        Ok(r) => match r.dyn_into::<ServiceWorkerRegistration>() {
            Ok(r) => r,
            // Not a registration (a test harness blocking service workers answers `undefined`).
            Err(other) => {
                let text = format!("no offline support: registering gave {other:?}");
                web_sys::console::warn_1(&text.into());
                return;
            }
        },
        Err(e) => {
            web_sys::console::warn_1(&format!("no offline support: {}", error_text(&e)).into());
            return;
        }
    };
    // A first install, or a new version's (it takes over at once: `skipWaiting`, `claim`):
    // the model's worker then fetches through the version that adds COOP/COEP and keeps its
    // wasm, and a reload for isolation is served by it.
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

/// The page is cross-origin isolated: shared memory, hence the threaded model, is allowed.
/// `scripts/serve` sends COOP/COEP itself; on any other host `sw.js` adds them to what it serves.
pub fn isolated() -> bool {
    Reflect::get(&window(), &"crossOriginIsolated".into())
        .ok()
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// The session-storage key that marks the one reload tried for isolation in this tab.
const RELOADED_FOR_ISOLATION: &str = "lucy-reloaded-for-isolation";

/// This page is not isolated but `sw.js` now controls it (a first visit to a host that sends
/// no COOP/COEP): a reload would come back isolated, through the service worker. Tried once
/// per tab, so a browser or host that refuses isolation never loops.
pub fn reload_would_isolate() -> bool {
    let window = window();
    let controlled = Reflect::has(&window.navigator(), &"serviceWorker".into()).unwrap_or(false)
        && window.navigator().service_worker().controller().is_some();
    let tried = window
        .session_storage()
        .ok()
        .flatten()
        .and_then(|s| s.get_item(RELOADED_FOR_ISOLATION).ok().flatten())
        .is_some();
    !isolated() && controlled && !tried
}

/// Reload once for isolation (see [`reload_would_isolate`]): `false`, and no reload, where
/// the tab cannot remember that it tried (no session storage), which could loop.
pub fn reload_for_isolation() -> bool {
    let window = window();
    let Ok(Some(storage)) = window.session_storage() else {
        return false;
    };
    let remembered = storage.set_item(RELOADED_FOR_ISOLATION, "1").is_ok()
        && storage
            .get_item(RELOADED_FOR_ISOLATION)
            .ok()
            .flatten()
            .is_some();
    remembered && window.location().reload().is_ok()
}
