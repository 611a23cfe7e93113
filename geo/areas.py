"""Governance areas: the hierarchy (区 → 镇/街道 → 村/社区 → 网格), look-ups and partition checks.

GeoJSON is built in PostGIS (`ST_AsGeoJSON` + `json_agg`) so a layer of hundreds of polygons is
one round trip and no Python geometry objects. Areas in square metres use `geography`, which is
metric for any jurisdiction (郾城区 or an imported Chicago), never degrees.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from . import crs as crs_mod
from .errors import Forbidden, InvalidInput
from .inputs import number_value, text_value
from .messages import msg
from .policy import Scope, area_row
from .vocabulary import LEVEL_BY_NAME, LEVELS, STAFF_ROLES

GEOJSON_DIGITS = 7  # 1e-7° ≈ 1 cm: exact enough for boundaries, half the bytes of full precision


def parse_level(value) -> int | None:
    """Accept a level as 1–5 or its name (district, township, village, grid, microgrid)."""
    if value is None or value == "":
        return None
    text_value = str(value).strip().lower()
    if text_value in LEVEL_BY_NAME:
        return LEVEL_BY_NAME[text_value]
    if text_value.isdigit() and int(text_value) in LEVELS:
        return int(text_value)
    names = ", ".join(f"{n} ({k})" for k, n in LEVELS.items())
    raise InvalidInput("level", f"level must be one of {names}; got {value!r}")


def parse_bbox(value: str | None) -> tuple[float, float, float, float] | None:
    """Parse 'minx,miny,maxx,maxy' in degrees."""
    if value is None or value == "":
        return None
    expected = "bbox must be minx,miny,maxx,maxy in degrees"
    parts = str(value).split(",")
    try:
        minx, miny, maxx, maxy = (float(p) for p in parts)
    except ValueError:
        raise InvalidInput("bbox", f"{expected}; got {value!r}") from None
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
        raise InvalidInput("bbox", f"{expected}; got {value!r}")
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise InvalidInput("bbox", f"{expected} with min ≤ max within ±180/±90; got {value!r}")
    return minx, miny, maxx, maxy


def parse_point(lon, lat, crs: str | None = "wgs84") -> tuple[float, float, str]:
    """Parse a lon/lat pair in a named coordinate system; return WGS84 lon, lat and the system."""
    values: list[float] = []
    for name, raw, limit in (("lon", lon, 180), ("lat", lat, 90)):
        v = number_value(raw, name, required=True, what=msg("decimal degrees"))
        assert v is not None   # required
        if abs(v) > limit:
            hint = ""
            if name == "lat" and values and abs(values[0]) <= 90 and abs(v) <= 180:
                hint = " — it looks like a longitude: are lon and lat swapped?"
            raise InvalidInput(name, f"{name} must be between -{limit} and {limit}; got {raw!r}{hint}")
        values.append(v)
    try:
        system = crs_mod.normalise_crs(text_value(crs, "crs") or "wgs84")
    except ValueError as exc:
        raise InvalidInput("crs", str(exc)) from None
    wlon, wlat = crs_mod.to_wgs84(values[0], values[1], system)
    return wlon, wlat, system


def subtree_filter(session: Session, level: int | None = None,
                   parent: str | None = None) -> tuple[list[str], dict]:
    """SQL conditions on `areas a` selecting one level and/or the subtree below `parent`."""
    where, params = ["true"], {}
    if level is not None:
        where.append("a.level = :level")
        params["level"] = level
    if parent:
        root = area_row(session, parent, "parent")
        # `path <@ root` is answered by the GiST index on areas.path; the root itself is excluded.
        where.append("a.path <@ CAST(:root_path AS ltree) AND a.id <> :root_id")
        params.update(root_path=root["path"], root_id=root["id"])
    return where, params


_FEATURE_SQL = """
    json_build_object(
        'type', 'Feature',
        'id', a.code,
        'geometry', ST_AsGeoJSON(a.geom, :digits)::json,
        'properties', json_build_object(
            'code', a.code, 'name', a.name, 'level', a.level,
            'kind', a.kind, 'parent_code', p.code, 'parent_name', p.name,
            'group', g.name, 'households', a.households, 'population', a.population,
            'urban', a.urban, 'version', a.version,
            'staff', (SELECT count(*) FROM area_staff s WHERE s.area_id = a.id)))
