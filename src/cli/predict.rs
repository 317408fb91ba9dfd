//! `lucy predict PHOTO_OR_FOLDER...`: streams, so a folder of any size runs in bounded memory.
//! A few photos at a time are read, classified and printed; nothing accumulates.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use burn::prelude::Device;
use clap::Args;
use rayon::prelude::*;
use serde::Serialize;

use super::PrecisionArg;
use crate::classifier::{Classifier, Prediction};
use crate::preprocess::{Input, preprocess_bytes};
use crate::weights::bundle::IMAGENET_HEAD;
use crate::weights::dir::WeightsDir;

/// Photos classified together: enough for the backbone's batch speed-up, few enough that
/// memory stays flat (at most 15 inputs in hand, and the backbone's buffers for one batch).
const BATCH: usize = 8;
/// File extensions taken from folders (a file named on the command line is always tried).
const PHOTO_EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"];

#[derive(Args)]
pub struct PredictArgs {
    /// Photos to classify (JPEG, PNG, WebP, GIF, BMP, TIFF), or folders: every photo in them
    /// and their subfolders, by name. Results stream out as they are made.
    #[arg(required = true)]
    photos: Vec<PathBuf>,
    /// A head named in weights/manifest.json (`imagenet`, or one made by `lucy train`), or the
    /// path of a head file.
    #[arg(long, default_value = IMAGENET_HEAD)]
    head: String,
    /// Backbone precision: int8 is what the web page uses; f32 is the unquantized reference.
    #[arg(long, value_enum, default_value = "int8")]
    precision: PrecisionArg,
    /// How many labels to print per photo.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    top: u32,
    /// Print a JSON array (one object per photo: `file` and `predictions`, or `error`). It is
    /// valid JSON even when photos fail or Ctrl-C stops the run.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct PhotoResult {
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    predictions: Option<Vec<Prediction>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn run(weights: &Path, args: PredictArgs) -> Result<ExitCode> {
    let photos = photo_paths(&args.photos)?;
    let device = Device::flex();
    let dir = WeightsDir::open(weights)?;
    let head = dir.head(&args.head)?;
    let classifier = Classifier::new(dir.backbone(args.precision.into(), &device)?, head, &device)?;
    let interrupted = stop_on_ctrl_c();

    let bar = super::bar(photos.len() as u64, "classifying");
    if photos.len() < 2 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut out = Output::new(args.json);
    let (mut done, mut failed) = (0usize, 0usize);
    // Photos read but not yet printed, in order. Every batch the backbone sees holds exactly
    // BATCH photos (but the last): a bad photo does not shrink it, so the backbone's buffers
    // are reused as they are instead of being made again for another batch size.
    let mut pending: Vec<(&PathBuf, Result<Input, String>)> = Vec::new();
    let mut chunks = photos.chunks(BATCH);
    loop {
        let chunk = match interrupted.load(Ordering::SeqCst) {
            false => chunks.next(),
            true => None,
        };
        let last = chunk.is_none();
        if let Some(chunk) = chunk {
            pending.extend(
                chunk
                    .iter()
                    .zip(chunk.par_iter().map(|p| read_photo(p)).collect::<Vec<_>>()),
            );
        }
        while let Some(end) = batch_end(&pending, last) {
            let batch: Vec<_> = pending.drain(..end).collect();
            let good: Vec<Input> = batch
                .iter()
                .filter_map(|(_, r)| r.as_ref().ok().cloned())
                .collect();
            let mut predictions = classifier.classify(&good, args.top as usize).into_iter();
            for (photo, input) in batch {
                let file = photo.display().to_string();
                let result = match input {
                    Ok(_) => PhotoResult {
                        file,
                        predictions: predictions.next(),
                        error: None,
                    },
                    Err(error) => {
                        failed += 1;
                        PhotoResult {
                            file,
                            predictions: None,
                            error: Some(error),
                        }
                    }
                };
                bar.suspend(|| out.write(&result))?;
                done += 1;
                bar.inc(1);
            }
        }
        if last {
            break;
        }
    }
    bar.finish_and_clear();
    out.finish()?;

    if interrupted.load(Ordering::SeqCst) {
        eprintln!(
            "lucy: stopped by Ctrl-C after {done} of {} photos",
            photos.len()
        );
        return Ok(ExitCode::from(130));
    }
    if failed > 0 && photos.len() > 1 {
        eprintln!(
            "lucy: {failed} of {} photos could not be classified",
            photos.len()
        );
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// How many pending photos make the next batch: up to and including the BATCH-th readable one,
/// or (`last`: nothing more will come) all of them; None when a batch is not complete yet.
fn batch_end(pending: &[(&PathBuf, Result<Input, String>)], last: bool) -> Option<usize> {
    let mut good = 0;
    for (i, (_, input)) in pending.iter().enumerate() {
        good += input.is_ok() as usize;
        if good == BATCH {
            return Some(i + 1);
        }
    }
    (last && !pending.is_empty()).then_some(pending.len())
}

fn read_photo(path: &Path) -> Result<Input, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    preprocess_bytes(&bytes).map_err(|e| e.to_string())
}

/// Files as given; folders walked (sorted by name, so runs are repeatable) for photo files.
fn photo_paths(args: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut photos = Vec::new();
    for arg in args {
        if !arg.is_dir() {
            photos.push(arg.clone());
            continue;
        }
        for entry in walkdir::WalkDir::new(arg).sort_by_file_name() {
            let entry = entry.with_context(|| format!("reading the folder {}", arg.display()))?;
            let is_photo = entry.path().extension().is_some_and(|ext| {
                PHOTO_EXTENSIONS.contains(&ext.to_string_lossy().to_lowercase().as_str())
            });
            if entry.file_type().is_file() && is_photo {
                photos.push(entry.into_path());
            }
        }
    }
    if photos.is_empty() {
        anyhow::bail!(
            "no photos found in {} (folders are searched for .{} files)",
            args.iter()
                .map(|a| a.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            PHOTO_EXTENSIONS.join(", .")
        );
    }
    Ok(photos)
}

/// The first Ctrl-C asks the run to stop after the photos in hand (the output stays whole);
/// a second one exits at once.
fn stop_on_ctrl_c() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let handler_flag = flag.clone();
    // Fails only if a handler is already installed (then Ctrl-C keeps its default action).
    let _ = ctrlc::set_handler(move || {
        if handler_flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    flag
}

/// Results as they come: text, or one JSON array written element by element.
struct Output {
    json: bool,
    written: usize,
    stdout: std::io::Stdout,
}

impl Output {
    fn new(json: bool) -> Self {
        Self {
            json,
            written: 0,
            stdout: std::io::stdout(),
        }
    }

    fn write(&mut self, result: &PhotoResult) -> Result<()> {
        if let Some(error) = &result.error {
            eprintln!("lucy: {}: {error}", result.file);
        }
        let mut out = self.stdout.lock();
        if self.json {
            let separator = if self.written == 0 { "[\n" } else { ",\n" };
            write!(out, "{separator}  {}", serde_json::to_string(result)?)?;
        } else if result.error.is_none() {
            writeln!(out, "{}", result.file)?;
            for p in result.predictions.iter().flatten() {
                writeln!(out, "  {:6.2}%  {}", 100.0 * p.probability, p.label)?;
            }
        }
        self.written += 1;
        out.flush()?;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if self.json {
            let mut out = self.stdout.lock();
            writeln!(out, "{}", if self.written == 0 { "[]" } else { "\n]" })?;
            out.flush()?;
        }
        Ok(())
    }
}
