//! Activations between layers, channels-last, and the pool of spare buffers they live in;
//! the 16-bit form the int8 layers keep theirs in ([`Bf16`]).

use super::parallel::for_each_chunk;

/// `n` images of `h` x `w` pixels with `c` channels, channels-last: `data[((b·h + y)·w + x)·c + ch]`.
/// f32, or [`Bf16`] between int8 layers.
#[derive(Debug)]
pub(super) struct Activations<T: Pooled = f32> {
    pub(super) n: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) c: usize,
    pub(super) data: Vec<T>,
}

impl<T: Pooled> Activations<T> {
    /// The same shape holding `data`.
    pub(super) fn with_data<U: Pooled>(&self, data: Vec<U>) -> Activations<U> {
        assert_eq!(data.len(), self.data.len(), "a value per value");
        let (n, h, w, c) = (self.n, self.h, self.w, self.c);
        Activations { n, h, w, c, data }
    }
}

impl Activations<Bf16> {
    /// In f32 (exactly: every bf16 is an f32).
    pub(super) fn to_f32(&self) -> Activations {
        let mut data = buffer(self.data.len());
        for_each_chunk(&mut data, 1 << 14, |chunk, i| {
            let from = &self.data[i << 14..][..chunk.len()];
            chunk
                .iter_mut()
                .zip(from)
                .for_each(|(v, b)| *v = b.to_f32());
        });
        self.with_data(data)
    }
}

impl Activations {
    /// Rounded to [`Bf16`].
    pub(super) fn to_bf16(&self) -> Activations<Bf16> {
        let mut data = buffer(self.data.len());
        for_each_chunk(&mut data, 1 << 14, |chunk, i| {
            let from = &self.data[i << 14..][..chunk.len()];
            chunk
                .iter_mut()
                .zip(from)
                .for_each(|(b, &v)| *b = Bf16::round(v));
        });
        self.with_data(data)
    }

    pub(super) fn from_planar(planar: &[f32], n: usize, c: usize, h: usize, w: usize) -> Self {
        assert_eq!(planar.len(), n * c * h * w, "input size");
        let mut data = buffer(planar.len());
        // A task per row of pixels, on all cores. Three channels (a photo's) interleaved
        // pixel by pixel, which vectorizes; others each channel's row strided into place (an
        // index computed per value made this 0.2 ms, longer than the max-pool).
        for_each_chunk(&mut data, w * c, |row, index| {
            let (b, y) = (index / h, index % h);
            let src = &planar[b * c * h * w..][..c * h * w];
            let plane_row = |ch: usize| &src[(ch * h + y) * w..][..w];
            if c == 3 {
                let (r, g, bl) = (plane_row(0), plane_row(1), plane_row(2));
                for (pixel, ((&r, &g), &bl)) in row.chunks_exact_mut(3).zip(r.iter().zip(g).zip(bl))
                {
                    pixel.copy_from_slice(&[r, g, bl]);
                }
                return;
            }
            for ch in 0..c {
                for (value, &v) in row[ch..].iter_mut().step_by(c).zip(plane_row(ch)) {
                    *value = v;
                }
            }
        });
        Self { n, h, w, c, data }
    }
}

impl<T: Pooled> Drop for Activations<T> {
    fn drop(&mut self) {
        recycle(std::mem::take(&mut self.data));
    }
}

/// An activation in 16 bits: bfloat16, the top half of an f32's bits, rounded to nearest
/// (ties to even). The int8 layers' outputs (and so the residual stream between their blocks)
/// are kept in it: each is quantized to 8 bits by the layer that reads it, so 8 bits of
/// mantissa lose nothing that matters (top-1 agreement with f32 on the 353 catsdogs photos
/// went from 337 to 338), and the activations' bytes, which the int8 layers spent a good part
/// of their time reading and writing, halve. Every kernel rounds with the same integer steps
/// ([`Self::round_bits`]), so all give the same bits.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[repr(transparent)]
pub(super) struct Bf16(pub(super) u16);

impl Bf16 {
    /// `v`'s bits rounded to the nearest bf16 (ties to even), as an f32's: the low 16 bits
    /// zero. Integer steps (a NaN may become another NaN or an infinity), which vectorize
    /// everywhere and which the VNNI kernel repeats.
    #[inline(always)]
    pub(super) fn round_bits(v: f32) -> u32 {
        let bits = v.to_bits();
        bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) & 0xffff_0000
    }

    #[inline(always)]
    pub(super) fn round(v: f32) -> Self {
        Self((Self::round_bits(v) >> 16) as u16)
    }

    #[inline(always)]
    pub(super) fn to_f32(self) -> f32 {
        f32::from_bits(u32::from(self.0) << 16)
    }
}

