// lucy's page vs onnxruntime-web in headless Chromium, same model, same input, one run.
//
//   python3 -c 'import sys; sys.path.insert(0, "bench"); from resnet50_onnx import build; \
//     from pathlib import Path; open("bench/out/resnet50.onnx", "wb").write(build(Path("weights")).SerializeToString())'
//   (cd bench && npm ci) && node bench/browser_peers.mjs [--runs 5] [--rounds 3] [--backends cpu,webgpu]
//     [--threads N] [--isolate-lucy] [--write BENCHMARKS.md]
//
// lucy and onnxruntime-web take turns over --rounds rounds, and each ratio is the median of the
// rounds' ratios: this shared machine's speed drifts by tens of percent from minute to minute.
//
// On the CPU, onnxruntime-web runs twice: single-threaded from a plain page, and with --threads
// wasm threads (default: this machine's cores) from a page served cross-origin isolated
// (COOP/COEP, which wasm threads need; the page checks `crossOriginIsolated`). lucy runs the
// same two ways: one thread (`?threads=1`), and its threaded model on every core the browser
// reports (checked equal to --threads), by default on relaxed SIMD, then on SIMD128. Its page
// is served as a static host serves it, without COOP/COEP, so on a first visit its service
// worker reloads it once to isolate it (counted in its first prediction); --isolate-lucy
// serves it with the headers, as scripts/serve does. The checked input is
// the coffee reference tensor; all must give the same top-1 before anything is timed. WebGPU
// runs on Chromium's SwiftShader software adapter here: its ratio is meaningful, its absolute
// times are not.

import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) || fallback : fallback);
const runs = option("--runs", 5);
const rounds = option("--rounds", 3);
// --backends cpu,webgpu (default both).
const backends = (args.includes("--backends") ? args[args.indexOf("--backends") + 1] : "cpu,webgpu").split(",");
const write = args.includes("--write") ? args[args.indexOf("--write") + 1] : null;
const threads = option("--threads", os.availableParallelism());
const isolateLucy = args.includes("--isolate-lucy");

const roots = {
  "/lucy/": path.join(root, "dist"),
  "/ort/": path.join(here, "node_modules/onnxruntime-web/dist"),
  "/model/": path.join(here, "out"),
  "/fixtures/": path.join(root, "tests/fixtures"),
};
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm" };
// Cross-origin isolation: the threaded peer's page and every asset it or its workers load (and
// lucy's pages with --isolate-lucy). On the other pages the assets' headers change nothing.
const ISOLATION = {
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-embedder-policy": "require-corp",
  "cross-origin-resource-policy": "same-origin",
};
const isolated = (pathname) =>
  pathname === "/peer-isolated.html" || ["/ort/", "/model/", "/fixtures/"].some((p) => pathname.startsWith(p)) ||
  (isolateLucy && pathname.startsWith("/lucy/"));
const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  const headers = isolated(url.pathname) ? ISOLATION : {};
  if (url.pathname === "/peer.html" || url.pathname === "/peer-isolated.html") {
    res.writeHead(200, { "content-type": "text/html", ...headers }).end("<!doctype html><title>peer</title>");
    return;
  }
  const prefix = Object.keys(roots).find((p) => url.pathname.startsWith(p));
  let file = prefix && path.join(roots[prefix], url.pathname.slice(prefix.length) || "index.html");
  if (!file || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { "content-type": TYPES[path.extname(file)] ?? "application/octet-stream", ...headers });
  fs.createReadStream(file).pipe(res);
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const base = `http://127.0.0.1:${server.address().port}`;

async function browser(webgpu) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", ...(webgpu ? ["--enable-unsafe-webgpu"] : [])],
    ignoreDefaultArgs: webgpu ? ["--disable-gpu"] : [],
  });
}

