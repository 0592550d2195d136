/* Puhui 浦汇 — the volunteer page's service worker (served as "/report-sw.js", scope "/report").
 *
 * It keeps the page's own files so the page opens without a connection (a basement, a lane with
 * no signal): network first, the kept copy only when the network fails. It never touches the
 * API: reports made offline wait in the page's outbox (report.js), not here, and photos taken
 * offline wait with them in IndexedDB (photo-upload.js).
 */
"use strict";

const CACHE = "puhui-report-v2";
const SHELL = [
  "/report",
  "/static/common.css",
  "/static/report.css",
  "/static/common.js",
  "/static/report.js",
  "/static/photo-upload.js",
  "/static/photo-upload.css",
  "/static/favicon.svg",
  "/static/report.webmanifest",
  "/static/icon-192.png",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (!SHELL.includes(url.pathname)) return; // the API and everything else: straight through
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          event.waitUntil(caches.open(CACHE).then((cache) => cache.put(url.pathname, copy)));
        }
        return response;
      })
      .catch(() => caches.match(url.pathname).then((kept) => kept || Response.error())),
  );
});
