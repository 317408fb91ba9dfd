// Teaching in the page, measured in headless Chromium (CPU backend):
// - adding photos: seconds per photo (one backbone pass each) next to classifying one;
// - training: the page's Train (the model's worker, Rust/wasm) against TensorFlow.js training
//   the same head (dropout + dense softmax, Adam 1e-3, L2 1e-4, class weights, 30 epochs,
//   batches of 16) on the same features in the same browser, taking turns, on its plain
//   JavaScript (cpu) and its WebAssembly (wasm, SIMD, single-threaded like lucy's) backends;
// - a big project (--big N photos): the tab's memory (resident set of its renderer process,
//   which holds the page and the model's worker) while adding, after a reload and while
//   training, and IndexedDB storage per photo.
//
//   cargo build --release && ./scripts/serve (or trunk build) && (cd bench && npm ci)
//   node bench/teach.mjs [--photos 300] [--rounds 5] [--big 2000] [--write BENCHMARKS.md]
//
// Photos come from ../shared/data/catsdogs (LUCY_SHARED): dogs are "Lucy", cats "Other". The big
// project repeats those 353 photos, each copy with a few bytes after the image's end so the page
// sees a new file (same pixels; every copy still costs a backbone pass and its storage).

import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const dist = path.join(root, "dist");
const catsdogs = path.join(process.env.LUCY_SHARED ?? path.resolve(root, "../shared"), "data/catsdogs");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const PHOTOS = Number(option("photos", 300));
const ROUNDS = Number(option("rounds", 5));
const BIG = Number(option("big", 0));
const WRITE = option("write", null);

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".css": "text/css",
  ".json": "application/json", ".svg": "image/svg+xml", ".webmanifest": "application/manifest+json" };
let projectBytes = null;
const PEER_PAGE = `<!doctype html><meta charset="utf-8"><title>peer</title><script src="/tfjs/tf.min.js"></script>
<script src="/tfjs-wasm/tf-backend-wasm.min.js"></script><script>tf.wasm.setWasmPaths("/tfjs-wasm/");</script>`;

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  let file = null;
  if (url.pathname === "/peer.html") return res.writeHead(200, { "content-type": "text/html" }).end(PEER_PAGE);
  if (url.pathname === "/project.bin") return res.writeHead(200).end(projectBytes);
  if (url.pathname.startsWith("/lucy/")) {
    file = path.join(dist, url.pathname.slice(6));
    if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, "index.html");
  } else if (url.pathname.startsWith("/tfjs/")) {
    file = path.join(here, "node_modules/@tensorflow/tfjs/dist", path.basename(url.pathname));
  } else if (url.pathname.startsWith("/tfjs-wasm/")) {
    file = path.join(here, "node_modules/@tensorflow/tfjs-backend-wasm/dist", path.basename(url.pathname));
  }
  if (!file || !fs.existsSync(file)) return res.writeHead(404).end();
  res.writeHead(200, { "content-type": TYPES[path.extname(file)] ?? "application/octet-stream" });
  fs.createReadStream(file).pipe(res);
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const origin = `http://127.0.0.1:${server.address().port}`;

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const list = (split, kind) => fs.readdirSync(path.join(catsdogs, split, kind)).sort().map((f) => path.join(catsdogs, split, kind, f));
const dogs = [...list("train", "dog"), ...list("val", "dog"), ...list("test", "dog")];
const cats = [...list("train", "cat"), ...list("val", "cat"), ...list("test", "cat")];

async function launch(dir) {
  return chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--no-first-run", "--disable-background-networking", "--disable-component-update"],
  });
}

