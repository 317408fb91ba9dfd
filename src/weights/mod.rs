//! Weights become a bundle (natively, once), and a bundle becomes modules (anywhere):
//!
//! npm tarball → [`tfjs`] (model.json + shards → Keras-named f32 tensors) → [`fold`] (batch-norm
//! into conv, HWIO → OIHW) → `model::quant` (int8 per output channel) → [`bundle`] (safetensors files
//! + `manifest.json` with sizes and sha256) → verified, dequantized → `model`.

pub mod bundle;
#[cfg(not(target_arch = "wasm32"))]
pub mod dir;
pub mod fold;
#[cfg(not(target_arch = "wasm32"))]
pub mod import;
pub mod tfjs;

pub use bundle::{HeadEntry, Manifest, Precision, WeightsError};