/// lucy on `backend` (on the CPU with `threads` threads, and `kernel` when given: "simd128"
/// keeps the threaded model off relaxed SIMD): time from opening the page to the first answer,
/// then warm classify() calls.
async function lucy(backend, threads, kernel, runs) {
  const b = await browser(backend === "webgpu");
  try {
    const page = await b.newPage();
    const started = Date.now();
    const query = `?backend=${backend}${threads === 1 ? "&threads=1" : ""}${kernel ? `&int8=${kernel}` : ""}`;
    await page.goto(`${base}/lucy/${query}`);
    await page.waitForFunction(() => document.body.dataset.ready === "true", null, { timeout: 300_000 });
    // First prediction: the photo through the page as a user gives it (decode + preprocess +
    // model + top-5 in the model's worker), counted from opening the page.
    await page.setInputFiles("#files", path.join(here, "../tests/fixtures/skimage_coffee.png"));
    await page.waitForFunction(() => document.querySelector(".result")?.dataset.state === "done", null, { timeout: 300_000 });
    const firstPredictionMs = Date.now() - started;
    const running = await page.getAttribute("#backend", "data-backend");
    const runningThreads = Number(await page.getAttribute("#backend", "data-threads"));
    if (backend === "cpu" && runningThreads !== threads) throw new Error(`lucy ran ${runningThreads} threads, not ${threads}`);
    const runningKernel = await page.getAttribute("#backend", "data-kernel");
    if (kernel && runningKernel !== kernel) throw new Error(`lucy ran ${runningKernel}, not ${kernel}`);
    return await page.evaluate(async ({ runs }) => {
      const photo = new Uint8Array(await (await fetch("/fixtures/skimage_coffee.png")).arrayBuffer());
      // Warm: the model alone on the photo prepared once, timed in the worker (as
      // onnxruntime-web's session.run is timed on a prepared tensor).
      const { top1, times } = await window.wasmBindings.time_inference(photo, runs, false);
      times.sort((a, b) => a - b);
      return { top1, medianMs: times[times.length >> 1] };
    }, { runs }).then((r) => ({ ...r, backend: running, kernel: runningKernel, firstPredictionMs }));
  } finally {
    await b.close();
  }
}

