"""Kernel density in metres: the binned estimate equals the sum of Gaussians, bandwidth means
metres at any latitude, filters work, and the browser gets leaflet.heat points and a PNG overlay."""
from __future__ import annotations

import base64
import struct
import zlib
from datetime import datetime

import numpy as np
import pytest

from geo.errors import InvalidInput, NotFound
from layers import heat
from layers.metric import Plane
from layers.selection import SYSTEM, TZ, Selection, parse
from tests.layers.incidents import add_incident


def exact_density(x, y, gx, gy, h):
    """The textbook estimate: one Gaussian per point, summed at each grid node (per km²)."""
    d2 = (gx[:, None] - x[None, :]) ** 2 + (gy[:, None] - y[None, :]) ** 2
    return np.exp(-d2 / (2 * h * h)).sum(axis=1) / (2 * np.pi * h * h) * 1e6


def test_binned_kde_matches_the_sum_of_gaussians():
    rng = np.random.default_rng(1)
    x = np.r_[rng.normal(0, 900, 3000), rng.normal(2500, 250, 800)]
    y = np.r_[rng.normal(0, 400, 3000), rng.normal(-1000, 250, 800)]
    surf = heat.kde(x, y, 200.0)
    xs, ys = surf.node_xy()
    gx, gy = np.meshgrid(xs[::5], ys[::5])
    exact = exact_density(x, y, gx.ravel(), gy.ravel(), 200.0)
    assert np.abs(surf.density[::5, ::5].ravel() - exact).max() < 0.01 * exact.max()
    # The surface integrates to the number of points (incidents per km² × km²).
    assert surf.density.sum() * (surf.cell_m / 1000) ** 2 == pytest.approx(len(x), rel=1e-3)


@pytest.mark.parametrize("lat", [10.0, 33.6, 60.0])
def test_the_bandwidth_is_metres_at_any_latitude(lat):
    """The same cluster in metres gives the same peak density at 10°, 33.6° and 60° north."""
    rng = np.random.default_rng(2)
    plane = Plane.around(114.0 if lat == 33.6 else 25.0, lat)
    cx, cy = plane.xy(114.0 if lat == 33.6 else 25.0, lat)
    lon, la = plane.lonlat(cx + rng.normal(0, 300, 2000), cy + rng.normal(0, 300, 2000))
    x, y = plane.xy(lon, la)
    surf = heat.kde(x, y, 250.0, plane=plane)
    # A 2-D Gaussian cluster (σ = 300 m) smoothed by h = 250 m peaks at n / (2π(σ² + h²)).
    expected = 2000 / (2 * np.pi * (300 ** 2 + 250 ** 2)) * 1e6
    assert surf.density.max() == pytest.approx(expected, rel=0.08)


def test_filters_by_category_time_and_area(session, tiny):
    may, june = datetime(2026, 5, 10, tzinfo=TZ), datetime(2026, 6, 10, tzinfo=TZ)
    for k in range(10):
        add_incident(session, 10.005, 10.005 + k * 0.0001, category="dispute", occurred_at=may)
    for _ in range(6):
        add_incident(session, 10.025, 10.03, category="criminal", occurred_at=june)
    add_incident(session, 10.5, 10.5, category="criminal", occurred_at=june)      # outside TZ
    everything = heat.surface(session, Selection("TZ"), 200.0)
    assert everything.n == 16
    assert heat.surface(session, parse(session, {"area": "TZ", "category": "criminal"}, SYSTEM), 200.0).n == 6
    assert heat.surface(session, parse(session, {"area": "TZ", "since": "2026-06-01"}, SYSTEM), 200.0).n == 6
    assert heat.surface(session, parse(session, {"area": "TZ", "until": "2026-05-31"}, SYSTEM), 200.0).n == 10
    assert heat.surface(session, parse(session, {"area": "TZ1A"}, SYSTEM), 200.0).n == 10
    assert heat.surface(session, parse(session, {"area": "TZ2B", "category": "dispute"}, SYSTEM), 200.0).n == 0
    assert everything.plane.epsg == 32632   # UTM 32N for 10°E, not the Chinese zone


def test_leaflet_heat_points_and_png_overlay(session, tiny):
    june = datetime(2026, 6, 10, tzinfo=TZ)
    for k in range(30):
        add_incident(session, 10.03 + (k % 5) * 0.0003, 10.01 + (k // 5) * 0.0003, occurred_at=june)
    surf = heat.surface(session, Selection("TZ"), 300.0)
    hp = heat.heat_points(surf)
    pts = np.array(hp["points"])
    assert hp["n"] == 30 and pts[:, 2].max() == 1.0 and (pts[:, 2] > 0).all()
    peak = pts[np.argmax(pts[:, 2])]
    assert peak[0] == pytest.approx(10.011, abs=0.002) and peak[1] == pytest.approx(10.031, abs=0.002)  # lat, lon
    ov = heat.overlay(surf)
    (south, west), (north, east) = ov["bounds"]
    assert west < 10.0 < 10.04 < east and south < 10.0 < 10.04 < north
    png = base64.b64decode(ov["image"].split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (ov["width"], ov["height"])
    rgba = _decode(png, width, height)
    j, i = np.unravel_index(np.argmax(rgba[:, :, 3]), rgba.shape[:2])
    lon = west + (i + 0.5) / width * (east - west)
    assert lon == pytest.approx(10.031, abs=0.003)
    assert rgba[0, 0, 3] == 0          # empty corners stay transparent
    # Visible: the ramp is stretched, so much of the covered surface is clearly tinted, not just the peak.
    covered = rgba[:, :, 3] > 0
    assert ov["ramp_top_density"] <= ov["max_density"]
    assert (rgba[:, :, 3][covered] >= 120).mean() > 0.25


def _decode(png: bytes, width: int, height: int) -> np.ndarray:
    """Undo encode_png (filter type 0 on every row)."""
    pos, data = 8, b""
    while pos < len(png):
        length = struct.unpack(">I", png[pos:pos + 4])[0]
        kind = png[pos + 4:pos + 8]
        if kind == b"IDAT":
            data += png[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = np.frombuffer(zlib.decompress(data), np.uint8).reshape(height, 1 + width * 4)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(height, width, 4)


@pytest.mark.parametrize("value", ["abc", "0", "-300", "1e9", "nan"])
def test_a_bad_bandwidth_names_the_field(value):
    with pytest.raises(InvalidInput) as exc:
        heat.check_bandwidth(value)
    assert exc.value.field == "bandwidth" and "metres" in exc.value.message


@pytest.mark.parametrize("args, field", [({"category": "fire"}, "category"), ({"since": "yesterday"}, "since"),
                                         ({"since": "2026-06-02", "until": "2026-06-01"}, "until")])
def test_bad_filters_name_the_field(session, tiny, args, field):
    with pytest.raises(InvalidInput) as exc:
        parse(session, {"area": "TZ", **args}, SYSTEM)
    assert exc.value.field == field


def test_an_unknown_area_is_not_found(session, tiny):
    with pytest.raises(NotFound):
        heat.surface(session, Selection("NOPE"))
