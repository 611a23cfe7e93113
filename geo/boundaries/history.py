"""Boundary history: change sets, versions, diffs, and the boundaries as they were at any time.
"""
from __future__ import annotations

import json
from datetime import date, datetime, time, timezone

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.areas import GEOJSON_DIGITS, area_row, parse_bbox, visible_sql
from geo.boundaries.partition import OVERLAP_TOLERANCE_M2
from geo.errors import InvalidInput, NotFound
from geo.messages import Message, msg
from geo.policy import Scope, parse_code


# -- history ---------------------------------------------------------------------------------
def change_list(session: Session, *, area: str | None = None, limit: int = 50) -> list[dict]:
    """The change sets, newest first; with `area`, those that touched it or anything under it."""
    params: dict = {"limit": max(1, min(int(limit), 500))}
    where = "true"
    if area:
        row = area_row(session, area)
        params.update(code=row["code"], path=row["path"])
        # Codes recorded in the payload cover areas retired since; the subtree covers the rest.
        where = """(c.payload -> 'codes' ? :code
                    OR EXISTS (SELECT 1 FROM area_versions v JOIN areas a ON a.id = v.parent_id
                                WHERE v.change_id = c.id AND a.path <@ CAST(:path AS ltree))
                    OR EXISTS (SELECT 1 FROM area_versions v JOIN areas a ON a.id = v.area_id
                                WHERE v.change_id = c.id AND a.path <@ CAST(:path AS ltree)))"""
    rows = session.execute(text(f"""
        SELECT c.id, c.kind, c.reason, c.created_at, c.reverts_id,
               COALESCE(u.username, c.payload ->> 'author') AS author,
               c.payload -> 'codes' AS codes, c.payload -> 'notes' AS notes,
               c.payload -> 'note_templates' AS note_templates,
               (SELECT r.id FROM boundary_changes r WHERE r.reverts_id = c.id LIMIT 1) AS reverted_by
          FROM boundary_changes c LEFT JOIN users u ON u.id = c.author_id
         WHERE {where}
         ORDER BY c.created_at DESC, c.id DESC LIMIT :limit"""), params).mappings()
    return [_change_dict(r) for r in rows]


def change_detail(session: Session, change_id: int) -> dict:
    """One change set with, per area, the pieces it added and removed (GeoJSON)."""
    row = session.execute(text("""
        SELECT c.id, c.kind, c.reason, c.created_at, c.reverts_id,
               COALESCE(u.username, c.payload ->> 'author') AS author,
               c.payload -> 'codes' AS codes, c.payload -> 'notes' AS notes,
               c.payload -> 'note_templates' AS note_templates, c.payload,
               (SELECT r.id FROM boundary_changes r WHERE r.reverts_id = c.id LIMIT 1) AS reverted_by
          FROM boundary_changes c LEFT JOIN users u ON u.id = c.author_id WHERE c.id = :c"""),
        {"c": change_id}).mappings().first()
    if row is None:
        raise NotFound(msg("no change #{id}", id=change_id), field="id")
    out = _change_dict(row)
    payload = row["payload"] or {}
    before = {int(k): v for k, v in payload.get("before", {}).items()}
    after = {int(k): v for k, v in payload.get("after", {}).items()}
    features = []
    for area_id in sorted(set(before) | set(after)):
        features += _diff_features(session, area_id, before.get(area_id), after.get(area_id))
    out["diff"] = {"type": "FeatureCollection", "features": features}
    return out


def _notes(notes: list | None, templates: list | None) -> list:
    """A change's notes as recorded, as Messages again where their templates were recorded too."""
    notes = notes or []
    templates = templates or [None] * len(notes)
    return [Message(t[0], **t[1]) if t else n for n, t in zip(notes, templates)]


def _change_dict(r) -> dict:
    return {"id": r["id"], "kind": r["kind"], "reason": r["reason"],
            "created_at": r["created_at"].isoformat(), "author": r["author"],
            "codes": r["codes"] or [], "notes": _notes(r["notes"], r["note_templates"]),
            "reverts_id": r["reverts_id"],
            "reverted_by": r["reverted_by"]}


