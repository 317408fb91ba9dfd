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

mod winograd;

use std::borrow::Cow;

use super::resnet::{Block, ConvSpec, FEATURES, assemble, conv_specs};
use super::{ModelError, NamedTensors, ensure_all_used, take};

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
                let (weight, bias) = take_conv(&spec, &mut tensors)?;
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
        self.forward_with(planar, n, side, &mut |conv, x, residual| {
            conv.forward(x, residual)
        })
    }

    /// [`Self::forward`], timing every convolution (`lucy bench --layers`).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn forward_timed(
        &self,
        planar: &[f32],
        n: usize,
        side: usize,
        record: &mut dyn FnMut(LayerTime),
    ) -> Vec<f32> {
        self.forward_with(planar, n, side, &mut |conv, x, residual| {
            let started = std::time::Instant::now();
            let y = conv.forward(x, residual);
            record(LayerTime {
                name: conv.name.clone(),
                algorithm: conv.algorithm(),
                input: [x.h, x.w, x.c],
                out_channels: conv.out_channels,
                multiply_adds: (y.n * y.h * y.w * y.c * conv.kernel * conv.kernel * x.c) as u64,
                seconds: started.elapsed().as_secs_f64(),
            });
            y
        })
    }

    /// The network, with `conv` running each convolution.
    fn forward_with(
        &self,
        planar: &[f32],
        n: usize,
        side: usize,
        conv: &mut dyn FnMut(&PackedConv, &Activations, Option<&Activations>) -> Activations,
    ) -> Vec<f32> {
        let x = Activations::from_planar(planar, n, 3, side, side);
        let x = conv(&self.stem, &x, None);
        let mut x = max_pool_3x3_stride_2(&x);
        for block in &self.blocks {
            let shortcut = block.projection.as_ref().map(|p| conv(p, &x, None));
            let y = conv(&block.reduce, &x, None);
            let y = conv(&block.spatial, &y, None);
            x = conv(&block.expand, &y, Some(shortcut.as_ref().unwrap_or(&x)));
        }
        global_average(&x)
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

/// `n` images of `h` x `w` pixels with `c` channels, channels-last: `data[((b·h + y)·w + x)·c + ch]`.
#[derive(Debug)]
struct Activations {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    data: Vec<f32>,
}

impl Activations {
    fn from_planar(planar: &[f32], n: usize, c: usize, h: usize, w: usize) -> Self {
        assert_eq!(planar.len(), n * c * h * w, "input size");
        let mut data = buffer(planar.len());
        for (b, image) in data.chunks_mut(h * w * c).enumerate() {
            let src = &planar[b * c * h * w..][..c * h * w];
            for (pixel, out) in image.chunks_mut(c).enumerate() {
                for (ch, value) in out.iter_mut().enumerate() {
                    *value = src[ch * h * w + pixel];
                }
            }
        }
        Self { n, h, w, c, data }
    }
}

impl Drop for Activations {
    fn drop(&mut self) {
        recycle(std::mem::take(&mut self.data));
    }
}

thread_local! {
    /// Buffers of finished layers, for the same layers of the next photo: a photo passes
    /// through ~100 MB of activations and im2col matrices, and zeroing fresh memory for each
    /// cost more than the largest convolution.
    static SPARE: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// At most this many spare floats (256 MB): the buffers of a forward pass take ~26 MB at
/// batch 1 and ~230 MB at batch 8 (training's batches, 15 % slower without them).
const SPARE_FLOATS: usize = 64 << 20;

/// `len` floats with arbitrary contents: every caller overwrites all of them.
fn buffer(len: usize) -> Vec<f32> {
    SPARE.with_borrow_mut(|spare| match spare.iter().rposition(|b| b.len() == len) {
        Some(i) => spare.remove(i),
        None => vec![0.0; len],
    })
}

/// Keep a buffer for [`buffer`], dropping the oldest ones beyond [`SPARE_FLOATS`].
fn recycle(buffer: Vec<f32>) {
    if buffer.is_empty() || buffer.len() > SPARE_FLOATS {
        return;
    }
    SPARE.with_borrow_mut(|spare| {
        let mut kept: usize = spare.iter().map(Vec::len).sum::<usize>() + buffer.len();
        while kept > SPARE_FLOATS {
            kept -= spare.remove(0).len();
        }
        spare.push(buffer);
    });
}

/// A convolution with its batch-norm folded in, its weights packed for its algorithm.
#[derive(Debug)]
struct PackedConv {
    name: String,
    kernel: usize,
    stride: usize,
    padding: usize,
    in_channels: usize,
    out_channels: usize,
    /// Every convolution in ResNet50 is followed by a ReLU except the projection shortcuts,
    /// whose output is added to the block's before the block's ReLU.
    relu: bool,
    weights: Algorithm,
    bias: Vec<f32>,
}

/// How a convolution is computed, with its weights in the layout that needs.
#[derive(Debug)]
enum Algorithm {
    /// One product: im2col rows (the activations themselves for 1x1 stride 1) times
    /// `[k·k·in, out]`, `w[((ky·k + kx)·in + ci)·out + co]`.
    Im2col(Vec<f32>),
    /// 3x3 stride 1, up to 256 input channels (see `winograd`): α² matrices `[in, out]`.
    Winograd {
        variant: &'static winograd::Variant,
        weights: Vec<f32>,
    },
}

/// The folded weights `[out, in, k, k]` and bias of one convolution, shapes checked.
fn take_conv(
    spec: &ConvSpec,
    tensors: &mut NamedTensors,
) -> Result<(Vec<f32>, Vec<f32>), ModelError> {
    let weight = take(
        tensors,
        &format!("{}.weight", spec.name),
        &spec.weight_shape(),
    )?;
    let bias = take(
        tensors,
        &format!("{}.bias", spec.name),
        &[spec.out_channels],
    )?;
    Ok((weight, bias))
}

impl PackedConv {
    /// Pack `oihw` (`[out, in, k, k]`, as checked by [`take_conv`]) for the convolution's
    /// algorithm.
    fn pack(spec: &ConvSpec, oihw: &[f32], bias: Vec<f32>) -> Self {
        let (k, cin, cout) = (spec.kernel, spec.in_channels, spec.out_channels);
        // Winograd where it measured faster: F(4x4) on the 56² and 28² layers, F(2x2) on the
        // 14² layers, and not on the 7² layers of the last stage, whose few tiles make small
        // products that cost more than one im2col product (BENCHMARKS.md, "profile").
        let weights = if k == 3 && spec.stride == 1 && spec.padding == 1 && cin <= 256 {
            // F(4x4) has the fewest multiplications, but 4x4 output tiles leave the 14² layers
            // only 16 tiles per photo, too few rows for efficient products.
            let variant = if cin <= 128 {
                &winograd::F4X4
            } else {
                &winograd::F2X2
            };
            Algorithm::Winograd {
                variant,
                weights: winograd::pack(variant, oihw, cin, cout),
            }
        } else {
            let mut weight = Vec::with_capacity(oihw.len());
            for ky in 0..k {
                for kx in 0..k {
                    for ci in 0..cin {
                        for co in 0..cout {
                            weight.push(oihw[((co * cin + ci) * k + ky) * k + kx]);
                        }
                    }
                }
            }
            Algorithm::Im2col(weight)
        };
        Self {
            name: spec.name.clone(),
            kernel: k,
            stride: spec.stride,
            padding: spec.padding,
            in_channels: cin,
            out_channels: cout,
            relu: !spec.is_projection(),
            weights,
            bias,
        }
    }

    fn algorithm(&self) -> &'static str {
        match &self.weights {
            Algorithm::Winograd { variant, .. } => variant.name,
            Algorithm::Im2col(_) if self.kernel == 1 && self.stride == 1 => "product",
            Algorithm::Im2col(_) => "im2col",
        }
    }

    /// `relu(conv(x) + bias + residual)`, the ReLU only where this convolution has one.
    fn forward(&self, x: &Activations, residual: Option<&Activations>) -> Activations {
        assert_eq!(x.c, self.in_channels, "input channels");
        let out_side = |side: usize| (side + 2 * self.padding - self.kernel) / self.stride + 1;
        let (h, w) = (out_side(x.h), out_side(x.w));
        let cout = self.out_channels;
        if let Some(residual) = residual {
            assert_eq!(
                (residual.n, residual.h, residual.w, residual.c),
                (x.n, h, w, cout)
            );
        }
        let weight = match &self.weights {
            Algorithm::Winograd { variant, weights } => {
                return winograd::forward(variant, x, weights, &self.bias, residual, self.relu);
            }
            Algorithm::Im2col(weight) => weight,
        };
        let rows = x.n * h * w;
        let depth = self.kernel * self.kernel * self.in_channels;
        let cols: Cow<[f32]> = if self.kernel == 1 && self.stride == 1 {
            Cow::Borrowed(&x.data)
        } else {
            Cow::Owned(self.im2col(x, h, w))
        };
        let mut out = buffer(rows * cout);
        matmul(
            &cols,
            weight,
            &mut out,
            [rows, depth, cout],
            |strip, row, c0| {
                let skip = residual.map(|s| &s.data[row * cout + c0..][..strip.len()]);
                finish_row(strip, &self.bias[c0..][..strip.len()], skip, self.relu);
            },
        );
        if let Cow::Owned(cols) = cols {
            recycle(cols);
        }
        Activations {
            n: x.n,
            h,
            w,
            c: cout,
            data: out,
        }
    }

    /// One row per output pixel: the `kernel x kernel` window of input channels it sees
    /// (zeros where the window hangs over the padding).
    fn im2col(&self, x: &Activations, h: usize, w: usize) -> Vec<f32> {
        let (k, c) = (self.kernel, x.c);
        let depth = k * k * c;
        let mut cols = buffer(x.n * h * w * depth);
        for_each_chunk(&mut cols, depth * ROWS_PER_TASK, |chunk, first| {
            for (r, row) in chunk.chunks_mut(depth).enumerate() {
                let pixel = first * ROWS_PER_TASK + r;
                let (b, oy, ox) = position(pixel, h, w);
                // Input column of the window's left edge (negative: in the padding).
                let left = (ox * self.stride) as isize - self.padding as isize;
                // The window's columns inside the image, [inside.0, inside.1) of 0..k: one
                // contiguous run of channels-last pixels per window row.
                let inside = (
                    (-left).clamp(0, k as isize) as usize,
                    (x.w as isize - left).clamp(0, k as isize) as usize,
                );
                for (ky, segment) in row.chunks_mut(k * c).enumerate() {
                    let iy = (oy * self.stride + ky) as isize - self.padding as isize;
                    let (lo, hi) = inside;
                    if iy < 0 || iy >= x.h as isize || lo >= hi {
                        segment.fill(0.0);
                        continue;
                    }
                    let src = ((b * x.h + iy as usize) * x.w) as isize + left + lo as isize;
                    let src = src as usize * c;
                    segment[..lo * c].fill(0.0);
                    segment[lo * c..hi * c].copy_from_slice(&x.data[src..src + (hi - lo) * c]);
                    segment[hi * c..].fill(0.0);
                }
            }
        });
        cols
    }
}

/// (image, row, column) of the `index`-th point of `n` images of `h` x `w`, images then rows.
fn position(index: usize, h: usize, w: usize) -> (usize, usize, usize) {
    (index / (h * w), index / w % h, index % w)
}

/// One output pixel's last step: `relu?(row + bias + skip)`. Separate simple loops over a row
/// that sits in L1, so each one vectorizes.
fn finish_row(row: &mut [f32], bias: &[f32], skip: Option<&[f32]>, relu: bool) {
    row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
    if let Some(skip) = skip {
        row.iter_mut().zip(skip).for_each(|(v, s)| *v += s);
    }
    if relu {
        // A comparison rather than f32::max: its NaN rules keep it scalar in wasm.
        row.iter_mut()
            .for_each(|v| *v = if *v > 0.0 { *v } else { 0.0 });
    }
}

/// `out[rows, cout] = cols[rows, depth] · weight[depth, cout]`, all row-major, then
/// `finish(strip, row, first column)` on each row's strip of the result. Natively the product
/// is split into blocks along its larger side, each block a single-threaded `gemm` finished by
/// the same thread while it is in cache: gemm's own threading lost half the speed on the
/// small-but-wide products of the last stage (49 pixels, 2048 channels).
fn matmul(
    cols: &[f32],
    weight: &[f32],
    out: &mut [f32],
    [rows, depth, cout]: [usize; 3],
    finish: impl Fn(&mut [f32], usize, usize) + Send + Sync,
) {
    assert!(cols.len() == rows * depth && weight.len() == depth * cout && out.len() == rows * cout);
    let by_rows = rows >= cout;
    let (len, align) = if by_rows { (rows, 8) } else { (cout, 16) };
    // Two blocks per core: the one free core takes the other's second block when a core is
    // slowed (this machine is shared). One block per core measured slower and less steady,
    // four slower again (each block packs its own share of the operands).
    let step = len.div_ceil(2 * threads()).next_multiple_of(align).min(len);
    let out_ptr = SendPtr(out.as_mut_ptr());
    let block = |start: usize| {
        let size = step.min(len - start);
        let (r0, nr, c0, nc) = if by_rows {
            (start, size, 0, cout)
        } else {
            (0, rows, start, size)
        };
        // SAFETY: the block reads rows r0..r0+nr of `cols` and columns c0..c0+nc of `weight`
        // and writes the matching block of `out`, all in bounds (asserted above); blocks do
        // not overlap, and `out` does not alias the inputs.
        unsafe {
            product(
                [nr, depth, nc],
                (out_ptr.get().add(r0 * cout + c0), cout),
                (cols.as_ptr().add(r0 * depth), depth),
                (weight.as_ptr().add(c0), cout),
            );
        }
        for row in r0..r0 + nr {
            // SAFETY: this block's part of the row: in bounds, written by no other block.
            let strip =
                unsafe { std::slice::from_raw_parts_mut(out_ptr.get().add(row * cout + c0), nc) };
            finish(strip, row, c0);
        }
    };
    for_each_item((0..len).step_by(step).collect(), block);
}

/// `dst[m, n] = lhs[m, depth] · rhs[depth, n]` on one core, each matrix row-major with the
/// given row stride (in elements); `dst` is overwritten, never read.
///
/// # Safety
/// Each pointer must address its whole matrix at that stride, and `dst` must not overlap the
/// inputs or be written by anything else meanwhile.
unsafe fn product(
    [m, depth, n]: [usize; 3],
    (dst, dst_stride): (*mut f32, usize),
    (lhs, lhs_stride): (*const f32, usize),
    (rhs, rhs_stride): (*const f32, usize),
) {
    // SAFETY: as promised by the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            depth,
            dst,
            1,
            dst_stride as isize,
            false,
            lhs,
            1,
            lhs_stride as isize,
            rhs,
            1,
            rhs_stride as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
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

/// Output pixels per parallel task in the passes around the products: enough work to be worth
/// a task, few enough that the last stage (7x7 pixels) still splits across cores.
const ROWS_PER_TASK: usize = 16;

/// Run `f(chunk, index)` over `data` in chunks of `len`: on all cores natively, in order in
/// the browser (no threads without cross-origin isolation).
fn for_each_chunk(data: &mut [f32], len: usize, f: impl Fn(&mut [f32], usize) + Send + Sync) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        data.par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, chunk)| f(chunk, i));
    }
    #[cfg(target_arch = "wasm32")]
    data.chunks_mut(len)
        .enumerate()
        .for_each(|(i, chunk)| f(chunk, i));
}

