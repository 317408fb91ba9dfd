// lucy's page end to end: the built site (dist/), the real weights, real photos, headless
// Chromium from Debian (CPU backend, WebGPU on SwiftShader, a fake camera).
//
//   node --test --test-concurrency=1 tests/browser/page.test.mjs
//
// Screenshots go to tests/browser/output/ (look at them).

import { test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  assertClean, base, dist, fixtures, headFile, launch, openPage, output, requests, serveSite, shared, startServer, temporaryDir,
  upload, waitReady_,
} from "./harness.mjs";

serveSite();

const frenchie = path.join(shared, "willjobs_example_frenchbulldog.jpg");
const chelsea = path.join(fixtures, "skimage_chelsea_cat.png");
const coffee = path.join(fixtures, "skimage_coffee.png");

/// A y4m video (the fake camera's format) of a fixture photo, made with the browser's decoder.
async function photoVideo(photoName) {
  const context = await launch();
  try {
    const page = await context.newPage();
    await page.goto(base + "manifest.webmanifest");
    const planes = await page.evaluate(async (url) => {
      const img = new Image();
      img.src = url;
      await img.decode();
      const [w, h] = [320, 240];
      const canvas = new OffscreenCanvas(w, h);
      const ctx = canvas.getContext("2d");
      const scale = Math.max(w / img.width, h / img.height);
      ctx.drawImage(img, (w - img.width * scale) / 2, (h - img.height * scale) / 2, img.width * scale, img.height * scale);
      const rgba = ctx.getImageData(0, 0, w, h).data;
      const y = new Uint8Array(w * h), u = new Uint8Array(w * h / 4), v = new Uint8Array(w * h / 4);
      for (let j = 0; j < h; j++) for (let i = 0; i < w; i++) {
        const k = 4 * (j * w + i), [r, g, b] = [rgba[k], rgba[k + 1], rgba[k + 2]];
        y[j * w + i] = 0.299 * r + 0.587 * g + 0.114 * b;
        if (j % 2 === 0 && i % 2 === 0) {
          const c = (j / 2) * (w / 2) + i / 2;
          u[c] = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b;
          v[c] = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b;
        }
      }
      return [Array.from(y), Array.from(u), Array.from(v)];
    }, `/fixtures/${photoName}`);
    const frame = Buffer.concat([Buffer.from("FRAME\n"), ...planes.map((p) => Buffer.from(p))]);
    const file = path.join(os.tmpdir(), `lucy-${photoName}.y4m`);
    fs.writeFileSync(file, Buffer.concat([Buffer.from("YUV4MPEG2 W320 H240 F10:1 Ip A1:1 C420jpeg\n"), ...Array(10).fill(frame)]));
    return file;
  } finally {
    await context.close();
  }
}

/// Turn "Why?" on for `card`, pick the bar labelled `label`, and return the 7 x 7 map shown.
async function whyGrid(card, label) {
  if ((await card.locator("button.why").getAttribute("aria-pressed")) !== "true") await card.locator("button.why").click();
  await card.locator(".bars .label").getByText(label, { exact: true }).click();
  assert.equal(await card.getAttribute("data-why-label"), label);
  assert.equal(await card.locator("canvas.why-map").isVisible(), true);
  return JSON.parse(await card.getAttribute("data-why-grid"));
}

/// Share of a 7 x 7 map's mass in its left three columns and in its right three.
function leftRight(grid) {
  const total = grid.reduce((a, b) => a + b, 0) || 1;
  const side = (cols) => grid.filter((_, i) => cols.includes(i % 7)).reduce((a, b) => a + b, 0) / total;
  return [side([0, 1, 2]), side([4, 5, 6])];
}

function cosine(a, b) {
  const dot = a.reduce((s, x, i) => s + x * b[i], 0);
  const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  return dot / (norm(a) * norm(b));
}

