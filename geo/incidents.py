"""Incidents (事件): intake, location, grid assignment, the 三级过滤网 lifecycle, statistics,
duplicates across channels, and privacy of sensitive reports.

Intake validates the report, locates it (coordinates in WGS84/CGCS2000/GCJ-02/BD-09, converted
exactly by `crs`, or an address geocoded offline by `geocoding`), and assigns it to the finest area
containing its point with one set-based PostGIS statement (`assign`). A point outside every
jurisdiction is kept and flagged; one that falls inside only with lon and lat swapped is refused
with that hint. An address resolved only to a village or township keeps `grid_id` NULL and records
that area in `area_id` rather than pretend a grid.

Lifecycle: reported → accepted (受理) → handling (处置/调解) → resolved (化解) → followed_up (回访) →
closed (办结), or escalated (上报) to the next level of 孟庙镇's 三级过滤网 — group (村民组/小区),
village (村/社区), township (镇/街道), then district. Every transition is one row in
`incident_events` (actor, note, level) and one audit entry, in the caller's transaction.
"""
from __future__ import annotations

import json
import math
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import text
from sqlalchemy.orm import Session

from . import areas as areas_mod
from . import audit, geocoding, gridlookup
from .errors import Conflict, Forbidden, InvalidInput, NotFound
from .models import CATEGORIES, CATEGORY_ZH, INCIDENT_STATUSES, RESOLUTION_LEVELS

DEFAULT_TIMEZONE = "Asia/Shanghai"
CATEGORY_BY_NAME = {**{c: c for c in CATEGORIES}, **{zh: c for c, zh in CATEGORY_ZH.items()},
                    "信访事项": "petition", "上访": "petition", "交通事故": "accident",
                    "刑事案件": "criminal", "治安案件": "criminal", "纠纷": "dispute",
                    "安全隐患": "hazard", "crime": "criminal"}
SEVERITY_BY_NAME = {"一般": 1, "较大": 2, "重大": 3, "特别重大": 4, "low": 1, "medium": 2,
                    "high": 3, "critical": 4}
LEVEL_BY_NAME = {**{lv: lv for lv in RESOLUTION_LEVELS}, "组": "group", "村民组": "group",
                 "小区": "group", "村": "village", "社区": "village", "镇": "township",
                 "乡": "township", "街道": "township", "区": "district", "县": "district"}
LEVEL_ZH = {"group": "组", "village": "村", "township": "镇", "district": "区"}

# Response-time targets per category: how soon a report must be accepted and resolved.
# 信访 follows the 信访工作条例 (accept or refuse within 15 days, conclude within 60); the others are
# the service promises usual for county grid centres (accidents and crimes answered at once).
RESPONSE_TARGETS = {
    "petition": {"accept": timedelta(days=15), "resolve": timedelta(days=60)},
    "accident": {"accept": timedelta(minutes=30), "resolve": timedelta(days=3)},
    "criminal": {"accept": timedelta(hours=1), "resolve": timedelta(days=30)},
    "dispute": {"accept": timedelta(hours=24), "resolve": timedelta(days=15)},
    "hazard": {"accept": timedelta(hours=24), "resolve": timedelta(days=7)},
}

# The lifecycle. Reopening (resolved/followed_up → handling) needs a note saying why.
TRANSITIONS = {
    "reported": ("accepted", "escalated"),
    "accepted": ("handling", "escalated"),
    "handling": ("resolved", "escalated"),
    "escalated": ("accepted", "handling"),
    "resolved": ("followed_up", "handling"),
    "followed_up": ("closed", "handling"),
    "closed": (),
}
OPEN_STATUSES = ("reported", "accepted", "handling", "escalated")
RESOLVED_STATUSES = ("resolved", "followed_up", "closed")
NOTE_REQUIRED = {("resolved", "handling"), ("followed_up", "handling")}

# Who sees a sensitive incident's exact point and any incident's reporter: the roles that act on
# them. Everyone else sees a sensitive incident at its grid's centre, without address or reporter.
EXACT_ROLES = ("admin", "dispatcher", "grid_worker")
# Geocode levels precise enough to name a grid (a road without a number, a village or a township
# is not).
PRECISE_LEVELS = ("coordinates", "door", "building", "compound", "poi", "group", "grid", "microgrid")

MAX_TEXT = {"description": 4000, "subtype": 100, "reporter_name": 100, "reporter_phone": 40,
            "address": 300, "external_id": 100, "source": 60}
EARLIEST = datetime(1990, 1, 1, tzinfo=timezone.utc)
LIST_LIMIT = 500
LIST_MAX = 5000


