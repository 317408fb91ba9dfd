//! `lucy train DIR` and `lucy eval DIR` (feature `train`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use super::{Bars, PrecisionArg};
use crate::fit::{FitConfig, Project, teach};
use crate::train::Progress;
use crate::train::data::SplitOptions;
use crate::train::report::Skipped;
use crate::train::{
    DeviceChoice, EvalOptions, TrainOptions, default_feature_cache, evaluate, report_path, train,
};
use crate::weights::Precision;
use crate::weights::bundle::sha256_hex;
use crate::weights::dir::{WeightsDir, check_head_name, write_atomic};

/// `--device`, mapped onto the library's [`DeviceChoice`].
#[derive(Clone, Copy, ValueEnum)]
enum DeviceArg {
    Auto,
    Cpu,
    Gpu,
}

impl From<DeviceArg> for DeviceChoice {
    fn from(d: DeviceArg) -> Self {
        match d {
            DeviceArg::Auto => DeviceChoice::Auto,
            DeviceArg::Cpu => DeviceChoice::Cpu,
            DeviceArg::Gpu => DeviceChoice::Gpu,
        }
    }
}

#[derive(Args)]
pub struct TrainArgs {
    /// Photos: DIR/{train,val[,test]}/<class>/* or DIR/<class>/* (split from --seed); class
    /// names come from the folder names. Or a project file downloaded from the page's Teach
    /// lucy: its features, classes, split and settings give the page's head, bit for bit.
    data: PathBuf,
    /// The head's name (`lucy predict --head NAME`, the page's head selector).
    #[arg(long, default_value = "lucy")]
    name: String,
    /// Write the head file here instead of registering it in the weights bundle.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Passes over the training photos (the best validation epoch is kept).
    #[arg(long, default_value_t = FitConfig::default().epochs as u32, value_parser = clap::value_parser!(u32).range(1..))]
    epochs: u32,
    /// Photos per optimiser step.
    #[arg(long, default_value_t = FitConfig::default().batch_size as u32, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Adam's learning rate.
    #[arg(long, default_value_t = FitConfig::default().learning_rate)]
    learning_rate: f64,
    /// L2 penalty (Adam weight decay).
    #[arg(long, default_value_t = FitConfig::default().weight_decay)]
    weight_decay: f32,
    /// Dropout before the linear layer, in [0, 1) (0 disables it).
    #[arg(long, default_value_t = FitConfig::default().dropout, value_parser = dropout_probability)]
    dropout: f64,
    /// Random views (random resized crop, horizontal flip) added per training photo; cached.
    #[arg(long, default_value_t = 0)]
    augment: usize,
    /// Do not weight the loss by inverse class frequency.
    #[arg(long)]
    no_class_weights: bool,
    /// Stop after this many epochs without a better validation score (the best epoch is kept).
    #[arg(long, default_value_t = FitConfig::default().patience.unwrap_or(0))]
    patience: usize,
    /// Seeds the split, the augmentation, the initialisation, dropout and shuffling: the same
    /// seed and settings give a bit-for-bit identical head.
    #[arg(long, default_value_t = FitConfig::default().seed)]
    seed: u64,
    /// Share of each class held out for validation (DIR/<class>/* layout only).
    #[arg(long, default_value_t = 0.2)]
    val_fraction: f64,
    /// Share of each class held out for the test (DIR/<class>/* layout only).
    #[arg(long, default_value_t = 0.1)]
    test_fraction: f64,
    /// Where backbone features are cached.
    #[arg(long, default_value_os_t = default_feature_cache())]
    cache_dir: PathBuf,
    /// auto takes a hardware GPU (wgpu) when there is one, else the CPU.
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceArg,
}

#[derive(Args)]
pub struct EvalArgs {
    /// Photos laid out like the training data: DIR/test/<class>/* when there is a test split,
    /// otherwise every DIR/<class>/*.
    data: PathBuf,
    /// A head named in the manifest, or the path of a head file.
    #[arg(long, default_value = "lucy")]
    head: String,
    /// Backbone precision (int8 is what `lucy predict` and the page use).
    #[arg(long, value_enum, default_value = "int8")]
    precision: PrecisionArg,
    /// Where backbone features are cached.
    #[arg(long, default_value_os_t = default_feature_cache())]
    cache_dir: PathBuf,
    /// auto takes a hardware GPU (wgpu) when there is one, else the CPU.
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceArg,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn print_skipped(skipped: &[Skipped]) {
    for s in skipped {
        eprintln!("skipped {}: {}", s.file.display(), s.reason);
    }
}

fn dropout_probability(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(p) if (0.0..1.0).contains(&p) => Ok(p),
        _ => Err(format!("`{value}` is not a probability in [0, 1)")),
    }
}

