"""Each imported feature's parent: one parent for all, a field naming it (leading zeros and a code
prefix forgiven, a nested object pointed at by a dotted field), or the area of the level above
that overlaps it most — for every feature, or for those whose field names none.
"""
from __future__ import annotations

import json
from collections import defaultdict

from sqlalchemy import text

from geo.boundaries import fields as attributes
from geo.boundaries.ingest_report import Issue, add_bad
from geo.messages import joined, msg


def resolve_parents(session, report, features, parent_row, parent_field, level, prefix, *,
                    then_locate: bool = False) -> None:
    """Find each feature's parent from its parent reference; a zero-padded one ('01' for '1') is
    matched and noted. With `then_locate`, a reference that is empty or names no single area
    leaves the parent to `locate_parents`."""
    if level == 1:
        return
    if parent_field is None:
        for f in features:
            f.parent_id = parent_row["id"]
        return
    scope, params = _candidates(parent_row, level)
    candidates = session.execute(text(f"SELECT id, code FROM areas a WHERE {scope}"), params).all()
    exact = {code: id_ for id_, code in candidates}
    loose = defaultdict(list)
    for id_, code in candidates:
        loose[_loose(code, prefix)].append((id_, code))
    noted = set()
    for f in features:
        ref = f.parent_ref
        if f.bad or (ref is None and then_locate):
            continue
        if ref is None:
            add_bad(report, f, "missing_parent", msg("the parent field {field!r} is empty", field=parent_field),
                    ways=[{"parent_by_location": True}])
            continue
        nested = attributes.as_object(ref)
        if nested is not None:
            members = [k for k, v in nested.items() if not isinstance(v, (dict, list))]
            add_bad(report, f, "parent_is_object",
                    msg("the parent field {field!r} holds an object, not a code: {value}; name the member "
                        "holding the code", field=parent_field, value=json.dumps(nested, ensure_ascii=False)),
                    ways=[{"parent_field": f"{parent_field}.{k}"} for k in members])
            continue
        found = next((exact[a] for a in (ref, prefix + ref) if a in exact), None)
        matches = [] if found else loose.get(_loose(ref, prefix), [])
        if found or len(matches) == 1:
            f.parent_id = found or matches[0][0]
            if not found and (ref, matches[0][1]) not in noted:
                noted.add((ref, matches[0][1]))
                report.warnings.append(Issue(
                    "parent_normalised", f"parent reference {ref!r} read as {matches[0][1]!r} "
                    "(leading zeros / prefix ignored)", code=matches[0][1]))
        elif not then_locate:
            _unresolved(report, f, ref, matches, parent_field, parent_row, level)


def _unresolved(report, f, ref, matches, parent_field, parent_row, level) -> None:
    if matches:
        add_bad(report, f, "ambiguous_parent",
                msg("parent {ref!r} matches {codes}: say under which jurisdiction to look", ref=ref,
                    codes=joined([c for _, c in matches], ", ")),
                ways=[{"parent": None, "parent_field": parent_field}])
    else:
        add_bad(report, f, "missing_parent",
                msg("no level-{level} area with code {ref!r} under {parent}", level=level - 1, ref=ref,
                    parent=parent_row["code"]) if parent_row
                else msg("no level-{level} area with code {ref!r}", level=level - 1, ref=ref),
                advice=msg("import the parents first"),
                ways=[{"parent_by_location": True}])


def locate_parents(session, report, features, parent_row, level) -> None:
    """Give each feature the area of the level above it overlaps most (under `parent_row`, if
    given), and report where each went and how much of it lies inside."""
    todo = [f for f in features if not f.bad and f.wkb is not None and f.parent_id is None]
    if not todo:
        return
    scope, params = _candidates(parent_row, level)
    # `&&` first, so the GiST index on areas.geom picks the few candidates of each feature.
    rows = session.execute(text(f"""
        SELECT n.i, best.id, best.code, best.share
          FROM unnest(CAST(:ws AS bytea[])) WITH ORDINALITY n(w, i)
          CROSS JOIN LATERAL (SELECT ST_GeomFromWKB(n.w, 4326) AS g) f
          LEFT JOIN LATERAL (
              SELECT a.id, a.code,
                     ST_Area(ST_Intersection(a.geom, f.g)) / NULLIF(ST_Area(f.g), 0) AS share
                FROM areas a
               WHERE {scope} AND a.geom && f.g AND ST_Intersects(a.geom, f.g)
               ORDER BY share DESC NULLS LAST, a.id LIMIT 1) best ON true
         ORDER BY n.i"""), {**params, "ws": [f.wkb for f in todo]}).all()
    for f, (_, parent_id, code, share) in zip(todo, rows):
        if parent_id is None or not share:
            said = (msg("it overlaps no level-{level} area under {parent}", level=level - 1,
                        parent=parent_row["code"]) if parent_row
                    else msg("it overlaps no level-{level} area", level=level - 1))
            add_bad(report, f, "no_parent_found", said,
                    advice=msg("import the level above first, or give the parent"))
            continue
        f.parent_id, f.parent_ref = parent_id, code
        report.located.append({"feature": f.index, "code": f.code, "parent": code,
                               "share_pct": 100.0 * min(float(share), 1.0)})


def _candidates(parent_row, level) -> tuple[str, dict]:
    scope, params = "a.level = :lvl", {"lvl": level - 1}
    if parent_row is not None:
        scope += " AND a.path <@ CAST(:path AS ltree)"
        params["path"] = parent_row["path"]
    return scope, params


def _loose(code: str, prefix: str) -> str:
    if prefix and code.startswith(prefix):
        code = code[len(prefix):]
    return code.strip().upper().lstrip("0") or "0"
