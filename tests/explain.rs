//! Class activation maps (`lucy::explain`) on real photos: they point at the animal they name,
//! they equal Grad-CAM computed with burn's autodiff, and what they cost.

mod common;

use burn::prelude::*;
use common::*;
use image::RgbImage;
use lucy::classifier::Classifier;
use lucy::explain::{ClassMap, left_right_mass};
use lucy::preprocess::{Input, decode_rgb, preprocess_rgb};
use lucy::weights::Precision;
use lucy::weights::bundle::IMAGENET_HEAD;
use lucy::weights::dir::WeightsDir;

fn classifier(precision: Precision) -> Classifier {
    imagenet_classifier(precision)
}

fn photo(path: &std::path::Path) -> RgbImage {
    decode_rgb(&std::fs::read(path).unwrap()).unwrap()
}

/// `left` and `right` side by side, each filling a 224 x 448 half (scaled to cover, centred):
/// the model sees almost all of both.
fn composite(left: &RgbImage, right: &RgbImage) -> RgbImage {
    let half = |image: &RgbImage| {
        let (w, h) = image.dimensions();
        let scale = (224.0 / w as f32).max(448.0 / h as f32);
        let (sw, sh) = (
            (w as f32 * scale).ceil() as u32,
            (h as f32 * scale).ceil() as u32,
        );
        let scaled = image::imageops::resize(image, sw, sh, image::imageops::FilterType::Triangle);
        image::imageops::crop_imm(&scaled, (sw - 224) / 2, (sh - 448) / 2, 224, 448).to_image()
    };
    let mut out = RgbImage::new(448, 448);
    image::imageops::replace(&mut out, &half(left), 0, 0);
    image::imageops::replace(&mut out, &half(right), 224, 0);
    out
}

fn map_of(classifier: &Classifier, input: &Input, label: &str) -> ClassMap {
    let class = classifier.labels().iter().position(|l| l == label).unwrap();
    let (_, maps) = classifier.explain(input, 5, Some(class));
    maps.into_iter().find(|m| m.index == class).unwrap()
}

/// Left half one animal, right half the other: each one's map has most of its mass on its side.
fn check_composite(left: (&std::path::Path, &str), right: (&std::path::Path, &str)) {
    let model = classifier(Precision::Int8);
    let input = preprocess_rgb(&composite(&photo(left.0), &photo(right.0)));
    let top5: Vec<String> = model.classify(std::slice::from_ref(&input), 5)[0]
        .iter()
        .map(|p| format!("{} {:.3}", p.label, p.probability))
        .collect();
    println!("composite top-5: {}", top5.join(", "));
    let (l_left, l_right) = left_right_mass(&map_of(&model, &input, left.1).grid);
    let (r_left, r_right) = left_right_mass(&map_of(&model, &input, right.1).grid);
    println!(
        "{}: {l_left:.2} left / {l_right:.2} right; {}: {r_left:.2} left / {r_right:.2} right",
        left.1, right.1
    );
    assert!(
        l_left > l_right,
        "{} map: {l_left} left, {l_right} right",
        left.1
    );
    assert!(
        r_right > r_left,
        "{} map: {r_left} left, {r_right} right",
        right.1
    );
}

#[test]
fn coffee_left_and_cat_right_maps_point_at_each() {
    check_composite(
        (&fixture("skimage_coffee.png"), "espresso"),
        (&fixture("skimage_chelsea_cat.png"), "Egyptian_cat"),
    );
}

/// The map equals Grad-CAM on burn's f32 module: the gradient of the class score with respect
/// to the last maps (burn's autodiff), averaged per channel, weighing the maps, then ReLU.
#[test]
fn the_map_equals_grad_cam_from_autodiff() {
    let dir = WeightsDir::open(&weights_dir()).unwrap();
    let file = dir.manifest.backbone_file(Precision::F32).unwrap();
    let tensors = lucy::weights::bundle::decode_backbone(file, &dir.read(file).unwrap()).unwrap();
    let burn_module = lucy::model::ResNet50::from_tensors(tensors, &Device::flex()).unwrap();
    let (head_weights, labels) = dir.head(IMAGENET_HEAD).unwrap().into_weights().unwrap();
    let input = preprocess_rgb(&photo(&fixture("skimage_chelsea_cat.png")));
    let class = labels.iter().position(|l| l == "Egyptian_cat").unwrap();

    let maps = burn_module
        .forward_maps(lucy::classifier::input_batch(
            std::slice::from_ref(&input),
            &Device::flex(),
        ))
        .into_data();
    let device = Device::flex().autodiff();
    let a = Tensor::<4>::from_data(maps.clone(), &device).require_grad();
    let head = lucy::model::Head::new(head_weights, &device);
    let score = head
        .logits(lucy::model::global_average(a.clone()))
        .slice([0..1, class..class + 1])
        .sum();
    let gradient = a.grad(&score.backward()).unwrap(); // [1, 2048, 7, 7]
    let alpha = gradient.reshape([2048, 49]).mean_dim(1); // [2048, 1]
    let a = Tensor::<4>::from_data(maps, &Device::flex()).reshape([2048, 49]);
    let grad_cam: Vec<f32> = burn::tensor::activation::relu((a * alpha.inner()).sum_dim(0))
        .into_data()
        .try_to_vec()
        .unwrap();

    let ours = map_of(&classifier(Precision::F32), &input, "Egyptian_cat");
    let cos = cosine(&ours.grid, &grad_cam);
    println!("Egyptian_cat: CAM vs Grad-CAM (autodiff) cosine {cos:.6}");
    assert!(cos >= 0.999, "cosine {cos}");
}

/// What the maps cost on top of a classification (printed, not asserted: timed assertions do
/// not belong in tests). README, "Why did it say …".
#[test]
fn report_the_cost_of_the_maps() {
    let model = classifier(Precision::Int8);
    let input = preprocess_rgb(&photo(&fixture("skimage_chelsea_cat.png")));
    let median = |f: &dyn Fn()| {
        f(); // warm-up
        let mut times: Vec<f64> = (0..7)
            .map(|_| {
                let started = std::time::Instant::now();
                f();
                started.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[3]
    };
    let plain = median(&|| {
        model.classify(std::slice::from_ref(&input), 5);
    });
    let explained = median(&|| {
        model.explain(&input, 5, None);
    });
    println!(
        "native CPU, int8: classify {plain:.1} ms, with the top-5 maps {explained:.1} ms ({:+.1} %)",
        100.0 * (explained / plain - 1.0)
    );
}

/// Photos from ../shared (`LUCY_SHARED`); `./scripts/test` names and skips them without it.
mod shared {
    use super::*;

    #[test]
    fn french_bulldog_left_and_cat_right_maps_point_at_each() {
        check_composite(
            (
                &shared_fixture("willjobs_example_frenchbulldog.jpg"),
                "French_bulldog",
            ),
            (&fixture("skimage_chelsea_cat.png"), "Egyptian_cat"),
        );
    }
}
