//! Matrix products on `gemm` (f32) and on `dot` (int8), split across cores, and their
//! epilogue (bias, residual, ReLU). The `unsafe` of the products is here, in `dot` and in
//! `panel` (`simd` and `quantized` have one call each, for instructions chosen at run time):
//! `gemm` takes raw pointers and strides, and some splits hand each core a strided block of one
//! output that no safe slice can describe.

use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use super::dot::{
    Dequantize, Int8Kernel, PANEL, PackedInt8, PaddedShape, Runs, product as int8_product,
    product_dequantized, product_runs,
};
use super::parallel::{for_each_chunk, for_each_item, threads};
use super::simd::widest;

/// `out[rows, cout] = cols[rows, depth] · weight[depth, cout]` (with `onto`, `out +=`), all
/// row-major, then `finish(strip, row, first column)` on each row's strip of the result. Natively the product
/// is split into blocks along its larger side, each block a single-threaded `gemm` finished by
/// the same thread while it is in cache: gemm's own threading lost half the speed on the
/// small-but-wide products of the last stage (49 pixels, 2048 channels).
pub(super) fn matmul(
    cols: &[f32],
    weight: &[f32],
    (out, onto): (&mut [f32], bool),
    [rows, depth, cout]: [usize; 3],
    finish: impl Fn(&mut [f32], usize, usize) + Send + Sync,
) {
    assert!(cols.len() == rows * depth && weight.len() == depth * cout && out.len() == rows * cout);
    if rows == 0 || cout == 0 {
        return;
    }
    let by_rows = splits_by_rows(rows, cout);
    let (len, align) = if by_rows { (rows, 8) } else { (cout, 16) };
    // Two blocks per core: the one free core takes the other's second block when a core is
    // slowed (this machine is shared). One block per core measured slower and less steady,
    // four slower again (each block packs its own share of the operands).
    let step = len.div_ceil(2 * threads()).next_multiple_of(align).min(len);
    if by_rows {
        // Blocks of whole rows: each is its own slice of `out`.
        for_each_chunk(out, step * cout, |block, index| {
            let (r0, nr) = (index * step, block.len() / cout);
            product(
                [nr, depth, cout],
                (block, cout, onto),
                (&cols[r0 * depth..][..nr * depth], depth),
                (weight, cout),
            );
            for (r, row) in block.chunks_mut(cout).enumerate() {
                finish(row, r0 + r, 0);
            }
        });
        return;
    }
    // Blocks of columns: each core writes a strided block of every row.
    let out_ptr = SendPtr(out.as_mut_ptr());
    for_each_item((0..cout).step_by(step).collect(), |c0| {
        let nc = step.min(cout - c0);
        // SAFETY: the block reads columns c0..c0+nc of `weight` and writes the same columns
        // of every row of `out`, all in bounds (asserted above); blocks do not overlap, and
        // `out` does not alias the inputs.
        unsafe {
            raw_product(
                [rows, depth, nc],
                (out_ptr.get().add(c0), cout, onto),
                (cols.as_ptr(), depth),
                (weight.as_ptr().add(c0), cout),
            );
        }
        for row in 0..rows {
            // SAFETY: this block's part of the row: in bounds, written by no other block.
            let strip =
                unsafe { std::slice::from_raw_parts_mut(out_ptr.get().add(row * cout + c0), nc) };
            finish(strip, row, c0);
        }
    });
}

/// Rows per block of [`matmul_gathered`]: 784 x 147 f32 of the stem's gathered rows (460 KB)
/// stay in L2 for the block's product, and a photo's 12,544 rows make 16 blocks. Blocks of 48
/// to 96 rows measured 20-35 % slower (each product packs the weights again), as did the packed
/// kernel's tiles of 48.
const GATHERED_ROWS: usize = 784;

