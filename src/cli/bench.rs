//! `lucy bench`: load time and latency on this machine, for a first look (the peer
//! comparison lives in `bench/`).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use burn::prelude::*;
use clap::Args;
use serde::Serialize;

use super::PrecisionArg;

use crate::classifier::Classifier;
use crate::model::{Arithmetic, Backbone, CpuResNet50, Int8Kernel, LayerTime};
use crate::preprocess::{INPUT_SIDE, Input};
use crate::weights::Precision;
use crate::weights::bundle::{IMAGENET_HEAD, decode_backbone};
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
    /// Instead, profile the CPU backbone: time every convolution (at the first of --batches,
    /// its fastest and median of --runs passes after a warm-up) with its algorithm and speed,
    /// in --precision, and the whole pass (median) with what lies outside the convolutions.
    #[arg(long)]
    layers: bool,
    /// The precision --layers profiles (int8 weights computed in int8, or the f32 reference).
    #[arg(long, value_enum, default_value = "int8", requires = "layers")]
    precision: PrecisionArg,
    /// Compute int8 with this kernel instead of the fastest this CPU has (all give the same
    /// bits; to compare their speed): avx512-vnni, avx2, portable.
    #[arg(long, value_parser = parse_kernel)]
    int8_kernel: Option<Int8Kernel>,
}

fn parse_kernel(name: &str) -> Result<Int8Kernel, String> {
    let kernel = Int8Kernel::from_name(name).ok_or_else(|| {
        let names: Vec<_> = Int8Kernel::ALL.iter().map(|k| k.name()).collect();
        format!("no int8 kernel named `{name}`; one of {}", names.join(", "))
    })?;
    if !kernel.available() {
        return Err(format!("this CPU cannot run the `{name}` kernel"));
    }
    Ok(kernel)
}

/// The CPU backbone of `precision`, with `kernel` for its int8 products when given (then in
/// int8 arithmetic even where it is not this CPU's default).
fn cpu_backbone(
    dir: &WeightsDir,
    precision: Precision,
    kernel: Option<Int8Kernel>,
) -> Result<Backbone> {
    let (Precision::Int8, Some(kernel)) = (precision, kernel) else {
        return Ok(dir.backbone(precision, &Device::flex())?);
    };
    let file = dir.manifest.backbone_file(precision)?;
    let tensors = decode_backbone(file, &dir.read(file)?)?;
    let mut model = CpuResNet50::from_tensors(tensors, Arithmetic::Int8)?;
    model.set_int8_kernel(kernel).map_err(anyhow::Error::msg)?;
    Ok(Backbone::Cpu(model))
}

/// What a CPU backbone's products compute with (`CpuResNet50::kernel_name`); None for burn's.
fn products_kernel(backbone: &Backbone) -> Option<&'static str> {
    match backbone {
        Backbone::Cpu(model) => Some(model.kernel_name()),
        Backbone::Burn(_) => None,
    }
}

#[derive(Serialize)]
struct Row {
    precision: String,
    /// What computes the products: the int8 kernel, or the f32 one.
    kernel: Option<&'static str>,
    load_ms: f64,
    batch: usize,
    batch_ms: f64,
    per_image_ms: f64,
    images_per_s: f64,
}

