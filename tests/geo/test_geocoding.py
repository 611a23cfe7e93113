"""Offline geocoding: normalisation, longest match under the parent, level-by-level fallback,
ambiguity without guessing, the per-process index and its invalidation, reverse geocoding, and the
labelled evaluation set on the 郾城区 demo."""
from __future__ import annotations

import csv
import math
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text

from geo.errors import InvalidInput
from geo.incidents import addresses, geocoding
from tests import town

EVAL = Path(__file__).resolve().parents[1] / "data" / "geocoding_eval.csv"


@pytest.fixture()
def g(session, tiny):
    town.build(session)
    return geocoding.gazetteer(session)


def metres(a, b):
    return math.hypot((a[0] - b[0]) * 111_320 * math.cos(math.radians(a[1])), (a[1] - b[1]) * 110_574)


@pytest.mark.parametrize("raw,expected", [
    ("新安区河东街道翠湖路１２３号", "河东街道翠湖路123号"),
    ("河南省漯河市新安区河东街道翠湖路123号", "河东街道翠湖路123号"),
    ("漯河市河东街道翠湖路123号", "河东街道翠湖路123号"),
    ("河东街道翠湖路123号新安区", "河东街道翠湖路123号"),
    ("晨曦花园三号楼二单元", "晨曦花园3号楼2单元"),
    ("晨曦花园3栋", "晨曦花园3号楼"),
    ("晨曦花园3幢", "晨曦花园3号楼"),
    ("晨曦花园十二座", "晨曦花园12号楼"),
    ("柳南村三村民小组", "柳南村3组"),
    ("柳南村二十一队", "柳南村21组"),
    ("翠湖路一百零三号", "翠湖路103号"),
    ("翠湖路 123 号，门口", "翠湖路123号门口"),
    ("河南街道五里岗社区", "河南街道五里岗社区"),   # a bare province name may begin a place name
])
def test_normalise(raw, expected):
    prefixes = addresses.Prefixes(districts=("新安区",), townships=("河东街道", "河南街道"))
    assert addresses.normalise(raw, prefixes) == expected


def test_chinese_numerals():
    assert [addresses.zh_to_int(s) for s in ("三", "十", "十二", "二十一", "一百零三", "一零三", "两")] == \
        [3, 10, 12, 21, 103, 103, 2]


def test_a_door_with_every_level(g):
    r = g.geocode("河南省漯河市新安区河东街道翠湖路12号")
    assert r["status"] == "ok"
    best = r["best"]
    assert best["level"] == "door" and best["area_code"] == "TZ1A2"
    assert best["matched"] == "河东街道翠湖路12号"
    assert metres((best["lon"], best["lat"]), town.door_point(12)) < 0.5
    assert best["confidence"] >= 0.9


def test_a_building_behind_its_gate_with_noise(g):
    r = g.geocode("新安区河东街道翠湖路１２号晨曦花园三栋2单元501室")
    assert r["status"] == "ok" and r["best"]["level"] == "building"
    assert r["best"]["name"] == "3号楼" and r["best"]["area_code"] == "TZ1A2"
    assert "晨曦花园3号楼" in r["best"]["matched"]


def test_wrong_order_and_missing_levels(g):
    for q in ("翠湖路13号河东街道", "翠湖路13号", "13号翠湖路", "新安区翠湖路13号"):
        r = g.geocode(q)
        assert r["status"] == "ok" and r["best"]["level"] == "door", q
        assert metres((r["best"]["lon"], r["best"]["lat"]), town.door_point(13)) < 0.5, q


def test_village_groups_in_every_spelling(g):
    for q in ("柳桥镇柳南村二组", "柳南村2组", "柳南村二队", "柳南村二村民小组", "二组柳南村"):
        r = g.geocode(q)
        assert r["status"] == "ok" and r["best"]["level"] == "group", q
        assert r["best"]["area_code"] == "TZ2A2", q


def test_typos_are_matched_one_edit_away_preferring_same_sound(g):
    r = g.geocode("柳桥镇柳楠村二组")          # 楠 for 南: same sound
    assert r["best"]["level"] == "group" and r["best"]["area_code"] == "TZ2A2"
    assert r["best"]["confidence"] < g.geocode("柳桥镇柳南村二组")["best"]["confidence"]
    r = g.geocode("晨曦花苑3号楼")             # 苑 for 园
    assert r["best"]["level"] == "building" and r["best"]["area_code"] == "TZ1A2"
    r = g.geocode("枫林家4号楼")               # a character left out
    assert r["best"]["level"] == "building" and r["best"]["area_code"] == "TZ1B1"


