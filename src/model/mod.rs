//! The network: a frozen ResNet50 v1 backbone (photo → 2048 features) and a small classifier
//! head (features → class probabilities), loaded separately so any head fits the one backbone.
//! No platform code here: the same modules run natively, in training and in the browser.

mod cpu;
mod head;
pub mod quant;
mod resnet;

#[cfg(not(target_arch = "wasm32"))]
pub use cpu::on_one_thread;
pub use cpu::{
    Arithmetic, CpuResNet50, Int8Kernel, LayerTime, head_probabilities, threads as cpu_threads,
};
pub use head::{Head, HeadWeights};
pub use resnet::{ConvSpec, FEATURES, ResNet50, conv_specs, global_average};

/// The side of the last convolutional maps (224 / 32): what a class activation map covers.
pub const MAP_SIDE: usize = 7;

use std::collections::HashMap;

use burn::prelude::*;

/// The backbone in the form that is fastest on its device: lucy's own [`CpuResNet50`] on
/// burn's CPU device (flex), natively and in the browser; burn's [`ResNet50`] module on every
/// other device (WebGPU in the browser, wgpu natively).
#[derive(Debug)]
pub enum Backbone {
    Cpu(CpuResNet50),
    Burn(Box<ResNet50>),
}

impl Backbone {
    /// Build from folded weights (see [`ResNet50::from_tensors`]) for `device`. `arithmetic`
    /// applies on the CPU; other devices compute in f32.
    pub fn from_tensors(
        tensors: NamedTensors,
        device: &Device,
        arithmetic: Arithmetic,
    ) -> Result<Self, ModelError> {
        if *device == Device::flex() {
            Ok(Self::Cpu(CpuResNet50::from_tensors(tensors, arithmetic)?))
        } else {
            Ok(Self::Burn(Box::new(ResNet50::from_tensors(
                tensors, device,
            )?)))
        }
    }

    /// Photos `[N, 3, 224, 224]` → the last convolutional maps `[N, 2048, 7, 7]` (before
    /// pooling) and the features `[N, 2048]` pooled from them. Plain classification uses
    /// [`Self::forward`], which never materialises the maps as a tensor.
    pub fn forward_maps(&self, input: Tensor<4>) -> (Tensor<4>, Tensor<2>) {
        match self {
            Self::Burn(model) => {
                let maps = model.forward_maps(input);
                (maps.clone(), global_average(maps))
            }
            Self::Cpu(model) => {
                let [n, _, side, _] = input.dims();
                let device = input.device();
                let planar = input.into_data().try_to_vec::<f32>().expect("f32 photos");
                let (features, maps) = model.forward_maps(&planar, n, side);
                let maps = Tensor::<4>::from_data(
                    TensorData::new(maps, [n, MAP_SIDE, MAP_SIDE, FEATURES]),
                    &device,
                )
                .permute([0, 3, 1, 2]);
                let features = Tensor::from_data(TensorData::new(features, [n, FEATURES]), &device);
                (maps, features)
            }
        }
    }

    /// Photos `[N, 3, 224, 224]` → features `[N, 2048]`, on the photos' device.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        match self {
            Self::Burn(model) => model.forward(input),
            Self::Cpu(model) => {
                let [n, _, side, _] = input.dims();
                let device = input.device();
                let planar = input.into_data().try_to_vec::<f32>().expect("f32 photos");
                let features = model.forward(&planar, n, side);
                Tensor::from_data(TensorData::new(features, [n, FEATURES]), &device)
            }
        }
    }
}

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
    #[error(
        "tensor `{name}` holds a value that is not a finite number ({value} at index {index}): \
         the file was made wrong or damaged"
    )]
    NotFinite {
        name: String,
        index: usize,
        value: f32,
    },
}

/// Take the tensor `name` out of `tensors`, checking its shape and that every value is finite
/// (one NaN weight would turn every answer into NaN).
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
    if let Some(index) = values.iter().position(|v| !v.is_finite()) {
        return Err(ModelError::NotFinite {
            name: name.to_string(),
            index,
            value: values[index],
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
