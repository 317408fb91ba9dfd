//! 3x3 stride-1 convolutions by Winograd's minimal filtering (Lavin & Gray, 2015).
//! F(m x m, 3x3) computes each m x m block of outputs from an (m+2) x (m+2) input tile with
//! (m+2)² multiplications per channel pair instead of 9·m²: 2.25x fewer for F(2x2, 3x3), 4x
//! fewer for F(4x4, 3x3). The price is a linear transform of the input before the products and
//! of the result after, and rounding a little above the direct convolution's (tested against
//! it, and the network against Keras' reference features).
//!
//! Layout: the input transform writes, per output tile `t`, `α²` rows of `in` channels
//! (`v[(t·α² + ξ)·in + ci]`, α = m + 2); the weights are α² matrices `[in, out]`; the α²
//! products write `m[(t·α² + ξ)·out + co]`, and the output transform reads one tile at a time.

use super::activations::{Activations, buffer, position, recycle};
use super::panel::{self, PackedF32};
use super::parallel::{for_each_chunk, for_each_item};
use super::product::{SendPtr, finish_row, interleaved_products};

/// One Winograd algorithm F(m x m, 3x3): its three transform matrices, row-major.
#[derive(Debug)]
pub(super) struct Variant {
    pub(super) name: &'static str,
    /// Outputs per tile side.
    m: usize,
    /// Input transform Bᵀ, α x α.
    bt: &'static [f32],
    /// Weight transform G, α x 3.
    g: &'static [f32],
    /// Output transform Aᵀ, m x α.
    at: &'static [f32],
}

impl Variant {
    fn alpha(&self) -> usize {
        self.m + 2
    }
}

/// F(2x2, 3x3): 4x4 input tiles, transforms of 0 and ±1.
pub(super) const F2X2: Variant = Variant {
    name: "Winograd F(2x2,3x3)",
    m: 2,
    #[rustfmt::skip]
    bt: &[
        1.0, 0.0, -1.0, 0.0,
        0.0, 1.0, 1.0, 0.0,
        0.0, -1.0, 1.0, 0.0,
        0.0, 1.0, 0.0, -1.0,
    ],
    #[rustfmt::skip]
    g: &[
        1.0, 0.0, 0.0,
        0.5, 0.5, 0.5,
        0.5, -0.5, 0.5,
        0.0, 0.0, 1.0,
    ],
    #[rustfmt::skip]
    at: &[
        1.0, 1.0, 1.0, 0.0,
        0.0, 1.0, -1.0, -1.0,
    ],
};

/// F(4x4, 3x3): 6x6 input tiles (the points 0, ±1, ±2 and ∞).
pub(super) const F4X4: Variant = Variant {
    name: "Winograd F(4x4,3x3)",
    m: 4,
    #[rustfmt::skip]
    bt: &[
        4.0, 0.0, -5.0, 0.0, 1.0, 0.0,
        0.0, -4.0, -4.0, 1.0, 1.0, 0.0,
        0.0, 4.0, -4.0, -1.0, 1.0, 0.0,
        0.0, -2.0, -1.0, 2.0, 1.0, 0.0,
        0.0, 2.0, -1.0, -2.0, 1.0, 0.0,
        0.0, 4.0, 0.0, -5.0, 0.0, 1.0,
    ],
    #[rustfmt::skip]
    g: &[
        1.0 / 4.0, 0.0, 0.0,
        -1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0,
        -1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0,
        1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0,
        1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0,
        0.0, 0.0, 1.0,
    ],
    #[rustfmt::skip]
    at: &[
        1.0, 1.0, 1.0, 1.0, 1.0, 0.0,
        0.0, 1.0, -1.0, 2.0, -2.0, 0.0,
        0.0, 1.0, 1.0, 4.0, 4.0, 0.0,
        0.0, 1.0, -1.0, 8.0, -8.0, 1.0,
    ],
};

/// Tiles per parallel task in the input transform.
const TILES_PER_TASK: usize = 4;

