//! Read a TensorFlow.js layers model (`model.json` + binary shards) into named f32 tensors.

use serde::Deserialize;

use super::bundle::f32_from_bytes;
use crate::model::NamedTensors;

#[derive(Debug, thiserror::Error)]
pub enum TfjsError {
    #[error("model.json is not a TF.js layers model: {0}")]
    BadJson(String),
    #[error("model.json names shard `{0}`, which the package does not contain")]
    MissingShard(String),
    #[error("tensor `{name}` has dtype {dtype}; only float32 is supported")]
    DType { name: String, dtype: String },
    #[error("the shards hold {got} bytes but model.json describes {expected}")]
    Length { expected: usize, got: usize },
    #[error("tensor `{name}` has the shape {shape:?}, too large for any model")]
    Shape { name: String, shape: Vec<usize> },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModelJson {
    weights_manifest: Vec<WeightGroup>,
}

#[derive(Deserialize)]
struct WeightGroup {
    paths: Vec<String>,
    weights: Vec<WeightSpec>,
}

#[derive(Deserialize)]
struct WeightSpec {
    name: String,
    shape: Vec<usize>,
    dtype: String,
}

/// Parse `model.json`; `shard` returns the bytes of a shard file by its relative path.
/// Each group's shards are concatenated in manifest order, then sliced into tensors in
/// manifest order.
pub fn read_layers_model(
    model_json: &[u8],
    mut shard: impl FnMut(&str) -> Option<Vec<u8>>,
) -> Result<NamedTensors, TfjsError> {
    let model: ModelJson =
        serde_json::from_slice(model_json).map_err(|e| TfjsError::BadJson(e.to_string()))?;
    let mut tensors = NamedTensors::new();
    for group in model.weights_manifest {
        let mut bytes = Vec::new();
        for path in &group.paths {
            bytes.extend(shard(path).ok_or_else(|| TfjsError::MissingShard(path.clone()))?);
        }
        // Sizes in checked arithmetic: a shape like [2^62, 4] must not wrap around to a size
        // that matches the shards.
        let mut expected = 0usize;
        for w in &group.weights {
            expected = byte_len(w)
                .and_then(|len| expected.checked_add(len))
                .ok_or_else(|| TfjsError::Shape {
                    name: w.name.clone(),
                    shape: w.shape.clone(),
                })?;
        }
        if bytes.len() != expected {
            return Err(TfjsError::Length {
                expected,
                got: bytes.len(),
            });
        }
        let mut offset = 0;
        for weight in group.weights {
            if weight.dtype != "float32" {
                return Err(TfjsError::DType {
                    name: weight.name,
                    dtype: weight.dtype,
                });
            }
            let len = byte_len(&weight).expect("checked above");
            let values = f32_from_bytes(&bytes[offset..offset + len]);
            offset += len;
            tensors.insert(weight.name, (weight.shape, values));
        }
    }
    Ok(tensors)
}

/// Bytes of a float32 tensor, if that fits in memory's address range at all.
fn byte_len(weight: &WeightSpec) -> Option<usize> {
    weight
        .shape
        .iter()
        .try_fold(4usize, |len, &d| len.checked_mul(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_concatenated_shards_in_manifest_order() {
        let json = br#"{"weightsManifest":[{"paths":["a.bin","b.bin"],"weights":[
            {"name":"x/kernel","shape":[2,1],"dtype":"float32"},
            {"name":"x/bias","shape":[1],"dtype":"float32"}]}]}"#;
        let floats = [1.0f32, 2.0, 3.0];
        let bytes: Vec<u8> = floats.iter().flat_map(|f| f.to_le_bytes()).collect();
        let tensors = read_layers_model(json, |p| match p {
            "a.bin" => Some(bytes[..6].to_vec()),
            "b.bin" => Some(bytes[6..].to_vec()),
            _ => None,
        })
        .unwrap();
        assert_eq!(tensors["x/kernel"], (vec![2, 1], vec![1.0, 2.0]));
        assert_eq!(tensors["x/bias"], (vec![1], vec![3.0]));

        let short = read_layers_model(json, |p| (p == "a.bin").then(|| bytes.clone()));
        assert!(matches!(short, Err(TfjsError::MissingShard(p)) if p == "b.bin"));
    }

    /// Found while writing the fuzz target: sizes were multiplied unchecked, so a shape of
    /// [2^62, 4] panicked in a debug build and wrapped to 0 bytes in a release build.
    #[test]
    fn shapes_too_large_for_memory_are_errors() {
        let json = br#"{"weightsManifest":[{"paths":["a.bin"],"weights":[
            {"name":"x/kernel","shape":[4611686018427387904,4],"dtype":"float32"}]}]}"#;
        let err = read_layers_model(json, |_| Some(Vec::new())).unwrap_err();
        assert!(
            matches!(err, TfjsError::Shape { ref name, .. } if name == "x/kernel"),
            "{err}"
        );
        let json = br#"{"weightsManifest":[{"paths":["a.bin"],"weights":[
            {"name":"a","shape":[2305843009213693952],"dtype":"float32"},
            {"name":"b","shape":[2305843009213693952],"dtype":"float32"}]}]}"#;
        assert!(read_layers_model(json, |_| Some(Vec::new())).is_err());
    }
}
