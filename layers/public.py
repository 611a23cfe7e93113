"""The public safety map (平安地图): incident counts per grid or 1 km hexagon, published as frozen
monthly releases rounded at random to multiples of 5, the way census agencies publish small counts.

What is published, and why subtracting one published number from another reveals nothing small:
- one release per local calendar month of the home jurisdiction, computed once after the month has
  ended, stored, and never recomputed: late reports and later edits do not change it, so requests
  made at different times cannot be subtracted to isolate what changed in between;
- each cell's true count n (incidents flagged sensitive, and those outside every jurisdiction, are
  left out) is published as a multiple of 5 by unbiased random rounding: for n = 5q + r it is
  5q + 5 with probability r/5, else 5q, so on average it is n. The draw comes from a secret seed
  stored with the release (never published: knowing it would tell which way each cell was rounded),
  so every request sees the same number;
- every view (grids or hexagons, the last 3 or 12 complete months) is a sum of the stored monthly
  cells, and every total a sum of the view's cells: every number anyone can see, and every sum or
  difference of them, is a multiple of 5, never a count of 1 to 4;
- counts only: never a point, an address, a description, a category breakdown or anyone's name.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import audit
from geo.errors import InvalidInput
from geo.policy import Audience, home_area

from . import mvt, selection
from .hexgrid import HexGrid, count
from .metric import Plane
from .mvt import BOUNDS, Built, TileAddress

BASE = 5
HEX_M = 1000.0
MONTHS = (3, 12)
LEVELS = ("grid", "hex")
METHOD = f"random rounding to base {BASE} of each monthly cell"
NOTE = (f"counts are rounded to multiples of {BASE} (0 can mean up to {BASE - 1}); each month is "
        "published once and never changed; sensitive matters are not counted")
LOCK = "anwang.public.releases"  # advisory lock: one transaction builds missing releases at a time
SYSTEM = audit.Actor(name="system:public-map")
PUBLIC = Audience.public()


@dataclass(frozen=True)
class Release:
    """One stored month of the public map (the seed stays in the database)."""

    id: int
    area_code: str
    month: date
    created_at: datetime
    base: int
    hex_m: float
    new: bool = False

    @property
    def label(self) -> str:
        return f"{self.month:%Y-%m}"


# -- arguments ------------------------------------------------------------------------------------
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


def complete_months(number: int, now: datetime | None = None) -> list[date]:
    """The first days of the last `number` complete local calendar months before `now`, oldest first."""
    now = (now or datetime.now(selection.TZ)).astimezone(selection.TZ)
    first = now.date().replace(day=1)
    out = []
    for _ in range(number):
        first = (first - timedelta(days=1)).replace(day=1)
        out.append(first)
    return out[::-1]


def parse_release_month(value, now: datetime | None = None) -> date:
    """Parse 'YYYY-MM' into its first day; InvalidInput unless the month has ended."""
    start, end = selection.parse_month(value)
    now = now or datetime.now(selection.TZ)
    if end > now:
        latest = complete_months(1, now)[0]
        raise InvalidInput("month", f"month {value} is not complete yet: a month is published once it "
                                    f"has ended (the latest complete month is {latest:%Y-%m})")
    return start.date()


# -- rounding ---------------------------------------------------------------------------------------
def draw(seed: bytes, level: str, cell: str) -> float:
    """A uniform number in [0, 1) fixed by a release's seed and one cell."""
    digest = hmac.new(seed, f"{level}\x1f{cell}".encode(), hashlib.sha256).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / float(1 << 53)


def rounded(n: int, u: float, base: int = BASE) -> int:
    """Round n to a multiple of `base` at random without bias: n = base·q + r goes up with
    probability r/base (when u < r/base), else down; a multiple of `base` stays as it is."""
    q, r = divmod(int(n), base)
    return base * (q + (1 if u * base < r else 0))


