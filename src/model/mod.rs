//! The network: a frozen ResNet50 v1 backbone (photo → 2048 features) and a small classifier
//! head (features → class probabilities), loaded separately so any head fits the one backbone.
//! No platform code here: the same modules run natively, in training and in the browser.

mod head;
mod resnet;

pub use head::Head;
pub use resnet::{ConvSpec, FEATURES, ResNet50, conv_specs};

use std::collections::HashMap;

/// Named f32 tensors (shape, values in row-major order) from which modules are built.
pub type NamedTensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("the weights have no tensor `{0}`")]
    Missing(String),
    #[error("tensor `{name}` has shape {got:?}, the model needs {expected:?}")]
    Shape {
        name: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    #[error("the weights hold tensors the model does not use: {0}")]
    Unused(String),
    #[error("the head has no classes")]
    NoClasses,
    #[error(
        "the head has {weights} outputs but {labels} labels; a head file needs one label per output"
    )]
    LabelCount { weights: usize, labels: usize },
}

/// Take the tensor `name` out of `tensors`, checking its shape.
pub(crate) fn take(
    tensors: &mut NamedTensors,
    name: &str,
    expected: &[usize],
) -> Result<Vec<f32>, ModelError> {
    let (shape, values) = tensors
        .remove(name)
        .ok_or_else(|| ModelError::Missing(name.to_string()))?;
    if shape != expected {
        return Err(ModelError::Shape {
            name: name.to_string(),
            expected: expected.to_vec(),
            got: shape,
        });
    }
    Ok(values)
}

/// Fail when tensors are left over: a bundle with extra tensors is not the model we think.
pub(crate) fn ensure_all_used(tensors: &NamedTensors) -> Result<(), ModelError> {
    if tensors.is_empty() {
        return Ok(());
    }
    let mut names: Vec<&str> = tensors.keys().map(String::as_str).collect();
    names.sort_unstable();
    Err(ModelError::Unused(names.join(", ")))
}
