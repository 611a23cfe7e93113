"""Reading a collection: one page of features, one feature, and the collection's extent — GeoJSON
built in PostGIS from the collection's source, filtered by bbox, datetime and CQL2 in SQL.
"""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import InvalidInput, NotFound
from geo.policy import CODE, Audience

from . import crs as crs_mod
from .collections import Collection
from .query import Query

# No "crs" member in the output: the CRS is told by the Content-Crs header (Part 2).
GEOJSON_OPTIONS = 0


def _feature_sql(collection: Collection, crs: crs_mod.Crs) -> str:
    props = ", ".join(f"'{p.name}', s.\"{p.name}\"" for p in collection.properties)
    geometry = crs.from_storage("s.geom")
    return (f"json_build_object('type', 'Feature', 'id', s.fid, "
            f"'geometry', ST_AsGeoJSON({geometry}, {crs.digits}, {GEOJSON_OPTIONS})::json, "
            f"'properties', json_build_object({props}))")


def _conditions(collection: Collection, q: Query, params: dict) -> str:
    where = ["true"]
    if q.bbox:
        # ST_Intersects carries the `&&` test the GiST index answers, then the exact one.
        where.append(f"ST_Intersects(s.geom, {crs_mod.envelope_sql(q.bbox_crs, 'bbox_', params, q.bbox)})")
    if q.start is not None:
        where.append("s.t_end >= :dt_start")
        params["dt_start"] = q.start
    if q.end is not None:
        where.append("s.t_start <= :dt_end")
        params["dt_end"] = q.end
    for n, (name, value) in enumerate(sorted(q.equals.items())):
        prop = collection.prop(name)
        if prop is None:
            raise InvalidInput(name, f"unknown property {name!r} in collection {collection.id}")
        where.append(f's."{prop.name}" = CAST(:eq{n} AS {prop.sql_type})')
        params[f"eq{n}"] = value
    if q.filter:
        # Imported on first use: building the CQL2 grammar takes a second, which every command
        # line call and worker start would otherwise pay.
        from . import cql

        where.append(cql.to_sql(q.filter, collection, params, q.filter_crs))
    return " AND ".join(where)


def items(session: Session, collection: Collection, audience: Audience, q: Query) -> dict:
    """One page of the collection as the audience may see it: features (GeoJSON, in `q.crs`),
    numberMatched and numberReturned."""
    params: dict = {}
    source = collection.source(session, audience, params, q.options)
    where = _conditions(collection, q, params)
    matched = session.execute(text(f"SELECT count(*) FROM ({source}) s WHERE {where}"),
                              params).scalar_one()
    features = session.execute(text(f"""
        SELECT {_feature_sql(collection, q.crs)} FROM ({source}) s WHERE {where}
         ORDER BY {collection.order} LIMIT :page_limit OFFSET :page_offset"""),
        {**params, "page_limit": q.limit, "page_offset": q.offset}).scalars().all()
    return {"features": features, "numberMatched": matched, "numberReturned": len(features)}


def _feature_id(collection: Collection, value: str):
    """The id as the collection stores it; NotFound for one it cannot hold."""
    if collection.id_type == "integer":
        if value.isdigit() and 0 < int(value) < 2 ** 63:
            return int(value)
    elif CODE.fullmatch(value):
        return value
    raise NotFound(f"no feature {value!r} in collection {collection.id}", field="featureId")


def item(session: Session, collection: Collection, audience: Audience, value: str,
         crs: crs_mod.Crs = crs_mod.CRS84, options: dict | None = None) -> dict:
    """One feature the audience may see, or NotFound — never telling whether it exists outside."""
    params: dict = {"fid": _feature_id(collection, value)}
    source = collection.source(session, audience, params, options or {})
    feature = session.execute(text(f"SELECT {_feature_sql(collection, crs)} FROM ({source}) s "
                                   "WHERE s.fid = :fid"), params).scalar()
    if feature is None:
        raise NotFound(f"no feature {value!r} in collection {collection.id}", field="featureId")
    return feature


def extent(session: Session, collection: Collection, audience: Audience) -> dict:
    """The spatial extent (CRS84) and, for collections with time, the temporal extent."""
    params: dict = {}
    source = collection.source(session, audience, params, {})
    times = "min(s.t_start), max(s.t_end)" if collection.temporal else "NULL, NULL"
    row = session.execute(text(f"""
        SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e), t0, t1
          FROM (SELECT ST_Extent(s.geom) AS e, {times} FROM ({source}) s) x(e, t0, t1)"""),
        params).one()
    out: dict = {}
    if row[0] is not None:
        out["spatial"] = {"bbox": [[round(float(v), 7) for v in row[:4]]], "crs": crs_mod.CRS84_URI}
    if collection.temporal:
        out["temporal"] = {"interval": [[row[4].isoformat() if row[4] else None,
                                         row[5].isoformat() if row[5] else None]],
                           "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}
    return out
