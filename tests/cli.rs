//! `lucy` end to end: the real binary, the real weights bundle, real photos.

mod common;

use std::process::Command;

use common::*;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `lucy predict --json --top 3` on `photos`: the expected top-1 each, with a probability.
fn check_predictions(photos: &[(std::path::PathBuf, &str)]) {
    let mut args = vec!["predict", "--json", "--top", "3"];
    let paths: Vec<String> = photos
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    args.extend(paths.iter().map(String::as_str));
    let out = lucy(&args, &weights_dir());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (i, (_, label)) in photos.iter().enumerate() {
        let predictions = results[i]["predictions"].as_array().unwrap();
        assert_eq!(predictions.len(), 3);
        assert_eq!(predictions[0]["label"], *label, "{}", results[i]);
        let p0 = predictions[0]["probability"].as_f64().unwrap();
        assert!(p0 > 0.5 && p0 <= 1.0);
    }
}

#[test]
fn predict_names_the_cat_and_the_coffee() {
    check_predictions(&[
        (fixture("skimage_chelsea_cat.png"), "Egyptian_cat"),
        (fixture("skimage_coffee.png"), "espresso"),
    ]);
    // Text output, f32 backbone: the same answer, readable.
    let photo = fixture("skimage_chelsea_cat.png").display().to_string();
    let out = lucy(
        &["predict", "--precision", "f32", "--top", "1", &photo],
        &weights_dir(),
    );
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("Egyptian_cat") && stdout.contains('%'),
        "{stdout}"
    );
}

/// Tests on photos without a licence to copy, read from ../shared (`LUCY_SHARED`).
/// `./scripts/test` names and skips them when that folder is absent.
mod shared {
    use super::*;

    #[test]
    fn predict_names_the_dogs() {
        check_predictions(&[
            (
                shared_fixture("willjobs_example_frenchbulldog.jpg"),
                "French_bulldog",
            ),
            (shared_fixture("willjobs_example_pug.jpg"), "pug"),
            (
                shared_fixture("willjobs_example_bostonterrier.jpg"),
                "Boston_bull",
            ),
        ]);
    }
}

#[test]
fn bad_photos_are_clear_errors_and_good_ones_still_answer() {
    let cases = [
        ("empty.jpg", "empty"),
        ("truncated.jpg", "damaged or truncated"),
        ("not-a-photo.jpg", "not recognised"),
        ("huge-50000x50000.png", "too large"),
        ("unsupported.ico", "not supported"),
    ];
    for (file, message) in cases {
        let out = lucy(
            &["predict", &fixture(file).display().to_string()],
            &weights_dir(),
        );
        let stderr = assert_clean_failure(&out, &[file, message]);
        assert_eq!(
            stderr.lines().count(),
            1,
            "one line per bad photo: {stderr}"
        );
    }
    // A bad photo among good ones: the good one is still classified, the exit code says failure.
    let out = lucy(
        &[
            "predict",
            &fixture("empty.jpg").display().to_string(),
            &fixture("skimage_coffee.png").display().to_string(),
        ],
        &weights_dir(),
    );
    assert_clean_failure(&out, &["empty.jpg"]);
    assert!(text(&out.stdout).contains("espresso"));
    let missing = lucy(&["predict", "/nonexistent/photo.jpg"], &weights_dir());
    assert_clean_failure(&missing, &["photo.jpg", "cannot read"]);
}

#[test]
fn missing_weights_say_how_to_build_them() {
    let empty = tempfile::tempdir().unwrap();
    let photo = fixture("skimage_coffee.png").display().to_string();
    let out = lucy(&["predict", &photo], empty.path());
    assert_clean_failure(&out, &["manifest.json", "missing", "lucy import"]);
}

/// A copy of the bundle (int8 backbone, ImageNet head, manifest) to damage.
fn bundle_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in [
        "manifest.json",
        "resnet50-int8.safetensors",
        "head-imagenet.safetensors",
    ] {
        std::fs::copy(weights_dir().join(file), dir.path().join(file)).unwrap();
    }
    dir
}

