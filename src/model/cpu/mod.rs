//! The backbone on the CPU, built for speed: the same ResNet50 v1 and weights as
//! [`super::ResNet50`] (which runs on WebGPU and through burn's autodiff), computed here on
//! plain slices because burn's generic CPU convolution spends most of its time around the
//! arithmetic rather than in it (see BENCHMARKS.md, "profile").
//!
//! - Activations stay channels-last (NHWC) from the first layer to the last, so a 1x1 stride-1
//!   convolution *is* a matrix product on the activation as it lies in memory, and the
//!   im2col rows of other convolutions are runs of contiguous channels.
//! - Weights are packed once at load into the `[kernel·kernel·in, out]` matrix the product needs.
//! - Each convolution is one `gemm` product (the crate burn's own CPU backend uses, here with
//!   its AVX-512 kernels where the CPU has them), split into two blocks per core; each core
//!   then adds the bias and the residual and applies the ReLU to its block while it is in
//!   cache.
//! - The 3x3 layers of stages 2–4 use Winograd's algorithm instead (see `winograd`).
//! - Natively every step runs on all cores (rayon); in the browser it is single-threaded and
//!   `gemm` uses wasm SIMD128.

mod activations;
mod conv;
mod parallel;
mod product;
mod winograd;

use activations::{Activations, buffer, position};
use conv::PackedConv;
use parallel::{ROWS_PER_TASK, for_each_chunk, map_items};

use super::resnet::{Block, FEATURES, assemble, conv_specs};
use super::{ModelError, NamedTensors, ensure_all_used};

/// ResNet50 v1 for the CPU: photos `[N, 3, 224, 224]` (planar, as `preprocess` makes them) →
/// features `[N, 2048]`.
#[derive(Debug)]
pub struct CpuResNet50 {
    stem: PackedConv,
    blocks: Vec<Block<PackedConv>>,
}

