"""Incidents in the core: intake and location, assignment, the 三级过滤网 lifecycle, statistics,
duplicates and links, privacy, file import (CSV/XLSX), and the Chicago acceptance test."""
from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from geo import audit, crs
from geo.errors import Conflict, Forbidden, InvalidInput, NotFound
from geo.incidents import (
    assignment,
    duplicates,
    gridlookup,
    intake,
    lifecycle,
    queries,
    stats,
    tabular,
    workflow,
)
from geo.policy import Audience, Scope
from tests import town
from tests.incident_cases import BAD_REPORTS, VALID, report

ADMIN = Audience.system()
ACTOR = audit.Actor("test")
SHANGHAI = timezone(timedelta(hours=8))


@pytest.fixture()
def places(session, tiny):
    return town.build(session)


def new(session, **changes) -> dict:
    return intake.create(session, ACTOR, report(changes), ADMIN)


def count(session, table: str) -> int:
    return session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


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


# -- assignment --------------------------------------------------------------------------------
def test_a_point_on_a_shared_edge_goes_to_the_smaller_id(session, places):
    body = new(session, lon=10.01, lat=10.005)  # the edge between TZ1A1 and TZ1A2
    ids = dict(session.execute(text("SELECT code, id FROM areas WHERE code IN ('TZ1A1', 'TZ1A2')")).all())
    expected = min(ids, key=ids.get)
    assert body["properties"]["grid_code"] == expected
    assert assignment.assign(session, incident_ids=[body["id"]]) == 0  # stable: nothing to change


def test_reassignment_after_a_boundary_edit(session, places):
    moved = new(session, lon=10.008, lat=10.005)["id"]          # TZ1A1, near the edge at 10.01
    stays = new(session, lon=10.003, lat=10.005)["id"]
    other = new(session, lon=10.035, lat=10.035)["id"]
    # Move the shared edge of TZ1A1 / TZ1A2 west from 10.01 to 10.006.
    session.execute(text("UPDATE areas SET geom = ST_Multi(ST_MakeEnvelope(10.0, 10.0, 10.006, 10.02, 4326)) "
                         "WHERE code = 'TZ1A1'"))
    session.execute(text("UPDATE areas SET geom = ST_Multi(ST_MakeEnvelope(10.006, 10.0, 10.02, 10.02, 4326)) "
                         "WHERE code = 'TZ1A2'"))
    touched = "POLYGON((10.006 10.0, 10.01 10.0, 10.01 10.02, 10.006 10.02, 10.006 10.0))"
    assert assignment.reassignment_impact(session, within_wkt=touched) == {"checked": 1, "moving": 1,
                                                                      "outside": 0}
    assert assignment.assign(session, within_wkt=touched) == 1
    grids = dict(session.execute(text(
        "SELECT i.id, a.code FROM incidents i JOIN areas a ON a.id = i.grid_id WHERE i.id IN (:a, :b, :c)"),
        {"a": moved, "b": stays, "c": other}).all())
    assert grids == {moved: "TZ1A2", stays: "TZ1A1", other: "TZ2B2"}
    assert assignment.assign(session, area_codes=["TZ"]) == 0
    assert assignment.reassignment_impact(session, area_codes=["TZ"])["moving"] == 0


def test_both_shapes_of_assignment_agree(session, places, monkeypatch):
    ids = [new(session, lon=lon, lat=lat)["id"] for lon, lat in
           ((10.005, 10.005), (10.01, 10.005), (10.02, 10.02), (10.035, 10.025), (11.5, 12.5))]
    few = dict(session.execute(text("SELECT id, grid_id FROM incidents WHERE id = ANY(:i)"), {"i": ids}).all())
    session.execute(text("UPDATE incidents SET grid_id = NULL, area_id = NULL WHERE id = ANY(:i)"), {"i": ids})
    monkeypatch.setattr(assignment, "FEW", 0)   # force the piece-by-piece shape
    assert assignment.assign(session, incident_ids=ids) == 4                   # the outside one stays NULL
    many = dict(session.execute(text("SELECT id, grid_id FROM incidents WHERE id = ANY(:i)"), {"i": ids}).all())
    assert many == few and list(few.values()).count(None) == 1
    session.execute(text("UPDATE incidents SET grid_id = NULL, area_id = NULL WHERE id = ANY(:i)"), {"i": ids})
    box = "POLYGON((10 10, 10.04 10, 10.04 10.04, 10 10.04, 10 10))"
    assert assignment.assign(session, within_wkt=box) == 4                     # pieces near the box only
    assert dict(session.execute(text("SELECT id, grid_id FROM incidents WHERE id = ANY(:i)"),
                                {"i": ids}).all()) == few


