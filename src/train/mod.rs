//! Head training and evaluation (native, feature `train`): photo folders → cached backbone
//! features → a fitted head → a head file + metrics + plot. The backbone stays frozen.

pub mod data;
mod device;
pub mod features;
mod progress;
pub mod report;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;

pub use device::{DeviceChoice, select_device};
pub use progress::{Progress, Silent};

use crate::fit::Confusion;
use crate::fit::{FitConfig, Fitted, Split, argmax, fit, head_probabilities};
use crate::weights::Precision;
use crate::weights::bundle::{encode_head, sha256_hex};
use crate::weights::dir::{WeightsDir, check_head_name, default_cache_dir, write_atomic};
use data::{Photo, SplitOptions, load_dataset, load_eval_photos};
use features::{Extraction, Extractor, View};
use report::{FeatureStats, Skipped, SplitSizes, TrainMetrics};

pub struct TrainOptions {
    pub data_dir: PathBuf,
    pub split: SplitOptions,
    pub fit: FitConfig,
    pub augment: usize,
    /// The head's name in the manifest (`lucy predict --head NAME`).
    pub name: String,
    /// Write the head here instead of registering it in the weights bundle.
    pub out: Option<PathBuf>,
    pub weights_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub device: DeviceChoice,
}

/// Where `lucy train` and `lucy eval` keep backbone features by default.
pub fn default_feature_cache() -> PathBuf {
    default_cache_dir().join("features")
}

pub fn train(options: &TrainOptions, progress: &dyn Progress) -> Result<TrainMetrics> {
    let started = Instant::now();
    check_head_name(&options.name).map_err(anyhow::Error::msg)?;
    // Every layout problem is reported before any photo is decoded.
    let dataset = load_dataset(&options.data_dir, options.split)?;
    let mut weights = WeightsDir::open(&options.weights_dir)?;
    let (device, device_name) = select_device(options.device)?;

    // Features: the frozen f32 backbone, each photo (and augmented view) once, cached.
    let extractor = Extractor::new(&weights, Precision::F32, &device, &options.cache_dir)?;
    let feature_started = Instant::now();
    progress.begin(
        "features",
        (dataset.train.len() + dataset.val.len() + dataset.test.len()) as u64,
    );
    let mut train_views = vec![View::Original];
    train_views.extend((0..options.augment).map(|index| View::Augmented {
        seed: options.fit.seed,
        index,
    }));
    let train_x = extractor.extract(&dataset.train, &train_views, progress)?;
    let val_x = extractor.extract(&dataset.val, &[View::Original], progress)?;
    let test_x = extractor.extract(&dataset.test, &[View::Original], progress)?;
    progress.end();
    let features = FeatureStats {
        backbone_passes: train_x.computed + val_x.computed + test_x.computed,
        cached: train_x.cached + val_x.cached + test_x.cached,
        seconds: feature_started.elapsed().as_secs_f64(),
    };

    let skipped: Vec<Skipped> = [&train_x, &val_x, &test_x]
        .iter()
        .flat_map(|x| x.skipped.iter().cloned())
        .collect();
    let duplicates = find_duplicates(
        &dataset.train,
        &train_x,
        [(&dataset.val, &val_x), (&dataset.test, &test_x)],
    );
    let classes = &dataset.classes;
    for (class, name) in classes.iter().enumerate() {
        for (split, photos, x) in [
            ("train", &dataset.train, &train_x),
            ("val", &dataset.val, &val_x),
        ] {
            if !x.samples.iter().any(|(i, ..)| photos[*i].class == class) {
                let unreadable: Vec<String> = skipped
                    .iter()
                    .map(|s| format!("  {}: {}", s.file.display(), s.reason))
                    .collect();
                bail!(
                    "class `{name}` has no readable photo in {split}; unreadable photos:\n{}",
                    unreadable.join("\n")
                );
            }
        }
    }

    let train_started = Instant::now();
    let (train_f, train_y) = samples(&dataset.train, &train_x);
    let (val_f, val_y) = samples(&dataset.val, &val_x);
    progress.begin("training (epochs)", options.fit.epochs as u64);
    let fitted = fit(
        &Split {
            features: &train_f,
            labels: &train_y,
        },
        &Split {
            features: &val_f,
            labels: &val_y,
        },
        classes.len(),
        &options.fit,
        &mut |epoch| {
            progress.step(Some(format!(
                "val accuracy {:.3}, val loss {:.3}",
                epoch.val_accuracy, epoch.val_loss
            )))
        },
    );
    progress.end();
    let train_seconds = train_started.elapsed().as_secs_f64();

    let val_confusion = confusion(classes, &fitted, &val_f, &val_y);
    let test_confusion = (!test_x.samples.is_empty()).then(|| {
        let (test_f, test_y) = samples(&dataset.test, &test_x);
        confusion(classes, &fitted, &test_f, &test_y)
    });

    // The head, atomically: into --out, or into the bundle and its manifest.
    let bytes = encode_head(&options.name, classes, &fitted.weight, &fitted.bias);
    let head_file = match &options.out {
        Some(path) => {
            write_atomic(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
            path.clone()
        }
        None => weights.register_head(&options.name, &bytes, false)?,
    };
    let metrics = TrainMetrics {
        head: options.name.clone(),
        head_sha256: sha256_hex(&bytes),
        head_file: head_file.clone(),
        classes: classes.clone(),
        split_from: dataset.split_from.clone(),
        photos: SplitSizes {
            train: dataset.train.len(),
            val: dataset.val.len(),
            test: dataset.test.len(),
        },
        augment: options.augment,
        device: device_name,
        config: options.fit.clone(),
        epochs: fitted.history.clone(),
        best_epoch: fitted.best_epoch,
        stopped_early: fitted.stopped_early,
        val_accuracy: val_confusion.accuracy,
        val_confusion,
        test_accuracy: test_confusion.as_ref().map(|c| c.accuracy),
        test_confusion,
        skipped,
        duplicates,
        features,
        train_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
    };
    report::write_metrics(&metrics, &report_path(&head_file, "metrics.json"))?;
    report::write_plot(&metrics, &report_path(&head_file, "svg"))?;
    Ok(metrics)
}

/// `head-lucy.safetensors` → `head-lucy.metrics.json`, `head-lucy.svg`.
pub fn report_path(head_file: &Path, extension: &str) -> PathBuf {
    head_file.with_extension(extension)
}

fn samples<'a>(photos: &[Photo], x: &'a Extraction) -> (Vec<&'a [f32]>, Vec<usize>) {
    x.samples
        .iter()
        .map(|(i, _, f)| (f.as_slice(), photos[*i].class))
        .unzip()
}