/// Element types kept in the pools of spare buffers: f32 activations and im2col matrices,
/// their bf16 forms, and their quantized (u8) forms.
pub(super) trait Pooled: Copy + Default + Send + Sync + 'static {
    fn with_spare<R>(f: impl FnOnce(&mut Vec<Vec<Self>>) -> R) -> R;
}

thread_local! {
    /// Buffers of finished layers, for the same layers of the next photo: a photo passes
    /// through ~100 MB of activations and im2col matrices, and zeroing fresh memory for each
    /// cost more than the largest convolution.
    static SPARE: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
    static SPARE_U8: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
    static SPARE_BF16: std::cell::RefCell<Vec<Vec<Bf16>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Pooled for f32 {
    fn with_spare<R>(f: impl FnOnce(&mut Vec<Vec<Self>>) -> R) -> R {
        SPARE.with_borrow_mut(f)
    }
}

impl Pooled for u8 {
    fn with_spare<R>(f: impl FnOnce(&mut Vec<Vec<Self>>) -> R) -> R {
        SPARE_U8.with_borrow_mut(f)
    }
}

impl Pooled for Bf16 {
    fn with_spare<R>(f: impl FnOnce(&mut Vec<Vec<Self>>) -> R) -> R {
        SPARE_BF16.with_borrow_mut(f)
    }
}

/// At most this many spare bytes per element type (256 MB): the buffers of a forward pass
/// take ~26 MB at batch 1 and ~230 MB at batch 8 (training's batches, 15 % slower without
/// them).
const SPARE_BYTES_MAX: usize = 256 << 20;

/// `len` elements with arbitrary contents: every caller overwrites all of them.
pub(super) fn buffer<T: Pooled>(len: usize) -> Vec<T> {
    T::with_spare(|spare| match spare.iter().rposition(|b| b.len() == len) {
        Some(i) => spare.remove(i),
        None => vec![T::default(); len],
    })
}

/// Keep a buffer for [`buffer`], dropping the oldest ones beyond [`SPARE_BYTES_MAX`].
pub(super) fn recycle<T: Pooled>(buffer: Vec<T>) {
    let limit = SPARE_BYTES_MAX / size_of::<T>();
    if buffer.is_empty() || buffer.len() > limit {
        return;
    }
    T::with_spare(|spare| {
        let mut kept: usize = spare.iter().map(Vec::len).sum::<usize>() + buffer.len();
        while kept > limit {
            kept -= spare.remove(0).len();
        }
        spare.push(buffer);
    });
}

/// (image, row, column) of the `index`-th point of `n` images of `h` x `w`, images then rows.
pub(super) fn position(index: usize, h: usize, w: usize) -> (usize, usize, usize) {
    (index / (h * w), index / w % h, index % w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_ties_to_even() {
        let round = |bits: u32| Bf16::round(f32::from_bits(bits)).0;
        // Below, at and above half a step; a tie goes to the even neighbour.
        assert_eq!(round(0x3f80_7fff), 0x3f80);
        assert_eq!(round(0x3f80_8000), 0x3f80);
        assert_eq!(round(0x3f81_8000), 0x3f82);
        assert_eq!(round(0x3f80_8001), 0x3f81);
        // Negative values round their magnitude the same way.
        assert_eq!(round(0xbf81_8000), 0xbf82);
        // Past the largest bf16: infinity. Zeros and infinities stay.
        assert_eq!(round(f32::MAX.to_bits()), 0x7f80);
        assert_eq!(round(0), 0);
        assert_eq!(round(0x8000_0000), 0x8000);
        assert_eq!(round(f32::INFINITY.to_bits()), 0x7f80);
        assert!(Bf16::round(f32::NAN).to_f32().is_nan());
        // Every bf16 is an f32 exactly, and rounds back to itself.
        for b in [0u16, 1, 0x3f80, 0x4049, 0x7f7f, 0x8001, 0xc2f7] {
            assert_eq!(Bf16::round(Bf16(b).to_f32()), Bf16(b));
        }
        // `round_bits` is the rounded value as an f32's bits (1 + 2^-8: a tie, to 1).
        assert_eq!(Bf16::round_bits(1.0 + 1.0 / 256.0), 0x3f80_0000);
        assert_eq!(Bf16::round_bits(1.0 + 3.0 / 256.0), 0x3f82_0000);
    }

    #[test]
    fn activations_convert_to_bf16_and_back() {
        let x = Activations::from_planar(&[1.0, 3.3, -2.5, 1e-3], 1, 1, 2, 2);
        let back = x.to_bf16().to_f32();
        assert_eq!((back.n, back.h, back.w, back.c), (1, 2, 2, 1));
        for (b, v) in back.data.iter().zip(&x.data) {
            assert!((b - v).abs() <= v.abs() / 256.0, "{b} for {v}");
        }
        assert_eq!(back.data[0], 1.0);
        assert_eq!(back.data[2], -2.5);
    }
}