def test_a_parent_not_covered_by_its_children_keeps_the_rest(session, places):
    # Shrink one grid: the strip it no longer covers still belongs to its village.
    session.execute(text("UPDATE areas SET geom = ST_Multi(ST_MakeEnvelope(10.0, 10.0, 10.008, 10.02, 4326)) "
                         "WHERE code = 'TZ1A1'"))
    i = new(session, lon=10.009, lat=10.005)["id"]
    assert queries.get(session, i, ADMIN)["properties"]["grid_code"] == "TZ1A"
    session.execute(text("UPDATE incidents SET grid_id = NULL, area_id = NULL WHERE id = :i"), {"i": i})
    assert assignment.assign(session, within_wkt="POLYGON((10 10, 10.04 10, 10.04 10.04, 10 10.04, 10 10))") == 1
    assert queries.get(session, i, ADMIN)["properties"]["grid_code"] == "TZ1A"


def test_assignment_needs_a_selection(session, places):
    with pytest.raises(InvalidInput):
        assignment.assign(session)


# -- the grid lookup (bulk assignment) ---------------------------------------------------------
# In a database of its own (`lone`): the shared one holds regions too far apart for one lookup.
def add_points(session, points) -> list[int]:
    """Incidents at exact points (lon, lat), unassigned; return their ids in order."""
    return list(session.execute(text("""
        INSERT INTO incidents (category, occurred_at, geom, source)
        SELECT 'dispute', now(), ST_SetSRID(ST_MakePoint(x, y), 4326), 'lookup-test'
          FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[])) WITH ORDINALITY AS u(x, y, n)
         ORDER BY n RETURNING id"""), {"xs": [p[0] for p in points], "ys": [p[1] for p in points]}).scalars())


def assigned(session, ids) -> dict:
    return dict(session.execute(text(
        "SELECT i.id, a.code FROM incidents i LEFT JOIN areas a ON a.id = i.grid_id "
        "WHERE i.id = ANY(:i)"), {"i": ids}).all())


def unassign(session, ids) -> None:
    session.execute(text("UPDATE incidents SET grid_id = NULL, area_id = NULL, district_code = NULL, "
                         "outside_jurisdiction = false WHERE id = ANY(:i)"), {"i": ids})


def by_lookup(session, ids, monkeypatch) -> dict:
    """Assign the incidents by the grid lookup (built if need be, whatever their number)."""
    unassign(session, ids)
    with monkeypatch.context() as m:
        m.setattr(assignment, "FEW", 0)
        m.setattr(assignment, "LOOKUP_REBUILD", 0)
        assignment.assign(session, incident_ids=ids)
    return assigned(session, ids)


def by_probe(session, ids) -> dict:
    """Assign the incidents point by point against the areas' own GiST index."""
    unassign(session, ids)
    assignment.assign(session, incident_ids=ids)
    return assigned(session, ids)


def cell_value(session, lon, lat) -> int:
    """What the current lookup holds for the cell of a point (> 0 area, 0 outside, < 0 crossed)."""
    lookup = gridlookup.current(session)
    return session.execute(text(
        "SELECT COALESCE(cells[floor(:x * scale)::int - i0 + 1][floor(:y * scale)::int - j0 + 1], 0) "
        "FROM grid_lookups WHERE fingerprint = :f"),
        {"x": lon, "y": lat, "f": lookup.fingerprint}).scalar_one()