# -- intake --------------------------------------------------------------------------------------
def _tz(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("timezone", f"timezone must be an IANA name like Asia/Shanghai; got {name!r}") \
            from None


def parse_time(value, field_name: str = "occurred_at", *, fmt: str | None = None,
               tz: str | None = None) -> datetime:
    """Parse an ISO 8601 time (or `fmt`); a time without offset is local time in `tz`."""
    if isinstance(value, datetime):
        moment = value
    else:
        raw = "" if value is None else str(value).strip()
        if not raw:
            raise InvalidInput(field_name, f"{field_name} is required (ISO 8601, e.g. 2026-10-01T08:30:00+08:00)")
        try:
            moment = datetime.strptime(raw, fmt) if fmt else datetime.fromisoformat(
                raw.replace("Z", "+00:00"))
        except ValueError:
            expected = f"format {fmt!r}" if fmt else "ISO 8601, e.g. 2026-10-01T08:30:00+08:00"
            raise InvalidInput(field_name, f"{field_name} must be {expected}; got {raw!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_tz(tz))
    return moment


def _text(data: dict, name: str, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(name, f"{name} is required")
        return None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise InvalidInput(name, f"{name} must be text; got {type(value).__name__}")
    value = str(value).strip()
    limit = MAX_TEXT.get(name, 1000)
    if len(value) > limit:
        raise InvalidInput(name, f"{name} must be at most {limit} characters; got {len(value)}")
    return value


def parse_category(value) -> str:
    """Accept a category by key (dispute) or Chinese name (矛盾纠纷)."""
    key = str(value).strip().lower() if value is not None else ""
    if key in CATEGORY_BY_NAME:
        return CATEGORY_BY_NAME[key]
    choices = ", ".join(f"{c} ({CATEGORY_ZH[c]})" for c in CATEGORIES)
    if not key:
        raise InvalidInput("category", f"category is required: one of {choices}")
    raise InvalidInput("category", f"category must be one of {choices}; got {value!r}")


def parse_severity(value) -> int:
    """Accept 1–4 (or 一般/较大/重大/特别重大, low/medium/high/critical); default 1."""
    if value is None or value == "":
        return 1
    if isinstance(value, bool):
        raise InvalidInput("severity", f"severity must be 1–4; got {value!r}")
    key = str(value).strip().lower()
    if key in SEVERITY_BY_NAME:
        return SEVERITY_BY_NAME[key]
    try:
        number = float(key)
    except ValueError:
        number = float("nan")
    if number in (1, 2, 3, 4):
        return int(number)
    raise InvalidInput("severity", f"severity must be 1–4 (or 一般/较大/重大/特别重大); got {value!r}")


def parse_bool(value, name: str) -> bool:
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    key = str(value).strip().lower()
    if key in ("1", "true", "yes", "y", "是", "敏感"):
        return True
    if key in ("0", "false", "no", "n", "否"):
        return False
    raise InvalidInput(name, f"{name} must be true or false; got {value!r}")


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
    out = {"category": parse_category(data.get("category")),
           "subtype": _text(data, "subtype"),
           "severity": parse_severity(data.get("severity")),
           "description": _text(data, "description"),
           "address": _text(data, "address"),
           "external_id": _text(data, "external_id"),
           "source": _text(data, "source"),
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
    out["reporter_name"] = _text({"reporter_name": reporter.get("name", data.get("reporter_name"))},
                                 "reporter_name")
    out["reporter_phone"] = _text({"reporter_phone": reporter.get("phone", data.get("reporter_phone"))},
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


def _contains(session: Session, points: list[tuple[float, float]]) -> list[tuple[str | None, bool]]:
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


def locate(session: Session, clean: dict, *, gazetteer: geocoding.Gazetteer | None = None,
           inside: tuple[str | None, bool] | None = None) -> Prepared:
    """Turn validated fields into a located report: coordinates checked against the jurisdictions,
    or the address geocoded. `inside` is a precomputed `_contains` answer for bulk imports."""
    attrs: dict = {}
    warnings: list[str] = []
    if clean["lon"] is not None:
        lon, lat = clean["lon"], clean["lat"]
        code, swapped = inside if inside is not None else _contains(session, [(lon, lat)])[0]
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
            gazetteer: geocoding.Gazetteer | None = None) -> Prepared:
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


def create(session: Session, actor: audit.Actor, data: dict, *,
           authorize: Callable[[str | None], None] | None = None) -> dict:
    """Validate, locate, authorise (`authorize(area_code)` raises Forbidden), insert; return the
    incident with duplicate suggestions."""
    prepared = prepare(session, data)
    if authorize is not None:
        authorize(prepared.area_code)
    if prepared.external_id:
        existing = session.execute(text(
            "SELECT id FROM incidents WHERE external_id = :e AND source IS NOT DISTINCT FROM :s"),
            {"e": prepared.external_id, "s": prepared.source}).scalar()
        if existing:
            raise Conflict(f"external_id {prepared.external_id!r} from source {prepared.source!r} "
                           f"is already incident {existing}", field="external_id")
    [incident_id] = insert(session, actor, [prepared])
    body = get(session, incident_id)
    body["warnings"] = prepared.warnings
    body["duplicates"] = duplicates(session, incident_id)
    return body


# -- assignment ----------------------------------------------------------------------------------
# Three shapes of one rule — the finest area containing each point, the lowest id on a shared edge —
# chosen by size and selection. Each is one UPDATE; rows whose assignment is unchanged are not
# rewritten.
#
# A few incidents: each point probes the GiST index on areas.geom and tests the candidates.
_ASSIGN_FEW = """
    UPDATE {table} i
       SET grid_id = h.area_id, area_id = h.area_id, outside_jurisdiction = h.area_id IS NULL,
           district_code = h.district_code
      FROM (SELECT t.id, f.id AS area_id, r.code AS district_code
              FROM {table} t
              LEFT JOIN LATERAL (
                    SELECT a.id, a.path FROM areas a
                     WHERE a.geom && t.geom AND ST_Intersects(a.geom, t.geom)
                     ORDER BY a.level DESC, a.id LIMIT 1) f ON true
              LEFT JOIN areas r ON r.id = CAST(subpath(f.path, 0, 1)::text AS int)
             WHERE t.geom IS NOT NULL AND {where}) h
     WHERE i.id = h.id
       AND (i.grid_id IS DISTINCT FROM h.area_id OR i.area_id IS DISTINCT FROM h.area_id
            OR i.outside_jurisdiction IS DISTINCT FROM (h.area_id IS NULL))
"""
# Many incidents in a boundary edit's region, or anywhere when there is no grid lookup: the loop
# turns round. The areas near the region (or all) are cut into the pieces that partition the
# jurisdiction (gridlookup.PIECES); each piece then scans the GiST index on the incidents' points
# for its bounding box, so one polygon is tested against many points in a row (PostGIS keeps its
# edge index cached between calls) instead of every point fetching and testing several large
# polygons. A point on an edge meets two pieces; the finest level and then the lowest area id
# wins, as above.
_PIECES_AND_HITS = """
    WITH pieces AS MATERIALIZED (""" + gridlookup.PIECES + """),
    hits AS (
        -- finest level first, then the lowest id, as one bigint so the aggregate is cheap
        SELECT t.id, min((CAST(9 - p.level AS bigint) << 32) | p.area_id) & 4294967295 AS area_id
          FROM pieces p JOIN {table} t ON t.geom && p.geom AND ST_Intersects(p.geom, t.geom)
         WHERE {where}
         GROUP BY t.id)
"""
_ASSIGN_MANY = _PIECES_AND_HITS + """
    UPDATE {table} i
       SET grid_id = h.area_id, area_id = h.area_id, outside_jurisdiction = h.area_id IS NULL,
           district_code = r.code
      FROM {table} t
      LEFT JOIN hits h ON h.id = t.id
      LEFT JOIN areas f ON f.id = h.area_id
      LEFT JOIN areas r ON r.id = CAST(subpath(f.path, 0, 1)::text AS int)
     WHERE i.id = t.id AND t.geom IS NOT NULL AND {where}
       AND (i.grid_id IS DISTINCT FROM h.area_id OR i.area_id IS DISTINCT FROM h.area_id
            OR i.outside_jurisdiction IS DISTINCT FROM (h.area_id IS NULL))
"""
# The same computation, counted instead of written: what a boundary edit would move.
_IMPACT = _PIECES_AND_HITS + """
    SELECT count(*) AS checked,
           count(*) FILTER (WHERE t.grid_id IS DISTINCT FROM h.area_id) AS moving,
           count(*) FILTER (WHERE h.area_id IS NULL) AS outside
      FROM {table} t LEFT JOIN hits h ON h.id = t.id
     WHERE t.geom IS NOT NULL AND {where}
"""
# Many incidents anywhere (all of them, whole subtrees, many ids): each point reads its cell of the
# grid lookup (gridlookup.changes) and only points in cells a boundary crosses meet a polygon.
_ASSIGN_LOOKUP = """
    UPDATE {table} i
       SET grid_id = h.area, area_id = h.area, outside_jurisdiction = h.area IS NULL,
           district_code = r.code
      FROM ({changes}) h
      LEFT JOIN areas f ON f.id = h.area
      LEFT JOIN areas r ON r.id = CAST(subpath(f.path, 0, 1)::text AS int)
     WHERE i.id = h.id
"""
FEW = 2000  # below this many incidents the per-point probe is the cheaper shape
# A stale grid lookup is rebuilt (one to two seconds for the demo's 749 areas) only for at least
# this many incidents; fewer go the pieces' way, which needs nothing built.
LOOKUP_REBUILD = 100_000
BULK_WORK_MEM = "256MB"  # a million incidents' hash aggregate fits without spilling to disk
BULK_WORKERS = "2"  # parallel workers for a counting statement (an UPDATE never runs in parallel)
_PRECISE = "(t.geocode_level IS NULL OR t.geocode_level IN ({}))".format(
    ", ".join(f"'{lv}'" for lv in PRECISE_LEVELS))


def assign(session: Session, *, incident_ids: Iterable[int] | None = None,
           within_wkt: str | None = None, area_codes: Iterable[str] | None = None,
           everything: bool = False, table: str = "incidents") -> int:
    """(Re)assign incidents to the finest area containing their point; return rows changed.

    Select by ids, by a WKT geometry (the region a boundary edit touched: pass the union of the old
    and new shapes), by the areas they are currently assigned to (with their subtrees), or all.
    Incidents located only to a village or township keep their area.
    """
    where, params, few = _selection(incident_ids=incident_ids, within_wkt=within_wkt,
                                    area_codes=area_codes, everything=everything, table=table)
    if where is None:
        return 0
    if not few and within_wkt is not None:
        # An edit touches a small region: count first (the GiST index answers) and probe point by
        # point when only a few incidents lie there.
        few = _count(session, table, where, params) <= FEW
    if few:
        return session.execute(text(_ASSIGN_FEW.format(table=table, where=where)), params).rowcount
    lookup = _lookup(session, table, where, params, incident_ids=incident_ids, within_wkt=within_wkt)
    with _bulk(session):
        if lookup is not None:
            sql = _ASSIGN_LOOKUP.format(table=table, changes=gridlookup.changes(table, where, lookup))
            return session.execute(text(sql), {**params, **lookup.params}).rowcount
        sql = _ASSIGN_MANY.format(table=table, where=where, **_near(within_wkt))
        return session.execute(text(sql), params).rowcount


def _count(session: Session, table: str, where: str, params: dict) -> int:
    """How many incidents the selection holds."""
    return session.execute(text(f"SELECT count(*) FROM {table} t WHERE {where}"), params).scalar_one()


def _lookup(session: Session, table: str, where: str, params: dict, *, incident_ids,
            within_wkt) -> gridlookup.Lookup | None:
    """The grid lookup for a bulk run, or None to cut pieces instead.

    An edit's region goes the pieces' way: its areas have just changed, so the lookup is stale, and
    only the pieces near the region are needed. Anything else reads the lookup when it is current,
    and rebuilds it first when enough incidents are selected to pay for that.
    """
    if within_wkt is not None:
        return None
    found = gridlookup.current(session)
    if found is not None:
        return found
    selected = len(params["ids"]) if incident_ids is not None else _count(session, table, where, params)
    return gridlookup.refresh(session) if selected >= LOOKUP_REBUILD else None


def _near(within_wkt: str | None) -> dict:
    """Only the areas that can hold the selected points need cutting into pieces."""
    if within_wkt is None:
        return {"near": "true", "near_p": "true"}
    return {"near": "a.geom && ST_GeomFromText(:wkt, 4326)",
            "near_p": "p.geom && ST_GeomFromText(:wkt, 4326)"}


def reassignment_impact(session: Session, *, within_wkt: str | None = None,
                        area_codes: Iterable[str] | None = None, everything: bool = False,
                        table: str = "incidents") -> dict:
    """What `assign` would do, without writing: incidents checked, moving to another area, outside."""
    where, params, _ = _selection(incident_ids=None, within_wkt=within_wkt, area_codes=area_codes,
                                  everything=everything, table=table)
    if where is None:
        return {"checked": 0, "moving": 0, "outside": 0}
    lookup = _lookup(session, table, where, params, incident_ids=None, within_wkt=within_wkt)
    with _bulk(session):
        if lookup is not None:
            row = session.execute(text(gridlookup.tallied(table, where, lookup)),
                                  {**params, **lookup.params}).one()
            # A boundary edit committed since the lookup was chosen: count the pieces' way.
            if row.fresh:
                tally = int(row.tally or 0)
                return {"checked": row.checked, "moving": tally & 0xFFFFFFFF, "outside": tally >> 32}
        sql = _IMPACT.format(table=table, where=where, **_near(within_wkt))
        return dict(session.execute(text(sql), params).mappings().one())


@contextmanager
def _bulk(session: Session):
    """Give one bulk statement enough sort/hash memory not to spill and parallel workers to count
    with, then restore the settings (a failed statement's transaction restores them itself)."""
    settings = {"work_mem": BULK_WORK_MEM, "max_parallel_workers_per_gather": BULK_WORKERS}
    before = {name: session.execute(text("SELECT current_setting(:n)"), {"n": name}).scalar()
              for name in settings}
    for name, value in settings.items():
        session.execute(text("SELECT set_config(:n, :v, true)"), {"n": name, "v": value})
    yield
    for name, value in before.items():
        session.execute(text("SELECT set_config(:n, :v, true)"), {"n": name, "v": value})


def _selection(*, incident_ids, within_wkt, area_codes, everything, table):
    """The WHERE clause (alias t) choosing incidents to assign, its parameters, and whether few."""
    where, params = [_PRECISE], {}
    few = False
    if incident_ids is not None:
        ids = [int(i) for i in incident_ids]
        if not ids:
            return None, {}, True
        where.append("t.id = ANY(:ids)")
        params["ids"] = ids
        few = len(ids) <= FEW
    if within_wkt is not None:
        where.append("t.geom && ST_GeomFromText(:wkt, 4326) "
                     "AND ST_Intersects(t.geom, ST_GeomFromText(:wkt, 4326))")
        params["wkt"] = within_wkt
    if area_codes is not None:
        codes = list(area_codes)
        if not codes:
            return None, {}, True
        where.append("(COALESCE(t.area_id, t.grid_id) IN (SELECT c.id FROM areas p JOIN areas c "
                     "ON c.path <@ p.path WHERE p.code = ANY(:codes)) "
                     "OR (t.area_id IS NULL AND t.grid_id IS NULL))")
        params["codes"] = codes
    if len(where) == 1 and not everything:
        raise InvalidInput("scope", "assign needs incident_ids, within_wkt, area_codes or everything=True")
    if not re.fullmatch(r"[a-z_][a-z0-9_.]*", table):
        raise InvalidInput("table", f"not a table name: {table!r}")
    return " AND ".join(where), params, few


# -- reading -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Viewer:
    """Who is reading: decides scope (area subtrees) and what of a sensitive incident is shown."""

    role: str
    scope_paths: tuple[str, ...] = ()
    everywhere: bool = False

    @classmethod
    def of(cls, principal) -> "Viewer":
        return cls(role=principal.role, scope_paths=tuple(principal.scope_paths),
                   everywhere=principal.everywhere)

    @property
    def exact(self) -> bool:
        return self.role in EXACT_ROLES


ADMIN = Viewer("admin", (), True)


@dataclass
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


# The point shown: exact, or for a sensitive incident and a viewer without need, the centre of
# its area (grid). `:exact` is a bound boolean, so one statement serves every viewer.
_SHOWN_GEOM = ("CASE WHEN i.sensitive AND NOT :exact THEN ST_PointOnSurface(a.geom) "
               "ELSE i.geom END")


def _scope_sql(viewer: Viewer, params: dict) -> str:
    if viewer.everywhere:
        return "true"
    params["scope_paths"] = list(viewer.scope_paths) or ["0"]
    return "a.path <@ ANY (CAST(:scope_paths AS ltree[]))"


def _where(session: Session, viewer: Viewer, f: Filters, params: dict) -> str:
    where = [_scope_sql(viewer, params)]
    params["exact"] = viewer.exact
    if f.bbox:
        params.update(minx=f.bbox[0], miny=f.bbox[1], maxx=f.bbox[2], maxy=f.bbox[3])
        env = "ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326)"
        # Filter on the point the viewer is shown, so a small bbox cannot reveal where a
        # generalised incident really is; the exact branch uses the GiST index on incidents.geom.
        where.append(f"((NOT i.sensitive OR :exact) AND i.geom && {env} "
                     f" OR (i.sensitive AND NOT :exact AND a.geom && {env} "
                     f"     AND ST_Intersects(ST_PointOnSurface(a.geom), {env})))")
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
        root = areas_mod.area_row(session, f.area)
        where.append("a.path <@ CAST(:area_path AS ltree)")
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
        'generalised', i.sensitive AND NOT :exact,
        'description', i.description,
        'address', CASE WHEN i.sensitive AND NOT :exact THEN NULL ELSE i.address END,
        'reporter_name', CASE WHEN :exact THEN i.reporter_name END,
        'reporter_phone', CASE WHEN :exact THEN i.reporter_phone END)
"""


def features(session: Session, viewer: Viewer, f: Filters) -> dict:
    """Incidents as a GeoJSON FeatureCollection (built in PostGIS), newest first."""
    params: dict = {"limit": f.limit, "offset": f.offset}
    where = _where(session, viewer, f, params)
    base = f"""FROM incidents i
               LEFT JOIN areas a ON a.id = COALESCE(i.area_id, i.grid_id)
               LEFT JOIN areas g ON g.id = i.grid_id
              WHERE {where}"""
    total = session.execute(text(f"SELECT count(*) {base}"), params).scalar_one()
    body = session.execute(text(f"""
        SELECT json_build_object('type', 'FeatureCollection',
                   'numberMatched', :total, 'numberReturned', count(*),
                   'features', COALESCE(json_agg(f ORDER BY occurred_at DESC, id DESC), '[]'::json))
          FROM (SELECT json_build_object('type', 'Feature', 'id', i.id,
                           'geometry', ST_AsGeoJSON({_SHOWN_GEOM}, 7)::json,
                           'properties', {_PROPERTIES}) AS f, i.occurred_at, i.id
                  {base}
                 ORDER BY i.occurred_at DESC, i.id DESC
                 LIMIT :limit OFFSET :offset) s"""), {**params, "total": total}).scalar_one()
    return body


def _row(session: Session, incident_id) -> dict:
    try:
        key = int(incident_id)
    except (TypeError, ValueError):
        raise InvalidInput("id", f"incident id must be a whole number; got {incident_id!r}") from None
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


def _visible(row: dict, viewer: Viewer) -> bool:
    if viewer.everywhere:
        return True
    path = row["area_path"]
    if path is None:
        return False
    return any(path == p or path.startswith(p + ".") for p in viewer.scope_paths)


def area_of(session: Session, incident_id) -> str | None:
    """The code of the area an incident lies in (for scope checks), or None outside every one."""
    return _row(session, incident_id)["area_code"]


def get(session: Session, incident_id, viewer: Viewer = ADMIN) -> dict:
    """One incident as a GeoJSON Feature with its events, links and response-time targets."""
    row = _row(session, incident_id)
    if not _visible(row, viewer):
        raise NotFound(f"no incident {incident_id}", field="id")
    params = {"id": row["id"], "exact": viewer.exact}
    feature = session.execute(text(f"""
        SELECT json_build_object('type', 'Feature', 'id', i.id,
                   'geometry', ST_AsGeoJSON({_SHOWN_GEOM}, 7)::json, 'properties', {_PROPERTIES})
          FROM incidents i LEFT JOIN areas a ON a.id = COALESCE(i.area_id, i.grid_id)
          LEFT JOIN areas g ON g.id = i.grid_id WHERE i.id = :id"""), params).scalar_one()
    props = feature["properties"]
    props["events"] = [dict(r) for r in session.execute(text("""
        SELECT e.ts, e.from_status, e.to_status, e.level, e.note, u.username AS actor
          FROM incident_events e LEFT JOIN users u ON u.id = e.actor_id
         WHERE e.incident_id = :id ORDER BY e.ts, e.id"""), {"id": row["id"]}).mappings()]
    for e in props["events"]:
        e["ts"] = e["ts"].isoformat()
    props["links"] = linked(session, row["id"])
    props["handling_level"] = handling_level(row)
    props["targets"] = targets(row)
    props["allowed"] = list(TRANSITIONS[row["status"]])
    if viewer.exact and (row.get("attrs") or {}).get("geocode"):
        props["geocode"] = row["attrs"]["geocode"]
    return feature


def targets(row: dict, now: datetime | None = None) -> dict:
    """Response-time targets for the incident's category, their deadlines and whether they are met."""
    now = now or datetime.now(timezone.utc)
    t = RESPONSE_TARGETS[row["category"]]
    reported = row["reported_at"]
    out = {}
    for key, done_at in (("accept", row["accepted_at"]), ("resolve", row["resolved_at"])):
        due = reported + t[key]
        out[key] = {"hours": round(t[key].total_seconds() / 3600, 2), "due": due.isoformat(),
                    "met": None if done_at is None and now < due else bool(done_at and done_at <= due),
                    "overdue": done_at is None and now > due and row["status"] not in ("closed",)}
    return out


def handling_level(row: dict) -> str:
    """The level currently holding the matter (starts at group; each escalation moves it up)."""
    return (row.get("attrs") or {}).get("handling_level") or "group"


# -- lifecycle -----------------------------------------------------------------------------------
def parse_level(value, name: str = "level") -> str | None:
    if value is None or value == "":
        return None
    key = str(value).strip().lower()
    if key in LEVEL_BY_NAME:
        return LEVEL_BY_NAME[key]
    raise InvalidInput(name, f"{name} must be one of {', '.join(RESOLUTION_LEVELS)} "
                             f"(组/村/镇/区); got {value!r}")


def transition(session: Session, actor: audit.Actor, incident_id, to: str, *,
               note: str | None = None, level: str | None = None,
               expected_status: str | None = None, at: datetime | None = None) -> dict:
    """Move an incident along its lifecycle; record the event and audit it; return the incident.

    `level` on `resolved` is where it was resolved (default: the level holding it); on `escalated`
    the level it goes to (default: the next one up). `expected_status` guards against two people
    acting on the same incident at once (Conflict if it has moved meanwhile).
    """
    if to not in INCIDENT_STATUSES:
        raise InvalidInput("to", f"to must be one of {', '.join(INCIDENT_STATUSES)}; got {to!r}")
    level = parse_level(level)
    if note is not None and not isinstance(note, str):
        raise InvalidInput("note", "note must be text")
    note = (note or "").strip() or None
    if note and len(note) > 2000:
        raise InvalidInput("note", f"note must be at most 2000 characters; got {len(note)}")
    row = _row(session, incident_id)
    # Lock the row so two transitions of one incident are serialised.
    session.execute(text("SELECT 1 FROM incidents WHERE id = :id FOR UPDATE"), {"id": row["id"]})
    row = _row(session, incident_id)
    current = row["status"]
    if expected_status and expected_status != current:
        raise Conflict(f"incident {row['id']} is {current}, not {expected_status}", field="status")
    if to not in TRANSITIONS[current]:
        allowed = ", ".join(TRANSITIONS[current]) or "nothing (closed)"
        raise InvalidInput("to", f"an incident that is {current} can go to {allowed}; got {to!r}")
    if (current, to) in NOTE_REQUIRED and not note:
        raise InvalidInput("note", f"reopening a {current} incident needs a note saying why")
    if to == "escalated" and not note:
        raise InvalidInput("note", "an escalation needs a note saying why")
    attrs = dict(row.get("attrs") or {})
    holding = handling_level(row)
    sets = {"status": to}
    now = at or datetime.now(timezone.utc)
    event_level = None
    if to == "escalated":
        order = list(RESOLUTION_LEVELS)
        if holding == order[-1]:
            raise InvalidInput("to", f"the matter is already held by the {holding}; it cannot go higher")
        nxt = level or order[order.index(holding) + 1]
        if order.index(nxt) <= order.index(holding):
            raise InvalidInput("level", f"escalation must go above {holding}; got {nxt}")
        attrs["handling_level"] = nxt
        event_level = nxt
    elif to == "accepted":
        if row["accepted_at"] is None:
            sets["accepted_at"] = now
        event_level = holding
    elif to == "resolved":
        resolved_at = level or holding
        sets.update(resolved_at=now, resolution_level=resolved_at)
        event_level = resolved_at
    elif to == "handling":
        if current in RESOLVED_STATUSES:
            sets.update(resolved_at=None, resolution_level=None)
        event_level = holding
    elif to == "followed_up":
        event_level = row["resolution_level"]
    elif to == "closed":
        sets["closed_at"] = now
        event_level = row["resolution_level"]
    sets["attrs"] = json.dumps(attrs, ensure_ascii=False)
    assignments = ", ".join(f"{k} = CAST(:{k} AS jsonb)" if k == "attrs" else f"{k} = :{k}"
                            for k in sets)
    session.execute(text(f"UPDATE incidents SET {assignments} WHERE id = :id"),
                    {**sets, "id": row["id"]})
    session.execute(text("""
        INSERT INTO incident_events (incident_id, ts, actor_id, from_status, to_status, level, note)
        VALUES (:id, :ts, :actor, :from, :to, :level, :note)"""),
        {"id": row["id"], "ts": now, "actor": actor.user_id, "from": current, "to": to,
         "level": event_level, "note": note})
    audit.record(session, actor, f"incident.{to}", target_type="incident", target_id=row["id"],
                 area_code=row["area_code"],
                 details={"from": current, "to": to, "level": event_level, "note": note})
    return get(session, row["id"])


# -- statistics ----------------------------------------------------------------------------------
def stats(session: Session, area: str, start: datetime | None = None, end: datetime | None = None,
          *, children: bool = True) -> dict:
    """Per area and period (by occurrence): counts, the dispute resolution rate, where matters
    were resolved (小事不出村、大事不出乡), and response times against the targets."""
    root = areas_mod.area_row(session, area)
    params = {"path": root["path"], "start": start, "end": end}
    period = ("(CAST(:start AS timestamptz) IS NULL OR i.occurred_at >= :start) AND "
              "(CAST(:end AS timestamptz) IS NULL OR i.occurred_at < :end)")
    targets_sql = " ".join(
        f"WHEN '{c}' THEN interval '{int(t['accept'].total_seconds())} seconds'"
        for c, t in RESPONSE_TARGETS.items())
    resolve_sql = " ".join(
        f"WHEN '{c}' THEN interval '{int(t['resolve'].total_seconds())} seconds'"
        for c, t in RESPONSE_TARGETS.items())
    base = f"""
        FROM incidents i JOIN areas a ON a.id = COALESCE(i.area_id, i.grid_id)
       WHERE a.path <@ CAST(:path AS ltree) AND {period}"""
    summary = session.execute(text(f"""
        SELECT count(*) AS total,
               count(*) FILTER (WHERE i.category = 'dispute') AS disputes,
               count(*) FILTER (WHERE i.category = 'dispute' AND i.resolved_at IS NOT NULL) AS disputes_resolved,
               count(*) FILTER (WHERE i.resolved_at IS NOT NULL) AS resolved,
               count(*) FILTER (WHERE i.resolution_level = 'group') AS at_group,
               count(*) FILTER (WHERE i.resolution_level = 'village') AS at_village,
               count(*) FILTER (WHERE i.resolution_level = 'township') AS at_township,
               count(*) FILTER (WHERE i.resolution_level = 'district') AS at_district,
               count(*) FILTER (WHERE i.category = 'dispute' AND i.resolution_level IN ('group', 'village')) AS disputes_in_village,
               count(*) FILTER (WHERE i.category = 'dispute' AND i.resolution_level IN ('group', 'village', 'township')) AS disputes_in_township,
               count(*) FILTER (WHERE i.accepted_at IS NOT NULL) AS accepted,
               count(*) FILTER (WHERE i.accepted_at <= i.reported_at + CASE i.category {targets_sql} END) AS accepted_on_time,
               count(*) FILTER (WHERE i.resolved_at <= i.reported_at + CASE i.category {resolve_sql} END) AS resolved_on_time,
               count(*) FILTER (WHERE i.status IN ('reported', 'accepted', 'handling', 'escalated')
                                  AND now() > i.reported_at + CASE i.category {resolve_sql} END) AS overdue,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM i.accepted_at - i.reported_at) / 3600)
                   FILTER (WHERE i.accepted_at IS NOT NULL) AS median_accept_h,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM i.resolved_at - i.reported_at) / 3600)
                   FILTER (WHERE i.resolved_at IS NOT NULL) AS median_resolve_h
        {base}"""), params).mappings().one()
    by = {}
    for column in ("category", "status"):
        by[column] = {r[0]: r[1] for r in session.execute(text(
            f"SELECT i.{column}, count(*) {base} GROUP BY 1 ORDER BY 1"), params)}
    out = {"area": {"code": root["code"], "name": root["name"], "level": root["level"]},
           "from": start.isoformat() if start else None, "to": end.isoformat() if end else None,
           **_summary(summary), "by_category": by["category"], "by_status": by["status"]}
    if children:
        out["children"] = []
        for child in session.execute(text("SELECT code FROM areas WHERE parent_id = :id ORDER BY code"),
                                     {"id": root["id"]}).scalars():
            out["children"].append(stats(session, child, start, end, children=False))
    return out


def _ratio(a, b) -> float | None:
    return round(a / b, 4) if b else None


def _summary(r) -> dict:
    resolved = r["resolved"]
    levels = {"group": r["at_group"], "village": r["at_village"], "township": r["at_township"],
              "district": r["at_district"]}
    dispute_levels_known = r["disputes_resolved"]
    return {
        "total": r["total"],
        "disputes": {"total": r["disputes"], "resolved": r["disputes_resolved"],
                     "resolution_rate": _ratio(r["disputes_resolved"], r["disputes"]),
                     "within_village": _ratio(r["disputes_in_village"], dispute_levels_known),
                     "within_township": _ratio(r["disputes_in_township"], dispute_levels_known)},
        "resolved": resolved,
        "resolution_levels": levels,
        "within_village": _ratio(levels["group"] + levels["village"], resolved),
        "within_township": _ratio(levels["group"] + levels["village"] + levels["township"], resolved),
        "response": {"accepted": r["accepted"],
                     "accepted_on_time": _ratio(r["accepted_on_time"], r["accepted"]),
                     "resolved_on_time": _ratio(r["resolved_on_time"], resolved),
                     "median_accept_hours": None if r["median_accept_h"] is None
                     else round(float(r["median_accept_h"]), 2),
                     "median_resolve_hours": None if r["median_resolve_h"] is None
                     else round(float(r["median_resolve_h"]), 2),
                     "overdue_open": r["overdue"]},
    }


# -- duplicates and links --------------------------------------------------------------------------
DUPLICATE_RADIUS_M = 300.0
DUPLICATE_WINDOW = timedelta(hours=72)
DUPLICATE_THRESHOLD = 0.55


def _bigrams(s: str | None) -> set[str]:
    s = re.sub(r"\s+", "", (s or "").lower())
    return {s[i:i + 2] for i in range(len(s) - 1)} if len(s) > 1 else ({s} if s else set())


def similarity(a: str | None, b: str | None) -> float:
    """Text similarity of two descriptions: Dice coefficient of character bigrams (works for Chinese)."""
    x, y = _bigrams(a), _bigrams(b)
    if not x or not y:
        return 0.0
    return 2 * len(x & y) / (len(x) + len(y))


def duplicates(session: Session, incident_id, *, radius_m: float = DUPLICATE_RADIUS_M,
               window: timedelta = DUPLICATE_WINDOW, limit: int = 5,
               threshold: float = DUPLICATE_THRESHOLD) -> list[dict]:
    """Likely reports of the same matter through another channel: near in space and time, similar
    in text; scored 0–1 (distance 40 %, time 25 %, text 25 %, same category 10 %)."""
    row = _row(session, incident_id)
    if row["geom"] is None:
        return []
    # Candidates by an index-friendly box first (1° of latitude ≈ 111 km; longitude scaled), then
    # the true distance on the geography type.
    dlat = radius_m / 111_000.0
    dlon = dlat / max(0.1, math.cos(math.radians(row["lat"])))
    rows = session.execute(text("""
        SELECT o.id, o.category, o.subtype, o.status, o.occurred_at, o.description, o.address,
               o.source, ST_Distance(o.geom::geography, i.geom::geography) AS metres,
               EXISTS (SELECT 1 FROM incident_links l WHERE l.incident_a = LEAST(o.id, i.id)
                         AND l.incident_b = GREATEST(o.id, i.id)) AS linked
          FROM incidents i JOIN incidents o
            ON o.id <> i.id
           AND o.geom && ST_Expand(i.geom, :dlon, :dlat)
           AND ST_DWithin(o.geom::geography, i.geom::geography, :radius)
           AND o.occurred_at BETWEEN i.occurred_at - :window AND i.occurred_at + :window
         WHERE i.id = :id"""),
        {"id": row["id"], "dlon": dlon, "dlat": dlat, "radius": radius_m,
         "window": window}).mappings().all()
    out = []
    for r in rows:
        d = 1 - float(r["metres"]) / radius_m
        t = 1 - abs((r["occurred_at"] - row["occurred_at"]).total_seconds()) / window.total_seconds()
        words = max(similarity(row["description"], r["description"]),
                    similarity((row["address"] or "") + (row["description"] or ""),
                               (r["address"] or "") + (r["description"] or "")))
        same = 1.0 if r["category"] == row["category"] else 0.0
        score = 0.4 * d + 0.25 * t + 0.25 * words + 0.1 * same
        if score >= threshold or r["linked"]:
            out.append({"id": r["id"], "score": round(score, 3), "distance_m": round(float(r["metres"]), 1),
                        "hours_apart": round(abs((r["occurred_at"] - row["occurred_at"]).total_seconds()) / 3600, 2),
                        "text_similarity": round(words, 3), "category": r["category"],
                        "subtype": r["subtype"], "status": r["status"], "source": r["source"],
                        "linked": r["linked"]})
    out.sort(key=lambda x: (-x["score"], x["id"]))
    return out[:limit]


def _pair(a, b) -> tuple[int, int]:
    try:
        x, y = int(a), int(b)
    except (TypeError, ValueError):
        raise InvalidInput("other", f"incident ids must be whole numbers; got {a!r} and {b!r}") from None
    if x == y:
        raise InvalidInput("other", "an incident cannot be linked to itself")
    return min(x, y), max(x, y)


def link(session: Session, actor: audit.Actor, a, b) -> dict:
    """Record that two incidents report the same matter; idempotent."""
    x, y = _pair(a, b)
    for i in (x, y):
        _row(session, i)
    inserted = session.execute(text(
        "INSERT INTO incident_links (incident_a, incident_b, created_by) VALUES (:a, :b, :u) "
        "ON CONFLICT DO NOTHING"), {"a": x, "b": y, "u": actor.user_id}).rowcount
    if inserted:
        audit.record(session, actor, "incident.link", target_type="incident", target_id=x,
                     details={"other": y})
    return {"incident_a": x, "incident_b": y, "created": bool(inserted)}


def unlink(session: Session, actor: audit.Actor, a, b) -> None:
    """Remove a link; NotFound if the two were not linked."""
    x, y = _pair(a, b)
    deleted = session.execute(text("DELETE FROM incident_links WHERE incident_a = :a AND incident_b = :b"),
                              {"a": x, "b": y}).rowcount
    if not deleted:
        raise NotFound(f"incidents {x} and {y} are not linked", field="other")
    audit.record(session, actor, "incident.unlink", target_type="incident", target_id=x,
                 details={"other": y})


def linked(session: Session, incident_id: int) -> list[int]:
    """Ids linked to this incident directly."""
    return list(session.execute(text("""
        SELECT CASE WHEN incident_a = :id THEN incident_b ELSE incident_a END
          FROM incident_links WHERE incident_a = :id OR incident_b = :id ORDER BY 1"""),
        {"id": int(incident_id)}).scalars())


def require_visible(session: Session, incident_id, viewer: Viewer) -> dict:
    """The incident row if the viewer may see it, else NotFound (never reveal it exists)."""
    row = _row(session, incident_id)
    if not _visible(row, viewer):
        raise NotFound(f"no incident {incident_id}", field="id")
    return row


def check_forbidden_outside(viewer: Viewer, area_code: str | None) -> None:
    """Only a user without area limits may act on an incident outside every jurisdiction."""
    if area_code is None and not viewer.everywhere:
        raise Forbidden("this point lies outside every jurisdiction; only an administrator without "
                        "area limits may record it", field="location")