impl CpuResNet50 {
    /// Build from the same folded tensors as [`super::ResNet50::from_tensors`], with the same
    /// checks: every tensor present with the right shape, none left over.
    pub fn from_tensors(mut tensors: NamedTensors) -> Result<Self, ModelError> {
        let taken = conv_specs()
            .into_iter()
            .map(|spec| {
                let (weight, bias) = spec.take_weights(&mut tensors)?;
                Ok((spec, weight, bias))
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        ensure_all_used(&tensors)?;
        // Packing all 53 takes a few hundred ms on one core.
        let convs = map_items(taken, |(spec, weight, bias)| {
            PackedConv::pack(&spec, &weight, bias)
        });
        let (stem, blocks) = assemble(convs);
        Ok(Self { stem, blocks })
    }

    /// `planar` holds `n` photos, each `[3, side, side]` channel-major. Returns `n` x 2048
    /// features, row-major.
    pub fn forward(&self, planar: &[f32], n: usize, side: usize) -> Vec<f32> {
        global_average(
            &self.forward_with(planar, n, side, &mut |conv, x, residual| {
                conv.forward(x, residual)
            }),
        )
    }

    /// [`Self::forward`], and the last convolutional maps before pooling: `n` x 7 x 7 x 2048,
    /// channels-last (what class activation maps are made of; `explain`).
    pub fn forward_maps(&self, planar: &[f32], n: usize, side: usize) -> (Vec<f32>, Vec<f32>) {
        let mut maps = self.forward_with(planar, n, side, &mut |conv, x, residual| {
            conv.forward(x, residual)
        });
        // Taken, not copied: the emptied buffer is simply not recycled.
        (global_average(&maps), std::mem::take(&mut maps.data))
    }

    /// [`Self::forward`], timing every convolution (`lucy bench --layers`) with `clock`
    /// (seconds from any origin; the caller's, because the browser has no `Instant`).
    pub fn forward_timed(
        &self,
        planar: &[f32],
        n: usize,
        side: usize,
        clock: &dyn Fn() -> f64,
        record: &mut dyn FnMut(LayerTime),
    ) -> Vec<f32> {
        let maps = self.forward_with(planar, n, side, &mut |conv, x, residual| {
            let started = clock();
            let y = conv.forward(x, residual);
            record(LayerTime {
                name: conv.name.clone(),
                algorithm: conv.algorithm(),
                input: [x.h, x.w, x.c],
                out_channels: conv.out_channels,
                multiply_adds: (y.n * y.h * y.w * y.c * conv.kernel * conv.kernel * x.c) as u64,
                seconds: clock() - started,
            });
            y
        });
        global_average(&maps)
    }

    /// The network up to its last convolution, with `conv` running each one.
    fn forward_with(
        &self,
        planar: &[f32],
        n: usize,
        side: usize,
        conv: &mut dyn FnMut(&PackedConv, &Activations, Option<&Activations>) -> Activations,
    ) -> Activations {
        let x = Activations::from_planar(planar, n, 3, side, side);
        let x = conv(&self.stem, &x, None);
        let mut x = max_pool_3x3_stride_2(&x);
        for block in &self.blocks {
            let shortcut = block.projection.as_ref().map(|p| conv(p, &x, None));
            let y = conv(&block.reduce, &x, None);
            let y = conv(&block.spatial, &y, None);
            x = conv(&block.expand, &y, Some(shortcut.as_ref().unwrap_or(&x)));
        }
        x
    }
}

/// One convolution's time in one forward pass (see [`CpuResNet50::forward_timed`]).
#[derive(Debug, Clone)]
pub struct LayerTime {
    /// The Keras name (`res4a_branch2b`, …).
    pub name: String,
    pub algorithm: &'static str,
    /// Height, width, channels.
    pub input: [usize; 3],
    pub out_channels: usize,
    /// Of the direct convolution (what Winograd saves is not subtracted).
    pub multiply_adds: u64,
    pub seconds: f64,
}

/// Keras: ZeroPadding2D(1), then MaxPool 3x3 stride 2 'valid'. Leaving the padding out is
/// the same here because the input comes out of a ReLU (every value ≥ 0).
fn max_pool_3x3_stride_2(x: &Activations) -> Activations {
    let (h, w, c) = ((x.h - 1) / 2 + 1, (x.w - 1) / 2 + 1, x.c);
    let mut out = buffer(x.n * h * w * c);
    for_each_chunk(&mut out, c * ROWS_PER_TASK, |chunk, first| {
        for (r, pixel_out) in chunk.chunks_mut(c).enumerate() {
            let pixel = first * ROWS_PER_TASK + r;
            let (b, oy, ox) = position(pixel, h, w);
            pixel_out.fill(f32::NEG_INFINITY);
            for iy in (2 * oy).saturating_sub(1)..(2 * oy + 2).min(x.h) {
                for ix in (2 * ox).saturating_sub(1)..(2 * ox + 2).min(x.w) {
                    let src = &x.data[((b * x.h + iy) * x.w + ix) * c..][..c];
                    for (o, &v) in pixel_out.iter_mut().zip(src) {
                        *o = if v > *o { v } else { *o };
                    }
                }
            }
        }
    });
    Activations {
        n: x.n,
        h,
        w,
        c,
        data: out,
    }
}

/// Mean over the pixels of each image: `[N, C]`.
fn global_average(x: &Activations) -> Vec<f32> {
    assert_eq!(x.c, FEATURES, "the last stage's channels");
    let pixels = x.h * x.w;
    let mut out = vec![0.0f32; x.n * x.c];
    for (b, features) in out.chunks_mut(x.c).enumerate() {
        for pixel in x.data[b * pixels * x.c..][..pixels * x.c].chunks(x.c) {
            for (f, &v) in features.iter_mut().zip(pixel) {
                *f += v;
            }
        }
        features.iter_mut().for_each(|f| *f /= pixels as f32);
    }
    out
}

#[cfg(test)]
mod testing;

#[cfg(test)]
mod tests {
    use burn::prelude::*;

    use super::testing::{assert_close, burn_tensor, values};
    use super::*;
    use crate::model::resnet;

    #[test]
    fn max_pool_matches_burn() {
        let device = Device::flex();
        for side in [8, 9] {
            let planar: Vec<f32> = values(2 * 5 * side * side, side as u32)
                .iter()
                .map(|v| v.max(0.0))
                .collect();
            let x = Activations::from_planar(&planar, 2, 5, side, side);
            let pool = resnet::max_pool();
            assert_close(
                &max_pool_3x3_stride_2(&x),
                pool.forward(burn_tensor(&x, &device)),
            );
        }
    }
}