def versions(session: Session, code: str) -> list[dict]:
    """Every version of the area with this code (current or retired), oldest first."""
    rows = session.execute(text("""
        SELECT v.area_id, v.version, v.code, v.name, v.valid_from, v.valid_to, v.change_id,
               c.kind, c.reason, COALESCE(u.username, c.payload ->> 'author') AS author,
               ST_Area(v.geom::geography) AS area_m2
          FROM area_versions v LEFT JOIN boundary_changes c ON c.id = v.change_id
          LEFT JOIN users u ON u.id = c.author_id
         WHERE v.area_id IN (SELECT area_id FROM area_versions WHERE code = :c
                             UNION SELECT id FROM areas WHERE code = :c)
         ORDER BY v.area_id, v.version"""), {"c": code}).mappings().all()
    if not rows:
        area_row(session, code)  # NotFound when the code never existed
    return [{**dict(r), "valid_from": r["valid_from"].isoformat(),
             "valid_to": r["valid_to"] and r["valid_to"].isoformat(),
             "area_m2": round(r["area_m2"] or 0, 2)} for r in rows]


def diff(session: Session, code: str, from_version: int, to_version: int) -> dict:
    """The pieces added and removed between two versions of one area, as a FeatureCollection."""
    area_id = session.execute(text(
        "SELECT area_id FROM area_versions WHERE code = :c ORDER BY valid_from DESC LIMIT 1"),
        {"c": code}).scalar()
    if area_id is None:
        area_id = area_row(session, code)["id"]
    return {"type": "FeatureCollection",
            "features": _diff_features(session, area_id, from_version, to_version, strict=True)}


def _diff_features(session, area_id: int, v1: int | None, v2: int | None, strict=False) -> list:
    rows = session.execute(text("""
        WITH a AS (SELECT geom, code FROM area_versions WHERE area_id = :id AND version = :v1),
             b AS (SELECT geom, code FROM area_versions WHERE area_id = :id AND version = :v2)
        SELECT 'added' AS kind, (SELECT code FROM b) AS code,
               ST_AsGeoJSON(ST_ForcePolygonCCW(ST_CollectionExtract(ST_Difference((SELECT geom FROM b),
                   COALESCE((SELECT geom FROM a), 'SRID=4326;GEOMETRYCOLLECTION EMPTY'::geometry)), 3)), :d) AS gj,
               ST_Area(ST_Difference((SELECT geom FROM b),
                   COALESCE((SELECT geom FROM a), 'SRID=4326;GEOMETRYCOLLECTION EMPTY'::geometry))::geography) AS m2
        UNION ALL
        SELECT 'removed', (SELECT code FROM a),
               ST_AsGeoJSON(ST_ForcePolygonCCW(ST_CollectionExtract(ST_Difference((SELECT geom FROM a),
                   COALESCE((SELECT geom FROM b), 'SRID=4326;GEOMETRYCOLLECTION EMPTY'::geometry)), 3)), :d),
               ST_Area(ST_Difference((SELECT geom FROM a),
                   COALESCE((SELECT geom FROM b), 'SRID=4326;GEOMETRYCOLLECTION EMPTY'::geometry))::geography)"""),
        {"id": area_id, "v1": v1, "v2": v2, "d": GEOJSON_DIGITS}).mappings().all()
    if strict:
        found = session.execute(text(
            "SELECT array_agg(version) FROM area_versions WHERE area_id = :id AND version IN (:a, :b)"),
            {"id": area_id, "a": v1, "b": v2}).scalar() or []
        missing = [v for v in (v1, v2) if v not in found]
        if missing:
            raise NotFound(msg("no version {version} of this area", version=missing[0]), field="version")
    return [{"type": "Feature", "geometry": json.loads(r["gj"]),
             "properties": {"kind": r["kind"], "code": r["code"], "area_id": area_id,
                            "area_m2": round(r["m2"], 2), "from_version": v1, "to_version": v2}}
            for r in rows if r["gj"] and r["m2"] and r["m2"] > OVERLAP_TOLERANCE_M2]


