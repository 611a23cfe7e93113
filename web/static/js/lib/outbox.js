/* The outbox shown on a page: every report and visit the reader wrote on this phone that the
 * server does not have yet ("waiting to send"), has stored (with its number and grid), or refused
 * (the server's words: a conflict, a field it did not accept). */
import { el, fill, setText } from "./dom.js";
import { t } from "./i18n.js";
import { discard, entries, flush, watch } from "./queue.js";

function stored(entry) {
  const r = entry.result || {};
  const p = r.properties || r;
  const grid = p.grid_code || p.grid || p.area_code;
  const id = r.id !== undefined ? `#${r.id}` : "";
  return [t("outbox_sent"), id, grid ? `· ${t("grid")} ${grid}` : "", r.replayed ? `· ${t("outbox_replayed")}` : ""]
    .filter(Boolean).join(" ");
}

function stateWords(entry) {
  switch (entry.state) {
    case "waiting": return t(navigator.onLine ? "outbox_waiting" : "outbox_offline");
    case "sending": return t("outbox_sending");
    case "sent": return stored(entry);
    case "conflict": return `${t("outbox_conflict")}: ${entry.message || ""}`;
    default: return `${t("outbox_refused")}: ${entry.field ? `[${entry.field}] ` : ""}${entry.message || ""}`;
  }
}

/** Keep `node` showing the reader's outbox; `count` (optional) shows how many wait. */
export function showOutbox(node, count) {
  async function render() {
    const all = await entries();
    const waiting = all.filter((e) => e.state === "waiting" || e.state === "sending").length;
    if (count) {
      setText(count, waiting ? t("outbox_count", { n: waiting }) : "");
      count.hidden = !waiting;
    }
    node.dataset.waiting = String(waiting);
    node.dataset.sent = String(all.filter((e) => e.state === "sent").length);
    if (!all.length) { fill(node, el("p", { className: "hint", text: t("outbox_empty") })); return; }
    fill(node, el("ul", { className: "outbox-list" }, all.slice().reverse().map((entry) => el("li", {
      className: ["outbox-entry", `state-${entry.state}`], dataset: { key: entry.key, state: entry.state },
    }, el("span", { className: "what", text: entry.label }),
       el("span", { className: "state", text: stateWords(entry) }),
       entry.state === "conflict" || entry.state === "refused"
         ? el("button", { type: "button", className: "discard", text: t("outbox_discard"),
                          on: { click: () => discard(entry.key) } })
         : null))));
  }
  watch(render);
  window.addEventListener("online", render);
  window.addEventListener("offline", render);
  render();
  flush();
  return render;
}
