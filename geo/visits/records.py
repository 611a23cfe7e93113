"""走访 visits: recording one (with the issues found, each optionally reported as an incident in
the same transaction), listing them per grid and month, and coverage — households visited per grid
and per worker.

A visit is to a household of the registry or to a place (lon/lat). A 回访 (kind `follow_up`) names
the matter it follows up; logging it moves a resolved matter to `followed_up`, which is the only way
a matter gets there (geo/incidents/lifecycle.py). A follow-up that arrives after the matter was
closed or reopened by someone else — a phone's queue sent late — is a Conflict in words and nothing
is stored.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import areas as areas_mod
from geo import audit, idempotency
from geo.errors import Conflict, Forbidden, InvalidInput, NotFound
from geo.incidents import intake, lifecycle
from geo.incidents.fields import bounded_text, parse_bool, parse_category, parse_severity, parse_time
from geo.incidents.queries import incident_id as parse_incident_id
from geo.incidents.queries import visible
from geo.messages import msg
from geo.policy import Audience
from geo.visits.households import _identity_sql, household_row
from geo.vocabulary import OPEN_STATUSES, VISIT_KIND_BY_NAME, VISIT_KIND_NAMES, VISIT_KINDS

MAX_ISSUES = 20
MAX_NOTES = 4000
LIST_MAX = 5000
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)


def parse_kind(value) -> str:
    """A visit kind by key (home) or name (入户走访)."""
    key = str(value).strip().lower() if value is not None else ""
    if key in VISIT_KIND_BY_NAME:
        return VISIT_KIND_BY_NAME[key]
    choices = ", ".join(f"{k} ({VISIT_KIND_NAMES[k][0]})" for k in VISIT_KINDS)
    raise InvalidInput("kind", f"kind must be one of {choices}; got {value!r}")


def validate(data: dict, now: datetime | None = None) -> dict:
    """Check a visit's fields (no database); return them clean or raise InvalidInput naming one."""
    if not isinstance(data, dict):
        raise InvalidInput("body", "expected a JSON object")
    now = now or datetime.now(UTC)
    kind = parse_kind(data.get("kind"))
    occurred = parse_time(data.get("occurred_at"))
    if occurred > now + timedelta(minutes=10):
        raise InvalidInput("occurred_at", f"occurred_at lies in the future; got {occurred.isoformat()}")
    if occurred < EARLIEST:
        raise InvalidInput("occurred_at", f"occurred_at must be after 1990; got {occurred.isoformat()}")
    notes = data.get("notes")
    if notes is not None and not isinstance(notes, str):
        raise InvalidInput("notes", "notes must be text")
    notes = (notes or "").strip() or None
    if notes and len(notes) > MAX_NOTES:
        raise InvalidInput("notes", f"notes must be at most {MAX_NOTES} characters; got {len(notes)}")
    people = data.get("people", 1)
    if isinstance(people, bool) or not isinstance(people, int) or not 1 <= people <= 99:
        raise InvalidInput("people", f"people (residents met) must be a whole number from 1 to 99; "
                                     f"got {people!r}")
    incident = data.get("incident_id")
    if kind == "follow_up":
        if incident in (None, ""):
            raise InvalidInput("incident_id", "a 回访 (follow_up) names the matter it follows up: "
                                              "incident_id is required")
        incident = parse_incident_id(incident, "incident_id")
    elif incident not in (None, ""):
        raise InvalidInput("incident_id", f"only a 回访 (follow_up) names a matter; kind is {kind}")
    else:
        incident = None
    household = data.get("household_id")
    has_point = data.get("lon") not in (None, "") or data.get("lat") not in (None, "")
    point = None
    if has_point:
        lon, lat, _ = areas_mod.parse_point(data.get("lon"), data.get("lat"), data.get("crs") or "wgs84")
        point = (lon, lat)
    if household in (None, "") and point is None and incident is None:
        raise InvalidInput("location", "give household_id, or lon and lat of the place visited")
    return {"kind": kind, "occurred_at": occurred, "notes": notes, "people": people,
            "incident_id": incident, "household_id": None if household in (None, "") else household,
            "point": point, "issues": _issues(data.get("issues"))}


def _issues(value) -> list[dict]:
    """Issues found on a visit: [{category, severity, description, report}]."""
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise InvalidInput("issues", "issues must be a list of {category, severity, description, "
                                     "report}")
    if len(value) > MAX_ISSUES:
        raise InvalidInput("issues", f"at most {MAX_ISSUES} issues per visit; got {len(value)}")
    out = []
    for n, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidInput(f"issues[{n}]", "each issue must be an object {category, severity, "
                                               "description, report}")
        try:
            out.append({"category": parse_category(item.get("category")),
                        "severity": parse_severity(item.get("severity")),
                        "description": bounded_text(item, "description"),
                        "report": parse_bool(item.get("report"), "report")})
        except InvalidInput as exc:
            raise InvalidInput(f"issues[{n}].{exc.field}", exc.message) from None
    return out


