//! Loading the weights: the manifest, then each file from the Cache API when it is there and
//! intact, else from the network with progress; every file checked against the manifest (size,
//! then sha256) by the same Rust code as natively before it is used or cached.
//!
//! gloo-net for the requests (typed, async); web-sys for the response's stream (progress as
//! bytes arrive) and the Cache API, which gloo does not cover.

use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Cache, ReadableStreamDefaultReader, Response};

use super::dom::{error_text, window};
use crate::weights::bundle::{MANIFEST_FILE, Manifest};

/// The Cache API store for weights. Keys carry the file's sha256, so a new bundle never reads
/// an old file.
const CACHE_NAME: &str = "lucy-weights-v1";

/// The weights manifest, parsed and checked (format, preprocessing); every file is verified
/// against it.
pub struct Bundle {
    pub manifest: Manifest,
    /// Why files could not be kept for the next visit (storage full or refused), if so.
    not_cached: std::cell::RefCell<Option<String>>,
}

fn file_url(name: &str) -> String {
    let base = super::dom::document()
        .base_uri()
        .ok()
        .flatten()
        .unwrap_or_default();
    web_sys::Url::new_with_base(&format!("weights/{name}"), &base)
        .map(|u| u.href())
        .unwrap_or_else(|_| format!("weights/{name}"))
}

/// The Cache API, when the browser offers it here (not in an insecure context, not when it
/// throws, e.g. storage disabled): without it the page still works, uncached.
async fn open_cache() -> Result<Cache, String> {
    let caches = window().caches().map_err(|e| error_text(&e))?;
    JsFuture::from(caches.open(CACHE_NAME))
        .await
        .map(JsCast::unchecked_into)
        .map_err(|e| error_text(&e))
}