def edge_line(session, lon, lat) -> list[float]:
    """The line of the one edge crossing a point's cell ([0, 0, 0]: none, or several)."""
    lookup = gridlookup.current(session)
    return session.execute(text(
        "SELECT lines[-cells[floor(:x * scale)::int - i0 + 1][floor(:y * scale)::int - j0 + 1]:"
        "-cells[floor(:x * scale)::int - i0 + 1][floor(:y * scale)::int - j0 + 1]][1:3] "
        "FROM grid_lookups WHERE fingerprint = :f"),
        {"x": lon, "y": lat, "f": lookup.fingerprint}).scalar_one()[0]


EDGE = (10.01, 10.005)          # the edge between TZ1A1 and TZ1A2
CORNER = (10.02, 10.02)         # where TZ1A2, TZ1B2, TZ2A1 and TZ2B1 meet
RIM = (10.0, 10.013)            # on the district's outer edge, in TZ1A1 only
NEAR_EDGE = ((10.0099999, 10.005), (10.0100001, 10.005))  # a crossed cell, either side
HAIR = ((10.01 - 5e-13, 10.0051), (10.01 + 5e-13, 10.0051))  # within the margin of that edge
OUTSIDE = ((9.9999999, 10.013), (10.05, 10.05), (10.02, 9.99))


def test_the_grid_lookup_decides_as_the_probe_does(lone, monkeypatch):
    town.add_tiny(lone)
    lattice = [(9.9985 + 0.0011 * i, 9.9985 + 0.0011 * j) for i in range(40) for j in range(40)]
    ids = add_points(lone, [EDGE, CORNER, RIM, *NEAR_EDGE, *OUTSIDE, *HAIR, *lattice])
    looked_up = by_lookup(lone, ids, monkeypatch)
    lookup = gridlookup.current(lone)
    assert lookup is not None and lookup.scale == 2 ** gridlookup.FINEST
    assert looked_up == by_probe(lone, ids)
    edge, corner, rim, west, east, *outside = [looked_up[i] for i in ids[:8]]
    assert [looked_up[i] for i in ids[8:10]] == ["TZ1A1", "TZ1A2"]
    codes = dict(lone.execute(text("SELECT code, id FROM areas")).all())
    assert edge == min(("TZ1A1", "TZ1A2"), key=codes.get)
    assert corner == min(("TZ1A2", "TZ1B2", "TZ2A1", "TZ2B1"), key=codes.get)
    assert (rim, west, east) == ("TZ1A1", "TZ1A1", "TZ1A2")
    assert outside == [None, None, None]
    # The rim's cell is settled, the edge's crossed by that one edge (its side decides a point
    # clear of it, the pieces one on it), the corner's by two.
    assert cell_value(lone, *RIM) == codes["TZ1A1"] and cell_value(lone, 10.05, 10.05) == 0
    assert edge_line(lone, *NEAR_EDGE[0]) == edge_line(lone, *EDGE) != [0, 0, 0]
    assert edge_line(lone, *CORNER) == [0, 0, 0]


def test_outside_every_jurisdiction_is_flagged_by_the_lookup(lone, monkeypatch):
    town.add_tiny(lone)
    ids = add_points(lone, [*OUTSIDE, (10.005, 10.005)])
    by_lookup(lone, ids, monkeypatch)
    rows = lone.execute(text("SELECT grid_id IS NULL, area_id IS NULL, outside_jurisdiction, district_code "
                             "FROM incidents WHERE id = ANY(:i) ORDER BY id"), {"i": ids}).all()
    assert rows == [(True, True, True, None)] * 3 + [(False, False, False, "TZ")]


def test_the_counting_statement_agrees_with_the_pieces(lone, monkeypatch):
    town.add_tiny(lone)
    ids = add_points(lone, [(9.9985 + 0.0013 * i, 9.9985 + 0.0013 * j) for i in range(34) for j in range(34)])
    lone.execute(text("UPDATE incidents SET grid_id = (SELECT id FROM areas WHERE code = 'TZ2B2') "
                      "WHERE id = ANY(:i) AND id % 3 = 0"), {"i": ids})
    monkeypatch.setattr(assignment, "LOOKUP_REBUILD", 0)
    looked_up = assignment.reassignment_impact(lone, everything=True)
    assert gridlookup.current(lone) is not None
    monkeypatch.setattr(assignment, "_lookup", lambda *a, **k: None)
    assert looked_up == assignment.reassignment_impact(lone, everything=True)
    assert looked_up["checked"] == len(ids) and 0 < looked_up["outside"] < looked_up["moving"]


