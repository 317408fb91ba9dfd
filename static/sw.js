// Offline support for the app shell (HTML, both wasm modules and their scripts, CSS, icons).
// scripts/finish_site.py writes in, at build time, the shell's file list and a version made
// from their contents. On install every shell file is kept, so one visit is enough to work
// offline; shell files are then served from that copy (cache first), and a new build (a new
// version) replaces it as a whole. The page waits for this worker before it starts the model's
// worker, so the 30 MB model wasm is downloaded once, by the install, and compiled once, in
// the model's worker. The weights are not handled here: the page keeps them in the Cache API
// itself, verified by sha256.
const SHELL = "lucy-app-/* VERSION */";
const SHELL_FILES = [/* SHELL_FILES */];

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(SHELL);
      await cache.addAll(SHELL_FILES);
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

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  // Not the weights (the page keeps and verifies them itself): the browser's own handling.
  if (request.method !== "GET" || url.origin !== location.origin || url.pathname.includes("/weights/")) return;
  event.respondWith(
    (async () => {
      // The page's address with any ?query is the shell's index.
      const cached = await caches.match(request, { cacheName: SHELL, ignoreSearch: request.mode === "navigate" });
      return cached ?? fetch(request);
    })(),
  );
});
