//! f32 matrix products on weights packed once at load, for products of few rows and much
//! weight: the last stage's (49 pixels per photo, up to 4608 x 512 weights). `gemm` packs its
//! operands on every call, which for 49 rows costs as much as the arithmetic (the stage ran at
//! ~300 GFLOP/s against ONNX Runtime's ~450, whose weights are laid out at load too). Packed
//! here in the int8 kernels' panels of 16 columns, multiplied 6 rows x 4 panels at a time with
//! AVX-512 FMAs, where the CPU has them ([`available`]; elsewhere `gemm` serves instead). The
//! stem too ([`convolve`]): its 7x7 windows read where they lie in the padded photo, a row's
//! depth as 7 runs of 21 values.

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
    depth: usize,
    cols: usize,
    /// Read by the AVX-512 kernel only.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
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
}

/// A convolution computed straight from its padded input (`[n, padded_h, padded_w, c]`, every
/// window inside it), without gathering windows: a window is `k` runs of `k·c` values (its
/// rows), the pixels of an output row `stride·c` apart, so the product's kernel reads them
/// where they lie. `out` is `[n, h, w, cols]`; `finish(strip, pixel, first column)` then runs
/// on each pixel's strip of 64 columns. A task per output row. The stem's 7x7 windows of 3
/// channels: gathered (7 runs of 21 values per pixel) for `gemm`, which packs them again, its
/// 12,544 rows per photo took 1.24 ms on one thread here against ONNX Runtime's 0.94.
pub(super) fn convolve(
    (padded, padded_shape): (&[f32], PaddedShape),
    (k, stride): (usize, usize),
    [n, h, w]: [usize; 3],
    weights: &PackedF32,
    out: &mut [f32],
    finish: impl Fn(&mut [f32], usize, usize) + Send + Sync,
) {
    let (cols, ([padded_h, padded_w], c)) = (weights.cols, padded_shape);
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
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
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
                );
            }
        }
        for (x, pixel) in row.chunks_exact_mut(cols).enumerate() {
            for (c0, strip) in (0..cols)
                .step_by(PANEL * TILE_PANELS)
                .zip(pixel.chunks_mut(PANEL * TILE_PANELS))
            {
                finish(strip, index * w + x, c0);
            }
        }
    });
}

/// `out[rows, cols] = a[rows, depth] · weights`, then `finish(strip, row, first column)` on
/// each row's strip of 64 columns. Tiles of up to 48 rows x 64 columns, at least four per
/// core, spread over the cores. Each sum runs over the depth in order: the same bits on any
/// thread count.
pub(super) fn matmul(
    a: &[f32],
    weights: &PackedF32,
    out: &mut [f32],
    rows: usize,
    finish: impl Fn(&mut [f32], usize, usize) + Send + Sync,
) {
    let (depth, cols) = (weights.depth, weights.cols);
    assert!(available(), "the packed f32 kernel needs AVX-512");
    assert!(out.len() == rows * cols);
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
        let (c0, nc) = (p0 * PANEL, np * PANEL);
        // Read by the AVX-512 kernel only (the only one `available` admits).
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
        let tile_a = &a[r0 * depth..][..nr * depth];
        // SAFETY: the tile's rows of `a` (sliced above) and columns c0..c0+nc of those rows of
        // `out` are in bounds (asserted above); no other tile writes them, and `out` aliases
        // nothing else; the CPU has AVX-512 (asserted).
        #[cfg(target_arch = "x86_64")]
        unsafe {
            x86::product(
                tile_a.as_ptr(),
                (depth, Runs::plain(depth)),
                nr,
                weights,
                (p0, np),
                (out_ptr.get().add(r0 * cols + c0), cols),
            );
        }
        for r in r0..r0 + nr {
            // SAFETY: as above.
            let strip =
                unsafe { std::slice::from_raw_parts_mut(out_ptr.get().add(r * cols + c0), nc) };
            finish(strip, r, c0);
        }
    });
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::dot::{by_rows, row_groups};
    use super::{PANEL, PackedF32, Runs};

    /// `out = a · panels p0..p0+np` for `rows` rows, in tiles of 6 rows x 4 panels. A row's
    /// depth is `runs`: `runs.count` runs of `runs.len` values, `runs.stride` apart (one run
    /// of `depth` for a plain matrix; a window's rows in a padded image for `convolve`).
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
    ) {
        assert_eq!(runs.count * runs.len, b.depth, "the runs make the depth");
        let stride = b.depth * PANEL;
        let mut p = 0;
        while p < np {
            let nv = if np - p >= 4 { 4 } else { 1 };
            let w = b.data[(p0 + p) * stride..].as_ptr();
            for (r, mr) in row_groups(rows, 6) {
                // SAFETY: rows r..r+mr and panels p..p+nv are in bounds (caller's promise).
                unsafe {
                    let (x, o) = (a.add(r * lda), out.add(r * ldo + p * PANEL));
                    if nv == 4 {
                        by_rows!(mr, tile, nv = 4, (x, lda, w, stride, runs, o, ldo), [1 2 3 4 5 6]);
                    } else {
                        by_rows!(mr, tile, nv = 1, (x, lda, w, stride, runs, o, ldo), [1 2 3 4 5 6]);
                    }
                }
            }
            p += nv;
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn tile<const MR: usize, const NV: usize>(
        a: *const f32,
        lda: usize,
        w: *const f32,
        panel_stride: usize,
        Runs { count, len, stride }: Runs,
        out: *mut f32,
        ldo: usize,
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
                // SAFETY: 16 columns of row r (caller's promise).
                unsafe { _mm512_storeu_ps(out.add(r * ldo + v * PANEL), acc) };
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
                matmul(&a, &packed, &mut out, rows, |strip, _, _| {
                    strip.iter_mut().for_each(|v| *v += 1.0)
                });
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
}
