"""Write the generated 郾城区 demo into the schema, tell whether it is there, and remove it again.

Row ids come from each table's own sequence before writing, so parents, children and references
go in one pass; the large tables are streamed with COPY on the session's own connection, inside
the caller's transaction. Nothing here commits.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import timedelta, timezone

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import Conflict
from geo.incidents import assignment

from .yancheng import BOUNDARY_TIME, DEMO_VERSION, DISTRICT_CODE, DISTRICT_NAME, Demo

Progress = Callable[[str, int, int], None]
CHANGE_REASON = "郾城区演示数据"
POSITION_CHUNK = 20_000


def is_loaded(session: Session) -> bool:
    """Tell whether the district row of this demo version is present."""
    version = session.execute(text("SELECT attrs->>'demo_version' FROM areas WHERE code = :c"),
                              {"c": DISTRICT_CODE}).scalar()
    return version == DEMO_VERSION


def load(session: Session, demo: Demo, *, progress: Progress | None = None) -> dict:
    """Write `demo` into the database and return how many rows each table received.

    Raises:
        Conflict: the district 411103 already exists (remove it first with `unload`).
    """
    exists = session.execute(text("SELECT 1 FROM areas WHERE code = :c"), {"c": DISTRICT_CODE}).scalar()
    if exists:
        raise Conflict(f"{DISTRICT_NAME} ({DISTRICT_CODE}) is already loaded; "
                       "remove it first (anwang demo --reset)")
    report = progress or (lambda step, done, total: None)
    cur = session.connection().connection.driver_connection.cursor()
    summary: dict[str, int] = {}
    area_ids = _load_areas(cur, demo, summary, report)
    person_ids = _load_staff(cur, demo, area_ids, summary, report)
    _load_entities(cur, demo, area_ids, summary, report)
    _load_places(cur, demo, area_ids, summary, report)
    _load_roads(cur, demo, summary, report)
    incident_ids = _load_incidents(cur, demo, summary, report)
    # The same rule as every other intake: the finest area containing the point, lowest id on edges.
    assignment.assign(session, incident_ids=incident_ids)
    summary["incidents_in_grids"] = session.execute(
        text("SELECT count(*) FROM incidents WHERE id = ANY(:ids) AND grid_id IS NOT NULL"),
        {"ids": incident_ids}).scalar_one()
    report("incident grids", summary["incidents_in_grids"], summary["incidents"])
    _load_patrols(cur, demo, area_ids, summary, report)
    _load_visits(cur, demo, area_ids, person_ids, incident_ids, summary, report)
    # A 回访 sits in the grid its matter was assigned to.
    session.execute(text("UPDATE visits v SET grid_id = i.grid_id FROM incidents i "
                         "WHERE v.incident_id = i.id AND i.id = ANY(:ids) "
                         "AND v.grid_id IS DISTINCT FROM i.grid_id AND i.grid_id IS NOT NULL"),
                    {"ids": incident_ids})
    summary["people"] = len(person_ids)
    return summary


def unload(session: Session) -> dict:
    """Delete the demo region and everything that refers to it; return the rows removed per table."""
    conn = session.connection()
    root = conn.execute(text("SELECT id, path FROM areas WHERE code = :c"), {"c": DISTRICT_CODE}).first()
    if root is None:
        return {}
    ids = list(conn.execute(text("SELECT id FROM areas WHERE path <@ CAST(:p AS ltree)"),
                            {"p": str(root.path)}).scalars())
    p = {"ids": ids, "d": DISTRICT_CODE, "root": root.id, "like": f"{DISTRICT_CODE}-%"}
    p["units"] = list(conn.execute(text("SELECT id FROM units WHERE home_area_id = ANY(:ids) "
                                        "OR district_code = :d"), p).scalars())
    # Versions outlive retired areas (no foreign key), so the region's history goes by id and code.
    p["changes"] = sorted({c for c in conn.execute(text(
        "DELETE FROM area_versions WHERE area_id = ANY(:ids) OR code LIKE :prefix RETURNING change_id"),
        {**p, "prefix": f"{DISTRICT_CODE}%"}).scalars() if c is not None})
    steps = [
        # The visits and households first, so nothing is set to NULL row by row below.
        ("visits", "DELETE FROM visits WHERE grid_id = ANY(:ids)"),
        ("households", "DELETE FROM households WHERE grid_id = ANY(:ids)"),
        ("positions", "DELETE FROM positions WHERE unit_id = ANY(:units)"),
        ("units", "DELETE FROM units WHERE id = ANY(:units)"),  # shifts, tracks, last positions cascade
        ("incidents", "DELETE FROM incidents WHERE district_code = :d OR grid_id = ANY(:ids) "
                      "OR area_id = ANY(:ids)"),
        ("entities", "DELETE FROM entities WHERE area_id = ANY(:ids)"),
        ("departments", "DELETE FROM departments d WHERE code LIKE :like AND NOT EXISTS "
                        "(SELECT 1 FROM entities e WHERE e.department_id = d.id)"),
        ("places", "DELETE FROM places WHERE area_id = ANY(:ids)"),
        ("roads", "DELETE FROM roads WHERE district_code = :d"),
        ("people", "DELETE FROM people p WHERE p.id IN (SELECT person_id FROM area_staff "
                   "WHERE area_id = ANY(:ids)) AND NOT EXISTS (SELECT 1 FROM area_staff s "
                   "WHERE s.person_id = p.id AND NOT s.area_id = ANY(:ids))"),
        ("areas", "DELETE FROM areas WHERE id = ANY(:ids)"),  # staff, groups, risk, locks cascade
        ("unreverted", "UPDATE boundary_changes SET reverts_id = NULL "
                       "WHERE reverts_id = ANY(:changes) AND NOT id = ANY(:changes)"),
        ("boundary_changes", "DELETE FROM boundary_changes b "
                             "WHERE (b.id = ANY(:changes) OR b.payload->>'district_code' = :d) "
                             "AND NOT EXISTS (SELECT 1 FROM area_versions v WHERE v.change_id = b.id)"),
    ]
    removed = {name: conn.execute(text(sql), p).rowcount for name, sql in steps}
    removed.pop("unreverted")
    return removed


def _ids(cur, table: str, n: int) -> list[int]:
    """Reserve n ids from the table's sequence (safe alongside concurrent writers)."""
    if n == 0:
        return []
    cur.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) AS id FROM generate_series(1, %s) "
                "ORDER BY 1", (table, n))
    return [r[0] for r in cur.fetchall()]


