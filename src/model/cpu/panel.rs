//! f32 matrix products on weights packed once at load, with their epilogue (bias, residual,
//! ReLU) applied to the sums in registers: every f32 convolution, and Winograd's α² products,
//! where the CPU has AVX-512 ([`available`]; elsewhere `gemm` serves instead). `gemm` packs
//! its operands on every call, which for the last stage's 49 rows per photo (and Winograd's
//! blocks of 14 tiles) cost as much as the arithmetic, and finishes its output in a second
//! pass (stages 2-4's 1x1 products with a residual ran 0.03-0.07 ms each behind ONNX Runtime's,
//! whose weights are laid out at load and whose sums are added onto the residual). Packed in
//! the int8 kernels' panels of 16 columns, multiplied 6 rows x 4 panels at a time with AVX-512
//! FMAs. The stem too ([`convolve`]): its 7x7 windows read where they lie in the padded photo,
//! a row's depth as 7 runs of 21 values.

use super::dot::{PaddedShape, Runs};
use super::parallel::{for_each_chunk, map_items, threads};
use super::product::SendPtr;

/// Columns per panel: one AVX-512 register of f32.
const PANEL: usize = 16;
/// Panels per tile: a tile's 4 x 6 sums fill 24 of the 32 registers.
const TILE_PANELS: usize = 4;

/// Whether this CPU runs the packed kernel (AVX-512); elsewhere convolutions keep `gemm`.
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::simd::has_avx512()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Weights `[depth, cols]` in panels of 16 columns, each panel `depth x 16` row-major.
#[derive(Debug)]
pub(super) struct PackedF32 {
    pub(super) depth: usize,
    pub(super) cols: usize,
    data: Vec<f32>,
}

impl PackedF32 {
    /// Pack `kn`, `[depth, cols]` row-major; `cols` a multiple of 16.
    pub(super) fn pack(depth: usize, cols: usize, kn: &[f32]) -> Self {
        assert!(cols.is_multiple_of(PANEL) && kn.len() == depth * cols);
        let mut data = Vec::with_capacity(depth * cols);
        for panel in 0..cols / PANEL {
            for row in kn.chunks_exact(cols) {
                data.extend_from_slice(&row[panel * PANEL..][..PANEL]);
            }
        }
        Self { depth, cols, data }
    }

    pub(super) fn bytes(&self) -> usize {
        size_of_val(self.data.as_slice())
    }
}

/// What a tile's sums become as they are stored: `relu?(sum + residual + bias)`, in that order
/// (`finish_row`'s), on the sums in registers.
#[derive(Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // Read by the AVX-512 kernel.
pub(super) struct Epilogue<'a> {
    /// One per column, or none (empty).
    pub(super) bias: &'a [f32],
    /// `out` holds the residual: the sum is written where it was read (no fresh memory for
    /// the output, whose lines are then in cache already).
    pub(super) onto: bool,
    pub(super) relu: bool,
}

/// `out = a · weights` for `rows` rows of `a` `lda` apart, into rows of `out` `ldo` apart:
/// one of Winograd's α² products, which lie interleaved in memory (`winograd`). On weights
/// packed once at load, where `gemm` packed them again for every product (stage 2's by blocks
/// multiply 14 rows at a time).
///
/// # Safety
/// `a` holds `rows` rows of `weights.depth` values at stride `lda`, `out` `rows` rows of
/// `weights.cols` at stride `ldo`, which no other thread reads or writes meanwhile.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))] // As `convolve`.
pub(super) unsafe fn strided_product(
    (a, lda): (*const f32, usize),
    rows: usize,
    weights: &PackedF32,
    (out, ldo): (*mut f32, usize),
) {
    assert!(available(), "the packed f32 kernel needs AVX-512");
    let depth = weights.depth;
    // SAFETY: the caller's promise; the CPU has AVX-512 (asserted).
    #[cfg(target_arch = "x86_64")]
    unsafe {
        let panels = (0, weights.cols / PANEL);
        let runs = (lda, Runs::plain(depth));
        // The sums as they are: Winograd's are transformed before anything is added.
        let epilogue = Epilogue {
            bias: &[],
            onto: false,
            relu: false,
        };
        x86::product(a, runs, rows, weights, panels, (out, ldo), epilogue);
    }
}

