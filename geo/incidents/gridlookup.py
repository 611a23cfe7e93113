"""The grid lookup (网格查找表) behind bulk assignment: which area each cell of a fine square grid
over the jurisdiction lies in, so that a million points find their grid by one array lookup each
and only the points in cells a boundary crosses are tested against polygons.

The areas are cut into pieces that partition the jurisdiction — every leaf area, plus whatever part
of a parent its children leave uncovered (nothing, in a valid hierarchy) — each of at most 64
vertices, and numbered so that the lower number wins a shared edge: finest level first, then the
lowest area id. Square cells 2^-k degrees wide are laid over the areas' extent, k as fine as
`CELL_BUDGET` allows, and each cell holds

    > 0   the area whose piece covers the whole cell, no other piece touching it;
      0   nothing: no piece touches the cell (outside every jurisdiction);
    < 0   -m: a boundary crosses the cell; row m of `candidates` lists the pieces touching it,
          best first, and a point there takes the first that ST_Intersects it — unless a single
          edge crosses the cell (most do) and the point is clearly on one side of it: row m of
          `lines` and `sides` then says which area lies there.

Cells are settled coarse to fine, a quadtree: only cells a boundary crosses are split, so a full
build tests some hundred thousand boxes rather than every cell. The cells are an index, not a
measure, so they are in degrees: a point's column is floor(lon * 2^k), exact in binary floating
point, and a point always falls in the very cell that was classified for it. Whether a cell is
covered or touched is decided by GEOS on the exact pieces, so a point there gets the answer the
pieces give.

The lookup is derived data: one row of `grid_lookups`, keyed by a fingerprint of every area's id,
level, parent and shape. `refresh` builds it when the areas have changed since (a boundary edit, an
import). The statements that read it compare that fingerprint with the areas they see themselves:
`changes` (inside the assigning UPDATE) then probes the areas point by point instead, and `tallied`
(a count) says the lookup was stale, so a lookup that no longer fits the areas never decides.
One lookup spans the extent of all areas: jurisdictions far apart would need cells too coarse to
help, and get none (bulk runs then cut pieces instead).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

FORMAT = "1"  # part of the fingerprint: a lookup made by another build rule is never used
CELL_BUDGET = 1 << 19  # at most this many cells (2 MB of integers)
FINEST = 14  # 2^14 cells per degree (about 6 m): finer buys nothing for street-scale grids
COARSEST = 8  # with cells coarser than 2^-8 degree (about 400 m) most points would be tested anyway
REFINE = 3  # quadtree levels between the first cells and the lookup's own
MAX_WIDTH = 8  # crossed cells touching more pieces than this mean cells far too coarse to keep
# A point nearer than this (degrees, about 0.1 mm) to the one edge crossing its cell is tested
# against the pieces themselves; the side of the edge decides for the others. Rounding in the
# signed distance is some 1e-13 degree, far inside the margin.
EDGE_MARGIN = 1e-9
LOCK = 7_240_312  # advisory lock: one transaction builds the lookup at a time

# Leaves, and what their parents' children leave uncovered, cut to at most 64 vertices. `near`
# limits the areas to those a region touches (or "true").
PIECES = """
    SELECT a.id AS area_id, a.level, ST_Subdivide(a.geom, 64) AS geom
      FROM areas a WHERE NOT EXISTS (SELECT 1 FROM areas c WHERE c.parent_id = a.id)
       AND {near}
    UNION ALL
    SELECT u.id, u.level, ST_Subdivide(u.rest, 64)
      FROM (SELECT p.id, p.level, ST_Difference(p.geom, ST_Union(c.geom)) AS rest
              FROM areas p JOIN areas c ON c.parent_id = p.id
             WHERE {near_p}
             GROUP BY p.id, p.level, p.geom) u
     WHERE NOT ST_IsEmpty(u.rest)
