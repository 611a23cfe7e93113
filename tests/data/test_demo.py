"""The 郾城区 demo generator on its own (no database): real divisions, exact partitions, the article's
figures, plausible incidents and patrols, and byte-for-byte determinism."""
from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter, defaultdict
from datetime import datetime, timedelta

import numpy as np
import pytest
import shapely
from pyproj import Transformer

from data import yancheng

TO_METRIC = Transformer.from_crs(4326, 4547, always_xy=True)


def metric(geom):
    return shapely.transform(geom, lambda c: np.column_stack(TO_METRIC.transform(c[:, 0], c[:, 1])))


@pytest.fixture(scope="module")
def demo() -> yancheng.Demo:
    return yancheng.generate()


@pytest.fixture(scope="module")
def areas(demo) -> dict[str, dict]:
    return {a["code"]: a for a in demo.areas}


@pytest.fixture(scope="module")
def metric_areas(demo) -> dict[str, object]:
    return {a["code"]: metric(a["geom"]) for a in demo.areas}


def children(areas, code):
    return [a for a in areas.values() if a["parent_code"] == code]


def digest(demo: yancheng.Demo) -> str:
    """A fingerprint of every record, geometries as WKB."""
    def plain(value):
        if isinstance(value, shapely.Geometry):
            return shapely.to_wkb(value, hex=True)
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)

    h = hashlib.sha256()
    for name in demo.counts():
        for record in getattr(demo, name):
            h.update(json.dumps(plain(record), ensure_ascii=False, sort_keys=True).encode())
    return h.hexdigest()


def test_generation_is_deterministic(demo):
    again = yancheng.generate()
    assert again.counts() == demo.counts()
    for a, b in zip(demo.areas[::97], again.areas[::97]):
        assert shapely.to_wkb(a["geom"]) == shapely.to_wkb(b["geom"])
    assert shapely.to_wkb(demo.tracks[7]["geom"]) == shapely.to_wkb(again.tracks[7]["geom"])
    assert digest(demo) == digest(again)


def test_another_seed_changes_the_synthetic_data_but_not_the_article(demo):
    other = yancheng.generate(seed=7)
    real = [a["code"] for a in demo.areas if a["level"] < 4]
    assert [a["code"] for a in other.areas if a["level"] < 4] == real
    assert other.incidents[0]["lon"] != demo.incidents[0]["lon"]
    assert sum(a["code"].startswith("411103102") for a in other.areas if a["level"] == 4) == 97
    firms = [e for e in other.entities if e["kind"] != "village"]
    assert len(firms) == 7022 and sum(e["compliant"] for e in firms) == 6861
    assert shapely.coverage_is_valid(np.array([a["geom"] for a in other.areas if a["level"] == 4]))


def test_real_divisions_with_official_names(areas):
    path = yancheng.REFERENCE_DIR / "411103_divisions.csv"
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = [{k.strip(): v.strip() for k, v in r.items()} for r in csv.DictReader(f)]
    townships = [a for a in areas.values() if a["level"] == 2]
    villages = [a for a in areas.values() if a["level"] == 3]
    assert len(townships) == 10 and len(villages) == 198
    real = {r["code"]: r for r in rows if r["level"] in ("township", "village")}
    assert set(real) == {a["code"] for a in townships + villages}
    for v in villages:
        assert v["attrs"]["official_name"] == real[v["code"]]["name"]
        assert v["parent_code"] == real[v["code"]]["parent_code"]
    assert areas["411103002004"]["name"] == "金牛社区"
    assert areas["411103102201"]["name"] == "商南村"
    assert areas["411103107201"]["name"] == "河沿李村"


def test_every_area_is_a_valid_multipolygon(demo):
    for a in demo.areas:
        assert a["geom"].geom_type == "MultiPolygon" and a["geom"].is_valid, a["code"]


