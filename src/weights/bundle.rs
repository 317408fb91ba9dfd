//! The weights bundle: safetensors files plus `manifest.json`, the same on disk and on the web.
//!
//! - backbone, f32: `<conv>.weight` (OIHW) and `<conv>.bias`, batch-norm folded;
//! - backbone, int8: `<conv>.weight.q` (i8) and `<conv>.weight.scale` (f32 per output channel),
//!   biases in f32; dequantized once when loaded;
//! - head: `weight` [2048, N], `bias` [N], and its labels in the file's metadata, so a head
//!   file is self-contained (the page can load one from disk).
//!
//! Every file is checked against the manifest's size and sha256 before it is parsed.

use std::collections::{BTreeMap, HashMap};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::quant::{QuantizedTensor, dequantize, quantize_per_channel};
use crate::model::{Arithmetic, Backbone, HeadWeights, Int8Kernel, ModelError, NamedTensors};
use crate::preprocess::Preprocessing;

pub const MANIFEST_FILE: &str = "manifest.json";
/// The head every bundle has: ImageNet's fc1000 with its 1000 labels.
pub const IMAGENET_HEAD: &str = "imagenet";
pub const IMAGENET_HEAD_FILE: &str = "head-imagenet.safetensors";
pub const FORMAT_VERSION: u32 = 1;
/// What to run when the bundle is missing or damaged.
pub const REBUILD_HINT: &str =
    "rebuild the weights with `lucy import --force` (or the README's serve command)";

const HEAD_METADATA_KEY: &str = "lucy_head";

#[derive(Serialize, Deserialize)]
struct HeadMeta {
    name: String,
    labels: Vec<String>,
}

const QUANTIZED_SUFFIX: &str = ".q";
const SCALE_SUFFIX: &str = ".scale";

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("weights file `{file}` is missing; {hint}", hint = REBUILD_HINT)]
    Missing { file: String },
    #[error(
        "weights file `{file}` is damaged: it has {got} bytes, the manifest says {expected}; {hint}",
        hint = REBUILD_HINT
    )]
    Size {
        file: String,
        expected: u64,
        got: u64,
    },
    #[error(
        "weights file `{file}` is damaged: its sha256 is {got}, the manifest says {expected}; {hint}",
        hint = REBUILD_HINT
    )]
    Checksum {
        file: String,
        expected: String,
        got: String,
    },
    #[error("weights file `{file}` is not a valid bundle file: {reason}")]
    Format { file: String, reason: String },
    // The cause is part of the message and deliberately not a `#[source]`: error chains
    // (`anyhow`'s `{:#}`) would print it twice.
    #[error("cannot read or write `{file}`: {error}")]
    Io { file: String, error: std::io::Error },
    #[error("the manifest is unreadable: {0}; {hint}", hint = REBUILD_HINT)]
    Manifest(String),
    #[error("no head named `{0}` in the manifest (known: {1})")]
    UnknownHead(String, String),
    #[error("weights file `{file}` does not fit the model: {error}")]
    Model { file: String, error: ModelError },
}

/// Which backbone file to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    Int8,
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Int8 => "int8",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub size_bytes: u64,
    pub sha256: String,
}