thread_local! {
    /// Each thread's gathered rows, kept between blocks and passes.
    static GATHERED: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// [`matmul`] on rows that each block gathers for itself (`gather(rows, first row)`, `depth`
/// each: the stem's im2col rows, without the whole im2col matrix), by blocks of rows.
pub(super) fn matmul_gathered(
    gather: &(dyn Fn(&mut [f32], usize) + Sync),
    weight: &[f32],
    out: &mut [f32],
    [rows, depth, cout]: [usize; 3],
    finish: impl Fn(&mut [f32], usize, usize) + Send + Sync,
) {
    assert!(weight.len() == depth * cout && out.len() == rows * cout);
    if rows == 0 || cout == 0 {
        return;
    }
    for_each_chunk(out, GATHERED_ROWS * cout, |block, index| {
        let (r0, nr) = (index * GATHERED_ROWS, block.len() / cout);
        let mut a = GATHERED.take();
        a.resize(nr * depth, 0.0);
        gather(&mut a, r0);
        product(
            [nr, depth, cout],
            (block, cout, false),
            (&a, depth),
            (weight, cout),
        );
        GATHERED.set(a);
        for (r, row) in block.chunks_mut(cout).enumerate() {
            finish(row, r0 + r, 0);
        }
    });
}

/// Whether [`matmul`] splits `[rows, cout]` into blocks of rows (else of columns). Only then
/// does adding onto `out` pay: onto blocks of columns, each a strided block of every row, it
/// measured slower than a separate pass on stage 4's 196 x 1024 products, and so did splitting
/// those by rows to add in place.
pub(super) fn splits_by_rows(rows: usize, cout: usize) -> bool {
    rows >= cout
}

/// Rows of an int8 product's tile: a multiple of the VNNI kernel's 6 rows. A tile's
/// activations (48 x depth bytes) and a group of 4 panels of weights (64 x depth) sit in L2,
/// its sums (48 x 64) in L1.
const INT8_TILE_ROWS: usize = 48;
const INT8_TILE_PANELS: usize = 4;

thread_local! {
    /// Each thread's tile buffers, kept: a fresh one of over 128 KB is a fresh mapping, whose
    /// pages the kernel clears on every call.
    static TILE_ROWS: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
    static TILE_SUMS: std::cell::Cell<Vec<i32>> = const { std::cell::Cell::new(Vec::new()) };
    static TILE_OUT: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// An int8 product's epilogue done by the VNNI kernel on its sums in registers
/// (`dot::product_dequantized`), the same as its `finish` would: a third of the epilogue's time
/// went to writing the i32 sums and reading them back. Given (by the caller) where the kernel
/// is VNNI; used where a tile's rows are whole rows of one photo, elsewhere `finish`.
pub(super) struct InKernel<'a> {
    /// Each photo's (`[photos, cout]`): the input's scale times each column's.
    pub(super) factors: &'a [f32],
    pub(super) bias: &'a [f32],
    pub(super) onto: bool,
    pub(super) relu: bool,
    /// Output rows per photo.
    pub(super) pixels: usize,
    /// Each photo's largest value, raised as bits (as `finish` raises it).
    pub(super) maxima: &'a [AtomicU32],
    /// Per column (`cout`), for a signed input: what its zero point added to the sums.
    pub(super) zero_sums: Option<&'a [i32]>,
}

impl InKernel<'_> {
    /// The product of `rows` rows of `a` from output row `first`, on the panels of `columns`,
    /// finished into `out` (rows `ldo` apart, from the first of `columns`) with the photo's
    /// maximum raised — if the rows are one photo's; else `false`, and nothing done.
    fn finish_product(
        &self,
        a: (&[u8], usize, Runs),
        (first, rows): (usize, usize),
        weights: &PackedInt8,
        columns: Range<usize>,
        out: (&mut [f32], usize),
    ) -> bool {
        let photo = first / self.pixels;
        if (first + rows - 1) / self.pixels != photo {
            return false;
        }
        let cout = self.bias.len();
        let dequantize = Dequantize {
            factors: &self.factors[photo * cout..][columns.clone()],
            bias: &self.bias[columns.clone()],
            onto: self.onto,
            relu: self.relu,
            zero_sums: self.zero_sums.map(|z| &z[columns.clone()]),
        };
        let panels = (columns.start / PANEL, columns.len() / PANEL);
        let max = product_dequantized(a, rows, weights, panels, out, dequantize);
        self.maxima[photo].fetch_max(max.to_bits(), Relaxed);
        true
    }
}

