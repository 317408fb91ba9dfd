//! What a training run or an evaluation reports: confusion matrices, per-class precision and
//! recall, the metrics JSON, and one SVG picture (learning curves + confusion matrix).

use std::path::{Path, PathBuf};

use anyhow::Result;
use plotters::prelude::*;
use serde::Serialize;

use crate::fit::{Confusion, EpochMetrics, FitConfig};
use crate::weights::dir::write_atomic;

#[derive(Debug, Clone, Serialize)]
pub struct SplitSizes {
    pub train: usize,
    pub val: usize,
    pub test: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub file: PathBuf,
    pub reason: String,
}

impl Skipped {
    pub fn new(file: &Path, reason: impl std::fmt::Display) -> Self {
        Self {
            file: file.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FeatureStats {
    /// Backbone forward passes (cache misses): 0 when everything came from the cache.
    pub backbone_passes: usize,
    pub cached: usize,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainMetrics {
    pub head: String,
    pub head_file: PathBuf,
    pub head_sha256: String,
    pub classes: Vec<String>,
    pub split_from: String,
    pub photos: SplitSizes,
    pub augment: usize,
    pub device: String,
    pub config: FitConfig,
    pub epochs: Vec<EpochMetrics>,
    pub best_epoch: usize,
    pub stopped_early: bool,
    pub val_accuracy: f64,
    pub val_confusion: Confusion,
    pub test_accuracy: Option<f64>,
    pub test_confusion: Option<Confusion>,
    pub skipped: Vec<Skipped>,
    /// Photos with the same content in train and in val/test.
    pub duplicates: Vec<(PathBuf, PathBuf)>,
    pub features: FeatureStats,
    pub train_seconds: f64,
    pub total_seconds: f64,
}

pub fn write_metrics(metrics: &TrainMetrics, path: &Path) -> Result<()> {
    write_atomic(
        path,
        (serde_json::to_string_pretty(metrics)? + "\n").as_bytes(),
    )?;
    Ok(())
}

/// Learning curves (loss, accuracy) on the left, the confusion matrix (test, else validation)
/// on the right.
pub fn write_plot(metrics: &TrainMetrics, path: &Path) -> Result<()> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1200, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        let title = format!(
            "lucy head `{}`: best epoch {} (val accuracy {:.3}{})",
            metrics.head,
            metrics.best_epoch,
            metrics.val_accuracy,
            metrics
                .test_accuracy
                .map(|a| format!(", test accuracy {a:.3}"))
                .unwrap_or_default()
        );
        let root = root.titled(&title, ("sans-serif", 20))?;
        let (curves, matrix) = root.split_horizontally(720);
        let (loss_area, accuracy_area) = curves.split_vertically(240);
        let epochs = &metrics.epochs;
        draw_curves(&loss_area, "loss (cross-entropy)", epochs, |e| {
            (e.train_loss, e.val_loss)
        })?;
        draw_curves(&accuracy_area, "accuracy", epochs, |e| {
            (e.train_accuracy, e.val_accuracy)
        })?;
        let (label, confusion) = match &metrics.test_confusion {
            Some(c) => ("test", c),
            None => ("validation", &metrics.val_confusion),
        };
        draw_confusion(&matrix, &format!("confusion matrix ({label})"), confusion)?;
        root.present()?;
    }
    write_atomic(path, svg.as_bytes())?;
    Ok(())
}

fn draw_curves(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    title: &str,
    epochs: &[EpochMetrics],
    value: impl Fn(&EpochMetrics) -> (f64, f64),
) -> Result<()> {
    let values: Vec<(f64, f64)> = epochs.iter().map(&value).collect();
    let finite = values
        .iter()
        .flat_map(|(a, b)| [*a, *b])
        .filter(|v| v.is_finite());
    let (low, high) = finite.fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(v), h.max(v)));
    let pad = ((high - low) * 0.1).max(1e-3);
    let last = epochs.len().max(2) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(1f64..last, (low - pad)..(high + pad))?;
    chart.configure_mesh().x_desc("epoch").draw()?;
    for (name, color, pick) in [("train", BLUE, 0usize), ("validation", RED, 1)] {
        let points = epochs
            .iter()
            .zip(&values)
            .map(|(e, v)| (e.epoch as f64, if pick == 0 { v.0 } else { v.1 }));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    Ok(())
}

fn draw_confusion(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    title: &str,
    confusion: &Confusion,
) -> Result<()> {
    let n = confusion.classes.len();
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..n as f64, n as f64..0f64)?;
    let classes = confusion.classes.clone();
    let name = move |v: &f64| {
        let i = v.floor() as usize;
        if (v - i as f64 - 0.5).abs() < 1e-6 {
            classes.get(i).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(2 * n + 1)
        .y_labels(2 * n + 1)
        .x_label_formatter(&name)
        .y_label_formatter(&name)
        .x_desc("predicted")
        .y_desc("true")
        .draw()?;
    for (t, row) in confusion.matrix.iter().enumerate() {
        let total: usize = row.iter().sum::<usize>().max(1);
        for (p, &count) in row.iter().enumerate() {
            let share = count as f64 / total as f64;
            let shade = (255.0 * (1.0 - 0.75 * share)) as u8;
            let (x, y) = (p as f64, t as f64);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x, y), (x + 1.0, y + 1.0)],
                RGBColor(shade, shade, 255).filled(),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                count.to_string(),
                (x + 0.45, y + 0.45),
                ("sans-serif", 22).into_font(),
            )))?;
        }
    }
    Ok(())
}
