//! Fit the head on cached features: optional dropout + Linear(2048 → classes), softmax
//! cross-entropy (class-weighted when asked), Adam with weight decay, keeping the best
//! validation epoch. Everything random flows from one seed.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::Serialize;

use super::progress::Progress;
use crate::model::FEATURES;

#[derive(Debug, Clone, Serialize)]
pub struct FitConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f32,
    pub dropout: f64,
    pub class_weights: bool,
    /// Stop after this many epochs without a better validation score.
    pub patience: Option<usize>,
    pub seed: u64,
}

/// Features (each 2048 long) and their class indices.
pub struct Split<'a> {
    pub features: &'a [&'a [f32]],
    pub labels: &'a [usize],
}

#[derive(Debug, Clone, Serialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
}

/// The best head found: `weight` is [2048, classes] row-major (Keras / burn Linear layout).
pub struct Fitted {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub history: Vec<EpochMetrics>,
    pub best_epoch: usize,
    pub stopped_early: bool,
}

#[derive(Module, Debug)]
struct TrainableHead {
    dropout: Dropout,
    linear: Linear,
}

pub fn fit(
    train: &Split,
    val: &Split,
    classes: usize,
    config: &FitConfig,
    device: &Device,
    progress: &dyn Progress,
) -> Fitted {
    let device = device.clone().autodiff();
    device.seed(config.seed);
    let mut model = TrainableHead {
        dropout: DropoutConfig::new(config.dropout).init(),
        linear: LinearConfig::new(FEATURES, classes).init(&device),
    };
    let weights = config
        .class_weights
        .then(|| balanced_class_weights(train.labels, classes));
    let loss = CrossEntropyLossConfig::new()
        .with_weights(weights)
        .init(&device);
    let mut optimizer = AdamConfig::new()
        .with_weight_decay(Some(WeightDecayConfig::new(config.weight_decay)))
        .init();

    let n = train.labels.len();
    let flat: Vec<f32> = train
        .features
        .iter()
        .flat_map(|f| f.iter().copied())
        .collect();
    let x_all = Tensor::<2>::from_data(TensorData::new(flat, [n, FEATURES]), &device);
    let labels: Vec<i64> = train.labels.iter().map(|&c| c as i64).collect();
    let y_all = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &device);

    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut history = Vec::new();
    let mut best: Option<(usize, f64, f64, Vec<f32>, Vec<f32>)> = None;
    let mut stopped_early = false;
    for epoch in 1..=config.epochs {
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        for batch in order.chunks(config.batch_size.max(1)) {
            let index: Vec<i64> = batch.iter().map(|&i| i as i64).collect();
            let index = Tensor::<1, Int>::from_data(TensorData::new(index, [batch.len()]), &device);
            let x = x_all.clone().select(0, index.clone());
            let y = y_all.clone().select(0, index);
            let logits = model.linear.forward(model.dropout.forward(x));
            let grads = GradientsParams::from_grads(loss.forward(logits, y).backward(), &model);
            model = optimizer.step(config.learning_rate, model, grads);
        }

        let weight = read(model.linear.weight.val().into_data());
        let bias = read(model.linear.bias.as_ref().expect("bias").val().into_data());
        let (train_loss, train_accuracy) = evaluate(&weight, &bias, train);
        let (val_loss, val_accuracy) = evaluate(&weight, &bias, val);
        history.push(EpochMetrics {
            epoch,
            train_loss,
            train_accuracy,
            val_loss,
            val_accuracy,
        });
        progress.step(Some(format!(
            "val accuracy {val_accuracy:.3}, val loss {val_loss:.3}"
        )));

        // Best = highest validation accuracy, then lowest validation loss.
        let better = best.as_ref().is_none_or(|(_, acc, loss, ..)| {
            val_accuracy > *acc || (val_accuracy == *acc && val_loss < *loss)
        });
        if better {
            best = Some((epoch, val_accuracy, val_loss, weight, bias));
        } else if let (Some(patience), Some((best_epoch, ..))) = (config.patience, &best) {
            if epoch - best_epoch >= patience {
                stopped_early = epoch < config.epochs;
                break;
            }
        }
    }
    let (best_epoch, _, _, weight, bias) = best.expect("at least one epoch");
    Fitted {
        weight,
        bias,
        history,
        best_epoch,
        stopped_early,
    }
}

/// Weights n / (classes · n_c): each class counts as much as the others in the loss.
pub fn balanced_class_weights(labels: &[usize], classes: usize) -> Vec<f32> {
    let mut counts = vec![0usize; classes];
    for &c in labels {
        counts[c] += 1;
    }
    counts
        .iter()
        .map(|&count| labels.len() as f32 / (classes as f32 * count.max(1) as f32))
        .collect()
}

/// Probabilities of one head on features (plain Rust: tiny, and identical on every device).
pub fn head_probabilities(weight: &[f32], bias: &[f32], features: &[f32]) -> Vec<f64> {
    let classes = bias.len();
    let mut logits: Vec<f64> = bias.iter().map(|&b| b as f64).collect();
    for (i, &x) in features.iter().enumerate() {
        let row = &weight[i * classes..(i + 1) * classes];
        for (logit, &w) in logits.iter_mut().zip(row) {
            *logit += x as f64 * w as f64;
        }
    }
    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// Mean cross-entropy and accuracy (unweighted: what a user sees).
fn evaluate(weight: &[f32], bias: &[f32], split: &Split) -> (f64, f64) {
    if split.labels.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut loss = 0.0;
    let mut correct = 0;
    for (features, &label) in split.features.iter().zip(split.labels) {
        let p = head_probabilities(weight, bias, features);
        loss -= p[label].max(1e-12).ln();
        correct += usize::from(argmax(&p) == label);
    }
    let n = split.labels.len() as f64;
    (loss / n, correct as f64 / n)
}

pub fn argmax(values: &[f64]) -> usize {
    (0..values.len())
        .max_by(|&a, &b| values[a].total_cmp(&values[b]).then(b.cmp(&a)))
        .unwrap_or(0)
}

fn read(data: TensorData) -> Vec<f32> {
    data.as_slice::<f32>().expect("f32 parameters").to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::progress::Silent;

    #[test]
    fn class_weights_balance_the_classes() {
        let w = balanced_class_weights(&[0, 0, 0, 1], 2);
        assert_eq!(w, [4.0 / 6.0, 2.0]);
        assert!((w[0] * 3.0 - w[1] * 1.0).abs() < 1e-6);
    }

    #[test]
    fn fits_separable_features_reproducibly() {
        // Two classes, told apart by feature 0.
        let rows: Vec<Vec<f32>> = (0..40)
            .map(|i| {
                let mut f = vec![0.01 * (i % 7) as f32; FEATURES];
                f[0] = if i % 2 == 0 { 1.0 } else { -1.0 };
                f
            })
            .collect();
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let labels: Vec<usize> = (0..40).map(|i| i % 2).collect();
        let split = Split {
            features: &refs,
            labels: &labels,
        };
        let config = FitConfig {
            epochs: 5,
            batch_size: 8,
            learning_rate: 0.05,
            weight_decay: 1e-4,
            dropout: 0.2,
            class_weights: true,
            patience: None,
            seed: 3,
        };
        let device = Device::flex();
        let run = || fit(&split, &split, 2, &config, &device, &Silent);
        let (a, b) = (run(), run());
        assert_eq!(a.history.last().unwrap().val_accuracy, 1.0);
        assert_eq!(a.weight, b.weight, "same seed, same head");
        assert_eq!(a.bias, b.bias);
    }
}
