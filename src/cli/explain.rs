//! `lucy explain PHOTO...`: which part of each photo made the head say what it said — the
//! class activation map (`crate::explain`) for the top-1 class or `--label`, as a picture
//! (`--out`) or as numbers (`--json`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use burn::prelude::Device;
use clap::Args;
use image::{Rgb, RgbImage};
use serde::Serialize;

use super::PrecisionArg;
use crate::classifier::Classifier;
use crate::explain::{ClassMap, colour, overlay};
use crate::model::MAP_SIDE;
use crate::preprocess::{CropRegion, decode_rgb, preprocess_rgb};
use crate::weights::bundle::IMAGENET_HEAD;
use crate::weights::dir::{WeightsDir, write_atomic};

#[derive(Args)]
pub struct ExplainArgs {
    /// Photos to explain (JPEG, PNG, WebP, GIF, BMP, TIFF).
    #[arg(required = true)]
    photos: Vec<PathBuf>,
    /// A head named in weights/manifest.json, or the path of a head file.
    #[arg(long, default_value = IMAGENET_HEAD)]
    head: String,
    /// Explain this class instead of the most probable one (a label of the head).
    #[arg(long)]
    label: Option<String>,
    /// Write the photo with the map laid over the part the model saw, and a legend, as PNG.
    /// With several photos, a folder: one `<photo name>.why.png` each.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print label, probability and the 7 x 7 map (rows, 0..1) as JSON.
    #[arg(long)]
    json: bool,
    /// Backbone precision: int8 is what the web page uses; f32 is the unquantized reference.
    #[arg(long, value_enum, default_value = "int8")]
    precision: PrecisionArg,
}

#[derive(Serialize)]
struct Explanation {
    file: String,
    label: String,
    probability: f32,
    /// 7 rows of 7 numbers in 0..1: the class's evidence per region, strongest 1.
    grid: Vec<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    picture: Option<PathBuf>,
}

/// The longest side of a written picture: big photos are scaled down first.
const MAX_PICTURE_SIDE: u32 = 1024;

