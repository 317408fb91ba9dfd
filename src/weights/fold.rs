//! Map the Keras tensors onto the model and fold each batch-norm into its convolution:
//! BN(conv(x)) = conv'(x) with W' = W·s and b' = (b − mean)·s + beta, s = gamma / √(var + ε).

use std::collections::BTreeSet;

use crate::model::{ConvSpec, FEATURES, ModelError, NamedTensors, conv_specs};

/// Keras' BatchNormalization epsilon in this model.
pub const BATCH_NORM_EPSILON: f32 = 0.001;

/// Split the Keras tensors into the folded backbone (`<conv>.weight` OIHW, `<conv>.bias`) and
/// the ImageNet head (`weight` [2048, 1000], `bias`). Fails if any tensor is missing, of the
/// wrong shape, or left over.
pub fn fold_keras(mut keras: NamedTensors) -> Result<(NamedTensors, NamedTensors), ModelError> {
    let mut backbone = NamedTensors::new();
    for spec in conv_specs() {
        let (weight, bias) = fold_conv(&spec, &mut keras)?;
        backbone.insert(
            format!("{}.weight", spec.name),
            (spec.weight_shape().to_vec(), weight),
        );
        backbone.insert(
            format!("{}.bias", spec.name),
            (vec![spec.out_channels], bias),
        );
    }
    let mut head = NamedTensors::new();
    let kernel = keras
        .remove("fc1000/kernel")
        .ok_or_else(|| ModelError::Missing("fc1000/kernel".into()))?;
    let classes = kernel.0.get(1).copied().unwrap_or(0);
    if kernel.0 != [FEATURES, classes] {
        return Err(ModelError::Shape {
            name: "fc1000/kernel".into(),
            expected: vec![FEATURES, 1000],
            got: kernel.0,
        });
    }
    head.insert("weight".into(), kernel);
    let bias = crate::model::take(&mut keras, "fc1000/bias", &[classes])?;
    head.insert("bias".into(), (vec![classes], bias));

    if !keras.is_empty() {
        let left: BTreeSet<&str> = keras.keys().map(String::as_str).collect();
        return Err(ModelError::Unused(
            left.into_iter().collect::<Vec<_>>().join(", "),
        ));
    }
    Ok((backbone, head))
}

