// The threaded model's worker (a module worker, started by the page only when it is
// cross-origin isolated: web::ui::engine). It imports wasm-bindgen's ES module of one of the
// two threaded builds (scripts/build_threads): int8 on relaxed SIMD where this browser
// validates relaxed-SIMD code, else on SIMD128 (or when the page names the worker "simd128",
// `?int8=simd128`). initThreadPool (wasm-bindgen-rayon) starts one Web Worker per core sharing
// the wasm memory, and rayon computes on them. A failure here is thrown outside the module's
// promise, so it reaches the page as the worker's `error` event; one inside a pool thread
// reaches nobody, so the page also gives up on a model that does not answer in time. Either
// way it falls back to one thread.

// A function doing i8x16.relaxed_swizzle: the probe of wasm-feature-detect (relaxedSimd).
const RELAXED_SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 15, 1, 13, 0, 65, 1, 253, 15, 65, 2, 253,
  15, 253, 128, 2, 11,
]);

try {
  const relaxed = self.name !== "simd128" && WebAssembly.validate(RELAXED_SIMD_PROBE);
  const model = await import(relaxed ? "./lucy-model-threads-relaxed.js" : "./lucy-model-threads.js");
  await model.default();
  await model.initThreadPool(navigator.hardwareConcurrency || 1);
  model.startWorker();
} catch (error) {
  setTimeout(() => {
    throw error;
  });
}