pub fn run(weights: &Path, args: BenchArgs) -> Result<ExitCode> {
    if args.layers {
        return layers(weights, &args);
    }
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
        let backbone = cpu_backbone(&dir, precision, args.int8_kernel)?;
        let kernel = products_kernel(&backbone);
        let classifier = Classifier::new(backbone, dir.head(IMAGENET_HEAD)?, &device)?;
        let load = started.elapsed();
        for &batch in &args.batches {
            let inputs = vec![synthetic_input(); batch];
            let mut times = Vec::new();
            for run in 0..=args.runs {
                let started = Instant::now();
                let probabilities = classifier.probabilities(&inputs).into_data();
                std::hint::black_box(probabilities);
                if run > 0 {
                    times.push(started.elapsed().as_secs_f64() * 1e3);
                }
                progress.inc(batch as u64);
            }
            let batch_ms = median_ms(&mut times);
            rows.push(Row {
                precision: precision.to_string(),
                kernel,
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
        "{:>9} {:>12} {:>9} {:>6} {:>10} {:>12} {:>9}",
        "precision", "kernel", "load ms", "batch", "batch ms", "ms / image", "images/s"
    );
    for r in rows {
        println!(
            "{:>9} {:>12} {:>9.0} {:>6} {:>10.1} {:>12.1} {:>9.2}",
            r.precision,
            r.kernel.unwrap_or("burn"),
            r.load_ms,
            r.batch,
            r.batch_ms,
            r.per_image_ms,
            r.images_per_s
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct LayerRow {
    name: String,
    algorithm: &'static str,
    input: [usize; 3],
    out_channels: usize,
    /// The fastest pass's.
    ms: f64,
    median_ms: f64,
    /// Of the direct convolution, in the fastest pass: Winograd layers do fewer.
    gflop_per_s: f64,
}

/// `lucy bench --layers`: where a forward pass spends its time.
fn layers(weights: &Path, args: &BenchArgs) -> Result<ExitCode> {
    let (runs, json) = (args.runs, args.json);
    let dir = WeightsDir::open(weights)?;
    let precision = Precision::from(args.precision);
    let backbone = cpu_backbone(&dir, precision, args.int8_kernel)?;
    let Backbone::Cpu(model) = backbone else {
        anyhow::bail!("the CPU backbone did not load");
    };
    let kernel = model.kernel_name();
    let batch = args.batches.first().copied().unwrap_or(1).max(1);
    let input: Vec<f32> = (0..batch).flat_map(|_| synthetic_input().chw).collect();
    // Each layer's times over the passes (their minimum and median are reported).
    let mut per_layer: Vec<(LayerTime, Vec<f64>)> = Vec::new();
    // Each pass's whole time and its convolutions' (what is left is pooling, layout, maxima).
    let (mut passes, mut convolutions) = (Vec::new(), Vec::new());
    let progress = super::bar(runs as u64 + 1, "profiling (passes)");
    for pass in 0..=runs {
        let mut times = Vec::new();
        let origin = Instant::now();
        let clock = || origin.elapsed().as_secs_f64();
        model.forward_timed(&input, batch, INPUT_SIDE, &clock, &mut |t| times.push(t));
        let whole = clock();
        progress.inc(1);
        if pass == 0 {
            continue; // warm-up
        }
        passes.push(whole * 1e3);
        convolutions.push(times.iter().map(|t| t.seconds).sum::<f64>() * 1e3);
        if per_layer.is_empty() {
            per_layer = times.iter().map(|t| (t.clone(), Vec::new())).collect();
        }
        for ((_, seconds), t) in per_layer.iter_mut().zip(&times) {
            seconds.push(t.seconds);
        }
    }
    progress.finish_and_clear();
    let rows: Vec<LayerRow> = per_layer
        .into_iter()
        .map(|(t, mut seconds)| {
            let fastest = seconds.iter().copied().fold(f64::INFINITY, f64::min);
            LayerRow {
                gflop_per_s: 2.0 * t.multiply_adds as f64 / fastest / 1e9,
                ms: fastest * 1e3,
                median_ms: median_ms(&mut seconds) * 1e3,
                name: t.name,
                algorithm: t.algorithm,
                input: t.input,
                out_channels: t.out_channels,
            }
        })
        .collect();
    let (pass_ms, convolutions_ms) = (median_ms(&mut passes), median_ms(&mut convolutions));
    if json {
        println!(
            "{}",
            serde_json::json!({ "runs": runs, "batch": batch, "precision": precision.to_string(), "kernel": kernel,
                "pass_ms": pass_ms, "convolutions_ms": convolutions_ms, "layers": rows })
        );
        return Ok(ExitCode::SUCCESS);
    }
    let total_ms: f64 = rows.iter().map(|r| r.ms).sum();
    println!(
        "lucy bench --layers: CPU backbone, {precision} ({kernel}), batch {batch}, {runs} passes: each layer's fastest and median"
    );
    println!(
        "{:<16} {:<20} {:>14} {:>5} {:>8} {:>7} {:>7} {:>8}",
        "layer", "algorithm", "input", "out", "ms", "median", "share", "GFLOP/s"
    );
    for r in &rows {
        let [h, w, c] = r.input;
        println!(
            "{:<16} {:<20} {:>14} {:>5} {:>8.3} {:>7.3} {:>6.1}% {:>8.0}",
            r.name,
            r.algorithm,
            format!("{h}x{w}x{c}"),
            r.out_channels,
            r.ms,
            r.median_ms,
            100.0 * r.ms / total_ms,
            r.gflop_per_s
        );
    }
    println!(
        "all convolutions: {total_ms:.1} ms fastest (GFLOP/s counts the direct convolution's work)"
    );
    println!(
        "whole pass (median): {pass_ms:.2} ms, of which convolutions {convolutions_ms:.2} ms, the rest {:.2} ms \
         (stem layout, max-pool, maxima, global average)",
        pass_ms - convolutions_ms
    );
    Ok(ExitCode::SUCCESS)
}

/// A smooth gradient: latency does not depend on the content.
fn synthetic_input() -> Input {
    let chw = (0..Input::SHAPE.iter().product::<usize>())
        .map(|i| (i % 224) as f32 - 112.0)
        .collect();
    Input { chw }
}

/// The median of `values` (milliseconds; at least one: `--runs` is ≥ 1).
fn median_ms(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}
