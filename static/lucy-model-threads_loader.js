// The threaded model's worker (a module worker, started by the page only when it is
// cross-origin isolated: web::ui::engine). wasm-bindgen's ES module from scripts/build_threads;
// initThreadPool (wasm-bindgen-rayon) starts one Web Worker per core sharing the wasm memory,
// and rayon computes on them. A failure is thrown outside the module's promise, so it reaches
// the page as the worker's `error` event and the page falls back to one thread.
import init, { initThreadPool, startWorker } from "./lucy-model-threads.js";

try {
  await init();
  await initThreadPool(navigator.hardwareConcurrency || 1);
  startWorker();
} catch (error) {
  setTimeout(() => {
    throw error;
  });
}