/// The model's time per photo in the page's worker, plain and with the maps (median ms).
async function mapCost(page, runs) {
  return page.evaluate(async (runs) => {
    const photo = new Uint8Array(await (await fetch("/fixtures/skimage_chelsea_cat.png")).arrayBuffer());
    const median = (t) => t.sort((a, b) => a - b)[t.length >> 1];
    const plain = median((await window.wasmBindings.time_inference(photo, runs, false)).times);
    const withMaps = median((await window.wasmBindings.time_inference(photo, runs, true)).times);
    return { plain, withMaps };
  }, runs);
}

// ---------- tests ---------------------------------------------------------------------------

const MODEL_WASM = "/lucy/lucy-model_bg.wasm";
const THREADED_WASM = "/lucy/lucy-model-threads_bg.wasm";
const RELAXED_WASM = "/lucy/lucy-model-threads-relaxed_bg.wasm";

/// The badge of the CPU backend on `threads` threads.
function cpuBadge(threads) {
  return `CPU (wasm, int8, ${threads} thread${threads === 1 ? "" : "s"})`;
}

/// How the page's document came: "navigate", or "reload".
async function navigationType(page) {
  return page.evaluate(() => performance.getEntriesByType("navigation")[0].type);
}

/// The page is cross-origin isolated, and the CPU model computes on every core the browser has,
/// with `kernel` (Chromium has relaxed SIMD).
async function assertThreaded(page, kernel = "relaxed-simd") {
  const [isolated, cores] = await page.evaluate(() => [crossOriginIsolated, navigator.hardwareConcurrency]);
  assert.equal(isolated, true, "cross-origin isolated");
  assert.equal(await page.textContent("#backend"), cpuBadge(cores));
  assert.equal(await page.getAttribute("#backend", "data-threads"), String(cores));
  assert.equal(await page.getAttribute("#backend", "data-kernel"), kernel);
}

test("no WebGPU, a plain static host: one reload makes the page isolated (service worker), the threaded CPU model (relaxed SIMD) recognises the cat, its wasm fetched and compiled once, cached on the second visit", async () => {
  const dir = temporaryDir("lucy-chromium-");
  let context = await launch({ userDataDir: dir });
  try {
    requests.length = 0;
    const started = Date.now();
    const first = await openPage(context);
    const { page } = first;
    const firstLoadMs = Date.now() - started;
    await assertThreaded(page);
    // The page reloaded itself once (the service worker then served it with COOP/COEP).
    assert.equal(await navigationType(page), "reload");
    const weightRequests = requests.filter((r) => r.endsWith(".safetensors"));
    assert.ok(weightRequests.length >= 2, `first visit downloads the weights: ${weightRequests}`);

    const t0 = Date.now();
    const card = await upload(page, chelsea);
    const firstPhotoMs = Date.now() - t0;
    assert.equal(await card.getAttribute("data-top1"), "Egyptian_cat");
    assert.match(await card.textContent(), /Egyptian_cat\s*\d+\.\d %/);
    await page.screenshot({ path: path.join(output, "cpu-cat.png"), fullPage: true });
    console.log(`cpu, first visit: ready ${firstLoadMs} ms, first prediction ${firstLoadMs + firstPhotoMs} ms after opening the page`);

    // The threaded model is fetched once (by its worker, through the service worker, which
    // keeps it), compiled in its worker only: the page's thread compiles just its own. No
    // other model wasm is downloaded (the 31 MB WebGPU one, the SIMD128 threaded one).
    assert.deepEqual(requests.filter((r) => r.endsWith(".wasm") && r.includes("lucy-model")), [RELAXED_WASM]);
    const compiled = await page.evaluate(() => window.__wasmCompiled);
    assert.equal(compiled.length, 1, `the page compiled: ${compiled}`);
    assert.match(compiled[0], /lucy-page-[0-9a-f]+_bg\.wasm$/);

    // A text file named .jpg: a readable error, and the next photo still works.
    const bad = await upload(page, path.join(fixtures, "not-a-photo.jpg"));
    assert.match(await bad.getAttribute("class"), /error/);
    assert.match(await bad.textContent(), /not-a-photo\.jpg.*not recognised/s);
    const huge = await upload(page, path.join(fixtures, "huge-50000x50000.png"));
    assert.match(await huge.textContent(), /huge-50000x50000\.png.*too large/s);
    const t2 = Date.now();
    const next = await upload(page, coffee);
    console.log(`cpu: warm photo ${Date.now() - t2} ms`);
    assert.equal(await next.getAttribute("data-top1"), "espresso");
    await assertClean(page, first.errors);

    // Second visit, same browser profile: no weight and no model request reaches the server.
    await context.close();
    context = await launch({ userDataDir: dir });
    requests.length = 0;
    const t1 = Date.now();
    const second = await openPage(context);
    const cachedReadyMs = Date.now() - t1;
    const again = await upload(second.page, coffee);
    console.log(`cpu, cached visit: ready ${cachedReadyMs} ms, first prediction ${Date.now() - t1} ms after opening the page`);
    await assertThreaded(second.page);
    assert.deepEqual(requests.filter((r) => r.endsWith(".safetensors") || r.endsWith(".wasm")), []);
    assert.equal(await again.getAttribute("data-top1"), "espresso");
    await assertClean(second.page, second.errors);
  } finally {
    await context.close();
  }
});