/// onnxruntime-web with one execution provider: the same, from an empty page (cross-origin
/// isolated when it runs more than one thread).
async function ort(ep, threads, runs) {
  const b = await browser(ep === "webgpu");
  try {
    const page = await b.newPage();
    await page.goto(`${base}/${threads > 1 ? "peer-isolated" : "peer"}.html`);
    return await page.evaluate(async ({ ep, threads, runs }) => {
      if (threads > 1 && !crossOriginIsolated) throw new Error("the threaded peer's page is not cross-origin isolated");
      const started = performance.now();
      const ort = await import("/ort/ort.all.min.mjs");
      ort.env.wasm.wasmPaths = "/ort/";
      ort.env.wasm.numThreads = threads;
      const session = await ort.InferenceSession.create("/model/resnet50.onnx", { executionProviders: [ep] });
      // onnxruntime-web falls back to one thread, with a warning only, where threads cannot run.
      if (ort.env.wasm.numThreads !== threads) throw new Error(`onnxruntime-web runs ${ort.env.wasm.numThreads} threads, not ${threads}`);
      const nhwc = new Float32Array(await (await fetch("/fixtures/skimage_coffee.input_nhwc_224x224x3_bgr_meansub.f32")).arrayBuffer());
      const chw = new Float32Array(3 * 224 * 224);
      for (let i = 0; i < 224 * 224; i++) for (let c = 0; c < 3; c++) chw[c * 224 * 224 + i] = nhwc[3 * i + c];
      const input = new ort.Tensor("float32", chw, [1, 3, 224, 224]);
      const run = async () => {
        const out = await session.run({ input });
        const p = out.probabilities.data;
        let best = 0;
        for (let i = 1; i < p.length; i++) if (p[i] > p[best]) best = i;
        return best;
      };
      const top1 = await run();
      const firstPredictionMs = performance.now() - started;
      const times = [];
      for (let i = 0; i < runs; i++) {
        const t = performance.now();
        await run();
        times.push(performance.now() - t);
      }
      times.sort((a, b) => a - b);
      return { top1, firstPredictionMs, medianMs: times[times.length >> 1] };
    }, { ep, threads, runs });
  } finally {
    await b.close();
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const rows = [];
// lucy's backend, threads and int8 kernel (null: the page's choice), then onnxruntime-web's
// configurations raced against it: [execution provider, threads, label]. Each round times lucy
// once, then each configuration. Threaded, lucy runs twice: its default (relaxed SIMD where
// the browser has it) and SIMD128.
const isolatedOrt = () => [["wasm", threads, `CPU / wasm, ${threads} threads each (cross-origin isolated)`]];
const pairs = [
  ["cpu", 1, null, runs, [["wasm", 1, "CPU / wasm, 1 thread each"]]],
  ...(threads > 1 ? [["cpu", threads, null, runs, isolatedOrt()], ["cpu", threads, "simd128", runs, isolatedOrt()]] : []),
  ["webgpu", 1, null, Math.min(runs, 3), [["webgpu", 1, "WebGPU (SwiftShader)"]]],
];
for (const [lucyBackend, lucyThreads, kernel, n, configs] of pairs.filter(([b]) => backends.includes(b))) {
  const results = configs.map(() => []);
  for (let round = 0; round < rounds; round++) {
    const ours = await lucy(lucyBackend, lucyThreads, kernel, n);
    if (ours.backend !== lucyBackend) throw new Error(`lucy ran on ${ours.backend}, not ${lucyBackend}`);
    for (const [i, [ep, t, label]] of configs.entries()) {
      const theirs = await ort(ep, t, n);
      if (ours.top1 !== theirs.top1) throw new Error(`disagreement on ${label}: lucy ${ours.top1}, onnxruntime-web ${theirs.top1}`);
      results[i].push({ ours, theirs });
      console.log(`${label}, round ${round + 1}: lucy ${ours.medianMs.toFixed(0)} ms, onnxruntime-web ${theirs.medianMs.toFixed(0)} ms`);
    }
  }
  for (const [i, [, , label]] of configs.entries()) {
    const m = (f) => median(results[i].map(f));
    const kernelUsed = results[i][0].ours.kernel;
    const row = lucyBackend === "cpu" ? `${label}; lucy's int8 on ${kernelUsed}` : label;
    rows.push(`| ${row} | ${m((r) => r.ours.medianMs).toFixed(0)} | ${m((r) => r.theirs.medianMs).toFixed(0)} | **${m((r) => r.ours.medianMs / r.theirs.medianMs).toFixed(2)}** | ${(m((r) => r.ours.firstPredictionMs) / 1000).toFixed(1)} | ${(m((r) => r.theirs.firstPredictionMs) / 1000).toFixed(1)} |`);
    console.log(rows.at(-1));
  }
}
server.close();

const table = [
  "| backend | lucy ms/inference | onnxruntime-web ms/inference | lucy / ort-web | lucy first prediction s | ort-web first prediction s |",
  "|---|---|---|---|---|---|",
  ...rows,
].join("\n");
console.log(table);
if (write) {
  const version = JSON.parse(fs.readFileSync(path.join(here, "node_modules/onnxruntime-web/package.json"))).version;
  const header = `\n## ${new Date().toISOString().slice(0, 10)} — headless Chromium (Debian), ${os.availableParallelism()} cores, onnxruntime-web ${version}; lucy's page ${isolateLucy ? "served with COOP/COEP" : "served without COOP/COEP (its service worker isolates it)"}\n\nCommand: \`node bench/browser_peers.mjs ${args.join(" ")}\` (median of warm runs, then median over ${rounds} rounds; each ratio is the median of the rounds' ratios; both time the model alone on a prepared input (lucy in its worker); first prediction includes loading the page or session and the model from a local server; top-1 checked equal first; ort-web's threaded configuration runs from a cross-origin isolated page, checked)\n\n`;
  fs.appendFileSync(write, header + table + "\n");
}
