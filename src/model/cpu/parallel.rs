//! Where native and browser builds differ in how the CPU backbone runs (the int8 kernels'
//! instructions differ too: `dot`, `simd`): natively every
//! pass runs on all cores (rayon); in the browser, one by one (no threads without cross-origin
//! isolation).

/// Output pixels per parallel task in the passes around the products: enough work to be worth
/// a task, few enough that the last stage (7x7 pixels) still splits across cores.
pub(super) const ROWS_PER_TASK: usize = 16;

/// Run `f(chunk, index)` over `data` in chunks of `len`: on all cores natively, in order in
/// the browser (no threads without cross-origin isolation).
pub(super) fn for_each_chunk<T: Send>(
    data: &mut [T],
    len: usize,
    f: impl Fn(&mut [T], usize) + Send + Sync,
) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        data.par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, chunk)| f(chunk, i));
    }
    #[cfg(target_arch = "wasm32")]
    data.chunks_mut(len)
        .enumerate()
        .for_each(|(i, chunk)| f(chunk, i));
}

/// `f` of every item, in order: computed on all cores natively, one by one in the browser.
pub(super) fn map_items<T: Send, U: Send>(
    items: Vec<T>,
    f: impl Fn(T) -> U + Send + Sync,
) -> Vec<U> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        items.into_par_iter().map(f).collect()
    }
    #[cfg(target_arch = "wasm32")]
    items.into_iter().map(f).collect()
}

/// Run `f` on every item: on all cores natively, in order in the browser.
pub(super) fn for_each_item<T: Send>(items: Vec<T>, f: impl Fn(T) + Send + Sync) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        items.into_par_iter().for_each(f);
    }
    #[cfg(target_arch = "wasm32")]
    items.into_iter().for_each(f);
}

pub(super) fn threads() -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    return rayon::current_num_threads();
    #[cfg(target_arch = "wasm32")]
    return 1;
}
