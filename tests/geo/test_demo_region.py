"""The 郾城区 demo as loaded: real divisions, exact partition at every level, four-level look-ups."""
import math

import pytest
from sqlalchemy import text

from data import yancheng
from geo import areas, crs
from geo.boundaries import partition
from geo.errors import InvalidInput


def metres(lon1, lat1, lon2, lat2):
    k = 111_320.0
    return math.hypot((lon1 - lon2) * k * math.cos(math.radians(lat1)), (lat1 - lat2) * 110_574.0)


def test_real_divisions_are_all_there(session, demo):
    counts = areas.counts_by_level(session, "411103")
    assert counts[1] == 1 and counts[2] == 10 and counts[3] == 198
    assert counts[4] > 198
    names = set(session.execute(text("SELECT name FROM areas WHERE level = 2")).scalars())
    assert {"沙北街道", "龙塔街道", "淞江街道", "孟庙镇", "商桥镇", "裴城镇", "新店镇", "龙城镇",
            "李集镇", "黑龙潭镇"} <= names


def test_shangqiao_reproduces_the_article(session, demo):
    counts = areas.counts_by_level(session, "411103102")
    assert counts[3] == 21 and counts[4] == 97
    groups = session.execute(text(
        "SELECT g.name, count(a.id) FROM area_groups g JOIN areas a ON a.group_id = g.id "
        "JOIN areas t ON t.id = g.parent_id WHERE t.code = '411103102' GROUP BY g.name")).all()
    assert len(groups) == 4 and sum(n for _, n in groups) == 21


def test_every_level_is_an_exact_partition(session, demo):
    # Gaps above 1 m², overlaps above 1e-6 m², invalid rings and children outside their parent.
    assert partition.validate_partition(session, "411103") == []


def test_every_grid_has_yi_zhang_liang_yuan(session, demo):
    missing = session.execute(text("""
        SELECT a.code FROM areas a WHERE a.level = 4 AND a.code LIKE '411103%' AND
          (SELECT count(DISTINCT role) FROM area_staff s WHERE s.area_id = a.id) < 3""")).scalars().all()
    assert missing == []


def test_lookup_gives_the_four_level_path_inside_the_district(session, demo):
    points = session.execute(text("""
        SELECT a.code, ST_X(p) AS lon, ST_Y(p) AS lat FROM
          (SELECT code, ST_PointOnSurface(geom) AS p FROM areas WHERE level = 4 AND code LIKE '411103%'
            ORDER BY code LIMIT 400) a""")).mappings().all()
    for row in points[::37]:
        result = areas.lookup(session, row["lon"], row["lat"])
        assert [a["level"] for a in result.path] == [1, 2, 3, 4]
        assert result.path[0]["code"] == "411103" and result.path[-1]["code"] == row["code"]


def test_gcj02_input_lands_within_a_centimetre(session, demo):
    row = session.execute(text("SELECT code, ST_X(p), ST_Y(p) FROM (SELECT code, ST_PointOnSurface(geom) p "
                                "FROM areas WHERE code LIKE '411103002004%' AND level = 4) s LIMIT 1")).one()
    code, lon, lat = row
    glon, glat = crs.wgs84_to_gcj02(lon, lat)
    result = areas.lookup(session, glon, glat, "gcj02")
    assert metres(*result.wgs84, lon, lat) <= 0.01
    assert result.path[-1]["code"] == code
    blon, blat = crs.wgs84_to_bd09(lon, lat)
    assert areas.lookup(session, blon, blat, "bd09").path[-1]["code"] == code
    # Read as WGS84 the GCJ-02 pair is ~570 m off: proof the conversion matters here.
    assert metres(glon, glat, lon, lat) > 300


def test_outside_the_district_is_a_clear_answer(session, demo):
    result = areas.lookup(session, 113.5, 33.0)
    assert result.path == [] and "outside" in result.hint
    with pytest.raises(InvalidInput, match="swapped") as err:
        areas.lookup(session, 33.62, 113.95)
    assert err.value.field == "lat"


def test_the_outline_is_the_real_one_converted_from_gcj02(session, demo):
    import json

    from shapely.geometry import shape

    raw = json.loads((yancheng.REFERENCE_DIR / "411103_yancheng_outline_gcj02.geojson").read_text())
    gcj = shape(raw["features"][0]["geometry"])
    x, y = gcj.exterior.coords[0] if gcj.geom_type == "Polygon" else gcj.geoms[0].exterior.coords[0]
    wlon, wlat = crs.gcj02_to_wgs84(x, y)
    distance = session.execute(text(
        "SELECT ST_Distance(ST_Boundary(geom)::geography, ST_SetSRID(ST_MakePoint(:x, :y), 4326)::geography) "
        "FROM areas WHERE code = '411103'"), {"x": wlon, "y": wlat}).scalar()
    assert distance < 0.05  # the converted vertex lies on the stored outline


def test_loading_twice_is_refused_not_duplicated(session, demo):
    from data import load
    from geo.errors import Conflict

    assert load.is_loaded(session)
    with pytest.raises(Conflict):
        load.load(session, demo)
