"""Incident intake (事件): validation, location and the one INSERT every channel goes through.

Intake validates the report, locates it (coordinates in WGS84/CGCS2000/GCJ-02/BD-09, converted
exactly by `crs`, or an address geocoded offline by `geocoding`), and writes it with the finest area
containing its point in the same statement. A point outside every jurisdiction is kept and flagged;
one that falls inside only with lon and lat swapped is refused with that hint. An address resolved
only to a village or township keeps `grid_id` NULL and records that area in `area_id` rather than
pretend a grid.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import areas as areas_mod
from geo import audit, idempotency
from geo.errors import Conflict, InvalidInput
from geo.incidents import geocoding
from geo.incidents.duplicates import duplicates
from geo.incidents.fields import (
    bounded_text,
    parse_bool,
    parse_category,
    parse_severity,
    parse_time,
)
from geo.incidents.gazetteer import Gazetteer
from geo.incidents.queries import check_outside_jurisdiction, get
from geo.policy import Audience

# Geocode levels precise enough to name a grid (a road without a number, a village or a township
# is not).
PRECISE_LEVELS = ("coordinates", "door", "building", "compound", "poi", "group", "grid", "microgrid")

EARLIEST = datetime(1990, 1, 1, tzinfo=timezone.utc)


# -- intake --------------------------------------------------------------------------------------
@dataclass
class Prepared:
    """A validated, located report, ready to insert (nothing written yet)."""

    category: str
    subtype: str | None
    severity: int
    occurred_at: datetime
    description: str | None
    address: str | None
    lon: float | None
    lat: float | None
    crs: str | None
    geocode_level: str
    geocode_confidence: float | None
    area_code: str | None       # the area the report is located in (for the scope check)
    precise: bool
    outside: bool
    sensitive: bool = False
    reporter_name: str | None = None
    reporter_phone: str | None = None
    external_id: str | None = None
    source: str | None = None
    attrs: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def validate(data: dict, *, now: datetime | None = None, tz: str | None = None,
             time_format: str | None = None) -> dict:
    """Check a report's fields (no database); return them clean or raise InvalidInput naming one."""
    if not isinstance(data, dict):
        raise InvalidInput("body", "expected a JSON object")
    now = now or datetime.now(timezone.utc)
    out: dict[str, Any] = {"category": parse_category(data.get("category")),
           "subtype": bounded_text(data, "subtype"),
           "severity": parse_severity(data.get("severity")),
           "description": bounded_text(data, "description"),
           "address": bounded_text(data, "address"),
           "external_id": bounded_text(data, "external_id"),
           "source": bounded_text(data, "source"),
           "sensitive": parse_bool(data.get("sensitive"), "sensitive")}
    occurred = parse_time(data.get("occurred_at"), fmt=time_format, tz=tz)
    if occurred > now + timedelta(minutes=10):
        raise InvalidInput("occurred_at", f"occurred_at lies in the future; got {occurred.isoformat()}")
    if occurred < EARLIEST:
        raise InvalidInput("occurred_at", f"occurred_at must be after 1990; got {occurred.isoformat()}")
    out["occurred_at"] = occurred
    reporter = data.get("reporter")
    if reporter is not None and not isinstance(reporter, dict):
        raise InvalidInput("reporter", "reporter must be an object {name, phone}")
    reporter = reporter or {}
    out["reporter_name"] = bounded_text({"reporter_name": reporter.get("name", data.get("reporter_name"))},
                                 "reporter_name")
    out["reporter_phone"] = bounded_text({"reporter_phone": reporter.get("phone", data.get("reporter_phone"))},
                                  "reporter_phone")
    if out["reporter_phone"] and not re.fullmatch(r"[0-9+\-() ]{3,40}", out["reporter_phone"]):
        raise InvalidInput("reporter_phone", "reporter_phone must be digits (with + - ( ) or spaces); "
                                             f"got {out['reporter_phone']!r}")
    has_lon = data.get("lon") not in (None, "")
    has_lat = data.get("lat") not in (None, "")
    if has_lon or has_lat:
        lon, lat, system = areas_mod.parse_point(data.get("lon"), data.get("lat"),
                                                 data.get("crs") or "wgs84")
        out.update(lon=lon, lat=lat, crs=system)
    elif out["address"] is None:
        raise InvalidInput("location", "give either lon and lat (with crs wgs84|cgcs2000|gcj02|bd09) "
                                       "or an address")
    else:
        if data.get("crs"):
            areas_mod.parse_point(0, 0, data.get("crs"))  # a bad crs is still an error
        out.update(lon=None, lat=None, crs=None)
    return out