impl FileEntry {
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            size_bytes: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadEntry {
    pub name: String,
    pub file: String,
    // No labels here: the head file holds them (one source of truth). Manifests written
    // before this kept a copy, which parsing ignores.
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub package: String,
    pub tarball_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub source: Source,
    pub preprocessing: Preprocessing,
    pub backbones: BTreeMap<Precision, String>,
    pub heads: Vec<HeadEntry>,
    /// The head the page starts with (`lucy add-head --default`); ImageNet's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_head: Option<String>,
    /// Every file of the bundle, by name relative to the manifest.
    #[serde(deserialize_with = "map_without_repeats")]
    pub files: BTreeMap<String, FileEntry>,
}

impl Manifest {
    pub fn parse(bytes: &[u8]) -> Result<Self, WeightsError> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| WeightsError::Manifest(e.to_string()))?;
        if manifest.format_version != FORMAT_VERSION {
            return Err(WeightsError::Manifest(format!(
                "format version {} (this lucy reads {FORMAT_VERSION})",
                manifest.format_version
            )));
        }
        if manifest.preprocessing != Preprocessing::current() {
            return Err(WeightsError::Manifest(
                "it was made for other preprocessing constants than this lucy uses".into(),
            ));
        }
        manifest.check_names()?;
        Ok(manifest)
    }

    /// Every file is a plain name in the manifest's own directory (the page fetches
    /// `weights/<name>`, the CLI reads `<dir>/<name>`: no `..`, no sub-paths), everything the
    /// manifest points at is listed with its checksum, and no head name is used twice.
    fn check_names(&self) -> Result<(), WeightsError> {
        let bad = |reason: String| Err(WeightsError::Manifest(reason));
        if let Some(name) = self.files.keys().find(|name| !is_plain_file_name(name)) {
            return bad(format!(
                "it lists the file {name:?}, which is not a plain file name in its directory"
            ));
        }
        let referenced = self
            .backbones
            .values()
            .chain(self.heads.iter().map(|h| &h.file));
        for file in referenced {
            if !self.files.contains_key(file) {
                return bad(format!(
                    "it uses the file {file:?} without listing its checksum"
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for head in &self.heads {
            if head.name.is_empty() || !names.insert(head.name.as_str()) {
                return bad(format!(
                    "it lists the head name {:?} twice or empty",
                    head.name
                ));
            }
        }
        if let Some(default) = &self.default_head
            && !names.contains(default.as_str())
        {
            return bad(format!(
                "its default head {default:?} is not one of its heads"
            ));
        }
        Ok(())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("manifest serialises") + "\n"
    }

    pub fn backbone_file(&self, precision: Precision) -> Result<&str, WeightsError> {
        self.backbones
            .get(&precision)
            .map(String::as_str)
            .ok_or_else(|| WeightsError::Manifest(format!("it lists no {precision} backbone")))
    }

    pub fn head(&self, name: &str) -> Result<&HeadEntry, WeightsError> {
        self.heads.iter().find(|h| h.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.heads.iter().map(|h| h.name.as_str()).collect();
            WeightsError::UnknownHead(name.into(), known.join(", "))
        })
    }

    /// Size first (cheap), then sha256.
    pub fn verify(&self, file: &str, bytes: &[u8]) -> Result<(), WeightsError> {
        let entry = self
            .files
            .get(file)
            .ok_or_else(|| WeightsError::Manifest(format!("it does not list the file `{file}`")))?;
        if entry.size_bytes != bytes.len() as u64 {
            return Err(WeightsError::Size {
                file: file.into(),
                expected: entry.size_bytes,
                got: bytes.len() as u64,
            });
        }
        let got = sha256_hex(bytes);
        if got != entry.sha256 {
            return Err(WeightsError::Checksum {
                file: file.into(),
                expected: entry.sha256.clone(),
                got,
            });
        }
        Ok(())
    }
}

fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', ':'])
        && !name.chars().any(char::is_control)
}

/// A JSON object read into a map, refusing a key given twice: JSON parsers disagree on which
/// copy wins (serde keeps the last, a browser's `JSON.parse` too, others the first), so a
/// manifest listing a file twice could be checked against one entry and served with the other.
fn map_without_repeats<'de, D, V>(deserializer: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Unique<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Unique<V> {
        type Value = BTreeMap<String, V>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object whose keys are all different")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<String, V>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!(
                        "the file {key:?} is listed twice"
                    )));
                }
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_map(Unique(std::marker::PhantomData))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A head read from its file: tensors for `model::Head` and one label per output.
#[derive(Debug, Clone)]
pub struct HeadFile {
    /// The file it was read from (named in errors).
    pub file: String,
    pub name: String,
    pub labels: Vec<String>,
    pub tensors: NamedTensors,
}

impl HeadFile {
    /// The head's weights, checked to fit the backbone and to have one label per output.
    pub fn into_weights(self) -> Result<(HeadWeights, Vec<String>), WeightsError> {
        let HeadFile {
            file,
            labels,
            tensors,
            ..
        } = self;
        let model_error = |error| WeightsError::Model {
            file: file.clone(),
            error,
        };
        let weights = HeadWeights::from_tensors(tensors).map_err(model_error)?;
        if weights.classes != labels.len() {
            return Err(model_error(ModelError::LabelCount {
                weights: weights.classes,
                labels: labels.len(),
            }));
        }
        Ok((weights, labels))
    }
}

