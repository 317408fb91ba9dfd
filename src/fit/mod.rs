//! Fitting a head on backbone features — one implementation for `lucy train` (native) and the
//! page's "Teach lucy" (the model's worker, wasm): optional dropout + Linear(2048 → classes),
//! softmax cross-entropy (class-weighted when asked), Adam with L2 weight decay, early stopping
//! that keeps the best validation epoch, and the stratified split that picks validation photos.
//!
//! Plain Rust rather than burn's autodiff: the gradient of one linear layer is a few lines, and
//! written out with a fixed order of operations, portable random numbers (ChaCha) and `libm`'s
//! exp/log it gives the **same bytes** on every platform — a head taught in the browser is
//! re-trained bit-for-bit by `lucy train --project` (burn's matrix products reduce in
//! SIMD-width-dependent order: AVX-512 natively, SIMD128 in wasm).

use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

// ChaCha12 named, not `StdRng`: rand documents StdRng's algorithm as free to change between
// versions, and heads must stay reproducible.
use rand_chacha::ChaCha12Rng;

use crate::model::FEATURES;

mod lesson;
pub use lesson::{ClassScore, Confusion, Lesson, LessonError, Project, Taught, teach};

/// Adam's defaults (as in burn, PyTorch and Keras).
const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPSILON: f32 = 1e-5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f32,
    /// Probability of zeroing each feature while training (0 disables dropout).
    pub dropout: f64,
    pub class_weights: bool,
    /// Stop after this many epochs without a better validation score.
    pub patience: Option<usize>,
    pub seed: u64,
}

impl Default for FitConfig {
    /// `lucy train`'s defaults, and the page's settings. Batches of 16 for up to 30 epochs:
    /// a page project of 60 photos still gets ~100 optimiser steps (batches of 32 for 15
    /// epochs left one underfit, 23 of 24 held-out photos right instead of 24), and the 273
    /// catsdogs photos stop early at the same accuracy.
    fn default() -> Self {
        Self {
            epochs: 30,
            batch_size: 16,
            learning_rate: 1e-3,
            weight_decay: 1e-4,
            dropout: 0.2,
            class_weights: true,
            patience: Some(8),
            seed: 42,
        }
    }
}

/// Features (each 2048 long) and their class indices.
pub struct Split<'a> {
    pub features: &'a [&'a [f32]],
    pub labels: &'a [usize],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
}

/// The best head found: `weight` is [2048, classes] row-major (Keras / burn Linear layout).
#[derive(Debug, Clone)]
pub struct Fitted {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub history: Vec<EpochMetrics>,
    pub best_epoch: usize,
    pub stopped_early: bool,
}

/// A linear layer's parameters and Adam's two moments for each.
struct Adam {
    params: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    fn new(params: Vec<f32>) -> Self {
        let n = params.len();
        Self {
            params,
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    /// One step: L2 weight decay added to the gradient (burn's `WeightDecay`), bias-corrected
    /// moments. `correction` = (1 - β1^t, 1 - β2^t).
    fn step(&mut self, gradient: &[f32], lr: f32, decay: f32, correction: (f32, f32)) {
        for (((p, m), v), &g) in self
            .params
            .iter_mut()
            .zip(&mut self.m)
            .zip(&mut self.v)
            .zip(gradient)
        {
            let g = g + decay * *p;
            *m = BETA1 * *m + (1.0 - BETA1) * g;
            *v = BETA2 * *v + (1.0 - BETA2) * g * g;
            let m_hat = *m / correction.0;
            let v_hat = *v / correction.1;
            *p -= lr * m_hat / (v_hat.sqrt() + EPSILON);
        }
    }
}

/// Fit a head; `on_epoch` hears each epoch's metrics as they come (progress bars, the page's
/// learning curve). Deterministic: the same inputs give the same bytes on every platform.
pub fn fit(
    train: &Split,
    val: &Split,
    classes: usize,
    config: &FitConfig,
    on_epoch: &mut dyn FnMut(&EpochMetrics),
) -> Fitted {
    let mut rng = ChaCha12Rng::seed_from_u64(config.seed);
    // burn's Linear initialisation: uniform in ±1/√fan_in, weights then bias.
    let bound = 1.0 / (FEATURES as f32).sqrt();
    let mut init = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| rng.random_range(-bound..bound))
            .collect::<Vec<f32>>()
    };
    let mut weight = Adam::new(init(FEATURES * classes));
    let mut bias = Adam::new(init(classes));
    let class_weights = if config.class_weights {
        balanced_class_weights(train.labels, classes)
    } else {
        vec![1.0; classes]
    };
    let keep = 1.0 - config.dropout as f32;
    let keep_below = ((1.0 - config.dropout) * 65536.0).round() as u32;
    let mut mask = vec![0u8; 2 * FEATURES];
    let lr = config.learning_rate as f32;

