//! int8 matrix products of the int8 backbone (`quantized`): u8 activations times i8 weights,
//! summed in i32. Integer sums are exact, so every kernel gives the same bits on the same
//! activations: the kernel (and the thread count) changes the speed, never the answer (relaxed
//! SIMD's answers differ only because its activations have 7 bits; with 7 bits, every kernel
//! gives its bits). The kernels' `unsafe` is here; their
//! callers' (output strips for each thread) in `product`.
//!
//! The kernel is chosen at run time ([`Int8Kernel::best`]): AVX-512 VNNI (`vpdpbusd`, 64
//! products per instruction), AVX2 (`vpmaddwd` on bytes widened to i16), wasm SIMD128
//! (`i32x4.dot_i16x8_s`, the same idea), wasm relaxed SIMD (`i32x4.relaxed_dot_i8x16_i7x16_add_s`,
//! VNNI's shape, in builds that have it: its result is defined only for 7-bit activations, so
//! with it activations are quantized to 0..=127, [`Int8Kernel::activation_max`]), and portable
//! Rust everywhere else (aarch64 included).

/// Columns per packed panel: one AVX-512 register of i32 sums.
pub(super) const PANEL: usize = 16;

/// The arithmetic that computes an int8 product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Int8Kernel {
    /// x86-64 with AVX-512 VNNI.
    Vnni512,
    /// x86-64 with AVX2.
    Avx2,
    /// WebAssembly relaxed SIMD (the browser's threaded build, where the browser has it).
    RelaxedSimd,
    /// WebAssembly SIMD128 (the browser build).
    Simd128,
    /// Plain Rust: any CPU.
    Portable,
}

impl Int8Kernel {
    pub const ALL: [Self; 5] = [
        Self::Vnni512,
        Self::Avx2,
        Self::RelaxedSimd,
        Self::Simd128,
        Self::Portable,
    ];

    /// The fastest kernel this CPU runs.
    pub fn best() -> Self {
        Self::ALL
            .into_iter()
            .find(|k| k.available())
            .unwrap_or(Self::Portable)
    }

    /// Whether int8 arithmetic with this kernel is faster than f32 arithmetic (`gemm`) on the
    /// same CPU, so worth choosing by default. Measured: VNNI 8.0 vs 19.5 ms of convolutions per
    /// photo; SIMD128 in the browser 123 vs 154 ms; AVX2 no faster than gemm's f32 (`vpmaddwd`
    /// does 16 multiply-adds where an f32 FMA does 8, but needs widening and more adds);
    /// portable Rust ~50x slower; relaxed SIMD about half SIMD128's time in the page.
    pub fn beats_f32(self) -> bool {
        matches!(self, Self::Vnni512 | Self::RelaxedSimd | Self::Simd128)
    }

    /// The largest activation value this kernel multiplies exactly: 127 for relaxed SIMD (its
    /// dot product is defined for one 8-bit and one 7-bit operand), else 255.
    pub fn activation_max(self) -> u8 {
        match self {
            Self::RelaxedSimd => 127,
            _ => 255,
        }
    }

    /// Whether this CPU (or this build, for wasm's SIMD128 and relaxed SIMD) has the
    /// instructions.
    pub fn available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Vnni512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128", lucy_relaxed_simd))]
            Self::RelaxedSimd => true,
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Self::Simd128 => true,
            Self::Portable => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Vnni512 => "avx512-vnni",
            Self::Avx2 => "avx2",
            Self::RelaxedSimd => "relaxed-simd",
            Self::Simd128 => "simd128",
            Self::Portable => "portable",
        }
    }

    /// The kernel named `name` (as [`Self::name`] writes it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A padded input's (height and width, channels): see `conv::Window::pad`.
pub(super) type PaddedShape = ([usize; 2], usize);

/// Where a row's depth lies: `count` runs of `len` values, `stride` apart — one run of the
/// depth for a matrix's row; a window's rows in a padded image for a convolution computed
/// where its input lies (`panel::convolve`, `product::int8_convolve`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Runs {
    pub(super) count: usize,
    pub(super) len: usize,
    pub(super) stride: usize,
}