fn fold_conv(
    spec: &ConvSpec,
    keras: &mut NamedTensors,
) -> Result<(Vec<f32>, Vec<f32>), ModelError> {
    let (o, i, k) = (spec.out_channels, spec.in_channels, spec.kernel);
    let take = |keras: &mut NamedTensors, name: String, shape: &[usize]| {
        crate::model::take(keras, &name, shape)
    };
    let kernel = take(keras, format!("{}/kernel", spec.name), &[k, k, i, o])?;
    let bias = take(keras, format!("{}/bias", spec.name), &[o])?;
    let bn = &spec.batch_norm;
    let gamma = take(keras, format!("{bn}/gamma"), &[o])?;
    let beta = take(keras, format!("{bn}/beta"), &[o])?;
    let mean = take(keras, format!("{bn}/moving_mean"), &[o])?;
    let var = take(keras, format!("{bn}/moving_variance"), &[o])?;

    let scale: Vec<f32> = gamma
        .iter()
        .zip(&var)
        .map(|(g, v)| g / (v + BATCH_NORM_EPSILON).sqrt())
        .collect();
    // HWIO (Keras) → OIHW (burn), scaled per output channel.
    let mut weight = vec![0f32; o * i * k * k];
    for h in 0..k {
        for w in 0..k {
            for ci in 0..i {
                for (co, scale) in scale.iter().enumerate() {
                    let hwio = ((h * k + w) * i + ci) * o + co;
                    let oihw = ((co * i + ci) * k + h) * k + w;
                    weight[oihw] = kernel[hwio] * scale;
                }
            }
        }
    }
    let bias = (0..o)
        .map(|c| (bias[c] - mean[c]) * scale[c] + beta[c])
        .collect();
    Ok((weight, bias))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tensor the Keras ResNet50 has, with harmless values.
    fn keras_resnet50() -> NamedTensors {
        let mut keras = NamedTensors::new();
        let mut put = |name: String, shape: Vec<usize>, value: f32| {
            let len = shape.iter().product();
            keras.insert(name, (shape, vec![value; len]));
        };
        for spec in conv_specs() {
            let (k, i, o) = (spec.kernel, spec.in_channels, spec.out_channels);
            put(format!("{}/kernel", spec.name), vec![k, k, i, o], 0.01);
            put(format!("{}/bias", spec.name), vec![o], 0.0);
            for (part, value) in [
                ("gamma", 1.0),
                ("beta", 0.0),
                ("moving_mean", 0.0),
                ("moving_variance", 1.0),
            ] {
                put(format!("{}/{part}", spec.batch_norm), vec![o], value);
            }
        }
        put("fc1000/kernel".into(), vec![FEATURES, 1000], 0.0);
        put("fc1000/bias".into(), vec![1000], 0.0);
        keras
    }

    #[test]
    fn import_refuses_missing_extra_and_misshapen_tensors() {
        let keras = keras_resnet50();
        assert_eq!(keras.len(), 320, "the TF.js package has 320 tensors");
        let (backbone, head) = fold_keras(keras.clone()).unwrap();
        assert_eq!(backbone.len(), 2 * 53);
        assert_eq!(head["weight"].0, vec![FEATURES, 1000]);

        let mut missing = keras.clone();
        missing.remove("bn4c_branch2b/moving_variance");
        let err = fold_keras(missing).unwrap_err();
        assert!(
            matches!(err, ModelError::Missing(ref n) if n == "bn4c_branch2b/moving_variance"),
            "{err}"
        );

        let mut extra = keras.clone();
        extra.insert("predictions/kernel".into(), (vec![1], vec![0.0]));
        assert!(
            matches!(fold_keras(extra), Err(ModelError::Unused(ref n)) if n == "predictions/kernel")
        );

        let mut misshapen = keras;
        misshapen.insert(
            "res3a_branch1/kernel".into(),
            (vec![1, 1, 256, 256], vec![0.0; 256 * 256]),
        );
        assert!(
            matches!(fold_keras(misshapen), Err(ModelError::Shape { ref name, .. }) if name == "res3a_branch1/kernel")
        );
    }

    /// A 1x1 conv with 2 inputs and 2 outputs, folded, computes the same as conv then BN.
    #[test]
    fn folding_matches_conv_then_batch_norm() {
        let spec = ConvSpec {
            name: "c".into(),
            batch_norm: "bn".into(),
            in_channels: 2,
            out_channels: 2,
            kernel: 1,
            stride: 1,
            padding: 0,
        };
        let mut keras = NamedTensors::new();
        // HWIO: kernel[0][0][ci][co]
        keras.insert(
            "c/kernel".into(),
            (vec![1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]),
        );
        keras.insert("c/bias".into(), (vec![2], vec![0.5, -0.5]));
        keras.insert("bn/gamma".into(), (vec![2], vec![2.0, 0.5]));
        keras.insert("bn/beta".into(), (vec![2], vec![1.0, 0.0]));
        keras.insert("bn/moving_mean".into(), (vec![2], vec![0.25, 1.0]));
        keras.insert("bn/moving_variance".into(), (vec![2], vec![4.0, 1.0]));
        let (w, b) = fold_conv(&spec, &mut keras).unwrap();
        assert!(keras.is_empty());

        let x = [0.7f32, -1.3];
        for co in 0..2 {
            let conv = x[0] * [1.0, 2.0][co] + x[1] * [3.0, 4.0][co] + [0.5, -0.5][co];
            let (g, be, m, v) = (
                [2.0, 0.5][co],
                [1.0, 0.0][co],
                [0.25, 1.0][co],
                [4.0, 1.0][co],
            );
            let expected = g * (conv - m) / (v + BATCH_NORM_EPSILON).sqrt() + be;
            let folded = x[0] * w[co * 2] + x[1] * w[co * 2 + 1] + b[co];
            assert!((expected - folded).abs() < 1e-5, "{expected} vs {folded}");
        }
    }
}