pub fn run(weights: &Path, args: ExplainArgs) -> Result<ExitCode> {
    let device = Device::flex();
    let dir = WeightsDir::open(weights)?;
    let classifier = Classifier::new(
        dir.backbone(args.precision.into(), &device)?,
        dir.head(&args.head)?,
        &device,
    )?;
    let class = args
        .label
        .as_deref()
        .map(|label| find_label(classifier.labels(), label))
        .transpose()?;
    if let Some(out) = &args.out
        && args.photos.len() > 1
    {
        std::fs::create_dir_all(out).with_context(|| {
            format!("--out {}: not a folder for several pictures", out.display())
        })?;
    }

    let mut results = Vec::new();
    let mut failed = false;
    for photo in &args.photos {
        match explain_one(&classifier, photo, class, &args) {
            Ok(result) => results.push(result),
            Err(e) => {
                eprintln!("lucy: {}: {e:#}", photo.display());
                failed = true;
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        for r in &results {
            println!("{}: {} {:.1} %", r.file, r.label, 100.0 * r.probability);
            for row in &r.grid {
                let cells: Vec<String> = row.iter().map(|v| format!("{v:.2}")).collect();
                println!("  {}", cells.join(" "));
            }
            if let Some(picture) = &r.picture {
                println!("  picture: {}", picture.display());
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn explain_one(
    classifier: &Classifier,
    photo: &Path,
    class: Option<usize>,
    args: &ExplainArgs,
) -> Result<Explanation> {
    let bytes = std::fs::read(photo).context("cannot read it")?;
    let image = decode_rgb(&bytes)?;
    let (predictions, maps) = classifier.explain(&preprocess_rgb(&image), 1, class);
    let wanted = class.unwrap_or(predictions[0].index);
    let map = maps
        .into_iter()
        .find(|m| m.index == wanted)
        .expect("the asked class is explained");
    let picture = match &args.out {
        None => None,
        Some(out) if args.photos.len() == 1 => Some(out.clone()),
        Some(out) => {
            let stem = photo.file_stem().unwrap_or_default().to_string_lossy();
            Some(out.join(format!("{stem}.why.png")))
        }
    };
    if let Some(path) = &picture {
        let png = encode_png(&picture_of(&image, &map))?;
        write_atomic(path, &png).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(Explanation {
        file: photo.display().to_string(),
        label: map.label,
        probability: map.probability,
        grid: map.grid.chunks(MAP_SIDE).map(<[f32]>::to_vec).collect(),
        picture,
    })
}

/// The head's label `label`, or an error naming the closest labels.
fn find_label(labels: &[String], label: &str) -> Result<usize> {
    if let Some(i) = labels.iter().position(|l| l == label) {
        return Ok(i);
    }
    let mut close: Vec<(f64, &String)> = labels
        .iter()
        .map(|l| {
            (
                strsim::jaro_winkler(&l.to_lowercase(), &label.to_lowercase()),
                l,
            )
        })
        .collect();
    close.sort_by(|a, b| b.0.total_cmp(&a.0));
    let names: Vec<&str> = close.iter().take(5).map(|(_, l)| l.as_str()).collect();
    bail!(
        "the head has no label `{label}`; closest: {} (labels are case-sensitive)",
        names.join(", ")
    )
}

/// The photo (at most 1024 px a side) with the map over the part the model saw, and below it a
/// legend: the label and its probability, and the colour scale from 0 to 1.
fn picture_of(image: &RgbImage, map: &ClassMap) -> RgbImage {
    let (w, h) = image.dimensions();
    let scale = (MAX_PICTURE_SIDE as f32 / w.max(h) as f32).min(1.0);
    let photo = if scale < 1.0 {
        let size = |v: u32| ((v as f32 * scale).round() as u32).max(1);
        image::imageops::resize(
            image,
            size(w),
            size(h),
            image::imageops::FilterType::Triangle,
        )
    } else {
        image.clone()
    };
    let region = CropRegion::of(w, h);
    let region = CropRegion {
        x: region.x * photo.width() as f32 / w as f32,
        y: region.y * photo.height() as f32 / h as f32,
        side: region.side * photo.width() as f32 / w as f32,
    };
    let blended = overlay(&photo, region, &map.grid);

    const TEXT_SCALE: u32 = 2;
    const LINE: u32 = 8 * TEXT_SCALE;
    const PAD: u32 = 8;
    let text = format!("{}  {:.1} %", map.label, 100.0 * map.probability);
    let text_width = LINE * text.chars().count() as u32;
    let width = blended.width().max(text_width + 2 * PAD).max(200);
    let legend_height = 2 * LINE + 3 * PAD + 12;
    let mut out = RgbImage::from_pixel(
        width,
        blended.height() + legend_height,
        Rgb([255, 255, 255]),
    );
    image::imageops::replace(&mut out, &blended, 0, 0);
    let top = blended.height() + PAD;
    draw_text(&mut out, &text, PAD, top, TEXT_SCALE);
    // The colour scale: "0" [bar] "1".
    let bar_top = top + LINE + PAD;
    let bar_left = PAD + LINE + 4;
    let bar_width = (width - 2 * bar_left).min(256);
    draw_text(&mut out, "0", PAD, bar_top, TEXT_SCALE);
    for x in 0..bar_width {
        let c = colour(x as f32 / (bar_width - 1) as f32);
        for y in 0..LINE {
            out.put_pixel(bar_left + x, bar_top + y, Rgb(c));
        }
    }
    draw_text(&mut out, "1", bar_left + bar_width + 4, bar_top, TEXT_SCALE);
    out
}

/// ASCII text in a public-domain 8x8 font, `scale` pixels per dot, black.
fn draw_text(image: &mut RgbImage, text: &str, left: u32, top: u32, scale: u32) {
    for (i, ch) in text.chars().enumerate() {
        let glyph = font8x8::legacy::BASIC_LEGACY[(ch as usize).min(127)];
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8u32 {
                if bits >> col & 1 == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let x = left + (i as u32 * 8 + col) * scale + dx;
                        let y = top + row as u32 * scale + dy;
                        if x < image.width() && y < image.height() {
                            image.put_pixel(x, y, Rgb([0, 0, 0]));
                        }
                    }
                }
            }
        }
    }
}

fn encode_png(image: &RgbImage) -> Result<Vec<u8>> {
    let mut png = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    Ok(png)
}