# -- releases ----------------------------------------------------------------------------------------
def ensure(session: Session, months: list[date], *, actor: audit.Actor = SYSTEM,
           now: datetime | None = None, seed: bytes | None = None) -> list[Release]:
    """The home jurisdiction's releases of these complete months, building (once) those missing.

    `seed` fixes the rounding of the releases built now, for reproducing one; by default each
    release draws a fresh secret seed.
    """
    now = now or datetime.now(selection.TZ)
    for m in months:
        parse_release_month(f"{m:%Y-%m}", now)
    home = home_area(session)
    found = _stored(session, home, months)
    missing = [m for m in months if m not in found]
    if missing:
        # Two workers may both find a month missing; the second waits here until the first commits,
        # then finds the release stored and uses it rather than publishing a second rounding.
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": LOCK})
        found = _stored(session, home, months)
        for m in months:
            if m not in found:
                found[m] = _build(session, home, m, actor=actor, seed=seed)
    return [found[m] for m in months]


def _stored(session: Session, home: str, months: list[date]) -> dict[date, Release]:
    rows = session.execute(text("""
        SELECT id, area_code, month, created_at, base, hex_m FROM public_releases
         WHERE area_code = :a AND month = ANY(:m)"""), {"a": home, "m": list(months)}).all()
    return {r.month: Release(r.id, r.area_code, r.month, r.created_at, r.base, r.hex_m) for r in rows}


def _build(session: Session, home: str, month: date, *, actor: audit.Actor,
           seed: bytes | None) -> Release:
    start, end = selection.parse_month(f"{month:%Y-%m}")
    seed = seed or secrets.token_bytes(32)
    row = session.execute(text("""
        INSERT INTO public_releases (area_code, month, seed, method, base, hex_m)
        VALUES (:a, :m, :seed, :method, :base, :hex) RETURNING id, created_at"""),
        {"a": home, "m": month, "seed": seed, "method": METHOD, "base": BASE, "hex": HEX_M}).one()
    sel = selection.Selection(home, (), start, end, PUBLIC)

    grids = _grid_counts(session, sel)
    published = [rounded(n, draw(seed, "grid", code)) for _, code, n in grids]
    session.execute(text("""
        INSERT INTO public_release_cells (release_id, level, cell, area_id, name, geom, published)
        SELECT :rid, 'grid', a.code, a.id, a.name, a.geom, c.published
          FROM unnest(CAST(:ids AS integer[]), CAST(:pub AS integer[])) AS c(id, published)
          JOIN areas a ON a.id = c.id"""),
        {"rid": row.id, "ids": [g for g, _, _ in grids], "pub": published})

    cells, counts = _hex_counts(session, sel)
    hex_published = [rounded(int(n), draw(seed, "hex", c)) for c, n in zip(cells, counts)]
    session.execute(text("""
        INSERT INTO public_release_cells (release_id, level, cell, published)
        SELECT :rid, 'hex', c.cell, c.published
          FROM unnest(CAST(:cells AS text[]), CAST(:pub AS integer[])) AS c(cell, published)"""),
        {"rid": row.id, "cells": cells, "pub": hex_published})

    audit.record(session, actor, "public.release", target_type="public_release", target_id=row.id,
                 area_code=home, details={"month": f"{month:%Y-%m}", "grids": len(grids),
                                          "hexagons": len(cells), "method": METHOD})
    return Release(row.id, home, month, row.created_at, BASE, HEX_M, new=True)


def _grid_counts(session: Session, sel: selection.Selection) -> list[tuple[int, str, int]]:
    """(id, code, true count) of every grid of the jurisdiction."""
    relation, cond, params = selection.query(sel, session)
    rows = session.execute(text(f"""
        SELECT g.id, g.code, count(i.id) AS n
          FROM areas g
          LEFT JOIN (SELECT i.id, i.grid_id FROM {relation} WHERE {cond} AND NOT i.sensitive) i
                 ON i.grid_id = g.id
         WHERE g.level = 4 AND g.path <@ (SELECT path FROM areas WHERE code = :home)
         GROUP BY g.id, g.code ORDER BY g.code"""), {**params, "home": sel.area}).all()
    return [(r.id, r.code, int(r.n)) for r in rows]


def _hex_counts(session: Session, sel: selection.Selection) -> tuple[list[str], np.ndarray]:
    """Ids and true counts of every hexagon meeting the jurisdiction."""
    assert sel.area is not None, "a release is always of one jurisdiction"
    geom = selection.area_geometry(session, sel.area)
    plane = Plane.for_bounds(*geom.bounds)
    grid = HexGrid(HEX_M, plane)
    q, r = grid.covering(plane.to_metric(geom))
    pts = selection.points(session, sel, public=True)
    x, y = plane.xy(pts.lon, pts.lat)
    return [f"{plane.epsg}:{c}" for c in HexGrid.cell_id(q, r)], count(grid, x, y, q, r)


