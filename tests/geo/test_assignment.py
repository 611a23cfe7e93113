"""Grid assignment: the finest area containing each point in every shape of the one rule, and the
grid lookup bulk assignment reads.
"""
from __future__ import annotations

import pytest
from sqlalchemy import text

from geo.errors import InvalidInput
from geo.incidents import (
    assignment,
    gridlookup,
    queries,
)
from geo.policy import Scope
from tests import town
from tests.geo.incidents_common import ACTOR, ADMIN, new


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
