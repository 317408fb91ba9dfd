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
use super::parallel::for_each_chunk;
use super::product::{finish_row, interleaved_products};

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

/// Transform 3x3 weights `[out, in, 3, 3]` into the α² `[in, out]` matrices: `U = G g Gᵀ`.
pub(super) fn pack(variant: &Variant, oihw: &[f32], cin: usize, cout: usize) -> Vec<f32> {
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

/// `relu?(conv3x3(x) + bias + residual)` with padding 1, stride 1.
pub(super) fn forward(
    variant: &Variant,
    x: &Activations,
    u: &[f32],
    bias: &[f32],
    residual: Option<&Activations>,
    relu: bool,
) -> Activations {
    let (c, k, m, alpha) = (x.c, bias.len(), variant.m, variant.alpha());
    let points = alpha * alpha;
    assert_eq!(u.len(), points * c * k, "packed weights");
    let (tiles_y, tiles_x) = (x.h.div_ceil(m), x.w.div_ceil(m));
    let tiles = x.n * tiles_y * tiles_x;
    let (bt, at) = (
        nonzero_terms(variant.bt, alpha),
        nonzero_terms(variant.at, alpha),
    );

    // Input transform: V = Bᵀ d B for each tile's input patch d, all channels at once.
    let mut v = buffer(tiles * points * c);
    for_each_chunk(&mut v, points * c * TILES_PER_TASK, |chunk, first| {
        let mut d = vec![0.0f32; points * c];
        let mut rows = vec![0.0f32; points * c];
        for (i, tile) in chunk.chunks_mut(points * c).enumerate() {
            let t = first * TILES_PER_TASK + i;
            let (b, ty, tx) = position(t, tiles_y, tiles_x);
            for (p, pixel) in d.chunks_mut(c).enumerate() {
                let iy = (m * ty + p / alpha) as isize - 1;
                let ix = (m * tx + p % alpha) as isize - 1;
                if iy < 0 || ix < 0 || iy >= x.h as isize || ix >= x.w as isize {
                    pixel.fill(0.0);
                } else {
                    let src = ((b * x.h + iy as usize) * x.w + ix as usize) * c;
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
                    let target = &mut tile[(i * alpha + j) * c..][..c];
                    combine(target, &bt[j], |r| &rows[(i * alpha + r) * c..][..c]);
                }
            }
        }
    });

    // The α² products M_ξ = V_ξ U_ξ, one per core at a time.
    let mut products = buffer(tiles * points * k);
    interleaved_products(&v, u, &mut products, [tiles, c, k], points);
    recycle(v);

    // Output transform, one output row at a time: Y = Aᵀ M A, then bias, residual and ReLU.
    let (h, w) = (x.h, x.w);
    let mut out = buffer(x.n * h * w * k);
    for_each_chunk(&mut out, w * k, |row_out, row| {
        let (b, y) = (row / h, row % h);
        // Row y % m of Aᵀ M: α partial sums of k channels.
        let mut s = vec![0.0f32; alpha * k];
        for tx in 0..tiles_x {
            let t = (b * tiles_y + y / m) * tiles_x + tx;
            let tile = &products[t * points * k..][..points * k];
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
    });
    recycle(products);
    Activations {
        n: x.n,
        h,
        w,
        c: k,
        data: out,
    }
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
