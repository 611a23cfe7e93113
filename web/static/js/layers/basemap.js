/* The self-served basemap (/tiles/basemap): land use, water, buildings, railways and roads painted
 * on canvas by protomaps-leaflet, then the names of places, roads, 小区 and buildings (Chinese
 * where the data has them: the server picks name:zh before name). Everything comes from this app,
 * so the map still shows streets and names on an intranet with no way out. */

const BACKGROUND = "#f3f1ec";
const LANDUSE = {
  residential: "#e9e4de", industrial: "#e6dfe6", commercial: "#efe3e1", retail: "#efe3e1",
  farmland: "#eef2d8", meadow: "#e3efcf", grass: "#dcefcf", park: "#d4ecc4", forest: "#cde3bd",
  wood: "#cde3bd", cemetery: "#d8e3d0",
};
const WATER = "#a9cce3";
const ROADS = {   // class: [fill colour, casing colour, width at zoom 16 in pixels]
  motorway: ["#f6c37b", "#d99a4e", 9], trunk: ["#f8d18f", "#d9a55e", 8], primary: ["#fbe1a6", "#d0ae6e", 7],
  secondary: ["#fff3c4", "#c9b27c", 6], tertiary: ["#ffffff", "#bfb5a5", 5], minor: ["#ffffff", "#c8c1b6", 3.5],
  service: ["#ffffff", "#d0cac0", 2], path: ["#f7f4ef", "#c9b8a6", 1],
};
const PLACE_SIZE = { city: 18, town: 16, suburb: 14, village: 13, hamlet: 12, neighbourhood: 12, locality: 12, poi: 11 };
const FONT = "\"Noto Sans CJK SC\", \"Source Han Sans SC\", \"PingFang SC\", \"Microsoft YaHei\", sans-serif";

const POLYGON = 3;
const LINE = 2;

const cls = (f) => f.props.class;
const road = (f) => ROADS[cls(f)] || ROADS.minor;
// A road's width grows twofold per zoom towards its zoom-16 width (a line stays at least a hairline).
const widthAt = (z, full) => Math.max(0.5, full * 2 ** (Math.min(z, 18) - 16));

/** A label symbolizer drawn at a polygon's centre (protomaps-leaflet anchors at the first vertex),
 * and only when that centre lies in the tile, so a polygon cut by tile edges is named once. */
function atCentre(inner) {
  return {
    place(layout, geom, feature) {
      const ring = geom[0];
      if (!ring || !ring.length) { return undefined; }
      let x = 0;
      let y = 0;
      for (const p of ring) { x += p.x; y += p.y; }
      const centre = new ring[0].constructor(x / ring.length, y / ring.length);   // the renderer's Point
      if (centre.x < 0 || centre.y < 0 || centre.x >= 256 || centre.y >= 256) { return undefined; }
      return inner.place(layout, [[centre]], feature);
    },
  };
}

function paintRules(P) {
  const rules = [
    { dataLayer: "landuse", symbolizer: new P.PolygonSymbolizer({ fill: (z, f) => LANDUSE[cls(f)] || "#ebe8e1" }) },
    { dataLayer: "water", filter: (z, f) => f.geomType === POLYGON,
      symbolizer: new P.PolygonSymbolizer({ fill: WATER }) },
    { dataLayer: "water", filter: (z, f) => f.geomType === LINE,
      symbolizer: new P.LineSymbolizer({ color: WATER, width: (z, f) => widthAt(z, cls(f) === "river" ? 8 : 3) }) },
    { dataLayer: "buildings", filter: (z, f) => f.geomType === POLYGON,
      symbolizer: new P.PolygonSymbolizer({ fill: "#dcd3ca", stroke: "#c5b8ab", width: 0.5 }) },
    { dataLayer: "buildings", filter: (z, f) => f.geomType !== POLYGON,
      symbolizer: new P.CircleSymbolizer({ radius: 3, fill: "#cbbfb3", stroke: "#a89a8c", width: 0.5 }) },
    { dataLayer: "railways",
      symbolizer: new P.LineSymbolizer({ color: "#8c8c8c", width: (z) => widthAt(z, 3),
                                         dash: [6, 4], dashColor: "#ffffff", dashWidth: (z) => widthAt(z, 2) }) },
  ];
  // Casings first, then fills, minor roads under major ones.
  const order = Object.keys(ROADS).reverse();
  for (const key of order) {
    rules.push({ dataLayer: "roads", filter: (z, f) => (ROADS[cls(f)] ? cls(f) : "minor") === key,
                 symbolizer: new P.LineSymbolizer({ color: ROADS[key][1], width: (z) => widthAt(z, ROADS[key][2]) + 1.5,
                                                    lineCap: "round" }) });
  }
  for (const key of order) {
    rules.push({ dataLayer: "roads", filter: (z, f) => (ROADS[cls(f)] ? cls(f) : "minor") === key,
                 symbolizer: new P.LineSymbolizer({ color: ROADS[key][0], width: (z) => widthAt(z, ROADS[key][2]),
                                                    lineCap: "round" }) });
  }
  return rules;
}

function labelRules(P) {
  const text = (size, fill, extra = {}) => ({ labelProps: ["name"], fontFamily: FONT, fontSize: size, fill,
                                              stroke: "#ffffff", width: 2.5, ...extra });
  return [
    { dataLayer: "places", filter: (z, f) => cls(f) !== "poi",
      symbolizer: new P.CenteredTextSymbolizer(text((z, f) => PLACE_SIZE[cls(f)] || 12, "#333333",
                                                    { fontWeight: 600 })),
      sort: (a, b) => (PLACE_SIZE[b.class] || 0) - (PLACE_SIZE[a.class] || 0) },
    { dataLayer: "roads", filter: (z, f) => Boolean(f.props.name),
      symbolizer: new P.LineLabelSymbolizer(text((z, f) => (road(f)[2] >= 5 ? 12 : 11), "#4a4036")) },
    { dataLayer: "landuse", minzoom: 14, filter: (z, f) => Boolean(f.props.name),
      symbolizer: atCentre(new P.CenteredTextSymbolizer(text(11, "#6b5b4b"))) },
    { dataLayer: "water", minzoom: 12, filter: (z, f) => Boolean(f.props.name),
      symbolizer: new P.LineLabelSymbolizer(text(11, "#2b6a99")) },
    { dataLayer: "places", minzoom: 15, filter: (z, f) => cls(f) === "poi",
      symbolizer: new P.CenteredTextSymbolizer(text(10, "#6b5b4b")) },
    { dataLayer: "buildings", minzoom: 17, filter: (z, f) => Boolean(f.props.name),
      symbolizer: new P.OffsetTextSymbolizer(text(10, "#6b5b4b", { offsetY: 4 })) },
  ];
}

/** The basemap as a Leaflet layer reading `url` (a {z}/{x}/{y}.mvt template), or null when the
 * renderer is not on the page. */
export function localBasemap(url, { maxzoom = 16, attribution = "" } = {}) {
  const P = window.protomapsL;
  if (!P || !url) { return null; }
  return P.leafletLayer({
    url, levelDiff: 0, maxDataZoom: maxzoom, maxZoom: 20, attribution,
    backgroundColor: BACKGROUND, paintRules: paintRules(P), labelRules: labelRules(P),
  });
}