def test_a_split_makes_the_lookup_stale_and_the_next_bulk_run_rebuilds_it(lone, monkeypatch):
    from geo.boundaries import changes
    from tests.geo import planner_fixtures

    planner_fixtures.build(lone)
    ids = add_points(lone, [(20.001 + 0.0007 * i, 19.999 + 0.0007 * j) for i in range(50) for j in range(48)])
    by_lookup(lone, ids, monkeypatch)
    before = gridlookup.current(lone)
    versions = {"EV1001003": lone.execute(text("SELECT version FROM areas WHERE code = 'EV1001003'")).scalar()}
    changes.apply(lone, "split", areas=["EV1001003"], base_versions=versions, reason="测试", actor=ACTOR,
                geometry={"type": "LineString", "coordinates": [[19.99, 20.007], [20.02, 20.010]]}, scope=Scope.all())
    assert gridlookup.current(lone) is None                 # the areas changed under it
    after = by_lookup(lone, ids, monkeypatch)
    rebuilt = gridlookup.current(lone)
    assert rebuilt is not None and rebuilt.fingerprint != before.fingerprint
    assert lone.execute(text("SELECT count(*) FROM grid_lookups")).scalar() == 1
    assert after == by_probe(lone, ids)
    assert {"EV1001005", "EV1001006"} <= set(after.values()) and "EV1001003" not in after.values()


def test_a_stale_lookup_never_decides(lone, monkeypatch):
    town.add_tiny(lone)
    ids = add_points(lone, [(10.008, 10.005), (10.003, 10.005), (10.035, 10.035)])
    by_lookup(lone, ids, monkeypatch)
    stale = gridlookup.current(lone)
    # Move the TZ1A1/TZ1A2 edge west, as an edit committed by someone else meanwhile would.
    lone.execute(text("UPDATE areas SET geom = ST_Multi(ST_MakeEnvelope(10.0, 10.0, 10.006, 10.02, 4326)) "
                      "WHERE code = 'TZ1A1'"))
    lone.execute(text("UPDATE areas SET geom = ST_Multi(ST_MakeEnvelope(10.006, 10.0, 10.02, 10.02, 4326)) "
                      "WHERE code = 'TZ1A2'"))
    monkeypatch.setattr(gridlookup, "current", lambda session: stale)
    monkeypatch.setattr(assignment, "FEW", 0)
    unassign(lone, ids)
    assignment.assign(lone, incident_ids=ids)
    got = assigned(lone, ids)
    assert [got[i] for i in ids] == ["TZ1A2", "TZ1A1", "TZ2B2"]
    assert assignment.reassignment_impact(lone, everything=True) == {"checked": 3, "moving": 0, "outside": 0}


def test_a_lookup_replaced_meanwhile_never_decides_and_wild_points_are_outside(lone, monkeypatch):
    town.add_tiny(lone)
    ids = add_points(lone, [(10.005, 10.005), (10.035, 10.035), (500000.0, 3700000.0)])
    by_lookup(lone, ids, monkeypatch)
    first = gridlookup.current(lone)
    # An edit and its revert, while another bulk run rebuilt the lookup for the edited areas: the
    # areas are as the first lookup was built from, but its row is gone.
    lone.execute(text("UPDATE areas SET geom = ST_Translate(geom, 0.001, 0) WHERE code = 'TZ1A1'"))
    gridlookup.build(lone)
    lone.execute(text("UPDATE areas SET geom = ST_Translate(geom, -0.001, 0) WHERE code = 'TZ1A1'"))
    assert gridlookup.fingerprint(lone) == first.fingerprint and gridlookup.current(lone) is None
    monkeypatch.setattr(gridlookup, "current", lambda session: first)
    monkeypatch.setattr(assignment, "FEW", 0)
    unassign(lone, ids)
    assignment.assign(lone, incident_ids=ids)
    got = assigned(lone, ids)
    assert [got[i] for i in ids] == ["TZ1A1", "TZ2B2", None]
    assert assignment.reassignment_impact(lone, everything=True) == {"checked": 3, "moving": 0, "outside": 1}


