"""Gi* hot spots with planted patterns, FDR, metric distance bands, Mann-Kendall and Esri's emerging
hot spot patterns — and the demo's planted emerging and fading hot spots labelled as such."""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
import shapely
from esda import fdr as esda_fdr
from pyproj import Geod
from scipy import stats

from geo.errors import InvalidInput
from layers import hotspots
from layers.hexgrid import HexGrid, count
from layers.metric import Plane
from layers.selection import TZ, Selection
from tests.layers.incidents import add_incident

SQUARE = shapely.box(500_000, 3_700_000, 520_000, 3_720_000)  # 20 km × 20 km, metric


def field(rng, *, background: int, cluster: int = 0, centre=(510_000, 3_710_000), spread=500.0,
          size=500.0):
    """Hexagon counts of uniform noise plus an optional Gaussian cluster."""
    grid = HexGrid(size, Plane(4547))
    q, r = grid.covering(SQUARE)
    x = rng.uniform(500_000, 520_000, background)
    y = rng.uniform(3_700_000, 3_720_000, background)
    if cluster:
        x = np.r_[x, rng.normal(centre[0], spread, cluster)]
        y = np.r_[y, rng.normal(centre[1], spread, cluster)]
    cx, cy = grid.centre(q, r)
    return grid, np.column_stack([cx, cy]), count(grid, x, y, q, r)


def test_a_planted_cluster_comes_out_hot_at_99_percent():
    rng = np.random.default_rng(7)
    grid, xy, counts = field(rng, background=4000, cluster=250)
    result = hotspots.gi_star(counts, hotspots.distance_band(xy, 2 * grid.spacing_m * 1.001),
                              permutations=9999, seed=1)
    centre = np.argmin(np.hypot(xy[:, 0] - 510_000, xy[:, 1] - 3_710_000))
    assert result.bins[centre] == 3 and result.z[centre] > 3
    near = np.hypot(xy[:, 0] - 510_000, xy[:, 1] - 3_710_000) < 1000
    assert (result.bins[near] == 3).all()
    far = np.hypot(xy[:, 0] - 510_000, xy[:, 1] - 3_710_000) > 4000
    assert not (result.bins[far] > 0).any()      # nothing hot far from the cluster


def test_a_planted_hole_comes_out_cold_with_a_negative_sign():
    rng = np.random.default_rng(11)
    grid, xy, counts = field(rng, background=12000)
    hole = np.hypot(xy[:, 0] - 505_000, xy[:, 1] - 3_705_000) < 2200
    counts[hole] = 0
    result = hotspots.gi_star(counts, hotspots.distance_band(xy, 2 * grid.spacing_m * 1.001),
                              permutations=9999, seed=2)
    centre = np.argmin(np.hypot(xy[:, 0] - 505_000, xy[:, 1] - 3_705_000))
    assert result.z[centre] < -3 and result.bins[centre] == -3
    assert not (result.bins[hole] > 0).any()


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_uniform_noise_yields_no_fdr_significant_cell(seed):
    rng = np.random.default_rng(seed)
    grid, xy, counts = field(rng, background=4000)
    result = hotspots.gi_star(counts, hotspots.distance_band(xy, grid.spacing_m * 1.001),
                              permutations=9999, seed=seed)
    # Without the correction, about one cell in ten is "significant" at 90 % by chance…
    assert (result.bins_uncorrected != 0).sum() > 0.03 * len(counts)
    # …and after the false discovery rate correction none is.
    assert (result.bins == 0).all()


def test_benjamini_hochberg_agrees_with_esda():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(0, 1, 400), rng.uniform(0, 0.001, 40)])
    for alpha in (0.01, 0.05, 0.1):
        ours = hotspots.benjamini_hochberg(p, alpha)
        assert ours.any() and (ours == (p <= esda_fdr(p, alpha))).all()
    assert not hotspots.benjamini_hochberg(rng.uniform(0.2, 1, 100), 0.1).any()