@pytest.mark.parametrize("level", [1, 2, 3])
def test_children_partition_their_parent_exactly(areas, metric_areas, level):
    for parent in (a for a in areas.values() if a["level"] == level):
        kids = [metric_areas[k["code"]] for k in children(areas, parent["code"])]
        assert kids, parent["code"]
        union = shapely.union_all(kids)
        assert union.symmetric_difference(metric_areas[parent["code"]]).area < 1.0, parent["code"]
        tree = shapely.STRtree(kids)
        left, right = tree.query(kids, predicate="intersects")
        for i, j in zip(left, right):
            if i < j:
                assert kids[i].intersection(kids[j]).area < 1e-6, (parent["code"], i, j)


def test_grids_form_one_valid_coverage(demo):
    grids = np.array([a["geom"] for a in demo.areas if a["level"] == 4])
    assert shapely.coverage_is_valid(grids)


def test_grid_codes_extend_the_village_code(areas):
    for v in (a for a in areas.values() if a["level"] == 3):
        codes = sorted(k["code"] for k in children(areas, v["code"]))
        assert codes == [f"{v['code']}{i:03d}" for i in range(1, len(codes) + 1)]


def test_grids_are_numbered_north_to_south(areas, metric_areas):
    for v in (a for a in areas.values() if a["level"] == 3):
        kids = sorted(children(areas, v["code"]), key=lambda k: k["code"])
        if len(kids) > 2:
            first, last = metric_areas[kids[0]["code"]].centroid, metric_areas[kids[-1]["code"]].centroid
            assert first.y > last.y - 300, v["code"]


def test_households_follow_the_grid_norms(areas):
    grids = [a for a in areas.values() if a["level"] == 4]
    for g in grids:
        if g["urban"]:
            assert 300 <= g["households"] <= 500, g["code"]
        else:
            assert 200 <= g["households"] <= 400, g["code"]
        assert 2.8 <= g["population"] / g["households"] <= 3.3
    rural = [g["households"] for g in grids if not g["urban"]]
    assert 250 <= np.mean(rural) <= 320
    assert 150_000 <= areas["411103"]["households"] <= 180_000
    for a in areas.values():
        if a["level"] < 4:
            assert a["households"] == sum(k["households"] for k in children(areas, a["code"]))


def test_shangqiao_has_four_zones_21_villages_and_97_grids(demo, areas):
    villages = children(areas, "411103102")
    assert len(villages) == 21
    assert sum(len(children(areas, v["code"])) for v in villages) == 97
    assert len(demo.groups) == 4
    assert {g["name"][0] for g in demo.groups} == set("东南西中")
    members = [c for g in demo.groups for c in g["village_codes"]]
    assert sorted(members) == sorted(v["code"] for v in villages)
    for g in demo.groups:
        assert all(areas[c]["group_code"] == g["code"] for c in g["village_codes"])
    assert all(a["group_code"] is None for a in areas.values() if not a["code"].startswith("411103102")
               or a["level"] != 3)


def test_every_grid_has_yi_zhang_liang_yuan(demo, areas):
    roles = defaultdict(set)
    for s in demo.staff:
        roles[s["grid_code"]].add(s["role"])
        assert s["phone"].startswith("1990000") and len(s["phone"]) == 11
    grids = {a["code"] for a in areas.values() if a["level"] == 4}
    assert set(roles) == grids and all(r == {"leader", "worker", "supervisor"} for r in roles.values())
    assert len({p["phone"] for p in demo.people}) == len(demo.people)


def test_sanling_subjects_reproduce_the_article(demo, areas):
    villages = [e for e in demo.entities if e["kind"] == "village"]
    firms = [e for e in demo.entities if e["kind"] != "village"]
    assert len(villages) == 183 and sum(e["compliant"] for e in villages) == 166
    assert len(firms) == 7022 and sum(e["compliant"] for e in firms) == 6861
    assert round(166 / 183 * 100, 2) == 90.71 and round(6861 / 7022 * 100, 1) == 97.7
    assert len(demo.departments) == 20
    assert {e["department_code"] for e in firms} <= {d["code"] for d in demo.departments}
    assert len({e["department_code"] for e in firms}) == 20
    for e in firms[::50]:
        assert metric(areas[e["area_code"]]["geom"]).covers(metric(e["geom"])), e["name"]
    assert len({e["name"] for e in firms}) == len(firms)


