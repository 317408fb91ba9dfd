//! 3x3 stride-1 convolutions by Winograd's minimal filtering, F(2x2, 3x3) (Lavin & Gray,
//! 2015): each 2x2 block of outputs costs 16 multiplications per channel pair instead of 36,
//! so the 3x3 layers (nearly half of ResNet50's arithmetic) need 2.25x fewer. The price is
//! a cheap linear transform of the input before the products and of the result after, and
//! rounding within a few float ulps of the direct convolution (tested against burn's).
//!
//! Layout: the input transform writes, per 2x2 output tile `t`, 16 rows of `in` channels
//! (`v[(t·16 + ξ)·in + ci]`); the weights are 16 matrices `[in, out]`; the 16 products write
//! `m[(t·16 + ξ)·out + co]`, and the output transform reads one tile's 16 rows at a time.

use super::{Activations, SendPtr, buffer, finish_row, for_each_chunk, for_each_item, recycle};

/// Tiles per parallel task in the input transform.
const TILES_PER_TASK: usize = 8;

/// Transform 3x3 weights `[out, in, 3, 3]` into the 16 `[in, out]` matrices: `U = G g Gᵀ`.
pub(super) fn pack(oihw: &[f32], cin: usize, cout: usize) -> Vec<f32> {
    let mut u = vec![0.0; 16 * cin * cout];
    for co in 0..cout {
        for ci in 0..cin {
            let g = &oihw[(co * cin + ci) * 9..][..9];
            // G g: 4x3.
            let mut gg = [[0.0f32; 3]; 4];
            for j in 0..3 {
                let (g0, g1, g2) = (g[j], g[3 + j], g[6 + j]);
                gg[0][j] = g0;
                gg[1][j] = (g0 + g1 + g2) / 2.0;
                gg[2][j] = (g0 - g1 + g2) / 2.0;
                gg[3][j] = g2;
            }
            // (G g) Gᵀ: 4x4.
            for (i, row) in gg.iter().enumerate() {
                let [r0, r1, r2] = *row;
                let transformed = [r0, (r0 + r1 + r2) / 2.0, (r0 - r1 + r2) / 2.0, r2];
                for (j, value) in transformed.into_iter().enumerate() {
                    u[((i * 4 + j) * cin + ci) * cout + co] = value;
                }
            }
        }
    }
    u
}