test("without isolation (no service worker, a plain host) the page computes on one thread; a host sending COOP/COEP is isolated at once; 8-bit activations give the same answer on any thread count; 7-bit ones the same top-1, and relaxed SIMD's answer is SIMD128's on 7 bits", async () => {
  const answers = {};
  const answer = async (page) => (await upload(page, chelsea)).locator("ol").textContent();
  // 1. Service workers blocked: never isolated, the single-threaded model (SIMD128).
  let context = await launch({ serviceWorkers: "block" });
  try {
    requests.length = 0;
    const { page, errors } = await openPage(context);
    assert.equal(await page.evaluate(() => crossOriginIsolated), false);
    assert.equal(await page.textContent("#backend"), cpuBadge(1));
    assert.equal(await page.getAttribute("#backend", "data-kernel"), "simd128");
    assert.deepEqual(requests.filter((r) => r.endsWith(".wasm") && r.includes("lucy-model")), [MODEL_WASM]);
    answers.single = await answer(page);
    await assertClean(page, errors);
  } finally {
    await context.close();
  }
  // 2. A host that sends COOP/COEP (as scripts/serve does): isolated without a reload; then
  // ?int8=simd128 (threads on SIMD128) and ?threads=1 on the same isolated page, to compare.
  const isolating = await startServer({ isolating: true });
  context = await launch();
  try {
    const open = async (query) => openPage(context, query, { url: isolating.base, page: await context.newPage() });
    const relaxed = await open("");
    await assertThreaded(relaxed.page);
    assert.equal(await navigationType(relaxed.page), "navigate", "no reload");
    answers.relaxed = await answer(relaxed.page);
    const simd128 = await open("?int8=simd128");
    await assertThreaded(simd128.page, "simd128");
    answers.simd128 = await answer(simd128.page);
    const single = await open("?threads=1");
    assert.equal(await single.page.textContent("#backend"), cpuBadge(1));
    answers.oneThread = await answer(single.page);
    // SIMD128 computing with 7-bit activations, as relaxed SIMD does: the same answer.
    const sevenBits = await open("?int8=simd128&int8-bits=7");
    await assertThreaded(sevenBits.page, "simd128");
    assert.match(await sevenBits.page.getAttribute("#backend", "title"), /activations in 7 bits/);
    answers.simd128SevenBits = await answer(sevenBits.page);
    for (const { page, errors } of [relaxed, simd128, single, sevenBits]) await assertClean(page, errors);
    assert.deepEqual(
      isolating.requests.filter((r) => r.endsWith(".wasm") && r.includes("lucy-model")).sort(),
      [MODEL_WASM, RELAXED_WASM, THREADED_WASM].sort(),
    );
  } finally {
    await context.close();
    isolating.server.close();
  }
  console.log(`threads: ${JSON.stringify(answers)}`);
  // int8 sums are exact: 8-bit activations give the same probabilities, to the digit, on one
  // thread or two; 7-bit ones (relaxed SIMD) round differently, with the same top-1, and
  // SIMD128 on 7 bits gives relaxed SIMD's probabilities (to the digit shown).
  assert.match(answers.single, /^Egyptian_cat/);
  assert.equal(answers.simd128, answers.single);
  assert.equal(answers.oneThread, answers.single);
  assert.match(answers.relaxed, /^Egyptian_cat/);
  assert.notEqual(answers.relaxed, answers.single);
  assert.equal(answers.simd128SevenBits, answers.relaxed);
});