/// A convolution computed straight from its padded input (`[n, padded_h, padded_w, c]`, every
/// window inside it), without gathering windows: a window is `k` runs of `k·c` values (its
/// rows), the pixels of an output row `stride·c` apart, so the product's kernel reads them
/// where they lie. `out` is `[n, h, w, cols]`, `epilogue` applied to it (without a residual
/// here). A task per output row. The stem's 7x7 windows of 3 channels: gathered (7 runs of 21
/// values per pixel) for `gemm`, which packs them again, its 12,544 rows per photo took 1.24
/// ms on one thread here against ONNX Runtime's 0.94.
// Only the AVX-512 kernel reads the windows and the tiles (the only one `available` admits).
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
pub(super) fn convolve(
    (padded, padded_shape): (&[f32], PaddedShape),
    (k, stride): (usize, usize),
    [n, h, w]: [usize; 3],
    weights: &PackedF32,
    out: &mut [f32],
    epilogue: Epilogue,
) {
    let (cols, ([padded_h, padded_w], c)) = (weights.cols, padded_shape);
    assert!(!epilogue.onto, "a residual");
    assert_eq!(epilogue.bias.len(), cols);
    assert!(available(), "the packed f32 kernel needs AVX-512");
    assert_eq!(weights.depth, k * k * c, "a window's depth");
    assert_eq!(out.len(), n * h * w * cols);
    assert_eq!(padded.len(), n * padded_h * padded_w * c);
    assert!((h - 1) * stride + k <= padded_h && (w - 1) * stride + k <= padded_w);
    if out.is_empty() {
        return;
    }
    for_each_chunk(out, w * cols, |row, index| {
        // The row's windows: in bounds (asserted above).
        let (a, runs) = Runs::windows_of_row(padded, padded_shape, (k, stride), [h, w], index);
        // SAFETY: the output row's windows (sliced above) and its pixels' columns; the CPU
        // has AVX-512 (asserted).
        #[cfg(target_arch = "x86_64")]
        unsafe {
            for p0 in (0..cols / PANEL).step_by(TILE_PANELS) {
                let np = TILE_PANELS.min(cols / PANEL - p0);
                let o = row.as_mut_ptr().add(p0 * PANEL);
                x86::product(
                    a.as_ptr(),
                    (stride * c, runs),
                    w,
                    weights,
                    (p0, np),
                    (o, cols),
                    epilogue,
                );
            }
        }
    });
}

