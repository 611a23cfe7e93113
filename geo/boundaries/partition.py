"""The partition rule every level obeys, defined once: children cover their parent with no gap
and no overlap beyond these tolerances, and drawn or imported pieces are fitted to make it so.
"""
from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.areas import GEOJSON_DIGITS, area_row
from geo.errors import InvalidInput
from geo.messages import joined, msg

# Drawn vertices within this many degrees (≈ 10 cm) of an existing edge are snapped onto it, so a
# shape traced along a neighbour's edge in the browser (coordinates rounded to 1e-7°) leaves no sliver.
SNAP_DEGREES = 1e-6
# The invariant every level is checked against, in square metres: a gap or an overlap smaller
# than this is numerical noise; anything larger is refused (edits, imports) or reported (validate).
GAP_TOLERANCE_M2 = 1e-3
OVERLAP_TOLERANCE_M2 = 1e-6
# A piece smaller than this is a drawing slip, never a grid of its own.
MIN_PIECE_M2 = 1.0


def sliver_m2_sql(expr: str) -> str:
    """SQL for the area in m² of a small piece of EPSG:4326, its edges straight in degrees.

    Gaps and overlaps are slivers along shared edges. Measured on `geography`, whose edges are
    geodesics, a vertex added on a long straight edge (a split's node) shows up as a phantom
    sliver of many m² (a 2 km edge sags about a centimetre); measured in the geometry's own
    plane and scaled by the metres in a degree at that latitude (111,320 m × cos φ east–west,
    110,574 m north–south; within about 1 %), a true coincidence stays zero.
    """
    return (f"COALESCE(ST_Area({expr}) * 111320.0 * 110574.0 "
            f"* cos(radians((ST_YMin({expr}) + ST_YMax({expr})) / 2)), 0)")


def validate_partition(session: Session, root: str | None = None) -> list[dict]:
    """Report invalid geometry, children outside their parent, gaps and sibling overlaps.

    Each problem is a dict with kind, codes, area_m2 and a GeoJSON geometry of the offending piece.
    """
    params: dict = {"gap": GAP_TOLERANCE_M2, "overlap": OVERLAP_TOLERANCE_M2,
                    "digits": GEOJSON_DIGITS}
    scope = "true"
    if root:
        row = area_row(session, root)
        scope = "a.path <@ CAST(:root_path AS ltree)"
        params["root_path"] = row["path"]
    problems: list[dict] = []

    invalid = session.execute(text(f"""
        SELECT a.code, ST_IsValidReason(a.geom) AS reason FROM areas a
         WHERE {scope} AND NOT ST_IsValid(a.geom) ORDER BY a.code"""), params).mappings()
    for r in invalid:
        problems.append({"kind": "invalid_geometry", "codes": [r["code"]], "message": r["reason"],
                         "area_m2": None, "geometry": None})

    # Per parent: the children's union against the parent, both ways.
    coverage = session.execute(text(f"""
        WITH kids AS (
            SELECT p.id, p.code, p.geom AS pgeom, ST_Union(a.geom) AS ugeom
              FROM areas a JOIN areas p ON p.id = a.parent_id
             WHERE {scope.replace('a.path', 'p.path')} AND ST_IsValid(a.geom)
             GROUP BY p.id, p.code, p.geom)
        SELECT code, kind, {sliver_m2_sql('piece')} AS m2, ST_AsGeoJSON(ST_ForcePolygonCCW(piece), :digits) AS gj
          FROM (SELECT code, 'gap' AS kind, ST_Difference(pgeom, ugeom) AS piece FROM kids
                UNION ALL
                SELECT code, 'outside_parent', ST_Difference(ugeom, pgeom) FROM kids) d
         WHERE NOT ST_IsEmpty(piece) AND {sliver_m2_sql('piece')} > :gap
         ORDER BY code, kind"""), params).mappings()
    for r in coverage:
        problems.append({"kind": r["kind"], "codes": [r["code"]], "area_m2": r["m2"],
                         "message": msg("gap of {m2:.1f} m² in {code}", m2=r["m2"], code=r["code"])
                                    if r["kind"] == "gap" else
                                    msg("outside parent of {m2:.1f} m² in {code}", m2=r["m2"], code=r["code"]),
                         "geometry": json.loads(r["gj"])})

    overlaps = session.execute(text(f"""
        SELECT a.code AS a, b.code AS b, {sliver_m2_sql('x')} AS m2, ST_AsGeoJSON(ST_ForcePolygonCCW(x), :digits) AS gj
          FROM areas a
          JOIN areas b ON b.parent_id = a.parent_id AND b.id > a.id AND b.geom && a.geom
          CROSS JOIN LATERAL (SELECT ST_CollectionExtract(ST_Intersection(a.geom, b.geom), 3) AS x) i
         WHERE {scope} AND ST_IsValid(a.geom) AND ST_IsValid(b.geom)
           AND ST_Intersects(a.geom, b.geom) AND NOT ST_IsEmpty(x)
           AND {sliver_m2_sql('x')} > :overlap
         ORDER BY a.code, b.code"""), params).mappings()
    for r in overlaps:
        problems.append({"kind": "overlap", "codes": [r["a"], r["b"]], "area_m2": r["m2"],
                         "message": msg("{a} and {b} overlap by {m2:.6f} m²", a=r["a"], b=r["b"], m2=r["m2"]),
                         "geometry": json.loads(r["gj"])})
    return problems


