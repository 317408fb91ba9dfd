// Offline support for the app shell (HTML, the wasm modules and their scripts, CSS, icons).
// scripts/finish_site.py writes in, at build time, the shell's file list, the model wasms'
// names and a version made from their contents. On install every shell file is kept; a model
// wasm (WebGPU and one thread, 31 MB; or a threaded CPU one, 4.8 MB) is kept when the model's worker
// first fetches it, so a visitor downloads only the one their browser runs, once. One visit is
// enough to work offline. Files are served from that copy (cache first), and a new build (a new
// version) replaces it as a whole. The page waits for this worker before it starts the model's
// worker, so that fetch goes through here. The weights are not handled here: the page keeps
// them in the Cache API itself, verified by sha256.
//
// Cross-origin isolation on any static host: every file of lucy's this worker serves carries
// COOP and COEP, which a plain static host cannot send. An isolated page may share memory between
// threads (the threaded CPU model); the page reloads once on a first visit to become so
// (web::ui::offline). The site loads nothing from other origins, so COEP blocks nothing.
const SHELL = "lucy-app-/* VERSION */";
const SHELL_FILES = [/* SHELL_FILES */];
const MODEL_FILES = [/* MODEL_FILES */];

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(SHELL);
      // From the server, not the HTTP cache: a new version's files, never an old one's.
      await cache.addAll(SHELL_FILES.map((file) => new Request(file, { cache: "reload" })));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) =>
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith("lucy-app-") && name !== SHELL) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  ),
);

// lucy's own files only: the shell, the model wasms, and the page's address (with any
// ?query). Anything else under this worker's scope (other sites on the same origin, the
// weights, which the page keeps and verifies itself) gets the browser's own handling and no
// extra headers.
const SCOPE = new URL(self.registration.scope);
const SHELL_PATHS = new Set(SHELL_FILES.map((file) => new URL(file, SCOPE).pathname));
const MODEL_PATHS = new Set(MODEL_FILES.map((file) => new URL(file, SCOPE).pathname));

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  const path = url.pathname === SCOPE.pathname + "index.html" ? SCOPE.pathname : url.pathname;
  const ours = SHELL_PATHS.has(path) || MODEL_PATHS.has(path);
  if (request.method !== "GET" || url.origin !== location.origin || !ours) return;
  event.respondWith(
    (async () => {
      const cached = await caches.match(request, { cacheName: SHELL, ignoreSearch: request.mode === "navigate" });
      if (cached) return isolating(cached);
      const model = MODEL_PATHS.has(path);
      // A model wasm from the server (not an older build's from the HTTP cache), then kept.
      const response = await fetch(request, model ? { cache: "no-cache" } : {});
      if (response.ok && model) {
        // Kept whole or not at all: a download cut short fails the put.
        const copy = response.clone();
        event.waitUntil(caches.open(SHELL).then((cache) => cache.put(request, copy)));
      }
      return isolating(response);
    })(),
  );
});

function isolating(response) {
  // A redirect (status 0) cannot be rebuilt: it passes as it is.
  if (response.type === "opaqueredirect" || response.status === 0) return response;
  const headers = new Headers(response.headers);
  headers.set("Cross-Origin-Opener-Policy", "same-origin");
  headers.set("Cross-Origin-Embedder-Policy", "require-corp");
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}