/// `f` of every item, in order: computed on all cores natively, one by one in the browser.
fn map_items<T: Send, U: Send>(items: Vec<T>, f: impl Fn(T) -> U + Send + Sync) -> Vec<U> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        items.into_par_iter().map(f).collect()
    }
    #[cfg(target_arch = "wasm32")]
    items.into_iter().map(f).collect()
}

/// Run `f` on every item: on all cores natively, in order in the browser.
fn for_each_item<T: Send>(items: Vec<T>, f: impl Fn(T) + Send + Sync) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        items.into_par_iter().for_each(f);
    }
    #[cfg(target_arch = "wasm32")]
    items.into_iter().for_each(f);
}

fn threads() -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    return rayon::current_num_threads();
    #[cfg(target_arch = "wasm32")]
    return 1;
}

/// A raw pointer that may cross threads: each thread writes its own disjoint block.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only to hand disjoint output blocks to the threads of one `matmul` call.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;
    use burn::tensor::activation::relu;

    use super::*;
    use crate::model::resnet;

    /// Deterministic values in [-1, 1).
    fn values(len: usize, seed: u32) -> Vec<f32> {
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

    fn nchw(x: &Activations) -> Vec<f32> {
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

    fn burn_tensor(x: &Activations, device: &Device) -> Tensor<4> {
        Tensor::from_data(TensorData::new(nchw(x), [x.n, x.c, x.h, x.w]), device)
    }

    fn assert_close(ours: &Activations, theirs: Tensor<4>) {
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

    /// Each convolution shape ResNet50 has, against burn's own Conv2d (+ bias, residual, ReLU).
    #[test]
    fn convolutions_match_burn() {
        let device = Device::flex();
        // (in, out, kernel, stride, padding, side, projection, residual)
        let cases = [
            (3, 8, 7, 2, 3, 20, false, false),
            (16, 8, 1, 1, 0, 9, false, false),
            (16, 8, 1, 2, 0, 9, true, false),
            // Winograd F(4x4) then F(2x2) (odd and even sides, with a residual), and im2col
            // for a 3x3 with over 256 inputs.
            (8, 8, 3, 1, 1, 7, false, false),
            (8, 8, 3, 1, 1, 6, false, true),
            (8, 16, 3, 1, 1, 8, false, false),
            (136, 8, 3, 1, 1, 5, false, false),
            (136, 8, 3, 1, 1, 6, false, true),
            (264, 8, 3, 1, 1, 5, false, false),
            (8, 16, 1, 1, 0, 7, false, true),
        ];
        for (i, &(cin, cout, k, stride, padding, side, projection, residual)) in
            cases.iter().enumerate()
        {
            let seed = i as u32 * 10;
            let spec = ConvSpec {
                name: if projection { "res9a_branch1" } else { "c" }.into(),
                batch_norm: "bn".into(),
                in_channels: cin,
                out_channels: cout,
                kernel: k,
                stride,
                padding,
            };
            let weight = values(cout * cin * k * k, seed + 1);
            let bias = values(cout, seed + 2);
            let mut tensors = NamedTensors::from([
                (
                    format!("{}.weight", spec.name),
                    (spec.weight_shape().to_vec(), weight.clone()),
                ),
                (format!("{}.bias", spec.name), (vec![cout], bias.clone())),
            ]);
            let burn_conv = resnet::conv(&spec, &mut tensors.clone(), &device).unwrap();
            let (oihw, packed_bias) = take_conv(&spec, &mut tensors).unwrap();
            let ours = PackedConv::pack(&spec, &oihw, packed_bias);
            let winograd = matches!(ours.weights, Algorithm::Winograd { .. });
            assert_eq!(winograd, k == 3 && cin <= 256, "case {i}");
            let x = Activations::from_planar(
                &values(2 * cin * side * side, seed + 3),
                2,
                cin,
                side,
                side,
            );
            let out_side = (side + 2 * padding - k) / stride + 1;
            let skip = residual.then(|| {
                Activations::from_planar(
                    &values(2 * cout * out_side * out_side, seed + 4),
                    2,
                    cout,
                    out_side,
                    out_side,
                )
            });

            let mut expected = burn_conv.forward(burn_tensor(&x, &device));
            if let Some(skip) = &skip {
                expected = expected + burn_tensor(skip, &device);
            }
            if !projection {
                expected = relu(expected);
            }
            assert_close(&ours.forward(&x, skip.as_ref()), expected);
        }
    }

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