def _copy(cur, table: str, columns: tuple[str, ...], rows: Iterable[tuple]) -> int:
    """Stream rows into a table with COPY; return how many were written."""
    count = 0
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def _ewkb(geoms) -> list[str]:
    """Encode geometries as hex EWKB with SRID 4326, which PostGIS reads straight into a column."""
    arr = shapely.set_srid(np.asarray(geoms, dtype=object), 4326)
    return list(shapely.to_wkb(arr, hex=True, include_srid=True))


def _json(value) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


# -- the tables --------------------------------------------------------------------------------
def _load_areas(cur, demo: Demo, summary: dict, report: Progress) -> dict[str, int]:
    """Write areas parents first (the path trigger reads the parent), their versions and groups."""
    areas = sorted(demo.areas, key=lambda a: (a["level"], a["code"]))
    ids = dict(zip((a["code"] for a in areas), _ids(cur, "areas", len(areas))))
    geoms = _ewkb([a["geom"] for a in areas])
    rows = []
    for a, geom in zip(areas, geoms):
        attrs = dict(a["attrs"])
        if a["level"] == 1:
            attrs.update(demo_version=demo.version, seed=demo.seed)
        rows.append((ids[a["code"]], a["code"], a["name"], a["level"], a["kind"],
                     ids.get(a["parent_code"]), geom, a["households"], a["population"], a["urban"],
                     1, _json(attrs)))
    summary["areas"] = _copy(cur, "areas", ("id", "code", "name", "level", "kind", "parent_id", "geom",
                                            "households", "population", "urban", "version", "attrs"), rows)
    report("areas", len(rows), len(rows))
    cur.execute("INSERT INTO boundary_changes (kind, reason, created_at, payload) "
                "VALUES ('import', %s, %s, %s) RETURNING id",
                (CHANGE_REASON, BOUNDARY_TIME, _json({"district_code": DISTRICT_CODE,
                                                       "demo_version": demo.version, "seed": demo.seed,
                                                       "areas": len(rows)})))
    change = cur.fetchone()[0]
    cur.execute("INSERT INTO area_versions (area_id, version, code, name, level, parent_id, geom, "
                "households, population, valid_from, change_id) SELECT id, 1, code, name, level, "
                "parent_id, geom, households, population, %s, %s FROM areas WHERE id = ANY(%s)",
                (BOUNDARY_TIME, change, list(ids.values())))
    summary["area_versions"] = cur.rowcount
    summary["area_groups"] = _load_groups(cur, demo, ids)
    report("area versions", len(rows), len(rows))
    return ids


