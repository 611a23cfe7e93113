"""What points at areas — incidents, entities, staff, scopes — carried along by a boundary change
and put back by its revert.
"""
from __future__ import annotations

import json

from sqlalchemy import text

# -- what points at areas: incidents, entities, staff, scopes … ------------------------------
_REFERENCES: dict[str, list[dict]] = {}
# Columns unique within their area (a household's 户号 within its grid): a row that moves to
# another area keeps its number with the code of the area it came from, so that two grids merged
# into one never hold the same number twice, and the number still says where it was given.
UNIQUE_WITHIN_AREA = {"households": "number"}


def _references(session) -> list[dict]:
    """Every single-column foreign key to areas(id), with its delete rule and whether it has geom.

    Read from the catalogue once per database (the schema changes only with a migration).
    """
    key = session.get_bind().engine.url.render_as_string(hide_password=True)
    if key not in _REFERENCES:
        _REFERENCES[key] = _read_references(session)
    return _REFERENCES[key]


def _read_references(session) -> list[dict]:
    return [dict(r) for r in session.execute(text("""
        SELECT c.conrelid::regclass::text AS tbl, a.attname AS col, c.confdeltype AS on_delete,
               EXISTS (SELECT 1 FROM geometry_columns g
                        WHERE g.f_table_name = c.conrelid::regclass::text
                          AND g.f_geometry_column = 'geom') AS located
          FROM pg_constraint c
          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
         WHERE c.contype = 'f' AND c.confrelid = 'areas'::regclass AND cardinality(c.conkey) = 1
           AND NOT (c.conrelid = 'areas'::regclass)
         ORDER BY 1, 2""")).mappings()]


def carry_references(session, successors: dict[int, int | None], region: bytes | None) -> list:
    """Point everything that referenced a changed or retired area at the right current area.

    Rows with a location (entities, places) go to the area of the same level that contains them
    — the lowest id on a shared edge, the rule of `areas.finest_at`; staff, scopes and other rows
    of a retired area follow its successor. What a retired area's deletion takes with it is
    recorded, so a revert can put it back. Incidents are placed by `incidents.assign` once the
    retired areas are gone (see `_write`); here they only follow a retired area's successor.
    """
    carried = []
    retired = list(successors)
    for ref in _references(session):
        tbl, col = _ident(ref["tbl"]), _ident(ref["col"])
        if ref["tbl"] == "area_locks":
            continue
        if ref["located"] and region is not None and ref["tbl"] != "incidents":
            # `&&` against the region's envelope lets the GiST index on geom pick the candidates.
            # Only rows whose area changes are written (`IS DISTINCT FROM`), so triggers on
            # those tables fire for real moves only.
            renumber = UNIQUE_WITHIN_AREA.get(ref["tbl"])
            keep = f", {renumber} = t.{renumber} || '/' || n.old_code" if renumber else ""
            moved = session.execute(text(f"""
                UPDATE {tbl} t SET {col} = n.area{keep}
                  FROM (SELECT r.ctid AS tid, old.code AS old_code, COALESCE((
                               SELECT a.id FROM areas a
                                WHERE a.level = old.level AND NOT a.id = ANY(:retired)
                                  AND ST_Intersects(a.geom, CASE WHEN GeometryType(r.geom) = 'POINT'
                                                                 THEN r.geom ELSE ST_PointOnSurface(r.geom) END)
                                ORDER BY a.id LIMIT 1), r.{col}) AS area
                          FROM {tbl} r JOIN areas old ON old.id = r.{col}
                         WHERE r.geom IS NOT NULL AND r.geom && ST_GeomFromWKB(:region, 4326)
                           AND ST_Intersects(r.geom, ST_GeomFromWKB(:region, 4326))) n
                 WHERE t.ctid = n.tid AND t.{col} IS DISTINCT FROM n.area"""),
                {"region": region, "retired": retired}).rowcount
            if moved:
                carried.append({"table": ref["tbl"], "column": ref["col"], "relocated": moved})
        for rid, succ in successors.items():
            snapshot = [r[0] for r in session.execute(text(
                f"SELECT to_jsonb(t) FROM {tbl} t WHERE t.{col} = :r"), {"r": rid})]
            if not snapshot:
                continue
            item = {"table": ref["tbl"], "column": ref["col"], "area": rid, "rows": snapshot}
            if succ is not None and ref["tbl"] in ("area_staff", "user_scopes"):
                # 一长两员 and user scopes follow the area into its successor (no duplicates).
                item["added"] = _copy_rows(session, ref["tbl"], rid, succ)
            renumber = UNIQUE_WITHIN_AREA.get(ref["tbl"])
            if ref["on_delete"] in ("c", "n", "d") and not (renumber and succ is not None):
                item["restore"] = "insert" if ref["on_delete"] == "c" else "update"
            else:
                # A household without a point follows its grid's successor rather than go with it.
                keep = (f", {renumber} = {renumber} || '/' || (SELECT code FROM areas WHERE id = :r)"
                        if renumber else "")
                session.execute(text(f"UPDATE {tbl} SET {col} = :s{keep} WHERE {col} = :r"),
                                {"s": succ, "r": rid})
                item["restore"] = "update"
            carried.append(item)
    return carried