def test_entities_are_denser_in_town(demo, areas):
    per_household = Counter()
    for e in demo.entities:
        if e["kind"] != "village":
            per_household[areas[e["area_code"]]["urban"]] += 1
    urban = sum(a["households"] for a in areas.values() if a["level"] == 4 and a["urban"])
    rural = sum(a["households"] for a in areas.values() if a["level"] == 4 and not a["urban"])
    assert per_household[True] / urban > 2 * per_household[False] / rural


def test_gazetteer_keys_parents_and_areas(demo, areas, metric_areas):
    keys = {p["key"]: p for p in demo.places}
    assert len(keys) == len(demo.places)
    for p in demo.places:
        assert p["kind"] in ("road", "door", "compound", "building", "poi", "group")
        assert p["parent_key"] is None or p["parent_key"] in keys
        assert p["address"].startswith("郾城区")
    for p in demo.places[::23]:
        assert metric_areas[p["area_code"]].buffer(0.01).covers(metric(p["geom"])), p["key"]
    rural = {a["code"] for a in areas.values() if a["level"] == 4 and not a["urban"]}
    groups = Counter(p["area_code"] for p in demo.places if p["kind"] == "group")
    assert set(groups) == rural and set(groups.values()) == {1}


def test_door_numbers_and_the_domain_example(demo):
    doors = {p["address"]: p for p in demo.places if p["kind"] == "door"}
    assert "郾城区沙北街道黄河路123号" in doors
    by_road = defaultdict(list)
    for p in doors.values():
        by_road[p["attrs"]["road"]].append(p)
    roads = {p["name"] for p in demo.places if p["kind"] == "road"}
    for name in ("嵩山路", "泰山路", "昆仑路", "金山路", "巴山路", "陵园路", "太行山路", "辽河路", "海河路",
                 "井岗山路", "祁山路", "太白山路", "岷江路", "岷山路", "黄河路", "淞江路", "交通路"):
        assert name in roads and by_road[name], name
    line = next(p["geom"] for p in demo.places if p["key"] == "road:黄河路")
    odd = [metric(p["geom"]) for p in by_road["黄河路"] if p["attrs"]["number"] % 2]
    even = [metric(p["geom"]) for p in by_road["黄河路"] if not p["attrs"]["number"] % 2]
    y = metric(line).centroid.y
    assert all(p.y > y for p in odd) and all(p.y < y for p in even)  # odd north, even south


def test_zhongyi_family_compound_is_in_jinniu(demo, areas):
    poi = next(p for p in demo.places if p["name"] == "中医医院家属院")
    assert poi["kind"] == "poi" and poi["area_code"].startswith("411103002004")
    assert areas["411103002004"]["geom"].contains(poi["geom"])
    assert poi["address"] == "郾城区龙塔街道金牛社区中医医院家属院"


def test_buildings_sit_in_their_compound(demo):
    compounds = {p["key"]: p for p in demo.places if p["kind"] == "compound"}
    assert len(compounds) > 100
    for b in (p for p in demo.places if p["kind"] == "building"):
        parent = compounds[b["parent_key"]]
        assert parent["geom"].contains(b["geom"])
        assert b["address"] == parent["address"] + b["name"]


def test_road_network_is_connected(demo):
    index: dict[tuple, int] = {}
    parent: list[int] = []

    def node(xy):
        key = (round(xy[0], 9), round(xy[1], 9))
        if key not in index:
            index[key] = len(parent)
            parent.append(len(parent))
        return index[key]

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for r in demo.roads:
        a, b = node(r["geom"].coords[0]), node(r["geom"].coords[-1])
        parent[find(a)] = find(b)
    assert len({find(i) for i in range(len(parent))}) == 1
    assert {r["road_class"] for r in demo.roads} == {"urban", "county", "township", "village"}