/// `out[rows, cout] = dequantize(a[rows, depth] · weights)`. Each tile (48 rows x all
/// columns; on products of few rows, x a share of the columns so that every core has four
/// tiles) has `fill(rows, first row)` write its rows of `a` (u8, `depth` each: quantized and
/// gathered from the layer's input or its padded quantized copy), then,
/// 64 columns at a time, hands the i32 sums (which it may change) to `finish((tile, stride),
/// sums, first row, columns)`, which writes the f32 tile (`rows x 64`, rows `stride` apart)
/// while both are in cache. When `onto`, the tile `finish` gets holds `out`'s values there (a
/// residual to add), and its result replaces them. Or `in_kernel` does that in the kernel.
pub(super) fn int8_matmul(
    kernel: Int8Kernel,
    weights: &PackedInt8,
    (out, onto): (&mut [f32], bool),
    [rows, cout]: [usize; 2],
    fill: impl Fn(&mut [u8], usize) + Send + Sync,
    (finish, in_kernel): (
        impl Fn((&mut [f32], usize), &mut [i32], usize, Range<usize>) + Send + Sync,
        Option<&InKernel>,
    ),
) {
    let (depth, panels) = (weights.depth(), weights.panels());
    assert!(panels * PANEL == cout && out.len() == rows * cout);
    if rows == 0 || cout == 0 {
        return;
    }
    let groups = panels.div_ceil(INT8_TILE_PANELS);
    // Even tiles: 49 rows make 2 tiles of 30 and 19, not 48 and 1.
    let row_tiles = rows.div_ceil(INT8_TILE_ROWS).max(1);
    let tile_rows = rows.div_ceil(row_tiles).next_multiple_of(6);
    let row_tiles = rows.div_ceil(tile_rows).max(1);
    // Columns split only where rows are too few for four tiles per core (the last stages:
    // fewer leave a core idle while the other finishes an odd tile), each share then
    // gathering the same rows again.
    let col_tiles = (4 * threads()).div_ceil(row_tiles).clamp(1, groups);
    let groups_per_tile = groups.div_ceil(col_tiles);
    let col_tiles = groups.div_ceil(groups_per_tile);
    let out_ptr = SendPtr(out.as_mut_ptr());
    for_each_item((0..row_tiles * col_tiles).collect(), |tile| {
        let r0 = tile / col_tiles * tile_rows;
        let nr = tile_rows.min(rows - r0);
        let first_group = tile % col_tiles * groups_per_tile;
        let mut a = TILE_ROWS.take();
        a.resize(nr * depth, 0);
        fill(&mut a, r0);
        let (mut sums, mut tile_out) = (TILE_SUMS.take(), TILE_OUT.take());
        // A tile of whole rows finishes straight into them; a share of the columns into its
        // own buffer, copied out.
        // SAFETY: rows r0..r0+nr are in bounds (asserted above), and written by this tile
        // alone when it has all the columns; `out` aliases nothing else.
        let mut own_rows = (col_tiles == 1).then(|| unsafe {
            std::slice::from_raw_parts_mut(out_ptr.get().add(r0 * cout), nr * cout)
        });
        for group in first_group..(first_group + groups_per_tile).min(groups) {
            let p0 = group * INT8_TILE_PANELS;
            let np = INT8_TILE_PANELS.min(panels - p0);
            let (c0, nc) = (p0 * PANEL, np * PANEL);
            let columns = c0..c0 + nc;
            if let (Some(in_kernel), Some(rows)) = (in_kernel, own_rows.as_deref_mut()) {
                let a = (a.as_slice(), depth, Runs::plain(depth));
                let out = (&mut rows[c0..], cout);
                if in_kernel.finish_product(a, (r0, nr), weights, columns.clone(), out) {
                    continue;
                }
            }
            sums.resize(nr * nc, 0);
            int8_product(kernel, (&a, depth), nr, weights, (p0, np), &mut sums);
            if let Some(rows) = own_rows.as_deref_mut() {
                finish((&mut rows[c0..], cout), &mut sums, r0, columns);
                continue;
            }
            tile_out.resize(nr * nc, 0.0);
            if onto {
                for (r, row) in tile_out.chunks_exact_mut(nc).enumerate() {
                    // SAFETY: as above; this tile's columns of its rows, written by no other.
                    let from = unsafe { out_ptr.get().add((r0 + r) * cout + c0) };
                    unsafe { std::ptr::copy_nonoverlapping(from, row.as_mut_ptr(), nc) };
                }
            }
            finish((&mut tile_out, nc), &mut sums, r0, columns);
            for (r, row) in tile_out.chunks_exact(nc).enumerate() {
                // SAFETY: columns c0..c0+nc of row r0+r: in bounds (asserted above), and no
                // other tile writes them; `out` aliases nothing else.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        row.as_ptr(),
                        out_ptr.get().add((r0 + r) * cout + c0),
                        nc,
                    )
                };
            }
        }
        TILE_ROWS.set(a);
        TILE_SUMS.set(sums);
        TILE_OUT.set(tile_out);
    });
}