def _load_groups(cur, demo: Demo, ids: dict[str, int]) -> int:
    """Write 商桥镇's first-level grids and point their villages at them."""
    for g in demo.groups:
        cur.execute("INSERT INTO area_groups (parent_id, code, name, leader) VALUES (%s, %s, %s, %s) "
                    "RETURNING id", (ids[g["parent_code"]], g["code"], g["name"], g["leader"]))
        group_id = cur.fetchone()[0]
        cur.execute("UPDATE areas SET group_id = %s WHERE id = ANY(%s)",
                    (group_id, [ids[c] for c in g["village_codes"]]))
    return len(demo.groups)


def _load_staff(cur, demo: Demo, area_ids: dict[str, int], summary: dict, report: Progress) -> dict:
    """Write the people and their 一长两员 roles."""
    person_ids = dict(zip((p["key"] for p in demo.people), _ids(cur, "people", len(demo.people))))
    _copy(cur, "people", ("id", "name", "phone", "gender", "party_member"),
          ((person_ids[p["key"]], p["name"], p["phone"], p["gender"], p["party_member"])
           for p in demo.people))
    summary["area_staff"] = _copy(cur, "area_staff", ("area_id", "person_id", "role", "since"),
                                  ((area_ids[s["grid_code"]], person_ids[s["person_key"]], s["role"],
                                    s["since"]) for s in demo.staff))
    report("people", len(demo.staff), len(demo.staff))
    return person_ids


def _load_entities(cur, demo: Demo, area_ids: dict[str, int], summary: dict, report: Progress) -> None:
    """Write the departments (kept when already there) and the 三零 subjects."""
    cur.execute("INSERT INTO departments (code, name) SELECT * FROM unnest(%s::text[], %s::text[]) "
                "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name RETURNING id, code",
                ([d["code"] for d in demo.departments], [d["name"] for d in demo.departments]))
    dept = {code: i for i, code in cur.fetchall()}
    summary["departments"] = len(dept)
    geoms = _ewkb([e["geom"] for e in demo.entities])
    summary["entities"] = _copy(
        cur, "entities", ("name", "kind", "area_id", "department_id", "geom", "address", "compliant",
                          "attrs"),
        ((e["name"], e["kind"], area_ids[e["area_code"]], dept.get(e["department_code"]), g,
          e["address"], e["compliant"], _json(e["attrs"])) for e, g in zip(demo.entities, geoms)))
    report("entities", summary["entities"], summary["entities"])


def _load_places(cur, demo: Demo, area_ids: dict[str, int], summary: dict, report: Progress) -> None:
    """Write the gazetteer; each entry keeps its demo key in attrs.key."""
    ids = dict(zip((p["key"] for p in demo.places), _ids(cur, "places", len(demo.places))))
    geoms = _ewkb([p["geom"] for p in demo.places])
    summary["places"] = _copy(
        cur, "places", ("id", "name", "kind", "area_id", "parent_id", "geom", "address", "attrs"),
        ((ids[p["key"]], p["name"], p["kind"], area_ids[p["area_code"]], ids.get(p["parent_key"]), g,
          p["address"], _json({"key": p["key"], **p["attrs"]})) for p, g in zip(demo.places, geoms)))
    report("places", summary["places"], summary["places"])


