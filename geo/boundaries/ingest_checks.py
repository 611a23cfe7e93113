"""The checks of a boundary import, each naming the bad feature and the way through: geometry,
codes, parents, duplicates, and whether the pieces partition their parent.
"""
from __future__ import annotations

from collections import defaultdict

import shapely
from sqlalchemy import text

from geo.boundaries.ingest_report import add_bad
from geo.boundaries.partition import (
    GAP_TOLERANCE_M2,
    OVERLAP_TOLERANCE_M2,
    fit_pieces,
    sliver_m2_sql,
)
from geo.messages import joined, msg

# -- features --------------------------------------------------------------------------------


def check_geometry(session, report, features, repair: bool) -> None:
    """Polygons only; invalid rings refused or, with `repair`, made valid (GEOS MakeValid).

    Validity and repair run in GEOS through shapely — the engine behind ST_MakeValid — because
    PostGIS refuses even to parse some invalid rings (fewer than four points) that GEOS reads.
    """
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    for f in features:
        if f.bad:
            continue
        g = None if f.wkb is None else shapely.from_wkb(f.wkb)
        if g is None or g.is_empty:
            add_bad(report, f, "no_geometry", msg("the feature has no geometry"))
            continue
        if g.geom_type not in ("Polygon", "MultiPolygon"):
            add_bad(report, f, "not_polygon", msg("a {kind}, not a polygon", kind=g.geom_type))
            continue
        if not g.is_valid:
            reason = shapely.is_valid_reason(g)
            if not repair:
                add_bad(report, f, "invalid_geometry", msg("invalid ring: {reason}", reason=reason),
                        ways=[{"repair": True}])
                continue
            fixed = _polygonal(shapely.make_valid(g))
            before = abs(geod.geometry_area_perimeter(g)[0])
            after = abs(geod.geometry_area_perimeter(fixed)[0])
            g = fixed
            report.repaired.append({
                "feature": f.index, "code": f.code, "reason": reason, "before_m2": before,
                "after_m2": after, "change_m2": after - before,
                "change_pct": 100 * (after - before) / before if before else 0.0})
        f.wkb = shapely.to_wkb(_polygonal(g))


def _polygonal(g):
    """The polygons of a geometry as one MultiPolygon (what MakeValid returns may hold lines)."""
    parts = []
    for part in getattr(g, "geoms", [g]):
        parts.extend(p for p in getattr(part, "geoms", [part]) if p.geom_type == "Polygon")
    return shapely.MultiPolygon(parts)


def check_codes(session, report, features, merge_duplicates: bool) -> None:
    for f in features:
        if f.code is None:
            add_bad(report, f, "missing_code", msg("the code field is empty"))
        elif len(f.code) > 32:
            add_bad(report, f, "bad_code", msg("code {code!r} is longer than 32 characters", code=f.code))
    groups = defaultdict(list)
    for f in features:
        if f.code is not None:
            groups[f.code].append(f)
    if not merge_duplicates:
        for code, group in groups.items():
            if len(group) > 1:
                for f in group:
                    add_bad(report, f, "duplicate_code",
                            msg("code {code} is used by {count} features ({features})", code=code,
                                count=len(group), features=joined([str(g.index) for g in group], ", ")),
                            ways=[{"merge_duplicates": True}])
    existing = dict(session.execute(text(
        "SELECT code, name FROM areas WHERE code = ANY(:c)"), {"c": list(groups)}).all())
    for f in features:
        if f.code in existing:
            add_bad(report, f, "code_exists", msg("code {code} already exists ({name})", code=f.code,
                                                 name=existing[f.code]),
                    ways=[{"code_prefix": None}])


def dissolve_duplicates(session, report, features):
    groups = defaultdict(list)
    for f in features:
        groups[f.code].append(f)
    out = []
    for code, group in groups.items():
        first = group[0]
        if len(group) > 1:
            parents = {g.parent_id for g in group}
            if len(parents) > 1:
                for g in group:
                    add_bad(report, g, "duplicate_code", msg("code {code} is used by features with different "
                                                             "parents: they cannot be merged", code=code))
                continue
            first.wkb = session.execute(text(
                "SELECT ST_AsBinary(ST_Multi(ST_CollectionExtract(ST_Union(ST_GeomFromWKB(w, 4326)), 3))) "
                "FROM unnest(CAST(:ws AS bytea[])) w"), {"ws": [g.wkb for g in group]}).scalar_one()
            report.merged.append({"code": code, "features": [g.index for g in group]})
        out.append(first)
    return out