# -- fitting pieces into a container ---------------------------------------------------------
def fit_pieces(session: Session, container: bytes | None, pieces: list[bytes],
               labels: list[str] | None = None) -> tuple[list[bytes | None], list[str]]:
    """Make pieces an exact partition of `container`: clip, resolve overlaps, fill gaps.

    Each piece is snapped to the container's edges and clipped to it; where pieces overlap the
    earlier one keeps the overlap; every uncovered sliver joins the piece it shares the longest
    edge with (the nearest one when it touches none). Without a container only overlaps are
    resolved. Returns the fitted WKB (None for a piece left empty) and one line per adjustment.
    """
    labels = labels or [msg("piece {n}", n=i + 1) for i in range(len(pieces))]
    rows = session.execute(text(f"""
        WITH c AS (SELECT ST_GeomFromWKB(CAST(:c AS bytea), 4326) AS g),
             p AS (SELECT i, ST_GeomFromWKB(w, 4326) AS raw FROM unnest(CAST(:ws AS bytea[]))
                         WITH ORDINALITY u(w, i)),
             clipped AS (
                SELECT i, raw,
                       CASE WHEN c.g IS NULL THEN raw ELSE ST_CollectionExtract(ST_Intersection(
                           ST_Snap(raw, ST_ClipByBox2D(ST_Boundary(c.g), ST_Expand(raw, :tol)), :tol),
                           c.g), 3) END AS g
                  FROM p, c),
             resolved AS (
                SELECT a.i, a.raw, a.g AS clipped,
                       COALESCE(ST_CollectionExtract(ST_Difference(a.g, (
                           SELECT ST_Union(b.g) FROM clipped b WHERE b.i < a.i AND b.g && a.g)), 3),
                           a.g) AS g
                  FROM clipped a),
             edged AS MATERIALIZED (SELECT i, g, ST_Boundary(g) AS edge FROM resolved),
             gaps AS MATERIALIZED (
                SELECT row_number() OVER () AS k, d.geom AS g, ST_Buffer(d.geom, :tol) AS halo
                  FROM c, ST_Dump(ST_CollectionExtract(ST_Difference(c.g,
                           (SELECT ST_Union(g) FROM resolved)), 3)) d
                 WHERE c.g IS NOT NULL),
             owner AS (
                -- Each sliver joins the piece it shares the longest edge with (bbox-filtered),
                -- or the nearest piece when it touches none.
                SELECT gaps.k, gaps.g, COALESCE(
                    (SELECT r.i FROM edged r
                      WHERE NOT ST_IsEmpty(r.g) AND r.g && gaps.halo
                      ORDER BY ST_Length(ST_Intersection(r.edge, gaps.halo)) DESC,
                               ST_Distance(r.g, gaps.g), r.i LIMIT 1),
                    (SELECT r.i FROM edged r WHERE NOT ST_IsEmpty(r.g)
                      ORDER BY ST_Distance(r.g, gaps.g), r.i LIMIT 1)) AS i
                  FROM gaps)
        SELECT r.i,
               ST_AsBinary(ST_Multi(ST_CollectionExtract(ST_Union(
                   ARRAY[r.g] || ARRAY(SELECT o.g FROM owner o WHERE o.i = r.i)), 3))) AS wkb,
               -- Differences of areas, not areas of differences: the pieces are nested, and
               -- this costs nothing where an overlay of two large polygons would.
               greatest({sliver_m2_sql('r.raw')} - {sliver_m2_sql('r.clipped')}, 0) AS outside,
               greatest({sliver_m2_sql('r.clipped')} - {sliver_m2_sql('r.g')}, 0) AS overlap,
               COALESCE((SELECT sum({sliver_m2_sql('o.g')}) FROM owner o WHERE o.i = r.i), 0) AS filled,
               {sliver_m2_sql('r.g')} AS m2
          FROM resolved r ORDER BY r.i"""),
        {"c": container, "ws": list(pieces), "tol": SNAP_DEGREES}).mappings().all()
    out: list[bytes | None] = []
    report: list[str] = []
    for r, label in zip(rows, labels):
        geom = r["wkb"]
        empty = geom is None or r["m2"] + r["filled"] < MIN_PIECE_M2
        out.append(None if empty else geom)
        bits = []
        if r["outside"] > OVERLAP_TOLERANCE_M2:
            bits.append(msg("{m2:.2f} m² outside its parent clipped off", m2=r["outside"]))
        if r["overlap"] > OVERLAP_TOLERANCE_M2:
            bits.append(msg("{m2:.2f} m² overlapping an earlier feature removed", m2=r["overlap"]))
        if r["filled"] > OVERLAP_TOLERANCE_M2:
            bits.append(msg("{m2:.2f} m² of uncovered slivers added", m2=r["filled"]))
        if bits:
            report.append(msg("{label}: {said}", label=label, said=joined(bits, ", ")))
    return out, report


