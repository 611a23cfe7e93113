"""Kernel density of 1,000,000 incidents over 郾城区 (≈ 30 × 25 km, bandwidth 300 m, nodes every 75 m).

Measures layers.heat (project lon/lat to EPSG:4547, linear binning, Gaussian filter) and, on the
very same node grid, scipy's gaussian_kde fitted to a 2,000-point sample; gaussian_kde costs one
kernel per point per node, so its time is scaled to a million points (× 500). Its bandwidth factor
is set so its kernel covers the same area as ours (gaussian_kde's kernel follows the data's
covariance, so it cannot be made exactly isotropic). To show the fast path computes the textbook
estimate, its surface for a sample is also compared with the exact sum of isotropic Gaussians.

Usage: python bench/heat.py [--points N]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import gaussian_kde

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from layers import heat  # noqa: E402
from layers.metric import Plane  # noqa: E402

BANDWIDTH_M = 300.0
SAMPLE = 2000
CENTRE = (113.95, 33.64)


def incidents(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Town-and-country incidents: a dense town, a dozen hot places and a rural background (lon, lat)."""
    plane = Plane(4547)
    cx, cy = plane.xy(*CENTRE)
    town = int(0.45 * n)
    spots = int(0.15 * n)
    rural = n - town - spots
    x = np.concatenate([
        rng.normal(cx + 8000, 2500, town),
        rng.normal(cx + rng.uniform(-12000, 12000, 12).repeat(spots // 12 + 1)[:spots], 350),
        rng.uniform(cx - 15000, cx + 15000, rural)])
    y = np.concatenate([
        rng.normal(cy - 3500, 2000, town),
        rng.normal(cy + rng.uniform(-10000, 10000, 12).repeat(spots // 12 + 1)[:spots], 350),
        rng.uniform(cy - 12500, cy + 12500, rural)])
    return plane.lonlat(x, y)


def step(label: str) -> None:
    print(f"  … {label}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    args = ap.parse_args()
    rng = np.random.default_rng(411103)
    print(f"heat: Gaussian KDE of {args.points:,} incidents, bandwidth {BANDWIDTH_M:g} m")
    step("generating incidents")
    lon, lat = incidents(args.points, rng)
    plane = Plane.around(*CENTRE)
    x, y = plane.xy(lon, lat)
    extent = (x.min() - 900, y.min() - 900, x.max() + 900, y.max() + 900)

    step("layers.heat: project + bin + smooth (best of 3)")
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        px, py = plane.xy(lon, lat)
        surf = heat.kde(px, py, BANDWIDTH_M, extent=extent, plane=plane)
        runs.append(time.perf_counter() - t0)
    ours = min(runs)
    ny, nx = surf.shape
    print(f"     {ours:.3f} s for {nx} × {ny} = {nx * ny:,} nodes")

    step(f"scipy gaussian_kde on a {SAMPLE:,}-point sample, the same {nx * ny:,} nodes")
    pick = rng.choice(len(x), SAMPLE, replace=False)
    sample = np.vstack([x[pick], y[pick]])
    cov = np.cov(sample)
    factor = BANDWIDTH_M / np.linalg.det(cov) ** 0.25   # same kernel area as an isotropic h
    kde = gaussian_kde(sample, bw_method=factor)
    xs, ys = surf.node_xy()
    gx, gy = np.meshgrid(xs, ys)
    t0 = time.perf_counter()
    kde(np.vstack([gx.ravel(), gy.ravel()]))
    scipy_sample = time.perf_counter() - t0
    scipy_full = scipy_sample * len(x) / SAMPLE
    print(f"     {scipy_sample:.2f} s for the sample → {scipy_full:,.0f} s scaled to {len(x):,} points")

    step("accuracy: binned KDE against the exact sum of Gaussians (sample, every 9th node)")
    small = heat.kde(x[pick], y[pick], BANDWIDTH_M, extent=extent, plane=plane)
    sx, sy = gx[::9, ::9].ravel(), gy[::9, ::9].ravel()
    exact = np.zeros(len(sx))
    for chunk in np.array_split(np.arange(len(sx)), 40):
        d2 = (sx[chunk, None] - x[pick][None, :]) ** 2 + (sy[chunk, None] - y[pick][None, :]) ** 2
        exact[chunk] = np.exp(-d2 / (2 * BANDWIDTH_M ** 2)).sum(axis=1) / (2 * np.pi * BANDWIDTH_M ** 2) * 1e6
    error = np.abs(small.density[::9, ::9].ravel() - exact).max() / exact.max()

    ratio = scipy_full / ours
    print("")
    print("summary")
    print(f"  layers.heat, {len(x):,} incidents     {ours:8.3f} s")
    print(f"  scipy gaussian_kde, scaled        {scipy_full:8.0f} s")
    print(f"  speed-up                          {ratio:8,.0f} ×")
    print(f"  max error vs exact sum            {100 * error:8.3f} % of the peak")


if __name__ == "__main__":
    main()