/// A layer's α² weight matrices `[in, out]`.
#[derive(Debug)]
pub(super) enum Weights {
    /// Contiguous, for `gemm`.
    Plain(Vec<f32>),
    /// Each packed once in panels, for the AVX-512 kernel (`panel`), where the CPU has it.
    Packed(Vec<PackedF32>),
}

impl Weights {
    fn bytes(&self) -> usize {
        match self {
            Self::Plain(u) => size_of_val(u.as_slice()),
            Self::Packed(matrices) => matrices.iter().map(PackedF32::bytes).sum(),
        }
    }

    /// The α² products interleaved in memory, for each ξ `out[t, ξ, :] = lhs[t, ξ, :] · U_ξ`
    /// (`lhs` `[rows, points, depth]`, `out` `[rows, points, n]`): one per core at a time, or
    /// with `alone` all on this thread (a block of a layer whose blocks the cores share).
    fn multiply(
        &self,
        lhs: &[f32],
        out: &mut [f32],
        [rows, depth, n]: [usize; 3],
        (points, alone): (usize, bool),
    ) {
        let matrices = match self {
            Self::Plain(u) => {
                interleaved_products(lhs, u, out, [rows, depth, n], (points, alone));
                return;
            }
            Self::Packed(matrices) => matrices,
        };
        assert_eq!(matrices.len(), points, "a matrix per point");
        assert!(lhs.len() == rows * points * depth && out.len() == rows * points * n);
        let out_ptr = SendPtr(out.as_mut_ptr());
        let product = |xi: usize| {
            let u = &matrices[xi];
            assert!(u.depth == depth && u.cols == n, "U_ξ's shape");
            // SAFETY: lhs_ξ's rows start at ξ·depth, `points·depth` apart, and out_ξ's at ξ·n,
            // `points·n` apart: in bounds (asserted above); product ξ alone writes out_ξ.
            unsafe {
                panel::strided_product(
                    (lhs.as_ptr().add(xi * depth), points * depth),
                    rows,
                    u,
                    (out_ptr.get().add(xi * n), points * n),
                )
            };
        };
        if alone {
            (0..points).for_each(product);
        } else {
            for_each_item((0..points).collect(), product);
        }
    }
}

/// Transform 3x3 weights `[out, in, 3, 3]` into the α² `[in, out]` matrices (`U = G g Gᵀ`),
/// packed for the AVX-512 kernel where the CPU has it and they are whole panels of 16.
pub(super) fn pack(variant: &Variant, oihw: &[f32], cin: usize, cout: usize) -> Weights {
    let u = transform_weights(variant, oihw, cin, cout);
    if panel::available() && cout.is_multiple_of(16) {
        let matrices = u.chunks_exact(cin * cout);
        Weights::Packed(matrices.map(|m| PackedF32::pack(cin, cout, m)).collect())
    } else {
        Weights::Plain(u)
    }
}

/// `U = G g Gᵀ` for each pair of channels: `u[((i·α + j)·in + ci)·out + co]`.
fn transform_weights(variant: &Variant, oihw: &[f32], cin: usize, cout: usize) -> Vec<f32> {
    let alpha = variant.alpha();
    let g_at = |i: usize, r: usize| variant.g[i * 3 + r];
    let mut u = vec![0.0; alpha * alpha * cin * cout];
    let mut gg = vec![0.0f32; alpha * 3];
    for co in 0..cout {
        for ci in 0..cin {
            let w = &oihw[(co * cin + ci) * 9..][..9];
            // G g: α x 3.
            for i in 0..alpha {
                for j in 0..3 {
                    gg[i * 3 + j] = (0..3).map(|r| g_at(i, r) * w[r * 3 + j]).sum();
                }
            }
            // (G g) Gᵀ: α x α.
            for i in 0..alpha {
                for j in 0..alpha {
                    let value = (0..3).map(|r| gg[i * 3 + r] * g_at(j, r)).sum();
                    u[((i * alpha + j) * cin + ci) * cout + co] = value;
                }
            }
        }
    }
    u
}

