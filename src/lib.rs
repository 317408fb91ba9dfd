//! lucy: a frozen ImageNet ResNet50 (Keras weights, int8 bundle) plus small trained heads,
//! classifying photos natively and in the browser with burn.
//!
//! Two flows (see README, "Architecture"):
//! - a photo becomes an answer: [`preprocess`] → [`model::Backbone`] → [`model::Head`] →
//!   [`classifier::top_k`];
//! - weights become a bundle: [`weights`] (import, fold, quantize, bundle, verify).
//!
//! Modules depend one way: `preprocess`, `model` ← `weights`, `explain` ← `classifier` ←
//! `train` ← `cli` / `web`. Platform code lives at the edges: `cli` (feature `cli`) and `train`
//! (feature `train`) are native only, `web` is wasm only.

pub mod classifier;
pub mod explain;
pub mod fit;
pub mod model;
pub mod preprocess;
pub mod weights;

#[cfg(all(feature = "cli", not(target_arch = "wasm32")))]
pub mod cli;
#[cfg(all(feature = "train", not(target_arch = "wasm32")))]
pub mod train;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use classifier::{Classifier, Prediction};
pub use weights::{Manifest, Precision};