"""

# Everything the pieces depend on, as the statement reading it sees the areas.
FINGERPRINT = f"""(SELECT md5('{FORMAT};' || COALESCE(string_agg(
        concat_ws(',', a.id, a.level, a.parent_id, md5(CAST(a.geom AS bytea))), ';' ORDER BY a.id), ''))
     FROM areas a)"""


@dataclass(frozen=True)
class Lookup:
    """Which lookup row a statement reads, and how its cells are numbered."""

    fingerprint: str
    scale: int  # cells per degree, 2^k
    i0: int  # column of cells[1][*]: floor(lon * scale)
    j0: int  # row of cells[*][1]: floor(lat * scale)
    width: int  # entries in a row of candidates: the most pieces a crossed cell touches

    @property
    def params(self) -> dict:
        return {"lookup": self.fingerprint, "lookup_scale": float(self.scale),
                "lookup_i0": self.i0, "lookup_j0": self.j0}


_COLUMNS = "fingerprint, scale, i0, j0, width"


def fingerprint(session: Session) -> str:
    """The fingerprint of the areas as this transaction sees them."""
    return session.execute(text(f"SELECT {FINGERPRINT}")).scalar_one()


def current(session: Session) -> Lookup | None:
    """The lookup built from the areas as they are now, if there is one."""
    row = session.execute(text(
        f"SELECT {_COLUMNS} FROM grid_lookups WHERE fingerprint = {FINGERPRINT}")).first()
    return Lookup(*row) if row else None


def refresh(session: Session) -> Lookup | None:
    """The current lookup, built first when the areas changed since the last one; None when there
    are no areas, when cells fine enough would be too many, or while another transaction builds it."""
    found = current(session)
    if found is not None:
        return found
    # Whoever does not get the lock carries on without a lookup rather than wait for one.
    if not session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": LOCK}).scalar():
        return None
    return current(session) or build(session)


# Fingerprints of areas that yield no lookup (too spread out, or too many pieces per cell), so that
# each bulk run does not try again, in this process, what cannot work.
_NO_LOOKUP: set[str] = set()


def resolution(xmin: float, ymin: float, xmax: float, ymax: float) -> int | None:
    """The finest k (cells 2^-k degrees wide) whose cells over this extent fit the budget."""
    for k in range(FINEST, COARSEST - 1, -1):
        # The lookup tiles the extent with the cells of its first level, REFINE levels up.
        s = 2.0 ** max(k - REFINE, 0)
        columns = math.floor(xmax * s) - math.floor(xmin * s) + 1
        rows = math.floor(ymax * s) - math.floor(ymin * s) + 1
        if (columns * rows) << (2 * min(k, REFINE)) <= CELL_BUDGET:
            return k
    return None


_BOX = "ST_MakeEnvelope({i} / :s, {j} / :s, ({i} + 1) / :s, ({j} + 1) / :s, 4326)"
# Classify the cells of one level that some piece may touch (`pairs`: each cell with each piece
# worth testing): a cell no piece touches is settled outside (0), one that a single piece touches
# and covers is settled in its area, any other is crossed (NULL) and keeps the pieces touching it.
# Tests run in piece order, so PostGIS reuses a piece's prepared geometry from one test to the next.
_CLASSIFY = f"""
    tested AS (
        SELECT i, j, n, ST_Intersects(geom, {_BOX.format(i="i", j="j")}) AS touches
          FROM (SELECT * FROM pairs ORDER BY n OFFSET 0) x),
    touched AS (
        SELECT i, j, array_agg(n ORDER BY n) FILTER (WHERE touches) AS cand FROM tested GROUP BY i, j)
    INSERT INTO gridlookup_cells
    SELECT :lv, i, j, cand,
           CASE WHEN cand IS NULL THEN 0
                WHEN cardinality(cand) = 1 AND ST_Covers(geom, {_BOX.format(i="i", j="j")})
                THEN area_id END
      FROM (SELECT t.i, t.j, t.cand, p.geom, p.area_id
              FROM touched t LEFT JOIN gridlookup_pieces p ON p.n = t.cand[1]
             ORDER BY t.cand[1] OFFSET 0) x"""
# The first level: every piece paired with the cells its box spans ...
_FIRST_LEVEL = f"""
    WITH pairs AS (
        SELECT c.i, c.j, p.n, p.geom
          FROM gridlookup_pieces p
         CROSS JOIN LATERAL (
               SELECT i, j FROM generate_series(floor(ST_XMin(p.geom) * :s)::int,
                                                floor(ST_XMax(p.geom) * :s)::int) i,
                                generate_series(floor(ST_YMin(p.geom) * :s)::int,
                                                floor(ST_YMax(p.geom) * :s)::int) j) c),
    {_CLASSIFY}"""
# ... and every other cell over the areas' extent, outside.
_FIRST_OUTSIDE = """
    INSERT INTO gridlookup_cells
    SELECT :lv, i, j, NULL, 0
      FROM (SELECT i, j FROM generate_series(floor(:xmin * :s)::int, floor(:xmax * :s)::int) i,
                             generate_series(floor(:ymin * :s)::int, floor(:ymax * :s)::int) j
            EXCEPT SELECT i, j FROM gridlookup_cells WHERE lv = :lv) x"""
# The next level: the four children of every crossed cell, each with the pieces that touched it.
_NEXT_LEVEL = f"""
    WITH pairs AS (
        SELECT 2 * m.i + d.di AS i, 2 * m.j + d.dj AS j, p.n, p.geom
          FROM gridlookup_cells m CROSS JOIN (VALUES (0, 0), (0, 1), (1, 0), (1, 1)) d(di, dj)
         CROSS JOIN LATERAL unnest(m.cand) u(n) JOIN gridlookup_pieces p ON p.n = u.n
         WHERE m.lv = :lv - 1 AND m.area IS NULL),
    {_CLASSIFY}"""
# A crossed cell that one edge crosses and nothing else — the edge shared by the pieces either side
# of it, or a piece's outer edge — is decided by the side of that edge: each piece's rings are
# turned counter-clockwise, so a piece lies to the left of each of its edges. Such a cell keeps
# the edge's line (a, b, c: a·lon + b·lat + c is the signed distance, left positive) and the areas
# left and right of it (0: none).
_EDGES = """
    CREATE TEMP TABLE gridlookup_edges ON COMMIT DROP AS
    SELECT * FROM (
        SELECT p.n, d.geom AS seg, ST_X(ST_StartPoint(d.geom)) AS x1, ST_Y(ST_StartPoint(d.geom)) AS y1,
               ST_X(ST_EndPoint(d.geom)) AS x2, ST_Y(ST_EndPoint(d.geom)) AS y2
          FROM gridlookup_pieces p, ST_DumpSegments(ST_ForcePolygonCCW(p.geom)) d) e
     WHERE x1 <> x2 OR y1 <> y2   -- a repeated vertex is no edge"""
_LINES = f"""
    CREATE TEMP TABLE gridlookup_lines ON COMMIT DROP AS
    WITH near AS (
        -- each edge with the crossed cells its box spans that its piece touches
        SELECT m.i, m.j, cardinality(m.cand) AS touching, e.n, e.seg, e.x1, e.y1, e.x2, e.y2
          FROM gridlookup_edges e
         CROSS JOIN LATERAL generate_series(floor(least(e.x1, e.x2) * :s)::int,
                                            floor(greatest(e.x1, e.x2) * :s)::int) gi(i)
         CROSS JOIN LATERAL generate_series(floor(least(e.y1, e.y2) * :s)::int,
                                            floor(greatest(e.y1, e.y2) * :s)::int) gj(j)
          JOIN gridlookup_cells m ON m.lv = :k AND m.area IS NULL AND m.i = gi.i AND m.j = gj.j
         WHERE e.n = ANY(m.cand)),
    crossing AS (SELECT * FROM near WHERE ST_Intersects(seg, {_BOX.format(i="i", j="j")})),
    one AS (
        -- one segment, every piece touching the cell has it, and no two pieces on the same side
        SELECT i, j, min(n) AS left_n, CASE WHEN count(DISTINCT n) = 2 THEN max(n) END AS right_n
          FROM crossing
         GROUP BY i, j
        HAVING count(DISTINCT CASE WHEN (x1, y1) < (x2, y2) THEN ROW(x1, y1, x2, y2)
                                   ELSE ROW(x2, y2, x1, y1) END) = 1
           AND count(DISTINCT n) = min(touching) AND count(DISTINCT n) <= 2
           AND count(DISTINCT ROW(x1, y1, x2, y2)) = count(DISTINCT n))
    SELECT o.i, o.j, -(e.y2 - e.y1) / l.len AS a, (e.x2 - e.x1) / l.len AS b,
           ((e.y2 - e.y1) * e.x1 - (e.x2 - e.x1) * e.y1) / l.len AS c,
           lp.area_id AS left_area, COALESCE(rp.area_id, 0) AS right_area
      FROM one o
      JOIN crossing e ON e.i = o.i AND e.j = o.j AND e.n = o.left_n
      CROSS JOIN LATERAL (SELECT sqrt((e.x2 - e.x1) ^ 2 + (e.y2 - e.y1) ^ 2) AS len) l
      JOIN gridlookup_pieces lp ON lp.n = o.left_n
      LEFT JOIN gridlookup_pieces rp ON rp.n = o.right_n"""
# Settled cells of every level and crossed cells of the last level together tile the extent
# exactly, so each column of the lookup is its cells in row order.
_STORE = f"""
    INSERT INTO grid_lookups ({_COLUMNS}, cells, candidates, lines, sides, pieces, piece_areas)
    WITH mixed AS (
        SELECT c.i, c.j, c.cand, row_number() OVER (ORDER BY c.i, c.j) AS m,
               -- a line of zeros puts every point on the edge: the pieces decide
               ARRAY[COALESCE(l.a, 0), COALESCE(l.b, 0), COALESCE(l.c, 0)] AS line,
               ARRAY[COALESCE(l.left_area, 0), COALESCE(l.right_area, 0)] AS sides
          FROM gridlookup_cells c LEFT JOIN gridlookup_lines l USING (i, j)
         WHERE c.lv = :k AND c.area IS NULL),
    fine AS (
        -- a settled cell of a coarser level stands for all the cells of the lookup inside it
        SELECT (c.i << (:k - c.lv)) + di AS i, (c.j << (:k - c.lv)) + dj AS j, c.area AS v
          FROM gridlookup_cells c
         CROSS JOIN LATERAL generate_series(0, (1 << (:k - c.lv)) - 1) di
         CROSS JOIN LATERAL generate_series(0, (1 << (:k - c.lv)) - 1) dj
         WHERE c.area IS NOT NULL
        UNION ALL
        SELECT i, j, -m FROM mixed),
    columns AS (SELECT i, min(j) AS j0, array_agg(v ORDER BY j) AS col FROM fine GROUP BY i)
    SELECT :fp, :scale, min(i), min(j0), :width, array_agg(col ORDER BY i),
           -- padded with 0, which names no piece
           COALESCE((SELECT array_agg((cand || array_fill(0, ARRAY[:width]))[1:CAST(:width AS integer)]
                                      ORDER BY m) FROM mixed), '{{}}'),
           COALESCE((SELECT array_agg(line ORDER BY m) FROM mixed), '{{}}'),
           COALESCE((SELECT array_agg(sides ORDER BY m) FROM mixed), '{{}}'),
           (SELECT array_agg(geom ORDER BY n) FROM gridlookup_pieces),
           (SELECT array_agg(area_id ORDER BY n) FROM gridlookup_pieces)
      FROM columns
    HAVING count(*) > 0
    RETURNING {_COLUMNS}"""
_SCRATCH = ("gridlookup_lines", "gridlookup_edges", "gridlookup_cells", "gridlookup_pieces")


def build(session: Session) -> Lookup | None:
    """Build the lookup for the areas as this transaction sees them and make it the only one."""
    fp = fingerprint(session)
    if fp in _NO_LOOKUP:
        return None
    extent = session.execute(text(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
        "FROM (SELECT ST_Extent(geom) AS e FROM areas) x")).one()
    k = None if extent[0] is None else resolution(*extent)
    if k is None:
        _NO_LOOKUP.add(fp)
        return None
    for name in _SCRATCH:
        session.execute(text(f"DROP TABLE IF EXISTS {name}"))
    session.execute(text(f"""
        CREATE TEMP TABLE gridlookup_pieces ON COMMIT DROP AS
        SELECT CAST(row_number() OVER (ORDER BY level DESC, area_id) AS integer) AS n, area_id, geom
          FROM ({PIECES.format(near="true", near_p="true")}) x"""))
    session.execute(text("ALTER TABLE gridlookup_pieces ADD PRIMARY KEY (n)"))
    session.execute(text("ANALYZE gridlookup_pieces"))
    session.execute(text("CREATE TEMP TABLE gridlookup_cells (lv integer, i integer, j integer, "
                         "cand integer[], area integer) ON COMMIT DROP"))
    first = max(k - REFINE, 0)
    session.execute(text(_FIRST_LEVEL), {"s": 2.0 ** first, "lv": first})
    xmin, ymin, xmax, ymax = extent
    session.execute(text(_FIRST_OUTSIDE), {"s": 2.0 ** first, "lv": first, "xmin": xmin,
                                           "ymin": ymin, "xmax": xmax, "ymax": ymax})
    for level in range(first + 1, k + 1):
        session.execute(text(_NEXT_LEVEL), {"s": 2.0 ** level, "lv": level})
    width = session.execute(text(
        "SELECT COALESCE(max(cardinality(cand)), 0) FROM gridlookup_cells WHERE lv = :k AND area IS NULL"),
        {"k": k}).scalar_one()
    session.execute(text("ANALYZE gridlookup_cells"))
    session.execute(text(_EDGES))
    session.execute(text(_LINES), {"s": 2.0 ** k, "k": k})
    session.execute(text("DELETE FROM grid_lookups"))
    row = None
    if width <= MAX_WIDTH:
        row = session.execute(text(_STORE), {"fp": fp, "scale": 2 ** k, "k": k,
                                             "width": max(width, 1)}).first()
    for name in _SCRATCH:
        session.execute(text(f"DROP TABLE {name}"))
    if row is None:
        _NO_LOOKUP.add(fp)
    return Lookup(*row) if row else None


def _stored(column: str) -> str:
    # Each mention is an InitPlan of its own, run once per statement; it copies the array out of
    # the `lookup` CTE, read and decompressed once (a stored array would be read back from TOAST at
    # every subscript).
    return f"(SELECT {column} FROM lookup)"


# Prefix of every statement that reads the lookup `:lookup`.
LOOKUP_CTE = """
    WITH lookup AS MATERIALIZED (
        SELECT fingerprint, cells[:][:] AS cells, candidates[:][:] AS candidates, lines[:][:] AS lines,
               sides[:][:] AS sides, pieces[:] AS pieces, piece_areas[:] AS piece_areas
          FROM grid_lookups WHERE fingerprint = :lookup)"""


# The lookup was read (it may have been replaced since it was chosen) and was built from the areas
# this statement sees; NULL when it was not read.
_FRESH = f"{_stored('fingerprint')} = {FINGERPRINT}"


def _cell(geom: str) -> str:
    """The lookup's value for the cell a point lies in (0 beyond its columns and rows)."""
    # Coordinates beyond ±360° (no area is there) are brought to it, so that the cell number of a
    # wild point stays an integer and its cell is simply beyond the lookup.
    x, y = (f"floor(least(greatest({f}({geom}), -360), 360) * :lookup_scale)::int" for f in ("ST_X", "ST_Y"))
    return f"COALESCE({_stored('cells')}[{x} - :lookup_i0 + 1][{y} - :lookup_j0 + 1], 0)"


