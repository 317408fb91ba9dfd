//! The int8 arithmetic of the CPU backbone: a convolution whose weights are the downloaded
//! int8 values (one scale per output channel) and whose input is quantized to u8 — by a 1x1
//! convolution as each tile gathers its rows, by a wider window once, into a copy with the
//! padding around it — summed exactly in i32 (`dot`), then dequantized, biased, added to the
//! residual and rectified in one pass over each tile while it is in cache
//! (`product::int8_matmul`, `product::int8_convolve`), or on VNNI by the kernel itself on the
//! sums in registers (`dot::product_dequantized`; the same bits).
//!
//! Activations are quantized per photo (one scale for a photo's tensor; photos batched in one
//! product each keep theirs) with a scale computed at run time from the photo's own maximum,
//! not calibrated at import: every input a convolution here sees after the stem comes out of a
//! ReLU (≥ 0: u8 with no zero point), a photo's range is then used in full whatever the photo,
//! and the import needs no photos. The
//! maximum is found by the epilogue of the layer that makes the tensor, so it costs no extra
//! pass. The stem's input, the photo, is signed: quantized around a zero point. The residual
//! stream between blocks stays f32.

use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use super::activations::{Activations, buffer, recycle};
use super::conv::Window;
use super::dot::{Int8Kernel, PackedInt8};
use super::product::{InKernel, int8_convolve, int8_matmul};
use super::simd::widest;
use crate::model::quant::quantize_per_channel;
use crate::model::resnet::ConvSpec;

/// How activations map to bytes: `value ≈ (q - zero_point) · scale`, `q` in `0..=top` (255,
/// or 127 for a kernel that multiplies 7-bit activations only).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Quantization {
    pub(super) scale: f32,
    pub(super) zero_point: u8,
    top: u8,
}

impl Quantization {
    /// Activations all ≥ 0 (out of a ReLU) whose largest value is `max`: `0..=max` onto
    /// `0..=top`.
    pub(super) fn unsigned(max: f32, top: u8) -> Self {
        Self::new(max, 0, top)
    }

    /// Signed activations (the photo, its channel means subtracted) whose largest magnitude is
    /// `max`: `-max..=max` onto `1..=top`, 0 on the middle byte.
    pub(super) fn signed(max: f32, top: u8) -> Self {
        Self::new(max, top / 2 + 1, top)
    }

    fn new(max: f32, zero_point: u8, top: u8) -> Self {
        // A maximum under the smallest normal float would make an infinite inverse.
        let steps = f32::from(top - zero_point);
        let scale = if max >= f32::MIN_POSITIVE {
            max / steps
        } else {
            1.0
        };
        Self {
            scale,
            zero_point,
            top,
        }
    }

    /// `values` quantized into `q` (as many as `q` holds).
    pub(super) fn quantize_into(self, q: &mut [u8], values: &[f32]) {
        let offset = f32::from(self.zero_point) + 0.5;
        quantize_into(q, values, 1.0 / self.scale, offset, f32::from(self.top));
    }
}

/// Rows `first..first + count` of a product whose photos have `pixels` rows each, as runs of
/// one photo's rows: `(photo, rows relative to first)`.
fn photo_runs(
    first: usize,
    count: usize,
    pixels: usize,
) -> impl Iterator<Item = (usize, Range<usize>)> {
    let mut r = 0;
    std::iter::from_fn(move || {
        (r < count).then(|| {
            let b = (first + r) / pixels;
            let end = ((b + 1) * pixels - first).min(count);
            let run = r..end;
            r = end;
            (b, run)
        })
    })
}

widest! {
    /// `q = round(v · inverse + offset - 0.5)`, half up, saturating at 0 and `top` (≤ 255).
    fn quantize_into(q: &mut [u8], values: &[f32], inverse: f32, offset: f32, top: f32) -> () {
        for (q, &v) in q.iter_mut().zip(values) {
            // Clamped first by comparisons (a NaN becomes `top`; `min`/`max` would keep this
            // loop scalar in wasm, `clamp` would keep the NaN), so the conversion is in range.
            let v = v * inverse + offset;
            let v = if v < top { v } else { top };
            let v = if v > 0.0 { v } else { 0.0 };
            // SAFETY: v is finite and within 0..=top ≤ 255.
            *q = unsafe { v.to_int_unchecked::<i32>() } as u8;
        }
    }
}