test("the threaded model failing to start (its wasm missing): the page computes on one thread", async () => {
  const isolating = await startServer({ isolating: true });
  const context = await launch({ serviceWorkers: "block" });
  try {
    await context.route(/lucy-model-threads.*_bg\.wasm$/, (route) => route.fulfill({ status: 404, body: "gone" }));
    const { page, errors } = await openPage(context, "", { url: isolating.base });
    assert.equal(await page.evaluate(() => crossOriginIsolated), true);
    assert.equal(await page.textContent("#backend"), cpuBadge(1));
    assert.equal(await (await upload(page, chelsea)).getAttribute("data-top1"), "Egyptian_cat");
    await assertClean(page, errors, [/404/]);
  } finally {
    await context.close();
    isolating.server.close();
  }
});

test("a photo and a head file given while the page loads wait, shown at once, then are used in order", async () => {
  // The French bulldog when ../shared is here, else the cat (a CC0 fixture).
  const [photo, label] = fs.existsSync(frenchie) ? [frenchie, "French_bulldog"] : [chelsea, "Egyptian_cat"];
  console.log(`early photo: ${path.basename(photo)} (${label})`);
  const context = await launch();
  // Hold the weights until both have been given: the page is still loading then.
  let release;
  const gate = new Promise((r) => (release = r));
  await context.route("**/*.safetensors", async (route) => {
    await gate;
    await route.continue();
  });
  try {
    const { page, errors } = await openPage(context, "?backend=cpu", { waitReady: false });
    await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("Loading"));
    await page.waitForFunction(() => document.querySelector("#status").textContent !== "Loading…");
    assert.equal(await page.isDisabled("#camera-start"), true);
    assert.match(await page.textContent("#camera-start"), /once the model is ready/);
    assert.match(await page.textContent("#drop-note"), /wait for the model/);

    await page.setInputFiles("#files", photo);
    const photoCard = page.locator(".result", { hasText: path.basename(photo) });
    await photoCard.waitFor();
    assert.equal(await photoCard.getAttribute("data-state"), "waiting");
    assert.match(await photoCard.textContent(), /Waiting for the model/);

    const dir = temporaryDir("lucy-heads-");
    const headPath = path.join(dir, "lucy.safetensors");
    fs.writeFileSync(headPath, headFile(2048, ["Lucy", "another Frenchie"], 0));
    await page.setInputFiles("#head-file", headPath);
    const headCard = page.locator(".result", { hasText: "lucy.safetensors" });
    await headCard.waitFor();
    assert.equal(await headCard.getAttribute("data-state"), "waiting");
    assert.notEqual(await page.evaluate(() => document.body.dataset.ready), "true");

    release();
    await waitReady_(page, errors);
    await page.waitForFunction(() => [...document.querySelectorAll(".result")].every((c) => c.dataset.state === "done"), null, { timeout: 120_000 });
    // In order: the photo with ImageNet's head, then the head file.
    assert.equal(await photoCard.getAttribute("data-top1"), label);
    assert.match(await headCard.textContent(), /Lucy \/ another Frenchie/);
    assert.match(await page.textContent("#status"), /Lucy \/ another Frenchie/);
    assert.equal(await page.textContent("#drop-note"), "");
    assert.equal(await page.isEnabled("#camera-start"), true);
    await page.screenshot({ path: path.join(output, "early-photo.png"), fullPage: true });
    await assertClean(page, errors);
  } finally {
    release();
    await context.close();
  }
});