/// Weights of at most this many bytes (all α² matrices) make the convolution run by blocks
/// (see [`forward`]): stage 2's 64 x 64 channels (F(4x4): 590 KB) stay in L2 from one block to
/// the next; stage 3's (2.4 MB) and stage 4's (4 MB) would be read again from L3 by every
/// block, whose few tiles also make products too small (measured 20-40 % slower there).
const BLOCKED_WEIGHTS_MAX: usize = 1 << 20;

/// `relu?(conv3x3(x) + bias + residual)` with padding 1, stride 1.
///
/// Where the weights are small (stage 2), by blocks of one row of tiles, each transformed,
/// multiplied and transformed back by one core in its own buffers (~130 KB each), all in L2:
/// done in three whole-layer phases instead, its 1.8 MB transforms went through L3 and memory,
/// and took 1.5 times as long in this machine's slow spells (and 1.4 times at batch 8). Elsewhere in three phases, each on all cores.
pub(super) fn forward(
    variant: &Variant,
    x: &Activations,
    u: &Weights,
    bias: &[f32],
    residual: Option<&Activations>,
    relu: bool,
) -> Activations {
    let (c, k, m, alpha) = (x.c, bias.len(), variant.m, variant.alpha());
    let points = alpha * alpha;
    let (h, w) = (x.h, x.w);
    let (tiles_y, tiles_x) = (h.div_ceil(m), w.div_ceil(m));
    let (bt, at) = (
        nonzero_terms(variant.bt, alpha),
        nonzero_terms(variant.at, alpha),
    );
    // The tiles of `v`, the `t`-th being tile (`ty`, `tx`) of image `b` for `(b, ty, tx) =
    // tile(t)`: V = Bᵀ d B for each tile's input patch d, all channels at once (one scratch
    // `d` and `rows` for them all).
    let transform_input = |v: &mut [f32], tile: &dyn Fn(usize) -> (usize, usize, usize)| {
        let mut d = vec![0.0f32; points * c];
        let mut rows = vec![0.0f32; points * c];
        for (t, out) in v.chunks_mut(points * c).enumerate() {
            let (b, ty, tx) = tile(t);
            for (p, pixel) in d.chunks_mut(c).enumerate() {
                let iy = (m * ty + p / alpha) as isize - 1;
                let ix = (m * tx + p % alpha) as isize - 1;
                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                    pixel.fill(0.0);
                } else {
                    let src = ((b * h + iy as usize) * w + ix as usize) * c;
                    pixel.copy_from_slice(&x.data[src..src + c]);
                }
            }
            // Bᵀ d (combining rows), then (Bᵀ d) B (combining columns).
            for j in 0..alpha {
                for i in 0..alpha {
                    let target = &mut rows[(i * alpha + j) * c..][..c];
                    combine(target, &bt[i], |r| &d[(r * alpha + j) * c..][..c]);
                }
            }
            for i in 0..alpha {
                for j in 0..alpha {
                    let target = &mut out[(i * alpha + j) * c..][..c];
                    combine(target, &bt[j], |r| &rows[(i * alpha + r) * c..][..c]);
                }
            }
        }
    };
    // Output row `row` (image row `y`) from its row of tiles' products: Y = Aᵀ M A, then bias,
    // residual and ReLU.
    let transform_output = |row_out: &mut [f32], row: usize, y: usize, tiles: &[f32]| {
        // Row y % m of Aᵀ M: α partial sums of k channels.
        let mut s = vec![0.0f32; alpha * k];
        for (tx, tile) in tiles.chunks_exact(points * k).enumerate() {
            for (j, sj) in s.chunks_mut(k).enumerate() {
                combine(sj, &at[y % m], |r| &tile[(r * alpha + j) * k..][..k]);
            }
            // Columns of (Aᵀ M) A.
            for dx in 0..m.min(w - m * tx) {
                let pixel = &mut row_out[(m * tx + dx) * k..][..k];
                combine(pixel, &at[dx], |r| &s[r * k..][..k]);
                let skip = residual.map(|r| &r.data[(row * w + m * tx + dx) * k..][..k]);
                finish_row(pixel, bias, skip, relu);
            }
        }
    };
    let mut out = buffer(x.n * h * w * k);
    if u.bytes() <= BLOCKED_WEIGHTS_MAX {
        // A block: one row of tiles, i.e. up to m rows of one image's output.
        let blocks: Vec<(usize, usize, &mut [f32])> = out
            .chunks_mut(h * w * k)
            .enumerate()
            .flat_map(|(b, image)| {
                let rows = image.chunks_mut(m * w * k).enumerate();
                rows.map(move |(ty, rows_out)| (b, ty, rows_out))
            })
            .collect();
        for_each_item(blocks, |(b, ty, rows_out)| {
            let mut v = BLOCK_V.take();
            v.resize(tiles_x * points * c, 0.0);
            transform_input(&mut v, &|tx| (b, ty, tx));
            let mut products = BLOCK_M.take();
            products.resize(tiles_x * points * k, 0.0);
            u.multiply(&v, &mut products, [tiles_x, c, k], (points, true));
            BLOCK_V.set(v);
            for (dy, row_out) in rows_out.chunks_mut(w * k).enumerate() {
                transform_output(row_out, b * h + m * ty + dy, m * ty + dy, &products);
            }
            BLOCK_M.set(products);
        });
    } else {
        let tiles = x.n * tiles_y * tiles_x;
        let mut v = buffer(tiles * points * c);
        for_each_chunk(&mut v, points * c * TILES_PER_TASK, |chunk, first| {
            let tile = |i| position(first * TILES_PER_TASK + i, tiles_y, tiles_x);
            transform_input(chunk, &tile);
        });
        // The α² products M_ξ = V_ξ U_ξ, one per core at a time.
        let mut products = buffer(tiles * points * k);
        u.multiply(&v, &mut products, [tiles, c, k], (points, false));
        recycle(v);
        // One output row at a time.
        for_each_chunk(&mut out, w * k, |row_out, row| {
            let (b, y) = (row / h, row % h);
            let first = (b * tiles_y + y / m) * tiles_x;
            let tiles = &products[first * points * k..][..tiles_x * points * k];
            transform_output(row_out, row, y, tiles);
        });
        recycle(products);
    }
    Activations {
        n: x.n,
        h,
        w,
        c: k,
        data: out,
    }
}

