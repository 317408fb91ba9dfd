//! `lucy train` and `lucy eval` end to end on real photos (../shared/data/catsdogs; the dog
//! plays Lucy), with the real weights.
#![cfg(feature = "train")]

mod common;

use std::path::Path;
use std::process::Output;

use common::{catsdogs, private_bundle};
use serde_json::Value;

/// `lucy`, never panicking.
fn lucy(args: &[&str], weights: &Path) -> Output {
    let out = common::lucy(args, weights);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    out
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "lucy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every test here trains on ../shared photos (`LUCY_SHARED`); `./scripts/test` names and
/// skips them when that folder is absent.
mod shared {
    use super::*;

    #[test]
    fn train_then_eval_and_predict_on_catsdogs() {
        let bundle = private_bundle();
        let cache = tempfile::tempdir().unwrap();
        let data = catsdogs();
        let (data_s, cache_s) = (
            data.display().to_string(),
            cache.path().display().to_string(),
        );

        // Cold: every photo goes through the backbone once.
        let train = |extra: &[&str]| {
            let mut args = vec!["train", &data_s, "--cache-dir", &cache_s, "--device", "cpu"];
            args.extend_from_slice(extra);
            ok(lucy(&args, bundle.path()))
        };
        let stdout = train(&["--name", "catsdogs"]);
        println!("{stdout}");
        let metrics = read_json(&bundle.path().join("head-catsdogs.metrics.json"));
        assert_eq!(metrics["classes"], serde_json::json!(["cat", "dog"]));
        assert_eq!(metrics["features"]["backbone_passes"], 273 + 56 + 24);
        let val_accuracy = metrics["val_accuracy"].as_f64().unwrap();
        assert!(val_accuracy >= 0.95, "val accuracy {val_accuracy}");
        assert!(bundle.path().join("head-catsdogs.svg").is_file());
        let manifest = read_json(&bundle.path().join("manifest.json"));
        let head = manifest["heads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == "catsdogs");
        // Registered by name and file; the labels live in the head file only.
        assert_eq!(
            head.unwrap(),
            &serde_json::json!({"name": "catsdogs", "file": "head-catsdogs.safetensors"})
        );

        // `lucy eval` on the test split: accuracy at least the original experiment's 0.96.
        let report: Value = serde_json::from_str(&ok(lucy(
            &[
                "eval",
                &data_s,
                "--head",
                "catsdogs",
                "--json",
                "--cache-dir",
                &cache_s,
                "--device",
                "cpu",
            ],
            bundle.path(),
        )))
        .unwrap();
        let accuracy = report["accuracy"].as_f64().unwrap();
        println!(
            "eval: test accuracy {accuracy}, misclassified {}",
            report["misclassified"]
        );
        assert_eq!(report["photos"], 24);
        assert!(accuracy >= 0.96, "test accuracy {accuracy}");

        // `lucy predict --head catsdogs` agrees with `lucy eval` on every test photo.
        let mut photos: Vec<(String, String)> = Vec::new();
        for class in ["cat", "dog"] {
            for entry in std::fs::read_dir(data.join("test").join(class)).unwrap() {
                photos.push((
                    entry.unwrap().path().display().to_string(),
                    class.to_string(),
                ));
            }
        }
        let mut args = vec!["predict", "--head", "catsdogs", "--top", "1", "--json"];
        args.extend(photos.iter().map(|(p, _)| p.as_str()));
        let predictions: Value = serde_json::from_str(&ok(lucy(&args, bundle.path()))).unwrap();
        let misclassified = report["misclassified"].as_array().unwrap();
        for (i, (path, truth)) in photos.iter().enumerate() {
            let expected = misclassified
                .iter()
                .find(|m| m["file"] == *path)
                .map_or(truth.as_str(), |m| m["predicted"].as_str().unwrap());
            assert_eq!(
                predictions[i]["predictions"][0]["label"], expected,
                "{path}"
            );
        }

        // Warm: another learning rate does no backbone work; the same seed gives the same bytes.
        let out_a = bundle.path().join("a.safetensors").display().to_string();
        let out_b = bundle.path().join("b.safetensors").display().to_string();
        train(&["--name", "lr", "--learning-rate", "0.003", "--out", &out_a]);
        let warm = read_json(&bundle.path().join("a.metrics.json"));
        assert_eq!(
            warm["features"]["backbone_passes"], 0,
            "the feature cache was not used"
        );
        train(&["--name", "lr", "--learning-rate", "0.003", "--out", &out_b]);
        assert_eq!(
            std::fs::read(&out_a).unwrap(),
            std::fs::read(&out_b).unwrap()
        );
        // A head file written with --out loads by path.
        ok(lucy(
            &["predict", "--head", &out_a, &photos[0].0],
            bundle.path(),
        ));
    }

    /// A tiny data set from real photos, for the bad-input cases.
    fn small_set(dir: &Path) {
        let data = catsdogs();
        for (split, count) in [("train", 6), ("val", 2)] {
            for class in ["cat", "dog"] {
                let target = dir.join(split).join(class);
                std::fs::create_dir_all(&target).unwrap();
                let mut files: Vec<_> = std::fs::read_dir(data.join(split).join(class))
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .collect();
                files.sort();
                for file in files.iter().take(count) {
                    std::fs::copy(file, target.join(file.file_name().unwrap())).unwrap();
                }
            }
        }
    }

    #[test]
    fn unreadable_photos_are_skipped_and_duplicates_named() {
        let bundle = private_bundle();
        let cache = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        small_set(data.path());
        std::fs::write(data.path().join("train/cat/notes.jpg"), "not a photo").unwrap();
        std::fs::write(data.path().join("train/dog/empty.png"), "").unwrap();
        // The same photo in train and val.
        let first_train_dog = std::fs::read_dir(data.path().join("train/dog"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "jpg"))
            .unwrap();
        std::fs::copy(&first_train_dog, data.path().join("val/dog/copy.jpg")).unwrap();

        let out = lucy(
            &[
                "train",
                &data.path().display().to_string(),
                "--name",
                "small",
                "--epochs",
                "3",
                "--cache-dir",
                &cache.path().display().to_string(),
                "--device",
                "cpu",
            ],
            bundle.path(),
        );
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        ok(out);
        assert!(
            stderr.contains("notes.jpg") && stderr.contains("empty.png"),
            "{stderr}"
        );
        assert!(stderr.contains("skipped 2 unreadable photo(s)"), "{stderr}");
        assert!(
            stderr.contains("copy.jpg")
                && stderr.contains(first_train_dog.file_name().unwrap().to_str().unwrap()),
            "{stderr}"
        );
        let metrics = read_json(&bundle.path().join("head-small.metrics.json"));
        assert_eq!(metrics["skipped"].as_array().unwrap().len(), 2);
        assert_eq!(metrics["duplicates"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn bad_layouts_fail_before_any_work() {
        let bundle = private_bundle();
        let data = tempfile::tempdir().unwrap();
        small_set(data.path());
        std::fs::remove_dir_all(data.path().join("val/dog")).unwrap();
        let out = lucy(
            &[
                "train",
                &data.path().display().to_string(),
                "--device",
                "cpu",
            ],
            bundle.path(),
        );
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("`dog`") && stderr.contains("val"),
            "{stderr}"
        );

        let one_class = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(one_class.path().join("lucy")).unwrap();
        std::fs::write(one_class.path().join("lucy/a.jpg"), "x").unwrap();
        let out = lucy(
            &["train", &one_class.path().display().to_string()],
            bundle.path(),
        );
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("at least two"));

        // No head file and no manifest change after a failed run.
        assert!(!bundle.path().join("head-lucy.safetensors").exists());
    }

    /// `--augment` is reproducible: two cold runs (separate feature caches, so every augmented
    /// view is computed again) give byte-identical features and heads.
    #[test]
    fn augmented_training_is_reproducible_from_the_seed() {
        let bundle = private_bundle();
        let data = tempfile::tempdir().unwrap();
        small_set(data.path());
        let run = |name: &str| {
            let cache = tempfile::tempdir().unwrap();
            let out = bundle.path().join(format!("{name}.safetensors"));
            ok(lucy(
                &[
                    "train",
                    &data.path().display().to_string(),
                    "--augment",
                    "2",
                    "--epochs",
                    "3",
                    "--seed",
                    "7",
                    "--cache-dir",
                    &cache.path().display().to_string(),
                    "--out",
                    &out.display().to_string(),
                    "--device",
                    "cpu",
                ],
                bundle.path(),
            ));
            let metrics = read_json(&bundle.path().join(format!("{name}.metrics.json")));
            // 12 training photos x (1 + 2 views), 4 validation photos: all computed.
            assert_eq!(metrics["features"]["backbone_passes"], 12 * 3 + 4);
            (std::fs::read(out).unwrap(), cached_features(cache.path()))
        };
        let (head_a, features_a) = run("a");
        let (head_b, features_b) = run("b");
        assert_eq!(features_a.len(), 12 * 3 + 4);
        assert!(features_a == features_b, "augmented features differ");
        assert_eq!(head_a, head_b, "same seed, same head");
    }
}

/// Every cached feature file under `dir`, by name (content hash + view), with its bytes.
fn cached_features(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    common::files_under(dir)
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect()
}