def test_incidents_cover_the_year_and_every_category(demo):
    inc = demo.incidents
    assert 19_000 <= len(inc) <= 21_000
    assert {i["category"] for i in inc} == {"petition", "accident", "criminal", "dispute", "hazard"}
    start, end = yancheng.PERIOD_START, yancheng.PERIOD_END
    assert all(start - timedelta(days=3) <= i["occurred_at"] <= i["reported_at"] <= end for i in inc)
    assert all(i["occurred_at"].utcoffset() == timedelta(hours=8) for i in inc)
    assert len({i["external_id"] for i in inc}) == len(inc)
    assert {i["severity"] for i in inc} == {1, 2, 3, 4}
    assert 0.02 <= sum(i["sensitive"] for i in inc) / len(inc) <= 0.04


def test_incident_lifecycle_is_consistent(demo):
    for i in demo.incidents:
        done = i["status"] in ("resolved", "followed_up", "closed")
        assert (i["resolved_at"] is not None) == done, i["external_id"]
        assert (i["resolution_level"] is not None) == done
        assert (i["closed_at"] is not None) == (i["status"] == "closed")
        times = [t for t in (i["reported_at"], i["accepted_at"], i["resolved_at"], i["closed_at"]) if t]
        assert times == sorted(times)
    open_ = [i for i in demo.incidents if i["status"] in ("reported", "accepted", "handling")]
    assert open_ and min(i["reported_at"] for i in open_) > yancheng.PERIOD_END - timedelta(days=200)
    old = [i for i in demo.incidents if i["reported_at"] < yancheng.PERIOD_END - timedelta(days=60)]
    assert sum(i["status"] in ("followed_up", "closed", "escalated") for i in old) / len(old) > 0.98


def test_disputes_are_resolved_above_96_percent_mostly_low_down(demo):
    disputes = [i for i in demo.incidents if i["category"] == "dispute"]
    resolved = [i for i in disputes if i["status"] in ("resolved", "followed_up", "closed")]
    assert 0.965 <= len(resolved) / len(disputes) <= 0.975
    levels = Counter(i["resolution_level"] for i in resolved)
    assert (levels["group"] + levels["village"]) / len(resolved) > 0.75


def test_incidents_lie_in_their_grid_with_a_gazetteer_address(demo, areas):
    places = {p["key"]: p for p in demo.places}
    for i in demo.incidents[::40]:
        assert areas[i["grid_code"]]["geom"].covers(i["geom"]), i["external_id"]
        place = places[i["attrs"]["place_key"]]
        assert i["attrs"]["address_canonical"] == place["address"]


def test_hot_spots_persist_emerge_and_fade(demo):
    assert Counter(h["kind"] for h in demo.hotspots) == {"persistent": 3, "emerging": 1, "fading": 1}
    last4 = datetime(2026, 7, 1, tzinfo=yancheng.TZ)
    for h in demo.hotspots:
        own = [i for i in demo.incidents if i["attrs"]["hotspot"] == h["name"]]
        late = sum(i["occurred_at"] >= last4 for i in own)
        if h["kind"] == "emerging":
            assert late > 3 * (len(own) - late)
        elif h["kind"] == "fading":
            first4 = sum(i["occurred_at"] < datetime(2026, 3, 1, tzinfo=yancheng.TZ) for i in own)
            assert 0 < late < 0.6 * first4
        else:
            assert 0.2 < late / len(own) < 0.45