"""


def visible_sql(scope: Scope, params: dict) -> str:
    """SQL on `areas a`: the areas a scope may read — its subtrees and their ancestors (the
    outlines a map of one's own area is drawn in)."""
    if scope.everywhere:
        return "true"
    inside, scope_params = scope.sql()
    params.update(scope_params)
    return f"({inside} OR a.path @> CAST(:scope_paths AS ltree[]))"


def features(session: Session, scope: Scope, *, level: int | None = None,
             parent: str | None = None,
             bbox: tuple[float, float, float, float] | None = None) -> str:
    """Return a GeoJSON FeatureCollection (as text) of the areas a scope may read, filtered by
    level, subtree and bbox."""
    where, params = subtree_filter(session, level, parent)
    where.append(visible_sql(scope, params))
    params["digits"] = GEOJSON_DIGITS
    if bbox:
        # `&&` against an envelope in the column's SRID lets the GiST index on geom prune.
        where.append("a.geom && ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326)")
        params.update(minx=bbox[0], miny=bbox[1], maxx=bbox[2], maxy=bbox[3])
    sql = f"""
        SELECT json_build_object('type', 'FeatureCollection',
                                 'features', COALESCE(json_agg(f ORDER BY code), '[]'::json))::text
          FROM (SELECT {_FEATURE_SQL} AS f, a.code
                  FROM areas a
                  LEFT JOIN areas p ON p.id = a.parent_id
                  LEFT JOIN area_groups g ON g.id = a.group_id
                 WHERE {' AND '.join(where)}) s
    """
    return session.execute(text(sql), params).scalar_one()


def detail(session: Session, code: str, scope: Scope) -> dict:
    """Return one area as a GeoJSON Feature with its ancestors, children count and staff (whose
    phone numbers only a scope holding the area may read)."""
    row = area_row(session, code, "code")
    inside = scope.covers(row["path"])
    if not inside and not any(p.startswith(row["path"] + ".") for p in scope.paths):
        raise Forbidden(scope.outside(row["code"]), field="area")
    feature = session.execute(
        text(f"SELECT {_FEATURE_SQL} FROM areas a LEFT JOIN areas p ON p.id = a.parent_id "
             "LEFT JOIN area_groups g ON g.id = a.group_id WHERE a.id = :id"),
        {"id": row["id"], "digits": GEOJSON_DIGITS}).scalar_one()
    props = feature["properties"]
    props["path"] = ancestors(session, row["path"])
    props["children"] = session.execute(text("SELECT count(*) FROM areas WHERE parent_id = :id"),
                                        {"id": row["id"]}).scalar_one()
    props["staff"] = [dict(r) for r in session.execute(
        text("SELECT s.role, p.name, CASE WHEN :inside THEN p.phone END AS phone "
             "FROM area_staff s JOIN people p ON p.id = s.person_id "
             "WHERE s.area_id = :id ORDER BY array_position(CAST(:roles AS text[]), s.role), p.name"),
        {"id": row["id"], "inside": inside, "roles": list(STAFF_ROLES)}).mappings()]
    return feature


def leaves(session: Session, scope: Scope) -> dict:
    """The finest areas of a scope (a grid worker's grids) as GeoJSON: where one may report.

    Unscoped, the finest level of every jurisdiction."""
    params: dict = {"everywhere": scope.everywhere}
    inside, scope_params = scope.sql()
    params.update(scope_params)
    return session.execute(text(f"""
        SELECT json_build_object('type', 'FeatureCollection', 'features',
                   COALESCE(json_agg(json_build_object('type', 'Feature', 'id', a.code,
                       'geometry', ST_AsGeoJSON(a.geom, 6)::json,
                       'properties', json_build_object('code', a.code, 'name', a.name))
                       ORDER BY a.code), '[]'::json))
          FROM areas a
         WHERE {inside} AND NOT EXISTS (SELECT 1 FROM areas c WHERE c.parent_id = a.id)
           AND (:everywhere = false OR a.level = (SELECT max(level) FROM areas))"""),
        params).scalar_one()


def extent(session: Session, code: str) -> list[float]:
    """An area's bounding box [minx, miny, maxx, maxy] in degrees (where its map opens)."""
    row = area_row(session, code)
    box = session.execute(text("SELECT ST_XMin(g), ST_YMin(g), ST_XMax(g), ST_YMax(g) "
                               "FROM (SELECT geom::box2d AS g FROM areas WHERE id = :id) b"),
                          {"id": row["id"]}).one()
    return [round(float(v), 7) for v in box]


def ancestors(session: Session, path: str) -> list[dict]:
    """The areas from the root down to (and including) the area at `path`."""
    rows = session.execute(text("SELECT code, name, level FROM areas "
                                "WHERE path @> CAST(:p AS ltree) ORDER BY nlevel(path)"),
                           {"p": path}).mappings()
    return [{"code": r["code"], "name": r["name"], "level": r["level"],
             "level_name": LEVELS.get(r["level"])} for r in rows]


def finest_at(session: Session, lon: float, lat: float):
    """The finest area containing a WGS84 point; on a shared edge the lowest id wins (deterministic)."""
    return session.execute(
        text("SELECT id, code, path::text AS path FROM areas "
             "WHERE ST_Intersects(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) "
             "ORDER BY level DESC, id LIMIT 1"), {"lon": lon, "lat": lat}).mappings().first()


@dataclass
class Lookup:
    """Where a point falls: its area path (district → grid), or why it falls nowhere."""

    lon: float
    lat: float
    crs: str
    wgs84: tuple[float, float]
    path: list[dict]
    hint: str | None = None

    def as_dict(self) -> dict:
        return {"input": {"lon": self.lon, "lat": self.lat, "crs": self.crs},
                "wgs84": {"lon": self.wgs84[0], "lat": self.wgs84[1]},
                "inside": bool(self.path), "path": self.path,
                "area": self.path[-1] if self.path else None,
                **({"message": self.hint} if self.hint else {})}


def lookup(session: Session, lon, lat, crs: str | None = "wgs84") -> Lookup:
    """Return the area path containing a point given in WGS84, CGCS2000, GCJ-02 or BD-09."""
    wlon, wlat, system = parse_point(lon, lat, crs)
    hit = finest_at(session, wlon, wlat)
    if hit:
        return Lookup(float(lon), float(lat), system, (wlon, wlat), ancestors(session, hit["path"]))
    hint = "outside every jurisdiction"
    if abs(wlon) <= 90 and finest_at(session, wlat, wlon):
        hint += "; with lon and lat swapped it would fall inside — check the order (lon, lat)"
    return Lookup(float(lon), float(lat), system, (wlon, wlat), [], hint)


def counts_by_level(session: Session, root: str | None = None) -> dict[int, int]:
    """How many areas each level has (under `root` if given, the root included)."""
    params, scope = {}, "true"
    if root:
        params["p"] = area_row(session, root)["path"]
        scope = "path <@ CAST(:p AS ltree)"
    rows = session.execute(text(f"SELECT level, count(*) FROM areas WHERE {scope} GROUP BY level "
                                "ORDER BY level"), params).all()
    return {int(level): int(n) for level, n in rows}
