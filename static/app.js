// lucy's page: I/O and DOM only. Everything that must match native (verifying weights,
// decoding and preprocessing photos, the model, top-K) happens in Rust (src/web), through
// the `Lucy` object and `verify` exported by the wasm module.

const CACHE_NAME = "lucy-weights-v1";
const TOP_K = 5;
const WEBGPU_TIMEOUT_MS = 180_000; // a software adapter can take a minute per photo

const $ = (id) => document.getElementById(id);
const state = {
  engine: null, // the model's worker: { worker, call(op, args) }
  backend: null, // "webgpu" or "cpu", as the worker reports it
  labels: [], // the current head's labels
  manifest: null, // parsed manifest.json
  manifestBytes: null,
  backbone: null, // verified int8 backbone bytes (kept for a CPU fallback)
  headBytes: null, // the current head file
  diskHeads: new Map(), // heads loaded from disk this session: name → bytes
  headName: "imagenet",
  busy: false,
  camera: null, // { stream, running, frames, since }
};

// ---------- status, errors -------------------------------------------------------------

function setStatus(text) {
  $("status").textContent = text;
}

function showError(title, detail) {
  const card = resultCard(title);
  card.classList.add("error");
  const p = document.createElement("p");
  p.textContent = detail;
  card.append(p);
  return card;
}

function errorText(e) {
  if (e instanceof Error) return e.message;
  return String(e);
}

// ---------- weights: fetch with progress, verify in Rust, keep in the Cache API --------

function fileUrl(name) {
  return new URL(`weights/${name}`, document.baseURI).href;
}

function cacheKey(name) {
  // The sha256 in the key: a new bundle never reads an old file.
  return `${fileUrl(name)}?sha256=${state.manifest.files[name].sha256}`;
}

async function fetchManifest() {
  const url = fileUrl("manifest.json");
  try {
    const response = await fetch(url, { cache: "no-cache" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    const cache = await openCache();
    if (cache) await cache.put(url, new Response(bytes));
    return bytes;
  } catch (e) {
    // Offline: the manifest from the last visit.
    const cache = await openCache();
    const cached = cache && (await cache.match(url));
    if (cached) return new Uint8Array(await cached.arrayBuffer());
    throw new Error(`the weights manifest could not be loaded (${errorText(e)}); is weights/manifest.json served next to the page?`);
  }
}

async function openCache() {
  try {
    return "caches" in self ? await caches.open(CACHE_NAME) : null;
  } catch {
    return null; // e.g. an insecure context: still works, without the cache
  }
}

/// Bytes of a bundle file: from the Cache API when present and intact, else the network.
async function loadFile(name, progress) {
  const cache = await openCache();
  const key = cacheKey(name);
  if (cache) {
    const cached = await cache.match(key);
    if (cached) {
      const bytes = new Uint8Array(await cached.arrayBuffer());
      try {
        await state.engine.call("verify", { manifest: state.manifestBytes, file: name, bytes });
        progress(bytes.length);
        return bytes;
      } catch (e) {
        console.warn(`cached ${name} is damaged (${errorText(e)}); fetching it again`);
        await cache.delete(key);
      }
    }
  }
  const bytes = await download(fileUrl(name), progress);
  await state.engine.call("verify", { manifest: state.manifestBytes, file: name, bytes }); // a clear error
  if (cache) await cache.put(key, new Response(bytes));
  return bytes;
}

async function download(url, progress) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const reader = response.body.getReader();
  const chunks = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    received += value.length;
    progress(received);
  }
  const bytes = new Uint8Array(received);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

async function loadFiles(names) {
  const sizes = names.map((n) => state.manifest.files[n].size_bytes);
  const total = sizes.reduce((a, b) => a + b, 0);
  const done = names.map(() => 0);
  const bar = $("download");
  bar.max = total;
  bar.hidden = false;
  const update = () => {
    const got = done.reduce((a, b) => a + b, 0);
    bar.value = got;
    setStatus(`Loading weights: ${(got / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB`);
  };
  const files = await Promise.all(
    names.map((name, i) =>
      loadFile(name, (n) => {
        done[i] = n;
        update();
      }),
    ),
  );
  bar.hidden = true;
  return files;
}

// ---------- the model, in a worker ------------------------------------------------------
// The model runs in static/worker.js (one request at a time, in order), so the page keeps
// painting and taking input while the CPU backend computes.

function startEngine() {
  const worker = new Worker(new URL("worker.js", document.baseURI), { type: "module" });
  const pending = new Map();
  let next = 0;
  worker.onmessage = ({ data }) => {
    const { resolve, reject } = pending.get(data.id);
    pending.delete(data.id);
    if ("error" in data) {
      const error = new Error(data.error);
      error.input = data.input;
      reject(error);
    } else resolve(data.result);
  };
  worker.onerror = (e) => {
    for (const { reject } of pending.values()) reject(new Error(`the model stopped: ${e.message}`));
    pending.clear();
  };
  const call = (op, args = {}) =>
    new Promise((resolve, reject) => {
      const id = next++;
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, op, args });
    });
  // The wasm-bindgen module and the wasm file Trunk built, as the page references them.
  const js = document.querySelector('link[rel="modulepreload"]').href;
  const wasm = document.querySelector('link[rel="preload"][as="fetch"]').href;
  const ready = call("init", { js, wasm });
  return { worker, call: (op, args) => ready.then(() => call(op, args)) };
}

