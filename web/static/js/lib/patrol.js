/* Patrol from the phone, in the foreground: while the reader is on duty and the page is open, the
 * phone's fixes (browser geolocation, WGS84) go to the batch positions API under the unit's device
 * token, every SEND_MS or when BATCH fixes have gathered. Fixes wait while there is no network (the
 * API stores a repeated fix once). With the screen off the browser stops: Traccar Client does that. */
import { request } from "./api.js";
import { setText } from "./dom.js";
import { t } from "./i18n.js";
import { currentUser } from "./queue.js";

const SEND_MS = 30000;
const BATCH = 20;
const KEEP = 2000;   // fixes kept while offline, newest last

/** The device token's storage key for this reader (dropped at logout, see pages/pwa.js). */
export function tokenKey() {
  return `anwang.patrol.${currentUser() || ""}`;
}

/** Wire the patrol controls: {token: input, toggle: button, status: element}. */
export function startPatrol({ token, toggle, status }) {
  let watchId = null;
  let timer = null;
  let lock = null;
  let pending = [];
  let sent = 0;
  try { token.value = localStorage.getItem(tokenKey()) || ""; } catch { /* no storage */ }

  function show() {
    setText(status, watchId === null ? "" : t("patrol_on", { n: sent, waiting: pending.length }));
    setText(toggle, t(watchId === null ? "start_patrol" : "stop_patrol"));
    document.body.dataset.patrol = watchId === null ? "off" : "on";
  }

  async function send() {
    if (!pending.length || !navigator.onLine) { return; }
    const batch = pending.slice(0, 500);
    try {
      await request("/api/positions", { method: "POST", json: { positions: batch },
                                        headers: { Authorization: `Bearer ${token.value.trim()}` } });
      pending = pending.slice(batch.length);
      sent += batch.length;
    } catch (error) {
      if (error.status && error.status < 500) {
        setText(status, t("patrol_refused", { message: error.message }));
        pending = [];
        return;
      }
    }
    show();
  }

  function fix(pos) {
    const c = pos.coords;
    pending.push({ ts: new Date(pos.timestamp).toISOString(), lon: Number(c.longitude.toFixed(7)),
                   lat: Number(c.latitude.toFixed(7)), accuracy: c.accuracy,
                   speed: c.speed === null ? undefined : c.speed * 3.6,
                   heading: c.heading === null || Number.isNaN(c.heading) ? undefined : c.heading });
    if (pending.length > KEEP) { pending = pending.slice(-KEEP); }
    if (pending.length >= BATCH) { send(); }
    show();
  }

  async function start() {
    if (!token.value.trim()) { setText(status, t("need_token")); return; }
    try { localStorage.setItem(tokenKey(), token.value.trim()); } catch { /* no storage */ }
    watchId = navigator.geolocation.watchPosition(fix, () => {}, { enableHighAccuracy: true, maximumAge: 5000 });
    timer = setInterval(send, SEND_MS);
    try { lock = navigator.wakeLock ? await navigator.wakeLock.request("screen") : null; } catch { lock = null; }
    show();
  }

  async function stop() {
    if (watchId !== null) { navigator.geolocation.clearWatch(watchId); }
    watchId = null;
    clearInterval(timer);
    await send();
    if (lock) { lock.release(); lock = null; }
    show();
    setText(status, t("patrol_off"));
  }

  toggle.addEventListener("click", () => (watchId === null ? start() : stop()));
  window.addEventListener("online", send);
  show();
  return { send, pending: () => pending.length, sent: () => sent };
}