impl Runs {
    /// The windows of output row `index` (`h` rows per image, of `w` pixels `stride` apart) of
    /// a `k x k` convolution on `padded` (`[n, padded_h, padded_w, c]`, every window inside):
    /// the values they lie in, from the row's first window on, and a window's runs (its `k`
    /// rows, a padded row apart).
    pub(super) fn windows_of_row<T>(
        padded: &[T],
        ([padded_h, padded_w], c): PaddedShape,
        (k, stride): (usize, usize),
        [h, w]: [usize; 2],
        index: usize,
    ) -> (&[T], Self) {
        let runs = Self {
            count: k,
            len: k * c,
            stride: padded_w * c,
        };
        let (b, oy) = (index / h, index % h);
        let first = (b * padded_h + oy * stride) * padded_w * c;
        let reach = (k - 1) * runs.stride + ((w - 1) * stride + k) * c;
        (&padded[first..first + reach], runs)
    }

    /// One contiguous run (a matrix's row).
    pub(super) fn plain(depth: usize) -> Self {
        Self {
            count: 1,
            len: depth,
            stride: 0,
        }
    }
}

/// Weights `[depth, cols]` packed for the kernels: panels of 16 columns; within a panel, for
/// each group of 4 depth rows, 16 columns x 4 bytes — the 64 bytes one `vpdpbusd` multiplies
/// with 4 bytes of an activation row.
#[derive(Debug)]
pub(super) struct PackedInt8 {
    depth: usize,
    cols: usize,
    data: Vec<i8>,
}

impl PackedInt8 {
    /// Pack `kn`, `[depth, cols]` row-major. `depth` must be a multiple of 4 and `cols` of 16
    /// (every ResNet50 convolution but the stem's are).
    pub(super) fn pack(depth: usize, cols: usize, kn: &[i8]) -> Self {
        assert!(
            depth.is_multiple_of(4) && cols.is_multiple_of(PANEL),
            "int8 products need depth % 4 == 0 and columns % 16 == 0 (got {depth} x {cols})"
        );
        assert_eq!(kn.len(), depth * cols);
        let mut data = Vec::with_capacity(depth * cols);
        for panel in 0..cols / PANEL {
            for group in kn.chunks_exact(4 * cols) {
                for c in panel * PANEL..(panel + 1) * PANEL {
                    data.extend((0..4).map(|j| group[j * cols + c]));
                }
            }
        }
        Self { depth, cols, data }
    }

    pub(super) fn depth(&self) -> usize {
        self.depth
    }

    pub(super) fn panels(&self) -> usize {
        self.cols / PANEL
    }

    fn panel(&self, p: usize) -> &[i8] {
        &self.panels_from(p)[..self.depth * PANEL]
    }

    /// Panel `p` and all after it (a kernel reading several panels needs a pointer into all).
    fn panels_from(&self, p: usize) -> &[i8] {
        &self.data[p * self.depth * PANEL..]
    }
}