def _copy_rows(session, tbl: str, rid: int, succ: int) -> list:
    if tbl == "area_staff":
        return [r[0] for r in session.execute(text("""
            INSERT INTO area_staff (area_id, person_id, role, since)
            SELECT :s, person_id, role, since FROM area_staff WHERE area_id = :r
            ON CONFLICT DO NOTHING RETURNING to_jsonb(area_staff)"""), {"s": succ, "r": rid})]
    return [r[0] for r in session.execute(text("""
        INSERT INTO user_scopes (user_id, area_id) SELECT user_id, :s FROM user_scopes
         WHERE area_id = :r ON CONFLICT DO NOTHING RETURNING to_jsonb(user_scopes)"""),
        {"s": succ, "r": rid})]


def restore_references(session, carried: list) -> None:
    """Undo what a change carried: remove the copies it made, put back what it took away."""
    for item in carried:
        if "rows" not in item:
            continue
        tbl = item["table"]
        keys = _primary_key(session, tbl)
        for row in item.get("added", []):
            where = " AND ".join(f"t.{_ident(k)} = r.{_ident(k)}" for k in keys)
            session.execute(text(
                f"DELETE FROM {_ident(tbl)} t USING jsonb_populate_record(NULL::{_ident(tbl)}, "
                f"CAST(:row AS jsonb)) r WHERE {where}"), {"row": json.dumps(row, ensure_ascii=False)})
        for row in item["rows"]:
            if item["restore"] == "insert":
                session.execute(text(
                    f"INSERT INTO {_ident(tbl)} SELECT * FROM jsonb_populate_record("
                    f"NULL::{_ident(tbl)}, CAST(:row AS jsonb)) ON CONFLICT DO NOTHING"),
                    {"row": json.dumps(row, ensure_ascii=False)})
            elif keys:
                where = " AND ".join(f"t.{_ident(k)} = r.{_ident(k)}" for k in keys)
                column = _ident(item["column"])
                session.execute(text(
                    f"UPDATE {_ident(tbl)} t SET {column} = r.{column} "
                    f"FROM jsonb_populate_record(NULL::{_ident(tbl)}, CAST(:row AS jsonb)) r "
                    f"WHERE {where}"), {"row": json.dumps(row, ensure_ascii=False)})


def _primary_key(session, tbl: str) -> list[str]:
    return list(session.execute(text("""
        SELECT a.attname FROM pg_index i
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE i.indrelid = CAST(:t AS regclass) AND i.indisprimary ORDER BY a.attnum"""),
        {"t": tbl}).scalars())


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