# -- the invariant ---------------------------------------------------------------------------
def verify(session, parent_ids: set, changed: list[int]) -> None:
    """Refuse (raise InvalidInput) unless each parent is still exactly covered by its children."""
    ids = sorted(p for p in parent_ids if p is not None)
    bad = session.execute(text(f"""
        SELECT p.code, u.n, {sliver_m2_sql('ST_Difference(p.geom, u.g)')} AS gap,
               {sliver_m2_sql('ST_Difference(u.g, p.geom)')} AS outside
          FROM areas p
          CROSS JOIN LATERAL (SELECT ST_Union(c.geom) AS g, count(*) AS n FROM areas c
                               WHERE c.parent_id = p.id) u
         WHERE p.id = ANY(:ids)"""), {"ids": ids}).mappings().all()
    for b in bad:
        if b["n"] == 0:
            raise InvalidInput("geometry", msg("{code} would be left with no sub-areas", code=b["code"]))
        if b["gap"] > GAP_TOLERANCE_M2:
            raise InvalidInput("geometry", msg("the edit would leave a gap of {m2:.3f} m² in {code}; "
                                               "nothing was saved", m2=b["gap"], code=b["code"]))
        if b["outside"] > GAP_TOLERANCE_M2:
            raise InvalidInput("geometry", msg("the edit would put {m2:.3f} m² outside {code}; nothing "
                                               "was saved", m2=b["outside"], code=b["code"]))
    overlaps = session.execute(text(f"""
        SELECT a.code AS a, b.code AS b, {sliver_m2_sql('x.g')} AS m2
          FROM areas a JOIN areas b ON b.parent_id = a.parent_id AND b.id <> a.id AND b.geom && a.geom
          CROSS JOIN LATERAL (SELECT ST_CollectionExtract(ST_Intersection(a.geom, b.geom), 3) AS g) x
         WHERE a.id = ANY(:changed) AND (b.id > a.id OR NOT b.id = ANY(:changed))
           AND {sliver_m2_sql('x.g')} > :tol"""),
        {"changed": changed, "tol": OVERLAP_TOLERANCE_M2}).mappings().first()
    if overlaps:
        raise InvalidInput("geometry", msg("the edit would make {a} and {b} overlap by {m2:.6f} m²; "
                                           "nothing was saved", a=overlaps["a"], b=overlaps["b"],
                                           m2=overlaps["m2"]))
    invalid = session.execute(text(
        "SELECT code, ST_IsValidReason(geom) FROM areas WHERE id = ANY(:ids) AND NOT ST_IsValid(geom)"),
        {"ids": changed}).first()
    if invalid:
        raise InvalidInput("geometry", msg("the edit would make {code}'s outline invalid ({reason}); "
                                           "nothing was saved", code=invalid[0], reason=invalid[1]))