/// `out[r, c] = Σ_k a[r·lda + k] · b[k, 16·first_panel + c]` for `rows` rows and the columns of
/// `panels` panels; `out` is `rows x 16·panels`, row-major, overwritten.
pub(super) fn product(
    kernel: Int8Kernel,
    (a, lda): (&[u8], usize),
    rows: usize,
    b: &PackedInt8,
    (first_panel, panels): (usize, usize),
    out: &mut [i32],
) {
    let depth = b.depth;
    assert!(lda >= depth && (rows == 0 || a.len() >= (rows - 1) * lda + depth));
    assert!(first_panel + panels <= b.panels() && out.len() == rows * panels * PANEL);
    assert!(
        kernel.available(),
        "{} is not available here",
        kernel.name()
    );
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Int8Kernel::Vnni512 => product_runs(
            (a, lda, Runs::plain(depth)),
            rows,
            b,
            (first_panel, panels),
            out,
        ),
        #[cfg(target_arch = "x86_64")]
        Int8Kernel::Avx2 => {
            // SAFETY: the CPU has AVX2 (asserted); bounds asserted above.
            unsafe { x86::avx2(a.as_ptr(), lda, rows, b, first_panel, panels, out) }
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128", lucy_relaxed_simd))]
        Int8Kernel::RelaxedSimd => {
            // SAFETY: bounds asserted above; activations ≤ 127 (the caller's quantization).
            unsafe { wasm::relaxed(a.as_ptr(), lda, rows, b, first_panel, panels, out) }
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Int8Kernel::Simd128 => {
            // SAFETY: bounds asserted above.
            unsafe { wasm::simd128(a.as_ptr(), lda, rows, b, first_panel, panels, out) }
        }
        _ => portable(a, lda, rows, b, first_panel, panels, out),
    }
}

/// [`product`] on rows whose depth is `runs` (a window's rows in a padded image: see
/// `product::int8_convolve`), on the VNNI kernel only. The runs' lengths are multiples of 4.
pub(super) fn product_runs(
    (a, lda, runs): (&[u8], usize, Runs),
    rows: usize,
    b: &PackedInt8,
    (first_panel, panels): (usize, usize),
    out: &mut [i32],
) {
    check_runs((a, lda, runs), rows, b);
    assert!(first_panel + panels <= b.panels() && out.len() == rows * panels * PANEL);
    // SAFETY: the CPU has AVX-512 VNNI (asserted); bounds asserted above.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        let store = x86::Store::Sums(out.as_mut_ptr());
        x86::vnni(
            (a.as_ptr(), lda, runs),
            rows,
            b,
            (first_panel, panels),
            store,
        );
    }
}

/// What the VNNI kernel needs of rows whose depth is `runs`: the CPU, runs of whole groups of
/// 4 bytes making the weights' depth, and `rows` rows of them in `a`, `lda` apart.
fn check_runs((a, lda, runs): (&[u8], usize, Runs), rows: usize, b: &PackedInt8) {
    assert!(Int8Kernel::Vnni512.available(), "needs AVX-512 VNNI");
    assert!(runs.count * runs.len == b.depth && runs.len.is_multiple_of(4));
    let last = (runs.count - 1) * runs.stride + runs.len;
    assert!(rows == 0 || a.len() >= (rows - 1) * lda + last);
}

/// How the VNNI kernel can finish its sums itself, in registers (instead of writing them for
/// `quantized::finish_int8_tile` to read back): `relu?((sum - zero_sum) · factor + bias +
/// out)`, `out` the residual when `onto`, in that function's order (the same bits).
#[derive(Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // Read by the VNNI kernel.
pub(super) struct Dequantize<'a> {
    /// Per column of the product's panels: the input's scale times the column's.
    pub(super) factors: &'a [f32],
    pub(super) bias: &'a [f32],
    pub(super) onto: bool,
    pub(super) relu: bool,
    /// Per column, for a signed input (the stem's): what its zero point added to the sums,
    /// taken off them first (exactly, in i32).
    pub(super) zero_sums: Option<&'a [i32]>,
}