test("?backend=cpu forces the CPU; a damaged cached file is fetched again", async () => {
  const context = await launch({ webgpu: true });
  try {
    const { page, errors } = await openPage(context, "?backend=cpu");
    await assertThreaded(page);
    // Damage the cached head, reload: detected, fetched again, still correct.
    await page.evaluate(async () => {
      const cache = await caches.open("lucy-weights-v1");
      for (const request of await cache.keys()) {
        if (request.url.includes("head-imagenet")) await cache.put(request, new Response(new Uint8Array([1, 2, 3])));
      }
    });
    requests.length = 0;
    await page.reload();
    await page.waitForFunction(() => document.body.dataset.ready === "true", null, { timeout: 120_000 });
    assert.deepEqual(requests.filter((r) => r.endsWith(".safetensors")), ["/lucy/weights/head-imagenet.safetensors"]);
    const card = await upload(page, coffee);
    assert.equal(await card.getAttribute("data-top1"), "espresso");
    await assertClean(page, errors);
  } finally {
    await context.close();
  }
});

test("WebGPU (SwiftShader): the same top-1; WebGPU failing mid-session falls back to the CPU", { timeout: 900_000 }, async () => {
  const context = await launch({ webgpu: true });
  try {
    // Test-only: the WebGPU worker answers four requests (two photos, two timings), then
    // fails like a broken backend.
    const { page, errors } = await openPage(context, "?fail-webgpu-after=4");
    assert.equal(await page.textContent("#backend"), "WebGPU");
    const t0 = Date.now();
    const card = await upload(page, chelsea, 540_000);
    console.log(`webgpu (SwiftShader): first photo ${Date.now() - t0} ms`);
    assert.equal(await page.textContent("#backend"), "WebGPU", "it must not have fallen back to the CPU");
    assert.equal(await card.getAttribute("data-top1"), "Egyptian_cat");
    const t1 = Date.now();
    const coffeeCard = await upload(page, coffee, 540_000);
    console.log(`webgpu (SwiftShader): warm photo ${Date.now() - t1} ms`);
    assert.equal(await coffeeCard.getAttribute("data-top1"), "espresso");
    assert.equal(await page.textContent("#backend"), "WebGPU");
    await page.screenshot({ path: path.join(output, "webgpu-cat.png"), fullPage: true });
    const cost = await mapCost(page, 2);
    console.log(`maps, WebGPU (SwiftShader): classify ${cost.plain.toFixed(0)} ms, with the top-5 maps ${cost.withMaps.toFixed(0)} ms (${(100 * (cost.withMaps / cost.plain - 1)).toFixed(1)} %)`);

    // The cat's map on WebGPU agrees with the CPU backend's.
    const gpuGrid = await whyGrid(page.locator(".result", { hasText: "skimage_chelsea_cat.png" }), "Egyptian_cat");
    const cpuPage = await context.newPage();
    const cpu = await openPage(context, "?backend=cpu", { page: cpuPage });
    const cpuCard = await upload(cpu.page, chelsea);
    const cpuGrid = await whyGrid(cpuCard, "Egyptian_cat");
    const agreement = cosine(gpuGrid, cpuGrid);
    console.log(`maps: WebGPU vs CPU cosine ${agreement.toFixed(5)}`);
    assert.ok(agreement >= 0.99, `WebGPU vs CPU maps: cosine ${agreement}`);
    await assertClean(cpu.page, cpu.errors);
    await cpuPage.close();

    // The fifth request fails on WebGPU: the page moves to the CPU and still answers.
    const after = await upload(page, chelsea, 300_000);
    assert.equal(await after.getAttribute("data-state"), "done");
    assert.equal(await after.getAttribute("data-top1"), "Egyptian_cat");
    assert.match(await after.textContent(), /on CPU \(wasm, int8\)/);
    // Not isolated (WebGPU needs no reload): the CPU it falls back to has one thread.
    assert.equal(await page.textContent("#backend"), cpuBadge(1));
    await assertClean(page, errors);
  } finally {
    await context.close();
  }
});

