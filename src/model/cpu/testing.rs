//! Helpers for the CPU backbone's unit tests: inputs, layout changes, burn as the reference.

use burn::prelude::*;

use super::activations::Activations;
use crate::model::resnet::ConvSpec;

/// A test convolution: `[in, out, kernel, stride, padding]`, a projection shortcut (no ReLU)
/// or not.
pub(super) fn conv_spec(
    [cin, cout, kernel, stride, padding]: [usize; 5],
    projection: bool,
) -> ConvSpec {
    ConvSpec {
        name: if projection { "res9a_branch1" } else { "c" }.into(),
        batch_norm: "bn".into(),
        in_channels: cin,
        out_channels: cout,
        kernel,
        stride,
        padding,
    }
}

/// Deterministic values in [-1, 1).
pub(super) fn values(len: usize, seed: u32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect()
}

pub(super) fn nchw(x: &Activations) -> Vec<f32> {
    let mut out = vec![0.0; x.data.len()];
    for b in 0..x.n {
        for p in 0..x.h * x.w {
            for ch in 0..x.c {
                out[(b * x.c + ch) * x.h * x.w + p] = x.data[(b * x.h * x.w + p) * x.c + ch];
            }
        }
    }
    out
}

pub(super) fn burn_tensor(x: &Activations, device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(nchw(x), [x.n, x.c, x.h, x.w]), device)
}

pub(super) fn assert_close(ours: &Activations, theirs: Tensor<4>) {
    let [n, c, h, w] = theirs.dims();
    assert_eq!((ours.n, ours.c, ours.h, ours.w), (n, c, h, w));
    let theirs = theirs.into_data().try_to_vec::<f32>().unwrap();
    let worst = nchw(ours)
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "largest difference {worst}");
}