def _area(v: str, geom: str, width: int) -> str:
    """The area of a point whose cell holds `v`, 0 outside: the cell's own value when settled,
    else the side of the one edge crossing the cell, else the first candidate containing the point."""
    pieces, cand = _stored("pieces"), _stored("candidates")
    line, sides = _stored("lines"), _stored("sides")
    first = " ".join(f"WHEN ST_Intersects({pieces}[{cand}[-{v}][{k}]], {geom}) THEN {k}"
                     for k in range(1, width + 1))
    side = (f"width_bucket({line}[-{v}][1] * ST_X({geom}) + {line}[-{v}][2] * ST_Y({geom}) "
            f"+ {line}[-{v}][3], {-EDGE_MARGIN!r}, {EDGE_MARGIN!r}, 1)")
    # Read as: v >= 0 → v; else left of the edge → sides[1], right → sides[2], on it (or no single
    # edge) → the first candidate containing the point. Written so that a settled cell, nine in
    # ten, evaluates v once, and a crossed one a few times: SQL has no variables, and each
    # mention of v is evaluated again.
    return (f"COALESCE(NULLIF(GREATEST({v}, -1), -1), "
            f"CASE {side} WHEN 2 THEN {sides}[-{v}][1] WHEN 0 THEN {sides}[-{v}][2] "
            f"ELSE {_stored('piece_areas')}[{cand}[-{v}][CASE {first} END]] END, 0)")