@pytest.mark.parametrize("lon, lat", [(10.0, 10.0), (114.0, 33.6), (25.0, 60.0)])
def test_the_distance_band_is_metric_at_any_latitude(lon, lat):
    """Neighbours within a band in metres are the same everywhere; in degrees they would not be.

    At 60°N a degree of longitude is half a degree of latitude: a band applied to lon/lat would
    pick up twice as many neighbours east–west as north–south.
    """
    plane = Plane.around(lon, lat)
    grid = HexGrid(500.0, plane)
    cx, cy = plane.xy(lon, lat)
    area = shapely.Point(float(cx), float(cy)).buffer(5000)
    q, r = grid.covering(area)
    hx, hy = grid.centre(q, r)
    xy = np.column_stack([hx, hy])
    adjacency = hotspots.distance_band(xy, 2 * grid.spacing_m * 1.001)
    inner = np.hypot(hx - cx, hy - cy) < 2500
    assert set(np.asarray(adjacency.sum(axis=1)).ravel()[inner]) == {19}   # two rings + itself
    # The neighbours are the geodesically nearest cells: measured on the ellipsoid, in metres.
    hlon, hlat = plane.lonlat(hx, hy)
    i = int(np.flatnonzero(inner)[0])
    neighbours = adjacency[i].indices
    geod = Geod(ellps="WGS84")
    _, _, metres = geod.inv(np.full(len(hlon), hlon[i]), np.full(len(hlat), hlat[i]), hlon, hlat)
    assert metres[neighbours].max() == pytest.approx(2 * grid.spacing_m, rel=0.005)
    assert np.sort(metres)[len(neighbours)] > 2 * grid.spacing_m * 1.05
    # A band applied to degrees would have been lopsided wherever lon and lat degrees differ.
    deg = np.column_stack([hlon, hlat])
    band_deg = np.hypot(*(deg[neighbours] - deg[i]).T).max()
    in_deg = hotspots.distance_band(deg, band_deg * 1.001)[i].indices
    if lat >= 45:
        assert set(in_deg) != set(neighbours)


