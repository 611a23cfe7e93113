/* The outbox: reports and visits written on the phone, kept in IndexedDB until the server has them.
 *
 * Each entry gets its idempotency key (crypto.randomUUID) when it is written, and every sending
 * carries it as the Idempotency-Key header, so an entry sent twice — the answer lost on a weak
 * signal, two tabs, a page closed while sending — is stored once: the server answers the repeat
 * with the stored record. Entries wait while there is no network and go when it returns (the
 * online event, and a retry with growing pauses). A refusal (a conflict, a field the server
 * rejects) stays in the outbox with the server's words, for the reader to see. */
import { ApiError, request } from "./api.js";

const DB_NAME = "anwang";
const STORE = "outbox";
const RETRY_MS = [2000, 5000, 15000, 30000, 60000];
const KEEP_SENT_MS = 24 * 3600 * 1000;   // sent entries are shown for a day, then dropped

const listeners = new Set();
let opening = null;
let flushing = null;
let again = false;
let retryTimer = null;
let attempt = 0;

function open() {
  if (!opening) {
    opening = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, 1);
      req.onupgradeneeded = () => {
        const store = req.result.createObjectStore(STORE, { keyPath: "key" });
        store.createIndex("user", "user");
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  return opening;
}

async function tx(mode, work) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const t = db.transaction(STORE, mode);
    const result = work(t.objectStore(STORE));
    t.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error);
  });
}

/** The reader's user name (from the page), whose entries this page may send. */
export function currentUser() {
  const meta = document.querySelector('meta[name="anwang-user"]');
  return meta ? meta.content : null;
}

function changed() {
  for (const listen of listeners) { listen(); }
}

/** Call listen() whenever the outbox changes; returns a function that stops it. */
export function watch(listen) {
  listeners.add(listen);
  return () => listeners.delete(listen);
}

async function put(entry) {
  await tx("readwrite", (store) => store.put(entry));
  changed();
  return entry;
}

/** The reader's entries, oldest first. */
export async function entries() {
  const user = currentUser();
  const all = await tx("readonly", (store) => store.index("user").getAll(user));
  return (all || []).sort((a, b) => a.created.localeCompare(b.created));
}

/** Put a write in the outbox: kind ("report", "visit"), the API URL, its JSON body and a label to
 * show; returns the entry (state "waiting") and starts sending. */
export async function enqueue(kind, url, body, label) {
  const entry = { key: crypto.randomUUID(), user: currentUser(), kind, url, body, label,
                  created: new Date().toISOString(), state: "waiting", message: null, result: null };
  await put(entry);
  flush();
  return entry;
}

async function sendOne(entry) {
  await put({ ...entry, state: "sending" });
  try {
    const answer = await request(entry.url, { method: "POST", json: entry.body,
                                              headers: { "Idempotency-Key": entry.key } });
    await put({ ...entry, state: "sent", message: null, result: answer, sent: new Date().toISOString() });
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 408
        && error.status !== 429 && error.code !== "csrf") {
      // The server read it and said no: kept, with its words, never sent again by itself.
      await put({ ...entry, state: error.status === 409 ? "conflict" : "refused",
                  message: error.message, field: error.field || null });
      return true;
    }
    await put({ ...entry, state: "waiting", message: null });   // no network, or the server is down
    return false;
  }
}

async function prune() {
  const now = Date.now();
  for (const entry of await entries()) {
    if (entry.state === "sent" && now - Date.parse(entry.sent) > KEEP_SENT_MS) {
      await tx("readwrite", (store) => store.delete(entry.key));
    }
  }
}

function scheduleRetry() {
  if (retryTimer) { return; }
  const pause = RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)];
  attempt += 1;
  retryTimer = setTimeout(() => { retryTimer = null; flush(); }, pause);
}

async function flushOnce() {
  let blocked = false;
  for (const entry of await entries()) {
    // "sending" left over from a page closed mid-request goes again: the key makes that safe.
    if (entry.state !== "waiting" && entry.state !== "sending") { continue; }
    if (!(await sendOne(entry))) { blocked = true; break; }
  }
  await prune();
  if (blocked) { scheduleRetry(); } else { attempt = 0; }
}

/** Send every waiting entry of the reader, one after another, in the order written. A call while
 * a sending is under way runs once more after it. Resolves when the outbox has been tried. */
export function flush() {
  if (!currentUser()) { return Promise.resolve(); }
  if (flushing) { again = true; return flushing; }
  flushing = (async () => {
    try {
      do { again = false; await flushOnce(); } while (again);
    } finally {
      flushing = null;
    }
  })();
  return flushing;
}

/** Drop an entry the reader gave up on (a refused or conflicting one). */
export async function discard(key) {
  await tx("readwrite", (store) => store.delete(key));
  changed();
}

window.addEventListener("online", () => { attempt = 0; flush(); });
