"""Reading incidents: the list filters, the GeoJSON of the incidents an audience may see, and one
incident with its events and links — all read from `incidents_for` through `geo.policy.Audience`,
so scope and the generalisation of sensitive incidents are applied in one place.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import areas as areas_mod
from geo.errors import Forbidden, InvalidInput, NotFound
from geo.incidents.fields import parse_category, parse_severity, parse_time
from geo.incidents.workflow import TRANSITIONS, handling_level, targets
from geo.inputs import whole_number
from geo.policy import Audience, area_row
from geo.vocabulary import INCIDENT_STATUSES, RESOLVED_STATUSES

LIST_LIMIT = 500
LIST_MAX = 5000


@dataclass(frozen=True)
class Filters:
    bbox: tuple[float, float, float, float] | None = None
    start: datetime | None = None
    end: datetime | None = None
    categories: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    severities: tuple[int, ...] = ()
    area: str | None = None
    limit: int = LIST_LIMIT
    offset: int = 0


def _int(value, name: str, lo: int, hi: int, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(str(value))
    except ValueError:
        raise InvalidInput(name, f"{name} must be a whole number {lo}–{hi}; got {value!r}") from None
    if not lo <= number <= hi:
        raise InvalidInput(name, f"{name} must be a whole number {lo}–{hi}; got {value!r}")
    return number


def parse_filters(args) -> Filters:
    """Read list filters from a mapping of strings (a query string)."""
    def many(name: str) -> list[str]:
        raw = args.get(name)
        return [v.strip() for v in str(raw).split(",") if v.strip()] if raw else []

    statuses = many("status")
    for s in statuses:
        if s not in INCIDENT_STATUSES:
            raise InvalidInput("status", f"status must be one of {', '.join(INCIDENT_STATUSES)}; got {s!r}")
    start = parse_time(args.get("from"), "from") if args.get("from") else None
    end = parse_time(args.get("to"), "to") if args.get("to") else None
    if start and end and end < start:
        raise InvalidInput("to", f"to must not be before from; got from={args.get('from')}, to={args.get('to')}")
    return Filters(bbox=_bbox(args.get("bbox")), start=start, end=end,
                   categories=tuple(parse_category(c) for c in many("category")),
                   statuses=tuple(statuses),
                   severities=tuple(parse_severity(s) for s in many("severity")),
                   area=args.get("area") or None,
                   limit=_int(args.get("limit"), "limit", 1, LIST_MAX, LIST_LIMIT),
                   offset=_int(args.get("offset"), "offset", 0, 10**9, 0))


def _bbox(value):
    return areas_mod.parse_bbox(value)


def _where(session: Session, f: Filters, params: dict) -> str:
    where = ["true"]
    if f.bbox:
        params.update(minx=f.bbox[0], miny=f.bbox[1], maxx=f.bbox[2], maxy=f.bbox[3])
        # On the point the audience is shown, so a small bbox cannot find where a generalised
        # incident really is; each branch of incidents_for has a GiST index for it.
        where.append("i.geom && ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326)")
    if f.start:
        where.append("i.occurred_at >= :start")
        params["start"] = f.start
    if f.end:
        where.append("i.occurred_at < :end")
        params["end"] = f.end
    if f.categories:
        where.append("i.category = ANY(:categories)")
        params["categories"] = list(f.categories)
    if f.statuses:
        where.append("i.status = ANY(:statuses)")
        params["statuses"] = list(f.statuses)
    if f.severities:
        where.append("i.severity = ANY(CAST(:severities AS smallint[]))")
        params["severities"] = list(f.severities)
    if f.area:
        root = area_row(session, f.area)
        where.append("i.area_path <@ CAST(:area_path AS ltree)")
        params["area_path"] = root["path"]
    return " AND ".join(where)


_PROPERTIES = """
    json_build_object(
        'id', i.id, 'external_id', i.external_id, 'category', i.category, 'subtype', i.subtype,
        'severity', i.severity, 'status', i.status, 'occurred_at', i.occurred_at,
        'reported_at', i.reported_at, 'grid_code', g.code, 'area_code', a.code,
        'area_name', a.name, 'geocode_level', i.geocode_level,
        'geocode_confidence', i.geocode_confidence, 'outside_jurisdiction', i.outside_jurisdiction,
        'resolution_level', i.resolution_level, 'source', i.source, 'sensitive', i.sensitive,
        'generalised', i.generalised, 'description', i.description, 'address', i.address,
        'reporter_name', i.reporter_name, 'reporter_phone', i.reporter_phone)