def test_patrol_units_and_their_day(demo):
    units = {u["callsign"]: u for u in demo.units}
    assert 35 <= len(units) <= 45
    assert {u["kind"] for u in units.values()} == {"car", "foot", "volunteer"}
    assert len({u["device_id"] for u in units.values()}) == len(units)
    by_unit = defaultdict(list)
    for p in demo.positions:
        by_unit[p["callsign"]].append(p)
    assert set(by_unit) == set(units)
    limit = {"car": 45 / 3.6, "foot": 5 / 3.6, "volunteer": 5 / 3.6}
    for callsign, fixes in by_unit.items():
        assert len(fixes) == 2880
        assert fixes[0]["ts"] == datetime(2026, 10, 31, tzinfo=yancheng.TZ)
        assert all((b["ts"] - a["ts"]).total_seconds() == 30 for a, b in zip(fixes, fixes[1:]))
        flags = Counter(p["flags"] for p in fixes)
        assert flags[1] >= 1 and flags[2] >= 1
        assert all(p["accuracy"] > 100 for p in fixes if p["flags"] == 2)
        clean = [p for p in fixes if p["flags"] == 0]
        assert np.median([p["accuracy"] for p in clean]) < 15
        assert max(p["speed"] for p in clean) < limit[units[callsign]["kind"]] + 1.5
    tracks = {t["callsign"]: t for t in demo.tracks}
    assert set(tracks) == set(units) == {s["callsign"] for s in demo.shifts}
    for t in tracks.values():
        assert t["points"] == sum(p["flags"] == 0 for p in by_unit[t["callsign"]]) == len(t["geom"].coords)
        assert 10_000 < t["length_m"] < 500_000


def test_households_and_visits_reproduce_the_article(demo, areas):
    from geo.visits import seed

    per_grid = Counter(h["grid_code"] for h in demo.households)
    assert per_grid == {c: a["households"] for c, a in areas.items() if a["level"] == 4}
    ids = [h["id_number"] for h in demo.households[::997]]
    assert all(len(i) == 18 and i.startswith("411103") for i in ids)
    home = [v for v in demo.visits if v["household"] is not None]
    households = len({v["household"] for v in home})
    people = sum(v["people"] for v in home)
    assert seed.HOUSEHOLDS_VISITED < households < seed.HOUSEHOLDS_VISITED + 10_000      # 6万余户
    assert seed.PERSON_VISITS < people < seed.PERSON_VISITS + 10_000                  # 13万余人次
    assert all(v["people"] <= demo.households[v["household"]]["members"] for v in home[::101])
    start, end = yancheng.PERIOD_START, yancheng.PERIOD_END
    assert all(start <= v["occurred_at"] <= end for v in demo.visits[::53])


def test_a_follow_up_visit_after_every_resolved_matter(demo):
    follow = {v["incident"]: v for v in demo.visits if v["kind"] == "follow_up"}
    for n, i in enumerate(demo.incidents):
        if i["status"] in ("followed_up", "closed"):
            v = follow[n]
            assert i["resolved_at"] <= v["occurred_at"] <= (i["closed_at"] or yancheng.PERIOD_END)
        else:
            assert n not in follow


def test_village_records_reproduce_the_article(demo, areas):
    from geo.visits import seed

    meetings = demo.meetings
    assert len(meetings) == seed.MEETINGS
    assert sum(m["problems_solved"] for m in meetings) == seed.PROBLEMS_SOLVED
    assert sum(m["disputes_settled"] for m in meetings) == seed.MEETING_DISPUTES_SETTLED
    assert all(m["held_on"].day == seed.MEETING_DAY and m["area_code"].startswith("411103002")
               for m in meetings)
    black = [e for e in demo.logbook if e["colour"] == "black"]
    red = [e for e in demo.logbook if e["colour"] == "red"]
    assert seed.LOGBOOK_DISPUTES_SETTLED < sum(e["resolved_dispute"] for e in black) < 70
    assert seed.LOGBOOK_GOOD_DEEDS < len(red) < 110
    assert all(e["area_code"].startswith("411103103") for e in demo.logbook)
