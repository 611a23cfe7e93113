"""Copies of the 郾城区 demo side by side, to see the platform at the size of a city or a province.

Copy k (1 ≤ k ≤ 9,999) is a district of its own: every area of the loaded demo (district →
township → village → grid, with households, population, 一长两员 and 商桥镇's first-level grids),
its 三零 subjects, roads, incidents, patrol units with their shift and last fix, monthly visit
plans and four-colour risk history, moved east and north by whole district extents so that no
copy meets another or the real county. N = 100 is some 54,000 grids and 2 million incidents.

Codes. A copy's area codes are the real ones with the county part `411103` replaced by `99kkkk`.
GB/T 2260 gives no province the code 99 (11–82 are in use), so no real division code can ever
start with it, and `99` marks a copy wherever a code is seen. Names stay those of the real areas
except the district's, `郾城区 副本 k`.

Not copied: the households and 走访 visits (17 and 11 million rows at N = 100), the gazetteer
places and the patrol positions (only each unit's last fix); a copy's incidents keep the real
county's addresses. Everything here is set-based SQL (INSERT … SELECT … ST_Translate over the
copies wanted) inside the caller's transaction; nothing commits. The demo itself is never written:
`replicate` only reads it, and `remove` deletes by the copies' own codes.
"""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import Conflict, InvalidInput, NotFound

from .yancheng import BOUNDARY_TIME, DISTRICT_CODE, DISTRICT_NAME

Progress = Callable[[str, int, int], None]

PREFIX = "99"  # no province of GB/T 2260 is 99: a code starting with it is never a real division's
MAX_COPIES = 9_999  # the four digits after the prefix
COLUMNS = 10  # copies per row, the first row just east of the county, further rows north of it
GAP = 0.05  # between neighbouring copies, as a fraction of the district's width and height
CHUNK = 10  # copies per statement for the large tables, so progress shows and memory stays small
CHANGE_REASON = "郾城区演示数据副本"
NAME = f"{DISTRICT_NAME} 副本 "  # and the copy's number: 郾城区 副本 7


def copy_code(k: int) -> str:
    """The county code of copy k: `99` and k in four digits."""
    return f"{PREFIX}{k:04d}"


def present(session: Session) -> list[int]:
    """The copy numbers now in the database."""
    return list(session.execute(text(
        "SELECT (attrs->>'scale_copy')::int FROM areas WHERE level = 1 AND code LIKE :p "
        "AND attrs ? 'scale_copy' ORDER BY 1"), {"p": f"{PREFIX}%"}).scalars())


