//! The classifier head: Linear(2048 → N) then softmax. ImageNet's fc1000 is one; `lucy train`
//! makes others.

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::softmax;

use super::{FEATURES, ModelError, NamedTensors, ensure_all_used, take};

/// A head's weights as plain values, shapes checked: what [`Head`] is built from, and what
/// training and evaluation compute with directly.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadWeights {
    /// `[2048, classes]`, row-major (Keras layout: features × classes).
    pub weight: Vec<f32>,
    /// `[classes]`.
    pub bias: Vec<f32>,
    pub classes: usize,
}

impl HeadWeights {
    /// From `weight` [2048, N] and `bias` [N], nothing else.
    pub fn from_tensors(mut tensors: NamedTensors) -> Result<Self, ModelError> {
        let classes = tensors
            .get("weight")
            .map(|(shape, _)| shape.get(1).copied().unwrap_or(0))
            .ok_or_else(|| ModelError::Missing("weight".into()))?;
        if classes == 0 {
            return Err(ModelError::NoClasses);
        }
        let weight = take(&mut tensors, "weight", &[FEATURES, classes])?;
        let bias = take(&mut tensors, "bias", &[classes])?;
        ensure_all_used(&tensors)?;
        Ok(Self {
            weight,
            bias,
            classes,
        })
    }
}

#[derive(Module, Debug)]
pub struct Head {
    pub linear: Linear,
}

impl Head {
    pub fn new(weights: HeadWeights, device: &Device) -> Self {
        let HeadWeights {
            weight,
            bias,
            classes,
        } = weights;
        Self {
            linear: Linear {
                weight: Param::from_tensor(Tensor::from_data(
                    TensorData::new(weight, [FEATURES, classes]),
                    device,
                )),
                bias: Some(Param::from_tensor(Tensor::from_data(
                    TensorData::new(bias, [classes]),
                    device,
                ))),
            },
        }
    }

    pub fn classes(&self) -> usize {
        self.linear.weight.dims()[1]
    }

    /// Class scores before softmax (what training optimises).
    pub fn logits(&self, features: Tensor<2>) -> Tensor<2> {
        self.linear.forward(features)
    }

    /// Class probabilities, each row summing to 1.
    pub fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        softmax(self.logits(features), 1)
    }
}
