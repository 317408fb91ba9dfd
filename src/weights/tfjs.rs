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
        let expected: usize = group
            .weights
            .iter()
            .map(|w| 4 * w.shape.iter().product::<usize>())
            .sum();
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
            let len = 4 * weight.shape.iter().product::<usize>();
            let values = f32_from_bytes(&bytes[offset..offset + len]);
            offset += len;
            tensors.insert(weight.name, (weight.shape, values));
        }
    }
    Ok(tensors)
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
}
