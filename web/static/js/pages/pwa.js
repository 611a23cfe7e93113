/* On every page: install the service worker (the site works as a phone app, offline), and make
 * sure nothing the last reader saw stays cached once they leave — on logout, and whenever the
 * login page shows (a session that ended by itself). */
const USER_CACHE = "anwang-user";

async function forgetUser() {
  try {   // a patrol device token stays with the reader who entered it
    for (const key of Object.keys(localStorage)) { if (key.startsWith("anwang.patrol.")) { localStorage.removeItem(key); } }
  } catch { /* no storage */ }
  if (!("caches" in window)) { return; }
  await caches.delete(USER_CACHE);
  const worker = navigator.serviceWorker && navigator.serviceWorker.controller;
  if (worker) { worker.postMessage({ type: "forget-user" }); }
}

const meta = document.querySelector('meta[name="anwang-sw"]');
if (meta && "serviceWorker" in navigator) {
  navigator.serviceWorker.register(meta.content, { scope: "/" }).catch(() => {
    /* an insecure origin or a refused worker: the site works online as before */
  });
}

if (document.body.classList.contains("page-login")) { forgetUser(); }

for (const form of document.querySelectorAll("form.logout")) {
  form.addEventListener("submit", (event) => {
    if (form.dataset.forgotten) { return; }
    event.preventDefault();
    forgetUser().finally(() => { form.dataset.forgotten = "1"; form.submit(); });
  });
}