def summary(session: Session, release: Release) -> dict:
    """Cells and published total per level of one release."""
    rows = session.execute(text("""
        SELECT level, count(*) AS cells, sum(published) AS total FROM public_release_cells
         WHERE release_id = :r GROUP BY level"""), {"r": release.id}).all()
    return {r.level: {"cells": int(r.cells), "published_total": int(r.total)} for r in rows}


# -- the views ---------------------------------------------------------------------------------------
def stats(session: Session, *, level: str = "grid", months: int = 12, now: datetime | None = None,
          actor: audit.Actor = SYSTEM) -> dict:
    """The last `months` complete months per grid or hexagon as a GeoJSON FeatureCollection: sums of
    the stored monthly releases (built first where missing; the caller commits)."""
    releases = ensure(session, complete_months(months, now), actor=actor, now=now)
    ids = [r.id for r in releases]
    features = _grid_view(session, ids) if level == "grid" else _hex_view(session, ids)
    first, last = releases[0].month, releases[-1].month
    to = selection.parse_month(f"{last:%Y-%m}")[1] - timedelta(days=1)
    return {"type": "FeatureCollection", "features": features, "meta": {
        "level": level, "months": months, "area": releases[0].area_code,
        "from": first.isoformat(), "to": to.date().isoformat(),
        "releases": [r.label for r in releases], "base": BASE, "rounding": METHOD,
        "cells": len(features), "published_total": sum(f["properties"]["count"] for f in features),
        "note": NOTE}}


def _grid_view(session: Session, release_ids: list[int]) -> list[dict]:
    # A grid is one area id across months; it is drawn as it is now, or as its newest release
    # stored it once it has been retired (a release older than migration 0012 may hold it
    # clockwise: turned here, as RFC 7946 asks, since releases are never rewritten).
    rows = session.execute(text("""
        WITH cells AS (
            SELECT c.area_id, c.cell, c.name, c.geom, c.published, r.month
              FROM public_release_cells c JOIN public_releases r ON r.id = c.release_id
             WHERE c.release_id = ANY(:ids) AND c.level = 'grid'),
        newest AS (
            SELECT DISTINCT ON (area_id) area_id, cell, name, geom FROM cells ORDER BY area_id, month DESC),
        sums AS (SELECT area_id, sum(published) AS n FROM cells GROUP BY area_id)
        SELECT COALESCE(a.code, w.cell) AS code, COALESCE(a.name, w.name) AS name,
               ST_AsGeoJSON(ST_ForcePolygonCCW(COALESCE(a.geom, w.geom)), 5) AS geometry, s.n, a.id IS NULL AS retired
          FROM sums s JOIN newest w USING (area_id)
          LEFT JOIN areas a ON a.id = s.area_id AND a.level = 4
         ORDER BY code, s.area_id"""), {"ids": release_ids}).all()
    return [{"type": "Feature", "id": r.code, "geometry": json.loads(r.geometry),
             "properties": {"id": r.code, "name": r.name, "count": int(r.n), "retired": r.retired}}
            for r in rows]


def _hex_view(session: Session, release_ids: list[int]) -> list[dict]:
    rows = session.execute(text("""
        SELECT c.cell, r.hex_m, sum(c.published) AS n
          FROM public_release_cells c JOIN public_releases r ON r.id = c.release_id
         WHERE c.release_id = ANY(:ids) AND c.level = 'hex'
         GROUP BY c.cell, r.hex_m ORDER BY c.cell"""), {"ids": release_ids}).all()
    by_grid: dict[tuple[int, float], list] = defaultdict(list)
    for r in rows:
        epsg, q, rr = (int(p) for p in r.cell.split(":"))
        by_grid[(epsg, float(r.hex_m))].append((r.cell, q, rr, int(r.n)))
    features = {}
    for (epsg, size), cells in by_grid.items():
        grid = HexGrid(size, Plane(epsg))
        geoms = grid.to_geojson_geometry([c[1] for c in cells], [c[2] for c in cells], digits=5)
        for (cid, _, _, n), g in zip(cells, geoms):
            features[cid] = {"type": "Feature", "id": cid, "geometry": g,
                             "properties": {"id": cid, "count": n}}
    return [features[c] for c in sorted(features)]


