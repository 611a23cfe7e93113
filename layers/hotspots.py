"""Hot spots: Getis-Ord Gi* with normal or permutation inference and FDR, and emerging hot spots.

Three things open-source users commonly get wrong, and how this module avoids them:
- Degrees: the distance band is applied to coordinates in the metric plane (layers/metric.py), so a
  1,000 m band means 1,000 m anywhere; `band_m` is reported with every result.
- Signs: a bin's sign is the sign of Gi* minus its expectation, so a cluster of high counts is hot
  (positive) and a cluster of low counts cold; a test plants both.
- Multiple testing: hundreds of cells are tested at once, so significance is decided after the
  Benjamini–Hochberg false discovery rate correction, per confidence level (90/95/99 %), as Esri's
  Hot Spot Analysis does with its FDR option.

Gi* comes from esda (`G_Local(star=True)`, binary weights). Its p-value is, by default, the
two-sided normal p-value of the z-score (`inference="normal"`), as Esri's Hot Spot Analysis and
PySAL's `p_norm` report it, so a map can be compared with theirs: z = 8.3 is 99 %, whatever the
skew of the counts. On request (`inference="permutation"`) it comes from permutations
under total randomisation (every value shuffled, the cell's own included — see `permutation_p`),
two-sided, with ties to the observed sum counted on both sides: with counts many permuted sums
equal the observed one, and counting them on one side only would make cold spots look more
significant than they are.

Emerging hot spots follow Esri's Emerging Hot Spot Analysis: counts in space-time bins (hexagon ×
month), Gi* per bin with a space-time neighbourhood (the hexagons within the band in this step and
the `time_window` steps before), FDR per time step, the Mann-Kendall trend of each location's Gi*
z-scores, and Esri's published pattern definitions (new, consecutive, intensifying, persistent,
diminishing, sporadic, oscillating, historical — hot and cold).
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from esda.getisord import G_Local
from libpysal.weights import WSP
from scipy import sparse, stats
from scipy.spatial import cKDTree
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import areas
from geo.errors import InvalidInput
from geo.policy import Audience

from . import selection
from .hexgrid import HexGrid, count
from .metric import Plane
from .selection import SYSTEM

CONFIDENCE = ((0.01, 3), (0.05, 2), (0.10, 1))  # alpha → bin, as Esri's Gi_Bin (±3 = 99 %)
DEFAULT_HEX_M = 500.0
HEX_RANGE_M = (100.0, 5000.0)
PERMUTATIONS = 99_999  # p-values down to 2e-5: fine enough for the FDR's per-rank thresholds
SEED = 12345
TREND_ALPHA = 0.05
PERSISTENCE = 0.9  # Esri: "ninety percent of the time-step intervals"
INFERENCES = ("normal", "permutation")  # p-value of the z-score, or of the permuted sums
DEFAULT_INFERENCE = "normal"


@dataclass
class GiStar:
    """Gi* for n cells: z-scores, two-sided p-values and the confidence bins (−3…3).

    `p` is the p-value the bins are decided on: `p_norm` (of the z-score) or, with permutations,
    `p_sim` (of the permuted neighbourhood sums, else None).
    """

    z: np.ndarray
    p: np.ndarray
    p_norm: np.ndarray
    p_sim: np.ndarray | None
    bins: np.ndarray            # after the FDR correction (when fdr=True)
    bins_uncorrected: np.ndarray
    neighbours: np.ndarray      # cardinality including the cell itself
    permutations: int
    fdr: bool


def benjamini_hochberg(p: np.ndarray, alpha: float) -> np.ndarray:
    """Which hypotheses are rejected at false discovery rate `alpha` (Benjamini–Hochberg step-up)."""
    p = np.asarray(p, float)
    m = len(p)
    if m == 0:
        return np.zeros(0, bool)
    order = np.argsort(p, kind="stable")
    passed = p[order] <= alpha * np.arange(1, m + 1) / m
    if not passed.any():
        return np.zeros(m, bool)
    cutoff = p[order][np.flatnonzero(passed).max()]
    return p <= cutoff


def confidence_bins(z: np.ndarray, p: np.ndarray, *, fdr: bool) -> np.ndarray:
    """Esri-style bins: ±3 at 99 %, ±2 at 95 %, ±1 at 90 %, 0 otherwise; the sign is z's."""
    bins = np.zeros(len(p), np.int8)
    for alpha, level in sorted(CONFIDENCE, reverse=True):  # 90 % first, 99 % overwrites
        significant = benjamini_hochberg(p, alpha) if fdr else p <= alpha
        bins[significant] = level
    return (bins * np.sign(z)).astype(np.int8)


