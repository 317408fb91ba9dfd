//! One convolution of the CPU backbone: weights packed once for its algorithm, then
//! `relu?(conv(x) + bias + residual)` as one product (or Winograd's), finished in cache.

use std::borrow::Cow;

use super::activations::{Activations, Pooled, buffer, position, recycle};
use super::dot::{PaddedShape, Runs};
use super::parallel::{ROWS_PER_TASK, for_each_chunk};
use super::product::{finish_row, matmul, matmul_gathered, splits_by_rows};
use super::{panel, winograd};
use crate::model::resnet::ConvSpec;

/// A convolution with its batch-norm folded in, its weights packed for its algorithm.
#[derive(Debug)]
pub(super) struct PackedConv {
    pub(super) name: String,
    pub(super) kernel: usize,
    stride: usize,
    padding: usize,
    in_channels: usize,
    pub(super) out_channels: usize,
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
    /// The same product on the same matrix packed once in panels (see `panel`).
    Packed(panel::PackedF32),
    /// 3x3 stride 1, up to 256 input channels (see `winograd`): α² matrices `[in, out]`.
    Winograd {
        variant: &'static winograd::Variant,
        weights: winograd::Weights,
    },
}

impl PackedConv {
    /// Pack `oihw` (`[out, in, k, k]`, as checked by [`ConvSpec::take_weights`]) for the
    /// convolution's algorithm.
    pub(super) fn pack(spec: &ConvSpec, oihw: &[f32], bias: Vec<f32>) -> Self {
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
            // On weights packed once (`panel`) where the CPU runs that kernel (AVX-512), the
            // stem straight from its padded photo (`panel::convolve`); elsewhere `gemm`.
            if cout.is_multiple_of(16) && panel::available() {
                Algorithm::Packed(panel::PackedF32::pack(k * k * cin, cout, &weight))
            } else {
                Algorithm::Im2col(weight)
            }
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

    pub(super) fn algorithm(&self) -> &'static str {
        match &self.weights {
            Algorithm::Winograd { variant, .. } => variant.name,
            Algorithm::Im2col(_) if self.is_direct() => "product",
            Algorithm::Im2col(_) => "im2col",
            Algorithm::Packed(_) if self.is_direct() => "product (packed)",
            Algorithm::Packed(_) if self.gathers() => "direct (packed)",
            Algorithm::Packed(_) => "im2col (packed)",
        }
    }