def test_whoever_does_not_get_the_build_lock_assigns_without_a_lookup(lone, lone_engine, monkeypatch):
    town.add_tiny(lone)
    ids = add_points(lone, [EDGE, (10.005, 10.005), (10.05, 10.05)])
    with lone_engine.connect() as other:
        other.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": gridlookup.LOCK})
        assert gridlookup.refresh(lone) is None
        looked_up = by_lookup(lone, ids, monkeypatch)
        other.rollback()
    assert gridlookup.current(lone) is None
    assert looked_up == by_probe(lone, ids)


def test_no_lookup_over_regions_too_far_apart(lone):
    from tests.geo import planner_fixtures

    town.add_tiny(lone)
    planner_fixtures.build(lone)                            # 10° away: cells would be kilometres
    assert gridlookup.refresh(lone) is None
    assert gridlookup.resolution(10.0, 10.0, 10.04, 10.04) == gridlookup.FINEST
    assert gridlookup.resolution(113.75, 33.58, 114.11, 33.76) == 11     # the demo: ≈ 50 m cells
    assert gridlookup.resolution(10.0, 10.0, 20.05, 20.04) is None


# -- lifecycle ---------------------------------------------------------------------------------
def walk(session, incident_id, *steps):
    body = None
    for to, extra in steps:
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


# -- import ------------------------------------------------------------------------------------
CSV_HEADERS = {"external_id": "编号", "occurred_at": "发生时间", "category": "事件类型",
               "subtype": "子类", "severity": "等级", "lon": "经度", "lat": "纬度", "address": "地址",
               "description": "事件描述", "reporter_name": "反映人", "reporter_phone": "联系电话",
               "sensitive": "敏感"}


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(CSV_HEADERS.values()))
        w.writeheader()
        for r in rows:
            w.writerow({CSV_HEADERS[k]: v for k, v in r.items() if k in CSV_HEADERS})
    return path


def write_xlsx(path: Path, rows: list[dict]) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(list(CSV_HEADERS.values()))
    for r in rows:
        sheet.append([r.get(k) for k in CSV_HEADERS])
    book.save(path)
    return path


def good_rows(n: int) -> list[dict]:
    return [report({"external_id": f"R{k}", "lon": 10.001 + 0.001 * k,
                    "occurred_at": "2026-10-01 09:30"}) for k in range(n)]


def test_csv_with_chinese_headers_imports(session, places, tmp_path):
    rows = good_rows(3) + [report({"external_id": "A1", "lon": None, "lat": None,
                                   "address": "河东街道翠湖路12号晨曦花园3号楼"})]
    result = tabular.import_file(session, ACTOR, write_csv(tmp_path / "事件.csv", rows))
    assert result.rejected == [] and result.imported == 4 and result.written
    assert result.columns["occurred_at"] == "发生时间" and result.columns["lon"] == "经度"
    assert result.geocode_levels == {"coordinates": 3, "building": 1}
    got = session.execute(text("SELECT external_id, a.code, occurred_at FROM incidents i "
                               "JOIN areas a ON a.id = i.grid_id WHERE source = 'import:事件.csv' "
                               "ORDER BY external_id")).all()
    assert [(e, c) for e, c, _ in got] == [("A1", "TZ1A2"), ("R0", "TZ1A1"), ("R1", "TZ1A1"), ("R2", "TZ1A1")]
    assert got[1][2] == datetime(2026, 10, 1, 9, 30, tzinfo=SHANGHAI)  # local time by default
    assert session.execute(text("SELECT count(*) FROM incident_events e JOIN incidents i ON "
                                "i.id = e.incident_id WHERE i.source = 'import:事件.csv'")).scalar() == 4