widest! {
    /// The largest magnitude of `values` (compared as bits without the sign, which order
    /// floats' magnitudes like their values: a loop that vectorizes).
    pub(super) fn abs_max(values: &[f32]) -> f32 {
        f32::from_bits(values.iter().fold(0u32, |m, v| m.max(v.to_bits() & 0x7fff_ffff)))
    }
}

widest! {
    /// The largest value of activations that are all ≥ 0 (compared as bits, which order
    /// non-negative floats like their values: a loop that vectorizes).
    pub(super) fn max_of(values: &[f32]) -> f32 {
        f32::from_bits(values.iter().fold(0u32, |m, v| m.max(v.to_bits())))
    }
}

/// A convolution with its batch-norm folded in, its weights int8 and packed for `dot`.
#[derive(Debug)]
pub(super) struct Int8Conv {
    pub(super) name: String,
    pub(super) kernel: usize,
    window: Window,
    in_channels: usize,
    pub(super) out_channels: usize,
    /// As in `PackedConv`: every convolution but the projection shortcuts.
    relu: bool,
    weights: PackedInt8,
    /// Per output channel.
    scales: Vec<f32>,
    bias: Vec<f32>,
    /// For a signed input (the stem's photo, quantized around a zero point): each output
    /// channel's weights' sum, which times the zero point is what the zero point added to the
    /// sums. `None` for inputs ≥ 0.
    column_sums: Option<Vec<i32>>,
}

impl Int8Conv {
    /// Quantize and pack `oihw` (`[out, in, k, k]`) for inputs ≥ 0, or for signed ones (the
    /// stem). From an int8 bundle's dequantized weights this gives back exactly the bundle's
    /// int8 values.
    pub(super) fn pack(spec: &ConvSpec, oihw: &[f32], bias: Vec<f32>, signed_input: bool) -> Self {
        let (k, cin, cout) = (spec.kernel, spec.in_channels, spec.out_channels);
        assert_eq!(bias.len(), cout, "a bias per output channel");
        let q = quantize_per_channel(oihw, cout);
        // `q` is [co][ci][ky][kx]; the product's rows are in im2col order (ky, kx, ci), and
        // as many more rows of zeros as make the depth a multiple of 4 (the stem's 147).
        let depth = (k * k * cin).next_multiple_of(4);
        let mut kn = vec![0i8; depth * cout];
        let mut values = q.values.iter();
        for co in 0..cout {
            for ci in 0..cin {
                for ky in 0..k {
                    for kx in 0..k {
                        let v = values.next().expect("k·k·in·out weights");
                        kn[((ky * k + kx) * cin + ci) * cout + co] = *v;
                    }
                }
            }
        }
        let column_sums = signed_input.then(|| {
            (0..cout)
                .map(|co| {
                    kn.iter()
                        .skip(co)
                        .step_by(cout)
                        .map(|&v| i32::from(v))
                        .sum()
                })
                .collect()
        });
        let weights = PackedInt8::pack(depth, cout, &kn);
        Self {
            name: spec.name.clone(),
            kernel: k,
            window: Window {
                kernel: k,
                stride: spec.stride,
                padding: spec.padding,
            },
            in_channels: cin,
            out_channels: cout,
            relu: !spec.is_projection(),
            weights,
            scales: q.scales,
            bias,
            column_sums,
        }
    }

    /// A 1x1 stride-1 convolution multiplies the activations as they lie, without im2col.
    fn is_direct(&self) -> bool {
        self.kernel == 1 && self.window.stride == 1
    }

    /// The output side for an input side.
    pub(super) fn out_side(&self, side: usize) -> usize {
        self.window.out_side(side)
    }