    /// `relu(conv(x) + bias + residual)`, the ReLU only where this convolution has one. The
    /// residual is taken: the packed kernel, or a `gemm` product split by rows, adds itself onto
    /// it in place, so the sum is written where the residual was read instead of into fresh
    /// memory (elsewhere the epilogue reads it).
    pub(super) fn forward(&self, x: &Activations, residual: Option<Activations>) -> Activations {
        assert_eq!(x.c, self.in_channels, "input channels");
        let (h, w) = (self.window().out_side(x.h), self.window().out_side(x.w));
        let cout = self.out_channels;
        if let Some(residual) = &residual {
            assert_eq!(
                (residual.n, residual.h, residual.w, residual.c),
                (x.n, h, w, cout)
            );
        }
        if let Algorithm::Winograd { variant, weights } = &self.weights {
            let residual = residual.as_ref();
            return winograd::forward(variant, x, weights, &self.bias, residual, self.relu);
        }
        let rows = x.n * h * w;
        let depth = self.kernel * self.kernel * self.in_channels;
        // The sum is written where the residual was read wherever the product adds onto it:
        // the packed kernel's epilogue always (it reads each value before storing the sum),
        // `gemm` when it splits by rows. (The stem, which gathers, has no residual.)
        let in_place = !self.gathers()
            && match &self.weights {
                Algorithm::Im2col(_) => splits_by_rows(rows, cout),
                Algorithm::Packed(_) => true,
                Algorithm::Winograd { .. } => unreachable!("returned above"),
            };
        let (mut out, residual, onto) = match residual {
            Some(mut residual) if in_place => (std::mem::take(&mut residual.data), None, true),
            residual => (buffer(rows * cout), residual, false),
        };
        let residual = residual.as_ref();
        let finish = |strip: &mut [f32], row: usize, c0: usize| {
            let skip = residual.map(|s| &s.data[row * cout + c0..][..strip.len()]);
            finish_row(strip, &self.bias[c0..][..strip.len()], skip, self.relu);
        };
        // The stem reads its windows from a padded copy of the photo: where they lie (AVX-512,
        // `panel::convolve`), or gathered by blocks of rows for `gemm`.
        let padded = self.gathers().then(|| {
            self.window()
                .pad(x, 0.0, |to, from, _| to.copy_from_slice(from))
        });
        let padded_input = || {
            let (padded, shape) = padded.as_ref().expect("a padded copy");
            (padded.as_slice(), *shape)
        };
        let gather = |rows: &mut [f32], first: usize| {
            for (r, row) in rows.chunks_exact_mut(depth).enumerate() {
                self.window()
                    .padded_row(padded_input(), (first + r, [h, w]), row);
            }
        };
        let cols: Cow<[f32]> = if self.is_direct() {
            Cow::Borrowed(&x.data)
        } else if self.gathers() {
            Cow::Borrowed(&[])
        } else {
            Cow::Owned(self.im2col(x, h, w))
        };
        // `finish` for `gemm`'s products (after each block), `epilogue` for the packed kernel's.
        let epilogue = panel::Epilogue {
            bias: &self.bias,
            onto,
            relu: self.relu,
        };
        match &self.weights {
            Algorithm::Packed(weights) if self.gathers() => {
                assert!(residual.is_none(), "the stem has no residual");
                let window = (self.kernel, self.stride);
                let shape = [x.n, h, w];
                panel::convolve(padded_input(), window, shape, weights, &mut out, epilogue)
            }
            Algorithm::Im2col(weight) if self.gathers() => {
                matmul_gathered(&gather, weight, &mut out, [rows, depth, cout], finish)
            }
            Algorithm::Im2col(weight) => {
                matmul(&cols, weight, (&mut out, onto), [rows, depth, cout], finish)
            }
            Algorithm::Packed(weights) => {
                assert!(residual.is_none(), "the residual is added in place");
                panel::matmul(&cols, weights, &mut out, rows, epilogue)
            }
            Algorithm::Winograd { .. } => unreachable!("returned above"),
        }
        if let Cow::Owned(cols) = cols {
            recycle(cols);
        }
        if let Some((padded, _)) = padded {
            recycle(padded);
        }
        Activations {
            n: x.n,
            h,
            w,
            c: cout,
            data: out,
        }
    }

    /// One row per output pixel: the `kernel x kernel` window of input channels it sees.
    fn im2col(&self, x: &Activations, h: usize, w: usize) -> Vec<f32> {
        let mut cols = buffer(x.n * h * w * self.kernel * self.kernel * x.c);
        self.window()
            .im2col(&x.data, [x.n, x.h, x.w, x.c], [h, w], &mut cols);
        cols
    }

    /// The stem's 7x7 windows of 3 channels would make a 147-deep im2col matrix of 7.4 MB per
    /// photo, for a product of only 64 columns: instead the packed kernel reads them where they
    /// lie, or (without AVX-512) each block of rows for `gemm` gathers its own.
    fn gathers(&self) -> bool {
        self.in_channels == 3 && self.kernel > 1
    }

    /// A 1x1 stride-1 convolution multiplies the activations as they lie, without im2col.
    fn is_direct(&self) -> bool {
        self.kernel == 1 && self.stride == 1
    }

    fn window(&self) -> Window {
        Window {
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
        }
    }
}

/// A convolution's sliding window.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) kernel: usize,
    pub(super) stride: usize,
    pub(super) padding: usize,
}

