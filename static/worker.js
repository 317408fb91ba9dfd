// lucy's model runs here, off the page's thread, so the page never freezes while the CPU
// backend computes. One request at a time, in order; the page talks to it by messages:
// { id, op, args } → { id, result } or { id, error, input } (input: the photo was the problem).
let bindings = null;
let lucy = null;
let queue = Promise.resolve();

const ops = {
  async init({ js, wasm }) {
    bindings = await import(js);
    await bindings.default({ module_or_path: wasm });
  },
  verify({ manifest, file, bytes }) {
    bindings.verify(manifest, file, bytes);
  },
  async create({ backbone, head, backend }) {
    lucy?.free();
    lucy = await bindings.Lucy.create(backbone, head, backend);
    return { backend: lucy.backend(), labels: lucy.labels() };
  },
  setHead({ file, bytes }) {
    lucy.set_head(file, bytes);
    return lucy.labels();
  },
  async classifyBytes({ bytes, top }) {
    return classify(() => bindings.prepare_bytes(bytes), top);
  },
  async classifyRgba({ rgba, width, height, top }) {
    return classify(() => bindings.prepare_rgba(rgba, width, height), top);
  },
  // For bench/browser_peers.mjs: the model alone on a photo prepared once, timed here, the
  // counterpart of onnxruntime-web's session.run on a prepared tensor.
  async timeInference({ bytes, runs }) {
    const prepared = bindings.prepare_bytes(bytes);
    try {
      const top1 = JSON.parse(await lucy.classify(prepared, 1))[0].index;
      const times = [];
      for (let i = 0; i < runs; i++) {
        const started = performance.now();
        await lucy.classify(prepared, 1);
        times.push(performance.now() - started);
      }
      return { top1, times };
    } finally {
      prepared.free();
    }
  },
};

class InputError extends Error {}

async function classify(prepare, top) {
  let prepared;
  try {
    prepared = prepare();
  } catch (e) {
    throw new InputError(e instanceof Error ? e.message : String(e));
  }
  try {
    return JSON.parse(await lucy.classify(prepared, top));
  } finally {
    prepared.free();
  }
}

onmessage = ({ data: { id, op, args } }) => {
  queue = queue.then(async () => {
    try {
      postMessage({ id, result: await ops[op](args) });
    } catch (e) {
      postMessage({ id, error: e instanceof Error ? e.message : String(e), input: e instanceof InputError });
    }
  });
};