#[test]
fn a_flipped_byte_in_the_weights_is_detected() {
    let dir = bundle_copy();
    let file = dir.path().join("resnet50-int8.safetensors");
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&file, bytes).unwrap();
    let photo = fixture("skimage_coffee.png").display().to_string();
    let out = lucy(&["predict", &photo], dir.path());
    assert_clean_failure(
        &out,
        &["resnet50-int8.safetensors", "sha256", "lucy import"],
    );

    // A truncated file is caught by its size before hashing.
    let bytes = std::fs::read(dir.path().join("head-imagenet.safetensors")).unwrap();
    std::fs::write(dir.path().join("head-imagenet.safetensors"), &bytes[..1000]).unwrap();
    let out = lucy(&["predict", "--precision", "int8", &photo], dir.path());
    assert_clean_failure(&out, &["damaged"]);
}

#[test]
fn a_head_that_does_not_fit_the_backbone_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let photo = fixture("skimage_coffee.png").display().to_string();
    let labels = vec!["Lucy".to_string(), "another Frenchie".to_string()];
    // 1024 inputs: made for another backbone.
    let wrong =
        lucy::weights::bundle::encode_head("wrong", &labels, &vec![0.1; 1024 * 2], &[0.0; 2]);
    let path = dir.path().join("wrong.safetensors");
    std::fs::write(&path, wrong).unwrap();
    let out = lucy(
        &["predict", "--head", &path.display().to_string(), &photo],
        &weights_dir(),
    );
    assert_clean_failure(&out, &["does not fit", "[2048, 2]"]);

    // Not a head file at all.
    let out = lucy(&["predict", "--head", &photo, &photo], &weights_dir());
    assert_clean_failure(&out, &["not a valid bundle file"]);
    // An unknown head name lists the known ones.
    let out = lucy(&["predict", "--head", "lucy-v9", &photo], &weights_dir());
    assert_clean_failure(&out, &["lucy-v9", "imagenet"]);
}

#[test]
fn add_head_registers_a_head_file_as_the_sites_default() {
    let bundle = bundle_copy();
    let dir = tempfile::tempdir().unwrap();
    let labels = vec!["Lucy".to_string(), "Other".to_string()];
    let bytes =
        lucy::weights::bundle::encode_head("taught", &labels, &vec![0.01; 2048 * 2], &[0.5, 0.0]);
    let file = dir.path().join("head-taught.safetensors");
    std::fs::write(&file, &bytes).unwrap();
    let file_s = file.display().to_string();
    let out = lucy(
        &["add-head", &file_s, "--name", "mine", "--default"],
        bundle.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Lucy, Other"),
        "{}",
        text(&out.stdout)
    );
    let manifest = std::fs::read(bundle.path().join("manifest.json")).unwrap();
    let manifest = lucy::weights::Manifest::parse(&manifest).unwrap();
    assert_eq!(manifest.default_head.as_deref(), Some("mine"));
    assert_eq!(
        std::fs::read(bundle.path().join("head-mine.safetensors")).unwrap(),
        bytes
    );
    let photo = fixture("skimage_coffee.png").display().to_string();
    let out = lucy(
        &["predict", "--head", "mine", "--top", "1", &photo],
        bundle.path(),
    );
    assert!(text(&out.stdout).contains("Lucy"), "{}", text(&out.stdout));

    // Refused, with the bundle unchanged: a bad name, a photo posing as a head, a head
    // made for another backbone.
    let before = std::fs::read(bundle.path().join("manifest.json")).unwrap();
    let out = lucy(&["add-head", &file_s, "--name", "../x"], bundle.path());
    assert_clean_failure(&out, &["head name"]);
    let out = lucy(&["add-head", &photo, "--name", "photo"], bundle.path());
    assert_clean_failure(&out, &["not a valid bundle file"]);
    let wrong = lucy::weights::bundle::encode_head("w", &labels, &vec![0.1; 1024 * 2], &[0.0; 2]);
    std::fs::write(&file, wrong).unwrap();
    let out = lucy(&["add-head", &file_s, "--name", "wrong"], bundle.path());
    assert_clean_failure(&out, &["does not fit"]);
    assert_eq!(
        std::fs::read(bundle.path().join("manifest.json")).unwrap(),
        before
    );
}

#[test]
fn import_is_cached_and_help_explains() {
    let out = lucy(&["import"], &weights_dir());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("up to date"));

    let help = lucy(&["predict", "--help"], &weights_dir());
    let help = text(&help.stdout);
    for flag in ["--head", "--precision", "--top", "--json"] {
        assert!(help.contains(flag), "{help}");
    }
}

