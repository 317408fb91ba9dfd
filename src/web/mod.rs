//! The browser (wasm32 only). Trunk builds two wasm artefacts from this crate (index.html), and
//! its hook the threaded model's two:
//!
//! - `lucy-page` (feature `page`, [`ui`]): the page itself — DOM, inputs, loading and caching
//!   the weights, the camera, results. No model code is linked into it.
//! - `lucy-model` (feature `model`, [`worker`]): the classifier in a Web Worker, loaded and
//!   compiled once, there only.
//! - `lucy-model-threads` and `lucy-model-threads-relaxed` (feature `threads`, [`worker`]
//!   without WebGPU): the same worker computing on the CPU with a thread per core, for pages
//!   that are cross-origin isolated, with int8 on SIMD128 or on relaxed SIMD. Built with
//!   shared memory by scripts/build_threads (nightly, `-Z build-std`).
//!
//! They talk through [`protocol`]. Everything that must match native (verifying weights,
//! decoding and preprocessing photos, the model, top-K) is the core's Rust, shared as is.

pub mod protocol;
#[cfg(feature = "page")]
pub mod ui;
#[cfg(feature = "worker")]
pub mod worker;
