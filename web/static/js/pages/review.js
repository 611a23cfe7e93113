/* The analysts' review page: its map is a document of its own in a sandboxed frame, which can
 * neither read nor keep the reader's basemap choice; the page hands the choice in and keeps the
 * one the reader makes on the map, as every other page's map does. */
import { preferredBasemap, rememberBasemap } from "../lib/map.js";

const frame = document.querySelector("iframe.review-map");
if (frame) {
  const wanted = preferredBasemap();
  const src = new URL(frame.getAttribute("src"), window.location.href);
  if (wanted && wanted !== (src.searchParams.get("basemap") || frame.dataset.basemap)) {
    src.searchParams.set("basemap", wanted);
    frame.src = src.pathname + src.search;
  }
  window.addEventListener("message", (event) => {
    const key = event.source === frame.contentWindow && event.data && event.data.basemap;
    if (typeof key === "string") { rememberBasemap(key); }
  });
}