def test_fallback_goes_down_level_by_level(g):
    no_door = g.geocode("河东街道翠湖路999号")
    assert no_door["best"]["level"] == "road" and no_door["best"]["fallback_from"] == "door"
    assert no_door["best"]["confidence"] < 0.75
    no_group = g.geocode("柳桥镇柳南村九组")
    assert no_group["best"]["level"] == "village" and no_group["best"]["area_code"] == "TZ2A"
    no_building = g.geocode("枫林家园99号楼")
    assert no_building["best"]["level"] == "compound"
    township = g.geocode("柳桥镇")
    assert township["best"]["level"] == "township" and township["best"]["area_code"] == "TZ2"


def test_a_missing_door_number_is_interpolated_between_its_neighbours(g):
    r = g.geocode("翠湖路7号")  # 5号 and 9号 exist on the same (west) side, 7号 does not
    best = r["best"]
    assert best["level"] == "door" and best["interpolated"] is True
    expected = ((town.door_point(5)[0] + town.door_point(9)[0]) / 2,
                (town.door_point(5)[1] + town.door_point(9)[1]) / 2)
    assert metres((best["lon"], best["lat"]), expected) < 1
    assert best["confidence"] < g.geocode("翠湖路9号")["best"]["confidence"]


def test_a_road_without_a_number_lands_where_it_crosses_the_named_area(session, g):
    r = g.geocode("柳桥镇望江路")
    assert r["best"]["level"] == "road"
    assert r["best"]["lon"] > 10.02  # the part of 望江路 inside 柳桥镇 (the east half)
    r = g.geocode("河东街道望江路")
    assert r["best"]["lon"] < 10.02


def test_ambiguity_returns_candidates_never_a_guess(g):
    r = g.geocode("柳桥镇1组")  # both 柳南村 and 柳东村 have a 一组
    assert r["status"] == "ambiguous"
    assert {c["area_code"] for c in r["candidates"]} == {"TZ2A1", "TZ2B1"}
    # The best is what is certain: the township both lie in, marked ambiguous.
    assert r["best"]["level"] == "township" and r["best"]["area_code"] == "TZ2"
    assert r["best"]["ambiguous"] is True


def test_contradicting_parts_lower_the_confidence(g):
    right = g.geocode("河东街道翠湖路12号")["best"]
    wrong = g.geocode("柳桥镇翠湖路12号")["best"]  # 翠湖路 runs through 河东街道 only
    assert wrong["level"] == "door" and wrong["confidence"] < right["confidence"]


def test_entities_and_pois_are_in_the_gazetteer(g):
    assert g.geocode("白鹭超市")["best"]["area_code"] == "TZ1A1"
    r = g.geocode("清河社区清河医院")
    assert r["best"]["level"] == "poi" and r["best"]["area_code"] == "TZ1B2"


def test_nothing_known_is_not_found(g):
    r = g.geocode("火星基地一号")
    assert r["status"] == "not_found" and r["best"] is None and r["candidates"] == []


def test_every_result_has_level_confidence_and_matched_text(g):
    for q in ("翠湖路12号", "柳南村二组", "玉泉社区", "柳桥镇1组"):
        for c in g.geocode(q)["candidates"]:
            assert set(c) >= {"lon", "lat", "level", "confidence", "area_code", "matched"}
            assert 0 < c["confidence"] <= 1 and c["matched"]


def test_the_index_is_reused_until_places_change(session, g):
    assert geocoding.gazetteer(session) is g
    assert g.geocode("松风家园")["status"] == "not_found"
    town.place(session, "松风家园", "compound", "TZ2B1",
               "POLYGON((10.022 10.022, 10.024 10.022, 10.024 10.024, 10.022 10.024, 10.022 10.022))")
    fresh = geocoding.gazetteer(session)
    assert fresh is not g
    assert fresh.geocode("松风家园")["best"]["area_code"] == "TZ2B1"
    session.execute(text("UPDATE areas SET name = '柳北村' WHERE code = 'TZ2B'"))
    assert geocoding.gazetteer(session).geocode("柳北村")["best"]["area_code"] == "TZ2B"


def test_geocode_refuses_empty_or_huge_input(session, tiny):
    for q in (None, "", "   ", "路" * 301):
        with pytest.raises(InvalidInput) as err:
            geocoding.geocode(session, q)
        assert err.value.field == "q"