fn confusion(
    classes: &[String],
    head: &Fitted,
    features: &[&[f32]],
    labels: &[usize],
) -> Confusion {
    let predicted = features
        .iter()
        .map(|f| argmax(&head_probabilities(&head.weight, &head.bias, f)));
    Confusion::new(classes, labels.iter().copied().zip(predicted))
}

/// The same photo (by content) in train and in val or test inflates the scores: name both.
fn find_duplicates<'a>(
    train: &[Photo],
    train_x: &Extraction,
    others: impl IntoIterator<Item = (&'a Vec<Photo>, &'a Extraction)>,
) -> Vec<(PathBuf, PathBuf)> {
    let by_hash: HashMap<&str, &Path> = train_x
        .hashes
        .iter()
        .map(|(i, h)| (h.as_str(), train[*i].path.as_path()))
        .collect();
    let mut found = Vec::new();
    for (photos, x) in others {
        for (i, hash) in &x.hashes {
            if let Some(train_path) = by_hash.get(hash.as_str()) {
                found.push((train_path.to_path_buf(), photos[*i].path.clone()));
            }
        }
    }
    found.sort();
    found
}

pub struct EvalOptions {
    pub data_dir: PathBuf,
    pub head: String,
    pub precision: Precision,
    pub weights_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub device: DeviceChoice,
}

#[derive(Debug, Serialize)]
pub struct Misclassified {
    pub file: PathBuf,
    pub truth: String,
    pub predicted: String,
    /// Probability of each head class, in the head's label order.
    pub probabilities: Vec<(String, f64)>,
}

#[derive(Debug, Serialize)]
pub struct EvalReport {
    pub head: String,
    pub precision: Precision,
    pub photos: usize,
    pub accuracy: f64,
    pub confusion: Confusion,
    /// Worst first: lowest probability for the true class.
    pub misclassified: Vec<Misclassified>,
    pub skipped: Vec<Skipped>,
    pub backbone_passes: usize,
}

pub fn evaluate(options: &EvalOptions, progress: &dyn Progress) -> Result<EvalReport> {
    let (folder_classes, photos) = load_eval_photos(&options.data_dir)?;
    let weights = WeightsDir::open(&options.weights_dir)?;
    let head = weights.head(&options.head)?;
    let name = head.name.clone();
    let (head, labels) = head.into_weights()?;
    // Folder classes must be head labels (by name); the head may know more classes.
    let to_head: Vec<usize> = folder_classes
        .iter()
        .map(|c| {
            labels.iter().position(|l| l == c).with_context(|| {
                format!(
                    "folder class `{c}` is not a label of head `{name}` (its labels: {})",
                    labels.join(", ")
                )
            })
        })
        .collect::<Result<_>>()?;

    let (device, _) = select_device(options.device)?;
    let extractor = Extractor::new(&weights, options.precision, &device, &options.cache_dir)?;
    progress.begin("features", photos.len() as u64);
    let x = extractor.extract(&photos, &[View::Original], progress)?;
    progress.end();

    let mut pairs = Vec::new();
    let mut misclassified = Vec::new();
    for (i, _, features) in &x.samples {
        let p = head_probabilities(&head.weight, &head.bias, features);
        let (truth, predicted) = (to_head[photos[*i].class], argmax(&p));
        pairs.push((truth, predicted));
        if truth != predicted {
            misclassified.push(Misclassified {
                file: photos[*i].path.clone(),
                truth: labels[truth].clone(),
                predicted: labels[predicted].clone(),
                probabilities: labels.iter().cloned().zip(p.iter().copied()).collect(),
            });
        }
    }
    let truth_probability = |m: &Misclassified| {
        m.probabilities
            .iter()
            .find(|(l, _)| *l == m.truth)
            .map_or(0.0, |(_, p)| *p)
    };
    misclassified.sort_by(|a, b| truth_probability(a).total_cmp(&truth_probability(b)));
    let confusion = Confusion::new(&labels, pairs);
    Ok(EvalReport {
        head: name,
        precision: options.precision,
        photos: x.samples.len(),
        accuracy: confusion.accuracy,
        confusion,
        misclassified,
        skipped: x.skipped,
        backbone_passes: x.computed,
    })
}