# -- the vector tile ---------------------------------------------------------------------------------
def tile(session: Session, t: TileAddress, *, now: datetime | None = None,
         actor: audit.Actor = SYSTEM) -> Built:
    """The public map as one vector tile: the grids (`public_grids`) and 1 km hexagons
    (`public_hexagons`) of the home jurisdiction with the published sums of the last 3 and 12
    complete months; nothing else. It goes stale when the next month is due."""
    now = now or datetime.now(selection.TZ)
    releases = ensure(session, complete_months(12, now), actor=actor, now=now)
    ids = [r.id for r in releases]
    recent = ids[-3:]
    grids = f"""
        WITH cells AS (
            SELECT c.area_id, c.cell, c.name, c.geom, c.published, r.month, c.release_id = ANY(:recent) AS recent
              FROM public_release_cells c JOIN public_releases r ON r.id = c.release_id
             WHERE c.release_id = ANY(:ids) AND c.level = 'grid'),
        newest AS (
            SELECT DISTINCT ON (area_id) area_id, cell, name, geom FROM cells ORDER BY area_id, month DESC),
        sums AS (SELECT area_id, sum(published) FILTER (WHERE recent) AS n3, sum(published) AS n12
                   FROM cells GROUP BY area_id)
        SELECT COALESCE(a.code, w.cell) AS code, COALESCE(a.name, w.name) AS name,
               COALESCE(s.n3, 0)::integer AS count_3, s.n12::integer AS count_12,
               {mvt.geom('COALESCE(a.geom, w.geom)')} AS geom
          FROM sums s JOIN newest w USING (area_id)
          LEFT JOIN areas a ON a.id = s.area_id AND a.level = 4
         WHERE COALESCE(a.geom, w.geom) && {BOUNDS}"""
    cells, counts3, counts12, wkb = _hex_cells(session, ids, recent, t)
    hexagons = f"""
        SELECT h.id, h.count_3, h.count_12, {mvt.geom('ST_GeomFromWKB(h.wkb, 4326)')} AS geom
          FROM unnest(CAST(:cells AS text[]), CAST(:n3 AS integer[]), CAST(:n12 AS integer[]),
                      CAST(:wkb AS bytea[])) AS h(id, count_3, count_12, wkb)"""
    body = session.execute(text(f"SELECT {mvt.layer('public_grids', grids)} || "
                                f"{mvt.layer('public_hexagons', hexagons)}"),
                           {**t.params, "ids": ids, "recent": recent, "cells": cells, "n3": counts3,
                            "n12": counts12, "wkb": wkb}).scalar_one()
    month_end = selection.parse_month(f"{now.astimezone(selection.TZ):%Y-%m}")[1]
    return Built(bytes(body), month_end)


def _hex_cells(session: Session, ids: list[int], recent: list[int], t: TileAddress):
    """The hexagons of the releases meeting the tile: ids, sums over 3 and 12 months, WKB."""
    rows = session.execute(text("""
        SELECT c.cell, r.hex_m, sum(c.published) FILTER (WHERE c.release_id = ANY(:recent)) AS n3,
               sum(c.published) AS n12
          FROM public_release_cells c JOIN public_releases r ON r.id = c.release_id
         WHERE c.release_id = ANY(:ids) AND c.level = 'hex'
         GROUP BY c.cell, r.hex_m ORDER BY c.cell"""), {"ids": ids, "recent": recent}).all()
    west, south, east, north = t.bounds()
    tile_box = shapely.box(west, south, east, north)
    out: tuple[list, list, list, list] = ([], [], [], [])
    by_plane: dict[tuple[int, float], list] = defaultdict(list)
    for r in rows:
        epsg, q, rr = (int(p) for p in r.cell.split(":"))
        by_plane[(epsg, float(r.hex_m))].append((r.cell, q, rr, int(r.n3 or 0), int(r.n12)))
    for (epsg, size), cells in by_plane.items():
        polygons = Plane(epsg).to_wgs84(HexGrid(size, Plane(epsg)).polygons([c[1] for c in cells],
                                                                           [c[2] for c in cells]))
        for (cid, _, _, n3, n12), polygon in zip(cells, polygons):
            if polygon.intersects(tile_box):
                for column, value in zip(out, (cid, n3, n12, shapely.to_wkb(polygon))):
                    column.append(value)
    return out
