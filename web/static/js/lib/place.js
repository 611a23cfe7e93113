/* Where a grid worker is and whether that is theirs: the phone's own position (browser
 * geolocation, WGS84, with its accuracy), and whether a point lies in one of the reader's grids —
 * and if not, which grid it fell in. The server checks again on every write. */
import { get, query } from "./api.js";

function rings(lyr) {
  const out = [];
  const collect = (ll) => { if (ll.length && ll[0] instanceof L.LatLng) { out.push(ll); } else { ll.forEach(collect); } };
  collect(lyr.getLatLngs());
  return out;
}

// Ray casting over every ring of the grid's (multi)polygon.
function inLayer(latlng, lyr) {
  let inside = false;
  for (const ring of rings(lyr)) {
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const a = ring[i];
      const b = ring[j];
      if ((a.lat > latlng.lat) !== (b.lat > latlng.lat) &&
          latlng.lng < (b.lng - a.lng) * (latlng.lat - a.lat) / (b.lat - a.lat) + a.lng) {
        inside = !inside;
      }
    }
  }
  return inside;
}

/** The feature of the reader's grid (a layer of a L.geoJSON group) containing latlng, or null. */
export function gridOf(gridLayer, latlng) {
  const hit = gridLayer.getLayers().find((lyr) => lyr.getBounds().contains(latlng) && inLayer(latlng, lyr));
  return hit ? hit.feature : null;
}

/** The area a point outside the reader's grids fell in: {code, name} from /api/lookup, or null
 * (outside every jurisdiction, or no network to ask). */
export async function areaAt(latlng) {
  try {
    const found = await get(`/api/lookup${query({ lon: latlng.lng.toFixed(7), lat: latlng.lat.toFixed(7), crs: "wgs84" })}`);
    return found.inside && found.area ? found.area : null;
  } catch {
    return null;
  }
}

/** The phone's position: {latlng, accuracy (metres)}; rejects with the browser's error. */
export function myPosition({ timeout = 20000 } = {}) {
  return new Promise((resolve, reject) => {
    if (!navigator.geolocation) { reject(new Error("geolocation unavailable")); return; }
    navigator.geolocation.getCurrentPosition(
      (pos) => resolve({ latlng: L.latLng(pos.coords.latitude, pos.coords.longitude),
                         accuracy: pos.coords.accuracy, at: new Date(pos.timestamp) }),
      reject, { enableHighAccuracy: true, timeout, maximumAge: 10000 });
  });
}

/** A point as the API takes it: {lon, lat} rounded to 7 decimals (about 1 cm). */
export function lonLat(latlng) {
  return { lon: Number(latlng.lng.toFixed(7)), lat: Number(latlng.lat.toFixed(7)) };
}

/** A moment as an ISO date-time with the phone's offset (what datetime-local lacks). */
export function localIso(value) {
  if (!value) { return ""; }
  const offset = -new Date(value).getTimezoneOffset();
  const pad = (n) => String(Math.floor(Math.abs(n))).padStart(2, "0");
  return `${value}${value.length === 16 ? ":00" : ""}${offset >= 0 ? "+" : "-"}${pad(offset / 60)}:${pad(offset % 60)}`;
}

/** Now as a datetime-local value (minutes), in the phone's time. */
export function nowLocal() {
  const d = new Date();
  d.setMinutes(d.getMinutes() - d.getTimezoneOffset());
  return d.toISOString().slice(0, 16);
}

/** A photo file made small enough to send over a weak signal: a JPEG data URL at most `edge`
 * pixels on its longer side. */
export async function shrinkPhoto(file, edge = 1600, quality = 0.8) {
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, edge / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}