def _place(session: Session, clean: dict, audience: Audience, matter: dict | None) -> dict:
    """Where the visit was: the household's grid and point, or the grid containing the point (or, for
    a 回访 without either, the matter's). Refused outside the audience's grids, naming where it fell."""
    if clean["household_id"] is not None:
        h = household_row(session, clean["household_id"], audience)
        point = clean["point"] or ((h["lon"], h["lat"]) if h["lon"] is not None else None)
        return {"grid_id": h["grid_id"], "grid_code": h["grid_code"], "household_id": h["id"],
                "point": point}
    if clean["point"] is None and matter is not None:
        if matter["grid_id"] is None:
            raise InvalidInput("location", f"matter {matter['id']} has no grid; give lon and lat")
        point = (matter["lon"], matter["lat"]) if matter["lon"] is not None else None
        code = session.execute(text("SELECT code FROM areas WHERE id = :id"),
                               {"id": matter["grid_id"]}).scalar_one()
        return {"grid_id": matter["grid_id"], "grid_code": code, "household_id": None, "point": point}
    lon, lat = clean["point"]
    hit = session.execute(text("""
        SELECT id, code, name, path::text AS path FROM areas
         WHERE geom && ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)
           AND ST_Intersects(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) AND level >= 4
         ORDER BY level DESC, id LIMIT 1"""), {"lon": lon, "lat": lat}).mappings().first()
    if hit is None:
        raise InvalidInput("location", msg("The point ({lon}, {lat}) lies in no grid.",
                                           lon=round(lon, 6), lat=round(lat, 6)))
    if not audience.scope.covers(hit["path"]):
        raise Forbidden(msg("The point falls in grid {code} ({name}), outside your grids.",
                            code=hit["code"], name=hit["name"]), field="location",
                        details={"grid": hit["code"]})
    return {"grid_id": hit["id"], "grid_code": hit["code"], "household_id": None, "point": (lon, lat)}


def _follow_up_target(session: Session, incident: int, audience: Audience) -> dict:
    """The matter a 回访 follows up, locked, if it is resolved or already followed up; otherwise a
    Conflict saying what happened to it meanwhile."""
    visible(session, incident, audience, field="incident_id")
    session.execute(text("SELECT 1 FROM incidents WHERE id = :id FOR UPDATE"), {"id": incident})
    row = session.execute(text("""
        SELECT i.id, i.status, i.grid_id, i.closed_at, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat,
               (SELECT coalesce(u.display_name, u.username) FROM incident_events e
                  LEFT JOIN users u ON u.id = e.actor_id
                 WHERE e.incident_id = i.id AND e.to_status = i.status
                 ORDER BY e.ts DESC, e.id DESC LIMIT 1) AS by_whom
          FROM incidents i WHERE i.id = :id"""), {"id": incident}).mappings().one()
    who = row["by_whom"] or "—"
    if row["status"] == "closed":
        when = row["closed_at"].astimezone(timezone(timedelta(hours=8))).strftime("%Y-%m-%d %H:%M") \
            if row["closed_at"] else "—"
        raise Conflict(msg("Matter {id} was closed by {who} at {when} while this follow-up visit was "
                           "waiting; the visit was not stored.", id=incident, who=who, when=when),
                       field="incident_id", details={"status": "closed"})
    if row["status"] in OPEN_STATUSES:
        raise Conflict(msg("Matter {id} is not resolved (it is {status} now, set by {who}); a "
                           "follow-up visit comes after its resolution, so the visit was not stored.",
                           id=incident, status=row["status"], who=who),
                       field="incident_id", details={"status": row["status"]})
    return dict(row)


