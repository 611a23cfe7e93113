"""Geometry helpers of the boundary operations: drawn GeoJSON parsed, unions, areas and overlaps
measured in PostGIS.
"""
from __future__ import annotations

import json

import shapely
from shapely.geometry import shape
from sqlalchemy import text

from geo.errors import InvalidInput
from geo.messages import msg


def shared_m_sql(a: str, b: str) -> str:
    """SQL for the length in metres of the edge two polygons share.

    Measured as a's boundary within a millimetre of b, because nodes cut into one side of an
    edge (by a split or a clip) lie on the other side's segment only up to rounding.
    """
    return f"ST_Length(ST_Intersection(ST_Boundary({a}), ST_Buffer({b}, 1e-8))::geography)"


def parse_geojson(geometry):
    if geometry is None:
        raise InvalidInput("geometry", msg("a drawn geometry (GeoJSON) is required for this operation"))
    if isinstance(geometry, str):
        try:
            geometry = json.loads(geometry)
        except ValueError:
            raise InvalidInput("geometry", msg("geometry must be GeoJSON")) from None
    if not isinstance(geometry, dict) or "type" not in geometry:
        raise InvalidInput("geometry", msg("geometry must be a GeoJSON object; got {got:.80}",
                                           got=repr(geometry)))
    try:
        if geometry["type"] == "FeatureCollection":
            geom = shapely.GeometryCollection([shape(f["geometry"]) for f in geometry["features"]])
        elif geometry["type"] == "Feature":
            geom = shape(geometry["geometry"])
        else:
            geom = shape(geometry)
    except Exception as exc:  # shapely raises several types for malformed GeoJSON
        raise InvalidInput("geometry", msg("geometry is not valid GeoJSON: {reason}", reason=str(exc))) from None
    if geom.is_empty:
        raise InvalidInput("geometry", msg("the drawn geometry is empty"))
    xs, ys = shapely.get_coordinates(geom).T
    if (abs(xs) > 180).any() or (abs(ys) > 90).any():
        if (abs(ys) <= 180).all() and (abs(xs) <= 90).all():
            raise InvalidInput("geometry", msg("coordinates must be lon, lat in degrees — are lon and "
                                               "lat swapped?"))
        raise InvalidInput("geometry", msg("coordinates must be lon, lat in degrees"))
    return geom


def polygons_of(geom) -> list:
    parts = [g for g in getattr(geom, "geoms", [geom])]
    flat: list[shapely.Geometry] = []
    for g in parts:
        flat.extend(getattr(g, "geoms", [g]))
    polys = [g for g in flat if g.geom_type == "Polygon"]
    if not polys or len(polys) != len(flat):
        raise InvalidInput("geometry", msg("expected polygons; got {kind}", kind=geom.geom_type))
    for p in polys:
        if not p.is_valid:
            raise InvalidInput("geometry", msg("the drawn polygon is not valid: {reason} — it must not "
                                               "cross itself", reason=shapely.is_valid_reason(p)))
    return polys


def drawn_polygonal(geometry) -> bytes:
    polys = polygons_of(parse_geojson(geometry))
    merged = shapely.union_all(polys)
    return shapely.to_wkb(merged)


def drawn_lines(geometry) -> bytes:
    geom = parse_geojson(geometry)
    flat: list[shapely.Geometry] = []
    for g in getattr(geom, "geoms", [geom]):
        flat.extend(getattr(g, "geoms", [g]))
    if not flat or any(g.geom_type != "LineString" for g in flat):
        raise InvalidInput("geometry", msg("split needs a line (or lines); got {kind}", kind=geom.geom_type))
    return shapely.to_wkb(shapely.MultiLineString(flat))


def union_wkb(session, wkbs: list[bytes]) -> bytes:
    if len(wkbs) == 1:
        return session.execute(text("SELECT ST_AsBinary(ST_Multi(ST_GeomFromWKB(:w, 4326)))"),
                               {"w": wkbs[0]}).scalar_one()
    return session.execute(text(
        "SELECT ST_AsBinary(ST_Multi(ST_CollectionExtract(ST_Union(ST_GeomFromWKB(w, 4326)), 3))) "
        "FROM unnest(CAST(:ws AS bytea[])) w"), {"ws": wkbs}).scalar_one()


def area_of_wkb(session, wkb: bytes) -> float:
    return session.execute(text("SELECT ST_Area(ST_GeomFromWKB(:w, 4326)::geography)"),
                           {"w": wkb}).scalar_one() or 0.0


def area_wkb(session, area_id: int) -> bytes:
    return session.execute(text("SELECT ST_AsBinary(geom) FROM areas WHERE id = :a"),
                           {"a": area_id}).scalar_one()


def changed_region(session, prior: dict[int, int], retired: list[int]) -> bytes | None:
    """Where anything changed hands: each updated area's old and new outline told apart, and every
    retired area whole. Rows located elsewhere keep their area, so only these need a look."""
    return session.execute(text("""
        SELECT ST_AsBinary(ST_Union(g)) FROM (
            SELECT ST_SymDifference(v.geom, a.geom) AS g
              FROM areas a
              JOIN area_versions v ON v.area_id = a.id
              JOIN unnest(CAST(:ids AS int[]), CAST(:vs AS int[])) AS p(id, version)
                ON p.id = a.id AND p.version = v.version
             WHERE ST_AsBinary(v.geom) <> ST_AsBinary(a.geom)
            UNION ALL
            SELECT geom FROM areas WHERE id = ANY(:retired)) x"""),
        {"ids": list(prior), "vs": list(prior.values()), "retired": retired}).scalar()


def centroid_key(session, wkb: bytes) -> tuple:
    x, y = session.execute(text("SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_PointOnSurface("
                                "ST_GeomFromWKB(:w, 4326)) c) s"), {"w": wkb}).one()
    return (-round(y, 3), x)  # north → south in bands of ~100 m, then west → east


def best_overlap(session, area_id: int, wkbs: list[bytes]) -> int:
    return session.execute(text("""
        SELECT n.i - 1 FROM unnest(CAST(:ws AS bytea[])) WITH ORDINALITY n(w, i), areas a
         WHERE a.id = :a
         ORDER BY ST_Area(ST_Intersection(a.geom, ST_GeomFromWKB(n.w, 4326))) DESC, n.i LIMIT 1"""),
        {"ws": wkbs, "a": area_id}).scalar_one()


def successor_by_overlap(session, area_id: int, restored: dict[int, int]) -> int | None:
    """Of the areas a revert restores ({id: version}), the one covering most of `area_id`."""
    return session.execute(text("""
        SELECT v.area_id
          FROM areas a, area_versions v
          JOIN unnest(CAST(:ids AS int[]), CAST(:vs AS int[])) AS r(id, version)
            ON r.id = v.area_id AND r.version = v.version
         WHERE a.id = :a AND v.geom && a.geom
         ORDER BY ST_Area(ST_Intersection(v.geom, a.geom)) DESC, v.area_id LIMIT 1"""),
        {"a": area_id, "ids": list(restored), "vs": list(restored.values())}).scalar()