/// Load a backbone from the bytes of a bundle file (f32 or int8) for `device`. On the CPU an
/// int8 file is computed in int8 ([`Arithmetic::Int8`]) where this CPU's int8 kernel beats f32
/// (AVX-512 VNNI, wasm SIMD128), else in f32 like an f32 file.
pub fn load_backbone(
    file: &str,
    bytes: &[u8],
    device: &burn::prelude::Device,
) -> Result<Backbone, WeightsError> {
    let (tensors, precision) = decode_backbone_file(file, bytes)?;
    let arithmetic = match precision {
        Precision::F32 => Arithmetic::F32,
        Precision::Int8 if Int8Kernel::best().beats_f32() => Arithmetic::Int8,
        Precision::Int8 => Arithmetic::F32,
    };
    Backbone::from_tensors(tensors, device, arithmetic).map_err(|error| WeightsError::Model {
        file: file.into(),
        error,
    })
}

/// Serialise a backbone. int8 quantizes every 4-D weight per output channel.
pub fn encode_backbone(tensors: &NamedTensors, precision: Precision) -> Vec<u8> {
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, (shape, values)) in tensors {
        if precision == Precision::Int8 && shape.len() == 4 {
            let q = quantize_per_channel(values, shape[0]);
            let bytes = q.values.iter().map(|&v| v as u8).collect();
            owned.push((
                format!("{name}{QUANTIZED_SUFFIX}"),
                Dtype::I8,
                shape.clone(),
                bytes,
            ));
            owned.push((
                format!("{name}{SCALE_SUFFIX}"),
                Dtype::F32,
                vec![shape[0]],
                f32_bytes(&q.scales),
            ));
        } else {
            owned.push((name.clone(), Dtype::F32, shape.clone(), f32_bytes(values)));
        }
    }
    let metadata = HashMap::from([("lucy".to_string(), format!("backbone/{precision}"))]);
    serialize(&owned, metadata)
}

/// Serialise a head with its labels.
pub fn encode_head(name: &str, labels: &[String], weight: &[f32], bias: &[f32]) -> Vec<u8> {
    let classes = labels.len();
    let owned = vec![
        (
            "weight".to_string(),
            Dtype::F32,
            vec![weight.len() / classes.max(1), classes],
            f32_bytes(weight),
        ),
        (
            "bias".to_string(),
            Dtype::F32,
            vec![classes],
            f32_bytes(bias),
        ),
    ];
    // One metadata key holding ordered JSON: safetensors writes its metadata map in hash
    // order, and the same head must give the same bytes (reproducible training).
    let meta = HeadMeta {
        name: name.to_string(),
        labels: labels.to_vec(),
    };
    let metadata = HashMap::from([(
        HEAD_METADATA_KEY.to_string(),
        serde_json::to_string(&meta).expect("head metadata serialises"),
    )]);
    serialize(&owned, metadata)
}

/// Parse a backbone file (f32 or int8) into f32 tensors.
pub fn decode_backbone(file: &str, bytes: &[u8]) -> Result<NamedTensors, WeightsError> {
    Ok(decode_backbone_file(file, bytes)?.0)
}

/// [`decode_backbone`], and whether the file held int8 weights.
fn decode_backbone_file(
    file: &str,
    bytes: &[u8],
) -> Result<(NamedTensors, Precision), WeightsError> {
    let format = |reason: String| WeightsError::Format {
        file: file.into(),
        reason,
    };
    let st = SafeTensors::deserialize(bytes).map_err(|e| format(e.to_string()))?;
    let mut out = NamedTensors::new();
    let mut precision = Precision::F32;
    for (name, view) in st.iter() {
        if name.ends_with(SCALE_SUFFIX) {
            continue;
        }
        let shape = view.shape().to_vec();
        if let Some(base) = name.strip_suffix(QUANTIZED_SUFFIX) {
            let scale_name = format!("{base}{SCALE_SUFFIX}");
            let scales = st
                .tensor(&scale_name)
                .map_err(|_| format(format!("`{name}` has no `{scale_name}`")))?;
            let q = QuantizedTensor {
                values: expect_dtype(name, &view, Dtype::I8)
                    .map_err(format)?
                    .iter()
                    .map(|&b| b as i8)
                    .collect(),
                scales: read_f32(&scale_name, &scales).map_err(format)?,
            };
            if shape.first() != Some(&q.scales.len()) {
                return Err(format(format!("`{scale_name}` does not match `{name}`")));
            }
            out.insert(base.to_string(), (shape, dequantize(&q)));
            precision = Precision::Int8;
        } else {
            out.insert(
                name.to_string(),
                (shape, read_f32(name, &view).map_err(format)?),
            );
        }
    }
    Ok((out, precision))
}

