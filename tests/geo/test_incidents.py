"""Incidents in the core: intake and location, the 三级过滤网 lifecycle, statistics, duplicates
and links, and privacy.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from geo import crs
from geo.errors import Conflict, Forbidden, InvalidInput, NotFound
from geo.incidents import (
    duplicates,
    intake,
    lifecycle,
    queries,
    stats,
    workflow,
)
from geo.policy import Audience, Scope
from tests.geo.incidents_common import ACTOR, ADMIN, SHANGHAI, count, new
from tests.incident_cases import BAD_REPORTS, VALID, report


# -- intake ------------------------------------------------------------------------------------
def test_a_report_by_coordinates_lands_in_its_grid(session, places):
    body = new(session)
    props = body["properties"]
    assert props["grid_code"] == "TZ1A1" and props["geocode_level"] == "coordinates"
    assert props["status"] == "reported" and props["category"] == "dispute"
    assert body["geometry"]["coordinates"] == [10.005, 10.005]
    assert [e["to_status"] for e in props["events"]] == ["reported"]
    row = session.execute(text("SELECT district_code, outside_jurisdiction FROM incidents WHERE id = :i"),
                          {"i": body["id"]}).one()
    assert row == ("TZ", False)


@pytest.mark.parametrize("system", ["gcj02", "bd09"])
def test_gcj02_and_bd09_are_converted_exactly(session, demo, system):
    lon, lat = session.execute(text(
        "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM areas "
        "WHERE code LIKE '411103002004%' AND level = 4 ORDER BY code LIMIT 1) s")).one()
    shifted = crs.from_wgs84(lon, lat, system)
    body = new(session, lon=shifted[0], lat=shifted[1], crs=system)
    got = body["geometry"]["coordinates"]
    assert abs(got[0] - lon) < 1e-7 and abs(got[1] - lat) < 1e-7   # < 1 cm
    assert body["properties"]["grid_code"].startswith("411103002004")


@pytest.mark.parametrize("name,changes,field,_csv", BAD_REPORTS, ids=[c[0] for c in BAD_REPORTS])
def test_bad_reports_are_refused_naming_the_field(session, places, name, changes, field, _csv):
    before = count(session, "incidents"), count(session, "audit_log")
    with pytest.raises(InvalidInput) as err:
        new(session, **changes)
    assert err.value.field == field and err.value.message
    assert (count(session, "incidents"), count(session, "audit_log")) == before


def test_the_swapped_hint_says_what_to_check(session, places):
    with pytest.raises(InvalidInput, match="swapped") as err:
        new(session, lon=40.02, lat=30.02)
    assert "(lon, lat)" in err.value.message


def test_outside_every_jurisdiction_is_flagged_not_dropped(session, places):
    body = new(session, lon=11.5, lat=12.5)
    props = body["properties"]
    assert props["outside_jurisdiction"] is True and props["grid_code"] is None
    assert session.execute(text("SELECT count(*) FROM incidents WHERE id = :i"), {"i": body["id"]}).scalar() == 1


def test_a_report_by_address_is_geocoded(session, places):
    body = new(session, lon=None, lat=None, address="河东街道翠湖路12号晨曦花园3号楼")
    props = body["properties"]
    assert props["geocode_level"] == "building" and props["grid_code"] == "TZ1A2"
    assert props["geocode_confidence"] > 0.9


def test_an_address_known_only_to_the_village_keeps_no_grid(session, places):
    body = new(session, lon=None, lat=None, address="柳桥镇柳南村")
    props = body["properties"]
    assert props["geocode_level"] == "village" and props["grid_code"] is None
    assert props["area_code"] == "TZ2A"


def test_an_ambiguous_address_is_located_at_what_is_certain_with_a_warning(session, places):
    body = new(session, lon=None, lat=None, address="柳桥镇1组")
    assert body["properties"]["area_code"] == "TZ2" and body["properties"]["grid_code"] is None
    assert body["warnings"] and "ambiguous" in body["warnings"][0]


def test_an_address_contradicting_the_point_is_a_warning(session, places):
    body = new(session, address="柳桥镇柳南村二组")  # the point is in 玉泉社区
    assert body["warnings"] and "TZ2A" in body["warnings"][0]


def test_a_report_outside_the_callers_scope_is_refused_before_anything_is_written(session, places):
    path = session.execute(text("SELECT path::text FROM areas WHERE code = 'TZ2'")).scalar()
    elsewhere = Audience("grid_worker", Scope(("TZ2",), (path,)))
    before = count(session, "incidents")
    with pytest.raises(Forbidden, match="TZ1A1 is outside your scope"):
        intake.create(session, ACTOR, report({}), elsewhere)
    assert count(session, "incidents") == before


def test_the_same_external_id_from_the_same_channel_is_a_conflict(session, places):
    new(session, external_id="12345-1", source="12345热线")
    with pytest.raises(Conflict) as err:
        new(session, external_id="12345-1", source="12345热线")
    assert err.value.field == "external_id"
    new(session, external_id="12345-1", source="110接警")  # another channel may reuse it


# -- lifecycle ---------------------------------------------------------------------------------
def walk(session, incident_id, *steps):
    body = None
    for to, extra in steps:
        if to == "followed_up":  # a matter is followed up by a logged 回访 visit
            session.execute(text("INSERT INTO visits (kind, incident_id, grid_id, occurred_at) "
                                 "SELECT 'follow_up', id, grid_id, clock_timestamp() FROM incidents "
                                 "WHERE id = :i"),
                            {"i": incident_id})
        body = lifecycle.transition(session, ACTOR, incident_id, to, ADMIN, **extra)
    return body


def test_the_whole_lifecycle_is_recorded_with_actor_and_note(session, places):
    i = new(session)["id"]
    body = walk(session, i, ("accepted", {"note": "网格员受理"}), ("handling", {"note": "组织调解"}),
                ("resolved", {"note": "双方达成协议", "level": "村"}),
                ("followed_up", {"note": "回访满意"}), ("closed", {}))
    props = body["properties"]
    assert props["status"] == "closed" and props["resolution_level"] == "village"
    events = props["events"]
    assert [(e["from_status"], e["to_status"]) for e in events] == [
        (None, "reported"), ("reported", "accepted"), ("accepted", "handling"), ("handling", "resolved"),
        ("resolved", "followed_up"), ("followed_up", "closed")]
    assert events[3]["level"] == "village" and events[4]["note"] == "回访满意"
    audited = session.execute(text("SELECT action FROM audit_log WHERE target_type = 'incident' "
                                   "AND target_id = :i ORDER BY id"), {"i": str(i)}).scalars().all()
    assert audited == ["incident.report", "incident.accepted", "incident.handling", "incident.resolved",
                       "incident.followed_up", "incident.closed"]
    row = session.execute(text("SELECT accepted_at, resolved_at, closed_at FROM incidents WHERE id = :i"),
                          {"i": i}).one()
    assert all(row)
    assert props["allowed"] == []


def test_escalation_climbs_the_three_level_filter(session, places):
    i = new(session)["id"]
    walk(session, i, ("accepted", {}))
    body = walk(session, i, ("escalated", {"note": "组里调解不成"}))
    assert body["properties"]["handling_level"] == "village"
    body = walk(session, i, ("handling", {}), ("escalated", {"note": "涉及多村", "level": "township"}))
    assert body["properties"]["handling_level"] == "township"
    body = walk(session, i, ("accepted", {}), ("handling", {}), ("resolved", {}))
    assert body["properties"]["resolution_level"] == "township"  # resolved where it was held
    assert [e["level"] for e in body["properties"]["events"] if e["to_status"] == "escalated"] == \
        ["village", "township"]


@pytest.mark.parametrize("steps,to,extra,field", [
    ([], "closed", {}, "to"),                                      # not from reported
    ([], "resolved", {}, "to"),
    ([], "flying", {}, "to"),
    ([], "escalated", {}, "note"),                                 # an escalation says why
    ([("accepted", {})], "escalated", {"note": "x", "level": "group"}, "level"),  # not downwards
    ([("accepted", {}), ("handling", {})], "resolved", {"level": "county hall"}, "level"),
    ([("accepted", {}), ("handling", {}), ("resolved", {})], "handling", {}, "note"),  # reopen why
    ([("accepted", {}), ("handling", {}), ("resolved", {})], "followed_up", {}, "to"),  # no 回访 logged
])
def test_invalid_transitions_are_refused_and_change_nothing(session, places, steps, to, extra, field):
    i = new(session)["id"]
    walk(session, i, *steps)
    before = session.execute(text("SELECT status FROM incidents WHERE id = :i"), {"i": i}).scalar()
    events = count(session, "incident_events")
    with pytest.raises(InvalidInput) as err:
        lifecycle.transition(session, ACTOR, i, to, ADMIN, **extra)
    assert err.value.field == field
    assert session.execute(text("SELECT status FROM incidents WHERE id = :i"), {"i": i}).scalar() == before
    assert count(session, "incident_events") == events


def test_a_stale_expected_status_is_a_conflict(session, places):
    i = new(session)["id"]
    walk(session, i, ("accepted", {}))
    with pytest.raises(Conflict):
        lifecycle.transition(session, ACTOR, i, "handling", ADMIN, expected_status="reported")


def test_reopening_clears_the_resolution(session, places):
    i = new(session)["id"]
    body = walk(session, i, ("accepted", {}), ("handling", {}), ("resolved", {}),
                ("followed_up", {"note": "回访不满意"}), ("handling", {"note": "重新调解"}))
    assert body["properties"]["status"] == "handling" and body["properties"]["resolution_level"] is None


def test_unknown_incident(session, places):
    with pytest.raises(NotFound):
        lifecycle.transition(session, ACTOR, 987654321, "accepted", ADMIN)
    with pytest.raises(InvalidInput):
        queries.get(session, "abc", ADMIN)


def test_response_time_targets_per_category(session, places):
    accident = new(session, category="事故")["id"]
    row = session.execute(text("SELECT * FROM incidents WHERE id = :i"), {"i": accident}).mappings().one()
    t = workflow.targets(dict(row), now=row["reported_at"] + timedelta(minutes=10))
    assert t["accept"]["hours"] == 0.5 and t["accept"]["met"] is None and not t["accept"]["overdue"]
    late = workflow.targets(dict(row), now=row["reported_at"] + timedelta(hours=2))
    assert late["accept"]["overdue"] and late["accept"]["met"] is False
    assert workflow.RESPONSE_TARGETS["petition"]["accept"] == timedelta(days=15)


# -- statistics --------------------------------------------------------------------------------
def test_stats_give_the_dispute_resolution_rate_and_where_matters_end(session, places):
    levels = ["group", "group", "village", "village", "village", "township", "district"]
    for n, level in enumerate(levels):
        i = new(session, lon=10.001 + n * 0.002, lat=10.005)["id"]
        walk(session, i, ("accepted", {}), ("handling", {}), ("resolved", {"level": level}))
    walk(session, new(session)["id"], ("accepted", {}))                          # still open
    new(session, category="hazard", lon=10.035, lat=10.035)                       # 柳桥镇
    s = stats.stats(session, "TZ", ADMIN)
    assert s["total"] == 9 and s["by_category"] == {"dispute": 8, "hazard": 1}
    d = s["disputes"]
    assert d["total"] == 8 and d["resolved"] == 7 and d["resolution_rate"] == round(7 / 8, 4)
    assert d["within_village"] == round(5 / 7, 4) and d["within_township"] == round(6 / 7, 4)
    assert s["resolution_levels"] == {"group": 2, "village": 3, "township": 1, "district": 1}
    assert s["response"]["accepted"] == 8 and s["response"]["accepted_on_time"] == 1.0
    children = {c["area"]["code"]: c["total"] for c in s["children"]}
    assert children == {"TZ1": 8, "TZ2": 1}
    quiet = stats.stats(session, "TZ", ADMIN, datetime(2027, 1, 1, tzinfo=SHANGHAI), None)
    assert quiet["total"] == 0 and quiet["disputes"]["resolution_rate"] is None


def test_stats_on_the_demo_reproduce_the_article(session, demo):
    s = stats.stats(session, "411103", ADMIN, children=False)
    assert s["total"] == 20000
    assert s["disputes"]["resolution_rate"] > 0.96                # 化解率 96 % 以上
    assert s["disputes"]["within_township"] > s["disputes"]["within_village"] > 0.5


# -- duplicates and links -----------------------------------------------------------------------
def test_a_second_channel_reporting_the_same_matter_is_suggested(session, places):
    first = new(session, source="12345热线", description="玉泉社区两户因排水沟堵塞发生争执")["id"]
    far = new(session, lon=10.035, lat=10.035, description="玉泉社区两户因排水沟堵塞发生争执")["id"]
    later = new(session, occurred_at="2026-10-09T09:30:00+08:00")["id"]
    other = new(session, category="hazard", description="路灯损坏", lon=10.0052)["id"]
    body = intake.create(session, ACTOR, report({"source": "网格员上报", "lon": 10.0051,
                                               "occurred_at": "2026-10-01T11:00:00+08:00",
                                               "description": "两户排水沟堵塞争执"}), ADMIN)
    ids = [d["id"] for d in body["duplicates"]]
    assert ids[0] == first and far not in ids and later not in ids
    assert other not in ids or ids.index(other) > 0
    best = body["duplicates"][0]
    assert best["distance_m"] < 20 and best["hours_apart"] == 1.5 and best["text_similarity"] > 0.3


def test_link_and_unlink(session, places):
    a, b = new(session)["id"], new(session, source="110接警")["id"]
    assert duplicates.link(session, ACTOR, b, a, ADMIN) == {"incident_a": min(a, b), "incident_b": max(a, b),
                                                "created": True}
    assert duplicates.link(session, ACTOR, a, b, ADMIN)["created"] is False
    assert queries.get(session, a, ADMIN)["properties"]["links"] == [b]
    assert any(d["id"] == b and d["linked"] for d in duplicates.duplicates(session, a, ADMIN))
    duplicates.unlink(session, ACTOR, a, b, ADMIN)
    assert queries.linked(session, a, ADMIN) == []
    with pytest.raises(NotFound):
        duplicates.unlink(session, ACTOR, a, b, ADMIN)
    with pytest.raises(InvalidInput):
        duplicates.link(session, ACTOR, a, a, ADMIN)
    with pytest.raises(NotFound):
        duplicates.link(session, ACTOR, a, 987654321, ADMIN)


def test_similarity_works_on_chinese():
    assert duplicates.similarity("两户因排水沟堵塞发生争执", "排水沟堵塞两户争执") > 0.4
    assert duplicates.similarity("路灯损坏", "两户因排水沟堵塞发生争执") == 0


# -- privacy -----------------------------------------------------------------------------------
def test_sensitive_points_and_reporters_only_for_those_who_act(session, places):
    secret = new(session, sensitive=True, lon=10.002, lat=10.003, address="翠湖路3号")["id"]
    plain = new(session, lon=10.006, lat=10.006)["id"]
    analyst = Audience("analyst", Scope.all())
    dispatcher = Audience("dispatcher", Scope.all())
    seen = {f["id"]: f for f in queries.features(session, analyst, queries.Filters(area="TZ"))["features"]}
    hidden = seen[secret]
    centre = session.execute(text("SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) "
                                  "FROM areas WHERE code = 'TZ1A1'")).one()
    assert hidden["geometry"]["coordinates"] == pytest.approx(list(centre))
    assert hidden["properties"]["generalised"] is True
    assert hidden["properties"]["address"] is None and hidden["properties"]["reporter_name"] is None
    assert seen[plain]["geometry"]["coordinates"] == [10.006, 10.006]
    assert seen[plain]["properties"]["reporter_phone"] is None        # reporters: never for analysts
    exact = {f["id"]: f for f in queries.features(session, dispatcher, queries.Filters(area="TZ"))["features"]}
    assert exact[secret]["geometry"]["coordinates"] == [10.002, 10.003]
    assert exact[secret]["properties"]["reporter_name"] == VALID["reporter_name"]
    # A small box around the true point must not reveal a generalised incident to the analyst.
    box = queries.Filters(bbox=(10.0015, 10.0025, 10.0025, 10.0035))
    assert secret not in {f["id"] for f in queries.features(session, analyst, box)["features"]}
    assert secret in {f["id"] for f in queries.features(session, dispatcher, box)["features"]}
    assert queries.get(session, secret, analyst)["properties"]["generalised"] is True


def test_viewers_see_only_their_scope(session, places):
    mine = new(session)["id"]
    theirs = new(session, lon=10.035, lat=10.035)["id"]
    path = session.execute(text("SELECT path::text FROM areas WHERE code = 'TZ1A1'")).scalar()
    worker = Audience("grid_worker", Scope(("TZ1A1",), (path,)))
    assert [f["id"] for f in queries.features(session, worker, queries.Filters())["features"]] == [mine]
    with pytest.raises(NotFound):
        queries.get(session, theirs, worker)


def test_list_filters(session, places):
    a = new(session, category="hazard", severity=3, occurred_at="2026-09-01T08:00:00+08:00")["id"]
    b = new(session, occurred_at="2026-10-05T08:00:00+08:00")["id"]
    walk(session, b, ("accepted", {}))
    f = queries.parse_filters({"category": "隐患,事故", "area": "TZ"})
    assert [x["id"] for x in queries.features(session, ADMIN, f)["features"]] == [a]
    f = queries.parse_filters({"status": "accepted", "from": "2026-10-01", "to": "2026-10-31", "area": "TZ"})
    assert [x["id"] for x in queries.features(session, ADMIN, f)["features"]] == [b]
    f = queries.parse_filters({"severity": "3", "area": "TZ1A"})
    assert [x["id"] for x in queries.features(session, ADMIN, f)["features"]] == [a]
    page = queries.features(session, ADMIN, queries.parse_filters({"limit": "1", "area": "TZ"}))
    assert page["numberMatched"] == 2 and page["numberReturned"] == 1
    props = page["features"][0]["properties"]
    assert {"id", "external_id", "category", "severity", "status", "occurred_at", "grid_code",
            "geocode_level"} <= set(props)


@pytest.mark.parametrize("args,field", [
    ({"bbox": "1,2"}, "bbox"), ({"from": "soon"}, "from"), ({"status": "lost"}, "status"),
    ({"category": "weather"}, "category"), ({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"),
    ({"offset": "-1"}, "offset"), ({"severity": "9"}, "severity"),
    ({"from": "2026-10-02", "to": "2026-10-01"}, "to"),
])
def test_bad_list_filters(args, field):
    with pytest.raises(InvalidInput) as err:
        queries.parse_filters(args)
    assert err.value.field == field