thread_local! {
    /// Each thread's transformed tiles and their products for one block, kept between blocks.
    static BLOCK_V: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
    static BLOCK_M: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The nonzero coefficients of each row of a transform matrix, as (column, coefficient).
fn nonzero_terms(matrix: &[f32], width: usize) -> Vec<Vec<(usize, f32)>> {
    matrix
        .chunks(width)
        .map(|row| {
            let terms = row.iter().enumerate().filter(|(_, c)| **c != 0.0);
            terms.map(|(r, c)| (r, *c)).collect()
        })
        .collect()
}

/// `out = Σ coefficient · input(column)` over one row's nonzero terms (at most 6).
fn combine<'a>(out: &mut [f32], terms: &[(usize, f32)], input: impl Fn(usize) -> &'a [f32]) {
    match terms.len() {
        1 => weighted_sum::<1>(out, terms, input),
        2 => weighted_sum::<2>(out, terms, input),
        3 => weighted_sum::<3>(out, terms, input),
        4 => weighted_sum::<4>(out, terms, input),
        5 => weighted_sum::<5>(out, terms, input),
        6 => weighted_sum::<6>(out, terms, input),
        _ => out.fill(0.0),
    }
}

/// One pass over the channels with all `N` terms at once: a loop the compiler unrolls over
/// the terms and vectorizes over the channels.
fn weighted_sum<'a, const N: usize>(
    out: &mut [f32],
    terms: &[(usize, f32)],
    input: impl Fn(usize) -> &'a [f32],
) {
    let len = out.len();
    let inputs: [&[f32]; N] = std::array::from_fn(|t| &input(terms[t].0)[..len]);
    let coefficients: [f32; N] = std::array::from_fn(|t| terms[t].1);
    for (i, o) in out.iter_mut().enumerate() {
        let mut sum = 0.0;
        for t in 0..N {
            sum += coefficients[t] * inputs[t][i];
        }
        *o = sum;
    }
}