def parse_as_of(value) -> datetime:
    """Parse an ISO date (end of that day, UTC) or date-time for as-of queries."""
    raw = str(value).strip()
    if "T" in raw and " " in raw:  # a '+' of the UTC offset that arrived unescaped in a URL
        raw = raw.replace(" ", "+")
    try:
        if len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), time.max, tzinfo=timezone.utc)
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput("as_of", msg("as_of must be an ISO date or date-time (2026-01-31 or "
                                        "2026-01-31T12:00:00+08:00); got {got}", got=repr(value))) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def features_as_of(session: Session, when: datetime, scope: Scope, *, level: int | None = None,
                   parent: str | None = None, bbox=None) -> str:
    """Areas as they were at `when`, as a GeoJSON FeatureCollection (text), like areas.features:
    for a scoped reader those that are, or whose parent is, among the areas it may read now."""
    params: dict = {"t": when, "digits": GEOJSON_DIGITS}
    where = ["true"]
    if not scope.everywhere:
        readable = f"SELECT a.id FROM areas a WHERE {visible_sql(scope, params)}"
        where.append(f"(s.area_id IN ({readable}) OR s.parent_id IN ({readable}))")
    if level is not None:
        where.append("s.level = :level")
        params["level"] = level
    if bbox:
        bbox = parse_bbox(bbox) if isinstance(bbox, str) else bbox
        where.append("s.geom && ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326)")
        params.update(minx=bbox[0], miny=bbox[1], maxx=bbox[2], maxy=bbox[3])
    tree = ""
    if parent:
        params["parent"] = parse_code(parent, "parent")
        tree = """, tree AS (
            SELECT area_id FROM snap WHERE code = :parent
            UNION ALL SELECT s.area_id FROM snap s JOIN tree t ON s.parent_id = t.area_id)"""
        where.append("s.area_id IN (SELECT area_id FROM tree) AND s.code <> :parent")
    sql = f"""
        WITH RECURSIVE snap AS (
            SELECT v.area_id, v.version, v.code, v.name, v.level, v.parent_id, v.geom, v.households,
                   v.population
              FROM area_versions v
             WHERE v.valid_from <= :t AND (v.valid_to IS NULL OR v.valid_to > :t)
            UNION ALL
            -- Areas that have never been versioned existed as they are since they were created.
            SELECT a.id, a.version, a.code, a.name, a.level, a.parent_id, a.geom, a.households,
                   a.population
              FROM areas a
             WHERE a.created_at <= :t AND NOT EXISTS (SELECT 1 FROM area_versions v WHERE v.area_id = a.id)
        ){tree}
        SELECT json_build_object('type', 'FeatureCollection', 'as_of', CAST(:t AS timestamptz),
                                 'features', COALESCE(json_agg(f ORDER BY code), '[]'::json))::text
          FROM (SELECT json_build_object(
                    'type', 'Feature', 'id', s.code,
                    'geometry', ST_AsGeoJSON(s.geom, :digits)::json,
                    'properties', json_build_object('code', s.code, 'name', s.name, 'level', s.level,
                        'parent_code', p.code, 'households', s.households,
                        'population', s.population, 'version', s.version)) AS f, s.code
                  FROM snap s LEFT JOIN snap p ON p.area_id = s.parent_id
                 WHERE {' AND '.join(where)}) x"""
    if parent and not session.execute(text(
            "SELECT 1 FROM area_versions WHERE code = :c UNION SELECT 1 FROM areas WHERE code = :c"),
            {"c": parent}).first():
        raise NotFound(msg("no area with code {code!r}", code=parent), field="parent")
    return session.execute(text(sql), params).scalar_one()


def current_codes(session: Session, codes: list[str]) -> list[str]:
    """Those of `codes` that are areas now (the rest were retired by a change)."""
    return list(session.execute(text("SELECT code FROM areas WHERE code = ANY(:c) ORDER BY code"),
                                {"c": list(codes)}).scalars())


def known_codes(session: Session, codes: list[str]) -> list[str]:
    """Those of `codes` that ever were areas (now or in the history)."""
    return list(session.execute(text(
        "SELECT code FROM areas WHERE code = ANY(:c) UNION SELECT code FROM area_versions "
        "WHERE code = ANY(:c) ORDER BY 1"), {"c": list(codes)}).scalars())