/// `relu?(conv3x3(x) + bias)` with padding 1, stride 1.
pub(super) fn forward(x: &Activations, u: &[f32], bias: &[f32], relu: bool) -> Activations {
    let (c, k) = (x.c, bias.len());
    assert_eq!(u.len(), 16 * c * k, "packed weights");
    let (tiles_y, tiles_x) = (x.h.div_ceil(2), x.w.div_ceil(2));
    let tiles = x.n * tiles_y * tiles_x;

    // Input transform: V = Bᵀ d B for each tile's 4x4 input patch d, all channels at once.
    let mut v = buffer(tiles * 16 * c);
    for_each_chunk(&mut v, 16 * c * TILES_PER_TASK, |chunk, first| {
        let mut d = vec![0.0f32; 16 * c];
        let mut rows = vec![0.0f32; 16 * c];
        for (i, tile) in chunk.chunks_mut(16 * c).enumerate() {
            let t = first * TILES_PER_TASK + i;
            let (b, ty, tx) = (t / (tiles_y * tiles_x), t / tiles_x % tiles_y, t % tiles_x);
            for (p, pixel) in d.chunks_mut(c).enumerate() {
                let (iy, ix) = ((2 * ty + p / 4) as isize - 1, (2 * tx + p % 4) as isize - 1);
                if iy < 0 || ix < 0 || iy >= x.h as isize || ix >= x.w as isize {
                    pixel.fill(0.0);
                } else {
                    let src = ((b * x.h + iy as usize) * x.w + ix as usize) * c;
                    pixel.copy_from_slice(&x.data[src..src + c]);
                }
            }
            // Bᵀ d (along rows), then (Bᵀ d) B (along columns): the same transform twice.
            transform_4(&d, &mut rows, c, |i, j| i * 4 + j);
            transform_4(&rows, tile, c, |i, j| j * 4 + i);
        }
    });

    // The 16 products M_ξ = V_ξ U_ξ, one per core at a time.
    let mut m = buffer(tiles * 16 * k);
    let m_ptr = SendPtr(m.as_mut_ptr());
    for_each_item((0..16).collect(), |xi| {
        // SAFETY: V_ξ is the `tiles x c` matrix at offset ξ·c with row stride 16·c, U_ξ the
        // contiguous `c x k` matrix at ξ·c·k, and M_ξ the `tiles x k` matrix at ξ·k with row
        // stride 16·k: all in bounds, and the 16 products write disjoint elements of `m`.
        unsafe {
            gemm::gemm(
                tiles,
                k,
                c,
                m_ptr.get().add(xi * k),
                1,
                (16 * k) as isize,
                false,
                v.as_ptr().add(xi * c),
                1,
                (16 * c) as isize,
                u.as_ptr().add(xi * c * k),
                1,
                k as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    });
    recycle(v);

    // Output transform, one output row at a time: Y = Aᵀ M A, then bias and ReLU.
    let (h, w) = (x.h, x.w);
    let mut out = buffer(x.n * h * w * k);
    for_each_chunk(&mut out, w * k, |row_out, row| {
        let (b, y) = (row / h, row % h);
        let mut s = vec![0.0f32; 4 * k];
        for tx in 0..tiles_x {
            let t = (b * tiles_y + y / 2) * tiles_x + tx;
            let tile = &m[t * 16 * k..][..16 * k];
            let at = |i: usize, j: usize| &tile[(i * 4 + j) * k..][..k];
            // Row y % 2 of Aᵀ M: [1 1 1 0] or [0 1 -1 -1].
            for (j, sj) in s.chunks_mut(k).enumerate() {
                if y % 2 == 0 {
                    output_row(sj, at(0, j), at(1, j), at(2, j), true);
                } else {
                    output_row(sj, at(1, j), at(2, j), at(3, j), false);
                }
            }
            let sj = |j: usize| &s[j * k..][..k];
            // Columns of (Aᵀ M) A: s0 + s1 + s2, then s1 - s2 - s3.
            for dx in 0..2 {
                let ox = 2 * tx + dx;
                if ox >= w {
                    break;
                }
                let pixel = &mut row_out[ox * k..][..k];
                output_row(pixel, sj(dx), sj(dx + 1), sj(dx + 2), dx == 0);
                finish_row(pixel, bias, None, relu);
            }
        }
    });
    recycle(m);
    Activations {
        n: x.n,
        h,
        w,
        c: k,
        data: out,
    }
}

/// For 4 x 4 blocks of `c`-long rows, `out[at(i, j)] = Σ_r Bᵀ[i][r] · input[at(r, j)]`:
/// the input transform along one index (`at` picks which).
fn transform_4(input: &[f32], out: &mut [f32], c: usize, at: impl Fn(usize, usize) -> usize) {
    for j in 0..4 {
        let row = |i: usize| &input[at(i, j) * c..][..c];
        let (d0, d1, d2, d3) = (row(0), row(1), row(2), row(3));
        let at = |i: usize| at(i, j) * c..at(i, j) * c + c;
        difference(&mut out[at(0)], d0, d2);
        sum(&mut out[at(1)], d1, d2);
        difference(&mut out[at(2)], d2, d1);
        difference(&mut out[at(3)], d1, d3);
    }
}

fn sum(out: &mut [f32], a: &[f32], b: &[f32]) {
    for (o, (a, b)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = a + b;
    }
}

fn difference(out: &mut [f32], a: &[f32], b: &[f32]) {
    for (o, (a, b)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = a - b;
    }
}

/// `out = a + b + c`, or `a - b - c` (the two rows of Aᵀ).
fn output_row(out: &mut [f32], a: &[f32], b: &[f32], c: &[f32], first: bool) {
    let terms = out.iter_mut().zip(a.iter().zip(b).zip(c));
    if first {
        terms.for_each(|(o, ((a, b), c))| *o = a + b + c);
    } else {
        terms.for_each(|(o, ((a, b), c))| *o = a - b - c);
    }
}