/// Resident memory (MB) of the renderer processes of the browser using `dir`: the tab.
function tabMemoryMb(dir) {
  const rows = execFileSync("ps", ["-e", "-o", "pid=,ppid=,rss=,args="], { encoding: "utf8", maxBuffer: 1 << 26 })
    .split("\n").filter(Boolean).map((line) => {
      const [pid, ppid, rss, ...rest] = line.trim().split(/\s+/);
      return { pid: +pid, ppid: +ppid, rss: +rss, args: rest.join(" ") };
    });
  const main = rows.find((r) => r.args.includes(`--user-data-dir=${dir}`) && !r.args.includes("--type="));
  if (!main) return NaN;
  const family = new Set([main.pid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const r of rows) if (family.has(r.ppid) && !family.has(r.pid)) { family.add(r.pid); grew = true; }
  }
  return rows.filter((r) => family.has(r.pid) && r.args.includes("--type=renderer")).reduce((s, r) => s + r.rss, 0) / 1024;
}

async function openLucy(context) {
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(`${origin}/lucy/?backend=cpu`);
  await page.waitForFunction(() => document.body.dataset.ready === "true", null, { timeout: 300_000 });
  await page.waitForFunction(() => document.querySelector("#teach")?.dataset.restored === "true", null, { timeout: 300_000 });
  return page;
}

async function settled(page, total, timeout) {
  await page.waitForFunction((total) => document.querySelector("#teach-count").textContent === `${total} photos in 2 classes`, total, { timeout });
}

async function train(page) {
  await page.evaluate(() => document.querySelector("#teach-status").removeAttribute("data-seconds"));
  await page.getByRole("button", { name: "Train", exact: true }).click();
  await page.waitForFunction(() => document.querySelector("#teach-status").dataset.seconds, null, { timeout: 600_000 });
  return {
    seconds: Number(await page.getAttribute("#teach-status", "data-seconds")),
    status: await page.textContent("#teach-status"),
  };
}

/// TensorFlow.js trains the same head on the project's features (its own split: the last
/// fifth of each class for validation), in a page of its own.
async function peerTrain(page, backend) {
  return page.evaluate(async (backend) => {
    const bytes = new Uint8Array(await (await fetch("/project.bin")).arrayBuffer());
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
    const lesson = JSON.parse(header.__metadata__.lucy_project).lesson;
    const [start, end] = header.features.data_offsets;
    const features = new Float32Array(bytes.slice(8 + headerLength + start, 8 + headerLength + end).buffer);
    const n = lesson.labels.length, classes = lesson.classes.length, cfg = lesson.config;
    const byClass = [...Array(classes)].map((_, c) => lesson.labels.flatMap((l, i) => (l === c ? [i] : [])));
    const val = byClass.flatMap((ids) => ids.slice(ids.length - Math.max(1, Math.round(ids.length * lesson.val_fraction))));
    const train = [...Array(n).keys()].filter((i) => !val.includes(i));
    const take = (ids) => [
      tf.tensor2d(ids.flatMap((i) => Array.from(features.subarray(i * 2048, (i + 1) * 2048))), [ids.length, 2048]),
      tf.oneHot(tf.tensor1d(ids.map((i) => lesson.labels[i]), "int32"), classes),
    ];
    if (!(await tf.setBackend(backend))) throw new Error(`TensorFlow.js has no ${backend} backend here`);
    await tf.ready();
    const [xTrain, yTrain] = take(train), [xVal, yVal] = take(val);
    const classWeight = Object.fromEntries(byClass.map((ids, c) => [c, train.length / (classes * ids.filter((i) => train.includes(i)).length)]));
    const model = tf.sequential({ layers: [
      tf.layers.dropout({ rate: cfg.dropout, inputShape: [2048] }),
      tf.layers.dense({ units: classes, activation: "softmax", kernelRegularizer: tf.regularizers.l2({ l2: cfg.weight_decay / 2 }) }),
    ] });
    model.compile({ optimizer: tf.train.adam(cfg.learning_rate), loss: "categoricalCrossentropy", metrics: ["accuracy"] });
    const started = performance.now();
    const history = await model.fit(xTrain, yTrain, { epochs: cfg.epochs, batchSize: cfg.batch_size, shuffle: true, classWeight, validationData: [xVal, yVal] });
    const seconds = (performance.now() - started) / 1000;
    const acc = history.history.val_acc ?? history.history.val_accuracy;
    tf.dispose([xTrain, yTrain, xVal, yVal]);
    model.dispose();
    return { seconds, epochs: acc.length, backend: tf.getBackend(), valAccuracy: acc[acc.length - 1], version: tf.version.tfjs };
  }, backend);
}

