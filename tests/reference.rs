//! lucy against the reference outputs of the Keras model (../shared/fixtures/resnet50-reference):
//! preprocessing, f32 features and probabilities, int8 agreement, and the CPU backbone
//! against burn's module.

mod common;

use burn::prelude::*;
use common::*;
use lucy::classifier::{Classifier, input_batch};
use lucy::model::{CpuResNet50, FEATURES, ResNet50};
use lucy::preprocess::{Input, preprocess_bytes};
use lucy::weights::Precision;
use lucy::weights::bundle::decode_backbone;
use lucy::weights::dir::WeightsDir;

const WITH_TENSORS: [(&str, &str); 3] = [
    ("skimage_chelsea_cat", "png"),
    ("skimage_coffee", "png"),
    ("willjobs_example_frenchbulldog", "jpg"),
];

/// The reference files of `name`: our fixture copy when we have one, else the shared folder.
fn reference(name: &str, suffix: &str) -> std::path::PathBuf {
    let file = format!("{name}.{suffix}");
    let own = fixture(&file);
    if own.is_file() {
        own
    } else {
        shared_fixture(&file)
    }
}

fn reference_input(name: &str) -> Input {
    Input {
        chw: nhwc_to_chw(&read_f32(&reference(
            name,
            "input_nhwc_224x224x3_bgr_meansub.f32",
        ))),
    }
}

fn classifier(precision: Precision) -> Classifier {
    let device = Device::flex();
    let dir = WeightsDir::open(&weights_dir()).unwrap();
    Classifier::new(
        dir.backbone(precision, &device).unwrap(),
        dir.head("imagenet").unwrap(),
        &device,
    )
    .unwrap()
}

fn rows(tensor: Tensor<2>) -> Vec<Vec<f32>> {
    let [_, width] = tensor.dims();
    let data = tensor.into_data();
    data.as_slice::<f32>()
        .unwrap()
        .chunks(width)
        .map(<[f32]>::to_vec)
        .collect()
}

#[test]
fn preprocessing_matches_the_reference_inputs() {
    for (name, ext) in &WITH_TENSORS[..2] {
        let photo = std::fs::read(fixture(&format!("{name}.{ext}"))).unwrap();
        let ours = preprocess_bytes(&photo).unwrap();
        let theirs = reference_input(name);
        let mad = ours
            .chw
            .iter()
            .zip(&theirs.chw)
            .map(|(a, b)| (a - b).abs() as f64)
            .sum::<f64>()
            / ours.chw.len() as f64;
        println!("{name}: preprocessing mean absolute difference {mad:.3} (0-255 scale)");
        assert!(mad <= 1.0, "{name}: mean absolute difference {mad}");
    }
}

#[test]
fn f32_backbone_matches_reference_features_and_top5() {
    let model = classifier(Precision::F32);
    let inputs: Vec<Input> = WITH_TENSORS
        .iter()
        .map(|(n, _)| reference_input(n))
        .collect();
    let features = rows(model.features(&inputs));
    let probabilities = rows(model.probabilities(&inputs));
    for (i, (name, _)) in WITH_TENSORS.iter().enumerate() {
        let expected_features = read_f32(&reference(name, "avg_pool_2048.f32"));
        let expected_probs = read_f32(&reference(name, "fc1000_softmax_1000.f32"));
        let cos = cosine(&features[i], &expected_features);
        let max_prob_error = probabilities[i]
            .iter()
            .zip(&expected_probs)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        println!(
            "{name}: f32 feature 1 - cosine {:.1e}, max probability error {max_prob_error:.2e}",
            1.0 - cos
        );
        assert!(cos >= 0.9999, "{name}: cosine {cos}");
        assert_eq!(
            top_indices(&probabilities[i], 5),
            top_indices(&expected_probs, 5),
            "{name}"
        );
    }
}

#[test]
fn int8_agrees_with_f32_on_every_fixture_photo() {
    let f32_model = classifier(Precision::F32);
    let int8_model = classifier(Precision::Int8);
    let mut photos: Vec<Input> = WITH_TENSORS
        .iter()
        .map(|(n, _)| reference_input(n))
        .collect();
    let mut names: Vec<String> = WITH_TENSORS.iter().map(|(n, _)| n.to_string()).collect();
    for name in ["bostonterrier", "englishbulldog", "pug"] {
        let file = format!("willjobs_example_{name}.jpg");
        let bytes = std::fs::read(shared_fixture(&file)).unwrap();
        photos.push(preprocess_bytes(&bytes).unwrap());
        names.push(file);
    }
    let device = f32_model.device().clone();
    let batch = input_batch(&photos, &device);
    assert_eq!(batch.dims(), [photos.len(), 3, 224, 224]);

    let (f_feat, q_feat) = (
        rows(f32_model.features(&photos)),
        rows(int8_model.features(&photos)),
    );
    let (f_prob, q_prob) = (
        rows(f32_model.probabilities(&photos)),
        rows(int8_model.probabilities(&photos)),
    );
    for (i, name) in names.iter().enumerate() {
        let cos = cosine(&f_feat[i], &q_feat[i]);
        println!(
            "{name}: int8 vs f32 feature cosine {cos:.5}, top-1 {} vs {}",
            top_indices(&q_prob[i], 1)[0],
            top_indices(&f_prob[i], 1)[0]
        );
        assert!(cos >= 0.99, "{name}: cosine {cos}");
        assert_eq!(
            top_indices(&q_prob[i], 1),
            top_indices(&f_prob[i], 1),
            "{name}"
        );
    }
}

/// burn's module (what runs on WebGPU, and the network as burn's own layers define it) and
/// lucy's CPU backbone compute the same features from the same weights.
#[test]
fn burn_module_and_cpu_backbone_agree() {
    let device = Device::flex();
    let dir = WeightsDir::open(&weights_dir()).unwrap();
    let file = dir.manifest.backbone_file(Precision::F32).unwrap();
    let tensors = decode_backbone(file, &dir.read(file).unwrap()).unwrap();
    let burn_module = ResNet50::from_tensors(tensors.clone(), &device).unwrap();
    let cpu = CpuResNet50::from_tensors(tensors).unwrap();
    let photos: Vec<Input> = WITH_TENSORS[..2]
        .iter()
        .map(|(n, _)| reference_input(n))
        .collect();
    let batch = input_batch(&photos, &device);
    let planar: Vec<f32> = photos.iter().flat_map(|p| p.chw.iter().copied()).collect();
    let ours = cpu.forward(&planar, photos.len(), 224);
    let theirs = rows(burn_module.forward(batch));
    for (i, (name, _)) in WITH_TENSORS[..2].iter().enumerate() {
        let cos = cosine(&ours[i * FEATURES..][..FEATURES], &theirs[i]);
        println!(
            "{name}: CPU backbone vs burn module, 1 - cosine {:.1e}",
            1.0 - cos
        );
        assert!(cos >= 0.99999, "{name}: cosine {cos}");
    }
}
