//! Failure drills: a full disk while writing the bundle or a head, a wrong npm tarball, a
//! damaged download, a head with NaN weights. Each ends in a clear message and leaves what
//! was on disk exactly as it was.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use lucy::weights::import::TARBALL_NAME;

/// `lucy` with a file-size limit: every write past it fails with "File too large", partway
/// through, as on a full disk. (The limit is in `ulimit -f` blocks: 512 or 1024 bytes
/// depending on the shell; the drills leave room for both.)
#[cfg(unix)]
fn lucy_on_a_full_disk(args: &[&str], weights: &Path, blocks: u64) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            r#"trap '' XFSZ; ulimit -f {blocks}; exec "$0" "$@""#
        ))
        .arg(env!("CARGO_BIN_EXE_lucy"))
        .args(args)
        .env("LUCY_WEIGHTS", weights)
        .output()
        .expect("lucy runs")
}

/// Every file of a folder with its bytes' sha256.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (
                name,
                lucy::weights::bundle::sha256_hex(&std::fs::read(&path).unwrap()),
            )
        })
        .collect()
}

/// The npm tarball `lucy import` downloaded (fetched again into the usual cache if gone).
fn tarball() -> PathBuf {
    let cache = lucy::weights::dir::default_cache_dir();
    let path = cache.join(TARBALL_NAME);
    if !path.exists() {
        let scratch = tempfile::tempdir().unwrap();
        let out = lucy(
            &["import", "--cache-dir", &cache.display().to_string()],
            scratch.path(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    path
}

fn classifies(weights: &Path) {
    let photo = fixture("skimage_coffee.png").display().to_string();
    let out = lucy(&["predict", "--top", "1", &photo], weights);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("espresso"));
}

#[cfg(unix)]
#[test]
fn a_full_disk_during_import_leaves_the_bundle_as_it_was() {
    let bundle = private_bundle();
    let before = snapshot(bundle.path());
    let tgz = tarball().display().to_string();
    // 10 or 20 MB: the first backbone file (25.6 MB) cannot be written.
    let out = lucy_on_a_full_disk(
        &["import", "--force", "--tarball", &tgz],
        bundle.path(),
        20_000,
    );
    assert_clean_failure(&out, &["File too large", "is unchanged"]);
    assert_eq!(
        snapshot(bundle.path()),
        before,
        "no file changed, none left behind"
    );
    classifies(bundle.path());
}

#[cfg(all(unix, feature = "train"))]
#[test]
fn a_full_disk_while_registering_a_head_keeps_the_old_head() {
    let bundle = private_bundle();
    let cache = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    for (class, photo) in [
        ("cat", "skimage_chelsea_cat.png"),
        ("coffee", "skimage_coffee.png"),
    ] {
        std::fs::create_dir(data.path().join(class)).unwrap();
        for i in 0..5 {
            std::fs::copy(fixture(photo), data.path().join(format!("{class}/{i}.png"))).unwrap();
        }
    }
    let (data_s, cache_s) = (
        data.path().display().to_string(),
        cache.path().display().to_string(),
    );
    let train = |seed: &str| {
        vec![
            "train",
            &data_s,
            "--name",
            "drill",
            "--epochs",
            "2",
            "--seed",
            seed,
            "--cache-dir",
            &cache_s,
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<String>>()
    };
    let args = train("1");
    let out = lucy(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        bundle.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = snapshot(bundle.path());

    // Features are cached now: the only big write left is the head (16 KB; the limit is 4 or
    // 8 KB). Another seed would give another head.
    let args = train("2");
    let out = lucy_on_a_full_disk(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        bundle.path(),
        8,
    );
    assert_clean_failure(&out, &["head-drill.safetensors", "File too large"]);
    assert_eq!(
        snapshot(bundle.path()),
        before,
        "the old head and manifest, nothing else"
    );
    let photo = fixture("skimage_coffee.png").display().to_string();
    let out = lucy(
        &["predict", "--head", "drill", "--top", "1", &photo],
        bundle.path(),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("coffee"));
}

#[test]
fn an_npm_tarball_with_the_wrong_sha256_is_refused() {
    let bundle = private_bundle();
    let before = snapshot(bundle.path());
    let mut bytes = std::fs::read(tarball()).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    let scratch = tempfile::tempdir().unwrap();
    let given = scratch.path().join("resnet.tgz");
    std::fs::write(&given, &bytes).unwrap();
    let out = lucy(
        &[
            "import",
            "--force",
            "--tarball",
            &given.display().to_string(),
        ],
        bundle.path(),
    );
    assert_clean_failure(
        &out,
        &[
            "resnet.tgz has sha256",
            lucy::weights::import::TARBALL_SHA256,
            "damaged",
        ],
    );
    assert!(given.exists(), "a file the user named is never deleted");

    // A damaged download in the cache is removed, so the next run downloads it again.
    let cache = tempfile::tempdir().unwrap();
    let cached = cache.path().join(TARBALL_NAME);
    std::fs::write(&cached, &bytes[..bytes.len() / 3]).unwrap();
    let out = lucy(
        &[
            "import",
            "--force",
            "--cache-dir",
            &cache.path().display().to_string(),
        ],
        bundle.path(),
    );
    assert_clean_failure(&out, &["has sha256", "run `lucy import` again"]);
    assert!(!cached.exists());
    assert_eq!(snapshot(bundle.path()), before);
}

#[test]
fn a_head_file_with_nan_weights_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let labels = vec!["Lucy".to_string(), "Other".to_string()];
    let mut weight = vec![0.01; 2048 * 2];
    weight[4000] = f32::NAN;
    let path = dir.path().join("nan.safetensors");
    std::fs::write(
        &path,
        lucy::weights::bundle::encode_head("nan", &labels, &weight, &[0.0; 2]),
    )
    .unwrap();
    let photo = fixture("skimage_coffee.png").display().to_string();
    let out = lucy(
        &["predict", "--head", &path.display().to_string(), &photo],
        &weights_dir(),
    );
    assert_clean_failure(
        &out,
        &["nan.safetensors", "`weight`", "not a finite number"],
    );
}