"""
_JOINS = """LEFT JOIN areas a ON a.id = COALESCE(i.area_id, i.grid_id)
               LEFT JOIN areas g ON g.id = i.grid_id"""


def features(session: Session, audience: Audience, f: Filters) -> dict:
    """Incidents as a GeoJSON FeatureCollection, newest first."""
    return json.loads(features_text(session, audience, f))


def features_text(session: Session, audience: Audience, f: Filters) -> str:
    """`features` as the GeoJSON text PostGIS builds, for a reader that sends it on unparsed."""
    params: dict = {"limit": f.limit, "offset": f.offset}
    where = _where(session, f, params)
    source = f"{audience.incidents(params)} WHERE {where}"
    # One pass over the matching rows counts them (the window) and keeps the page; only the page's
    # rows are then joined to their areas and built into JSON. A bbox over a whole district matches
    # every incident, and counting, joining and sorting them twice was most of a map read's time.
    # A page past the end has no row to carry the count: only then is it counted on its own.
    return session.execute(text(f"""
        WITH page AS (
            SELECT i.*, count(*) OVER () AS total
              FROM {source}
             ORDER BY i.occurred_at DESC, i.id DESC
             LIMIT :limit OFFSET :offset)
        SELECT json_build_object('type', 'FeatureCollection',
                   'numberMatched', COALESCE(max(i.total), (SELECT count(*) FROM {source})),
                   'numberReturned', count(*),
                   'features', COALESCE(json_agg(json_build_object('type', 'Feature', 'id', i.id,
                                   'geometry', ST_AsGeoJSON(i.geom, 7)::json,
                                   'properties', {_PROPERTIES}) ORDER BY i.occurred_at DESC, i.id DESC),
                                 '[]'::json))::text
          FROM page i {_JOINS}"""), params).scalar_one()


def incident_id(value, field: str = "id") -> int:
    """An incident id from outside: a positive whole number, else InvalidInput."""
    key = whole_number(value, field, lo=1, required=True)
    assert key is not None   # required
    return key


def visible(session: Session, value, audience: Audience, field: str = "id") -> dict:
    """The incident as this audience may see it (its row from incidents_for, with lon/lat and its
    area's and grid's codes), or NotFound — never revealing that it exists outside the scope."""
    key = incident_id(value, field)
    params: dict = {"id": key}
    row = session.execute(text(f"""
        SELECT i.*, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, a.code AS area_code,
               g.code AS grid_code
          FROM {audience.incidents(params)} {_JOINS}
         WHERE i.id = :id"""), params).mappings().first()
    if row is None:
        raise NotFound(f"no incident {key}", field=field)
    return dict(row)


def incident_row(session: Session, value) -> dict:
    """The stored incident for a writer that has already been authorised on it (`visible`)."""
    key = incident_id(value)
    row = session.execute(text("""
        SELECT i.*, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, a.code AS area_code,
               a.path::text AS area_path, g.code AS grid_code
          FROM incidents i
          LEFT JOIN areas a ON a.id = COALESCE(i.area_id, i.grid_id)
          LEFT JOIN areas g ON g.id = i.grid_id
         WHERE i.id = :id"""), {"id": key}).mappings().first()
    if row is None:
        raise NotFound(f"no incident {key}", field="id")
    return dict(row)


def get(session: Session, value, audience: Audience) -> dict:
    """One incident as a GeoJSON Feature with its events, links and response-time targets."""
    row = visible(session, value, audience)
    params: dict = {"id": row["id"]}
    feature = session.execute(text(f"""
        SELECT json_build_object('type', 'Feature', 'id', i.id,
                   'geometry', ST_AsGeoJSON(i.geom, 7)::json, 'properties', {_PROPERTIES})
          FROM {audience.incidents(params)} {_JOINS} WHERE i.id = :id"""), params).scalar_one()
    props = feature["properties"]
    props["events"] = [dict(r) for r in session.execute(text("""
        SELECT e.ts, e.from_status, e.to_status, e.level, e.note, u.username AS actor
          FROM incident_events e LEFT JOIN users u ON u.id = e.actor_id
         WHERE e.incident_id = :id ORDER BY e.ts, e.id"""), {"id": row["id"]}).mappings()]
    for e in props["events"]:
        e["ts"] = e["ts"].isoformat()
        if row["generalised"]:
            e["note"] = None   # notes of a sensitive matter may name the place
    props["links"] = linked(session, row["id"], audience)
    props["handling_level"] = handling_level(row)
    props["targets"] = targets(row)
    props["allowed"] = list(TRANSITIONS[row["status"]])
    if (row.get("attrs") or {}).get("geocode") and audience.exact:
        props["geocode"] = row["attrs"]["geocode"]
    return feature


def check_outside_jurisdiction(audience: Audience, area_code: str | None) -> None:
    """Only a user without area limits may act on an incident outside every jurisdiction."""
    if area_code is None and not audience.scope.everywhere:
        raise Forbidden("this point lies outside every jurisdiction; only an administrator without "
                        "area limits may record it", field="location")


def linked(session: Session, key: int, audience: Audience) -> list[int]:
    """Ids linked to this incident directly, of those the audience may see."""
    params: dict = {"id": int(key)}
    return list(session.execute(text(f"""
        SELECT l.other FROM (SELECT CASE WHEN incident_a = :id THEN incident_b ELSE incident_a END
                               AS other
                               FROM incident_links WHERE incident_a = :id OR incident_b = :id) l
         WHERE EXISTS (SELECT 1 FROM {audience.incidents(params)} WHERE i.id = l.other)
         ORDER BY 1"""), params).scalars())


def recent(session: Session, audience: Audience, hours: float, limit: int = 2000) -> dict:
    """Incidents of the last `hours` not yet resolved, as the audience sees them (the dispatch
    map's incident layer), newest first, as GeoJSON."""
    params: dict = {"h": hours, "n": limit, "done": list(RESOLVED_STATUSES)}
    rows = session.execute(text(f"""
        SELECT i.id, i.category, i.severity, i.status, i.occurred_at, i.address, i.generalised,
               ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, g.code AS grid
          FROM {audience.incidents(params)} LEFT JOIN areas g ON g.id = i.grid_id
         WHERE i.occurred_at > now() - make_interval(secs => :h * 3600) AND i.geom IS NOT NULL
           AND NOT (i.status = ANY(:done))
         ORDER BY i.occurred_at DESC LIMIT :n"""), params).mappings().all()
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": r["id"],
         "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
         "properties": {"id": r["id"], "category": r["category"], "severity": r["severity"],
                        "status": r["status"], "occurred_at": r["occurred_at"].isoformat(),
                        "address": r["address"], "grid": r["grid"],
                        "generalised": r["generalised"]}} for r in rows]}