    /// For `kernel`, on an input `side` pixels wide.
    pub(super) fn algorithm(&self, kernel: Int8Kernel, side: usize) -> &'static str {
        if self.is_direct() {
            "int8 product"
        } else if self.reads_in_place(kernel, self.out_side(side)) {
            "int8 in place"
        } else {
            "int8 im2col"
        }
    }

    /// Whether the product reads its windows where they lie in the padded quantized input
    /// (`int8_convolve`) rather than gathering them: stride 1, window rows of whole groups of
    /// 4 bytes, on VNNI, and output rows wide enough to keep the kernel's rows mostly full
    /// (stages 2–4: 14–56 pixels; stage 5's 7 leave 1 of 6 rows in the second call). Stage 4's
    /// rows of 14 (two calls of 6 rows and one of 2) measured 2 % slower in place than gathered
    /// on one machine and 8 % faster (batch 1; 2 % at batch 8) on another whose AVX-512 runs at
    /// half the rate, where gathering costs relatively more.
    fn reads_in_place(&self, kernel: Int8Kernel, out_w: usize) -> bool {
        self.kernel > 1
            && self.window.stride == 1
            && self.in_channels.is_multiple_of(4)
            && out_w >= 14
            && kernel == Int8Kernel::Vnni512
    }

    /// `relu?(conv(x) + bias + residual)` in f32, and each photo's largest value (for the next
    /// quantization; 0 without a ReLU, whose output is never quantized). Photo `b` of `x`, at
    /// most `maxima[b]` in magnitude (and ≥ 0 unless the input is signed), is quantized to
    /// `0..=top` with its own scale (as the product gathers it, or up front for a window wider
    /// than a pixel): a photo's result does not depend on the photos beside it. The residual
    /// is taken: the output is written over it as it is read.
    pub(super) fn forward(
        &self,
        kernel: Int8Kernel,
        x: &Activations,
        (maxima, top): (&[f32], u8),
        residual: Option<Activations>,
    ) -> (Activations, Vec<f32>) {
        assert_eq!(x.c, self.in_channels, "input channels");
        assert_eq!(maxima.len(), x.n, "a maximum per photo");
        let (h, w) = (self.window.out_side(x.h), self.window.out_side(x.w));
        let cout = self.out_channels;
        if let Some(residual) = &residual {
            assert_eq!(
                (residual.n, residual.h, residual.w, residual.c),
                (x.n, h, w, cout)
            );
        }
        let quantizations: Vec<Quantization> = maxima
            .iter()
            .map(|&max| match self.column_sums {
                Some(_) => Quantization::signed(max, top),
                None => Quantization::unsigned(max, top),
            })
            .collect();
        let (depth, shape) = (self.weights.depth(), [x.n, x.h, x.w, x.c]);
        let window_depth = self.kernel * self.kernel * x.c;
        // The same for every photo: 0, or a signed input's middle byte.
        let zero = quantizations.first().map_or(0, |q| q.zero_point);
        // Output pixels per photo: row `r` of the product is photo `r / pixels`'s.
        let pixels = h * w;
        // A window wider than a pixel sees each input pixel up to k·k times: quantized once,
        // up front, into a copy with the padding around it (the windows' rows are then plain
        // copies: bounds checked per run of the 7x7 stem's, they took half its time). A 1x1
        // convolution quantizes the pixels it reads as it reads them.
        let quantized = (self.kernel > 1).then(|| {
            // Photo `b` with its own scale; the border the quantized zero.
            let quantize =
                |to: &mut [u8], from: &[f32], b: usize| quantizations[b].quantize_into(to, from);
            self.window.pad(x, zero, quantize)
        });
        let fill = |rows: &mut [u8], first: usize| {
            let count = rows.len() / depth;
            match &quantized {
                Some((xq, shape)) => {
                    for (r, row) in rows.chunks_exact_mut(depth).enumerate() {
                        let (window, depth_padding) = row.split_at_mut(window_depth);
                        let at = (first + r, [h, w]);
                        self.window.padded_row((xq, *shape), at, window);
                        // Times the zero rows of weights that pad the depth.
                        depth_padding.fill(0);
                    }
                }
                // The activations as they lie: one row per pixel, a run of rows per photo.
                None if self.is_direct() => {
                    let c = x.c;
                    for (b, run) in photo_runs(first, count, pixels) {
                        let q = &mut rows[run.start * c..run.end * c];
                        quantizations[b].quantize_into(q, &x.data[(first + run.start) * c..]);
                    }
                }
                None => {
                    for (r, row) in rows.chunks_exact_mut(depth).enumerate() {
                        let quantization = quantizations[(first + r) / pixels];
                        let quantize =
                            |to: &mut [u8], from: &[f32]| quantization.quantize_into(to, from);
                        let window = (row, zero);
                        self.window
                            .im2col_row(&x.data, shape, [h, w], first + r, window, quantize);
                    }
                }
            }
        };
        // What the zero point adds to each channel's sums (a signed input only).
        let zero_sums: Option<Vec<i32>> = self
            .column_sums
            .as_ref()
            .map(|sums| sums.iter().map(|s| s * i32::from(zero)).collect());
        // Sum · (input scale · channel scale) dequantizes: each photo's factors.
        let factors: Vec<f32> = quantizations
            .iter()
            .flat_map(|q| self.scales.iter().map(move |s| s * q.scale))
            .collect();
        // Each photo's maximum, raised by the tiles as they finish (as bits: they order
        // non-negative floats like their values, and the result does not depend on the order).
        let photo_maxima: Vec<AtomicU32> = (0..x.n).map(|_| AtomicU32::new(0)).collect();
        let onto = residual.is_some();
        let mut out = match residual {
            Some(mut residual) => std::mem::take(&mut residual.data),
            None => buffer(x.n * h * w * cout),
        };
        let finish =
            |(tile, stride): (&mut [f32], usize), sums: &mut [i32], first, cols: Range<usize>| {
                if let Some(zero_sums) = &zero_sums {
                    take_off_zero_sums(sums, &zero_sums[cols.clone()]);
                }
                // The tile's rows photo by photo (usually one photo, or two).
                let (count, width) = (sums.len() / cols.len(), cols.len());
                for (b, run) in photo_runs(first, count, pixels) {
                    let max = finish_int8_tile(
                        &mut tile[run.start * stride..],
                        stride,
                        &sums[run.start * width..run.end * width],
                        &factors[b * cout..][cols.clone()],
                        &self.bias[cols.clone()],
                        onto,
                        self.relu,
                    );
                    photo_maxima[b].fetch_max(max.to_bits(), Relaxed);
                }
            };
        // On VNNI the kernel finishes its tiles itself (the same bits).
        let in_kernel = (kernel == Int8Kernel::Vnni512).then(|| InKernel {
            factors: &factors,
            bias: &self.bias,
            onto,
            relu: self.relu,
            pixels,
            maxima: &photo_maxima,
            zero_sums: zero_sums.as_deref(),
        });
        let finish = (finish, in_kernel.as_ref());
        match &quantized {
            Some((xq, padded)) if self.reads_in_place(kernel, w) => {
                let shape = [x.n, h, w];
                int8_convolve(
                    &self.weights,
                    (xq, *padded),
                    self.kernel,
                    shape,
                    &mut out,
                    finish,
                )
            }
            _ => int8_matmul(
                kernel,
                &self.weights,
                (&mut out, onto),
                [x.n * h * w, cout],
                fill,
                finish,
            ),
        }
        if let Some((xq, _)) = quantized {
            recycle(xq);
        }
        let out = Activations {
            n: x.n,
            h,
            w,
            c: cout,
            data: out,
        };
        let maxima = photo_maxima
            .into_iter()
            .map(|m| f32::from_bits(m.into_inner()))
            .collect();
        (out, maxima)
    }
}

