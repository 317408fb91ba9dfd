//! `lucy predict PHOTO...`

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use burn::prelude::Device;
use clap::Args;
use serde::Serialize;

use super::PrecisionArg;
use crate::classifier::{Classifier, Prediction};
use crate::preprocess::preprocess_bytes;
use crate::weights::bundle::IMAGENET_HEAD;
use crate::weights::dir::WeightsDir;

#[derive(Args)]
pub struct PredictArgs {
    /// Photos to classify (JPEG, PNG, WebP, GIF, BMP, TIFF).
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
    /// Print JSON instead of text.
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
    let device = Device::flex();
    let dir = WeightsDir::open(weights)?;
    let head = dir.head(&args.head)?;
    let classifier = Classifier::new(dir.backbone(args.precision.into(), &device)?, head, &device)?;

    let mut results = Vec::new();
    for photo in &args.photos {
        let outcome = std::fs::read(photo)
            .map_err(|e| format!("cannot read it: {e}"))
            .and_then(|bytes| preprocess_bytes(&bytes).map_err(|e| e.to_string()))
            .map(|input| classifier.classify(&[input], args.top as usize).remove(0));
        let file = photo.display().to_string();
        results.push(match outcome {
            Ok(predictions) => PhotoResult {
                file,
                predictions: Some(predictions),
                error: None,
            },
            Err(error) => PhotoResult {
                file,
                predictions: None,
                error: Some(error),
            },
        });
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    let mut failed = false;
    for result in &results {
        if let Some(error) = &result.error {
            eprintln!("lucy: {}: {error}", result.file);
            failed = true;
        } else if !args.json {
            println!("{}", result.file);
            for p in result.predictions.iter().flatten() {
                println!("  {:6.2}%  {}", 100.0 * p.probability, p.label);
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