test("fake camera showing the coffee photo: the live label says espresso", { timeout: 300_000 }, async () => {
  const video = await photoVideo("skimage_coffee.png");
  const context = await launch({ camera: video });
  try {
    const { page, errors } = await openPage(context, "?backend=cpu");
    await page.click("#camera-start");
    await page.waitForFunction(() => Number(document.querySelector("#live").dataset.frames) >= 3, null, { timeout: 240_000 });
    const label = await page.textContent("#live-label");
    console.log(`camera: live label "${label}", ${await page.textContent("#live-fps")}`);
    assert.match(label, /^espresso \d+ %$/);
    // "Why?" on the live view: the top class's map over the square the model sees.
    await page.click("#live-why");
    await page.waitForFunction(() => document.querySelector("#live-map").dataset.whyLabel === "espresso", null, { timeout: 60_000 });
    assert.equal(await page.isVisible("#live-map"), true);
    await page.screenshot({ path: path.join(output, "camera.png"), fullPage: true });
    await page.click("#camera-stop");
    assert.equal(await page.isEnabled("#camera-start"), true);
    await assertClean(page, errors);
  } finally {
    await context.close();
  }
});

test("a head file from disk replaces the head; one that does not fit is refused", async () => {
  const context = await launch();
  try {
    const { page, errors } = await openPage(context, "?backend=cpu");
    const dir = temporaryDir("lucy-heads-");
    const wrong = path.join(dir, "wrong.safetensors");
    fs.writeFileSync(wrong, headFile(1024, ["Lucy", "another Frenchie"], 0));
    const error = await upload(page, wrong, 30_000, "#head-file");
    assert.equal(await error.getAttribute("data-state"), "error");
    assert.match(await error.textContent(), /wrong\.safetensors.*does not fit/s);

    const good = path.join(dir, "lucy.safetensors");
    fs.writeFileSync(good, headFile(2048, ["Lucy", "another Frenchie"], 0));
    await upload(page, good, 30_000, "#head-file");
    assert.match(await page.textContent("#status"), /Lucy \/ another Frenchie/);
    assert.equal(await page.inputValue("#head"), "lucy.safetensors");
    const card = await upload(page, coffee);
    assert.equal(await card.getAttribute("data-top1"), "another Frenchie");
    assert.equal(await card.locator(".bars li").count(), 2);

    // Back to ImageNet with the selector.
    await page.selectOption("#head", "imagenet");
    await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("Head: imagenet"));
    const back = await upload(page, coffee);
    assert.equal(await back.getAttribute("data-top1"), "espresso");
    await assertClean(page, errors);
  } finally {
    await context.close();
  }
});

test("photos arrive by drag and drop and by paste", async () => {
  const context = await launch();
  try {
    const { page, errors } = await openPage(context, "?backend=cpu");
    const send = (kind) =>
      page.evaluate(async (kind) => {
        const bytes = await (await fetch("/fixtures/skimage_coffee.png")).arrayBuffer();
        const data = new DataTransfer();
        data.items.add(new File([bytes], `${kind}.png`, { type: "image/png" }));
        const event =
          kind === "dropped"
            ? new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true })
            : new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true });
        (kind === "dropped" ? document.querySelector("#drop") : document).dispatchEvent(event);
      }, kind);
    for (const kind of ["dropped", "pasted"]) {
      await send(kind);
      const card = page.locator(".result", { hasText: `${kind}.png` });
      await card.waitFor();
      await page.waitForFunction((k) => [...document.querySelectorAll(".result")].some((c) => c.textContent.includes(`${k}.png`) && c.dataset.state === "done"), kind, { timeout: 60_000 });
      assert.equal(await card.getAttribute("data-top1"), "espresso");
    }
    await assertClean(page, errors);
  } finally {
    await context.close();
  }
});

test("a denied camera shows the page's denied-camera message", async () => {
  const context = await launch({ camera: "denied" });
  try {
    const { page, errors } = await openPage(context, "?backend=cpu");
    await page.click("#camera-start");
    const card = page.locator(".result.error").first();
    await card.waitFor({ timeout: 30_000 });
    assert.equal(await card.locator("h3").textContent(), "Camera permission denied");
    assert.match(await card.textContent(), /Allow camera access for this site/);
    assert.equal(await page.isEnabled("#camera-start"), true, "the user can try again");
    await assertClean(page, errors);
  } finally {
    await context.close();
  }
});

