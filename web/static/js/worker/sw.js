/* The service worker (served as /sw.js, with VERSION and SHELL defined above this line): the app
 * shell, the worker's own pages and data, and basemap tiles stay usable without signal.
 *
 * - shell (static files, vendor libraries): from the cache, refreshed when the version changes;
 * - the reader's pages and data (their day, their grids, their report form): from the network,
 *   kept in the user cache for when there is none. Logging out or in drops that cache whole, so
 *   the next person on this phone never gets the first one's data;
 * - basemap tiles: from the cache once seen, up to TILE_LIMIT of them.
 * Writes are never cached or replayed here: the pages queue them (lib/queue.js). */

const SHELL_CACHE = `anwang-shell-${VERSION}`;
const USER_CACHE = "anwang-user";
const TILE_CACHE = "anwang-tiles";
const TILE_LIMIT = 3000;
// Pages of the reader kept for offline use; other pages need the network.
const USER_PAGES = new Set(["/", "/day", "/report", "/start"]);
// The reader's data kept for offline use (their day, their grids and what is in them).
const USER_API = /^\/api\/(me(\/|$)|areas(\/|\?|$)|incidents(\?|$)|households|visits(\?|$))/;
const TILE_PATH = /^\/tiles\/|\/\d+\/\d+\/\d+\.(png|jpe?g|webp|pbf)$|TILEMATRIX=/i;

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(SHELL_CACHE);
    await cache.addAll(SHELL);
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith("anwang-shell-") && name !== SHELL_CACHE) { await caches.delete(name); }
    }
    await self.clients.claim();
  })());
});

self.addEventListener("message", (event) => {
  if (event.data && event.data.type === "forget-user") {
    event.waitUntil(caches.delete(USER_CACHE));
  }
});

async function fromShell(request) {
  const cached = await caches.match(request, { cacheName: SHELL_CACHE });
  if (cached) { return cached; }
  const response = await fetch(request);
  if (response.ok) { (await caches.open(SHELL_CACHE)).put(request, response.clone()); }
  return response;
}

async function networkFirst(request) {
  try {
    const response = await fetch(request);
    // Only a real answer for a logged-in reader is kept (a redirect to /login is not).
    if (response.ok && !response.redirected && response.type === "basic") {
      (await caches.open(USER_CACHE)).put(request, response.clone());
    }
    return response;
  } catch (error) {
    const cached = await caches.match(request, { cacheName: USER_CACHE });
    if (cached) { return cached; }
    if (request.mode === "navigate") {
      return new Response("离线：此页尚未保存在本机。Offline: this page has not been kept on this phone.",
        { status: 503, headers: { "Content-Type": "text/plain; charset=utf-8" } });
    }
    throw error;
  }
}

async function trimTiles(cache) {
  const keys = await cache.keys();
  for (const key of keys.slice(0, Math.max(0, keys.length - TILE_LIMIT))) { await cache.delete(key); }
}

async function tile(request) {
  const cache = await caches.open(TILE_CACHE);
  const cached = await cache.match(request);
  if (cached) { return cached; }
  const response = await fetch(request);
  if (response.ok || response.type === "opaque") {
    await cache.put(request, response.clone());
    trimTiles(cache);
  }
  return response;
}

async function forgetThenSend(request) {
  await caches.delete(USER_CACHE);
  return fetch(request);
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  const local = url.origin === self.location.origin;
  if (request.method === "POST" && local && (url.pathname === "/logout" || url.pathname === "/login")) {
    event.respondWith(forgetThenSend(request));   // the next reader starts with nothing of this one
    return;
  }
  if (request.method !== "GET") { return; }
  if (local && (url.pathname.startsWith("/static/") || url.pathname.startsWith("/vendor/"))) {
    event.respondWith(fromShell(request));
  } else if (local && (USER_PAGES.has(url.pathname) || USER_API.test(url.pathname + url.search))) {
    event.respondWith(networkFirst(request));
  } else if (request.destination === "image" && TILE_PATH.test(url.pathname + url.search)) {
    event.respondWith(tile(request));
  }
});