/// The model on `backend` in the current worker, from the bytes already verified.
async function createModel(backend) {
  const { backend: running, labels } = await state.engine.call("create", {
    backbone: state.backbone,
    head: state.headBytes,
    backend,
  });
  state.backend = running;
  state.labels = labels;
  showBackend();
}

// ---------- backend ----------------------------------------------------------------------

async function webgpuAvailable() {
  if (!("gpu" in navigator)) return false;
  try {
    return (await navigator.gpu.requestAdapter()) !== null;
  } catch {
    return false;
  }
}

async function chooseBackend() {
  const forced = new URLSearchParams(location.search).get("backend");
  if (forced === "cpu") return "cpu";
  if (forced === "webgpu") return "webgpu";
  return (await webgpuAvailable()) ? "webgpu" : "cpu";
}

function showBackend() {
  const badge = $("backend");
  const backend = state.backend;
  badge.textContent = backend === "webgpu" ? "WebGPU" : "CPU (wasm)";
  badge.dataset.backend = backend;
}

/// WebGPU failed in the middle of a session (device lost, a shader error, no answer): drop
/// that worker, rebuild on the CPU in a fresh one from the verified bytes we hold, carry on.
async function fallBackToCpu(reason) {
  if (state.backend === "cpu") return;
  if (!state.fallback) {
    console.warn(`WebGPU failed (${reason}); switching to the CPU backend`);
    state.engine.worker.terminate();
    state.engine = startEngine();
    state.fallback = createModel("cpu").finally(() => (state.fallback = null));
  }
  await state.fallback;
}