test("offline: after one visit, with the server stopped, a reload still classifies a photo", async () => {
  const own = await startServer(); // stopped below; the other tests keep theirs
  const context = await launch();
  try {
    const { page, errors } = await openPage(context, "?backend=cpu", { url: own.base });
    await page.evaluate(() => navigator.serviceWorker.ready.then(() => true));
    assert.equal(await (await upload(page, coffee)).getAttribute("data-top1"), "espresso");
    await new Promise((resolve) => {
      own.server.close(resolve);
      own.server.closeAllConnections();
    });
    await page.reload();
    await waitReady_(page, errors);
    const card = await upload(page, chelsea);
    assert.equal(await card.getAttribute("data-top1"), "Egyptian_cat");
    // Deliberate: the manifest's network request fails (the server is gone); the page uses its copy.
    await assertClean(page, errors, [/Failed to load resource/, /ERR_CONNECTION_REFUSED|ERR_FAILED/]);
  } finally {
    own.server.close();
    await context.close();
  }
});

test("the Cache API refusing (storage full, or none): the page works uncached and says so", async () => {
  const refusals = [
    ["a full quota", "The quota has been exceeded.", () => {
      Cache.prototype.put = () => Promise.reject(new DOMException("The quota has been exceeded.", "QuotaExceededError"));
    }],
    ["no storage", "Storage is disabled.", () => {
      CacheStorage.prototype.open = () => Promise.reject(new DOMException("Storage is disabled.", "SecurityError"));
    }],
  ];
  for (const [what, message, refuse] of refusals) {
    const context = await launch();
    try {
      await context.addInitScript(refuse);
      const { page, errors } = await openPage(context, "?backend=cpu");
      const status = await page.textContent("#status");
      assert.ok(status.includes(`could not be kept for the next visit (${message})`), `${what}: ${status}`);
      assert.equal(await (await upload(page, coffee)).getAttribute("data-top1"), "espresso", what);
      await assertClean(page, errors);
    } finally {
      await context.close();
    }
  }
});

/// A head file with one label renamed (its metadata rewritten; the weights as they were).
function relabel(head, from, to) {
  const length = Number(head.readBigUInt64LE(0));
  const header = JSON.parse(head.subarray(8, 8 + length).toString());
  const meta = JSON.parse(header.__metadata__.lucy_head);
  meta.labels = meta.labels.map((l) => (l === from ? to : l));
  header.__metadata__.lucy_head = JSON.stringify(meta);
  let json = Buffer.from(JSON.stringify(header));
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([size, json, head.subarray(8 + length)]);
}

test("a manifest that changed since the last visit: the changed file is fetched, the rest cached, the old copy removed", async () => {
  const dir = temporaryDir("lucy-chromium-");
  const weights = path.join(dist, "weights");
  const oldHead = fs.readFileSync(path.join(weights, "head-imagenet.safetensors"));
  const sha = (bytes) => crypto.createHash("sha256").update(bytes).digest("hex");
  let context = await launch({ userDataDir: dir });
  try {
    const first = await openPage(context, "?backend=cpu");
    assert.equal(await (await upload(first.page, coffee)).getAttribute("data-top1"), "espresso");
    await context.close();

    // The site is updated: the ImageNet head now calls it "espresso (v2)" (a new file, a new
    // sha256 in the manifest); the backbone is unchanged.
    const newHead = relabel(oldHead, "espresso", "espresso (v2)");
    const manifest = JSON.parse(fs.readFileSync(path.join(weights, "manifest.json")));
    manifest.files["head-imagenet.safetensors"] = { size_bytes: newHead.length, sha256: sha(newHead) };
    context = await launch({ userDataDir: dir });
    let headServed = 0;
    await context.route("**/weights/manifest.json", (route) => route.fulfill({ body: JSON.stringify(manifest), contentType: "application/json" }));
    await context.route("**/weights/head-imagenet.safetensors", (route) => {
      headServed += 1;
      return route.fulfill({ body: newHead });
    });
    requests.length = 0;
    const second = await openPage(context, "?backend=cpu");
    const card = await upload(second.page, coffee);
    assert.equal(await card.getAttribute("data-top1"), "espresso (v2)", "the new head, never the cached old one");
    assert.equal(headServed, 1, "the changed head is downloaded once");
    assert.deepEqual(requests.filter((r) => r.endsWith(".safetensors")), [], "the unchanged backbone comes from the cache");
    const keys = await second.page.evaluate(async () =>
      (await (await caches.open("lucy-weights-v1")).keys()).map((r) => new URL(r.url).pathname + new URL(r.url).search));
    assert.ok(keys.some((k) => k.endsWith(`head-imagenet.safetensors?sha256=${sha(newHead)}`)), keys.join(" "));
    assert.ok(!keys.some((k) => k.includes(sha(oldHead))), `the old head is removed: ${keys.join(" ")}`);
    await assertClean(second.page, second.errors);
  } finally {
    await context.close();
  }
});

