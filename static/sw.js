// Offline support for the app shell (HTML, JS, wasm, CSS, icons): network first, so a new
// version arrives as soon as it is online, and the last copy when offline. The weights are
// not handled here: the page keeps them in the Cache API itself, verified by sha256.
const SHELL = "lucy-app-v1";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== location.origin || url.pathname.endsWith(".safetensors")) {
    return; // the browser's default handling
  }
  event.respondWith(
    (async () => {
      const cache = await caches.open(SHELL);
      try {
        const response = await fetch(request);
        if (response.ok) await cache.put(request, response.clone());
        return response;
      } catch (error) {
        const cached = await cache.match(request, { ignoreSearch: url.pathname.endsWith("/") });
        if (cached) return cached;
        throw error;
      }
    })(),
  );
});