def test_hexagon_hot_spots_on_a_region_report_a_metric_band(session, tiny):
    for k in range(60):
        add_incident(session, 10.004 + (k % 6) * 0.0002, 10.004 + (k // 6) * 0.0002,
                     occurred_at=datetime(2026, 5, 1, tzinfo=TZ))
    for k in range(40):
        add_incident(session, 10.0 + (k % 8) * 0.005, 10.0 + (k // 8) * 0.008,
                     occurred_at=datetime(2026, 5, 2, tzinfo=TZ))
    fc = hotspots.hexagons(session, Selection("TZ"), size_m=300.0, inference="permutation",
                           permutations=999)
    a = fc["analysis"]
    assert a["crs"] == "EPSG:32632" and a["band_m"] == pytest.approx(2 * 300 * 3 ** 0.5, rel=0.01)
    assert a["incidents"] == 100 and a["star"] and a["fdr"] and a["inference"] == "permutation"
    assert sum(f["properties"]["count"] for f in fc["features"]) == 100
    hottest = max(fc["features"], key=lambda f: f["properties"]["z"])
    ring = hottest["geometry"]["coordinates"][0]
    assert 10.0 < ring[0][0] < 10.04 and 10.0 < ring[0][1] < 10.04       # lon, lat order
    assert shapely.geometry.shape(hottest["geometry"]).distance(shapely.Point(10.0045, 10.0049)) < 0.004
    grids = hotspots.grids(session, Selection("TZ"))
    assert len(grids["features"]) == 8 and grids["analysis"]["band_m"] > 1000
    assert grids["analysis"]["inference"] == "normal" and "p_sim" not in grids["features"][0]["properties"]
    assert sum(f["properties"]["count"] for f in grids["features"]) == 100


def test_normal_p_values_are_those_of_the_z_score_as_pysal_reports_them():
    # A skewed field: one very busy neighbourhood among sparse counts. PySAL's p_norm is the
    # one-sided normal tail of |z|; Esri's and ours are two-sided, twice that.
    rng = np.random.default_rng(3)
    grid, xy, counts = field(rng, background=600, cluster=400, spread=300)
    adjacency = hotspots.distance_band(xy, 2 * grid.spacing_m * 1.001)
    result = hotspots.gi_star(counts, adjacency, permutations=0)
    assert result.p_sim is None and (result.p == result.p_norm).all()
    from esda.getisord import G_Local
    from libpysal.weights import WSP
    g = G_Local(counts, WSP(adjacency).to_W(silence_warnings=True), transform="B", permutations=0, star=True)
    busy = result.neighbours > 1
    assert np.allclose(result.z, g.Zs) and np.allclose(result.p_norm[busy], 2 * g.p_norm[busy])
    # Known values of the normal distribution: |z| = 1.645, 1.96, 2.576 are p = 0.10, 0.05, 0.01.
    assert hotspots.confidence_bins(np.array([1.7, -2.0, 2.6, 1.5]),
                                    2 * stats.norm.sf([1.7, 2.0, 2.6, 1.5]), fdr=False).tolist() == [1, -2, 3, 0]
    # z far above 3 is 99 % by the normal p-value, after FDR too.
    top = np.argmax(result.z)
    assert result.z[top] > 5 and result.bins[top] == 3
    both = hotspots.gi_star(counts, adjacency, permutations=999, seed=4)
    assert both.p_sim is not None and (both.p == both.p_sim).all()
    assert np.allclose(both.p_norm, result.p_norm) and both.p_sim[top] >= 1 / 1000


def test_inference_is_normal_or_permutation():
    assert hotspots.check_inference(None) == "normal"
    assert hotspots.check_inference("permutation") == "permutation"
    with pytest.raises(InvalidInput, match="inference"):
        hotspots.check_inference("bootstrap")


def test_bad_parameters_name_their_field():
    for value in ("x", "-5", "0", "99999"):
        with pytest.raises(InvalidInput) as exc:
            hotspots.check_size(value)
        assert exc.value.field == "size"
    with pytest.raises(InvalidInput, match="permutations"):
        hotspots.check_permutations("1000")
    with pytest.raises(InvalidInput, match="band"):
        hotspots.check_band("nan", 100)


def test_mann_kendall_matches_kendalls_tau_without_ties():
    rng = np.random.default_rng(5)
    x = np.cumsum(rng.normal(0.3, 1, 15))
    tau, z, p = hotspots.mann_kendall(x)
    expected = stats.kendalltau(np.arange(15), x)
    assert tau == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue, abs=0.02)   # normal approximation with continuity
    assert hotspots.mann_kendall([3, 3, 3, 3, 3])[2] == 1.0
    assert hotspots.mann_kendall(range(12))[0] == 1.0


H, C, N = 3, -3, 0
CASES = {
    "new_hot": [N] * 11 + [H],
    "consecutive_hot": [N] * 8 + [H] * 4,
    "intensifying_hot": [H] * 12,
    "persistent_hot": [H] * 12,
    "diminishing_hot": [H] * 12,
    "sporadic_hot": [N, H, N, N, H, N, N, H, N, N, N, H],
    "oscillating_hot": [C, C, N, N, N, N, H, N, N, N, N, H],
    "historical_hot": [H] * 11 + [N],
    "new_cold": [N] * 11 + [C],
    "persistent_cold": [C] * 12,
    "none": [N] * 12,
}
Z = {"intensifying_hot": np.linspace(2, 6, 12), "diminishing_hot": np.linspace(6, 2, 12),
     "persistent_hot": np.array([4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5], float),
     "persistent_cold": -np.array([4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5], float)}


@pytest.mark.parametrize("expected", sorted(CASES))
def test_esri_emerging_patterns(expected):
    bins = np.array(CASES[expected])
    z = Z.get(expected, bins * 1.0 + np.linspace(0, 0.1, 12))
    label, trend = hotspots.classify(bins, z)
    assert label == expected, (label, trend)


def test_a_location_significant_before_is_not_new():
    # Cold before, hot now: oscillating (Esri), not new.
    assert hotspots.classify(np.array([C] + [N] * 10 + [H]), np.zeros(12))[0] == "oscillating_hot"
    # Hot once before the final run: sporadic, not consecutive.
    assert hotspots.classify(np.array([H] + [N] * 8 + [H] * 3), np.zeros(12))[0] == "sporadic_hot"


def _labels_near(fc, lon, lat, radius_m):
    plane = Plane.around(lon, lat)
    x0, y0 = plane.xy(lon, lat)
    out = []
    for f in fc["features"]:
        c = shapely.geometry.shape(f["geometry"]).centroid
        x, y = plane.xy(c.x, c.y)
        if np.hypot(x - x0, y - y0) <= radius_m:
            out.append(f["properties"])
    return out


def test_the_demo_hot_spots_get_their_labels(session, demo):
    fc = hotspots.emerging(session, Selection("411103"))
    assert fc["analysis"]["steps"][0] == "2025-11" and fc["analysis"]["steps"][-1] == "2026-10"
    assert fc["analysis"]["crs"] == "EPSG:4547"
    for spot in demo.hotspots:
        cells = _labels_near(fc, spot["lon"], spot["lat"], 500)
        assert cells, spot["name"]
        core = max(cells, key=lambda p: p["total"])
        why = (spot["name"], spot["kind"], core["pattern"], core["bins"], core["counts"])
        if spot["kind"] == "persistent":
            assert core["pattern"] in ("persistent_hot", "intensifying_hot"), why
        elif spot["kind"] == "emerging":
            assert core["pattern"] in ("new_hot", "consecutive_hot", "intensifying_hot"), why
            assert core["count_trend"]["direction"] == "increasing", why
        else:
            # Esri's "diminishing hot spot": hot in 90 % of the steps including the last, with a
            # significant downward trend of its intensity.
            assert core["pattern"] == "diminishing_hot", why
            assert core["count_trend"]["direction"] == "decreasing" and core["trend"]["tau"] < 0, why


def test_the_demo_persistent_hot_spots_are_hot(session, demo):
    year = Selection("411103", (), datetime(2025, 11, 1, tzinfo=TZ), datetime(2026, 11, 1, tzinfo=TZ))
    fc = hotspots.hexagons(session, year)
    assert fc["analysis"]["inference"] == "normal" and fc["analysis"]["crs"] == "EPSG:4547"
    # Normal p-values: a z-score far out in the tail is 99 % whatever the skew of the counts.
    assert all(abs(f["properties"]["bin"]) == 3 for f in fc["features"] if abs(f["properties"]["z"]) >= 5)
    best = {s["name"]: max(p["bin"] for p in _labels_near(fc, s["lon"], s["lat"], 900))
            for s in demo.hotspots if s["kind"] == "persistent"}
    assert min(best.values()) >= 1, best                   # every one hot after FDR
    assert max(best.values()) == 3, best                   # the busiest at 99 %


def test_permutation_p_values_are_exact_and_uniform_under_the_null():
    # Six values, neighbourhoods of two: the exact null is every pair of distinct cells.
    y = np.array([0.0, 1, 2, 3, 4, 10])
    adjacency = hotspots.sparse.csr_matrix(np.eye(6) + np.eye(6, k=1) + np.eye(6, k=-1) * 0)
    card = np.asarray(adjacency.sum(axis=1)).ravel()
    p = hotspots.permutation_p(y, adjacency, card, 99_999, seed=3)
    pairs = np.array([a + b for i, a in enumerate(y) for j, b in enumerate(y) if i != j])
    observed = y[4] + y[5]
    exact = 2 * min((pairs >= observed).mean(), (pairs <= observed).mean())
    assert p[4] == pytest.approx(exact, abs=0.01)
    # Random values on a random graph: p ≤ α about α of the time.
    rng = np.random.default_rng(9)
    y = rng.poisson(3, 400).astype(float)
    xy = rng.uniform(0, 10_000, (400, 2))
    adjacency = hotspots.distance_band(xy, 900)
    card = np.asarray(adjacency.sum(axis=1)).ravel()
    p = hotspots.permutation_p(y, adjacency, card, 9999, seed=4)
    assert 0.05 < (p <= 0.1).mean() < 0.15
