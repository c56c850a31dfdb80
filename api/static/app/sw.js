"use strict";
// The people's app's service worker: the app shell offline, a new version taking over
// when the person says so, and alerts as notifications (Web Push, VAPID) that open the
// alert when tapped. The API is never cached: what it answers is live or nothing.
const VERSION = "__VERSION__"; // the API fills in a digest of the app's files
const CACHE = `qorgau-app-${VERSION}`;
const SHELL = [
  "/app/", "/app/app.js", "/app/app.css", "/app/i18n.js", "/app/manifest.webmanifest",
  "/app/icon-192.png", "/app/icon-512.png",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)));
  // No skipWaiting here: an open app is not switched under a person's fingers; it offers
  // the new version and the person takes it (the page posts "skip-waiting").
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith("qorgau-app-") && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

self.addEventListener("message", (event) => {
  if (event.data && event.data.type === "skip-waiting") self.skipWaiting();
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (!url.pathname.startsWith("/app/")) return; // the API and everything else: the network
  if (event.request.mode === "navigate") {
    // The page: fresh when the network answers, the cached shell when it does not.
    event.respondWith(fetch(event.request).catch(() => caches.match("/app/", { cacheName: CACHE })));
    return;
  }
  event.respondWith(
    caches.match(event.request, { cacheName: CACHE }).then((hit) => hit || fetch(event.request)),
  );
});

// --- push ----------------------------------------------------------------------------------
function targetOf(data) {
  // The alert's number is not known when the notification is made (see the API's `link`):
  // the sensor's alarms, and the moment this one began; the app opens it from the list.
  if (data.purpose === "evacuate") {
    return `#/evacuate?${new URLSearchParams({ zone_id: data.zone_id || "", body: data.body || "" })}`;
  }
  if (data.alert_id) return `#/alerts/${data.alert_id}`;
  if (data.sensor_id) {
    const query = new URLSearchParams({ status: "all", sensor_id: data.sensor_id });
    if (data.ts) query.set("at", data.ts); // the app opens the alarm that began then
    return `#/alerts?${query}`;
  }
  return data.hash || "#/alerts";
}

self.addEventListener("push", (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch { data = { body: event.data?.text() }; }
  const critical = data.severity === "critical" || data.purpose === "evacuate";
  const options = {
    body: data.body || "",
    tag: data.alert_key || data.change_id || "qorgau",
    renotify: true,
    requireInteraction: critical, // a critical alarm stays until someone looks at it
    icon: "/app/icon-192.png",
    badge: "/app/icon-192.png",
    lang: data.language || "ru",
    data: { hash: targetOf(data), purpose: data.purpose || "alert" },
  };
  event.waitUntil((async () => {
    // An open app shows it at once (an evacuation takes its whole screen), whatever
    // happens to the notification.
    for (const client of await self.clients.matchAll({ type: "window", includeUncontrolled: true })) {
      client.postMessage({ type: "push", data });
    }
    await self.registration.showNotification(data.title || "Qorgau", options);
  })());
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const hash = (event.notification.data && event.notification.data.hash) || "#/alerts";
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    const open = windows.find((c) => new URL(c.url).pathname.startsWith("/app/"));
    if (open) {
      open.postMessage({ type: "open", hash });
      return open.focus();
    }
    return self.clients.openWindow(`/app/${hash}`);
  })());
});