/// Parse a head file: tensors plus labels from its metadata.
pub fn decode_head(file: &str, bytes: &[u8]) -> Result<HeadFile, WeightsError> {
    let format = |reason: String| WeightsError::Format {
        file: file.into(),
        reason,
    };
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| format(e.to_string()))?;
    let meta: HeadMeta = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(HEAD_METADATA_KEY))
        .ok_or_else(|| {
            format("not a lucy head file (made by `lucy train` or `lucy import`)".into())
        })
        .and_then(|json| {
            serde_json::from_str(json)
                .map_err(|e| format(format!("its labels are unreadable: {e}")))
        })?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| format(e.to_string()))?;
    let mut tensors = NamedTensors::new();
    for (name, view) in st.iter() {
        tensors.insert(
            name.to_string(),
            (
                view.shape().to_vec(),
                read_f32(name, &view).map_err(format)?,
            ),
        );
    }
    Ok(HeadFile {
        file: file.to_string(),
        name: meta.name,
        labels: meta.labels,
        tensors,
    })
}

fn serialize(
    owned: &[(String, Dtype, Vec<usize>, Vec<u8>)],
    metadata: HashMap<String, String>,
) -> Vec<u8> {
    let views = owned.iter().map(|(name, dtype, shape, bytes)| {
        let view = TensorView::new(*dtype, shape.clone(), bytes).expect("shape matches bytes");
        (name.as_str(), view)
    });
    safetensors::serialize(views, Some(metadata)).expect("tensors serialise")
}

/// f32 values as little-endian bytes (safetensors, TF.js shards and the feature cache all use it).
pub(crate) fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Little-endian bytes as f32 values (a trailing partial value is ignored).
pub(crate) fn f32_from_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn expect_dtype<'a>(name: &str, view: &TensorView<'a>, dtype: Dtype) -> Result<&'a [u8], String> {
    if view.dtype() != dtype {
        return Err(format!(
            "`{name}` is {:?}, expected {dtype:?}",
            view.dtype()
        ));
    }
    Ok(view.data())
}