def create(session: Session, actor: audit.Actor, data: dict, audience: Audience,
           key: idempotency.Key | None = None) -> dict:
    """Record a visit; report the issues marked `report` as incidents at its place; a 回访 moves
    its resolved matter to followed_up. All in the caller's transaction. With a key this user already
    wrote a visit under, nothing is written and the stored visit comes back with `replayed` true."""
    earlier = idempotency.replayed(session, "visits", actor.user_id, key)
    if earlier is not None:
        return {**get(session, earlier, audience), "replayed": True}
    clean = validate(data)
    matter = _follow_up_target(session, clean["incident_id"], audience) \
        if clean["kind"] == "follow_up" else None
    place = _place(session, clean, audience, matter)
    issues = [dict(i) for i in clean["issues"]]
    to_report = [i for i in issues if i.pop("report")]
    if to_report:
        if place["point"] is None:
            raise InvalidInput("issues", "an issue reported as an incident needs the visit's place: "
                                         "give lon and lat (the household has no point)")
        lon, lat = place["point"]
        prepared = [intake.prepare(session, {"category": i["category"], "severity": i["severity"],
                                             "description": i["description"], "lon": lon, "lat": lat,
                                             "occurred_at": clean["occurred_at"].isoformat(),
                                             "source": "走访"})
                    for i in to_report]
        for p in prepared:
            intake.authorize(session, audience, p.area_code)
        new_ids = intake.insert(session, actor, prepared, note="found on a visit")
        for issue, new_id in zip(to_report, new_ids, strict=True):
            issue["incident_id"] = new_id
    point = place["point"]
    visit_id = session.execute(text("""
        INSERT INTO visits (kind, household_id, incident_id, grid_id, geom, occurred_at, people,
                            notes, issues, visitor_id)
        VALUES (:kind, :household, :incident, :grid,
                CASE WHEN CAST(:lon AS float8) IS NOT NULL
                     THEN ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) END,
                :at, :people, :notes, CAST(:issues AS jsonb), :visitor)
        RETURNING id"""),
        {"kind": clean["kind"], "household": place["household_id"], "incident": clean["incident_id"],
         "grid": place["grid_id"], "lon": point[0] if point else None,
         "lat": point[1] if point else None, "at": clean["occurred_at"], "people": clean["people"],
         "notes": clean["notes"], "issues": json.dumps(issues, ensure_ascii=False) if issues else None,
         "visitor": actor.user_id}).scalar_one()
    idempotency.store(session, "visits", visit_id, key)
    audit.record(session, actor, "visit.create", target_type="visit", target_id=visit_id,
                 area_code=place["grid_code"],
                 details={"kind": clean["kind"], "household_id": place["household_id"],
                          "incident_id": clean["incident_id"],
                          "reported": [i["incident_id"] for i in to_report]})
    if matter is not None and matter["status"] == "resolved":
        lifecycle.transition(session, actor, matter["id"], "followed_up", audience,
                             note=clean["notes"] or "回访", at=clean["occurred_at"])
    return {**get(session, visit_id, audience), "replayed": False}


_COLUMNS = """v.id, v.kind, v.occurred_at, v.people, v.issues, v.incident_id, v.household_id,
              g.code AS grid_code, g.name AS grid_name, ST_X(v.geom) AS lon, ST_Y(v.geom) AS lat,
              coalesce(u.display_name, u.username, p.name) AS visitor, h.number AS household_number"""


def _serialise(r, audience: Audience) -> dict:
    out: dict[str, Any] = {k: r[k] for k in ("id", "kind", "people", "incident_id", "household_id",
                                              "grid_code", "grid_name", "visitor", "household_number")}
    out["occurred_at"] = r["occurred_at"].isoformat()
    out["kind_name"] = VISIT_KIND_NAMES[r["kind"]][0]
    out["issues"] = r["issues"] or []
    if audience.exact:
        out.update(lon=None if r["lon"] is None else round(float(r["lon"]), 7),
                   lat=None if r["lat"] is None else round(float(r["lat"]), 7),
                   notes=r["notes"], household_head=r["head_name"])
    else:  # what was said at a door and where it was stay with those who act on it
        out.update(lon=None, lat=None, notes=None, household_head=r["head_name"])
    return out


def get(session: Session, visit_id: int, audience: Audience) -> dict:
    """One visit the audience may see (its grid in their scope), or NotFound."""
    params: dict = {"id": visit_id}
    where, scope_params = audience.scope.sql("g.path")
    params.update(scope_params)
    row = session.execute(text(f"""
        SELECT {_COLUMNS}, v.notes, {_identity_sql(audience)}
          FROM visits v JOIN areas g ON g.id = v.grid_id
          LEFT JOIN users u ON u.id = v.visitor_id LEFT JOIN people p ON p.id = v.person_id
          LEFT JOIN households h ON h.id = v.household_id
         WHERE v.id = :id AND {where}"""), params).mappings().first()
    if row is None:
        raise NotFound(f"no visit {visit_id}", field="id")
    return _serialise(row, audience)


def listing(session: Session, audience: Audience, month: tuple[datetime, datetime],
            grid: str | None = None) -> dict:
    """The visits of one month in a grid (or the audience's whole scope), newest first."""
    params: dict = {"start": month[0], "end": month[1], "limit": LIST_MAX}
    where, scope_params = audience.scope.sql("g.path")
    params.update(scope_params)
    grid_filter = ""
    if grid:
        row = audience.scope.area(session, grid, field="grid")
        params["gp"] = row["path"]
        grid_filter = "AND g.path <@ CAST(:gp AS ltree)"
    rows = session.execute(text(f"""
        SELECT {_COLUMNS}, v.notes, {_identity_sql(audience)}
          FROM visits v JOIN areas g ON g.id = v.grid_id
          LEFT JOIN users u ON u.id = v.visitor_id LEFT JOIN people p ON p.id = v.person_id
          LEFT JOIN households h ON h.id = v.household_id
         WHERE v.occurred_at >= :start AND v.occurred_at < :end AND {where} {grid_filter}
         ORDER BY v.occurred_at DESC, v.id DESC LIMIT :limit"""), params).mappings().all()
    return {"month": month[0].strftime("%Y-%m"), "grid": grid,
            "visits": [_serialise(r, audience) for r in rows]}