/// [`int8_matmul`] for a stride-1 `k x k` convolution on the VNNI kernel, straight from its
/// quantized input with the padding around it (`[n, padded_h, padded_w, c]`): a task per
/// output row, whose pixels' windows are `k` runs of `k·c` bytes, `c` apart from one pixel to
/// the next — the kernel reads them where they lie instead of a tile's gathered rows (the
/// gathering took 15 % of stage 2's 3x3 layers). `finish` (or `in_kernel`) as for
/// [`int8_matmul`]'s tiles of whole rows, an output row at a time.
pub(super) fn int8_convolve(
    weights: &PackedInt8,
    (padded, padded_shape): (&[u8], PaddedShape),
    k: usize,
    [n, h, w]: [usize; 3],
    out: &mut [f32],
    (finish, in_kernel): (
        impl Fn((&mut [f32], usize), &mut [i32], usize, Range<usize>) + Send + Sync,
        Option<&InKernel>,
    ),
) {
    let (panels, cout) = (weights.panels(), weights.panels() * PANEL);
    let ([padded_h, padded_w], c) = padded_shape;
    assert_eq!(weights.depth(), k * k * c, "a window's depth");
    assert_eq!(out.len(), n * h * w * cout);
    assert_eq!(padded.len(), n * padded_h * padded_w * c);
    assert!(h + k - 1 <= padded_h && w + k - 1 <= padded_w);
    for_each_chunk(out, w * cout, |row, index| {
        let (a, runs) = Runs::windows_of_row(padded, padded_shape, (k, 1), [h, w], index);
        let mut sums = TILE_SUMS.take();
        for p0 in (0..panels).step_by(INT8_TILE_PANELS) {
            let np = INT8_TILE_PANELS.min(panels - p0);
            let columns = p0 * PANEL..(p0 + np) * PANEL;
            if let Some(in_kernel) = in_kernel {
                let out = (&mut row[columns.start..], cout);
                let rows = (index * w, w);
                if in_kernel.finish_product((a, c, runs), rows, weights, columns.clone(), out) {
                    continue;
                }
            }
            sums.resize(w * columns.len(), 0);
            product_runs((a, c, runs), w, weights, (p0, np), &mut sums);
            finish(
                (&mut row[columns.start..], cout),
                &mut sums,
                index * w,
                columns,
            );
        }
        TILE_SUMS.set(sums);
    });
}

widest! {
    /// One output pixel's last step: `relu?(row + bias + skip)`, in one pass over a row that
    /// sits in L1, compiled for the widest vectors the CPU has.
    pub(super) fn finish_row(row: &mut [f32], bias: &[f32], skip: Option<&[f32]>, relu: bool) -> () {
        let bias = &bias[..row.len()];
        match (skip, relu) {
            (Some(skip), true) => finish::<true, true>(row, bias, &skip[..row.len()]),
            (Some(skip), false) => finish::<true, false>(row, bias, &skip[..row.len()]),
            (None, true) => finish::<false, true>(row, bias, &[]),
            (None, false) => finish::<false, false>(row, bias, &[]),
        }
    }
}

#[inline(always)]
fn finish<const SKIP: bool, const RELU: bool>(row: &mut [f32], bias: &[f32], skip: &[f32]) {
    for i in 0..row.len() {
        // The residual before the bias: the order of a product added onto its residual in
        // place (`matmul`'s `onto`, and the packed kernel's epilogue), so a photo's bits do not
        // depend on which one its batch size picks.
        let mut v = row[i];
        if SKIP {
            v += skip[i];
        }
        v += bias[i];
        if RELU {
            // A comparison rather than f32::max: its NaN rules keep it scalar in wasm.
            v = if v > 0.0 { v } else { 0.0 };
        }
        row[i] = v;
    }
}

/// `points` independent products interleaved in memory (Winograd's, see `winograd`):
/// for each ξ, `out[t, ξ, :] = lhs[t, ξ, :] · rhs[ξ]`, where `lhs` is `[rows, points, depth]`,
/// `rhs` is `points` contiguous `[depth, n]` matrices and `out` is `[rows, points, n]`.
/// One product per core at a time, or with `alone` all on this thread (for a block of a layer
/// whose blocks the cores share).
pub(super) fn interleaved_products(
    lhs: &[f32],
    rhs: &[f32],
    out: &mut [f32],
    [rows, depth, n]: [usize; 3],
    (points, alone): (usize, bool),
) {
    assert!(
        lhs.len() == rows * points * depth
            && rhs.len() == points * depth * n
            && out.len() == rows * points * n
    );
    let out_ptr = SendPtr(out.as_mut_ptr());
    let product = |xi| {
        // SAFETY: the sizes are checked above, and the products write disjoint elements of
        // `out`.
        unsafe { point_product(lhs, rhs, out_ptr.get(), [rows, depth, n], points, xi) }
    };
    if alone {
        (0..points).for_each(product);
    } else {
        for_each_item((0..points).collect(), product);
    }
}