def check_partition(session, report, features, level: int, fit: bool,
                    skip_bad: bool = False) -> None:
    """Children must partition their parent exactly; roots must not overlap other roots.

    With `fit` the pieces are made to; a piece with nothing left inside its parent is then an
    error, or with `skip_bad` skipped (and marked bad) while the others are fitted without it.
    """
    by_parent = defaultdict(list)
    for f in features:
        by_parent[f.parent_id].append(f)
    for parent_id, group in sorted(by_parent.items(), key=lambda kv: kv[0] or 0):
        if parent_id is None:
            container, name = None, msg("the other top-level areas")
            taken = session.execute(text(
                "SELECT ST_AsBinary(ST_Union(geom)) FROM areas WHERE parent_id IS NULL "
                "AND geom && ST_GeomFromWKB(:b, 4326)"),
                {"b": shapely.to_wkb(shapely.box(*shapely.total_bounds(
                    [shapely.from_wkb(f.wkb) for f in group])))}).scalar()
        else:
            row = session.execute(text(
                "SELECT p.code, ST_AsBinary(p.geom) AS geom, "
                "(SELECT ST_AsBinary(ST_Union(c.geom)) FROM areas c WHERE c.parent_id = p.id) AS taken "
                "FROM areas p WHERE p.id = :p"), {"p": parent_id}).mappings().one()
            name, container, taken = row["code"], row["geom"], row["taken"]
            if taken is not None:  # existing children stay; the new ones fill what is left
                container = session.execute(text(
                    "SELECT ST_AsBinary(ST_CollectionExtract(ST_Difference(ST_GeomFromWKB(:a, 4326), "
                    "ST_GeomFromWKB(:b, 4326)), 3))"), {"a": container, "b": taken}).scalar_one()
        if not fit:
            problems = _misfit(session, container, taken if parent_id is None else None,
                               [f.wkb for f in group])
            for message in problems:
                report.error("misfit", msg("under {name}: {said}", name=name, said=message),
                             code=None if parent_id is None else name, ways=[{"fit": True}])
            continue
        if parent_id is None and taken is not None:
            # Roots are clipped off the roots that are already there, then fitted among themselves.
            for f in group:
                f.wkb = session.execute(text(
                    "SELECT ST_AsBinary(ST_Multi(ST_CollectionExtract(ST_Difference("
                    "ST_GeomFromWKB(:a, 4326), ST_GeomFromWKB(:b, 4326)), 3)))"),
                    {"a": f.wkb, "b": taken}).scalar_one()
        _fit(session, report, container, group, skip_bad)


def _fit(session, report, container, group, skip_bad: bool) -> None:
    while group:
        fitted, lines = fit_pieces(session, container, [f.wkb for f in group],
                                   labels=[f"feature {f.index} [{f.code}]" for f in group])
        empty = [f for f, geom in zip(group, fitted) if geom is None]
        if empty and skip_bad:
            # Fitted again without them: the slivers they were given must go to a piece that stays.
            for f in empty:
                f.bad = True
                report.skipped.append(report.issue(
                    "outside_parent", "nothing is left of it inside its parent", feature=f.index,
                    code=f.code, ways=[{"skip_bad": True}]))
            group = [f for f in group if not f.bad]
            continue
        report.fitted.extend(lines)
        for f, geom in zip(group, fitted):
            if geom is None:
                add_bad(report, f, "outside_parent", msg("nothing is left of it inside its parent"))
            f.wkb = geom
        return


def _misfit(session, container, others, wkbs) -> list[str]:
    m2 = sliver_m2_sql
    row = session.execute(text(f"""
        WITH n AS (SELECT i, ST_GeomFromWKB(w, 4326) AS g
                     FROM unnest(CAST(:ws AS bytea[])) WITH ORDINALITY u(w, i)),
             u AS (SELECT ST_Union(g) AS g FROM n),
             c AS (SELECT ST_GeomFromWKB(CAST(:c AS bytea), 4326) AS g,
                          ST_GeomFromWKB(CAST(:o AS bytea), 4326) AS o)
        SELECT CASE WHEN c.g IS NULL THEN 0 ELSE {m2('ST_Difference(u.g, c.g)')} END AS outside,
               CASE WHEN c.g IS NULL THEN 0 ELSE {m2('ST_Difference(c.g, u.g)')} END AS gap,
               CASE WHEN c.o IS NULL THEN 0 ELSE {m2('ST_Intersection(u.g, c.o)')} END AS others,
               (SELECT COALESCE(sum({m2('ST_CollectionExtract(ST_Intersection(a.g, b.g), 3)')}), 0)
                  FROM n a JOIN n b ON a.i < b.i AND a.g && b.g) AS overlap
          FROM u, c"""), {"ws": wkbs, "c": container, "o": others}).mappings().one()
    out: list[str] = []
    if row["outside"] > GAP_TOLERANCE_M2:
        out.append(msg("{m2:.1f} m² lie outside the parent", m2=row["outside"]))
    if row["gap"] > GAP_TOLERANCE_M2:
        out.append(msg("{m2:.1f} m² of the parent are covered by no feature (gaps)", m2=row["gap"]))
    if row["overlap"] > OVERLAP_TOLERANCE_M2:
        out.append(msg("features overlap each other by {m2:.2f} m²", m2=row["overlap"]))
    if row["others"] > OVERLAP_TOLERANCE_M2:
        out.append(msg("{m2:.1f} m² overlap areas already there", m2=row["others"]))
    return out
