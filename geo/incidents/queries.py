"""Reading incidents: the list filters, GeoJSON of the incidents a viewer may see, one incident with
its events and links.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import areas as areas_mod
from geo.errors import Forbidden, InvalidInput, NotFound
from geo.incidents.fields import parse_category, parse_severity, parse_time
from geo.incidents.workflow import TRANSITIONS, handling_level, targets
from geo.vocabulary import INCIDENT_STATUSES

# Who sees a sensitive incident's exact point and any incident's reporter: the roles that act on
# them. Everyone else sees a sensitive incident at its grid's centre, without address or reporter.
EXACT_ROLES = ("admin", "dispatcher", "grid_worker")


LIST_LIMIT = 500
LIST_MAX = 5000


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


def incident_row(session: Session, incident_id) -> dict:
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
    return incident_row(session, incident_id)["area_code"]


def get(session: Session, incident_id, viewer: Viewer = ADMIN) -> dict:
    """One incident as a GeoJSON Feature with its events, links and response-time targets."""
    row = incident_row(session, incident_id)
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


def require_visible(session: Session, incident_id, viewer: Viewer) -> dict:
    """The incident row if the viewer may see it, else NotFound (never reveal it exists)."""
    row = incident_row(session, incident_id)
    if not _visible(row, viewer):
        raise NotFound(f"no incident {incident_id}", field="id")
    return row


def check_forbidden_outside(viewer: Viewer, area_code: str | None) -> None:
    """Only a user without area limits may act on an incident outside every jurisdiction."""
    if area_code is None and not viewer.everywhere:
        raise Forbidden("this point lies outside every jurisdiction; only an administrator without "
                        "area limits may record it", field="location")


def linked(session: Session, incident_id: int) -> list[int]:
    """Ids linked to this incident directly."""
    return list(session.execute(text("""
        SELECT CASE WHEN incident_a = :id THEN incident_b ELSE incident_a END
          FROM incident_links WHERE incident_a = :id OR incident_b = :id ORDER BY 1"""),
        {"id": int(incident_id)}).scalars())