    let n = train.labels.len();
    let mut history = Vec::new();
    // The best epoch so far: epoch, validation accuracy and loss, weight, bias.
    type Best = (usize, f64, f64, Vec<f32>, Vec<f32>);
    let mut best: Option<Best> = None;
    let mut stopped_early = false;
    let (mut beta1_t, mut beta2_t) = (1.0f32, 1.0f32);
    let mut input = vec![0.0f32; FEATURES];
    let mut weight_gradient = vec![0.0f32; FEATURES * classes];
    let mut bias_gradient = vec![0.0f32; classes];
    let mut probabilities = vec![0.0f32; classes];
    for epoch in 1..=config.epochs {
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        for batch in order.chunks(config.batch_size.max(1)) {
            weight_gradient.fill(0.0);
            bias_gradient.fill(0.0);
            let total_weight: f32 = batch.iter().map(|&i| class_weights[train.labels[i]]).sum();
            for &i in batch {
                // Inverted dropout: keep each feature with probability `keep` (to 1/65536: two
                // random bytes per feature, a quarter of the generator's work of one f32 each),
                // scaled by 1/keep.
                if config.dropout > 0.0 {
                    rng.fill_bytes(&mut mask);
                }
                for ((x, &f), r) in input
                    .iter_mut()
                    .zip(train.features[i])
                    .zip(mask.chunks_exact(2))
                {
                    *x = if config.dropout <= 0.0 {
                        f
                    } else if u32::from(u16::from_le_bytes([r[0], r[1]])) < keep_below {
                        f / keep
                    } else {
                        0.0
                    };
                }
                softmax_f32(&weight.params, &bias.params, &input, &mut probabilities);
                // d(weighted mean loss)/d(logit) = w_y (p - onehot(y)) / Σ w.
                let label = train.labels[i];
                let scale = class_weights[label] / total_weight;
                for (c, p) in probabilities.iter_mut().enumerate() {
                    *p = scale * (*p - if c == label { 1.0 } else { 0.0 });
                }
                for (row, &x) in weight_gradient.chunks_exact_mut(classes).zip(&input) {
                    for (g, &d) in row.iter_mut().zip(&probabilities) {
                        *g += x * d;
                    }
                }
                for (g, &d) in bias_gradient.iter_mut().zip(&probabilities) {
                    *g += d;
                }
            }
            beta1_t *= BETA1;
            beta2_t *= BETA2;
            let correction = (1.0 - beta1_t, 1.0 - beta2_t);
            let decay = config.weight_decay;
            weight.step(&weight_gradient, lr, decay, correction);
            bias.step(&bias_gradient, lr, decay, correction);
        }

        let (train_loss, train_accuracy) = evaluate(&weight.params, &bias.params, train);
        let (val_loss, val_accuracy) = evaluate(&weight.params, &bias.params, val);
        let metrics = EpochMetrics {
            epoch,
            train_loss,
            train_accuracy,
            val_loss,
            val_accuracy,
        };
        on_epoch(&metrics);
        history.push(metrics);

        // Best = highest validation accuracy, then lowest validation loss.
        let better = best.as_ref().is_none_or(|(_, acc, loss, ..)| {
            val_accuracy > *acc || (val_accuracy == *acc && val_loss < *loss)
        });
        if better {
            best = Some((
                epoch,
                val_accuracy,
                val_loss,
                weight.params.clone(),
                bias.params.clone(),
            ));
        } else if let (Some(patience), Some((best_epoch, ..))) = (config.patience, &best)
            && epoch - best_epoch >= patience
        {
            stopped_early = epoch < config.epochs;
            break;
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

/// Softmax of `x · weight + bias` in f32 (the training pass), into `out`.
fn softmax_f32(weight: &[f32], bias: &[f32], x: &[f32], out: &mut [f32]) {
    let classes = bias.len();
    out.copy_from_slice(bias);
    for (row, &x) in weight.chunks_exact(classes).zip(x) {
        for (logit, &w) in out.iter_mut().zip(row) {
            *logit += x * w;
        }
    }
    let max = out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for logit in out.iter_mut() {
        *logit = libm::expf(*logit - max);
        sum += *logit;
    }
    for p in out.iter_mut() {
        *p /= sum;
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

/// Probabilities of one head on features (f64, `libm`: identical on every platform).
pub fn head_probabilities(weight: &[f32], bias: &[f32], features: &[f32]) -> Vec<f64> {
    let classes = bias.len();
    let mut logits: Vec<f64> = bias.iter().map(|&b| b as f64).collect();
    for (row, &x) in weight.chunks_exact(classes).zip(features) {
        for (logit, &w) in logits.iter_mut().zip(row) {
            *logit += x as f64 * w as f64;
        }
    }
    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = logits.iter().map(|l| libm::exp(l - max)).collect();
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
        loss -= libm::log(p[label].max(1e-12));
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

/// Item indices of each part of a stratified split.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parts {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

/// Split items (their class indices in `labels`) class by class in the same proportions, from
/// `seed`: each class is shuffled, then gives round(n · fraction) items to validation (at least
/// one, and at least one left to train) and to test. `Err(class)` when a class has fewer than
/// two items.
pub fn stratified_split(
    labels: &[usize],
    classes: usize,
    val_fraction: f64,
    test_fraction: f64,
    seed: u64,
) -> Result<Parts, usize> {
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    let mut parts = Parts::default();
    for class in 0..classes {
        let mut items: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        let n = items.len();
        if n < 2 {
            return Err(class);
        }
        items.shuffle(&mut rng);
        let n_val = ((n as f64 * val_fraction).round() as usize).clamp(1, n - 1);
        let n_test = ((n as f64 * test_fraction).round() as usize).min(n - 1 - n_val);
        let mut rest = items.into_iter();
        parts.val.extend(rest.by_ref().take(n_val));
        parts.test.extend(rest.by_ref().take(n_test));
        parts.train.extend(rest);
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_weights_balance_the_classes() {
        let w = balanced_class_weights(&[0, 0, 0, 1], 2);
        assert_eq!(w, [4.0 / 6.0, 2.0]);
        assert!((w[0] * 3.0 - w[1] * 1.0).abs() < 1e-6);
    }

    /// Two classes, told apart by feature 0, with some noise elsewhere.
    fn separable(n: usize) -> (Vec<Vec<f32>>, Vec<usize>) {
        let rows = (0..n)
            .map(|i| {
                // Zero-mean noise, different for every photo and feature.
                let mut f: Vec<f32> = (0..FEATURES)
                    .map(|j| 0.001 * (((i * 31 + j * 7) % 13) as f32 - 6.0))
                    .collect();
                f[0] = if i % 2 == 0 { 1.0 } else { -1.0 };
                f
            })
            .collect();
        (rows, (0..n).map(|i| i % 2).collect())
    }

    #[test]
    fn fits_separable_features_reproducibly() {
        let (rows, labels) = separable(40);
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let split = Split {
            features: &refs,
            labels: &labels,
        };
        let config = FitConfig {
            epochs: 5,
            batch_size: 8,
            learning_rate: 0.01,
            patience: None,
            seed: 3,
            ..FitConfig::default()
        };
        let mut heard = 0;
        let a = fit(&split, &split, 2, &config, &mut |_| heard += 1);
        let b = fit(&split, &split, 2, &config, &mut |_| {});
        assert_eq!(heard, 5, "one report per epoch");
        assert_eq!(a.history.last().unwrap().val_accuracy, 1.0);
        assert_eq!(a.weight, b.weight, "same seed, same head");
        assert_eq!(a.bias, b.bias);
        let other = fit(
            &split,
            &split,
            2,
            &FitConfig { seed: 4, ..config },
            &mut |_| {},
        );
        assert_ne!(a.weight, other.weight, "another seed, another head");
    }

    #[test]
    fn the_gradient_matches_finite_differences() {
        // One full-batch step of plain gradient descent, checked against the loss's slope.
        let (rows, labels) = separable(6);
        let (weight, bias): (Vec<f32>, Vec<f32>) = (
            (0..FEATURES * 2).map(|i| 0.001 * (i % 5) as f32).collect(),
            vec![0.1, -0.1],
        );
        let class_weights = balanced_class_weights(&labels, 2);
        let loss = |w: &[f32]| -> f64 {
            let total: f64 = labels.iter().map(|&l| class_weights[l] as f64).sum();
            rows.iter()
                .zip(&labels)
                .map(|(x, &l)| {
                    -libm::log(head_probabilities(w, &bias, x)[l]) * class_weights[l] as f64
                })
                .sum::<f64>()
                / total
        };
        let mut analytic = 0.0f64;
        let total: f32 = labels.iter().map(|&l| class_weights[l]).sum();
        let mut p = [0.0f32; 2];
        for (x, &l) in rows.iter().zip(&labels) {
            softmax_f32(&weight, &bias, x, &mut p);
            let d = class_weights[l] / total * (p[1] - if l == 1 { 1.0 } else { 0.0 });
            analytic += (x[0] * d) as f64; // d loss / d weight[0][1]
        }
        let h = 1e-3;
        let (mut up, mut down) = (weight.clone(), weight.clone());
        up[1] += h;
        down[1] -= h;
        let numeric = (loss(&up) - loss(&down)) / (2.0 * h as f64);
        assert!((analytic - numeric).abs() < 1e-3, "{analytic} vs {numeric}");
    }

    #[test]
    fn split_is_stratified_reproducible_and_refuses_tiny_classes() {
        let labels: Vec<usize> = (0..30).map(|i| usize::from(i >= 20)).collect();
        let parts = stratified_split(&labels, 2, 0.2, 0.1, 7).unwrap();
        let count = |part: &[usize], class| part.iter().filter(|&&i| labels[i] == class).count();
        assert_eq!((count(&parts.val, 0), count(&parts.val, 1)), (4, 2));
        assert_eq!((count(&parts.test, 0), count(&parts.test, 1)), (2, 1));
        assert_eq!(parts.train.len() + parts.val.len() + parts.test.len(), 30);
        assert_eq!(stratified_split(&labels, 2, 0.2, 0.1, 7).unwrap(), parts);
        assert_ne!(stratified_split(&labels, 2, 0.2, 0.1, 8).unwrap(), parts);
        assert_eq!(stratified_split(&[0, 0, 1], 2, 0.2, 0.0, 1), Err(1));
    }
}