def _load_roads(cur, demo: Demo, summary: dict, report: Progress) -> None:
    """Write the patrol road network."""
    geoms = _ewkb([r["geom"] for r in demo.roads])
    summary["roads"] = _copy(cur, "roads", ("name", "road_class", "district_code", "geom"),
                             ((r["name"], r["road_class"], DISTRICT_CODE, g)
                              for r, g in zip(demo.roads, geoms)))
    report("roads", summary["roads"], summary["roads"])


INCIDENT_COLUMNS = ("id", "external_id", "district_code", "category", "subtype", "severity", "status",
                    "occurred_at", "reported_at", "accepted_at", "resolved_at", "closed_at",
                    "resolution_level", "address", "geom", "source", "sensitive", "reporter_name",
                    "reporter_phone", "description", "attrs")


def _load_incidents(cur, demo: Demo, summary: dict, report: Progress) -> list[int]:
    """Copy the incidents; return their ids."""
    ids = _ids(cur, "incidents", len(demo.incidents))
    geoms = _ewkb([i["geom"] for i in demo.incidents])
    summary["incidents"] = _copy(cur, "incidents", INCIDENT_COLUMNS, (
        (n, i["external_id"], DISTRICT_CODE, i["category"], i["subtype"], i["severity"], i["status"],
         i["occurred_at"], i["reported_at"], i["accepted_at"], i["resolved_at"], i["closed_at"],
         i["resolution_level"], i["address"], g, i["source"], i["sensitive"], i["reporter_name"],
         i["reporter_phone"], i["description"], _json(i["attrs"]))
        for n, i, g in zip(ids, demo.incidents, geoms)))
    report("incidents", summary["incidents"], summary["incidents"])
    return ids


def _load_patrols(cur, demo: Demo, area_ids: dict[str, int], summary: dict, report: Progress) -> None:
    """Write units, their day partitions and positions, last positions, shifts and tracks."""
    unit_ids = dict(zip((u["callsign"] for u in demo.units), _ids(cur, "units", len(demo.units))))
    summary["units"] = _copy(cur, "units", ("id", "callsign", "kind", "device_id", "home_area_id",
                                            "district_code", "status"),
                             ((unit_ids[u["callsign"]], u["callsign"], u["kind"], u["device_id"],
                               area_ids[u["home_area_code"]], DISTRICT_CODE, u["status"])
                              for u in demo.units))
    _ensure_partitions(cur, demo)
    total, done = len(demo.positions), 0
    for start in range(0, total, POSITION_CHUNK):
        chunk = demo.positions[start:start + POSITION_CHUNK]
        done += _copy(cur, "positions", ("unit_id", "ts", "geom", "speed", "heading", "accuracy", "flags",
                                         "district_code", "received_at"),
                      ((unit_ids[p["callsign"]], p["ts"], f"SRID=4326;POINT({p['lon']!r} {p['lat']!r})",
                        p["speed"], p["heading"], p["accuracy"], p["flags"], DISTRICT_CODE,
                        p["ts"] + timedelta(seconds=2)) for p in chunk))
        report("positions", done, total)
    summary["positions"] = done
    _last_positions(cur, list(unit_ids.values()))
    shift_ids = dict(zip((s["callsign"] for s in demo.shifts), _ids(cur, "shifts", len(demo.shifts))))
    summary["shifts"] = _copy(cur, "shifts", ("id", "unit_id", "starts_at", "ends_at", "task"),
                              ((shift_ids[s["callsign"]], unit_ids[s["callsign"]], s["starts_at"],
                                s["ends_at"], s["task"]) for s in demo.shifts))
    geoms = _ewkb([t["geom"] for t in demo.tracks])
    summary["tracks"] = _copy(cur, "tracks", ("unit_id", "shift_id", "starts_at", "ends_at", "geom",
                                              "length_m", "points", "source", "stats"),
                              ((unit_ids[t["callsign"]], shift_ids.get(t["callsign"]), t["starts_at"],
                                t["ends_at"], g, t["length_m"], t["points"], t["source"],
                                _json(t["stats"])) for t, g in zip(demo.tracks, geoms)))
    report("tracks", summary["tracks"], summary["tracks"])


