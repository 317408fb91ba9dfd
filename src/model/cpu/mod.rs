//! The backbone on the CPU, built for speed: the same ResNet50 v1 and weights as
//! [`super::ResNet50`] (which runs on WebGPU and through burn's autodiff), computed here on
//! plain slices because burn's generic CPU convolution spends most of its time around the
//! arithmetic rather than in it (see BENCHMARKS.md, "profile").
//!
//! - Activations stay channels-last (NHWC) from the first layer to the last, so a 1x1 stride-1
//!   convolution *is* a matrix product on the activation as it lies in memory, and the
//!   im2col rows of other convolutions are runs of contiguous channels.
//! - Weights are packed once at load into the `[kernel·kernel·in, out]` matrix the product needs.
//! - Each convolution is one product: where the CPU has AVX-512, lucy's kernel over weights
//!   packed once (`panel`), which adds the bias and the residual and applies the ReLU to the
//!   sums in registers; elsewhere a `gemm` product (the crate burn's own CPU backend uses),
//!   split into two blocks per core, each core finishing its block while it is in cache.
//! - The 3x3 layers of stages 2–4 use Winograd's algorithm instead (see `winograd`), its
//!   products on the same kernels.
//! - Or, in [`Arithmetic::Int8`], every convolution multiplies the int8 weights with u8
//!   activations in i32 (see `quantized` and `dot`).
//! - Natively every step runs on all cores (`parallel`); in the browser too when the page is
//!   cross-origin isolated (the `threads` build, rayon on Web Workers), else on one thread;
//!   with wasm SIMD128 there (`gemm`'s f32 kernels, `dot`'s int8 one).

mod activations;
mod conv;
mod dot;
mod panel;
mod parallel;
mod product;
mod quantized;
mod simd;
mod winograd;

pub use dot::Int8Kernel;
#[cfg(not(target_arch = "wasm32"))]
pub use parallel::on_one_thread;
pub use parallel::threads;

use activations::{Activations, buffer};
use conv::PackedConv;
use parallel::{for_each_chunk, map_items};
use quantized::{Int8Conv, abs_max, max_of};

use super::resnet::{Block, FEATURES, assemble, conv_specs};
use super::{HeadWeights, ModelError, NamedTensors, ensure_all_used};

/// How the CPU backbone computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arithmetic {
    /// f32 throughout: the reference, and what training extracts features with.
    F32,
    /// int8 weights times u8 activations, summed in i32, for every convolution (the stem's
    /// signed input, the photo, around a zero point; with 7-bit activations the stem stays
    /// f32).
    Int8,
}

/// ResNet50 v1 for the CPU: photos `[N, 3, 224, 224]` (planar, as `preprocess` makes them) →
/// features `[N, 2048]`.
#[derive(Debug)]
pub struct CpuResNet50 {
    /// In f32 (int8 blocks with 7-bit activations use it too).
    stem: PackedConv,
    blocks: Blocks,
}

#[derive(Debug)]
enum Blocks {
    F32(Vec<Block<PackedConv>>),
    /// The stem in int8 too (used with 8-bit activations), and the blocks.
    Int8(Box<Int8Conv>, Vec<Block<Int8Conv>>, Int8Settings),
}

/// How the int8 blocks compute: the kernel, and the largest quantized activation (the
/// kernel's [`Int8Kernel::activation_max`] unless set lower).
#[derive(Debug, Clone, Copy)]
struct Int8Settings {
    kernel: Int8Kernel,
    activation_max: u8,
}

impl Int8Settings {
    fn new(kernel: Int8Kernel) -> Self {
        Self {
            kernel,
            activation_max: kernel.activation_max(),
        }
    }
}

/// What a forward pass reports about each convolution: `lucy bench --layers`'s clock and sink.
type Timing<'a> = Option<(&'a dyn Fn() -> f64, &'a mut dyn FnMut(LayerTime))>;