function withTimeout(promise, ms) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer after ${ms / 1000} s`)), ms)),
  ]);
}

/// Classify photo bytes or camera pixels; on WebGPU, a failure that is not the photo's moves
/// the session to the CPU and retries.
async function classify(op, args) {
  const onGpu = state.backend === "webgpu";
  try {
    const run = state.engine.call(op, { ...args, top: TOP_K });
    return await (onGpu ? withTimeout(run, WEBGPU_TIMEOUT_MS) : run);
  } catch (e) {
    if (!onGpu || e.input) throw e;
    await fallBackToCpu(errorText(e));
    return state.engine.call(op, { ...args, top: TOP_K });
  }
}

// ---------- heads -------------------------------------------------------------------------

async function headBytes(name) {
  const entry = state.manifest.heads.find((h) => h.name === name);
  const [bytes] = await loadFiles([entry.file]);
  return bytes;
}

function fillHeadSelector() {
  const select = $("head");
  select.replaceChildren();
  for (const head of state.manifest.heads) {
    const option = document.createElement("option");
    option.value = head.name;
    // The manifest lists names and files; a head's labels live in its file (shown once loaded).
    option.textContent = head.name === "imagenet" ? "ImageNet (1000 classes)" : head.name;
    select.append(option);
  }
  select.value = state.headName;
}

/// Switch to a head: one from the manifest, or one loaded from disk earlier (by name).
async function selectHead(name) {
  try {
    const fromDisk = state.diskHeads.get(name);
    const bytes = fromDisk ?? (await headBytes(name));
    const file = fromDisk ? name : state.manifest.heads.find((h) => h.name === name).file;
    state.labels = await state.engine.call("setHead", { file, bytes });
    state.headName = name;
    state.headBytes = bytes;
    setStatus(`Head: ${name} (${state.labels.join(" / ").slice(0, 120)})`);
  } catch (e) {
    showError("That head could not be loaded", errorText(e));
  }
  $("head").value = state.headName; // the selector always shows the head in use
}

async function loadHeadFile(file) {
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    state.labels = await state.engine.call("setHead", { file: file.name, bytes });
    state.headName = file.name;
    state.headBytes = bytes;
    if (!state.diskHeads.has(file.name)) {
      const option = document.createElement("option");
      option.value = file.name;
      option.textContent = `${file.name} (from disk)`;
      $("head").append(option);
    }
    state.diskHeads.set(file.name, bytes);
    $("head").value = file.name;
    setStatus(`Head from disk: ${file.name} (${state.labels.join(" / ")})`);
  } catch (e) {
    showError(`${file.name} is not a head for this model`, errorText(e));
  }
}

// ---------- results -----------------------------------------------------------------------

function resultCard(title, thumbnailUrl) {
  const card = document.createElement("article");
  card.className = "result";
  if (thumbnailUrl) {
    const img = document.createElement("img");
    img.src = thumbnailUrl;
    img.alt = "";
    card.append(img);
  }
  const h = document.createElement("h3");
  h.textContent = title; // never HTML: file names and labels are text
  card.append(h);
  $("results").prepend(card); // newest first
  return card;
}

function bars(predictions) {
  const list = document.createElement("ol");
  list.className = "bars";
  for (const p of predictions) {
    const item = document.createElement("li");
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = p.label;
    const pct = document.createElement("span");
    pct.className = "pct";
    pct.textContent = `${(100 * p.probability).toFixed(1)} %`;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.max(0.5, 100 * p.probability)}%`;
    item.append(label, pct, bar);
    list.append(item);
  }
  return list;
}

// ---------- photos: picker, drag and drop, paste -------------------------------------------

async function classifyFiles(files) {
  for (const file of files) {
    const started = performance.now();
    const thumbnail = file.type.startsWith("image/") ? URL.createObjectURL(file) : null;
    try {
      const predictions = await classify("classifyBytes", { bytes: new Uint8Array(await file.arrayBuffer()) });
      const card = resultCard(file.name || "pasted photo", thumbnail);
      card.dataset.top1 = predictions[0].label;
      card.append(bars(predictions));
      const time = document.createElement("p");
      time.className = "time";
      time.textContent = `${Math.round(performance.now() - started)} ms on ${state.backend}`;
      card.append(time);
    } catch (e) {
      showError(`${file.name || "pasted file"} could not be classified`, errorText(e));
    }
  }
}

function setUpInputs() {
  $("files").addEventListener("change", (e) => {
    classifyFiles([...e.target.files]);
    e.target.value = "";
  });
  $("head-file").addEventListener("change", (e) => {
    if (e.target.files[0]) loadHeadFile(e.target.files[0]);
    e.target.value = "";
  });
  $("head").addEventListener("change", (e) => selectHead(e.target.value));
  const drop = $("drop");
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const type of ["dragleave", "drop"]) drop.addEventListener(type, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    classifyFiles([...e.dataTransfer.files]);
  });
  document.addEventListener("paste", (e) => {
    const files = [...e.clipboardData.items].filter((i) => i.kind === "file").map((i) => i.getAsFile());
    if (files.length) classifyFiles(files);
  });
}

// ---------- camera ------------------------------------------------------------------------

async function listCameras() {
  const select = $("camera");
  try {
    const devices = await navigator.mediaDevices.enumerateDevices();
    const cameras = devices.filter((d) => d.kind === "videoinput");
    select.replaceChildren();
    for (const [value, text] of [
      ["environment", "back camera"],
      ["user", "front camera"],
    ]) {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = text;
      select.append(option);
    }
    cameras.forEach((camera, i) => {
      const option = document.createElement("option");
      option.value = `device:${camera.deviceId}`;
      option.textContent = camera.label || `camera ${i + 1}`;
      select.append(option);
    });
  } catch {
    /* no camera API: start will say so */
  }
}

