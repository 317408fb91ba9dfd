//! Backbone + head + labels: preprocessed photos in, top-K labelled probabilities out.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::explain::{ClassMap, class_map, normalise};
use crate::model::{Backbone, Head, HeadWeights, head_probabilities};
use crate::preprocess::{INPUT_SIDE, Input};
use crate::weights::bundle::{HeadFile, WeightsError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub index: usize,
    pub label: String,
    pub probability: f32,
}

#[derive(Debug)]
pub struct Classifier {
    backbone: Backbone,
    head: Head,
    /// The head's weights as plain values too: class activation maps are made from them.
    head_weights: HeadWeights,
    labels: Vec<String>,
    device: Device,
}

impl Classifier {
    pub fn new(backbone: Backbone, head: HeadFile, device: &Device) -> Result<Self, WeightsError> {
        let (head, head_weights, labels) = build_head(head, device)?;
        Ok(Self {
            backbone,
            head,
            head_weights,
            labels,
            device: device.clone(),
        })
    }

    /// The int8 kernel the backbone computes with, and its largest quantized activation (on
    /// the CPU in int8 arithmetic; `None` otherwise).
    pub fn int8_kernel(&self) -> Option<(crate::model::Int8Kernel, u8)> {
        match &self.backbone {
            Backbone::Cpu(cpu) => cpu.int8_kernel().zip(cpu.activation_max()),
            Backbone::Burn(_) => None,
        }
    }

    /// Quantize the int8 backbone's activations to at most `max` (see
    /// [`crate::model::CpuResNet50::set_activation_max`]).
    pub fn set_activation_max(&mut self, max: u8) -> Result<(), String> {
        match &mut self.backbone {
            Backbone::Cpu(cpu) => cpu.set_activation_max(max),
            Backbone::Burn(_) => Err("the backbone is not on the CPU".into()),
        }
    }

    /// Swap the head, keeping the backbone.
    pub fn set_head(&mut self, head: HeadFile) -> Result<(), WeightsError> {
        (self.head, self.head_weights, self.labels) = build_head(head, &self.device)?;
        Ok(())
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The pooled 2048 features, `[N, 2048]`.
    pub fn features(&self, inputs: &[Input]) -> Tensor<2> {
        self.backbone.forward(input_batch(inputs, &self.device))
    }

    /// Class probabilities, `[N, classes]`.
    pub fn probabilities(&self, inputs: &[Input]) -> Tensor<2> {
        let Backbone::Cpu(cpu) = &self.backbone else {
            return self.head.forward(self.features(inputs));
        };
        // On the CPU, photos to probabilities without burn tensors in between.
        let planar: std::borrow::Cow<[f32]> = match inputs {
            [one] => one.chw.as_slice().into(),
            _ => inputs.iter().flat_map(|i| i.chw.iter().copied()).collect(),
        };
        let features = cpu.forward(&planar, inputs.len(), INPUT_SIDE);
        let probabilities = head_probabilities(&self.head_weights, &features);
        let shape = [inputs.len(), self.head_weights.classes];
        Tensor::from_data(TensorData::new(probabilities, shape), &self.device)
    }

    /// Class probabilities `[N, classes]` and the last convolutional maps `[N, 2048, 7, 7]`
    /// they were pooled from (read back asynchronously on WebGPU; see [`Self::explain`]).
    pub fn probabilities_and_maps(&self, inputs: &[Input]) -> (Tensor<2>, Tensor<4>) {
        let (maps, features) = self
            .backbone
            .forward_maps(input_batch(inputs, &self.device));
        (self.head.forward(features), maps)
    }

    /// Top-`k` predictions for one photo and the map of each, plus the map of `also` if
    /// given, from its probabilities and its maps (`[2048, 7, 7]`), as read back from
    /// [`Self::probabilities_and_maps`] (synchronously by [`Self::explain`], asynchronously
    /// by the browser's worker).
    pub fn explanation(
        &self,
        probabilities: &[f32],
        maps: &[f32],
        k: usize,
        also: Option<usize>,
    ) -> (Vec<Prediction>, Vec<ClassMap>) {
        let predictions = top_k(probabilities, &self.labels, k);
        let mut classes: Vec<usize> = predictions.iter().map(|p| p.index).collect();
        if let Some(extra) = also.filter(|c| !classes.contains(c)) {
            classes.push(extra);
        }
        let maps = classes
            .iter()
            .map(|&index| ClassMap {
                index,
                label: self.labels[index].clone(),
                probability: probabilities[index],
                grid: normalise(&class_map(maps, &self.head_weights, index)),
            })
            .collect();
        (predictions, maps)
    }

    /// Top-`k` predictions for one photo and the map of each (natively and on the CPU; the
    /// browser's WebGPU path reads back asynchronously), plus the map of `also` if given.
    pub fn explain(
        &self,
        input: &Input,
        k: usize,
        also: Option<usize>,
    ) -> (Vec<Prediction>, Vec<ClassMap>) {
        let (probabilities, maps) = self.probabilities_and_maps(std::slice::from_ref(input));
        let probabilities = probabilities
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 probabilities");
        let maps = maps.into_data().try_to_vec::<f32>().expect("f32 maps");
        self.explanation(&probabilities, &maps, k, also)
    }

    /// Top `k` predictions for each input (reads the result back synchronously: native and
    /// CPU backends; the browser's WebGPU path reads asynchronously).
    pub fn classify(&self, inputs: &[Input], k: usize) -> Vec<Vec<Prediction>> {
        let probabilities = self.probabilities(inputs).into_data();
        let values = probabilities.as_slice::<f32>().expect("f32 probabilities");
        values
            .chunks(self.labels.len())
            .map(|row| top_k(row, &self.labels, k))
            .collect()
    }
}

/// A head file as a burn module, its plain weights and its labels.
fn build_head(
    head: HeadFile,
    device: &Device,
) -> Result<(Head, HeadWeights, Vec<String>), WeightsError> {
    let (weights, labels) = head.into_weights()?;
    Ok((Head::new(weights.clone(), device), weights, labels))
}

/// Stack preprocessed photos into a `[N, 3, 224, 224]` batch.
pub fn input_batch(inputs: &[Input], device: &Device) -> Tensor<4> {
    let data: Vec<f32> = inputs.iter().flat_map(|i| i.chw.iter().copied()).collect();
    Tensor::from_data(
        TensorData::new(data, [inputs.len(), 3, INPUT_SIDE, INPUT_SIDE]),
        device,
    )
}

/// The `k` most probable classes, most probable first.
pub fn top_k(probabilities: &[f32], labels: &[String], k: usize) -> Vec<Prediction> {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
    order
        .into_iter()
        .take(k)
        .map(|index| Prediction {
            index,
            label: labels
                .get(index)
                .cloned()
                .unwrap_or_else(|| index.to_string()),
            probability: probabilities[index],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_probability() {
        let labels: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let top = top_k(&[0.2, 0.5, 0.3], &labels, 2);
        assert_eq!(top.iter().map(|p| p.index).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(top[0].label, "b");
    }
}