/// The profile lists every convolution once, each with its input shape, output channels, an
/// algorithm name and its fastest and median times (which algorithm runs where is the
/// backbone's own choice), and the whole pass's time with its convolutions'.
#[test]
fn bench_layers_profiles_every_convolution() {
    let out = lucy(
        &["bench", "--layers", "--runs", "1", "--json"],
        &weights_dir(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let layers = report["layers"].as_array().unwrap();
    let specs = lucy::model::conv_specs();
    assert_eq!(layers.len(), specs.len());
    for spec in &specs {
        let found: Vec<&serde_json::Value> =
            layers.iter().filter(|l| l["name"] == spec.name).collect();
        assert_eq!(found.len(), 1, "{} once", spec.name);
        let layer = found[0];
        let [h, w, c] = [0, 1, 2].map(|i| layer["input"][i].as_u64().unwrap() as usize);
        assert_eq!(c, spec.in_channels, "{}", spec.name);
        assert_eq!(h, w, "{}", spec.name);
        assert!(
            [224, 56, 28, 14, 7].contains(&h),
            "{}: input side {h}",
            spec.name
        );
        assert_eq!(layer["out_channels"], spec.out_channels, "{}", spec.name);
        assert!(!layer["algorithm"].as_str().unwrap().is_empty());
        let ms = layer["ms"].as_f64().unwrap();
        assert!(ms.is_finite() && ms >= 0.0, "{}: {ms} ms", spec.name);
        let median = layer["median_ms"].as_f64().unwrap();
        assert!(
            median >= ms,
            "{}: median {median} under the fastest {ms}",
            spec.name
        );
    }
    // The whole pass holds its convolutions.
    let (pass, convolutions) = (
        report["pass_ms"].as_f64().unwrap(),
        report["convolutions_ms"].as_f64().unwrap(),
    );
    assert!(
        convolutions > 0.0 && pass >= convolutions,
        "{pass} ms pass, {convolutions} ms convolutions"
    );
    // The stem sees the photo; the last stage's 3x3 convolutions see 7x7.
    let input = |name: &str| layers.iter().find(|l| l["name"] == name).unwrap()["input"].clone();
    assert_eq!(input("conv1"), serde_json::json!([224, 224, 3]));
    assert_eq!(input("res5c_branch2b"), serde_json::json!([7, 7, 512]));
}

/// `lucy … | head` stops quietly when the reader goes away, instead of panicking.
#[cfg(unix)]
#[test]
fn a_closed_pipe_is_not_a_panic() {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_lucy"))
        .args(["bench", "--layers", "--runs", "1"])
        .env("LUCY_WEIGHTS", weights_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lucy runs");
    drop(child.stdout.take()); // the reader goes away before lucy prints anything
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    child.wait().unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `lucy explain`: the top class's 7 x 7 map as JSON (0..1, strongest cell 1), a picture of the
/// photo with the map and a legend, and an unknown `--label` answered with close matches.
#[test]
fn explain_gives_the_map_as_numbers_and_as_a_picture() {
    let photo = fixture("skimage_chelsea_cat.png").display().to_string();
    let out = lucy(&["explain", "--json", &photo], &weights_dir());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report[0]["label"], "Egyptian_cat");
    let grid = report[0]["grid"].as_array().unwrap();
    assert_eq!(grid.len(), 7);
    let cells: Vec<f64> = grid
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
        .collect();
    assert_eq!(cells.len(), 49);
    assert!(cells.iter().all(|v| (0.0..=1.0).contains(v)));
    assert_eq!(cells.iter().copied().fold(0.0, f64::max), 1.0);

    let dir = tempfile::tempdir().unwrap();
    let picture = dir.path().join("why.png");
    let out = lucy(
        &[
            "explain",
            "--label",
            "tabby",
            "--out",
            &picture.display().to_string(),
            &photo,
        ],
        &weights_dir(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("tabby"));
    let image = image::open(&picture).unwrap();
    // The whole photo (451 x 300), the legend below it.
    assert_eq!(image.width(), 451);
    assert!(image.height() > 300);

    let out = lucy(&["explain", "--label", "espreso", &photo], &weights_dir());
    assert_clean_failure(&out, &["espreso", "closest: espresso"]);
}

/// A folder of `good` photos (the two CC0 fixtures, hard-linked in turn) and the damaged
/// fixtures, in sub-folders too; also a text file the walk must skip.
fn photo_folder(good: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("more")).unwrap();
    for i in 0..good {
        let source = fixture(["skimage_chelsea_cat.png", "skimage_coffee.png"][i % 2]);
        let sub = if i % 3 == 0 { "more/" } else { "" };
        let target = dir.path().join(format!("{sub}photo-{i:05}.png"));
        std::fs::hard_link(&source, &target)
            .or_else(|_| std::fs::copy(&source, &target).map(drop))
            .unwrap();
    }
    for bad in ["truncated.jpg", "not-a-photo.jpg", "empty.jpg"] {
        std::fs::copy(fixture(bad), dir.path().join(bad)).unwrap();
    }
    std::fs::write(dir.path().join("notes.txt"), "not a photo, not looked at").unwrap();
    dir
}

/// A folder streams: one JSON array, valid with bad photos in it, each bad photo one line on
/// stderr, every photo once, in name order.
#[test]
fn predict_on_a_folder_streams_valid_json_with_bad_photos() {
    let folder = photo_folder(20);
    let out = lucy(
        &[
            "predict",
            "--json",
            "--top",
            "1",
            &folder.path().display().to_string(),
        ],
        &weights_dir(),
    );
    let stderr = assert_clean_failure(&out, &["3 of 23 photos could not be classified"]);
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 23);
    let files: Vec<&str> = results
        .iter()
        .map(|r| r["file"].as_str().unwrap())
        .collect();
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(files, sorted, "name order");
    let errors: Vec<&serde_json::Value> = results
        .iter()
        .filter(|r| r.get("error").is_some())
        .collect();
    assert_eq!(errors.len(), 3);
    for r in results.iter().filter(|r| r.get("error").is_none()) {
        let label = r["predictions"][0]["label"].as_str().unwrap();
        assert!(["Egyptian_cat", "espresso"].contains(&label), "{r}");
    }
    assert_eq!(
        stderr.lines().count(),
        4,
        "one line per bad photo, one summary: {stderr}"
    );
}

/// Peak resident memory of a run (Linux: the kernel's high-water mark, read until it exits).
#[cfg(target_os = "linux")]
fn peak_memory_mb(args: &[&str]) -> f64 {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lucy"))
        .args(args)
        .env("LUCY_WEIGHTS", weights_dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(status) = std::fs::read_to_string(&status_file) {
            let hwm = status.lines().find_map(|l| l.strip_prefix("VmHWM:"));
            if let Some(kb) = hwm.and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            {
                peak_kb = peak_kb.max(kb);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    peak_kb as f64 / 1024.0
}

/// Ten times the photos, the same memory: nothing grows with the folder.
#[cfg(target_os = "linux")]
#[test]
fn predict_memory_does_not_grow_with_the_folder() {
    let (small, large) = (photo_folder(16), photo_folder(160));
    let run = |dir: &tempfile::TempDir| {
        peak_memory_mb(&["predict", "--json", &dir.path().display().to_string()])
    };
    let (small_mb, large_mb) = (run(&small), run(&large));
    assert!(
        small_mb > 50.0,
        "the weights alone are more than 50 MB: {small_mb}"
    );
    assert!(
        large_mb < small_mb + 48.0,
        "16 photos: {small_mb:.0} MB peak, 160 photos: {large_mb:.0} MB peak"
    );
}

/// Ctrl-C: the run stops after the photos in hand, the JSON array is closed, exit code 130.
#[cfg(unix)]
#[test]
fn ctrl_c_stops_predict_cleanly() {
    use std::io::{BufRead, BufReader};
    let folder = photo_folder(400);
    let mut child = Command::new(env!("CARGO_BIN_EXE_lucy"))
        .args([
            "predict",
            "--json",
            "--top",
            "1",
            &folder.path().display().to_string(),
        ])
        .env("LUCY_WEIGHTS", weights_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut json = String::new();
    // Wait for the first results, then interrupt.
    while !json.contains("predictions") {
        assert!(
            stdout.read_line(&mut json).unwrap() > 0,
            "no results: {json}"
        );
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    std::io::Read::read_to_string(&mut stdout, &mut json).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("stopped by Ctrl-C after"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let results: serde_json::Value = serde_json::from_str(&json).expect("valid JSON after Ctrl-C");
    let n = results.as_array().unwrap().len();
    assert!(n > 0 && n < 403, "{n} results");
}