pub fn run_train(weights: &Path, args: TrainArgs) -> Result<ExitCode> {
    if args.data.is_file() {
        return run_project(weights, args);
    }
    let metrics = train(
        &TrainOptions {
            data_dir: args.data,
            split: SplitOptions {
                seed: args.seed,
                val_fraction: args.val_fraction,
                test_fraction: args.test_fraction,
            },
            fit: FitConfig {
                epochs: args.epochs as usize,
                batch_size: args.batch_size as usize,
                learning_rate: args.learning_rate,
                weight_decay: args.weight_decay,
                dropout: args.dropout,
                class_weights: !args.no_class_weights,
                patience: Some(args.patience),
                seed: args.seed,
            },
            augment: args.augment,
            name: args.name,
            out: args.out,
            weights_dir: weights.to_path_buf(),
            cache_dir: args.cache_dir,
            device: args.device.into(),
        },
        &Bars::default(),
    )?;

    print_skipped(&metrics.skipped);
    if !metrics.skipped.is_empty() {
        eprintln!("skipped {} unreadable photo(s)", metrics.skipped.len());
    }
    for (a, b) in &metrics.duplicates {
        eprintln!(
            "warning: the same photo is in train and in val/test: {} = {}",
            a.display(),
            b.display()
        );
    }
    let p = &metrics.photos;
    println!(
        "classes {:?}; photos: {} train (+{} augmented views each), {} val, {} test ({})",
        metrics.classes, p.train, metrics.augment, p.val, p.test, metrics.split_from
    );
    println!(
        "features: {} backbone passes, {} from the cache, {:.1} s on {}",
        metrics.features.backbone_passes,
        metrics.features.cached,
        metrics.features.seconds,
        metrics.device
    );
    println!(
        "best epoch {} of {}{}: val accuracy {:.3}{}",
        metrics.best_epoch,
        metrics.epochs.len(),
        if metrics.stopped_early {
            " (stopped early)"
        } else {
            ""
        },
        metrics.val_accuracy,
        metrics
            .test_accuracy
            .map(|a| format!(", test accuracy {a:.3}"))
            .unwrap_or_default()
    );
    if let Some(confusion) = &metrics.test_confusion {
        print!("test set:\n{}", confusion.to_text());
    }
    println!("head:    {}", metrics.head_file.display());
    println!(
        "metrics: {}",
        report_path(&metrics.head_file, "metrics.json").display()
    );
    println!(
        "plot:    {}",
        report_path(&metrics.head_file, "svg").display()
    );
    println!("total {:.1} s", metrics.total_seconds);
    Ok(ExitCode::SUCCESS)
}

/// `lucy train PROJECT`: the page's lesson again, natively, with the lesson's own settings
/// (the training flags do not apply); the head file's bytes equal the page's.
fn run_project(weights: &Path, args: TrainArgs) -> Result<ExitCode> {
    check_head_name(&args.name).map_err(anyhow::Error::msg)?;
    let path = &args.data;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let project = Project::decode(&bytes).with_context(|| path.display().to_string())?;
    let mut bundle = WeightsDir::open(weights)?;
    let backbone = bundle.manifest.backbone_file(Precision::Int8)?.to_string();
    if bundle
        .manifest
        .files
        .get(&backbone)
        .map(|f| f.sha256.as_str())
        != Some(project.backbone_sha256.as_str())
    {
        eprintln!(
            "warning: the project's features come from another backbone than this bundle's int8 \
             one: the head may not fit its photos here"
        );
    }
    let lesson = &project.lesson;
    let started = std::time::Instant::now();
    let bars = Bars::default();
    bars.begin("training (epochs)", lesson.config.epochs as u64);
    let (head, taught) = teach(lesson, &project.features, &mut |epoch| {
        bars.step(Some(format!("val accuracy {:.3}", epoch.val_accuracy)))
    })?;
    bars.end();
    let file = match &args.out {
        Some(out) => {
            write_atomic(out, &head).with_context(|| format!("writing {}", out.display()))?;
            out.clone()
        }
        None => bundle.register_head(&args.name, &head, false)?,
    };
    println!(
        "project: {} photos, classes {:?}; {} for validation (seed {})",
        lesson.labels.len(),
        lesson.classes,
        taught.val.len(),
        lesson.config.seed
    );
    println!(
        "best epoch {} of {}: val accuracy {:.3}; {:.2} s",
        taught.best_epoch,
        taught.history.len(),
        taught.confusion.accuracy,
        started.elapsed().as_secs_f64()
    );
    print!("validation:\n{}", taught.confusion.to_text());
    println!("head:    {} (sha256 {})", file.display(), sha256_hex(&head));
    Ok(ExitCode::SUCCESS)
}

pub fn run_eval(weights: &Path, args: EvalArgs) -> Result<ExitCode> {
    let report = evaluate(
        &EvalOptions {
            data_dir: args.data,
            head: args.head,
            precision: args.precision.into(),
            weights_dir: weights.to_path_buf(),
            cache_dir: args.cache_dir,
            device: args.device.into(),
        },
        &Bars::default(),
    )?;
    print_skipped(&report.skipped);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "head `{}` ({} backbone): accuracy {:.3} on {} photos ({} skipped)",
        report.head,
        report.precision,
        report.accuracy,
        report.photos,
        report.skipped.len()
    );
    print!("{}", report.confusion.to_text());
    if !report.misclassified.is_empty() {
        println!("misclassified, worst first:");
        for m in &report.misclassified {
            let probs: Vec<String> = m
                .probabilities
                .iter()
                .map(|(label, p)| format!("{label} {:.1}%", 100.0 * p))
                .collect();
            println!(
                "  {} (true {}, predicted {}): {}",
                m.file.display(),
                m.truth,
                m.predicted,
                probs.join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
