//! Activations between layers, channels-last, and the pool of spare buffers they live in.

use super::parallel::for_each_chunk;

/// `n` images of `h` x `w` pixels with `c` channels, channels-last: `data[((b·h + y)·w + x)·c + ch]`.
#[derive(Debug)]
pub(super) struct Activations {
    pub(super) n: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) c: usize,
    pub(super) data: Vec<f32>,
}

impl Activations {
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

impl Drop for Activations {
    fn drop(&mut self) {
        recycle(std::mem::take(&mut self.data));
    }
}

/// Element types kept in the pools of spare buffers: f32 activations and im2col matrices,
/// and their quantized (u8) forms.
pub(super) trait Pooled: Copy + Default + 'static {
    fn with_spare<R>(f: impl FnOnce(&mut Vec<Vec<Self>>) -> R) -> R;
}

thread_local! {
    /// Buffers of finished layers, for the same layers of the next photo: a photo passes
    /// through ~100 MB of activations and im2col matrices, and zeroing fresh memory for each
    /// cost more than the largest convolution.
    static SPARE: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
    static SPARE_U8: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
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
