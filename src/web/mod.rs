//! The browser binding (wasm32 only): a small `Lucy` object for the page's script. The page
//! does I/O and the DOM (fetch, Cache API, camera, rendering); Rust does everything that must
//! match native: verifying weights against the manifest, decoding and preprocessing photos
//! (the RGBA entry point for camera frames), the model, and top-K.

use burn::prelude::*;
use wasm_bindgen::prelude::*;

use crate::classifier::{Classifier, top_k};
use crate::preprocess::{Input, preprocess_bytes, preprocess_rgba};
use crate::weights::bundle::{Manifest, decode_head, load_backbone};

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// Check a bundle file against the manifest (size, then sha256) before it is used or cached.
#[wasm_bindgen]
pub fn verify(manifest_json: &[u8], file: &str, bytes: &[u8]) -> Result<(), JsError> {
    Manifest::parse(manifest_json)?.verify(file, bytes)?;
    Ok(())
}

/// A photo decoded and preprocessed, ready for the model. Preparing is separate from
/// classifying so that a bad photo and a failing backend are different errors.
#[wasm_bindgen]
pub struct Prepared(Input);

/// Photo bytes, decoded in Rust with the same limits and EXIF handling as natively.
#[wasm_bindgen]
pub fn prepare_bytes(bytes: &[u8]) -> Result<Prepared, JsError> {
    Ok(Prepared(preprocess_bytes(bytes)?))
}

/// RGBA pixels from a canvas (camera frames): the same preprocessing after decoding.
#[wasm_bindgen]
pub fn prepare_rgba(rgba: &[u8], width: u32, height: u32) -> Result<Prepared, JsError> {
    Ok(Prepared(preprocess_rgba(rgba, width, height)?))
}

#[wasm_bindgen]
pub struct Lucy {
    classifier: Classifier,
    backend: String,
}

#[wasm_bindgen]
impl Lucy {
    /// Build the classifier on `backend` ("webgpu" or "cpu"). WebGPU that fails to start falls
    /// back to the CPU; `backend()` tells which one runs. The files must be verified first.
    pub async fn create(backbone: &[u8], head: &[u8], backend: &str) -> Result<Lucy, JsError> {
        let (device, backend) = match backend {
            "webgpu" => match Device::wgpu_options().init_async().await {
                Ok(device) => (device, "webgpu".to_string()),
                Err(e) => {
                    web_sys::console::warn_1(
                        &format!("WebGPU unavailable ({e}); using the CPU").into(),
                    );
                    (Device::flex(), "cpu".to_string())
                }
            },
            _ => (Device::flex(), "cpu".to_string()),
        };
        let backbone = load_backbone("backbone", backbone, &device)?;
        let classifier = Classifier::new(backbone, decode_head("head", head)?, &device)?;
        Ok(Lucy {
            classifier,
            backend,
        })
    }

    /// "webgpu" or "cpu".
    pub fn backend(&self) -> String {
        self.backend.clone()
    }

    pub fn labels(&self) -> Vec<String> {
        self.classifier.labels().to_vec()
    }

    /// Swap the head (from the manifest, verified, or a file from disk). A head that does not
    /// fit the backbone is an error and the current head stays.
    pub fn set_head(&mut self, file: &str, bytes: &[u8]) -> Result<(), JsError> {
        self.classifier.set_head(decode_head(file, bytes)?)?;
        Ok(())
    }

    /// Top-K predictions for a prepared photo, as JSON. Errors here come from the backend
    /// (the photo was fine), which is how the page knows to fall back to the CPU.
    pub async fn classify(&self, input: &Prepared, top: usize) -> Result<String, JsError> {
        // Only the probabilities come back from the GPU, asynchronously (a blocking read
        // would panic on WebGPU).
        let data = self
            .classifier
            .probabilities(std::slice::from_ref(&input.0))
            .into_data_async()
            .await
            .map_err(|e| JsError::new(&format!("reading the result failed: {e:?}")))?;
        let probabilities = data
            .as_slice::<f32>()
            .map_err(|e| JsError::new(&format!("unexpected result type: {e:?}")))?;
        let predictions = top_k(probabilities, self.classifier.labels(), top);
        Ok(serde_json::to_string(&predictions)?)
    }
}