def test_xlsx_with_bad_rows_is_refused_with_a_line_by_line_report(session, places, tmp_path):
    rows = good_rows(2) + [report({"external_id": "B1", "category": "天气"}),
                           report({"external_id": "B2", "lat": 95}),
                           report({"external_id": "B3", "lon": None, "lat": None, "address": "火星基地一号"}),
                           report({"external_id": "R0"})]
    path = write_xlsx(tmp_path / "事件.xlsx", rows)
    before = {t: count(session, t) for t in ("incidents", "incident_events", "audit_log")}
    result = tabular.import_file(session, ACTOR, path)
    assert [(r["line"], r["field"]) for r in result.rejected] == [
        (4, "category"), (5, "lat"), (6, "address"), (7, "external_id")]
    assert "repeats line 2" in result.rejected[3]["reason"]
    assert result.imported == 0 and not result.written
    assert {t: count(session, t) for t in before} == before          # nothing written at all
    partial = tabular.import_file(session, ACTOR, path, skip_bad=True)
    assert partial.imported == 2 and len(partial.rejected) == 4


# A file's coordinate system is a command option, not a row value: those cases are the option's.
ROW_CASES = [c for c in BAD_REPORTS if c[3]]


@pytest.mark.parametrize("name,changes,field,_csv", ROW_CASES, ids=[c[0] for c in ROW_CASES])
def test_bad_rows_are_reported_with_line_and_field(session, places, tmp_path, name, changes, field, _csv):
    rows = good_rows(1) + [report({**changes, "external_id": "BAD"})]
    result = tabular.import_file(session, ACTOR, write_csv(tmp_path / "bad.csv", rows))
    assert [(r["line"], r["field"]) for r in result.rejected] == [(3, field)]
    assert result.imported == 0


def test_dry_run_reports_and_writes_nothing(session, places, tmp_path):
    before = count(session, "incidents"), count(session, "audit_log")
    result = tabular.import_file(session, ACTOR, write_csv(tmp_path / "a.csv", good_rows(3)), dry_run=True)
    assert result.imported == 3 and result.dry_run and not result.written
    assert (count(session, "incidents"), count(session, "audit_log")) == before


def test_importing_the_same_file_twice_rejects_every_row(session, places, tmp_path):
    path = write_csv(tmp_path / "a.csv", good_rows(2))
    tabular.import_file(session, ACTOR, path)
    again = tabular.import_file(session, ACTOR, path)
    assert [r["field"] for r in again.rejected] == ["external_id", "external_id"]
    assert "already imported as incident" in again.rejected[0]["reason"]


def test_one_category_for_a_file_turns_its_own_into_subtypes(session, places, tmp_path):
    path = tmp_path / "police.csv"
    path.write_text("Case,When,Primary Type,X,Y\nC1,2026-10-01 08:00,THEFT,10.005,10.005\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as err:
        tabular.import_file(session, ACTOR, path, mapping={"lon": "X", "lat": "Y"})
    assert err.value.field == "map" and "occurred_at" in err.value.message
    result = tabular.import_file(session, ACTOR, path, category="案件",
                                 mapping={"occurred_at": "When", "lon": "X", "lat": "Y",
                                          "external_id": "Case"})
    assert result.imported == 1
    row = session.execute(text("SELECT category, subtype, attrs FROM incidents WHERE external_id = 'C1'")).one()
    assert row[0] == "criminal" and row[1] == "THEFT" and row[2]["import"]["line"] == 2


@pytest.mark.parametrize("kw,field", [
    ({"mapping": {"colour": "地址"}}, "map"), ({"mapping": {"address": "Nowhere"}}, "map"),
    ({"category": "weather"}, "category"), ({"crs": "mars"}, "crs"), ({"tz": "Mars/Base"}, "timezone"),
])
def test_bad_import_options(session, places, tmp_path, kw, field):
    with pytest.raises(InvalidInput) as err:
        tabular.import_file(session, ACTOR, write_csv(tmp_path / "a.csv", good_rows(1)), **kw)
    assert err.value.field == field


def test_not_a_table(session, places, tmp_path):
    (tmp_path / "a.json").write_text("{}")
    with pytest.raises(InvalidInput):
        tabular.import_file(session, ACTOR, tmp_path / "a.json")
    (tmp_path / "b.xlsx").write_bytes(b"not a zip")
    with pytest.raises(InvalidInput):
        tabular.import_file(session, ACTOR, tmp_path / "b.xlsx")


def test_gcj02_file_with_a_time_format(session, places, tmp_path, demo):
    lon, lat = session.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM places WHERE kind = 'door' "
                                    "ORDER BY id LIMIT 1")).one()
    glon, glat = crs.wgs84_to_gcj02(lon, lat)
    path = tmp_path / "gaode.csv"
    path.write_text(f"时间,类型,经度,纬度\n01/10/2026 08:30,隐患,{glon},{glat}\n", encoding="utf-8")
    result = tabular.import_file(session, ACTOR, path, crs="gcj02", time_format="%d/%m/%Y %H:%M")
    assert result.imported == 1
    got = session.execute(text("SELECT ST_X(geom), ST_Y(geom), occurred_at FROM incidents "
                               "WHERE id = :i"), {"i": result.ids[0]}).one()
    assert abs(got[0] - lon) < 1e-7 and abs(got[1] - lat) < 1e-7
    assert got[2] == datetime(2026, 10, 1, 8, 30, tzinfo=SHANGHAI)


