//! Where builds differ in how the CPU backbone runs (the int8 kernels' instructions differ
//! too: `dot`, `simd`): natively, and in the browser's threaded model (wasm with shared
//! memory, `threads` feature), every pass runs on all cores (rayon); in the plain browser
//! build, one by one (no threads without cross-origin isolation).

/// Output pixels per parallel task in the passes around the products: enough work to be worth
/// a task, few enough that the last stage (7x7 pixels) still splits across cores.
pub(super) const ROWS_PER_TASK: usize = 16;

pub use pool::*;

#[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
mod pool {
    use rayon::prelude::*;

    /// Run `f(chunk, index)` over `data` in chunks of `len`, on all cores.
    pub(in crate::model::cpu) fn for_each_chunk<T: Send>(
        data: &mut [T],
        len: usize,
        f: impl Fn(&mut [T], usize) + Send + Sync,
    ) {
        data.par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, chunk)| f(chunk, i));
    }

    /// `f` of every item, in order, computed on all cores.
    pub(in crate::model::cpu) fn map_items<T: Send, U: Send>(
        items: Vec<T>,
        f: impl Fn(T) -> U + Send + Sync,
    ) -> Vec<U> {
        items.into_par_iter().map(f).collect()
    }

    /// Run `f` on every item, on all cores.
    pub(in crate::model::cpu) fn for_each_item<T: Send>(
        items: Vec<T>,
        f: impl Fn(T) + Send + Sync,
    ) {
        items.into_par_iter().for_each(f);
    }

    /// The threads the CPU backbone's passes run on.
    pub fn threads() -> usize {
        rayon::current_num_threads()
    }
}

#[cfg(not(any(not(target_arch = "wasm32"), target_feature = "atomics")))]
mod pool {
    /// Run `f(chunk, index)` over `data` in chunks of `len`, in order.
    pub(in crate::model::cpu) fn for_each_chunk<T: Send>(
        data: &mut [T],
        len: usize,
        f: impl Fn(&mut [T], usize) + Send + Sync,
    ) {
        data.chunks_mut(len)
            .enumerate()
            .for_each(|(i, chunk)| f(chunk, i));
    }

    /// `f` of every item, in order.
    pub(in crate::model::cpu) fn map_items<T: Send, U: Send>(
        items: Vec<T>,
        f: impl Fn(T) -> U + Send + Sync,
    ) -> Vec<U> {
        items.into_iter().map(f).collect()
    }

    /// Run `f` on every item, in order.
    pub(in crate::model::cpu) fn for_each_item<T: Send>(
        items: Vec<T>,
        f: impl Fn(T) + Send + Sync,
    ) {
        items.into_iter().for_each(f);
    }

    /// The threads the CPU backbone's passes run on.
    pub fn threads() -> usize {
        1
    }
}