/// Each row of `sums` (as many columns as `zero_sums`) less what a signed input's zero point
/// added to it (the VNNI kernel starts its sums from minus the same: `dot::Dequantize`).
fn take_off_zero_sums(sums: &mut [i32], zero_sums: &[i32]) {
    for row in sums.chunks_exact_mut(zero_sums.len()) {
        row.iter_mut().zip(zero_sums).for_each(|(s, z)| *s -= z);
    }
}

widest! {
    /// A tile of output pixels (rows of `factors.len()` columns, `stride` apart in `tile`):
    /// `relu?(sum · factor + bias + residual)`, the residual the tile's own values when `onto`
    /// (else none), and its maximum (0 without a ReLU). One pass over a tile in L1, which
    /// vectorizes.
    fn finish_int8_tile(
        tile: &mut [f32],
        stride: usize,
        sums: &[i32],
        factors: &[f32],
        bias: &[f32],
        onto: bool,
        relu: bool,
    ) -> f32 {
        let n = factors.len();
        let bias = &bias[..n];
        let mut max = 0f32;
        for (r, sums) in sums.chunks_exact(n).enumerate() {
            let row = &mut tile[r * stride..][..n];
            let row_max = match (onto, relu) {
                (true, true) => finish::<true, true>(row, sums, factors, bias),
                (true, false) => finish::<true, false>(row, sums, factors, bias),
                (false, true) => finish::<false, true>(row, sums, factors, bias),
                (false, false) => finish::<false, false>(row, sums, factors, bias),
            };
            max = if row_max > max { row_max } else { max };
        }
        max
    }
}

