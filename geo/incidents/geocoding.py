"""Offline Chinese geocoding (地址解析): address text → point, level matched, confidence, text matched.

The gazetteer is built from the database — areas (区 → 镇/街道 → 村/社区 → 网格), 三零 entities, and
`places` (roads with door numbers, 小区 and their buildings, POIs, village groups 组) — into an
in-memory index, once per process. A statement-level trigger appends to `gazetteer_changes`
whenever areas, places or entities change; `gazetteer(session)` compares the newest change id with
the one its index was built from (one indexed read) and rebuilds only then.

Matching: the address is normalised (NFKC, Chinese numerals before units, 栋/幢/座 → 号楼,
村民小组/队 → 组, the redundant province/city/district prefix dropped), every gazetteer name found in
it is collected longest-first, numbers (123号, 3号楼, 5组) are attached to the road, 小区 or village
they belong to, and whatever text is left is matched against names one edit away (typos, with
same-sound characters preferred). Each candidate entry is then scored by how many other mentions
are its ancestors (a door under the road, grid, village and township named) minus those that
contradict it, so order does not matter and the deepest consistent entry wins: door → building →
小区 → group → village → township. A tie between different places is never broken by guessing: the
result is their deepest common area, marked ambiguous, with the tied candidates listed.
"""
from __future__ import annotations

import re
import threading

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import areas as areas_mod
from geo.incidents.addresses import Prefixes, normalise
from geo.incidents.gazetteer import AREA_KIND, Entry, Gazetteer, aliases_of

# -- building the index from the database ----------------------------------------------------------
_AREAS_SQL = """
    SELECT a.id, a.code, a.name, a.level, a.path::text AS path, a.attrs->>'official_name' AS official,
           ST_X(p) AS lon, ST_Y(p) AS lat
      FROM areas a CROSS JOIN LATERAL (SELECT ST_PointOnSurface(a.geom) AS p) s
     ORDER BY a.level, a.code
"""
# Polygons (小区) are represented by their centroid when it lies inside, lines (roads) by a point
# on them; metric accuracy is not needed here, only a point that is inside the feature.
_PLACES_SQL = """
    SELECT p.id, p.name, p.kind, p.parent_id, p.address, p.attrs, a.code AS area_code,
           ST_X(pt) AS lon, ST_Y(pt) AS lat
      FROM places p
      LEFT JOIN areas a ON a.id = p.area_id
      CROSS JOIN LATERAL (SELECT CASE
            WHEN GeometryType(p.geom) IN ('POINT') THEN p.geom
            WHEN GeometryType(p.geom) IN ('POLYGON', 'MULTIPOLYGON')
                 AND ST_Contains(p.geom, ST_Centroid(p.geom)) THEN ST_Centroid(p.geom)
            WHEN GeometryType(p.geom) = 'LINESTRING' THEN ST_LineInterpolatePoint(p.geom, 0.5)
            ELSE ST_PointOnSurface(p.geom) END AS pt) s
     WHERE p.geom IS NOT NULL
     ORDER BY p.id
"""
# Where each road runs through each township and village: the point used for "沙北街道黄河路".
_ROAD_AREAS_SQL = """
    SELECT p.id AS place_id, a.code, ST_X(pt) AS lon, ST_Y(pt) AS lat
      FROM places p
      JOIN areas a ON a.level IN (2, 3) AND a.geom && p.geom AND ST_Intersects(a.geom, p.geom)
      CROSS JOIN LATERAL (
            SELECT ST_LineInterpolatePoint(d.geom, 0.5) AS pt
              FROM ST_Dump(ST_Intersection(a.geom, p.geom)) d
             WHERE GeometryType(d.geom) = 'LINESTRING'
             ORDER BY ST_Length(d.geom) DESC LIMIT 1) s
     WHERE p.kind = 'road'
"""
_ENTITIES_SQL = """
    SELECT e.id, e.name, e.kind, e.address, a.code AS area_code, ST_X(pt) AS lon, ST_Y(pt) AS lat
      FROM entities e
      LEFT JOIN areas a ON a.id = e.area_id
      CROSS JOIN LATERAL (SELECT ST_PointOnSurface(e.geom) AS pt) s
     WHERE e.kind <> 'village' AND e.geom IS NOT NULL
     ORDER BY e.id
"""
_RE_TRAILING_NUMBER = re.compile(r"(\d+)(?:-\d+)?(号楼|号|组|网格)?$")


def _number(value) -> str | None:
    """The house, building or group number in a value (12, "12号", "三组"), or None."""
    if value is None:
        return None
    m = _RE_TRAILING_NUMBER.search(normalise(str(value)))
    return str(int(m.group(1))) if m else None