test("Why? on a composite photo: each animal's map lies on its half", async () => {
  // Left half the French bulldog (../shared) or, without it, the coffee; right half the cat.
  const [left, leftLabel] = fs.existsSync(frenchie)
    ? ["/shared/willjobs_example_frenchbulldog.jpg", "French_bulldog"]
    : ["/fixtures/skimage_coffee.png", "espresso"];
  const context = await launch();
  try {
    const { page, errors } = await openPage(context, "?backend=cpu");
    // Each photo scaled to cover its 224 x 448 half, as the native test builds it.
    await page.evaluate(async (left) => {
      const load = async (url) => {
        const img = new Image();
        img.src = url;
        await img.decode();
        return img;
      };
      const canvas = new OffscreenCanvas(448, 448);
      const ctx = canvas.getContext("2d");
      for (const [url, x] of [[left, 0], ["/fixtures/skimage_chelsea_cat.png", 224]]) {
        const img = await load(url);
        const scale = Math.max(224 / img.width, 448 / img.height);
        const [w, h] = [img.width * scale, img.height * scale];
        ctx.save();
        ctx.beginPath();
        ctx.rect(x, 0, 224, 448);
        ctx.clip();
        ctx.drawImage(img, x + (224 - w) / 2, (448 - h) / 2, w, h);
        ctx.restore();
      }
      const blob = await canvas.convertToBlob({ type: "image/png" });
      const data = new DataTransfer();
      data.items.add(new File([blob], "composite.png", { type: "image/png" }));
      document.querySelector("#drop").dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
    }, left);
    const card = page.locator(".result", { hasText: "composite.png" });
    await page.waitForFunction(() => document.querySelector(".result")?.dataset.state === "done", null, { timeout: 60_000 });
    console.log(`composite: top-5 ${(await card.locator(".bars .label").allTextContents()).join(", ")}`);
    const [l1, r1] = leftRight(await whyGrid(card, leftLabel));
    const [l2, r2] = leftRight(await whyGrid(card, "Egyptian_cat"));
    console.log(`composite: ${leftLabel} ${l1.toFixed(2)} left / ${r1.toFixed(2)} right; Egyptian_cat ${l2.toFixed(2)} left / ${r2.toFixed(2)} right`);
    assert.ok(l1 > r1, `${leftLabel} map: ${l1} left, ${r1} right`);
    assert.ok(r2 > l2, `Egyptian_cat map: ${l2} left, ${r2} right`);
    await page.screenshot({ path: path.join(output, "why-composite.png"), fullPage: true });
    // Off again: the photo is back.
    await card.locator("button.why").click();
    assert.equal(await card.locator("canvas.why-map").isVisible(), false);
    const cost = await mapCost(page, 7);
    console.log(`maps, CPU (wasm): classify ${cost.plain.toFixed(1)} ms, with the top-5 maps ${cost.withMaps.toFixed(1)} ms (${(100 * (cost.withMaps / cost.plain - 1)).toFixed(1)} %)`);
    await assertClean(page, errors);
  } finally {
    await context.close();
  }
});