def changes(table: str, where: str, lookup: Lookup) -> str:
    """A subquery of the selected incidents (alias t in `where`) whose assignment is out of date:
    id and `area`, the finest area containing the point now (NULL outside), read from the lookup
    `:lookup` when it was built from the areas this statement sees, else probed in the areas' GiST
    index."""
    # OFFSET 0 keeps each subquery whole, so the cell is read and the area decided once per point
    # however often the outer query names them; unchanged rows stay here, never joined to the
    # table being updated.
    return f"""{LOOKUP_CTE}
    SELECT d.id, d.area
      FROM (SELECT s.id, s.grid_id, s.area_id, s.outside_jurisdiction,
                   CASE WHEN {_FRESH}
                        THEN NULLIF({_area("s.v", "s.geom", lookup.width)}, 0)
                        ELSE (SELECT a.id FROM areas a
                               WHERE a.geom && s.geom AND ST_Intersects(a.geom, s.geom)
                               ORDER BY a.level DESC, a.id LIMIT 1) END AS area
              FROM (SELECT t.id, t.grid_id, t.area_id, t.outside_jurisdiction, t.geom,
                           {_cell("t.geom")} AS v
                      FROM {table} t WHERE t.geom IS NOT NULL AND {where} OFFSET 0) s
            OFFSET 0) d
     WHERE d.grid_id IS DISTINCT FROM d.area OR d.area_id IS DISTINCT FROM d.area
        OR d.outside_jurisdiction IS DISTINCT FROM (d.area IS NULL)"""


def tallied(table: str, where: str, lookup: Lookup) -> str:
    """One row for the selected incidents (alias t in `where`): `checked`, `tally` (incidents
    moving to another area + 2^32 × incidents outside every area) and `fresh`, false when the lookup
    was not built from the areas this statement sees (the tally is then meaningless)."""
    area = _area(_cell("t.geom"), "t.geom", lookup.width)
    # Built to run in parallel workers: no subquery between the scan and the aggregate (PostgreSQL
    # 15 runs neither a subquery with InitPlans nor a correlated SubPlan in a worker), and a single
    # aggregate over a single CASE on the area, as every mention would decide the area again.
    return f"""{LOOKUP_CTE}
    SELECT count(*) AS checked,
           sum(CASE {area} WHEN 0 THEN 4294967296 + (t.grid_id IS NOT NULL)::int
                           WHEN COALESCE(t.grid_id, 0) THEN 0 ELSE 1 END) AS tally,
           {_FRESH} AS fresh
      FROM {table} t WHERE t.geom IS NOT NULL AND {where}"""
