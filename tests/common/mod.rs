//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A failure that is an error message, not a crash: the stderr, holding every `expected` part.
pub fn assert_clean_failure(out: &Output, expected: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "expected failure, got success: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    for part in expected {
        assert!(stderr.contains(part), "stderr lacks {part:?}: {stderr}");
    }
    stderr
}

/// Run the `lucy` binary on the bundle in `weights`.
pub fn lucy(args: &[&str], weights: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lucy"))
        .args(args)
        .env("LUCY_WEIGHTS", weights)
        .output()
        .expect("lucy runs")
}

/// The weights bundle the tests use: `$LUCY_WEIGHTS` or the project's `weights/`
/// (the test command builds it first with `lucy import`).
pub fn weights_dir() -> PathBuf {
    let dir = std::env::var_os("LUCY_WEIGHTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("weights"));
    assert!(
        dir.join("manifest.json").is_file(),
        "no weights bundle in {}: run `cargo run --release -- import` (the test script does)",
        dir.display()
    );
    dir
}

/// The project's own fixtures (CC0 photos and their reference tensors, bad inputs).
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The shared folder beside the project (`LUCY_SHARED`, else `../shared`): photos without a
/// licence to copy. Tests that read it live in modules named `shared`, which `./scripts/test`
/// names and skips when the folder is absent.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("LUCY_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

fn require_shared(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: this test needs the shared photos beside the project; set LUCY_SHARED \
         to that folder, or run ./scripts/test, which skips (and names) these tests without it",
        path.display()
    );
    path
}

/// A photo or reference tensor of `shared/fixtures/resnet50-reference`.
pub fn shared_fixture(name: &str) -> PathBuf {
    require_shared(shared_dir().join("fixtures/resnet50-reference").join(name))
}

/// `shared/data/catsdogs`: the original experiment's split sizes (the dog plays Lucy).
pub fn catsdogs() -> PathBuf {
    require_shared(shared_dir().join("data/catsdogs/train")).with_file_name("")
}

pub fn read_f32(path: &std::path::Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Reference inputs are NHWC (224x224x3, BGR); lucy's are planar CHW.
pub fn nhwc_to_chw(nhwc: &[f32]) -> Vec<f32> {
    let plane = 224 * 224;
    let mut chw = vec![0f32; 3 * plane];
    for (i, pixel) in nhwc.chunks_exact(3).enumerate() {
        for c in 0..3 {
            chw[c * plane + i] = pixel[c];
        }
    }
    chw
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

pub fn top_indices(values: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    order.truncate(k);
    order
}

/// Every file under `dir`, in its sub-folders too, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The ImageNet classifier on the CPU with the `precision` backbone, from the test bundle.
pub fn imagenet_classifier(precision: lucy::weights::Precision) -> lucy::classifier::Classifier {
    let device = burn::prelude::Device::flex();
    let dir = lucy::weights::dir::WeightsDir::open(&weights_dir()).unwrap();
    lucy::classifier::Classifier::new(
        dir.backbone(precision, &device).unwrap(),
        dir.head(lucy::weights::bundle::IMAGENET_HEAD).unwrap(),
        &device,
    )
    .unwrap()
}

/// A private bundle: the big files hard-linked (copied where the file system cannot link),
/// the manifest copied (training registers heads in it). Writes replace files by renaming, so
/// a linked file is never written through.
pub fn private_bundle() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(weights_dir()).unwrap() {
        let path = entry.unwrap().path();
        let target = dir.path().join(path.file_name().unwrap());
        // The manifest is copied (registering a head rewrites it), the bundle files hard-linked where the
        // file system allows (they are only read), else copied.
        let manifest = path.file_name().unwrap() == "manifest.json";
        let tensors = path.extension().is_some_and(|e| e == "safetensors");
        if manifest || (tensors && std::fs::hard_link(&path, &target).is_err()) {
            std::fs::copy(&path, &target).unwrap();
        }
    }
    dir
}