def _check(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_COPIES:
        raise InvalidInput("scale", f"the number of copies must be a whole number from 0 to {MAX_COPIES}; "
                                    f"got {n!r}")


def replicate(session: Session, n: int, *, progress: Progress | None = None) -> dict:
    """Make copies 1..n present and no others; return how many of each kind of row were written.

    Copies already there are kept (running twice writes nothing the second time); copies above n
    are removed.

    Raises:
        InvalidInput: n is not between 0 and MAX_COPIES.
        NotFound: the demo (411103) is not loaded.
        Conflict: another jurisdiction lies where the copies would go.
    """
    _check(n)
    report = progress or (lambda step, done, total: None)
    summary: dict[str, int] = {}
    have = set(present(session))
    extra = sorted(k for k in have if k > n)
    if extra:
        remove(session, keep=n)
    summary["copies removed"] = len(extra)
    missing = [k for k in range(1, n + 1) if k not in have]
    summary["copies kept"] = len(have) - len(extra)
    summary["copies added"] = len(missing)
    if not missing:
        return summary
    root = session.execute(text(
        "SELECT id, path, ST_XMin(geom) AS x0, ST_YMin(geom) AS y0, ST_XMax(geom) AS x1, ST_YMax(geom) AS y1 "
        "FROM areas WHERE code = :c"), {"c": DISTRICT_CODE}).first()
    if root is None:
        raise NotFound(f"{DISTRICT_NAME} ({DISTRICT_CODE}) is not loaded: load the demo first (anwang demo)")
    _plan(session, root, missing)
    _refuse_overlap(session, root)
    _areas(session, root, summary, report)
    for step in (_staff, _entities, _roads, _units, _risk, _plans):
        step(session, summary, report)
    _incidents(session, missing, summary, report)
    session.execute(text("DROP TABLE scale_plan, scale_areas"))
    return summary


def remove(session: Session, *, keep: int = 0) -> dict:
    """Delete the copies numbered above `keep` and everything that refers to them; rows per table."""
    _check(keep)
    codes = [copy_code(k) for k in present(session) if k > keep]
    if not codes:
        return {}
    conn = session.connection()
    p: dict = {"codes": codes, "prefixes": [c + "%" for c in codes]}
    # The copies' area ids in a table of their own, so every step below is a join, not an array
    # compared row by row.
    conn.execute(text("CREATE TEMP TABLE scale_gone ON COMMIT DROP AS "
                      "SELECT id FROM areas WHERE code LIKE ANY(:prefixes)"), p)
    conn.execute(text("ALTER TABLE scale_gone ADD PRIMARY KEY (id)"))
    conn.execute(text("ANALYZE scale_gone"))
    # Versions outlive their areas (no foreign key), so they go by id and code.
    changes = list(conn.execute(text(
        "DELETE FROM area_versions v WHERE v.area_id IN (SELECT id FROM scale_gone) "
        "OR v.code LIKE ANY(:prefixes) RETURNING change_id"), p).scalars())
    p["changes"] = sorted({c for c in changes if c is not None})
    steps = [
        ("incidents", "DELETE FROM incidents WHERE id IN ("
                      "SELECT i.id FROM incidents i JOIN scale_gone g ON g.id = i.grid_id UNION "
                      "SELECT i.id FROM incidents i JOIN scale_gone g ON g.id = i.area_id UNION "
                      "SELECT id FROM incidents WHERE district_code = ANY(:codes))"),
        ("units", "DELETE FROM units WHERE district_code = ANY(:codes) "
                  "OR home_area_id IN (SELECT id FROM scale_gone)"),
        ("entities", "DELETE FROM entities WHERE area_id IN (SELECT id FROM scale_gone)"),
        ("roads", "DELETE FROM roads WHERE district_code = ANY(:codes)"),
        ("people", "DELETE FROM people p WHERE p.id IN (SELECT s.person_id FROM area_staff s "
                   "JOIN scale_gone g ON g.id = s.area_id) AND NOT EXISTS (SELECT 1 FROM area_staff s "
                   "WHERE s.person_id = p.id AND s.area_id NOT IN (SELECT id FROM scale_gone))"),
        # Risk, staff, groups, plans, locks and user scopes cascade.
        ("areas", "DELETE FROM areas WHERE id IN (SELECT id FROM scale_gone)"),
        ("boundary_changes", "DELETE FROM boundary_changes b WHERE b.id = ANY(:changes) "
                             "AND NOT EXISTS (SELECT 1 FROM area_versions v WHERE v.change_id = b.id)"),
    ]
    removed = {"area_versions": len(changes)}
    for name, sql in steps:
        removed[name] = conn.execute(text(sql), p).rowcount
    conn.execute(text("DROP TABLE scale_gone"))
    return removed


# -- the copies ----------------------------------------------------------------------------------
def _plan(session: Session, root, ks: list[int]) -> None:
    """The copies to write and where each goes: `scale_plan (k, code, dx, dy)`."""
    width, height = (root.x1 - root.x0) * (1 + GAP), (root.y1 - root.y0) * (1 + GAP)
    session.execute(text("DROP TABLE IF EXISTS scale_plan, scale_areas"))  # left by a refused run
    session.execute(text("""
        CREATE TEMP TABLE scale_plan ON COMMIT DROP AS
        SELECT k, :prefix || lpad(k::text, 4, '0') AS code,
               ((k - 1) % :cols + 1) * CAST(:w AS float8) AS dx, ((k - 1) / :cols) * CAST(:h AS float8) AS dy
          FROM unnest(CAST(:ks AS int[])) k"""),
        {"prefix": PREFIX, "cols": COLUMNS, "w": width, "h": height, "ks": ks})


def _refuse_overlap(session: Session, root) -> None:
    """Refuse to put copies where areas of another jurisdiction lie."""
    # Each copy's extent, against the GiST index on areas.geom; the demo and the copies themselves
    # are the only areas allowed there.
    found = session.execute(text("""
        SELECT a.code FROM scale_plan p
          JOIN areas a ON a.geom && ST_MakeEnvelope(:x0 + p.dx, :y0 + p.dy, :x1 + p.dx, :y1 + p.dy, 4326)
         WHERE a.code NOT LIKE :prefix LIMIT 1"""),
        {"x0": root.x0, "y0": root.y0, "x1": root.x1, "y1": root.y1, "prefix": f"{PREFIX}%"}).scalar()
    if found is not None:
        raise Conflict(f"area {found} lies where the copies of {DISTRICT_NAME} would go; "
                       "copies are only made beside a county with no neighbours loaded")


def _areas(session: Session, root, summary: dict, report: Progress) -> None:
    """Areas level by level (the path trigger reads the parent), their first versions and groups,
    and `scale_areas (k, old, new)` mapping each real area to its copies."""
    conn = session.connection()
    p = {"path": str(root.path), "name": NAME}
    levels = list(conn.execute(text(
        "SELECT DISTINCT level FROM areas WHERE path <@ CAST(:path AS ltree) ORDER BY 1"), p).scalars())
    total = 0
    for level in levels:
        total += conn.execute(text("""
            INSERT INTO areas (code, name, level, kind, parent_id, geom, households, population, urban,
                               version, attrs)
            SELECT s.code || substr(a.code, 7),
                   CASE WHEN a.id = r.id THEN :name || s.k ELSE a.name END,
                   a.level, a.kind, c.id, ST_Translate(a.geom, s.dx, s.dy), a.households, a.population,
                   a.urban, 1,
                   (COALESCE(a.attrs, '{}'::jsonb) - 'demo_version' - 'seed')
                     || jsonb_build_object('scale_copy', s.k, 'copy_of', a.code)
              FROM areas a
              JOIN areas r ON r.path = CAST(:path AS ltree)
              CROSS JOIN scale_plan s
              LEFT JOIN areas up ON up.id = a.parent_id AND a.id <> r.id
              LEFT JOIN areas c ON c.code = s.code || substr(up.code, 7)
             WHERE a.path <@ r.path AND a.level = :level"""), {**p, "level": level}).rowcount
        report("areas", total, total)
    summary["areas"] = total
    conn.execute(text("""
        CREATE TEMP TABLE scale_areas ON COMMIT DROP AS
        SELECT s.k, a.id AS old, c.id AS new FROM areas a
          JOIN areas r ON r.path = CAST(:path AS ltree) AND a.path <@ r.path
          CROSS JOIN scale_plan s
          JOIN areas c ON c.code = s.code || substr(a.code, 7)"""), p)
    conn.execute(text("CREATE INDEX ON scale_areas (old, k)"))
    conn.execute(text("ANALYZE scale_areas"))
    change = conn.execute(text("""
        INSERT INTO boundary_changes (kind, reason, created_at, payload)
        SELECT 'import', :reason, :at, jsonb_build_object('scale_copies', array_agg(k ORDER BY k),
                                                          'copy_of', CAST(:d AS text))
          FROM scale_plan RETURNING id"""),
        {"reason": CHANGE_REASON, "at": BOUNDARY_TIME, "d": DISTRICT_CODE}).scalar_one()
    summary["area_versions"] = conn.execute(text("""
        INSERT INTO area_versions (area_id, version, code, name, level, parent_id, geom, households,
                                   population, valid_from, change_id)
        SELECT a.id, 1, a.code, a.name, a.level, a.parent_id, a.geom, a.households, a.population, :at, :ch
          FROM scale_areas m JOIN areas a ON a.id = m.new"""), {"at": BOUNDARY_TIME, "ch": change}).rowcount
    summary["area_groups"] = conn.execute(text("""
        INSERT INTO area_groups (parent_id, code, name, leader)
        SELECT m.new, s.code || substr(g.code, 7), g.name, g.leader
          FROM area_groups g JOIN scale_areas m ON m.old = g.parent_id JOIN scale_plan s ON s.k = m.k"""
    )).rowcount
    conn.execute(text("""
        UPDATE areas c SET group_id = cg.id
          FROM scale_areas m JOIN areas a ON a.id = m.old JOIN area_groups g ON g.id = a.group_id
          JOIN scale_plan s ON s.k = m.k JOIN area_groups cg ON cg.code = s.code || substr(g.code, 7)
         WHERE c.id = m.new"""))
    report("area versions", summary["area_versions"], summary["area_versions"])


def _staff(session: Session, summary: dict, report: Progress) -> None:
    """一长两员: a person of their own in every copy, in the same role of the copied grid."""
    conn = session.connection()
    conn.execute(text("""
        CREATE TEMP TABLE scale_people ON COMMIT DROP AS
        SELECT x.k, x.old, nextval(pg_get_serial_sequence('people', 'id')) AS new
          FROM (SELECT DISTINCT m.k, s.person_id AS old FROM area_staff s
                  JOIN scale_areas m ON m.old = s.area_id) x"""))
    conn.execute(text("CREATE INDEX ON scale_people (old, k)"))
    summary["people"] = conn.execute(text("""
        INSERT INTO people (id, name, phone, gender, party_member, notes)
        SELECT sp.new, p.name, p.phone, p.gender, p.party_member, p.notes
          FROM scale_people sp JOIN people p ON p.id = sp.old""")).rowcount
    summary["area_staff"] = conn.execute(text("""
        INSERT INTO area_staff (area_id, person_id, role, since)
        SELECT m.new, sp.new, s.role, s.since
          FROM area_staff s JOIN scale_areas m ON m.old = s.area_id
          JOIN scale_people sp ON sp.old = s.person_id AND sp.k = m.k""")).rowcount
    conn.execute(text("DROP TABLE scale_people"))
    report("people", summary["area_staff"], summary["area_staff"])


def _entities(session: Session, summary: dict, report: Progress) -> None:
    """The 三零 subjects, under the same departments."""
    summary["entities"] = session.execute(text("""
        INSERT INTO entities (name, kind, area_id, department_id, geom, address, compliant, attrs)
        SELECT e.name, e.kind, m.new, e.department_id, ST_Translate(e.geom, s.dx, s.dy), e.address,
               e.compliant, COALESCE(e.attrs, '{}'::jsonb) || jsonb_build_object('scale_copy', s.k)
          FROM entities e JOIN scale_areas m ON m.old = e.area_id JOIN scale_plan s ON s.k = m.k""")).rowcount
    report("entities", summary["entities"], summary["entities"])


def _roads(session: Session, summary: dict, report: Progress) -> None:
    summary["roads"] = session.execute(text("""
        INSERT INTO roads (name, road_class, district_code, geom)
        SELECT r.name, r.road_class, s.code, ST_Translate(r.geom, s.dx, s.dy)
          FROM roads r CROSS JOIN scale_plan s WHERE r.district_code = :d"""), {"d": DISTRICT_CODE}).rowcount
    report("roads", summary["roads"], summary["roads"])


def _units(session: Session, summary: dict, report: Progress) -> None:
    """Patrol units (no device token: a copy's units never report), their shifts and last fixes."""
    conn = session.connection()
    conn.execute(text("""
        CREATE TEMP TABLE scale_units ON COMMIT DROP AS
        SELECT s.k, u.id AS old, nextval(pg_get_serial_sequence('units', 'id')) AS new
          FROM units u JOIN scale_areas m ON m.old = u.home_area_id JOIN scale_plan s ON s.k = m.k"""))
    summary["units"] = conn.execute(text("""
        INSERT INTO units (id, callsign, kind, device_id, home_area_id, district_code, status)
        SELECT su.new, u.callsign || '-' || s.code, u.kind, s.code || '-' || u.device_id, m.new, s.code,
               u.status
          FROM scale_units su JOIN units u ON u.id = su.old JOIN scale_plan s ON s.k = su.k
          JOIN scale_areas m ON m.old = u.home_area_id AND m.k = su.k""")).rowcount
    summary["shifts"] = conn.execute(text("""
        INSERT INTO shifts (unit_id, starts_at, ends_at, task)
        SELECT su.new, x.starts_at, x.ends_at, x.task FROM shifts x JOIN scale_units su ON su.old = x.unit_id"""
    )).rowcount
    summary["unit_last_positions"] = conn.execute(text("""
        INSERT INTO unit_last_positions (unit_id, ts, geom, speed, heading, accuracy, battery, seen_at)
        SELECT su.new, l.ts, ST_Translate(l.geom, s.dx, s.dy), l.speed, l.heading, l.accuracy, l.battery,
               l.seen_at
          FROM unit_last_positions l JOIN scale_units su ON su.old = l.unit_id
          JOIN scale_plan s ON s.k = su.k""")).rowcount
    conn.execute(text("DROP TABLE scale_units"))
    report("units", summary["units"], summary["units"])


def _risk(session: Session, summary: dict, report: Progress) -> None:
    """The four-colour history of every grid, as computed for the grid copied (same incidents, same
    levels); overrides are the real county's own decisions and stay there."""
    summary["risk_levels"] = session.execute(text("""
        INSERT INTO risk_levels (area_id, period_start, period_end, score, level, reasons, computed_at)
        SELECT m.new, r.period_start, r.period_end, r.score, r.level, r.reasons, r.computed_at
          FROM risk_levels r JOIN scale_areas m ON m.old = r.area_id""")).rowcount
    report("risk levels", summary["risk_levels"], summary["risk_levels"])


def _plans(session: Session, summary: dict, report: Progress) -> None:
    summary["visit_plans"] = session.execute(text("""
        INSERT INTO visit_plans (grid_id, month, households)
        SELECT m.new, v.month, v.households FROM visit_plans v JOIN scale_areas m ON m.old = v.grid_id"""
    )).rowcount
    report("visit plans", summary["visit_plans"], summary["visit_plans"])


INCIDENT_COPY = """
    INSERT INTO incidents (external_id, district_code, category, subtype, severity, status, occurred_at,
                           reported_at, accepted_at, resolved_at, closed_at, resolution_level, address,
                           geom, geocode_level, geocode_confidence, grid_id, outside_jurisdiction, source,
                           sensitive, reporter_name, reporter_phone, description, attrs, area_id)
    SELECT s.code || '-' || i.external_id, s.code, i.category, i.subtype, i.severity, i.status,
           i.occurred_at, i.reported_at, i.accepted_at, i.resolved_at, i.closed_at, i.resolution_level,
           i.address, ST_Translate(i.geom, s.dx, s.dy), i.geocode_level, i.geocode_confidence, g.new,
           i.outside_jurisdiction, i.source, i.sensitive, i.reporter_name, i.reporter_phone, i.description,
           COALESCE(i.attrs, '{}'::jsonb) || jsonb_build_object('scale_copy', s.k), a.new
      FROM incidents i
      JOIN scale_plan s ON s.k = ANY(:ks)
      LEFT JOIN scale_areas g ON g.old = i.grid_id AND g.k = s.k
      LEFT JOIN scale_areas a ON a.old = i.area_id AND a.k = s.k
     WHERE i.district_code = :d"""


def _incidents(session: Session, ks: list[int], summary: dict, report: Progress) -> None:
    """The incidents, CHUNK copies per statement: each grid's copy gets the copies of its incidents."""
    per_copy = session.execute(text("SELECT count(*) FROM incidents WHERE district_code = :d"),
                               {"d": DISTRICT_CODE}).scalar_one()
    total, done = per_copy * len(ks), 0
    report("incidents", 0, total)
    for start in range(0, len(ks), CHUNK):
        done += session.execute(text(INCIDENT_COPY), {"ks": ks[start:start + CHUNK],
                                                      "d": DISTRICT_CODE}).rowcount
        report("incidents", done, total)
    summary["incidents"] = done