def _load_visits(cur, demo: Demo, area_ids: dict[str, int], person_ids: dict[str, int],
                 incident_ids: list[int], summary: dict, report: Progress) -> None:
    """Write the households, the visits (the 回访 with their matters), the plans, the round-table
    meetings and the 三色 logbooks."""
    home_ids = _ids(cur, "households", len(demo.households))
    geoms = _ewkb(shapely.points([(h["lon"], h["lat"]) for h in demo.households]))
    summary["households"] = _copy(cur, "households", (
        "id", "grid_id", "number", "head_name", "phone", "id_number", "members", "address", "geom"), (
        (n, area_ids[h["grid_code"]], h["number"], h["head_name"], h["phone"], h["id_number"],
         h["members"], h["address"], g) for n, h, g in zip(home_ids, demo.households, geoms)))
    report("households", summary["households"], summary["households"])
    geoms = _ewkb(shapely.points([(v["lon"], v["lat"]) for v in demo.visits]))
    summary["visits"] = _copy(cur, "visits", (
        "kind", "household_id", "incident_id", "grid_id", "geom", "occurred_at", "people", "notes",
        "person_id"), (
        (v["kind"], None if v["household"] is None else home_ids[v["household"]],
         None if v["incident"] is None else incident_ids[v["incident"]],
         area_ids.get(v["grid_code"]) if v["grid_code"] else None, g, v["occurred_at"], v["people"],
         v["notes"], person_ids.get(v["person_key"]) if v["person_key"] else None)
        for v, g in zip(demo.visits, geoms)))
    report("visits", summary["visits"], summary["visits"])
    summary["visit_plans"] = _copy(cur, "visit_plans", ("grid_id", "month", "households"), (
        (area_ids[p["grid_code"]], p["month"], p["households"]) for p in demo.visit_plans))
    summary["meetings"] = _copy(cur, "village_meetings", (
        "area_id", "held_on", "topic", "participants", "problems_raised", "problems_solved",
        "disputes_settled", "site_inspection", "incident_ids", "outcomes"), (
        (area_ids[m["area_code"]], m["held_on"], m["topic"], _json(m["participants"]),
         m["problems_raised"], m["problems_solved"], m["disputes_settled"], m["site_inspection"],
         [incident_ids[n] for n in m["incidents"]], m["outcomes"]) for m in demo.meetings))
    summary["logbook"] = _copy(cur, "village_logbook", (
        "area_id", "colour", "recorded_on", "title", "body", "resolved_dispute"), (
        (area_ids[e["area_code"]], e["colour"], e["recorded_on"], e["title"], e["body"],
         e["resolved_dispute"]) for e in demo.logbook))


def _last_positions(cur, units: list[int]) -> None:
    """Record each unit's newest clean fix, as position ingest does."""
    cur.execute("""
        INSERT INTO unit_last_positions (unit_id, ts, geom, speed, heading, accuracy, battery, seen_at)
        SELECT DISTINCT ON (p.unit_id) p.unit_id, p.ts, p.geom, p.speed, p.heading, p.accuracy,
               p.battery, s.seen_at
          FROM positions p
          JOIN (SELECT unit_id, max(ts) AS seen_at FROM positions WHERE unit_id = ANY(%(u)s)
                GROUP BY unit_id) s ON s.unit_id = p.unit_id
         WHERE p.unit_id = ANY(%(u)s) AND p.flags = 0
         ORDER BY p.unit_id, p.ts DESC""", {"u": units})


def _ensure_partitions(cur, demo: Demo) -> None:
    """Create the day partitions (UTC days, as the partition function defines them) the fixes touch."""
    if not demo.positions:
        return
    first = min(p["ts"] for p in demo.positions).astimezone(timezone.utc).date()
    last = max(p["ts"] for p in demo.positions).astimezone(timezone.utc).date()
    day = first
    while day <= last:
        cur.execute("SELECT ensure_position_partition(%s)", (day,))
        day += timedelta(days=1)