def contains(session: Session, points: list[tuple[float, float]]) -> list[tuple[str | None, bool]]:
    """For each point: the finest area's code containing it, and whether the swapped point would be inside."""
    if not points:
        return []
    rows = session.execute(text("""
        SELECT t.n,
               (SELECT a.code FROM areas a
                 WHERE a.geom && ST_SetSRID(ST_MakePoint(t.lon, t.lat), 4326)
                   AND ST_Intersects(a.geom, ST_SetSRID(ST_MakePoint(t.lon, t.lat), 4326))
                 ORDER BY a.level DESC, a.id LIMIT 1) AS code,
               abs(t.lon) <= 90 AND EXISTS (SELECT 1 FROM areas a
                 WHERE a.geom && ST_SetSRID(ST_MakePoint(t.lat, t.lon), 4326)
                   AND ST_Intersects(a.geom, ST_SetSRID(ST_MakePoint(t.lat, t.lon), 4326))) AS swapped
          FROM unnest(CAST(:lons AS float8[]), CAST(:lats AS float8[])) WITH ORDINALITY AS t(lon, lat, n)
         ORDER BY t.n"""),
        {"lons": [p[0] for p in points], "lats": [p[1] for p in points]}).all()
    return [(r.code, bool(r.swapped) and r.code is None) for r in rows]


def swapped_message(lon: float, lat: float) -> str:
    return (f"point (lon {lon}, lat {lat}) lies outside every jurisdiction, but with lon and lat "
            "swapped it would fall inside — check the order (lon, lat)")


def locate(session: Session, clean: dict, *, gazetteer: Gazetteer | None = None,
           inside: tuple[str | None, bool] | None = None) -> Prepared:
    """Turn validated fields into a located report: coordinates checked against the jurisdictions,
    or the address geocoded. `inside` is a precomputed `_contains` answer for bulk imports."""
    attrs: dict = {}
    warnings: list[str] = []
    if clean["lon"] is not None:
        lon, lat = clean["lon"], clean["lat"]
        code, swapped = inside if inside is not None else contains(session, [(lon, lat)])[0]
        if swapped:
            raise InvalidInput("lat", swapped_message(lon, lat))
        level, confidence, precise, outside = "coordinates", 1.0, True, code is None
        if clean["address"] and code is not None:
            # The address is kept as written; if it names another village than the point's, say so.
            g = gazetteer or geocoding.gazetteer(session)
            best = g.geocode(clean["address"], alternatives=False)["best"]
            point_path = g.entries[g.area_entry[code]].path if code in g.area_entry else ()
            if best and len(best["path"]) >= 3 and point_path and best["path"][2] not in point_path:
                warnings.append(f"the address suggests {best['matched']} ({best['path'][2]}), "
                                f"but the point lies in {code}")
    else:
        g = gazetteer or geocoding.gazetteer(session)
        found = g.geocode(clean["address"], alternatives=False)
        best = found["best"]
        if best is None:
            reason = ("matches several places" if found["status"] == "ambiguous"
                      else "matches no known place")
            raise InvalidInput("address", f"address {clean['address']!r} {reason}; send lon/lat or a "
                                          "fuller address", details={"candidates": found["candidates"]})
        lon, lat = best["lon"], best["lat"]
        level, confidence = best["level"], best["confidence"]
        precise = level in PRECISE_LEVELS and not best.get("ambiguous")
        code, outside = best["area_code"], False
        attrs["geocode"] = {"matched": best["matched"], "status": found["status"],
                            "source": best["source"]}
        if found["status"] == "ambiguous":
            attrs["geocode"]["candidates"] = [
                {k: c[k] for k in ("name", "level", "area_code", "lon", "lat")}
                for c in found["candidates"]]
            warnings.append(f"address is ambiguous below {best['level']} level; located at {best['name']}")
    return Prepared(
        category=clean["category"], subtype=clean["subtype"], severity=clean["severity"],
        occurred_at=clean["occurred_at"], description=clean["description"],
        address=clean["address"], lon=lon, lat=lat, crs=clean.get("crs"), geocode_level=level,
        geocode_confidence=confidence, area_code=code, precise=precise, outside=outside,
        sensitive=clean["sensitive"], reporter_name=clean["reporter_name"],
        reporter_phone=clean["reporter_phone"], external_id=clean["external_id"],
        source=clean["source"], attrs=attrs, warnings=warnings)


def prepare(session: Session, data: dict, *, now: datetime | None = None, tz: str | None = None,
            time_format: str | None = None,
            gazetteer: Gazetteer | None = None) -> Prepared:
    """Validate and locate one report (nothing written)."""
    return locate(session, validate(data, now=now, tz=tz, time_format=time_format),
                  gazetteer=gazetteer)