/// `out[rows, cols] = epilogue(a[rows, depth] · weights)`. Tiles of up to 48 rows x 64
/// columns, at least four per core, spread over the cores. Each sum runs over the depth in
/// order: the same bits on any thread count.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))] // As `convolve`.
pub(super) fn matmul(
    a: &[f32],
    weights: &PackedF32,
    out: &mut [f32],
    rows: usize,
    epilogue: Epilogue,
) {
    let (depth, cols) = (weights.depth, weights.cols);
    assert!(available(), "the packed f32 kernel needs AVX-512");
    assert!(out.len() == rows * cols);
    assert_eq!(epilogue.bias.len(), cols);
    assert_eq!(a.len(), rows * depth);
    if rows == 0 || cols == 0 {
        return;
    }
    let groups = cols.div_ceil(PANEL * TILE_PANELS);
    let row_tiles = rows
        .div_ceil(48)
        .max((4 * threads()).div_ceil(groups))
        .clamp(1, rows.div_ceil(6).max(1));
    let tile_rows = rows.div_ceil(row_tiles).next_multiple_of(6);
    let row_tiles = rows.div_ceil(tile_rows).max(1);
    let out_ptr = SendPtr(out.as_mut_ptr());
    map_items((0..row_tiles * groups).collect(), |tile| {
        let (r0, g) = (tile / groups * tile_rows, tile % groups);
        let nr = tile_rows.min(rows - r0);
        let p0 = g * TILE_PANELS;
        let np = TILE_PANELS.min(cols / PANEL - p0);
        let c0 = p0 * PANEL;
        let tile_a = &a[r0 * depth..][..nr * depth];
        // SAFETY: the tile's rows of `a` (sliced above) and its columns of those rows of `out`
        // are in bounds (asserted above); no other tile writes them, and `out` aliases nothing
        // else; the CPU has AVX-512 (asserted).
        #[cfg(target_arch = "x86_64")]
        unsafe {
            x86::product(
                tile_a.as_ptr(),
                (depth, Runs::plain(depth)),
                nr,
                weights,
                (p0, np),
                (out_ptr.get().add(r0 * cols + c0), cols),
                epilogue,
            );
        }
    });
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::dot::{by_rows, row_groups};
    use super::{Epilogue, PANEL, PackedF32, Runs};

    /// `out = epilogue(a · panels p0..p0+np)` for `rows` rows, in tiles of 6 rows x 4 panels.
    /// A row's depth is `runs`: `runs.count` runs of `runs.len` values, `runs.stride` apart
    /// (one run of `depth` for a plain matrix; a window's rows in a padded image for
    /// `convolve`).
    ///
    /// # Safety
    /// AVX-512F; `a` holds `rows` rows (at stride `lda`) of those runs, `out` `rows` rows of
    /// `16·np` at stride `ldo`, and `b` has the panels, of depth `count · len`.
    pub(super) unsafe fn product(
        a: *const f32,
        (lda, runs): (usize, Runs),
        rows: usize,
        b: &PackedF32,
        (p0, np): (usize, usize),
        (out, ldo): (*mut f32, usize),
        epilogue: Epilogue,
    ) {
        assert!((p0 + np) * PANEL <= b.cols, "the panels");
        let bias = epilogue.bias;
        assert!(
            bias.is_empty() || bias.len() >= (p0 + np) * PANEL,
            "a bias per column"
        );
        assert_eq!(runs.count * runs.len, b.depth, "the runs make the depth");
        let stride = b.depth * PANEL;
        let mut p = 0;
        while p < np {
            let nv = if np - p >= 4 { 4 } else { 1 };
            let w = b.data[(p0 + p) * stride..].as_ptr();
            let bias = match bias {
                [] => std::ptr::null(),
                bias => bias[(p0 + p) * PANEL..].as_ptr(),
            };
            for (r, mr) in row_groups(rows, 6) {
                // SAFETY: rows r..r+mr and panels p..p+nv are in bounds (caller's promise).
                unsafe {
                    let (x, o) = (a.add(r * lda), out.add(r * ldo + p * PANEL));
                    let end = (bias, epilogue.onto, epilogue.relu);
                    if nv == 4 {
                        by_rows!(mr, tile, nv = 4, ((x, lda), (w, stride), runs, (o, ldo), end), [1 2 3 4 5 6]);
                    } else {
                        by_rows!(mr, tile, nv = 1, ((x, lda), (w, stride), runs, (o, ldo), end), [1 2 3 4 5 6]);
                    }
                }
            }
            p += nv;
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn tile<const MR: usize, const NV: usize>(
        (a, lda): (*const f32, usize),
        (w, panel_stride): (*const f32, usize),
        Runs { count, len, stride }: Runs,
        (out, ldo): (*mut f32, usize),
        (bias, onto, relu): (*const f32, bool, bool),
    ) {
        let mut acc = [[_mm512_setzero_ps(); NV]; MR];
        let mut wv = [_mm512_setzero_ps(); NV];
        for run in 0..count {
            // The run's values of each row, and its rows of weights (the runs', in order).
            let (a, w) = unsafe { (a.add(run * stride), w.add(run * len * PANEL)) };
            for k in 0..len {
                for (v, wv) in wv.iter_mut().enumerate() {
                    // SAFETY: panel v's row k of the run (caller's promise).
                    *wv = unsafe { _mm512_loadu_ps(w.add(v * panel_stride + k * PANEL)) };
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: element k of row r's run (caller's promise).
                    let x = _mm512_set1_ps(unsafe { *a.add(r * lda + k) });
                    for (acc, &wv) in acc.iter_mut().zip(&wv) {
                        *acc = _mm512_fmadd_ps(x, wv, *acc);
                    }
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (v, &acc) in acc.iter().enumerate() {
                // SAFETY: 16 columns of row r of `out` and of the bias unless it is null
                // (caller's promise).
                unsafe {
                    let o = out.add(r * ldo + v * PANEL);
                    let mut sum = acc;
                    if onto {
                        sum = _mm512_add_ps(sum, _mm512_loadu_ps(o));
                    }
                    if !bias.is_null() {
                        sum = _mm512_add_ps(sum, _mm512_loadu_ps(bias.add(v * PANEL)));
                    }
                    if relu {
                        // NaN and -0 become +0, as in `finish_row`: `max` returns its second
                        // operand when either is NaN or both are zero.
                        sum = _mm512_max_ps(sum, _mm512_setzero_ps());
                    }
                    _mm512_storeu_ps(o, sum);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a plain product, on rows and panels that leave partial tiles; the same bits on
    /// one thread as on all.
    #[test]
    fn packed_products_match_a_plain_one() {
        if !available() {
            return;
        }
        for [rows, depth, cols] in [[49, 20, 80], [7, 3, 16], [100, 64, 144]] {
            let a: Vec<f32> = (0..rows * depth)
                .map(|i| (i % 13) as f32 * 0.25 - 1.5)
                .collect();
            let b: Vec<f32> = (0..depth * cols).map(|i| (i % 7) as f32 - 3.0).collect();
            let packed = PackedF32::pack(depth, cols, &b);
            let run = || {
                let mut out = vec![f32::NAN; rows * cols];
                let bias = vec![1.0; cols];
                let epilogue = Epilogue {
                    bias: &bias,
                    onto: false,
                    relu: false,
                };
                matmul(&a, &packed, &mut out, rows, epilogue);
                out
            };
            let ours = run();
            for r in 0..rows {
                for c in 0..cols {
                    let expected: f32 = (0..depth)
                        .map(|k| a[r * depth + k] * b[k * cols + c])
                        .sum::<f32>()
                        + 1.0;
                    assert_eq!(
                        ours[r * cols + c],
                        expected,
                        "{rows}x{depth}x{cols} at {r}, {c}"
                    );
                }
            }
            assert_eq!(crate::model::cpu::on_one_thread(run), ours);
        }
    }

    /// The epilogue onto a residual in place, with the ReLU: `relu(sum + residual + bias)` in
    /// that order, as `finish_row` computes it (a NaN and negatives become +0).
    #[test]
    fn the_epilogue_adds_onto_the_residual_and_rectifies() {
        if !available() {
            return;
        }
        let [rows, depth, cols] = [13, 24, 80];
        let a: Vec<f32> = (0..rows * depth)
            .map(|i| (i % 11) as f32 * 0.5 - 2.0)
            .collect();
        let b: Vec<f32> = (0..depth * cols).map(|i| (i % 5) as f32 - 2.0).collect();
        let bias: Vec<f32> = (0..cols).map(|i| i as f32 * 0.25 - 9.0).collect();
        let mut residual: Vec<f32> = (0..rows * cols).map(|i| (i % 17) as f32 - 8.0).collect();
        residual[7] = f32::NAN;
        let packed = PackedF32::pack(depth, cols, &b);
        let mut out = residual.clone();
        let epilogue = Epilogue {
            bias: &bias,
            onto: true,
            relu: true,
        };
        matmul(&a, &packed, &mut out, rows, epilogue);
        for r in 0..rows {
            for c in 0..cols {
                let sum: f32 = (0..depth).map(|k| a[r * depth + k] * b[k * cols + c]).sum();
                let mut expected = [sum];
                let skip = [residual[r * cols + c]];
                super::super::product::finish_row(
                    &mut expected,
                    &bias[c..][..1],
                    Some(&skip),
                    true,
                );
                let ours = out[r * cols + c];
                assert_eq!(ours.to_bits(), expected[0].to_bits(), "at {r}, {c}");
            }
        }
        assert!(out.contains(&0.0) && out.iter().any(|&v| v > 0.0));
    }
}