def build(session: Session) -> Gazetteer:
    """Read areas, places and entities and build the index."""
    entries: list[Entry] = []
    areas = _area_entries(session, entries)
    prefixes = Prefixes(
        districts=tuple(sorted({e.name for e in entries if e.kind == "district"}, key=len, reverse=True)),
        townships=tuple(sorted({n for e in entries if e.kind == "township" for n in aliases_of(e)},
                               key=len, reverse=True)))
    _number_grids(entries, areas)
    places = _place_entries(session, entries, areas)
    if any(e.kind == "road" for e in places.values()):
        for r in session.execute(text(_ROAD_AREAS_SQL)).mappings():
            road, area = places.get(r["place_id"]), areas.get(r["code"])
            if road is None or area is None:
                continue
            road.compat = road.compat | {area.id} | area.ancestors
            road.road_points[area.id] = (r["lon"], r["lat"])
    for r in session.execute(text(_ENTITIES_SQL)).mappings():
        path, anc = _area_chain(areas, r["area_code"])
        entries.append(Entry(len(entries), "entity", r["name"], r["lon"], r["lat"], r["area_code"],
                             path, f"entity:{r['id']}", address=r["address"], ancestors=anc))
    return Gazetteer(entries, prefixes)


def _area_entries(session: Session, entries: list[Entry]) -> dict[str, Entry]:
    """An entry per area, with its path of codes and its ancestors; returned by code."""
    by_code: dict[str, Entry] = {}
    rows = session.execute(text(_AREAS_SQL)).mappings().all()
    codes_by_id = {r["id"]: r["code"] for r in rows}
    for r in rows:
        ids = [int(x) for x in r["path"].split(".")] if r["path"] else [r["id"]]
        path = tuple(codes_by_id[i] for i in ids if i in codes_by_id)
        e = Entry(len(entries), AREA_KIND.get(r["level"], "grid"), r["name"], r["lon"], r["lat"],
                  r["code"], path, f"area:{r['id']}",
                  aliases=(r["official"],) if r["official"] else ())
        entries.append(e)
        by_code[r["code"]] = e
    for e in by_code.values():
        e.ancestors = frozenset(by_code[c].id for c in e.path[:-1])
    return by_code


def _area_chain(areas: dict[str, Entry], code: str | None) -> tuple[tuple[str, ...], frozenset]:
    """The path of codes and the ancestor ids of what lies in the area `code`."""
    a = areas.get(code) if code else None
    if a is None:
        return (), frozenset()
    return a.path, a.ancestors | {a.id}


def _village_of(areas: dict[str, Entry], path: tuple[str, ...]) -> Entry | None:
    """The village along a path: the parent of its numbered children (组, 第N网格)."""
    for c in reversed(path):
        if areas[c].kind == "village":
            return areas[c]
    return None


def _number_grids(entries: list[Entry], areas: dict[str, Entry]) -> None:
    """A grid named 第N网格 is child N of its village."""
    for a in entries:
        if a.kind in ("grid", "microgrid"):
            m = re.search(r"第(\d+)网格$", normalise(a.name))
            v = _village_of(areas, a.path[:-1])
            if m and v is not None:
                a.parent, a.number = v, str(int(m.group(1)))


def _place_entries(session: Session, entries: list[Entry], areas: dict[str, Entry]) -> dict[int, Entry]:
    """An entry per place, numbered under its parent (door → road, building → 小区, 组 → village),
    with every place above it among its ancestors; returned by place id."""
    rows = session.execute(text(_PLACES_SQL)).mappings().all()
    by_id: dict[int, Entry] = {}
    for r in rows:
        path, anc = _area_chain(areas, r["area_code"])
        e = Entry(len(entries), r["kind"], r["name"], r["lon"], r["lat"], r["area_code"], path,
                  f"place:{r['id']}", address=r["address"], ancestors=anc)
        entries.append(e)
        by_id[r["id"]] = e
    for r in rows:
        e = by_id[r["id"]]
        parent = by_id.get(r["parent_id"]) if r["parent_id"] else None
        attrs = r["attrs"] or {}
        if e.kind in ("door", "building"):
            e.number = _number(attrs.get("number")) or _number(e.name)
            e.parent = parent
        elif e.kind == "group":
            e.number = _number(attrs.get("group") or e.name)
            e.parent = _village_of(areas, e.path)
        elif e.kind == "compound":
            e.parent = parent
    for e in by_id.values():
        up, seen, chain = e.parent, set(), set()
        while up is not None and up.id not in seen:
            seen.add(up.id)
            chain.add(up.id)
            chain |= up.ancestors if up.source.startswith("area:") else set()
            up = up.parent if not up.source.startswith("area:") else None
        e.ancestors = e.ancestors | chain
    return by_id