async function startCamera() {
  if (!navigator.mediaDevices?.getUserMedia) {
    showError("No camera", "This browser does not offer camera access (it needs https or localhost).");
    return;
  }
  $("camera-start").disabled = true; // no second stream from a double click
  const choice = $("camera").value || "environment";
  const video = choice.startsWith("device:")
    ? { deviceId: { exact: choice.slice(7) } }
    : { facingMode: choice };
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video, audio: false });
    const element = $("video");
    element.srcObject = stream;
    await element.play();
    const camera = { stream, running: true, frames: 0, since: performance.now() };
    state.camera = camera;
    $("camera-stop").disabled = false;
    $("live").hidden = false;
    listCameras(); // labels appear once permission is granted
    cameraLoop(camera);
  } catch (e) {
    $("camera-start").disabled = false;
    const denied = e && (e.name === "NotAllowedError" || e.name === "SecurityError");
    const missing = e && (e.name === "NotFoundError" || e.name === "OverconstrainedError");
    showError(
      denied ? "Camera permission denied" : missing ? "No camera found" : "The camera could not start",
      denied
        ? "Allow camera access for this site in the browser's settings, then press Start again."
        : missing
          ? "Connect a camera or choose another one, then press Start again."
          : errorText(e),
    );
  }
}

function stopCamera() {
  if (!state.camera) return;
  state.camera.running = false;
  state.camera.stream.getTracks().forEach((t) => t.stop());
  state.camera = null;
  $("video").srcObject = null;
  $("camera-start").disabled = false;
  $("camera-stop").disabled = true;
}

/// Classify the newest frame whenever the model is free: never a queue of frames. Paused
/// while the tab is hidden.
async function cameraLoop(camera) {
  const video = $("video");
  const canvas = document.createElement("canvas");
  const context = canvas.getContext("2d", { willReadFrequently: true });
  while (camera.running) {
    if (document.hidden || state.busy || video.videoWidth === 0) {
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    context.drawImage(video, 0, 0);
    const pixels = context.getImageData(0, 0, canvas.width, canvas.height);
    state.busy = true;
    try {
      const rgba = new Uint8Array(pixels.data.buffer);
      const [top] = await classify("classifyRgba", { rgba, width: pixels.width, height: pixels.height });
      if (!camera.running) break;
      camera.frames += 1;
      const seconds = (performance.now() - camera.since) / 1000;
      $("live-label").textContent = `${top.label} ${(100 * top.probability).toFixed(0)} %`;
      $("live-fps").textContent = `${(camera.frames / seconds).toFixed(1)} frames/s`;
      $("live").dataset.frames = camera.frames;
    } catch (e) {
      $("live-label").textContent = `error: ${errorText(e)}`;
    } finally {
      state.busy = false;
    }
    // A short pause between frames: the worker never queues frames, and the page stays calm.
    await new Promise((r) => setTimeout(r, 30));
  }
}

function setUpCamera() {
  $("camera-start").addEventListener("click", startCamera);
  $("camera-stop").addEventListener("click", stopCamera);
  // Frames per second are counted from when the tab was last shown.
  document.addEventListener("visibilitychange", () => {
    if (state.camera) {
      state.camera.since = performance.now();
      state.camera.frames = 0;
    }
  });
  listCameras();
}

// ---------- start -------------------------------------------------------------------------

async function start() {
  window.lucyState = state; // for the browser tests and benchmarks
  try {
    state.engine = startEngine(); // it verifies the weights as they arrive, then runs the model
    setStatus("Loading the weights manifest…");
    state.manifestBytes = await fetchManifest();
    state.manifest = JSON.parse(new TextDecoder().decode(state.manifestBytes));
    const backend = await chooseBackend();
    const head = state.manifest.heads.find((h) => h.name === state.headName);
    const started = performance.now();
    const [backbone, headFile] = await loadFiles([state.manifest.backbones.int8, head.file]);
    state.backbone = backbone;
    state.headBytes = headFile;
    setStatus(`Preparing the model on ${backend === "webgpu" ? "WebGPU" : "the CPU"}…`);
    await createModel(backend);
    fillHeadSelector();
    setUpInputs();
    setUpCamera();
    document.body.dataset.ready = "true";
    setStatus(`Ready in ${((performance.now() - started) / 1000).toFixed(1)} s. Choose photos, drop them here, paste one, or start the camera.`);
  } catch (e) {
    document.body.dataset.ready = "error";
    setStatus("lucy could not start.");
    showError("lucy could not start", errorText(e));
  }
}

// Offline: the app shell from the service worker, the weights from the Cache API.
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("sw.js").catch((e) => console.warn(`no offline support: ${errorText(e)}`));
}

start();