fn read_f32(name: &str, view: &TensorView<'_>) -> Result<Vec<f32>, String> {
    Ok(f32_from_bytes(expect_dtype(name, view, Dtype::F32)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_backbone_round_trips_within_one_step() {
        let mut tensors = NamedTensors::new();
        let weight: Vec<f32> = (0..2 * 3 * 3 * 3)
            .map(|i| (i as f32 - 20.0) / 7.0)
            .collect();
        tensors.insert("c.weight".into(), (vec![2, 3, 3, 3], weight.clone()));
        tensors.insert("c.bias".into(), (vec![2], vec![0.5, -0.25]));
        let bytes = encode_backbone(&tensors, Precision::Int8);
        let back = decode_backbone("b", &bytes).unwrap();
        assert_eq!(back["c.bias"], tensors["c.bias"]);
        let (shape, values) = &back["c.weight"];
        assert_eq!(shape, &vec![2, 3, 3, 3]);
        for (a, b) in weight.iter().zip(values) {
            assert!((a - b).abs() < 3.0 / 127.0);
        }
        let f32_back = decode_backbone("b", &encode_backbone(&tensors, Precision::F32)).unwrap();
        assert_eq!(f32_back, tensors);
    }

    #[test]
    fn head_keeps_its_labels() {
        let labels = vec!["Lucy".to_string(), "another Frenchie".to_string()];
        let bytes = encode_head("lucy", &labels, &vec![0.5; 2048 * 2], &[0.0, 1.0]);
        let again = encode_head("lucy", &labels, &vec![0.5; 2048 * 2], &[0.0, 1.0]);
        assert_eq!(bytes, again, "the same head gives the same bytes");
        let head = decode_head("h", &bytes).unwrap();
        assert_eq!(head.labels, labels);
        assert_eq!(head.name, "lucy");
        assert_eq!(head.tensors["weight"].0, vec![2048, 2]);
        assert!(decode_head("b", &encode_backbone(&NamedTensors::new(), Precision::F32)).is_err());
    }

    #[test]
    fn verify_names_the_file_and_the_fix() {
        let bytes = b"some weights".to_vec();
        let manifest = manifest_listing(BTreeMap::from([(
            "w.safetensors".to_string(),
            FileEntry::of(&bytes),
        )]));
        manifest.verify("w.safetensors", &bytes).unwrap();
        let mut flipped = bytes.clone();
        flipped[3] ^= 0x01;
        let err = manifest
            .verify("w.safetensors", &flipped)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("w.safetensors") && err.contains("lucy import"),
            "{err}"
        );
        let err = manifest.verify("w.safetensors", &bytes[1..]).unwrap_err();
        assert!(matches!(err, WeightsError::Size { .. }));
        let reparsed = Manifest::parse(manifest.to_json().as_bytes()).unwrap();
        assert_eq!(reparsed, manifest);
    }

    /// A manifest of these files, no backbone and no head.
    fn manifest_listing(files: BTreeMap<String, FileEntry>) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            source: Source {
                package: "p".into(),
                tarball_sha256: "s".into(),
            },
            preprocessing: Preprocessing::current(),
            backbones: BTreeMap::new(),
            heads: vec![],
            default_head: None,
            files,
        }
    }

    /// Manifest JSON with `files` and `heads` written in by hand (to say what serde won't).
    fn manifest_json(files: &str, heads: &str) -> String {
        let mut manifest = serde_json::to_value(manifest_listing(BTreeMap::new()))
            .unwrap()
            .to_string();
        manifest = manifest.replace(r#""files":{}"#, &format!(r#""files":{{{files}}}"#));
        manifest.replace(r#""heads":[]"#, &format!(r#""heads":[{heads}]"#))
    }

    #[test]
    fn manifest_default_head_must_be_one_of_its_heads() {
        let entry = r#""h.safetensors":{"size_bytes":1,"sha256":"00"}"#;
        let head = r#"{"name":"h","file":"h.safetensors"}"#;
        let with_default = |name: &str| {
            manifest_json(entry, head).replace(
                r#""files":"#,
                &format!(r#""default_head":"{name}","files":"#),
            )
        };
        let manifest = Manifest::parse(with_default("h").as_bytes()).unwrap();
        assert_eq!(manifest.default_head.as_deref(), Some("h"));
        assert_eq!(
            Manifest::parse(manifest.to_json().as_bytes()).unwrap(),
            manifest
        );
        let err = Manifest::parse(with_default("gone").as_bytes()).unwrap_err();
        assert!(err.to_string().contains("default head"), "{err}");
    }

    #[test]
    fn manifest_refuses_files_listed_twice_or_outside_its_folder() {
        let entry = |name: &str| format!(r#""{name}":{{"size_bytes":1,"sha256":"00"}}"#);
        let head = r#"{"name":"h","file":"h.safetensors"}"#;
        let ok = manifest_json(&entry("h.safetensors"), head);
        assert_eq!(Manifest::parse(ok.as_bytes()).unwrap().heads.len(), 1);

        let twice = format!("{},{}", entry("h.safetensors"), entry("h.safetensors"));
        let err = Manifest::parse(manifest_json(&twice, head).as_bytes()).unwrap_err();
        assert!(err.to_string().contains("listed twice"), "{err}");

        for name in [
            "../etc/passwd",
            "..",
            "sub/h.safetensors",
            r"..\\h",
            "",
            "c:h",
        ] {
            let files = format!("{},{}", entry("h.safetensors"), entry(name));
            let err = Manifest::parse(manifest_json(&files, head).as_bytes()).unwrap_err();
            assert!(
                err.to_string().contains("not a plain file name"),
                "{name}: {err}"
            );
        }

        let err = Manifest::parse(manifest_json("", head).as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("without listing its checksum"),
            "{err}"
        );
        let heads = format!("{head},{head}");
        let err = Manifest::parse(manifest_json(&entry("h.safetensors"), &heads).as_bytes());
        assert!(err.unwrap_err().to_string().contains("twice"));
    }

    #[test]
    fn heads_with_nan_or_infinite_weights_are_refused() {
        let labels = vec!["a".to_string(), "b".to_string()];
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut weight = vec![0.5; 2048 * 2];
            weight[77] = bad;
            let head = decode_head(
                "h.safetensors",
                &encode_head("h", &labels, &weight, &[0.0, 1.0]),
            )
            .unwrap();
            let err = head.into_weights().unwrap_err().to_string();
            assert!(
                err.contains("`weight`")
                    && err.contains("not a finite number")
                    && err.contains("index 77"),
                "{err}"
            );
            let head = decode_head(
                "h.safetensors",
                &encode_head("h", &labels, &[0.5; 4096], &[bad, 1.0]),
            )
            .unwrap();
            assert!(
                head.into_weights()
                    .unwrap_err()
                    .to_string()
                    .contains("`bias`")
            );
        }
    }
}