async fn response_bytes(response: &Response) -> Result<Vec<u8>, String> {
    let buffer = response.array_buffer().map_err(|e| error_text(&e))?;
    let buffer = JsFuture::from(buffer).await.map_err(|e| error_text(&e))?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// Keep `bytes` under `key`; a full or failing cache costs only the next visit's download.
async fn store(cache: &Cache, key: &str, bytes: &[u8]) -> Result<(), String> {
    let mut copy = bytes.to_vec();
    let response = Response::new_with_opt_u8_array(Some(&mut copy)).map_err(|e| error_text(&e))?;
    JsFuture::from(cache.put_with_str(key, &response))
        .await
        .map(drop)
        .map_err(|e| {
            let reason = error_text(&e);
            web_sys::console::warn_1(&format!("not cached ({key}): {reason}").into());
            reason
        })
}

/// Remove cached weights the manifest no longer lists (an older bundle's files): they would
/// never be read again (keys carry the sha256), only take the visitor's storage.
async fn prune(cache: &Cache, keep: &[String]) {
    let Ok(requests) = JsFuture::from(cache.keys()).await else {
        return;
    };
    for request in js_sys::Array::from(&requests).iter() {
        let url = Reflect::get(&request, &"url".into())
            .ok()
            .and_then(|u| u.as_string())
            .unwrap_or_default();
        if !keep.contains(&url) {
            let _ = JsFuture::from(cache.delete_with_str(&url)).await;
        }
    }
}

async fn cached(cache: &Cache, key: &str) -> Option<Vec<u8>> {
    let found = JsFuture::from(cache.match_with_str(key)).await.ok()?;
    let response: Response = found.dyn_into().ok()?;
    response_bytes(&response).await.ok()
}

/// The manifest from the network (never a stale HTTP cache), kept for offline visits.
pub async fn load_manifest() -> Result<Bundle, String> {
    let url = file_url(MANIFEST_FILE);
    let cache = open_cache().await.ok();
    let fetched = async {
        let response = gloo_net::http::Request::get(&url)
            .cache(web_sys::RequestCache::NoCache)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.ok() {
            return Err(format!("HTTP {}", response.status()));
        }
        response.binary().await.map_err(|e| e.to_string())
    }
    .await;
    let bytes = match fetched {
        Ok(bytes) => {
            if let Some(cache) = &cache {
                let _ = store(cache, &url, &bytes).await;
            }
            bytes
        }
        // Offline: the manifest of the last visit.
        Err(e) => match &cache {
            Some(cache) => cached(cache, &url).await,
            None => None,
        }
        .ok_or_else(|| {
            format!(
                "the weights manifest could not be loaded ({e}); is weights/{MANIFEST_FILE} \
                 served next to the page?"
            )
        })?,
    };
    let manifest = Manifest::parse(&bytes).map_err(|e| e.to_string())?;
    Ok(Bundle {
        manifest,
        not_cached: Default::default(),
    })
}

impl Bundle {
    /// The file of the head named `name` in the manifest.
    pub fn head_file(&self, name: &str) -> Result<String, String> {
        self.manifest
            .head(name)
            .map(|h| h.file.clone())
            .map_err(|e| e.to_string())
    }

    fn cache_key(&self, name: &str) -> String {
        let sha = self
            .manifest
            .files
            .get(name)
            .map_or("", |f| f.sha256.as_str());
        format!("{}?sha256={sha}", file_url(name))
    }

    /// Why weights could not be kept for the next visit, if they could not.
    pub fn not_cached(&self) -> Option<String> {
        self.not_cached.borrow().clone()
    }

    /// Bytes of bundle files, verified, reporting `progress(bytes so far, total bytes)`.
    pub async fn load_files(
        &self,
        names: &[&str],
        progress: &dyn Fn(f64, f64),
    ) -> Result<Vec<Vec<u8>>, String> {
        let total: f64 = names
            .iter()
            .map(|n| self.manifest.files.get(*n).map_or(0, |f| f.size_bytes) as f64)
            .sum();
        let cache = match open_cache().await {
            Ok(cache) => Some(cache),
            Err(reason) => {
                *self.not_cached.borrow_mut() = Some(reason);
                None
            }
        };
        let mut files = Vec::new();
        let mut done = 0.0;
        for name in names {
            let bytes = self
                .load_file(name, cache.as_ref(), &|n| progress(done + n, total))
                .await?;
            done += bytes.len() as f64;
            files.push(bytes);
        }
        progress(done, total);
        if let Some(cache) = &cache {
            let mut keep: Vec<String> = self
                .manifest
                .files
                .keys()
                .map(|n| self.cache_key(n))
                .collect();
            keep.push(file_url(MANIFEST_FILE));
            prune(cache, &keep).await;
        }
        Ok(files)
    }

    async fn load_file(
        &self,
        name: &str,
        cache: Option<&Cache>,
        progress: &dyn Fn(f64),
    ) -> Result<Vec<u8>, String> {
        let key = self.cache_key(name);
        if let Some(cache) = cache
            && let Some(bytes) = cached(cache, &key).await
        {
            match self.manifest.verify(name, &bytes) {
                Ok(()) => return Ok(bytes),
                Err(e) => {
                    web_sys::console::warn_1(
                        &format!("cached {name} is damaged ({e}); fetching it again").into(),
                    );
                    let _ = JsFuture::from(cache.delete_with_str(&key)).await;
                }
            }
        }
        let bytes = download(&file_url(name), progress).await?;
        self.manifest
            .verify(name, &bytes)
            .map_err(|e| e.to_string())?;
        if let Some(cache) = cache
            && let Err(reason) = store(cache, &key, &bytes).await
        {
            *self.not_cached.borrow_mut() = Some(reason);
        }
        Ok(bytes)
    }
}

/// GET `url`, reading the body as it arrives to report progress in bytes.
async fn download(url: &str, progress: &dyn Fn(f64)) -> Result<Vec<u8>, String> {
    let response = gloo_net::http::Request::get(url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !response.ok() {
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    let Some(body) = response.body() else {
        return response.binary().await.map_err(|e| e.to_string());
    };
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut bytes = Vec::new();
    loop {
        let chunk = JsFuture::from(reader.read())
            .await
            .map_err(|e| format!("{url}: {}", error_text(&e)))?;
        if Reflect::get(&chunk, &"done".into()).is_ok_and(|d| d.is_truthy()) {
            break;
        }
        let value: JsValue = Reflect::get(&chunk, &"value".into()).unwrap_or(JsValue::UNDEFINED);
        bytes.extend(Uint8Array::new(&value).to_vec());
        progress(bytes.len() as f64);
    }
    Ok(bytes)
}
