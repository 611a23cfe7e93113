"""GCJ-02 and BD-09 against published vectors (tests/data/realdata/coords), and the exact inverses."""
import json
import math

import pytest

from geo import crs


def metres(lon1, lat1, lon2, lat2):
    """Distance on a sphere; plenty for centimetre checks."""
    r = 6371008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


@pytest.fixture(scope="module")
def vectors(realdata):
    return json.loads((realdata / "coords" / "gcj02_bd09_vectors.json").read_text())


def test_forward_matches_published_wgs_to_gcj(vectors):
    for v in vectors["published_wgs_gcj"]:
        (wlat, wlon), (glat, glon) = v["wgs"], v["gcj"]
        lon, lat = crs.wgs84_to_gcj02(wlon, wlat)
        assert abs(lon - glon) <= 1e-9 and abs(lat - glat) <= 1e-9, v["src"]


def test_forward_matches_computed_vectors_in_yancheng(vectors):
    for v in vectors["computed"]:
        (wlat, wlon), (glat, glon), (blat, blon) = v["wgs"], v["gcj"], v["bd"]
        assert crs.wgs84_to_gcj02(wlon, wlat) == pytest.approx((glon, glat), abs=1e-9)
        assert crs.gcj02_to_bd09(glon, glat) == pytest.approx((blon, blat), abs=1e-9)


def test_gcj_to_bd_published_pair(vectors):
    v = vectors["published_gcj_bd"][0]
    (glat, glon), (blat, blon) = v["gcj"], v["bd_approx"]
    lon, lat = crs.gcj02_to_bd09(glon, glat)
    assert abs(lon - blon) < 1e-3 and abs(lat - blat) < 1e-3  # the source rounds to 3 decimals


def test_inverses_are_exact_to_a_centimetre(vectors):
    rows = vectors["published_wgs_gcj"] + vectors["computed"]
    for v in rows:
        (wlat, wlon), (glat, glon) = v["wgs"], v["gcj"]
        lon, lat = crs.gcj02_to_wgs84(glon, glat)
        assert metres(lon, lat, wlon, wlat) <= 0.01
    for v in vectors["computed"]:
        (wlat, wlon), (blat, blon) = v["wgs"], v["bd"]
        lon, lat = crs.bd09_to_wgs84(blon, blat)
        assert metres(lon, lat, wlon, wlat) <= 0.01


def test_offset_around_yancheng_is_hundreds_of_metres():
    lon, lat = crs.wgs84_to_gcj02(114.0063, 33.5873)
    assert 400 < metres(lon, lat, 114.0063, 33.5873) < 800


def test_round_trip_on_a_grid_of_points():
    for lon in (113.8, 113.95, 114.1):
        for lat in (33.5, 33.65, 33.8):
            back = crs.bd09_to_wgs84(*crs.wgs84_to_bd09(lon, lat))
            assert metres(*back, lon, lat) < 1e-4


def test_outside_china_is_unchanged():
    assert crs.wgs84_to_gcj02(-87.63, 41.88) == (-87.63, 41.88)
    assert crs.gcj02_to_wgs84(2.35, 48.85) == (2.35, 48.85)


def test_names_and_unknown_system():
    assert crs.normalise_crs("GCJ-02") == "gcj02"
    assert crs.normalise_crs("EPSG:4490") == "cgcs2000"
    with pytest.raises(ValueError, match="expected one of"):
        crs.normalise_crs("mars")


def test_transform_geometry_converts_every_vertex():
    from shapely.geometry import Polygon

    poly = Polygon([(114.0, 33.6), (114.01, 33.6), (114.01, 33.61), (114.0, 33.6)])
    gcj = crs.transform_geometry(poly, "wgs84")
    assert gcj.equals_exact(poly, 0)
    out = crs.transform_geometry(poly, "gcj02")
    for (x, y), (ox, oy) in zip(poly.exterior.coords, out.exterior.coords):
        assert crs.wgs84_to_gcj02(ox, oy) == pytest.approx((x, y), abs=1e-11)