def test_reverse_gives_the_path_and_the_nearest_named_place(session, g):
    lon, lat = town.door_point(12)
    r = geocoding.reverse(session, lon + 0.00005, lat)
    assert [a["code"] for a in r["path"]] == ["TZ", "TZ1", "TZ1A", "TZ1A2"]
    assert r["nearest"]["kind"] == "door" and r["nearest"]["address"].endswith("翠湖路12号")
    assert 4 < r["nearest"]["distance_m"] < 7
    inside = geocoding.reverse(session, 10.017, 10.006)  # inside 晨曦花园
    assert any(p["kind"] == "compound" and p["distance_m"] == 0 for p in inside["nearby"])
    far = geocoding.reverse(session, 50, 50)
    assert far["inside"] is False and far["nearest"] is None


def test_reverse_accepts_gcj02(session, g):
    from geo import crs

    # (10°E, 10°N) is outside China's offset box: GCJ-02 equals WGS84 there, so this checks the
    # plumbing; the offset itself is checked on the demo below.
    lon, lat = crs.wgs84_to_gcj02(10.017, 10.035)
    assert geocoding.reverse(session, lon, lat, "gcj02")["area"]["code"] == "TZ1B2"


# -- the labelled evaluation set on the 郾城区 demo ------------------------------------------------
def _evaluate(session):
    keys = {f"place:{r[0]}": r[1] for r in session.execute(text(
        "SELECT id, attrs->>'key' FROM places WHERE attrs ? 'key'"))}
    rows = list(csv.DictReader(EVAL.open(encoding="utf-8")))
    known = set(keys.values())
    stale = [r["expect"] for r in rows if r["level"] != "township" and r["expect"] not in known]
    assert not stale, (f"{len(stale)} labels name places the demo no longer has (e.g. {stale[:3]}): "
                       "the demo changed — run tests/data/make_geocoding_eval.py")
    index = geocoding.gazetteer(session)
    results = index.geocode_many(r["address"] for r in rows)
    village_right = village_total = finest_right = 0
    misses = Counter()
    for row, result in zip(rows, results):
        best = result["best"]
        if row["village_code"]:
            village_total += 1
            village_right += bool(best and len(best["path"]) >= 3 and best["path"][2] == row["village_code"])
        if row["level"] == "township":
            ok = bool(best and best["area_code"] == row["expect"])
        else:
            ok = bool(best and keys.get(best["source"]) == row["expect"])
        finest_right += ok
        if not ok:
            misses[row["noise"]] += 1
    return village_right / village_total, finest_right / len(rows), len(rows), misses


def test_evaluation_set_is_labelled_and_noisy():
    rows = list(csv.DictReader(EVAL.open(encoding="utf-8")))
    assert len(rows) >= 1500
    noise = Counter(n for r in rows for n in r["noise"].split("+"))
    for kind in ("drop_district", "drop_township", "drop_village", "fullwidth", "wrong_order",
                 "typo", "numerals", "description", "prefix", "clean"):
        assert noise[kind] >= 50, kind
    assert any("０" <= ch <= "９" for r in rows for ch in r["address"])


def test_demo_addresses_geocode_at_village_and_finest_level(session, demo):
    village, finest, n, misses = _evaluate(session)
    assert village >= 0.97, (village, misses.most_common(5))
    assert finest >= 0.90, (finest, misses.most_common(5))


def test_demo_incident_addresses_locate_near_their_points(session, demo):
    rows = session.execute(text("""
        SELECT i.address, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, g.code
          FROM incidents i JOIN areas g ON g.id = i.grid_id
         WHERE i.district_code = '411103' ORDER BY i.id LIMIT 3000""")).all()
    index = geocoding.gazetteer(session)
    same_village = near = 0
    for address, lon, lat, grid in rows:
        best = index.geocode(address, alternatives=False)["best"]
        same_village += bool(best and len(best["path"]) >= 3 and best["path"][2] == grid[:12])
        near += bool(best and metres((best["lon"], best["lat"]), (lon, lat)) < 400)
    assert same_village / len(rows) >= 0.97
    assert near / len(rows) >= 0.90


def test_gcj02_reverse_on_the_demo(session, demo):
    from geo import crs

    lon, lat = session.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM places WHERE kind = 'door' "
                                    "ORDER BY id LIMIT 1")).one()
    glon, glat = crs.wgs84_to_gcj02(lon, lat)
    r = geocoding.reverse(session, glon, glat, "gcj02")
    assert r["nearest"]["kind"] == "door" and r["nearest"]["distance_m"] < 0.05