const lines = [];
const say = (line) => { console.log(line); lines.push(line); };

// ---------- adding photos and training ------------------------------------------------------

{
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lucy-bench-teach-"));
  const context = await launch(dir);
  try {
    const page = await openLucy(context);
    const half = PHOTOS / 2;
    let started = Date.now();
    await page.getByLabel("Add photos to Lucy").setInputFiles(dogs.slice(0, half));
    await page.getByLabel("Add photos to Other").setInputFiles(cats.slice(0, half));
    await settled(page, PHOTOS, 1_800_000);
    const addPerPhoto = (Date.now() - started) / 1000 / PHOTOS;
    // The same kind of photos, classified (top-5 and maps: one backbone pass each too).
    const probe = [...dogs.slice(-5), ...cats.slice(-5)];
    started = Date.now();
    await page.setInputFiles("#files", probe);
    await page.waitForFunction((n) => [...document.querySelectorAll(".result")].filter((c) => c.dataset.state === "done").length >= n, probe.length, { timeout: 600_000 });
    const classifyPerPhoto = (Date.now() - started) / 1000 / probe.length;
    const [file] = await Promise.all([page.waitForEvent("download"), (async () => { await train(page); await page.getByRole("button", { name: "Download project" }).click(); })()]);
    projectBytes = fs.readFileSync(await file.path());
    const peer = await context.newPage();
    await peer.goto(`${origin}/peer.html`);
    await peer.waitForFunction(() => typeof tf !== "undefined");
    const backends = ["cpu", "wasm"];
    for (const backend of backends) await peerTrain(peer, backend); // warm-up
    const ours = [], theirs = Object.fromEntries(backends.map((b) => [b, []]));
    let status = "";
    const info = {};
    for (let round = 0; round < ROUNDS; round++) {
      const run = await train(page);
      ours.push(run.seconds);
      status = run.status;
      for (const backend of backends) {
        info[backend] = await peerTrain(peer, backend);
        theirs[backend].push(info[backend].seconds);
      }
    }
    say(`- Adding ${PHOTOS} photos (${half} per class, chosen as files): ${addPerPhoto.toFixed(3)} s per photo (read, one backbone pass, thumbnail, IndexedDB); classifying a photo: ${classifyPerPhoto.toFixed(3)} s (one backbone pass, top-5 and maps, its card).`);
    say(`- Training on ${PHOTOS} photos' features (Train: the model's worker, lucy's \`fit\` in wasm, features sent from the page): median ${median(ours).toFixed(3)} s over ${ROUNDS} runs (${ours.map((t) => t.toFixed(3)).join(", ")}); ${status.match(/validation accuracy [0-9.]+ \([^)]*\)/)?.[0] ?? status}.`);
    // lucy stops early (no better validation score for 8 epochs); TensorFlow.js runs every
    // epoch: the ratio compares time per epoch (the same work), the totals are given too.
    const lucyEpochs = Number(status.match(/epoch \d+ of (\d+) kept/)?.[1] ?? NaN);
    for (const backend of backends) {
      const ratios = ours.map((t, i) => (t / lucyEpochs) / (theirs[backend][i] / info[backend].epochs));
      say(`- TensorFlow.js ${info[backend].version} (${info[backend].backend} backend) training the same head on the same features with the same settings, taking turns: median ${median(theirs[backend]).toFixed(3)} s for all ${info[backend].epochs} epochs (validation accuracy ${info[backend].valAccuracy.toFixed(2)}; lucy ran ${lucyEpochs}); time per epoch, lucy / TensorFlow.js: ${median(ratios).toFixed(3)} (median of the rounds' ratios).`);
    }
  } finally {
    await context.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---------- a big project: memory and storage -----------------------------------------------

if (BIG > 0) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lucy-bench-big-"));
  const photoDir = fs.mkdtempSync(path.join(os.tmpdir(), "lucy-bench-photos-"));
  let context = await launch(dir);
  try {
    const files = { dog: [], cat: [] };
    for (let i = 0; i < BIG; i++) {
      const [kind, pool] = i % 2 === 0 ? ["dog", dogs] : ["cat", cats];
      const from = pool[Math.floor(i / 2) % pool.length];
      const to = path.join(photoDir, `${kind}-${i}${path.extname(from)}`);
      fs.writeFileSync(to, Buffer.concat([fs.readFileSync(from), Buffer.from(`\nlucy-bench ${i}\n`)]));
      files[kind].push(to);
    }
    let page = await openLucy(context);
    await new Promise((r) => setTimeout(r, 3000));
    const baseline = tabMemoryMb(dir); // the page and the model (its weights), no photo yet
    let peak = baseline;
    const sampler = setInterval(() => { peak = Math.max(peak, tabMemoryMb(dir)); }, 1000);
    const started = Date.now();
    for (let i = 0; i < BIG / 2; i += 250) {
      await page.getByLabel("Add photos to Lucy").setInputFiles(files.dog.slice(i, i + 250));
      await page.getByLabel("Add photos to Other").setInputFiles(files.cat.slice(i, i + 250));
    }
    await settled(page, BIG, 7_200_000);
    const addMinutes = (Date.now() - started) / 60_000;
    const addPeak = peak;
    // IndexedDB alone (the Cache API also holds the weights and the app).
    const usage = await page.evaluate(async () => (await navigator.storage.estimate()).usageDetails.indexedDB);
    clearInterval(sampler);
    await context.close();

    // The next visit: a new browser on the same profile opens the page with its project.
    context = await launch(dir);
    peak = 0;
    const sampler2 = setInterval(() => { peak = Math.max(peak, tabMemoryMb(dir)); }, 1000);
    const reopened = Date.now();
    page = await openLucy(context);
    await settled(page, BIG, 600_000);
    const restoreSeconds = (Date.now() - reopened) / 1000;
    await new Promise((r) => setTimeout(r, 3000));
    const loaded = tabMemoryMb(dir);
    const run = await train(page);
    clearInterval(sampler2);
    const nextPeak = Math.max(peak, tabMemoryMb(dir));
    say(`- A project of ${BIG} photos. The tab (its renderer process: the page and the model's worker) holds ${baseline.toFixed(0)} MB when ready with no photo (the model: weights, packed convolutions, buffers). Adding the ${BIG} photos took ${addMinutes.toFixed(1)} min, tab peak ${addPeak.toFixed(0)} MB (+${(addPeak - baseline).toFixed(0)} MB, uncollected garbage included); IndexedDB holds ${(usage / 1e6).toFixed(1)} MB (${(usage / BIG / 1e3).toFixed(1)} KB per photo: features, thumbnail, crop). The next visit (a new browser, same profile): the page is ready with the whole project in ${restoreSeconds.toFixed(1)} s, the tab holds ${loaded.toFixed(0)} MB (+${(loaded - baseline).toFixed(0)} MB); Train on ${BIG} photos takes ${run.seconds.toFixed(2)} s; tab peak ${nextPeak.toFixed(0)} MB (+${(nextPeak - baseline).toFixed(0)} MB) from opening through training.`);
  } finally {
    await context.close();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(photoDir, { recursive: true, force: true });
  }
}

server.close();
if (WRITE) {
  const header = `\n## ${new Date().toISOString().slice(0, 10)} — teaching in the page (headless Chromium, CPU backend)\n\nCommand: \`node bench/teach.mjs ${args.join(" ")}\`\n\n`;
  fs.appendFileSync(path.join(root, WRITE), header + lines.join("\n") + "\n");
}
