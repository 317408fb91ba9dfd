// Shared by the browser tests: the built site (dist/) behind a plain static server of the
// tests' own, headless Chromium from Debian, opening the page and checking it stayed clean.

import { before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(here, "../..");
export const dist = path.join(root, "dist");
export const fixtures = path.join(root, "tests/fixtures");
// Photos without a licence to copy live beside the project (LUCY_SHARED, else ../shared); tests
// that need them are skipped, by name and with the reason, when they are absent.
export const shared = path.join(process.env.LUCY_SHARED ?? path.resolve(root, "../shared"), "fixtures/resnet50-reference");
export const output = path.join(here, "output");
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const BASE_ARGS = [
  "--no-sandbox",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

// ---------- a plain static file server that logs requests -----------------------------------

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".css": "text/css",
  ".json": "application/json", ".svg": "image/svg+xml", ".webmanifest": "application/manifest+json",
  ".png": "image/png", ".jpg": "image/jpeg" };

/// The site lives in a sub-folder, as on a static host (/lucy/...); fixtures under /fixtures/.
function resolve(pathname) {
  if (pathname.startsWith("/lucy/")) {
    let file = path.join(dist, pathname.slice("/lucy/".length));
    if (!file.startsWith(dist)) return null;
    if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, "index.html");
    return file;
  }
  if (pathname.startsWith("/fixtures/")) return path.join(fixtures, path.basename(pathname));
  if (pathname.startsWith("/shared/")) return path.join(shared, path.basename(pathname));
  return null;
}

/// A server of its own: `requests` lists every path asked for, in order. A plain static host
/// by default; `isolating` sends COOP/COEP as scripts/serve does.
export async function startServer({ isolating = false } = {}) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    requests.push(url.pathname);
    const file = resolve(decodeURIComponent(url.pathname));
    if (!file || !fs.existsSync(file)) {
      res.writeHead(404).end("not found");
      return;
    }
    const headers = { "content-type": TYPES[path.extname(file)] ?? "application/octet-stream" };
    if (isolating) {
      headers["cross-origin-opener-policy"] = "same-origin";
      headers["cross-origin-embedder-policy"] = "require-corp";
    }
    res.writeHead(200, headers);
    fs.createReadStream(file).pipe(res);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, requests, base: `http://127.0.0.1:${server.address().port}/lucy/` };
}

// The server most tests share: `requests` and `base` are set before the first test.
let site;
export let requests;
export let base;

/// Call once per test file: serves the site for the file's tests.
export function serveSite() {
  before(async () => {
    assert.ok(fs.existsSync(path.join(dist, "index.html")), "build the site first: trunk build --release");
    fs.mkdirSync(output, { recursive: true });
    site = await startServer();
    ({ requests, base } = site);
  });
  after(() => site?.server.close());
}

/// `camera`: a y4m file the fake camera shows (permission granted), "pattern" (Chromium's own
/// moving test pattern: every frame differs), or "denied" (a fake camera whose permission
/// prompt is denied). `serviceWorkers: "block"`: a browser where the site's service worker
/// never runs (so the page is never cross-origin isolated on a plain host).
/// Folders made by `temporaryDir`, removed when the test process exits.
const temporary = [];
process.on("exit", () => {
  for (const dir of temporary) fs.rmSync(dir, { recursive: true, force: true });
});

/// A fresh temporary folder named `prefix…`, removed when the process exits (a Chromium profile
/// is ~150 MB: a run left ~25 behind before).
export function temporaryDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  temporary.push(dir);
  return dir;
}

export async function launch({ webgpu = false, camera = null, userDataDir = null, serviceWorkers = "allow" } = {}) {
  const args = [...BASE_ARGS];
  if (webgpu) args.push("--enable-unsafe-webgpu");
  if (camera === "denied") {
    args.push("--use-fake-device-for-media-stream", "--deny-permission-prompts");
  } else if (camera === "pattern") {
    args.push("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream");
  } else if (camera) {
    args.push("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", `--use-file-for-fake-video-capture=${camera}`);
  }
  const options = {
    executablePath: CHROMIUM,
    headless: true,
    args,
    // Playwright adds --disable-gpu, which hides WebGPU; keep it only for the no-WebGPU browser.
    ignoreDefaultArgs: webgpu ? ["--disable-gpu"] : [],
    serviceWorkers,
  };
  const dir = userDataDir ?? temporaryDir("lucy-chromium-");
  const context = await chromium.launchPersistentContext(dir, options);
  return context;
}

/// Open the page and collect what must not happen: console errors, uncaught errors, CSP
/// violations; and which wasm modules the page's own thread compiles.
export async function openPage(context, query = "", { url = base, waitReady = true, page: given = null } = {}) {
  const page = given ?? context.pages()[0] ?? (await context.newPage());
  const errors = [];
  page.on("pageerror", (e) => errors.push(`uncaught: ${e}`));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
    window.__wasmCompiled = [];
    for (const name of ["instantiateStreaming", "compileStreaming"]) {
      const original = WebAssembly[name];
      WebAssembly[name] = async function (source, ...rest) {
        const response = await source;
        window.__wasmCompiled.push(response.url);
        return original.call(this, response, ...rest);
      };
    }
    for (const name of ["instantiate", "compile"]) {
      const original = WebAssembly[name];
      WebAssembly[name] = function (source, ...rest) {
        if (!(source instanceof WebAssembly.Module)) window.__wasmCompiled.push(`${name}: ${source.byteLength} bytes`);
        return original.call(this, source, ...rest);
      };
    }
  });
  await page.goto(url + query);
  if (waitReady) await waitReady_(page, errors);
  return { page, errors };
}

export async function waitReady_(page, errors) {
  await page.waitForFunction(() => document.body.dataset.ready, null, { timeout: 120_000 });
  const ready = await page.evaluate(() => document.body.dataset.ready);
  assert.equal(ready, "true", `the page did not start: ${await page.textContent("#results")} ${errors.join(" | ")}`);
}

/// No console error, uncaught error or CSP violation, but the deliberate ones named in `allowed`.
export async function assertClean(page, errors, allowed = []) {
  const unexpected = errors.filter((e) => !allowed.some((pattern) => pattern.test(e)));
  assert.deepEqual(unexpected, [], "console errors");
  assert.deepEqual(await page.evaluate(() => window.__csp), [], "CSP violations");
}

/// Set `file` on an input and wait for its card (the newest) to be finished.
export async function upload(page, file, timeout = 120_000, input = "#files") {
  const before = await page.locator(".result").count();
  await page.setInputFiles(input, file);
  await page.waitForFunction(
    (n) => {
      const cards = document.querySelectorAll(".result");
      return cards.length > n && ["done", "error"].includes(cards[0].dataset.state);
    },
    before,
    { timeout },
  );
  return page.locator(".result").first();
}

/// A head file as `lucy train` writes it: safetensors with the labels in its metadata.
export function headFile(features, labels, fill) {
  const classes = labels.length;
  const weight = new Float32Array(features * classes).fill(fill);
  const bias = new Float32Array(classes).map((_, i) => i); // the last class wins on ties
  const header = {
    __metadata__: { lucy_head: JSON.stringify({ name: "from-disk", labels }) },
    bias: { dtype: "F32", shape: [classes], data_offsets: [0, bias.byteLength] },
    weight: { dtype: "F32", shape: [features, classes], data_offsets: [bias.byteLength, bias.byteLength + weight.byteLength] },
  };
  let json = Buffer.from(JSON.stringify(header));
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([size, json, Buffer.from(bias.buffer), Buffer.from(weight.buffer)]);
}