impl CpuResNet50 {
    /// Build from the same folded tensors as [`super::ResNet50::from_tensors`], with the same
    /// checks: every tensor present with the right shape, none left over. In
    /// [`Arithmetic::Int8`] the weights are quantized per output channel as the int8 bundle
    /// is: from that bundle's (dequantized) tensors, its own int8 values come back.
    pub fn from_tensors(
        mut tensors: NamedTensors,
        arithmetic: Arithmetic,
    ) -> Result<Self, ModelError> {
        let taken = conv_specs()
            .into_iter()
            .map(|spec| {
                let (weight, bias) = spec.take_weights(&mut tensors)?;
                Ok((spec, weight, bias))
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        ensure_all_used(&tensors)?;
        let (stem, blocks) = assemble(taken);
        let int8_stem = (arithmetic == Arithmetic::Int8)
            .then(|| Int8Conv::pack(&stem.0, &stem.1, stem.2.clone(), true));
        let stem = PackedConv::pack(&stem.0, &stem.1, stem.2);
        // Packing all 53 takes a few hundred ms on one core.
        let blocks = match arithmetic {
            Arithmetic::F32 => Blocks::F32(map_items(blocks, |block| {
                block.map(|(spec, weight, bias)| PackedConv::pack(&spec, &weight, bias))
            })),
            Arithmetic::Int8 => Blocks::Int8(
                Box::new(int8_stem.expect("packed in int8")),
                map_items(blocks, |block| {
                    block.map(|(spec, weight, bias)| Int8Conv::pack(&spec, &weight, bias, false))
                }),
                Int8Settings::new(Int8Kernel::best()),
            ),
        };
        Ok(Self { stem, blocks })
    }

    /// What computes the products, to label measurements: the int8 kernel in use, or in f32
    /// lucy's AVX-512 kernel where the CPU has it, else `gemm`.
    pub fn kernel_name(&self) -> &'static str {
        match (self.int8_kernel(), panel::available()) {
            (Some(kernel), _) => kernel.name(),
            (None, true) => "avx512 f32",
            (None, false) => "gemm f32",
        }
    }

    /// The int8 kernel in use ([`Int8Kernel::best`] unless set), in [`Arithmetic::Int8`].
    pub fn int8_kernel(&self) -> Option<Int8Kernel> {
        match self.blocks {
            Blocks::F32(_) => None,
            Blocks::Int8(_, _, settings) => Some(settings.kernel),
        }
    }

    /// The largest quantized activation, in [`Arithmetic::Int8`]: 255 (8 bits), or 127 (7 bits).
    pub fn activation_max(&self) -> Option<u8> {
        match self.blocks {
            Blocks::F32(_) => None,
            Blocks::Int8(_, _, settings) => Some(settings.activation_max),
        }
    }

    /// Quantize activations to `0..=max` (at most the kernel's): 127 computes as relaxed SIMD
    /// in the browser does, with any kernel — its accuracy measured natively.
    pub fn set_activation_max(&mut self, max: u8) -> Result<(), String> {
        match &mut self.blocks {
            Blocks::Int8(_, _, settings) if max <= settings.kernel.activation_max() && max > 0 => {
                settings.activation_max = max;
                Ok(())
            }
            Blocks::Int8(_, _, settings) => Err(format!(
                "activations of the {} kernel go up to {}, not {max}",
                settings.kernel.name(),
                settings.kernel.activation_max()
            )),
            Blocks::F32(_) => Err("the backbone computes in f32, not int8".into()),
        }
    }

    /// Compute with another int8 kernel (to compare them: they give the same bits). Refused
    /// where this CPU lacks its instructions, or in f32.
    pub fn set_int8_kernel(&mut self, kernel: Int8Kernel) -> Result<(), String> {
        match &mut self.blocks {
            Blocks::Int8(_, _, current) if kernel.available() => {
                *current = Int8Settings::new(kernel);
                Ok(())
            }
            Blocks::Int8(..) => Err(format!("this CPU cannot run the {} kernel", kernel.name())),
            Blocks::F32(_) => Err("the backbone computes in f32, not int8".into()),
        }
    }

    /// `planar` holds `n` photos, each `[3, side, side]` channel-major. Returns `n` x 2048
    /// features, row-major.
    pub fn forward(&self, planar: &[f32], n: usize, side: usize) -> Vec<f32> {
        global_average(&self.forward_with(planar, n, side, None))
    }

    /// [`Self::forward`], and the last convolutional maps before pooling: `n` x 7 x 7 x 2048,
    /// channels-last (what class activation maps are made of; `explain`).
    pub fn forward_maps(&self, planar: &[f32], n: usize, side: usize) -> (Vec<f32>, Vec<f32>) {
        let mut maps = self.forward_with(planar, n, side, None);
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
        global_average(&self.forward_with(planar, n, side, Some((clock, record))))
    }

    /// The network up to its last convolution. In int8 each photo's activations are quantized
    /// with its own scales, so a photo's answer does not depend on the other photos of its
    /// batch (`lucy predict` on a folder and `lucy eval` batch differently): the stem and the
    /// first blocks run photo by photo ([`Self::photo_by_photo_blocks`]), the rest as one
    /// batch whose products keep each photo's scales.
    fn forward_with(&self, planar: &[f32], n: usize, side: usize, timing: Timing) -> Activations {
        let count = match &self.blocks {
            Blocks::F32(blocks) => blocks.len(),
            Blocks::Int8(_, blocks, _) => blocks.len(),
        };
        let split = self.photo_by_photo_blocks(side);
        if n <= 1 || split == 0 {
            return self
                .forward_part(Start::Photos(planar, n, side), 0..count, timing)
                .0;
        }
        // The stem and the first blocks photo by photo, their times summed per layer.
        let mut totals: Vec<LayerTime> = Vec::new();
        let (mut data, mut maxima, mut shape) = (Vec::new(), Vec::new(), [0; 3]);
        for (photo, image) in planar.chunks_exact(planar.len() / n).enumerate() {
            let mut layers = Vec::new();
            let mut record = |t: LayerTime| layers.push(t);
            let photo_timing: Timing = match &timing {
                Some((clock, _)) => Some((*clock, &mut record)),
                None => None,
            };
            let (x, max) = self.forward_part(Start::Photos(image, 1, side), 0..split, photo_timing);
            if totals.is_empty() {
                totals = layers;
            } else {
                for (total, t) in totals.iter_mut().zip(layers) {
                    total.seconds += t.seconds;
                    total.multiply_adds += t.multiply_adds;
                }
            }
            if data.is_empty() {
                // From the pool of buffers, as every pass's activations are.
                data = buffer(n * x.data.len());
            }
            data[photo * x.data.len()..][..x.data.len()].copy_from_slice(&x.data);
            shape = [x.h, x.w, x.c];
            maxima.extend(max);
        }
        let mut timing = timing;
        if let Some((_, record)) = &mut timing {
            totals.into_iter().for_each(record);
        }
        let [h, w, c] = shape;
        let x = Activations { n, h, w, c, data };
        let start = Start::Activations(x, maxima);
        self.forward_part(start, split..count, timing).0
    }

    /// How many blocks int8 runs photo by photo in a batch (with the stem): those whose
    /// output has at least 28 x 28 pixels (stages 2 and 3). Eight photos' worth of their
    /// tensors (up to 25 MB) overflowed the caches and those layers ran 10–60 % slower per
    /// photo batched, while stages 4 and 5, whose products have few rows per photo and much
    /// weight, ran 20–40 % faster. f32 runs the whole batch at once (0).
    fn photo_by_photo_blocks(&self, side: usize) -> usize {
        let Blocks::Int8(stem, blocks, _) = &self.blocks else {
            return 0;
        };
        // After the stem and the 3x3 stride-2 max-pool.
        let mut side = (stem.out_side(side) - 1) / 2 + 1;
        blocks
            .iter()
            .take_while(|block| {
                let convs = [&block.reduce, &block.spatial, &block.expand];
                side = convs.iter().fold(side, |side, conv| conv.out_side(side));
                side >= 28
            })
            .count()
    }

    /// The network from `start` (the photos: stem and max-pool first; or activations with
    /// each photo's maximum) through `blocks`: the activations, and in int8 each photo's
    /// maximum.
    fn forward_part(
        &self,
        start: Start,
        blocks: std::ops::Range<usize>,
        mut timing: Timing,
    ) -> (Activations, Vec<f32>) {
        let (mut x, mut max) = match start {
            Start::Photos(planar, n, side) => self.stem(planar, n, side, &mut timing),
            Start::Activations(x, max) => (x, max),
        };
        match &self.blocks {
            Blocks::F32(all) => {
                for block in &all[blocks] {
                    let mut run = |conv: &PackedConv, x: &Activations, residual| {
                        timed(
                            &mut timing,
                            &conv.name,
                            conv.algorithm(),
                            conv.kernel,
                            x,
                            || (conv.forward(x, residual), ()),
                        )
                        .0
                    };
                    let shortcut = block.projection.as_ref().map(|p| run(p, &x, None));
                    let y = run(&block.reduce, &x, None);
                    let y = run(&block.spatial, &y, None);
                    // The block's input (or its projection) becomes its output.
                    x = run(&block.expand, &y, Some(shortcut.unwrap_or(x)));
                }
            }
            Blocks::Int8(_, all, settings) => {
                let Int8Settings {
                    kernel,
                    activation_max,
                } = *settings;
                for block in &all[blocks] {
                    // Each convolution quantizes its input as its product gathers it (timed
                    // with it).
                    let mut run = |conv: &Int8Conv, x: &Activations, max: &[f32], residual| {
                        timed(
                            &mut timing,
                            &conv.name,
                            conv.algorithm(kernel, x.w),
                            conv.kernel,
                            x,
                            || conv.forward(kernel, x, (max, activation_max), residual),
                        )
                    };
                    let shortcut = block.projection.as_ref().map(|p| run(p, &x, &max, None).0);
                    let (y, y_max) = run(&block.reduce, &x, &max, None);
                    let (y, y_max) = run(&block.spatial, &y, &y_max, None);
                    // The block's input (or its projection) becomes its output.
                    (x, max) = run(&block.expand, &y, &y_max, Some(shortcut.unwrap_or(x)));
                }
            }
        }
        (x, max)
    }

    /// The stem and the max-pool: the activations, and in int8 each photo's maximum.
    fn stem(
        &self,
        planar: &[f32],
        n: usize,
        side: usize,
        timing: &mut Timing,
    ) -> (Activations, Vec<f32>) {
        let x = Activations::from_planar(planar, n, 3, side, side);
        // The photo quantized with 7 bits would keep 6 and a sign: the stem then stays f32.
        let int8_stem = match &self.blocks {
            Blocks::Int8(stem, _, settings) if settings.activation_max == u8::MAX => {
                Some((stem, settings.kernel))
            }
            _ => None,
        };
        let algorithm = int8_stem.map_or(self.stem.algorithm(), |(stem, kernel)| {
            stem.algorithm(kernel, side)
        });
        let stem = || match int8_stem {
            Some((stem, kernel)) => {
                let maxima = per_photo(&x, abs_max);
                stem.forward(kernel, &x, (&maxima, u8::MAX), None)
            }
            None => (self.stem.forward(&x, None), Vec::new()),
        };
        let (name, kernel) = (&self.stem.name, self.stem.kernel);
        let (x, stem_max) = timed(timing, name, algorithm, kernel, &x, stem);
        let x = max_pool_3x3_stride_2(&x);
        // The max-pool's windows cover every pixel: its output's maximum is the stem's, which
        // the int8 stem's epilogue found; after the f32 stem (7-bit activations) it is found
        // here.
        let max = match self.blocks {
            Blocks::Int8(..) if int8_stem.is_some() => stem_max,
            Blocks::Int8(..) => per_photo(&x, max_of),
            Blocks::F32(_) => Vec::new(),
        };
        (x, max)
    }
}

/// Where [`CpuResNet50::forward_part`] starts: `n` photos (`[3, side, side]` each), or
/// activations and each photo's maximum.
enum Start<'a> {
    Photos(&'a [f32], usize, usize),
    Activations(Activations, Vec<f32>),
}

/// `f` of each photo's activations.
fn per_photo(x: &Activations, f: fn(&[f32]) -> f32) -> Vec<f32> {
    x.data.chunks_exact(x.h * x.w * x.c).map(f).collect()
}

/// Run one convolution, `work` (its output, and in int8 each photo's maximum), recording its
/// time when timing.
fn timed<M>(
    timing: &mut Timing,
    name: &str,
    algorithm: &'static str,
    kernel: usize,
    x: &Activations,
    work: impl FnOnce() -> (Activations, M),
) -> (Activations, M) {
    let Some((clock, record)) = timing else {
        return work();
    };
    let started = clock();
    let out = work();
    let y = &out.0;
    record(LayerTime {
        name: name.to_string(),
        algorithm,
        input: [x.h, x.w, x.c],
        out_channels: y.c,
        multiply_adds: (y.n * y.h * y.w * y.c * kernel * kernel * x.c) as u64,
        seconds: clock() - started,
    });
    out
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
    // A task per output row (tasks of 16 pixels measured 20-40 % slower).
    for_each_chunk(&mut out, c * w, |row, index| {
        if c.is_multiple_of(POOL_LANES) {
            max_pool_row(row, index, x);
        } else {
            max_pool_row_by_channel(row, index, x);
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

/// Channels [`max_pool_row`] takes at a time.
const POOL_LANES: usize = 16;

simd::widest! {
    /// Output row `index` of [`max_pool_3x3_stride_2`], 16 channels at a time (their number a
    /// multiple of 16, as ResNet50's 64): their maxima stay in registers over the window
    /// instead of being read and written back for each of its pixels (20 % faster).
    fn max_pool_row(row: &mut [f32], index: usize, x: &Activations) -> () {
        let (c, h) = (x.c, (x.h - 1) / 2 + 1);
        let (b, oy) = (index / h, index % h);
        let rows = (2 * oy).saturating_sub(1)..(2 * oy + 2).min(x.h);
        for (ox, pixel_out) in row.chunks_exact_mut(c).enumerate() {
            let columns = (2 * ox).saturating_sub(1)..(2 * ox + 2).min(x.w);
            let mut lane0 = 0;
            for lanes_out in pixel_out.chunks_exact_mut(POOL_LANES) {
                let mut max = [f32::NEG_INFINITY; POOL_LANES];
                for iy in rows.clone() {
                    for ix in columns.clone() {
                        let pixel = ((b * x.h + iy) * x.w + ix) * c + lane0;
                        let src: &[f32; POOL_LANES] =
                            x.data[pixel..][..POOL_LANES].try_into().expect("16 channels");
                        for k in 0..POOL_LANES {
                            max[k] = if src[k] > max[k] { src[k] } else { max[k] };
                        }
                    }
                }
                lanes_out.copy_from_slice(&max);
                lane0 += POOL_LANES;
            }
        }
    }
}

/// [`max_pool_row`] for any number of channels.
fn max_pool_row_by_channel(row: &mut [f32], index: usize, x: &Activations) {
    let (c, h) = (x.c, (x.h - 1) / 2 + 1);
    let (b, oy) = (index / h, index % h);
    for (ox, pixel_out) in row.chunks_exact_mut(c).enumerate() {
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
}

/// A head's class probabilities for `features` (`[N, 2048]`): `softmax(features · weight +
/// bias)` per row, on the CPU. The 2048 features are cut into 16 blocks, each block's rows of
/// weights (contiguous) read once for the whole batch by one core into its own partial sums,
/// which are then added in block order: the same bits on any thread count. (ImageNet's
/// weights are 8 MB: at batch 1 reading them is the work; burn's general matrix product took
/// 0.37 ms here, blocks of classes — strided rows — 0.29.)
pub fn head_probabilities(head: &HeadWeights, features: &[f32]) -> Vec<f32> {
    const BLOCKS: usize = 16;
    let (classes, n) = (head.classes, features.len() / FEATURES);
    assert_eq!(features.len(), n * FEATURES, "whole feature rows");
    if n == 0 {
        return Vec::new();
    }
    let rows = FEATURES / BLOCKS;
    let partials = map_items((0..BLOCKS).collect(), |block| {
        let mut sums = vec![0.0; n * classes];
        let k0 = block * rows;
        head_block(
            &mut sums,
            features,
            &head.weight[k0 * classes..][..rows * classes],
            k0,
        );
        sums
    });
    let mut probabilities: Vec<f32> = head
        .bias
        .iter()
        .copied()
        .cycle()
        .take(n * classes)
        .collect();
    for partial in &partials {
        for (p, s) in probabilities.iter_mut().zip(partial) {
            *p += s;
        }
    }
    for row in probabilities.chunks_exact_mut(classes) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        row.iter_mut().for_each(|v| *v = (*v - max).exp());
        let sum: f32 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= sum);
    }
    probabilities
}

simd::widest! {
    /// `sums[r, :] += Σ_k features[r, k0 + k] · weight[k, :]` over the block's rows of
    /// weights (`sums` is `[n, classes]`).
    fn head_block(sums: &mut [f32], features: &[f32], weight: &[f32], k0: usize) -> () {
        let n = features.len() / FEATURES;
        let classes = sums.len() / n.max(1);
        for (k, w) in weight.chunks_exact(classes.max(1)).enumerate() {
            for (row, x) in sums.chunks_exact_mut(classes).zip(features.chunks_exact(FEATURES)) {
                let x = x[k0 + k];
                for (s, &w) in row.iter_mut().zip(w) {
                    *s += x * w;
                }
            }
        }
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

    /// Against burn's Linear + softmax (what the WebGPU path runs), on 70 classes at batch 3;
    /// and the same bits on one thread as on all.
    #[test]
    fn head_probabilities_match_burn() {
        let device = Device::flex();
        let classes = 70;
        let head = HeadWeights {
            weight: values(FEATURES * classes, 7)
                .iter()
                .map(|v| v * 0.05)
                .collect(),
            bias: values(classes, 8),
            classes,
        };
        let features: Vec<f32> = values(3 * FEATURES, 9).iter().map(|v| v.max(0.0)).collect();
        let ours = head_probabilities(&head, &features);
        let burn = crate::model::Head::new(head.clone(), &device).forward(Tensor::from_data(
            TensorData::new(features.clone(), [3, FEATURES]),
            &device,
        ));
        let burn = burn.into_data().try_to_vec::<f32>().unwrap();
        for (a, b) in ours.iter().zip(&burn) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        assert_eq!(on_one_thread(|| head_probabilities(&head, &features)), ours);
    }

    /// An empty batch (every photo of a request unreadable) gives no features, in either
    /// arithmetic, and no probabilities.
    #[test]
    fn an_empty_batch_gives_nothing() {
        let tensors: NamedTensors = conv_specs()
            .iter()
            .flat_map(|spec| {
                let shape = spec.weight_shape().to_vec();
                let weight = values(shape.iter().product(), 1);
                let bias = (vec![spec.out_channels], values(spec.out_channels, 2));
                [
                    (format!("{}.weight", spec.name), (shape, weight)),
                    (format!("{}.bias", spec.name), bias),
                ]
            })
            .collect();
        for arithmetic in [Arithmetic::F32, Arithmetic::Int8] {
            let model = CpuResNet50::from_tensors(tensors.clone(), arithmetic).unwrap();
            assert!(model.forward(&[], 0, 224).is_empty());
        }
        let head = HeadWeights {
            weight: vec![0.0; FEATURES * 3],
            bias: vec![0.0; 3],
            classes: 3,
        };
        assert!(head_probabilities(&head, &[]).is_empty());
    }

    #[test]
    fn max_pool_matches_burn() {
        let device = Device::flex();
        // 5 channels one at a time, 32 sixteen at a time; odd and even sides.
        for (c, side) in [(5, 8), (5, 9), (32, 9)] {
            let planar: Vec<f32> = values(2 * c * side * side, side as u32)
                .iter()
                .map(|v| v.max(0.0))
                .collect();
            let x = Activations::from_planar(&planar, 2, c, side, side);
            let pool = resnet::max_pool();
            assert_close(
                &max_pool_3x3_stride_2(&x),
                pool.forward(burn_tensor(&x, &device)),
            );
        }
    }
}