# -- the Chicago acceptance test ----------------------------------------------------------------
@pytest.mark.realdata
def test_chicago_crimes_land_in_the_beat_their_beat_column_names(session, realdata, tmp_path):
    import json

    from shapely.geometry import shape

    beats = json.loads((realdata / "chicago" / "police_beats.geojson").read_text())
    session.execute(text("INSERT INTO areas (code, name, level, geom) VALUES ('CHI', 'Chicago', 1, "
                         "ST_Multi(ST_MakeEnvelope(-88.5, 41.5, -87.3, 42.2, 4326)))"))
    rows = []
    for f in beats["features"]:
        beat = str(f["properties"]["BEAT_NUM"]).zfill(4)
        rows.append({"code": f"CHI-{beat}", "name": f"Beat {beat}", "wkt": shape(f["geometry"]).wkt})
    # A beat may come in several features (its parts): one area per beat, their union.
    session.execute(text(
        "INSERT INTO areas (code, name, level, parent_id, geom) "
        "SELECT r.code, min(r.name), 2, (SELECT id FROM areas WHERE code = 'CHI'), "
        "ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_Union(ST_GeomFromText(r.wkt, 4326))), 3)) "
        "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(code text, name text, wkt text) "
        "GROUP BY r.code"),
        {"rows": json.dumps(rows)})
    # The jurisdiction is exactly the union of its beats: a point in no beat is outside it.
    session.execute(text("UPDATE areas SET geom = (SELECT ST_Multi(ST_Union(c.geom)) FROM areas c "
                         "WHERE c.parent_id = areas.id) WHERE code = 'CHI'"))
    source = realdata / "chicago" / "crimes_sample_2012_2016.csv"
    result = tabular.import_file(
        session, ACTOR, source, category="criminal", tz="America/Chicago",
        mapping={"external_id": "ID", "occurred_at": "Date", "lon": "Longitude", "lat": "Latitude",
                 "description": "Description"})
    assert result.rejected == [] and result.imported == 5000
    agreement = session.execute(text("""
        SELECT avg(CASE WHEN a.code = 'CHI-' || lpad(i.attrs->'row'->>'Beat', 4, '0') THEN 1.0 ELSE 0 END),
               count(*) FILTER (WHERE i.subtype = 'THEFT'), count(*) FILTER (WHERE i.outside_jurisdiction)
          FROM incidents i LEFT JOIN areas a ON a.id = i.grid_id
         WHERE i.source = 'import:crimes_sample_2012_2016.csv'""")).one()
    print(f"\nChicago: {float(agreement[0]):.1%} of 5,000 incidents land in the beat their Beat column "
          f"names; {agreement[2]} fall in no beat")
    assert float(agreement[0]) >= 0.90
    assert agreement[1] == 1153                      # Primary Type became the subtype
    assert agreement[2] < 50                         # ~0.3 % in no beat: flagged, not dropped