# -- the per-process cache -------------------------------------------------------------------------
_cache: dict[str, tuple[int, Gazetteer]] = {}
_lock = threading.Lock()


def current_version(session: Session) -> int:
    """The newest gazetteer change id (one backward index scan)."""
    return int(session.execute(text("SELECT COALESCE(max(id), 0) FROM gazetteer_changes")).scalar_one())


def gazetteer(session: Session) -> Gazetteer:
    """The process's index for this database, rebuilt when areas, places or entities changed."""
    key = session.get_bind().engine.url.render_as_string(hide_password=True)
    version = current_version(session)  # read first: data read after it can only be newer
    cached = _cache.get(key)
    if cached and cached[0] == version:
        return cached[1]
    with _lock:
        cached = _cache.get(key)
        if cached and cached[0] == version:
            return cached[1]
        index = build(session)
        _cache[key] = (version, index)
        return index


def invalidate() -> None:
    """Forget every cached index (the next call rebuilds)."""
    with _lock:
        _cache.clear()


def geocode(session: Session, address: str) -> dict:
    """Geocode one address against the current gazetteer."""
    if address is None or not str(address).strip():
        from geo.errors import InvalidInput

        raise InvalidInput("q", "q must be a non-empty address, e.g. 郾城区沙北街道黄河路123号")
    if len(address) > 300:
        from geo.errors import InvalidInput

        raise InvalidInput("q", f"q must be at most 300 characters; got {len(address)}")
    return gazetteer(session).geocode(str(address))


# -- reverse -----------------------------------------------------------------------------------
_NEAREST_SQL = """
    WITH pt AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g),
    near AS (
        (SELECT 'place' AS source, p.id, p.name, p.kind, p.address, p.geom
           FROM places p, pt WHERE p.geom IS NOT NULL AND p.kind <> 'road'
          ORDER BY p.geom <-> pt.g LIMIT 12)
        UNION ALL
        (SELECT 'entity', e.id, e.name, e.kind, e.address, e.geom
           FROM entities e, pt WHERE e.geom IS NOT NULL AND e.kind <> 'village'
          ORDER BY e.geom <-> pt.g LIMIT 6))
    SELECT source, id, name, kind, address,
           ST_Distance(near.geom::geography, pt.g::geography) AS distance_m,
           ST_X(ST_ClosestPoint(near.geom, pt.g)) AS lon, ST_Y(ST_ClosestPoint(near.geom, pt.g)) AS lat
      FROM near, pt
     ORDER BY distance_m, CASE kind WHEN 'building' THEN 0 WHEN 'compound' THEN 1 WHEN 'door' THEN 2
                                    ELSE 3 END, id
     LIMIT 5
"""
# `<->` against a constant point is answered by the GiST index on geom (k-nearest-neighbour scan);
# the distances themselves are then measured on the geography type, in metres.
NEAREST_MAX_M = 1000.0


def reverse(session: Session, lon, lat, crs: str | None = "wgs84") -> dict:
    """Point → area path (district → grid) and the nearest named places within 1 km."""
    found = areas_mod.lookup(session, lon, lat, crs)
    wlon, wlat = found.wgs84
    rows = session.execute(text(_NEAREST_SQL), {"lon": wlon, "lat": wlat}).mappings().all()
    nearby = [{"name": r["name"], "kind": r["kind"], "address": r["address"],
               "distance_m": round(float(r["distance_m"]), 1), "lon": r["lon"], "lat": r["lat"]}
              for r in rows if r["distance_m"] <= NEAREST_MAX_M]
    body = found.as_dict()
    body["nearest"] = nearby[0] if nearby else None
    body["nearby"] = nearby
    body["address"] = _describe_spot(found.path, nearby[0] if nearby else None)
    return body


def _describe_spot(path: list[dict], place: dict | None) -> str | None:
    names = "".join(a["name"] for a in path if a["level"] in (1, 2, 3))
    if place is None:
        return names or None
    spot = place["address"] or place["name"]
    if place["kind"] == "door" and place["address"]:
        spot = place["address"]
    if names and spot.startswith(names[:2]):
        names = ""
    near = "" if place["distance_m"] < 5 else f"附近{round(place['distance_m'])}米"
    return f"{names}{spot}{near}"