/// [`product_runs`] (or a plain product, `runs` one run of the depth) finished by `dequantize`
/// into `out` (`rows` rows `ldo` apart, from the product's first column): returns the largest
/// value written (0 without a ReLU). VNNI only.
pub(super) fn product_dequantized(
    (a, lda, runs): (&[u8], usize, Runs),
    rows: usize,
    b: &PackedInt8,
    (first_panel, panels): (usize, usize),
    (out, ldo): (&mut [f32], usize),
    dequantize: Dequantize,
) -> f32 {
    check_runs((a, lda, runs), rows, b);
    let cols = panels * PANEL;
    assert!(first_panel + panels <= b.panels() && ldo >= cols);
    assert!(rows == 0 || out.len() >= (rows - 1) * ldo + cols);
    assert!(dequantize.factors.len() >= cols && dequantize.bias.len() >= cols);
    assert!(dequantize.zero_sums.is_none_or(|z| z.len() >= cols));
    #[cfg(target_arch = "x86_64")]
    {
        let store = x86::Store::Dequantized {
            out: out.as_mut_ptr(),
            ldo,
            dequantize,
        };
        // SAFETY: the CPU has AVX-512 VNNI (asserted); bounds asserted above.
        unsafe {
            x86::vnni(
                (a.as_ptr(), lda, runs),
                rows,
                b,
                (first_panel, panels),
                store,
            )
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("VNNI is x86-64's")
}

fn portable(
    a: &[u8],
    lda: usize,
    rows: usize,
    b: &PackedInt8,
    first_panel: usize,
    panels: usize,
    out: &mut [i32],
) {
    let ldo = panels * PANEL;
    for p in 0..panels {
        let panel = b.panel(first_panel + p);
        for r in 0..rows {
            let mut sums = [0i32; PANEL];
            let row = &a[r * lda..][..b.depth];
            for (x, w) in row.chunks_exact(4).zip(panel.chunks_exact(4 * PANEL)) {
                for (sum, w) in sums.iter_mut().zip(w.chunks_exact(4)) {
                    *sum += (0..4).map(|j| x[j] as i32 * w[j] as i32).sum::<i32>();
                }
            }
            out[r * ldo + p * PANEL..][..PANEL].copy_from_slice(&sums);
        }
    }
}

#[allow(unused_macros)] // Only the SIMD kernels use it (here and in `panel`).
/// Calls `$tile::<MR>` (or `$tile::<MR, NV>`) for the run-time row count `$mr`, one of those
/// listed.
macro_rules! by_rows {
    ($mr:expr, $tile:ident, nv = $nv:literal, $args:tt, [$($n:literal)*]) => {
        match $mr {
            $($n => $tile::<$n, $nv> $args,)*
            _ => unreachable!("row count"),
        }
    };
    ($mr:expr, $tile:ident, $args:tt, [$($n:literal)*]) => {
        match $mr {
            $($n => $tile::<$n> $args,)*
            _ => unreachable!("row count"),
        }
    };
}

#[allow(unused_imports)] // As `by_rows!`.
pub(super) use by_rows;

/// `rows` in groups of `size` (the last one shorter): `(first row, rows in the group)`, for
/// the kernels' tiles of a fixed row count and their remainder.
#[allow(dead_code)] // Only the SIMD kernels use it (here and in `panel`).
pub(super) fn row_groups(rows: usize, size: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..rows)
        .step_by(size)
        .map(move |r| (r, size.min(rows - r)))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Dequantize, PANEL, PackedInt8, Runs, row_groups};

    /// Where the VNNI kernel's tiles go: their i32 sums (`rows x 16·panels`, row-major), or
    /// dequantized f32 values (rows `ldo` apart).
    #[derive(Clone, Copy)]
    pub(super) enum Store<'a> {
        Sums(*mut i32),
        Dequantized {
            out: *mut f32,
            ldo: usize,
            dequantize: Dequantize<'a>,
        },
    }

    /// Tiles of 6 rows x 4 panels (24 accumulators of the 32 registers). Returns the largest
    /// dequantized value (0 for sums, or without a ReLU).
    ///
    /// # Safety
    /// AVX-512 VNNI; `a` holds `rows` rows at stride `lda`, each `runs` (making `b.depth`
    /// bytes, each run a multiple of 4), `b` has the panels `first_panel..first_panel +
    /// panels`, the store holds `rows x 16·panels` (sums: contiguous; dequantized: rows `ldo`
    /// apart, `(rows - 1)·ldo + 16·panels` values) and its factors, bias and zero point's
    /// sums (where given) `16·panels`.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub(super) unsafe fn vnni(
        (a, lda, runs): (*const u8, usize, Runs),
        rows: usize,
        b: &PackedInt8,
        (first_panel, panels): (usize, usize),
        store: Store,
    ) -> f32 {
        let stride = b.depth * PANEL;
        let mut max = _mm512_setzero_si512();
        let mut p = 0;
        while p < panels {
            let nv = if panels - p >= 4 { 4 } else { 1 };
            let w = b.panels_from(first_panel + p).as_ptr();
            for (r, mr) in row_groups(rows, 6) {
                // SAFETY: rows r..r+mr and panels p..p+nv are in bounds (caller's promise).
                unsafe {
                    let x = a.add(r * lda);
                    let col = p * PANEL;
                    let end = match store {
                        Store::Sums(out) => {
                            End::Sums(out.add(r * panels * PANEL + col), panels * PANEL)
                        }
                        Store::Dequantized {
                            out,
                            ldo,
                            dequantize,
                        } => End::Dequantized {
                            out: out.add(r * ldo + col),
                            ldo,
                            factors: dequantize.factors.as_ptr().add(col),
                            bias: dequantize.bias.as_ptr().add(col),
                            onto: dequantize.onto,
                            relu: dequantize.relu,
                            zero_sums: dequantize
                                .zero_sums
                                .map_or(std::ptr::null(), |z| z.as_ptr().add(col)),
                        },
                    };
                    let tile_max = if nv == 4 {
                        by_rows!(mr, vnni_tile, nv = 4, (x, lda, w, stride, runs, end), [1 2 3 4 5 6])
                    } else {
                        by_rows!(mr, vnni_tile, nv = 1, (x, lda, w, stride, runs, end), [1 2 3 4 5 6])
                    };
                    max = _mm512_max_epu32(max, tile_max);
                }
            }
            p += nv;
        }
        // The values are ≥ 0 (after the ReLU) where a maximum is kept: their bits order them.
        f32::from_bits(_mm512_reduce_max_epu32(max))
    }

    /// One tile's end, at its first row and column.
    #[derive(Clone, Copy)]
    enum End {
        Sums(*mut i32, usize),
        Dequantized {
            out: *mut f32,
            ldo: usize,
            factors: *const f32,
            bias: *const f32,
            onto: bool,
            relu: bool,
            /// Null for an input without a zero point.
            zero_sums: *const i32,
        },
    }

    #[target_feature(enable = "avx512f,avx512vnni")]
    unsafe fn vnni_tile<const MR: usize, const NV: usize>(
        a: *const u8,
        lda: usize,
        w: *const i8,
        panel_stride: usize,
        Runs { count, len, stride }: Runs,
        end: End,
    ) -> __m512i {
        // The sums start from minus what a signed input's zero point adds to them: the same
        // integers as taking it off at the end.
        let mut start = [_mm512_setzero_si512(); NV];
        if let End::Dequantized { zero_sums, .. } = end
            && !zero_sums.is_null()
        {
            for (v, start) in start.iter_mut().enumerate() {
                // SAFETY: 16 columns of the zero point's sums (caller's promise).
                let z = unsafe { _mm512_loadu_si512(zero_sums.add(v * PANEL).cast()) };
                *start = _mm512_sub_epi32(_mm512_setzero_si512(), z);
            }
        }
        let mut acc = [start; MR];
        let mut wv = [_mm512_setzero_si512(); NV];
        for run in 0..count {
            // The run's bytes of each row, and its groups of weights (the runs', in order).
            let (a, w) = unsafe { (a.add(run * stride), w.add(run * len * PANEL)) };
            for g in 0..len / 4 {
                for (v, wv) in wv.iter_mut().enumerate() {
                    // SAFETY: panel v's group g of the run (caller's promise).
                    *wv = unsafe { _mm512_loadu_si512(w.add(v * panel_stride + g * 64).cast()) };
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: 4 bytes of row r's run (caller's promise).
                    let x = unsafe { a.add(r * lda + 4 * g).cast::<i32>().read_unaligned() };
                    let x = _mm512_set1_epi32(x);
                    for (acc, &wv) in acc.iter_mut().zip(&wv) {
                        *acc = _mm512_dpbusd_epi32(*acc, x, wv);
                    }
                }
            }
        }
        let mut max = _mm512_setzero_si512();
        for (r, acc) in acc.iter().enumerate() {
            for (v, &acc) in acc.iter().enumerate() {
                // SAFETY: 16 columns of row r, of the factors and of the bias (caller's
                // promise).
                unsafe {
                    match end {
                        End::Sums(out, ldo) => {
                            _mm512_storeu_si512(out.add(r * ldo + v * PANEL).cast(), acc)
                        }
                        End::Dequantized {
                            out,
                            ldo,
                            factors,
                            bias,
                            onto,
                            relu,
                            ..
                        } => {
                            // `quantized::finish`'s steps and roundings: a product, then sums.
                            let o = out.add(r * ldo + v * PANEL);
                            let factor = _mm512_loadu_ps(factors.add(v * PANEL));
                            let mut y = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), factor);
                            y = _mm512_add_ps(y, _mm512_loadu_ps(bias.add(v * PANEL)));
                            if onto {
                                y = _mm512_add_ps(y, _mm512_loadu_ps(o));
                            }
                            if relu {
                                // As `if v > 0.0 { v } else { 0.0 }`: `max` returns its second
                                // operand for a NaN or two zeros.
                                y = _mm512_max_ps(y, _mm512_setzero_ps());
                                max = _mm512_max_epu32(max, _mm512_castps_si512(y));
                            }
                            _mm512_storeu_ps(o, y);
                        }
                    }
                }
            }
        }
        max
    }

    /// Tiles of 2 rows x 1 panel: bytes widened to i16, `vpmaddwd` multiplies pairs.
    ///
    /// # Safety
    /// AVX2; as [`vnni`].
    pub(super) unsafe fn avx2(
        a: *const u8,
        lda: usize,
        rows: usize,
        b: &PackedInt8,
        first_panel: usize,
        panels: usize,
        out: &mut [i32],
    ) {
        let (groups, ldo) = (b.depth / 4, panels * PANEL);
        for p in 0..panels {
            let w = b.panel(first_panel + p).as_ptr();
            for (r, mr) in row_groups(rows, 2) {
                // SAFETY: rows r..r+mr of panel p are in bounds (caller's promise).
                unsafe {
                    let (x, o) = (a.add(r * lda), out.as_mut_ptr().add(r * ldo + p * PANEL));
                    by_rows!(mr, avx2_tile, (x, lda, w, groups, o, ldo), [1 2]);
                }
            }
        }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn avx2_tile<const MR: usize>(
        a: *const u8,
        lda: usize,
        w: *const i8,
        groups: usize,
        out: *mut i32,
        ldo: usize,
    ) {
        // acc[r][j]: columns 4j..4j+4, two partial sums each (depth rows 0-1 and 2-3 of a group).
        let mut acc = [[_mm256_setzero_si256(); 4]; MR];
        let mut wv = [_mm256_setzero_si256(); 4];
        for g in 0..groups {
            for (j, wv) in wv.iter_mut().enumerate() {
                // SAFETY: 16 bytes of the panel's group g (caller's promise).
                let bytes = unsafe { _mm_loadu_si128(w.add(g * 64 + 16 * j).cast()) };
                *wv = _mm256_cvtepi8_epi16(bytes);
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: 4 bytes of row r (caller's promise).
                let x = unsafe { a.add(r * lda + 4 * g).cast::<i32>().read_unaligned() };
                // [x0, x1, x2, x3] as i16, four times.
                let x = _mm256_broadcastq_epi64(_mm_cvtepu8_epi16(_mm_cvtsi32_si128(x)));
                for (acc, &wv) in acc.iter_mut().zip(&wv) {
                    *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(x, wv));
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (j, &acc) in acc.iter().enumerate() {
                let mut lanes = [0i32; 8];
                // SAFETY: a local array of 8 i32.
                unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc) };
                for c in 0..4 {
                    // SAFETY: column 4j+c of row r (caller's promise).
                    unsafe { *out.add(r * ldo + 4 * j + c) = lanes[2 * c] + lanes[2 * c + 1] };
                }
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm {
    use core::arch::wasm32::*;

    use super::{PANEL, PackedInt8, row_groups};

    /// Tiles of 2 rows x 8 columns (half a panel): 8 accumulators, within the 16 registers
    /// browsers map SIMD128 onto.
    ///
    /// # Safety
    /// As for the VNNI kernel (`x86::vnni`), without its instructions.
    pub(super) unsafe fn simd128(
        a: *const u8,
        lda: usize,
        rows: usize,
        b: &PackedInt8,
        first_panel: usize,
        panels: usize,
        out: &mut [i32],
    ) {
        let (groups, ldo) = (b.depth / 4, panels * PANEL);
        for p in 0..panels {
            for half in 0..2 {
                let w = b.panel(first_panel + p)[half * 32..].as_ptr();
                for (r, mr) in row_groups(rows, 2) {
                    // SAFETY: rows r..r+mr, 8 columns of panel p (caller's promise).
                    unsafe {
                        let x = a.add(r * lda);
                        let o = out.as_mut_ptr().add(r * ldo + p * PANEL + half * 8);
                        by_rows!(mr, simd128_tile, (x, lda, w, groups, o, ldo), [1 2]);
                    }
                }
            }
        }
    }

    /// Tiles of 2 rows x 16 columns: 8 accumulators, 4 weight vectors and the broadcast row,
    /// within the 16 registers browsers map SIMD128 onto (3-row tiles spill: the page's
    /// backbone took 50–55 ms on two threads with them, 34–36 ms with these). Each
    /// `relaxed_dot` multiplies 4 columns x 4 depth bytes, as `vpdpbusd` does 16 columns (the
    /// panels' layout is VNNI's).
    ///
    /// # Safety
    /// As for the VNNI kernel (`x86::vnni`); every activation byte ≤ 127.
    #[cfg(lucy_relaxed_simd)]
    #[target_feature(enable = "relaxed-simd")]
    pub(super) unsafe fn relaxed(
        a: *const u8,
        lda: usize,
        rows: usize,
        b: &PackedInt8,
        first_panel: usize,
        panels: usize,
        out: &mut [i32],
    ) {
        let (groups, ldo) = (b.depth / 4, panels * PANEL);
        for p in 0..panels {
            let w = b.panel(first_panel + p).as_ptr();
            for (r, mr) in row_groups(rows, 2) {
                // SAFETY: rows r..r+mr of panel p (caller's promise).
                unsafe {
                    let x = a.add(r * lda);
                    let o = out.as_mut_ptr().add(r * ldo + p * PANEL);
                    by_rows!(mr, relaxed_tile, (x, lda, w, groups, o, ldo), [1 2]);
                }
            }
        }
    }

    #[cfg(lucy_relaxed_simd)]
    #[target_feature(enable = "relaxed-simd")]
    #[inline]
    unsafe fn relaxed_tile<const MR: usize>(
        a: *const u8,
        lda: usize,
        w: *const i8,
        groups: usize,
        out: *mut i32,
        ldo: usize,
    ) {
        let mut acc = [[i32x4_splat(0); 4]; MR];
        for g in 0..groups {
            let mut wv = [i32x4_splat(0); 4];
            for (j, wv) in wv.iter_mut().enumerate() {
                // SAFETY: columns 4j..4j+4 of the panel's group g (caller's promise).
                *wv = unsafe { v128_load(w.add(g * 64 + 16 * j).cast()) };
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: 4 bytes of row r (caller's promise), each ≤ 127.
                let x = unsafe { a.add(r * lda + 4 * g).cast::<u32>().read_unaligned() };
                let x = u32x4_splat(x);
                for (acc, &wv) in acc.iter_mut().zip(&wv) {
                    *acc = i32x4_relaxed_dot_i8x16_i7x16_add(wv, x, *acc);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (j, &acc) in acc.iter().enumerate() {
                // SAFETY: columns 4j..4j+4 of row r (caller's promise).
                unsafe { v128_store(out.add(r * ldo + 4 * j).cast(), acc) };
            }
        }
    }

    #[inline(always)]
    unsafe fn simd128_tile<const MR: usize>(
        a: *const u8,
        lda: usize,
        w: *const i8,
        groups: usize,
        out: *mut i32,
        ldo: usize,
    ) {
        // acc[r][j]: columns 2j and 2j+1, two partial sums each.
        let mut acc = [[i32x4_splat(0); 4]; MR];
        for g in 0..groups {
            // SAFETY: 32 bytes (8 columns) of the panel's group g (caller's promise).
            let (lo, hi) = unsafe {
                let p = w.add(g * 64);
                (v128_load(p.cast()), v128_load(p.add(16).cast()))
            };
            let wv = [
                i16x8_extend_low_i8x16(lo),
                i16x8_extend_high_i8x16(lo),
                i16x8_extend_low_i8x16(hi),
                i16x8_extend_high_i8x16(hi),
            ];
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: 4 bytes of row r (caller's promise).
                let x = unsafe { a.add(r * lda + 4 * g).cast::<u32>().read_unaligned() };
                // [x0, x1, x2, x3] as i16, twice.
                let x = u16x8_extend_low_u8x16(u32x4_splat(x));
                for (acc, &wv) in acc.iter_mut().zip(&wv) {
                    *acc = i32x4_add(*acc, i32x4_dot_i16x8(x, wv));
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (j, &acc) in acc.iter().enumerate() {
                let pairs = [
                    i32x4_extract_lane::<0>(acc) + i32x4_extract_lane::<1>(acc),
                    i32x4_extract_lane::<2>(acc) + i32x4_extract_lane::<3>(acc),
                ];
                for (c, sum) in pairs.into_iter().enumerate() {
                    // SAFETY: column 2j+c of row r (caller's promise).
                    unsafe { *out.add(r * ldo + 2 * j + c) = sum };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel this CPU has gives exactly the plain sum, at every row and panel remainder.
    #[test]
    fn kernels_compute_exact_sums() {
        let available: Vec<_> = Int8Kernel::ALL
            .into_iter()
            .filter(|k| k.available())
            .collect();
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512vnni") {
            assert_eq!(
                available,
                [Int8Kernel::Vnni512, Int8Kernel::Avx2, Int8Kernel::Portable]
            );
        }
        for (rows, depth, cols, lda_pad) in [
            (1, 4, 16, 0),
            (7, 36, 80, 3),
            (13, 8, 112, 0),
            (6, 264, 64, 5),
        ] {
            let lda = depth + lda_pad;
            let w = |k: usize, c: usize| ((k * 31 + c * 17) % 255) as i32 - 127;
            let kn: Vec<i8> = (0..depth * cols)
                .map(|i| w(i / cols, i % cols) as i8)
                .collect();
            let b = PackedInt8::pack(depth, cols, &kn);
            // All the columns, then all but the first panel.
            for (first, panels) in [(0, cols / PANEL), (1, cols / PANEL - 1)] {
                for &kernel in &available {
                    // Activations over the kernel's whole range (7 bits for relaxed SIMD).
                    let range = kernel.activation_max() as usize + 1;
                    let a: Vec<u8> = (0..rows * lda).map(|i| (i * 37 % range) as u8).collect();
                    let expected: Vec<i32> = (0..rows * cols)
                        .map(|i| {
                            (0..depth)
                                .map(|k| a[i / cols * lda + k] as i32 * w(k, i % cols))
                                .sum()
                        })
                        .collect::<Vec<i32>>()
                        .chunks(cols)
                        .flat_map(|row| row[first * PANEL..].to_vec())
                        .collect();
                    let mut out = vec![i32::MIN; rows * panels * PANEL];
                    product(kernel, (&a, lda), rows, &b, (first, panels), &mut out);
                    assert_eq!(
                        out,
                        expected,
                        "{} {rows}x{depth}x{cols} from panel {first}",
                        kernel.name()
                    );
                }
            }
        }
        // The largest sums ResNet50 can make (255 x ±127 over 4608) do not overflow.
        let (depth, cols) = (4608, 16);
        let kn: Vec<i8> = (0..depth * cols)
            .map(|i| if i % 2 == 0 { 127 } else { -127 })
            .collect();
        let b = PackedInt8::pack(depth, cols, &kn);
        for &kernel in &available {
            let top = kernel.activation_max();
            let a = vec![top; depth];
            let mut out = vec![0; cols];
            product(kernel, (&a, depth), 1, &b, (0, 1), &mut out);
            let most = top as i32 * 127 * 4608;
            assert_eq!(out[..2], [most, -most], "{}", kernel.name());
        }
    }
}