#[inline(always)]
fn finish<const ONTO: bool, const RELU: bool>(
    row: &mut [f32],
    sums: &[i32],
    factors: &[f32],
    bias: &[f32],
) -> f32 {
    let mut max = 0u32;
    for i in 0..row.len() {
        let mut v = sums[i] as f32 * factors[i] + bias[i];
        if ONTO {
            v += row[i];
        }
        if RELU {
            v = if v > 0.0 { v } else { 0.0 };
            max = max.max(v.to_bits());
        }
        row[i] = v;
    }
    f32::from_bits(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cpu::conv::PackedConv;
    use crate::model::cpu::testing::{conv_spec, values};

    /// Each int8 convolution shape ResNet50 has, against the f32 convolution on the same
    /// (dequantized) weights and input: the only differences are the rounding of weights and
    /// input, so they are small against the output's range; and every kernel this CPU has
    /// gives the same bits (VNNI reading the 14- and 28-wide 3x3 layers' windows where they
    /// lie, the others gathering them). The stem's shape with a signed input (its depth, 147,
    /// padded).
    #[test]
    fn int8_convolutions_match_f32_and_each_other() {
        // (in, out, kernel, stride, padding, side, projection, residual)
        let cases = [
            (64, 64, 1, 1, 0, 9, false, false),
            (64, 128, 1, 2, 0, 9, true, false),
            (64, 64, 3, 1, 1, 7, false, false),
            // Wide enough to be read where it lies (`int8_convolve`) on VNNI, with and without
            // a residual.
            (64, 64, 3, 1, 1, 28, false, false),
            (32, 64, 3, 1, 1, 28, false, true),
            (32, 64, 3, 1, 1, 6, false, true),
            // Stage 4's width: read in place too.
            (32, 64, 3, 1, 1, 14, false, true),
            (128, 256, 1, 1, 0, 5, false, true),
            (64, 64, 1, 1, 0, 9, false, true),
            (3, 64, 7, 2, 3, 20, false, false),
        ];
        for (i, &(cin, cout, k, stride, padding, side, projection, residual)) in
            cases.iter().enumerate()
        {
            let seed = 100 + i as u32 * 10;
            let signed = cin == 3;
            let spec = conv_spec([cin, cout, k, stride, padding], projection);
            let weight = values(cout * cin * k * k, seed + 1);
            let bias = values(cout, seed + 2);
            let int8 = Int8Conv::pack(&spec, &weight, bias.clone(), signed);
            // The f32 reference on the int8 weights: what remains is the input's rounding.
            let q = quantize_per_channel(&weight, cout);
            let f32_conv = PackedConv::pack(&spec, &crate::model::quant::dequantize(&q), bias);
            // Inputs ≥ 0, as out of a ReLU; the stem's signed.
            let planar: Vec<f32> = values(2 * cin * side * side, seed + 3)
                .iter()
                .map(|&v| if signed { v } else { v.max(0.0) })
                .collect();
            let x = Activations::from_planar(&planar, 2, cin, side, side);
            let out_side = (side + 2 * padding - k) / stride + 1;
            // Taken by each convolution (its output is written over it): one for each.
            let skip = || {
                residual.then(|| {
                    let v = values(2 * cout * out_side * out_side, seed + 4);
                    Activations::from_planar(&v, 2, cout, out_side, out_side)
                })
            };
            let expected = f32_conv.forward(&x, skip());
            // 8-bit activations, and 7-bit ones (relaxed SIMD's): half the steps, so twice the
            // rounding error allowed (signed: half again; the stem is int8 with 8 bits only).
            let tops: &[(u8, f32)] = if signed {
                &[(255, 0.02)]
            } else {
                &[(255, 0.01), (127, 0.02)]
            };
            for &(top, tolerance) in tops {
                // Each of the two photos with its own scale.
                let x_max: Vec<f32> = x.data.chunks_exact(x.data.len() / 2).map(abs_max).collect();
                let mut first: Option<Vec<f32>> = None;
                let kernels = Int8Kernel::ALL.into_iter().filter(|k| k.available());
                for kernel in kernels.filter(|k| k.activation_max() >= top) {
                    let (ours, max) = int8.forward(kernel, &x, (&x_max, top), skip());
                    let range = max_of(&expected.data.iter().map(|v| v.abs()).collect::<Vec<_>>());
                    let worst = ours
                        .data
                        .iter()
                        .zip(&expected.data)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0f32, f32::max);
                    assert!(
                        worst < tolerance * range,
                        "case {i}, {top}: {worst} of {range}"
                    );
                    let photos = ours.data.chunks_exact(ours.data.len() / 2);
                    let expected_max: Vec<f32> = match projection {
                        true => vec![0.0; 2],
                        false => photos.map(max_of).collect(),
                    };
                    assert_eq!(max, expected_max);
                    match &first {
                        None => first = Some(ours.data.clone()),
                        Some(first) => {
                            assert!(first == &ours.data, "case {i}: {} differs", kernel.name())
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn quantize_maps_the_maximum_to_the_top_and_rounds() {
        let x = [0.0, 0.5, 2.0, 0.004];
        let quantized = |quantization: Quantization, x: &[f32]| {
            let mut q = [9u8; 4];
            quantization.quantize_into(&mut q, x);
            (q, quantization.scale)
        };
        let unsigned = Quantization::unsigned;
        assert_eq!(
            quantized(unsigned(2.0, 255), &x),
            ([0, 64, 255, 1], 2.0 / 255.0)
        );
        assert_eq!(
            quantized(unsigned(2.0, 127), &x),
            ([0, 32, 127, 0], 2.0 / 127.0)
        );
        assert_eq!(
            quantized(unsigned(0.0, 255), &x).0[0],
            0,
            "an all-zero tensor"
        );
        // Signed: -max..=max onto 1..=255, 0 on 128.
        let signed = [-2.0, 0.0, 2.0, 1.0];
        let quantization = Quantization::signed(2.0, 255);
        assert_eq!(quantization.zero_point, 128);
        assert_eq!(
            quantized(quantization, &signed),
            ([1, 128, 255, 192], 2.0 / 127.0)
        );
    }

    /// The VNNI kernel's own epilogue against the sums' pass (`finish_int8_tile`) on the
    /// portable kernel's sums: the same bits and maximum, with and without the residual and the
    /// ReLU, on panels from the second on (columns from 16), rows `ldo` apart beyond the tile's
    /// columns, and a residual with a NaN, a -0 and negatives; and for a signed input, whose
    /// zero point's sums come off first.
    #[test]
    fn the_vnni_kernels_epilogue_is_the_sums_pass() {
        use super::super::dot::{Dequantize, Runs, product, product_dequantized};
        if !Int8Kernel::Vnni512.available() {
            return;
        }
        let [rows, depth, cols, ldo] = [13, 32, 96, 100];
        let (first_panel, panels) = (1, 5);
        let kn: Vec<i8> = (0..depth * cols).map(|i| (i % 29) as i8 - 14).collect();
        let weights = PackedInt8::pack(depth, cols, &kn);
        let a: Vec<u8> = (0..rows * depth).map(|i| (i * 37 % 256) as u8).collect();
        let width = panels * 16;
        let factors: Vec<f32> = (0..width).map(|i| 1e-3 * (i as f32 + 1.0)).collect();
        let bias: Vec<f32> = (0..width).map(|i| (i % 9) as f32 - 4.0).collect();
        let mut residual: Vec<f32> = (0..rows * ldo)
            .map(|i| (i % 23) as f32 * 0.5 - 6.0)
            .collect();
        residual[3] = f32::NAN;
        residual[ldo + 5] = -0.0;
        let mut sums = vec![0; rows * width];
        product(
            Int8Kernel::Portable,
            (&a, depth),
            rows,
            &weights,
            (first_panel, panels),
            &mut sums,
        );
        // A signed input's zero point's sums (the stem's), taken off the sums first.
        let zero_sums: Vec<i32> = (0..width).map(|i| (i as i32 % 7 - 3) * 1000).collect();
        let cases = [(true, true), (true, false), (false, true), (false, false)];
        for ((onto, relu), signed) in cases.into_iter().flat_map(|c| [(c, false), (c, true)]) {
            let mut sums = sums.clone();
            if signed {
                take_off_zero_sums(&mut sums, &zero_sums);
            }
            let mut expected = residual.clone();
            let expected_max =
                finish_int8_tile(&mut expected, ldo, &sums, &factors, &bias, onto, relu);
            let mut ours = residual.clone();
            let dequantize = Dequantize {
                factors: &factors,
                bias: &bias,
                onto,
                relu,
                zero_sums: signed.then_some(zero_sums.as_slice()),
            };
            let a = (a.as_slice(), depth, Runs::plain(depth));
            let out = (ours.as_mut_slice(), ldo);
            let max =
                product_dequantized(a, rows, &weights, (first_panel, panels), out, dequantize);
            let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            let case = format!("onto {onto}, relu {relu}, signed {signed}");
            assert_eq!(bits(&ours), bits(&expected), "{case}");
            assert_eq!(max.to_bits(), expected_max.to_bits(), "{case}");
        }
    }
}
