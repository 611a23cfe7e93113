"""The public safety map: aggregated incident counts per grid or hexagon, nothing that identifies.

What is published, and why it is safe to publish:
- counts only, per governance grid or per fixed 1 km hexagon — never a point, an address, a
  description, a category breakdown or anyone's name;
- a cell counting 1 to k−1 incidents (k = 5 by default) is suppressed, so no cell points at one
  household's matter;
- whole calendar months only (the last 3 or 12 complete months): a sliding daily window would let
  two requests a day apart be subtracted to reveal a single incident;
- incidents flagged sensitive are never counted.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import InvalidInput
from geo.policy import Audience

from . import selection
from .hexgrid import HexGrid, count
from .metric import Plane

PUBLIC = Audience.public()
K_MIN = 5
HEX_M = 1000.0
MONTHS = (3, 12)
LEVELS = ("grid", "hex")


def parse_level(value) -> str:
    """Parse the cell kind: grid or hex."""
    level = (value or "grid").strip().lower()
    if level not in LEVELS:
        raise InvalidInput("level", f"level must be grid or hex; got {value!r}")
    return level


def parse_months(value) -> int:
    """Parse the window: 3 or 12 complete months."""
    if value in (None, ""):
        return 12
    try:
        months = int(value)
    except (TypeError, ValueError):
        months = -1
    if months not in MONTHS:
        raise InvalidInput("months", f"months must be one of {', '.join(map(str, MONTHS))}; got {value!r}")
    return months


def window(months: int, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The last `months` complete local calendar months before `now`."""
    now = (now or datetime.now(selection.TZ)).astimezone(selection.TZ)
    end = selection.parse_month(f"{now.year}-{now.month:02d}")[0]
    start = end
    for _ in range(months):
        start = selection.previous_month(start)[0]
    return start, end


def stats(session: Session, *, level: str = "grid", months: int = 12, k: int = K_MIN,
          now: datetime | None = None) -> dict:
    """Aggregated, suppressed incident counts as a GeoJSON FeatureCollection."""
    start, end = window(months, now)
    if level == "grid":
        features = _grids(session, start, end)
    else:
        features = _hexagons(session, start, end)
    suppressed = 0
    for f in features:
        n = f["properties"]["count"]
        if 0 < n < k:
            f["properties"]["count"] = None
            f["properties"]["suppressed"] = True
            suppressed += 1
        else:
            f["properties"]["suppressed"] = False
    published = sum(f["properties"]["count"] or 0 for f in features)
    return {"type": "FeatureCollection", "features": features, "meta": {
        "level": level, "from": start.date().isoformat(), "to": (end - timedelta(days=1)).date().isoformat(),
        "months": months, "k": k, "cells": len(features), "suppressed_cells": suppressed,
        "published_total": published,
        "note": f"counts of fewer than {k} incidents are not shown; sensitive matters are not counted"}}


def _grids(session: Session, start: datetime, end: datetime) -> list[dict]:
    params: dict = {"start": start, "end": end}
    rows = session.execute(text(f"""
        SELECT g.code, g.name, ST_AsGeoJSON(g.geom, 5) AS geometry,
               (SELECT count(*) FROM {PUBLIC.incidents(params)}
                 WHERE i.grid_id = g.id AND NOT i.sensitive AND NOT i.outside_jurisdiction
                   AND i.occurred_at >= :start AND i.occurred_at < :end) AS n
          FROM areas g WHERE g.level = 4 ORDER BY g.code"""), params).all()
    return [{"type": "Feature", "id": r.code, "geometry": json.loads(r.geometry),
             "properties": {"id": r.code, "name": r.name, "count": int(r.n)}} for r in rows]


def _hexagons(session: Session, start: datetime, end: datetime) -> list[dict]:
    districts = session.execute(text("SELECT code FROM areas WHERE level = 1 ORDER BY code")).scalars().all()
    features: dict[str, dict] = {}
    for code in districts:
        geom = selection.area_geometry(session, code)
        plane = Plane.for_bounds(*geom.bounds)
        grid = HexGrid(HEX_M, plane)
        q, r = grid.covering(plane.to_metric(geom))
        pts = selection.points(session, selection.Selection(code, (), start, end, PUBLIC), public=True)
        x, y = plane.xy(pts.lon, pts.lat)
        counts = count(grid, x, y, q, r)
        ids = [f"{plane.epsg}:{c}" for c in HexGrid.cell_id(q, r)]
        for cid, g, n in zip(ids, grid.to_geojson_geometry(q, r, digits=5), counts):
            if cid in features:
                features[cid]["properties"]["count"] += int(n)
            else:
                features[cid] = {"type": "Feature", "id": cid, "geometry": g,
                                 "properties": {"id": cid, "count": int(n)}}
    return [features[c] for c in sorted(features)]