impl Window {
    /// The output side for an input side.
    pub(super) fn out_side(self, side: usize) -> usize {
        (side + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// im2col: into `cols`, one row per output pixel (`[h, w]` of them per image): the
    /// `kernel x kernel` window of input channels it sees (zeros where the window hangs over
    /// the padding). `x` is `[n, h, w, c]` channels-last.
    pub(super) fn im2col(
        self,
        x: &[f32],
        [n, x_h, x_w, c]: [usize; 4],
        [h, w]: [usize; 2],
        cols: &mut [f32],
    ) {
        let depth = self.kernel * self.kernel * c;
        assert!(x.len() == n * x_h * x_w * c && cols.len() == n * h * w * depth);
        for_each_chunk(cols, depth * ROWS_PER_TASK, |chunk, first| {
            for (r, row) in chunk.chunks_mut(depth).enumerate() {
                let pixel = first * ROWS_PER_TASK + r;
                let copy = |to: &mut [f32], from: &[f32]| to.copy_from_slice(from);
                self.im2col_row(x, [n, x_h, x_w, c], [h, w], pixel, (row, 0.0), copy);
            }
        });
    }

    /// `x` inside a border of `self.padding` pixels of `zero` (`[n, h + 2p, w + 2p, c]`), where
    /// every window lies inside (see [`Self::padded_row`]), each row of `x` through
    /// `convert(to, from, photo)` (which may quantize); on all cores. With its shape: (height
    /// and width, channels).
    pub(super) fn pad<T: Pooled + Send + Sync>(
        self,
        x: &Activations,
        zero: T,
        convert: impl Fn(&mut [T], &[f32], usize) + Send + Sync,
    ) -> (Vec<T>, PaddedShape) {
        let p = self.padding;
        let (padded_h, padded_w, c) = (x.h + 2 * p, x.w + 2 * p, x.c);
        let mut padded = buffer(x.n * padded_h * padded_w * c);
        // Tasks of one padded row each: none spans two photos.
        for_each_chunk(&mut padded, padded_w * c, |row, i| {
            let (b, py) = (i / padded_h, i % padded_h);
            let Some(y) = py.checked_sub(p).filter(|&y| y < x.h) else {
                return row.fill(zero);
            };
            let (left, rest) = row.split_at_mut(p * c);
            let (inside, right) = rest.split_at_mut(x.w * c);
            left.fill(zero);
            right.fill(zero);
            let from = (b * x.h + y) * x.w * c;
            convert(inside, &x.data[from..from + x.w * c], b);
        });
        (padded, ([padded_h, padded_w], c))
    }

    /// One im2col row, output pixel `pixel`'s (of `[h, w]` per image), from `padded`: the
    /// input with its padding around it (`[n, padded_h, padded_w, c]`; [`Self::pad`]), so
    /// each window row is one plain copy. (Checking each run against the borders instead took
    /// half the time of the 7x7 stem, whose rows are 7 runs of 3 channels.)
    pub(super) fn padded_row<T: Copy>(
        self,
        (padded, shape): (&[T], PaddedShape),
        (pixel, [h, w]): (usize, [usize; 2]),
        row: &mut [T],
    ) {
        let window = (self.kernel, self.stride);
        let (windows, runs) = Runs::windows_of_row(padded, shape, window, [h, w], pixel / w);
        let first = pixel % w * self.stride * shape.1;
        for (ky, segment) in row.chunks_exact_mut(runs.len).enumerate() {
            let from = first + ky * runs.stride;
            copy_run(segment, &windows[from..from + runs.len]);
        }
    }

    /// One row of [`Self::im2col`], output pixel `pixel`'s, of any element type: `copy`
    /// converts each contiguous run of input values (the int8 convolutions quantize as they
    /// copy), `zero` (zero's representation: quantized, it may not be 0) fills the padding.
    pub(super) fn im2col_row<S, T: Copy>(
        self,
        x: &[S],
        [_, x_h, x_w, c]: [usize; 4],
        [h, w]: [usize; 2],
        pixel: usize,
        (row, zero): (&mut [T], T),
        copy: impl Fn(&mut [T], &[S]),
    ) {
        let k = self.kernel;
        let (b, oy, ox) = position(pixel, h, w);
        // Input column of the window's left edge (negative: in the padding).
        let left = (ox * self.stride) as isize - self.padding as isize;
        // The window's columns inside the image, [inside.0, inside.1) of 0..k: one
        // contiguous run of channels-last pixels per window row.
        let (lo, hi) = (
            (-left).clamp(0, k as isize) as usize,
            (x_w as isize - left).clamp(0, k as isize) as usize,
        );
        for (ky, segment) in row.chunks_mut(k * c).enumerate() {
            let iy = (oy * self.stride + ky) as isize - self.padding as isize;
            if iy < 0 || iy >= x_h as isize || lo >= hi {
                segment.fill(zero);
                continue;
            }
            let src = ((b * x_h + iy as usize) * x_w) as isize + left + lo as isize;
            let src = src as usize * c;
            segment[..lo * c].fill(zero);
            copy(&mut segment[lo * c..hi * c], &x[src..src + (hi - lo) * c]);
            segment[hi * c..].fill(zero);
        }
    }
}

/// `to.copy_from_slice(from)`, in fixed-size moves for the runs ResNet50's window rows are
/// (the stem's 7 pixels x 3 channels, 3x3 layers' 3 pixels of 64 to 256 bytes), not a `memcpy`
/// call for each.
fn copy_run<T: Copy>(to: &mut [T], from: &[T]) {
    fn fixed<const N: usize, T: Copy>(to: &mut [T], from: &[T]) {
        let to: &mut [T; N] = to.try_into().expect("N values");
        let from: &[T; N] = from.try_into().expect("N values");
        *to = *from;
    }
    match to.len() {
        21 => fixed::<21, T>(to, from),
        192 => fixed::<192, T>(to, from),
        384 => fixed::<384, T>(to, from),
        768 => fixed::<768, T>(to, from),
        _ => to.copy_from_slice(from),
    }
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;
    use burn::tensor::activation::relu;

    use super::*;
    use crate::model::NamedTensors;
    use crate::model::cpu::testing::{assert_close, burn_tensor, conv_spec, values};
    use crate::model::resnet;

    /// Each convolution shape ResNet50 has, against burn's own Conv2d (+ bias, residual, ReLU).
    #[test]
    fn convolutions_match_burn() {
        let device = Device::flex();
        // (in, out, kernel, stride, padding, side, projection, residual)
        let cases = [
            (3, 8, 7, 2, 3, 20, false, false),
            // The stem's shape: with AVX-512 read where its windows lie in the padded photo (16
            // and 64 outputs, one and four panels per tile); elsewhere, and with 24 outputs
            // (not whole panels) everywhere, its rows gathered by blocks for `gemm`: each
            // photo's 900 rows exceed one 784-row block, so blocks straddle the two photos.
            (3, 16, 7, 2, 3, 60, false, false),
            (3, 64, 7, 2, 3, 20, false, false),
            (3, 24, 7, 2, 3, 60, false, false),
            (16, 8, 1, 1, 0, 9, false, false),
            (16, 8, 1, 2, 0, 9, true, false),
            // With AVX-512, packed: a projection (stride 2, no ReLU), a 1x1 onto its residual.
            (16, 32, 1, 2, 0, 9, true, false),
            (24, 48, 1, 1, 0, 5, false, true),
            // Outputs not whole panels of 16: on `gemm` everywhere, split by rows and so
            // adding onto its residual in place (the path of every 1x1 without AVX-512).
            (8, 24, 1, 1, 0, 7, false, true),
            // Winograd F(4x4) then F(2x2) (odd and even sides, with a residual), by blocks of
            // tile rows, and im2col for a 3x3 with over 256 inputs.
            (8, 8, 3, 1, 1, 7, false, false),
            (8, 8, 3, 1, 1, 6, false, true),
            (8, 16, 3, 1, 1, 8, false, false),
            (136, 8, 3, 1, 1, 5, false, false),
            (136, 8, 3, 1, 1, 6, false, true),
            (264, 8, 3, 1, 1, 5, false, false),
            // Winograd's whole-layer phases (weights over 1 MB; those above run by blocks).
            (128, 64, 3, 1, 1, 7, false, true),
            (136, 136, 3, 1, 1, 6, false, false),
            // F(2x2) with whole panels of outputs (with AVX-512, its products packed), by
            // blocks and in whole-layer phases.
            (136, 16, 3, 1, 1, 6, false, true),
            (144, 128, 3, 1, 1, 6, false, false),
            // The last stage's shapes (with AVX-512, like every layer whose outputs are whole
            // panels of 16, on the packed kernel).
            (512, 512, 3, 1, 1, 3, false, false),
            (512, 528, 1, 1, 0, 3, false, true),
            (8, 16, 1, 1, 0, 7, false, true),
        ];
        for (i, &(cin, cout, k, stride, padding, side, projection, residual)) in
            cases.iter().enumerate()
        {
            let seed = i as u32 * 10;
            let spec = conv_spec([cin, cout, k, stride, padding], projection);
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
            let (oihw, packed_bias) = spec.take_weights(&mut tensors).unwrap();
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
            assert_close(&ours.forward(&x, skip), expected);
        }
    }
}
