//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::path::PathBuf;

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

/// Photos without a licence to copy, read from the shared folder beside the project.
pub fn shared_fixture(name: &str) -> PathBuf {
    let dir = std::env::var_os("LUCY_SHARED_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/resnet50-reference")
        });
    let path = dir.join(name);
    assert!(path.is_file(), "missing shared fixture {}", path.display());
    path
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