# One statement writes the reports with their areas: an exact point gets the finest area containing
# it (the GiST index on areas.geom finds the candidates; on a shared edge the lowest id wins), a
# report located only to a village or township gets that area and no grid. Each row is written once.
_INSERT_SQL = """
    INSERT INTO incidents (external_id, district_code, category, subtype, severity, status,
                           occurred_at, address, geom, geocode_level, geocode_confidence, grid_id,
                           area_id, outside_jurisdiction, source, sensitive, reporter_name,
                           reporter_phone, description, created_by, attrs)
    SELECT r.external_id, root.code, r.category, r.subtype, r.severity, 'reported', r.occurred_at,
           r.address, g.pt, r.geocode_level, r.geocode_confidence, f.id, COALESCE(f.id, a.id),
           r.precise AND f.id IS NULL, r.source, r.sensitive, r.reporter_name, r.reporter_phone,
           r.description, :created_by, r.attrs
      FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
               n int, external_id text, category text, subtype text, severity smallint,
               occurred_at timestamptz, address text, lon float8, lat float8, geocode_level text,
               geocode_confidence real, area_code text, precise boolean, source text,
               sensitive boolean, reporter_name text, reporter_phone text, description text,
               attrs jsonb)
      CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(r.lon, r.lat), 4326) AS pt) g
      LEFT JOIN areas a ON NOT r.precise AND a.code = r.area_code
      LEFT JOIN LATERAL (
            SELECT x.id, x.path FROM areas x
             WHERE r.precise AND x.geom && g.pt AND ST_Intersects(x.geom, g.pt)
             ORDER BY x.level DESC, x.id LIMIT 1) f ON true
      LEFT JOIN areas root ON root.id = CAST(subpath(COALESCE(f.path, a.path), 0, 1)::text AS int)
     ORDER BY r.n
    RETURNING id
"""


def insert(session: Session, actor: audit.Actor, prepared: list[Prepared], *,
           note: str | None = None, audit_each: bool = True) -> list[int]:
    """Insert located reports with their areas in one statement and a `reported` event for each."""
    if not prepared:
        return []
    rows = [{"n": n, "external_id": p.external_id, "category": p.category, "subtype": p.subtype,
             "severity": p.severity, "occurred_at": p.occurred_at.isoformat(),
             "address": p.address, "lon": p.lon, "lat": p.lat, "geocode_level": p.geocode_level,
             "geocode_confidence": p.geocode_confidence, "area_code": p.area_code,
             "precise": p.precise, "source": p.source, "sensitive": p.sensitive,
             "reporter_name": p.reporter_name, "reporter_phone": p.reporter_phone,
             "description": p.description, "attrs": p.attrs or None}
            for n, p in enumerate(prepared)]
    ids = list(session.execute(text(_INSERT_SQL), {"rows": json.dumps(rows, ensure_ascii=False),
                                                   "created_by": actor.user_id}).scalars())
    session.execute(text("""
        INSERT INTO incident_events (incident_id, actor_id, from_status, to_status, level, note)
        SELECT id, :actor, NULL, 'reported', NULL, :note FROM unnest(CAST(:ids AS bigint[])) AS id"""),
        {"ids": ids, "actor": actor.user_id, "note": note})
    if audit_each:
        for i, p in zip(ids, prepared):
            audit.record(session, actor, "incident.report", target_type="incident", target_id=i,
                         area_code=p.area_code,
                         details={"category": p.category, "geocode_level": p.geocode_level,
                                  "source": p.source})
    return ids


def create(session: Session, actor: audit.Actor, data: dict, audience: Audience,
           key: idempotency.Key | None = None) -> dict:
    """Validate, locate, authorise (the point must lie in the audience's scope), insert; return the
    incident with duplicate suggestions among the incidents the audience may see.

    With an idempotency `key` the user already wrote a report under, nothing is written: the stored
    incident comes back with `replayed` true.
    """
    earlier = idempotency.replayed(session, "incidents", actor.user_id, key)
    if earlier is not None:
        body = get(session, earlier, audience)
        body["replayed"] = True
        return body
    prepared = prepare(session, data)
    authorize(session, audience, prepared.area_code)
    if prepared.external_id:
        existing = session.execute(text(
            "SELECT id FROM incidents WHERE external_id = :e AND source IS NOT DISTINCT FROM :s"),
            {"e": prepared.external_id, "s": prepared.source}).scalar()
        if existing:
            raise Conflict(f"external_id {prepared.external_id!r} from source {prepared.source!r} "
                           "is already recorded", field="external_id")
    [incident_id] = insert(session, actor, [prepared])
    idempotency.store(session, "incidents", incident_id, key)
    body = get(session, incident_id, audience)
    body["replayed"] = False
    body["warnings"] = prepared.warnings
    body["duplicates"] = duplicates(session, incident_id, audience)
    return body


def authorize(session: Session, audience: Audience, area_code: str | None) -> None:
    """A report may be written where the audience acts: in its scope, or — for an unscoped
    administrator only — outside every jurisdiction."""
    if area_code is None:
        check_outside_jurisdiction(audience, None)
    else:
        audience.scope.area(session, area_code, field="location")
