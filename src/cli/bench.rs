//! `lucy bench`: load time and latency on this machine, for a first look (the peer
//! comparison lives in `bench/`).

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use burn::prelude::*;
use clap::Args;
use serde::Serialize;

use crate::classifier::Classifier;
use crate::preprocess::Input;
use crate::weights::Precision;
use crate::weights::dir::WeightsDir;

#[derive(Args)]
pub struct BenchArgs {
    /// Timed runs per measurement (after one warm-up run); the median is reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Batch sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    batches: Vec<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Row {
    precision: String,
    load_ms: f64,
    batch: usize,
    batch_ms: f64,
    per_image_ms: f64,
    images_per_s: f64,
}

pub fn run(weights: &Path, args: BenchArgs) -> Result<ExitCode> {
    if args.batches.contains(&0) {
        anyhow::bail!("--batches: batch sizes must be at least 1");
    }
    let device = Device::flex();
    let dir = WeightsDir::open(weights)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut rows = Vec::new();
    let total = 2 * args
        .batches
        .iter()
        .map(|b| (args.runs as usize + 1) * b)
        .sum::<usize>();
    let progress = super::bar(total as u64, "benchmarking (images)");
    for precision in [Precision::F32, Precision::Int8] {
        let started = Instant::now();
        let backbone = dir.backbone(precision, &device)?;
        let classifier = Classifier::new(backbone, dir.head("imagenet")?, &device)?;
        let load = started.elapsed();
        for &batch in &args.batches {
            let inputs = vec![synthetic_input(); batch];
            let mut times = Vec::new();
            for run in 0..=args.runs {
                let started = Instant::now();
                let probabilities = classifier.probabilities(&inputs).into_data();
                std::hint::black_box(probabilities);
                if run > 0 {
                    times.push(started.elapsed());
                }
                progress.inc(batch as u64);
            }
            let batch_ms = median(&mut times).as_secs_f64() * 1e3;
            rows.push(Row {
                precision: precision.to_string(),
                load_ms: load.as_secs_f64() * 1e3,
                batch,
                batch_ms,
                per_image_ms: batch_ms / batch as f64,
                images_per_s: 1e3 * batch as f64 / batch_ms,
            });
        }
    }
    progress.finish_and_clear();
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "cores": cores, "backend": "cpu", "rows": rows })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "lucy bench: CPU, {cores} cores, median of {} runs",
        args.runs
    );
    println!(
        "{:>9} {:>9} {:>6} {:>10} {:>12} {:>9}",
        "precision", "load ms", "batch", "batch ms", "ms / image", "images/s"
    );
    for r in rows {
        println!(
            "{:>9} {:>9.0} {:>6} {:>10.1} {:>12.1} {:>9.2}",
            r.precision, r.load_ms, r.batch, r.batch_ms, r.per_image_ms, r.images_per_s
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A smooth gradient: latency does not depend on the content.
fn synthetic_input() -> Input {
    let chw = (0..Input::SHAPE.iter().product::<usize>())
        .map(|i| (i % 224) as f32 - 112.0)
        .collect();
    Input { chw }
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}