def distance_band(xy: np.ndarray, band_m: float) -> sparse.csr_matrix:
    """Binary neighbours within `band_m` of each metric point, the point itself included (Gi*)."""
    tree = cKDTree(xy)
    pairs = tree.query_pairs(band_m, output_type="ndarray")
    n = len(xy)
    rows = np.concatenate([pairs[:, 0], pairs[:, 1], np.arange(n)])
    cols = np.concatenate([pairs[:, 1], pairs[:, 0], np.arange(n)])
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))


def gi_star(values, adjacency: sparse.csr_matrix, *, permutations: int = PERMUTATIONS,
            fdr: bool = True, seed: int = SEED) -> GiStar:
    """Compute Gi* of `values` over a binary adjacency that includes each cell itself.

    The bins are decided on the normal p-value of the z-score unless `permutations` > 0, when they
    are decided on the permutation p-value (total randomisation, see `permutation_p`); the normal
    p-value is returned either way.
    """
    y = np.asarray(values, float)
    n = len(y)
    card = np.asarray(adjacency.sum(axis=1)).ravel()
    if n < 3 or y.sum() == 0 or np.all(y == y[0]):
        zeros, ones = np.zeros(n), np.ones(n)
        return GiStar(zeros, ones, ones, ones if permutations > 0 else None, np.zeros(n, np.int8),
                      np.zeros(n, np.int8), card, permutations, fdr)
    w = WSP(adjacency.tocsr()).to_W(silence_warnings=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        g = G_Local(y, w, transform="B", permutations=0, star=True)
    z = np.nan_to_num(np.asarray(g.Zs, float))
    # A cell with no neighbour but itself has no local test to speak of.
    p_norm = np.where(card <= 1, 1.0, 2.0 * stats.norm.sf(np.abs(z)))
    p_sim = (np.where(card <= 1, 1.0, permutation_p(y, adjacency, card, permutations, seed))
             if permutations > 0 else None)
    p = p_norm if p_sim is None else p_sim
    return GiStar(z, p, p_norm, p_sim, confidence_bins(z, p, fdr=fdr),
                  confidence_bins(z, p, fdr=False), card, permutations, fdr)


def permutation_p(y: np.ndarray, adjacency: sparse.csr_matrix, card: np.ndarray, permutations: int,
                  seed: int) -> np.ndarray:
    """Return two-sided p-values of each neighbourhood sum (cell included) under total randomisation."""
    # Gi* asks whether a cell *and* its neighbours together hold unusually high values, so the null
    # shuffles every value, the cell's own included. (Conditional randomisation, esda's default,
    # holds the cell's own value fixed: a single very busy cell among ordinary neighbours then never
    # tests significant, and the star in Gi* stops mattering.) Each replicate draws the largest
    # neighbourhood's worth of distinct cells at random; its running sums are draws for every smaller
    # cardinality at once, so cells of equal cardinality share one sorted null distribution. Ties with
    # the observed sum count on both sides.
    observed = adjacency @ y
    rng = np.random.default_rng(seed)
    draws = _distinct_draws(rng, len(y), int(card.max()), permutations)
    sums = np.cumsum(y[draws], axis=1)
    p = np.ones(len(y))
    for c in np.unique(card.astype(int)):
        null = np.sort(sums[:, c - 1])
        cells = np.flatnonzero(card == c)
        obs = observed[cells]
        above = permutations - np.searchsorted(null, obs - 1e-9, side="left")
        below = np.searchsorted(null, obs + 1e-9, side="right")
        p[cells] = np.minimum(1.0, 2.0 * (np.minimum(above, below) + 1.0) / (permutations + 1.0))
    return p


def _distinct_draws(rng: np.random.Generator, n: int, k: int, rows: int) -> np.ndarray:
    """`rows` random ordered samples of k distinct indices out of n."""
    if k * k < n:
        # Few cells out of many: draw with replacement and redraw the rare rows with a repeat.
        out, need = [], rows
        while need:
            idx = rng.integers(0, n, size=(need, k))
            ordered = np.sort(idx, axis=1)
            ok = (np.diff(ordered, axis=1) != 0).all(axis=1)
            out.append(idx[ok])
            need -= int(ok.sum())
        return np.concatenate(out)
    out = []
    for done in range(0, rows, 1000):
        keys = rng.random((min(1000, rows - done), n))
        # The k smallest of iid keys, ordered by key: a uniformly random ordered sample.
        part = np.argpartition(keys, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (len(keys), 1))
        order = np.argsort(np.take_along_axis(keys, part, axis=1), axis=1)
        out.append(np.take_along_axis(part, order, axis=1))
    return np.concatenate(out)


def check_size(value, audience: Audience = SYSTEM, field: str = "size",
               default: float = DEFAULT_HEX_M) -> float:
    """Parse a hexagon edge length in metres; an audience that sees sensitive incidents
    generalised has a higher floor (geo.policy), so no hexagon isolates one."""
    if value is None or value == "":
        return default
    try:
        size = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(field, f"{field} must be a number of metres; got {value!r}") from None
    lo, hi = HEX_RANGE_M
    floor = max(lo, audience.min_hex_m or lo)
    if not (math.isfinite(size) and floor <= size <= hi):
        why = "" if floor == lo else f" for the {audience.role} role (sensitive incidents are generalised)"
        raise InvalidInput(field, f"{field} must be between {floor:g} and {hi:g} metres{why}; "
                                  f"got {value!r}")
    return size


def check_band(value, minimum: float) -> float | None:
    """Parse an optional distance band in metres (at least `minimum`)."""
    if value is None or value == "":
        return None
    try:
        band = float(value)
    except (TypeError, ValueError):
        raise InvalidInput("band", f"band must be a number of metres; got {value!r}") from None
    if not (math.isfinite(band) and minimum <= band <= 50_000):
        raise InvalidInput("band", f"band must be between {minimum:.0f} and 50000 metres; got {value!r}")
    return band


def check_permutations(value, default: int = PERMUTATIONS) -> int:
    """Parse a permutation count from the allowed set."""
    if value is None or value == "":
        return default
    allowed = (99, 199, 499, 999, 4999, 9999, 99999)
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = -1
    if n not in allowed:
        raise InvalidInput("permutations", f"permutations must be one of {allowed}; got {value!r}")
    return n


def check_inference(value, default: str = DEFAULT_INFERENCE) -> str:
    """Parse the inference of the p-values: 'normal' (of the z-score) or 'permutation'."""
    if value is None or value == "":
        return default
    if value not in INFERENCES:
        raise InvalidInput("inference", f"inference must be one of {', '.join(INFERENCES)}; got {value!r}")
    return str(value)


def bin_label(bin_value: int) -> str:
    """'hot_99', 'cold_90', … or 'none' for a confidence bin."""
    if bin_value == 0:
        return "none"
    kind = "hot" if bin_value > 0 else "cold"
    return f"{kind}_{ {1: 90, 2: 95, 3: 99}[abs(int(bin_value))] }"


def _summary(bins: np.ndarray) -> dict:
    return {bin_label(b): int((bins == b).sum()) for b in (3, 2, 1, -1, -2, -3)}


def default_band(grid: HexGrid, rings: int = 2) -> float:
    """Return the band reaching `rings` rings of neighbouring hexagons (two rings = 18 + the cell)."""
    # Hot spot maps use two rings (≈ 1.7 km with 500 m hexagons): a cluster is the cell and its
    # surroundings, so a lone busy cell among ordinary ones is not one. Emerging hot spots use one
    # ring (≈ 870 m), the scale of the markets, stations and villages whose trend they follow.
    return rings * grid.spacing_m * 1.001


@dataclass
class Study:
    """The study region of a hot spot analysis: the area, its metric plane and the hexagons over it."""

    area: str
    plane: Plane
    area_m: object
    grid: HexGrid
    q: np.ndarray
    r: np.ndarray
    xy: np.ndarray


def study(session: Session, sel: selection.Selection, size_m: float) -> Study:
    """Set up the hexagons over the selection's area on its metric plane."""
    if not sel.area:
        raise InvalidInput("area", "area is required (an area code, e.g. 411103)")
    geom = selection.area_geometry(session, sel.area)
    plane = Plane.for_bounds(*geom.bounds)
    area_m = plane.to_metric(geom)
    grid = HexGrid(size_m, plane)
    q, r = grid.covering(area_m)
    cx, cy = grid.centre(q, r)
    return Study(sel.area, plane, area_m, grid, q, r, np.column_stack([cx, cy]))


def hexagons(session: Session, sel: selection.Selection, *, size_m: float = DEFAULT_HEX_M,
             band_m: float | None = None, inference: str = DEFAULT_INFERENCE,
             permutations: int = PERMUTATIONS, fdr: bool = True, seed: int = SEED) -> dict:
    """Gi* hot and cold spots on a hexagonal grid over the area, as a GeoJSON FeatureCollection.

    `permutations` only applies with `inference="permutation"`."""
    st = study(session, sel, size_m)
    pts = selection.points(session, sel)
    x, y = st.plane.xy(pts.lon, pts.lat)
    counts = count(st.grid, x, y, st.q, st.r)
    band = band_m or default_band(st.grid)
    adjacency = distance_band(st.xy, band)
    result = gi_star(counts, adjacency, fdr=fdr, seed=seed,
                     permutations=permutations if inference == "permutation" else 0)
    band_counts = adjacency @ counts
    geoms = st.grid.to_geojson_geometry(st.q, st.r)
    ids = HexGrid.cell_id(st.q, st.r)
    features = [{"type": "Feature", "id": ids[k], "geometry": geoms[k], "properties": {
        "id": ids[k], "count": int(counts[k]), "band_count": int(band_counts[k]),
        "z": round(float(result.z[k]), 3), **_p_values(result, k), "bin": int(result.bins[k]),
        "class": bin_label(result.bins[k]), "neighbours": int(result.neighbours[k])}}
        for k in range(len(ids))]
    return {"type": "FeatureCollection", "features": features,
            "analysis": _analysis(sel, st.plane, band, result, len(pts), cells=len(ids),
                                  cell=f"hexagon, edge {size_m:g} m")}


def _p_values(result: GiStar, k: int) -> dict:
    """The p-value the bin was decided on, and each p-value computed (p_norm, p_sim)."""
    out = {"p": round(float(result.p[k]), 5), "p_norm": round(float(result.p_norm[k]), 5)}
    if result.p_sim is not None:
        out["p_sim"] = round(float(result.p_sim[k]), 5)
    return out


def _analysis(sel, plane: Plane, band: float, result: GiStar, incidents: int, **extra) -> dict:
    return {"method": "Getis-Ord Gi*", "star": True, "weights": "binary distance band",
            "band_m": round(band, 1), "crs": f"EPSG:{plane.epsg}",
            "inference": "normal" if result.p_sim is None else "permutation",
            "permutations": result.permutations, "fdr": result.fdr, "incidents": incidents, "selection": sel.describe(),
            "summary": _summary(result.bins), "summary_uncorrected": _summary(result.bins_uncorrected),
            **extra}


def grids(session: Session, sel: selection.Selection, *, band_m: float | None = None,
          inference: str = DEFAULT_INFERENCE, permutations: int = PERMUTATIONS, fdr: bool = True,
          seed: int = SEED) -> dict:
    """Gi* hot and cold spots on the governance grids (网格) of the area."""
    if not sel.area:
        raise InvalidInput("area", "area is required (an area code, e.g. 411103)")
    root = areas.area_row(session, sel.area)
    rows = session.execute(text("""
        SELECT g.id, g.code, g.name, ST_X(ST_PointOnSurface(g.geom)), ST_Y(ST_PointOnSurface(g.geom)),
               ST_AsGeoJSON(g.geom, 6)
          FROM areas g WHERE g.level = 4 AND g.path <@ CAST(:p AS ltree) ORDER BY g.code"""),
        {"p": root["path"]}).all()
    if len(rows) < 3:
        raise InvalidInput("area", f"area {sel.area} has {len(rows)} grid(s); Gi* needs at least 3")
    counts = _grid_counts(session, sel, [r[0] for r in rows])
    plane = Plane.for_bounds(min(r[3] for r in rows), min(r[4] for r in rows),
                             max(r[3] for r in rows), max(r[4] for r in rows))
    x, y = plane.xy([r[3] for r in rows], [r[4] for r in rows])
    xy = np.column_stack([x, y])
    # Esri's default for polygons: the smallest band that gives every grid at least one neighbour.
    nearest = cKDTree(xy).query(xy, k=2)[0][:, 1]
    band = band_m or float(nearest.max()) * 1.001
    result = gi_star(counts, distance_band(xy, band), fdr=fdr, seed=seed,
                     permutations=permutations if inference == "permutation" else 0)
    features = [{"type": "Feature", "id": r[1], "geometry": json.loads(r[5]), "properties": {
        "code": r[1], "name": r[2], "count": int(counts[k]), "z": round(float(result.z[k]), 3),
        **_p_values(result, k), "bin": int(result.bins[k]),
        "class": bin_label(result.bins[k]), "neighbours": int(result.neighbours[k])}}
        for k, r in enumerate(rows)]
    return {"type": "FeatureCollection", "features": features,
            "analysis": _analysis(sel, plane, band, result, int(counts.sum()), cells=len(rows),
                                  cell="governance grid (网格)")}


def _grid_counts(session: Session, sel: selection.Selection, grid_ids: list[int]) -> np.ndarray:
    """Selected incidents per grid, each counted once in the grid containing it (lowest id on an edge)."""
    relation, cond, params = selection.query(sel, session)
    rows = session.execute(text(f"""
        SELECT gid, count(*) FROM (
            SELECT DISTINCT ON (i.id) g.id AS gid
              FROM {relation} JOIN areas g ON g.level = 4 AND ST_Intersects(g.geom, i.geom)
             WHERE {cond} AND g.id = ANY(:gids)
             ORDER BY i.id, g.id) s GROUP BY gid"""), {**params, "gids": grid_ids}).all()
    by_id: dict[int, int] = dict(rows)
    return np.array([by_id.get(g, 0) for g in grid_ids], float)


# -- emerging hot spots ------------------------------------------------------------------------
PATTERNS = ("new", "consecutive", "intensifying", "persistent", "diminishing", "sporadic",
            "oscillating", "historical")


def mann_kendall(series) -> tuple[float, float, float]:
    """Mann-Kendall trend test with the tie correction: (tau, z, two-sided p)."""
    x = np.asarray(series, float)
    n = len(x)
    if n < 3:
        return 0.0, 0.0, 1.0
    diff = np.sign(x[None, :] - x[:, None])
    s = float(np.triu(diff, 1).sum())
    _, ties = np.unique(x, return_counts=True)
    var = (n * (n - 1) * (2 * n + 5) - float((ties * (ties - 1) * (2 * ties + 5)).sum())) / 18.0
    if var <= 0:
        return 0.0, 0.0, 1.0
    z = (s - np.sign(s)) / math.sqrt(var)
    tau = s / (n * (n - 1) / 2.0)
    return tau, z, float(2.0 * stats.norm.sf(abs(z)))


def classify(bins: np.ndarray, z: np.ndarray, *, trend_alpha: float = TREND_ALPHA) -> tuple[str, dict]:
    """Return Esri's pattern of one location ('new_hot', …, 'none') and its z-score trend."""
    tau, tz, tp = mann_kendall(z)
    trend = {"tau": round(tau, 3), "z": round(tz, 3), "p": round(tp, 4)}
    for sign, kind in ((1, "hot"), (-1, "cold")):
        label = _pattern(np.sign(bins) == sign, np.sign(bins) == -sign, sign * tau, tp, trend_alpha)
        if label:
            return f"{label}_{kind}", trend
    return "none", trend


def _pattern(this: np.ndarray, other: np.ndarray, rising: float, trend_p: float,
             alpha: float) -> str | None:
    """Name the pattern of one kind (hot, or cold with the trend's sign flipped) per Esri."""
    # Where two definitions overlap, the one about the final step wins: a location no longer hot is
    # historical even without a trend, and one that was significant in the other direction before is
    # oscillating rather than new or consecutive.
    n = len(this)
    if not this.any():
        return None
    final = bool(this[-1])
    if this.sum() / n >= PERSISTENCE:
        if not final:
            return "historical"
        if trend_p <= alpha:
            return "intensifying" if rising > 0 else "diminishing"
        return "persistent"
    if not final:
        return None
    run = n - 1 - int(np.flatnonzero(~this)[-1])
    before = (this | other)[: n - run]
    if not before.any():
        return "new" if run == 1 else "consecutive"
    return "oscillating" if other.any() else "sporadic"


def month_steps(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Local calendar months covering [start, end)."""
    steps = []
    cursor = start.astimezone(selection.TZ).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while cursor < end:
        nxt = selection.parse_month(f"{cursor.year + (cursor.month == 12)}-{cursor.month % 12 + 1:02d}")[0]
        steps.append((cursor, nxt))
        cursor = nxt
    return steps


def emerging(session: Session, sel: selection.Selection, *, size_m: float = DEFAULT_HEX_M,
             band_m: float | None = None, time_window: int = 1, permutations: int = 0,
             fdr: bool = True, trend_alpha: float = TREND_ALPHA, seed: int = SEED) -> dict:
    """Run the emerging hot spot analysis on hexagon × month bins over the area (GeoJSON)."""
    # The time range is the selection's, else the twelve months up to the latest incident's month.
    # As in Esri's tool, each bin's p-value comes from its z-score (`permutations=0`): thousands of
    # bins tested under FDR need finer p-values than a few hundred permutations can resolve.
    st = study(session, sel, size_m)
    since, until = sel.since, sel.until
    if until is None:
        latest = selection.latest(session, sel.audience)
        latest = (latest or datetime.now(selection.TZ)).astimezone(selection.TZ)
        until = selection.parse_month(f"{latest.year + (latest.month == 12)}-{latest.month % 12 + 1:02d}")[0]
    if since is None:
        since = selection.parse_month(f"{until.year - 1}-{until.month:02d}")[0]
    steps = month_steps(since, until)
    if len(steps) < 4:
        raise InvalidInput("since", f"emerging hot spots need at least 4 monthly steps; got {len(steps)}")
    full = selection.Selection(sel.area, sel.categories, steps[0][0], steps[-1][1], sel.audience)
    pts = selection.points(session, full)
    x, y = st.plane.xy(pts.lon, pts.lat)
    n, t_count = len(st.q), len(steps)
    cube = np.zeros((t_count, n))
    edges = np.array([s[0].timestamp() for s in steps] + [steps[-1][1].timestamp()])
    step_of = np.searchsorted(edges, pts.occurred, side="right") - 1
    for t in range(t_count):
        mask = step_of == t
        cube[t] = count(st.grid, x[mask], y[mask], st.q, st.r)
    band = band_m or default_band(st.grid, rings=1)
    spatial = distance_band(st.xy, band)
    # Space-time neighbours: the spatial band in this step and the `time_window` steps before it.
    temporal = sparse.csr_matrix(np.tril(np.triu(np.ones((t_count, t_count)), -time_window)))
    cube_w = sparse.kron(temporal, spatial, format="csr")
    result = gi_star(cube.ravel(), cube_w, permutations=permutations, fdr=False, seed=seed)
    z = result.z.reshape(t_count, n)
    p = result.p.reshape(t_count, n)
    bins = np.vstack([confidence_bins(z[t], p[t], fdr=fdr) for t in range(t_count)])
    geoms = st.grid.to_geojson_geometry(st.q, st.r)
    ids = HexGrid.cell_id(st.q, st.r)
    features: list[dict] = []
    tally: dict[str, int] = {}
    for k in range(n):
        label, trend = classify(bins[:, k], z[:, k], trend_alpha=trend_alpha)
        tally[label] = tally.get(label, 0) + 1
        # Like the space-time cube's own trend field: is the count itself rising or falling?
        tau, tz, tp = mann_kendall(cube[:, k])
        direction = "no_trend" if tp > trend_alpha else "increasing" if tau > 0 else "decreasing"
        features.append({"type": "Feature", "id": ids[k], "geometry": geoms[k], "properties": {
            "id": ids[k], "pattern": label, "trend": trend,
            "count_trend": {"direction": direction, "tau": round(tau, 3), "p": round(tp, 4)},
            "counts": cube[:, k].astype(int).tolist(), "bins": bins[:, k].astype(int).tolist(),
            "z": np.round(z[:, k], 2).tolist(), "total": int(cube[:, k].sum())}})
    return {"type": "FeatureCollection", "features": features, "analysis": {
        "method": "Emerging Hot Spot Analysis (Gi* per space-time bin + Mann-Kendall)",
        "steps": [s[0].strftime("%Y-%m") for s in steps], "band_m": round(band, 1),
        "time_window": time_window, "crs": f"EPSG:{st.plane.epsg}", "permutations": permutations,
        "fdr": fdr, "trend_alpha": trend_alpha, "cell": f"hexagon, edge {size_m:g} m",
        "incidents": len(pts), "selection": full.describe(), "patterns": tally}}