/// Product ξ of [`interleaved_products`].
///
/// # Safety
/// The sizes are those [`interleaved_products`] checks and `out` points to its `[rows,
/// points, n]`; no other thread writes product ξ's elements.
unsafe fn point_product(
    lhs: &[f32],
    rhs: &[f32],
    out: *mut f32,
    [rows, depth, n]: [usize; 3],
    points: usize,
    xi: usize,
) {
    // SAFETY: lhs_ξ is the `rows x depth` matrix at offset ξ·depth with row stride
    // points·depth, rhs_ξ the contiguous `depth x n` matrix at ξ·depth·n, and out_ξ the
    // `rows x n` matrix at ξ·n with row stride points·n: all in bounds (the caller's promise),
    // and `out` aliases neither input.
    unsafe {
        raw_product(
            [rows, depth, n],
            (out.add(xi * n), points * n, false),
            (lhs.as_ptr().add(xi * depth), points * depth),
            (rhs.as_ptr().add(xi * depth * n), n),
        );
    }
}

/// [`raw_product`] on slices, which must hold their whole matrices at their strides.
fn product(
    [m, depth, n]: [usize; 3],
    (dst, dst_stride, onto): (&mut [f32], usize, bool),
    (lhs, lhs_stride): (&[f32], usize),
    (rhs, rhs_stride): (&[f32], usize),
) {
    let fits = |len: usize, rows: usize, cols: usize, stride: usize| {
        rows == 0 || cols == 0 || (cols <= stride && len >= (rows - 1) * stride + cols)
    };
    assert!(
        fits(dst.len(), m, n, dst_stride)
            && fits(lhs.len(), m, depth, lhs_stride)
            && fits(rhs.len(), depth, n, rhs_stride)
    );
    // SAFETY: each slice holds its whole matrix (asserted), and `dst`, a unique borrow, cannot
    // overlap the inputs.
    unsafe {
        raw_product(
            [m, depth, n],
            (dst.as_mut_ptr(), dst_stride, onto),
            (lhs.as_ptr(), lhs_stride),
            (rhs.as_ptr(), rhs_stride),
        );
    }
}

/// `dst[m, n] = lhs[m, depth] · rhs[depth, n]` on one core, each matrix row-major with the
/// given row stride (in elements); `dst` is overwritten, or with `onto` added to (then read).
///
/// # Safety
/// Each pointer must address its whole matrix at that stride, and `dst` must not overlap the
/// inputs or be written by anything else meanwhile.
unsafe fn raw_product(
    [m, depth, n]: [usize; 3],
    (dst, dst_stride, onto): (*mut f32, usize, bool),
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
            onto,
            lhs,
            1,
            lhs_stride as isize,
            rhs,
            1,
            rhs_stride as isize,
            if onto { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// A raw pointer that may cross threads: each thread reads and writes its own disjoint block
/// (here and in `panel`).
#[derive(Clone, Copy)]
pub(super) struct SendPtr(pub(super) *mut f32);
// SAFETY: used only to hand disjoint output blocks to the threads of one product call.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    pub(super) fn get(self) -> *mut f32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], [m, k, n]: [usize; 3]) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        out
    }

    /// Both splits (by rows, by columns), with `finish` seeing every element once.
    #[test]
    fn matmul_splits_match_a_plain_product() {
        for [m, k, n] in [[50, 7, 3], [3, 7, 50], [1, 1, 1], [17, 9, 17]] {
            let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 - 3.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.5).collect();
            let mut out = vec![f32::NAN; m * n];
            matmul(&a, &b, (&mut out, false), [m, k, n], |strip, _, _| {
                strip.iter_mut().for_each(|v| *v += 1.0)
            });
            let expected: Vec<f32> = naive(&a, &b, [m, k, n]).iter().map(|v| v + 1.0).collect();
            assert_eq!(out, expected, "{m}x{k}x{n}");
        }
    }
}
