"""Boundary edits: every operation keeps each level an exact partition, stale edits are refused
with what changed, previews write nothing, and reverting restores the very same WKB."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from geo import audit
from geo.boundaries import changes, history, locks, partition
from geo.errors import Conflict, InvalidInput
from geo.policy import Scope
from tests.geo import planner_fixtures

ACTOR = audit.Actor("planner-test")


@pytest.fixture()
def region(session):
    return planner_fixtures.build(session)


def box(x0, y0, x1, y1):
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def line(*points):
    return {"type": "LineString", "coordinates": [list(p) for p in points]}


def versions(session, prefix="EV"):
    return dict(session.execute(text("SELECT code, version FROM areas WHERE code LIKE :p"),
                                {"p": prefix + "%"}).all())


def wkb(session, prefix="EV"):
    return {r[0]: bytes(r[1]) for r in session.execute(text(
        "SELECT code, ST_AsBinary(geom) FROM areas WHERE code LIKE :p"), {"p": prefix + "%"})}


def run(session, op, codes, geometry=None, **kw):
    current = versions(session)
    return changes.apply(session, op, areas=codes, geometry=geometry,
                       base_versions={c: current[c] for c in codes}, reason=kw.pop("reason", "测试"),
                       actor=ACTOR, **kw, scope=Scope.all())


def assert_exact_partition(session, root="EV"):
    """Children's union equals each parent (planar sliver < 1e-3 m²) and no two overlap (< 1e-6 m²)."""
    m2 = partition.sliver_m2_sql
    rows = session.execute(text(f"""
        SELECT p.code, {m2('ST_SymDifference(p.geom, u.g)')} AS diff
          FROM areas p, areas r,
               LATERAL (SELECT ST_Union(c.geom) AS g FROM areas c WHERE c.parent_id = p.id) u
         WHERE r.code = :root AND p.path <@ r.path AND u.g IS NOT NULL"""), {"root": root}).all()
    assert rows and all(diff < 1e-3 for _, diff in rows), rows
    overlap = session.execute(text(f"""
        SELECT max({m2('ST_CollectionExtract(ST_Intersection(a.geom, b.geom), 3)')})
          FROM areas a JOIN areas b ON a.parent_id = b.parent_id AND a.id < b.id AND a.geom && b.geom
          JOIN areas r ON r.code = :root WHERE a.path <@ r.path"""), {"root": root}).scalar()
    assert (overlap or 0) < 1e-6, overlap
    assert partition.validate_partition(session, root) == []


# -- each operation --------------------------------------------------------------------------
def test_transfer_moves_a_piece_and_households_and_reassigns_incidents(session, region):
    a, b = "EV1001001", "EV1001002"
    result = run(session, "transfer", [a, b], box(20.010, 20.020, 20.016, 20.026))
    assert result.change_id and not result.preview
    rows = {r["code"]: r for r in result.rows}
    assert rows[a]["after"]["area_m2"] < rows[a]["before"]["area_m2"]
    assert rows[b]["after"]["area_m2"] > rows[b]["before"]["area_m2"]
    moved = rows[a]["before"]["households"] - rows[a]["after"]["households"]
    assert moved > 0 and rows[b]["after"]["households"] == rows[b]["before"]["households"] + moved
    assert versions(session)[a] == 2 and versions(session)[b] == 2
    assert_exact_partition(session)
    # Every incident and enterprise sits in the grid that contains it, by the lowest-id rule.
    wrong = session.execute(text("""
        SELECT count(*) FROM incidents i WHERE i.grid_id IN (SELECT id FROM areas WHERE code LIKE 'EV%')
           AND i.grid_id <> (SELECT id FROM areas g WHERE g.level = 4 AND ST_Intersects(g.geom, i.geom)
                              ORDER BY id LIMIT 1)""")).scalar()
    assert wrong == 0
    change = session.execute(text("SELECT kind, reason, author_id FROM boundary_changes WHERE id = :c"),
                             {"c": result.change_id}).one()
    assert change.kind == "transfer" and change.reason == "测试"
    assert session.execute(text("SELECT count(*) FROM audit_log WHERE action = 'boundary.transfer' "
                                "AND target_id = :c"), {"c": str(result.change_id)}).scalar() == 1


def test_preview_reports_impact_and_writes_nothing(session, region):
    before_wkb, before_changes = wkb(session), session.execute(
        text("SELECT count(*) FROM boundary_changes")).scalar()
    result = changes.apply(session, "transfer", areas=["EV1001001", "EV1001002"],
                         geometry=box(20.010, 20.020, 20.016, 20.026), reason=None, actor=ACTOR,
                         preview=True, scope=Scope.all())
    assert result.preview and result.change_id is None
    row = result.rows[0]
    for key in ("area_m2", "households", "population", "entities", "open_incidents", "staff",
                "households_per_worker"):
        assert key in row["before"] and key in row["after"]
    assert "EV1001" in result.balance and {"before", "after"} <= set(result.balance["EV1001"])
    assert wkb(session) == before_wkb
    assert session.execute(text("SELECT count(*) FROM boundary_changes")).scalar() == before_changes


def test_split_by_a_line_makes_two_new_grids_with_new_codes(session, region):
    result = run(session, "split", ["EV1001003"], line((19.99, 20.007), (20.02, 20.010)))
    status = {r["code"]: r["status"] for r in result.rows}
    assert status == {"EV1001003": "retired", "EV1001005": "created", "EV1001006": "created"}
    new = session.execute(text("SELECT code, households, name FROM areas WHERE code IN "
                               "('EV1001005', 'EV1001006') ORDER BY code")).all()
    assert sum(h for _, h, _ in new) == 390 and all("网格" in n for *_, n in new)
    assert session.execute(text("SELECT count(*) FROM areas WHERE code = 'EV1001003'")).scalar() == 0
    # The retired grid's staff went with it into its largest successor.
    assert session.execute(text("SELECT count(*) FROM area_staff s JOIN areas a ON a.id = s.area_id "
                                "WHERE a.code IN ('EV1001005', 'EV1001006')")).scalar() == 1
    assert_exact_partition(session)


def test_split_refuses_a_line_that_does_not_cross(session, region):
    with pytest.raises(InvalidInput, match="does not cut"):
        run(session, "split", ["EV1001003"], line((20.001, 20.008), (20.005, 20.009)))


def test_merge_requires_adjacent_siblings(session, region):
    result = run(session, "merge", ["EV1001001", "EV1001002"])
    assert {r["code"]: r["status"] for r in result.rows} == {"EV1001001": "changed",
                                                              "EV1001002": "retired"}
    assert session.execute(text("SELECT households FROM areas WHERE code = 'EV1001001'")).scalar() == 660
    assert_exact_partition(session)
    with pytest.raises(InvalidInput, match="not in the same parent"):
        run(session, "merge", ["EV1001004", "EV1002001"])


def test_reshape_moves_shared_edges_of_neighbours(session, region):
    outline = {"type": "Polygon", "coordinates": [[
        [20.0125, 19.9987], [20.02, 19.998], [20.03, 20.01], [20.03, 20.018], [20.0136, 20.019],
        [20.0125, 19.9987]]]}
    result = run(session, "reshape", ["EV1001004"], outline)
    changed = {r["code"] for r in result.rows if r["status"] == "changed"}
    assert "EV1001004" in changed and len(changed) >= 2
    assert_exact_partition(session)


def test_reshape_refuses_to_swallow_a_neighbour(session, region):
    with pytest.raises(InvalidInput, match="swallow"):
        run(session, "reshape", ["EV1001001"], box(19.99, 20.0, 20.04, 20.04))


def test_partition_a_village_from_scratch_with_polygons(session, region):
    pieces = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": box(19.99, 19.99, 20.012, 20.04)},
        {"type": "Feature", "properties": {}, "geometry": box(20.0115, 19.99, 20.04, 20.04)}]}
    result = run(session, "partition", ["EV1001"], pieces)
    assert sum(r["status"] == "retired" for r in result.rows) == 4
    assert sum(r["status"] == "created" for r in result.rows) == 2
    assert session.execute(text("SELECT sum(a.households) FROM areas a JOIN areas v ON v.id = a.parent_id "
                                "WHERE v.code = 'EV1001'")).scalar() == 1480
    assert_exact_partition(session)


def test_move_a_grid_to_the_neighbouring_village_adjusts_both(session, region):
    before = dict(session.execute(text("SELECT code, households FROM areas WHERE code IN "
                                       "('EV1001', 'EV1002')")).all())
    result = run(session, "move", ["EV1002001", "EV1001"])
    assert {"EV1001", "EV1002"} <= {r["code"] for r in result.rows}
    moved = session.execute(text("SELECT a.code, p.code FROM areas a JOIN areas p ON p.id = a.parent_id "
                                 "WHERE a.code LIKE 'EV1001%' AND a.level = 4 ORDER BY a.id DESC "
                                 "LIMIT 1")).one()
    assert moved == ("EV1001005", "EV1001")
    after = dict(session.execute(text("SELECT code, households FROM areas WHERE code IN "
                                      "('EV1001', 'EV1002')")).all())
    assert after["EV1001"] == before["EV1001"] + 310 and after["EV1002"] == before["EV1002"] - 310
    assert_exact_partition(session)


def test_stale_base_version_is_a_conflict_naming_the_change(session, region):
    stale = versions(session)
    run(session, "transfer", ["EV1001001", "EV1001002"], box(20.010, 20.020, 20.016, 20.026),
        reason="first planner")
    with pytest.raises(Conflict) as caught:
        changes.apply(session, "merge", areas=["EV1001001", "EV1001002"],
                    base_versions={"EV1001001": stale["EV1001001"], "EV1001002": stale["EV1001002"]},
                    reason="second planner", actor=ACTOR, scope=Scope.all())
    assert "first planner" in caught.value.message and "version 2" in caught.value.message
    assert caught.value.details["stale"][0]["changes"][0]["kind"] == "transfer"


def test_bad_requests_name_the_field(session, region):
    cases = [
        (dict(op="teleport", areas=["EV1001001"]), "op"),
        (dict(op="merge", areas="EV1001001"), "areas"),
        (dict(op="merge", areas=["EV1001001", "EV1001002"], reason=""), "reason"),
        (dict(op="merge", areas=["EV1001001", "EV1001002"], base_versions=None), "base_versions"),
        (dict(op="transfer", areas=["EV1001001", "EV1001002"], geometry={"type": "Point",
                                                                          "coordinates": [20, 20]}),
         "geometry"),
        (dict(op="transfer", areas=["EV1001001", "EV1001002"], geometry=box(20.02, 100, 20.03, 101)),
         "geometry"),
    ]
    for kwargs, field in cases:
        kwargs.setdefault("reason", "x y")
        kwargs.setdefault("base_versions", {"EV1001001": 1, "EV1001002": 1})
        with pytest.raises(InvalidInput) as caught:
            changes.apply(session, actor=ACTOR, **kwargs, scope=Scope.all())
        assert caught.value.field == field, (kwargs, caught.value.message)


def test_refused_edit_leaves_nothing_behind(session, region):
    before = wkb(session)
    with pytest.raises(InvalidInput):
        run(session, "reshape", ["EV1001001"], box(19.99, 20.0, 20.04, 20.04))
    assert wkb(session) == before


# -- history ---------------------------------------------------------------------------------
def test_history_as_of_diff_and_revert(session, region):
    before_edit = session.execute(text("SELECT clock_timestamp()")).scalar()
    split = run(session, "split", ["EV1001003"], line((19.99, 20.007), (20.02, 20.010)))
    listed = history.change_list(session, area="EV1001")
    assert listed[0]["id"] == split.change_id and listed[0]["kind"] == "split"
    detail = history.change_detail(session, split.change_id)
    kinds = {(f["properties"]["code"], f["properties"]["kind"]) for f in detail["diff"]["features"]}
    assert ("EV1001003", "removed") in kinds and ("EV1001005", "added") in kinds
    import json
    old = json.loads(history.features_as_of(session, before_edit, Scope.all(), level=4, parent="EV1001"))
    now = json.loads(history.features_as_of(session, session.execute(text("SELECT clock_timestamp()")).scalar(),
                                          Scope.all(), level=4, parent="EV1001"))
    assert [f["id"] for f in old["features"]] == ["EV1001001", "EV1001002", "EV1001003", "EV1001004"]
    assert "EV1001005" in [f["id"] for f in now["features"]]
    assert "EV1001003" not in [f["id"] for f in now["features"]]
    assert [v["version"] for v in history.versions(session, "EV1001003")] == [1]
    undo = changes.revert(session, split.change_id, reason="撤销", actor=ACTOR, scope=Scope.all())
    assert undo.reverts_id == split.change_id
    assert session.execute(text("SELECT count(*) FROM areas WHERE code IN ('EV1001005', 'EV1001006')")).scalar() == 0
    with pytest.raises(Conflict, match="already reverted"):
        changes.revert(session, split.change_id, reason="again", actor=ACTOR, scope=Scope.all())


def test_revert_is_refused_while_a_later_change_stands(session, region):
    first = run(session, "transfer", ["EV1001001", "EV1001002"], box(20.010, 20.020, 20.016, 20.026))
    run(session, "merge", ["EV1001001", "EV1001002"])
    with pytest.raises(Conflict, match="revert the later changes first"):
        changes.revert(session, first.change_id, reason="undo", actor=ACTOR, scope=Scope.all())


def test_split_and_revert_carry_a_units_home_grid(session, region):
    session.execute(text("INSERT INTO units (callsign, kind, home_area_id) VALUES "
                         "('巡测-1', 'car', (SELECT id FROM areas WHERE code = 'EV1001003'))"))
    home = lambda: session.execute(text(  # noqa: E731
        "SELECT a.code FROM units u JOIN areas a ON a.id = u.home_area_id WHERE u.callsign = '巡测-1'")).scalar()
    split = run(session, "split", ["EV1001003"], line((19.99, 20.007), (20.02, 20.010)))
    assert home() in ("EV1001005", "EV1001006")
    changes.revert(session, split.change_id, reason="undo", actor=ACTOR, scope=Scope.all())
    assert home() == "EV1001003"


def test_revert_restores_staff_incidents_and_entities(session, region):
    def state():
        return (sorted(session.execute(text(
                    "SELECT a.code, s.role FROM area_staff s JOIN areas a ON a.id = s.area_id "
                    "WHERE a.code LIKE 'EV%'")).all()),
                sorted(session.execute(text(
                    "SELECT i.id, a.code FROM incidents i JOIN areas a ON a.id = i.grid_id "
                    "WHERE a.code LIKE 'EV%'")).all()),
                sorted(session.execute(text(
                    "SELECT e.id, a.code FROM entities e JOIN areas a ON a.id = e.area_id "
                    "WHERE a.code LIKE 'EV%'")).all()))
    original = state()
    merged = run(session, "merge", ["EV1001001", "EV1001002"])
    assert state() != original
    changes.revert(session, merged.change_id, reason="undo", actor=ACTOR, scope=Scope.all())
    assert state() == original


def test_soft_lock_is_shown_to_others(session, region):
    mine = locks.acquire_lock(session, "EV1001", audit.Actor("alice"))
    assert mine["mine"] and mine["username"] == "alice"
    theirs = locks.acquire_lock(session, "EV1001", audit.Actor("bob"))
    assert not theirs["mine"] and theirs["username"] == "alice"
    assert [lock["username"] for lock in locks.held(session, Scope.all(), "EV")] == ["alice"]
    locks.release_lock(session, "EV1001", audit.Actor("alice"))
    assert locks.held(session, Scope.all(), "EV") == []


# -- the property ----------------------------------------------------------------------------
coord = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
operation = st.one_of(
    st.tuples(st.just("transfer"), st.integers(0, 9), st.integers(0, 9), coord, coord, coord, coord),
    st.tuples(st.just("split"), st.integers(0, 9), coord, coord, coord, coord),
    st.tuples(st.just("merge"), st.integers(0, 9), st.integers(0, 9)),
    st.tuples(st.just("reshape"), st.integers(0, 9), coord, coord, coord, coord),
    st.tuples(st.just("partition"), coord, coord),
    st.tuples(st.just("move"), st.integers(0, 9)),
)
X0, Y0, SIZE = 19.995, 19.997, 0.036  # the bounding square of village EV1001


def _at(u, v):
    return X0 + u * SIZE, Y0 + v * SIZE


def _request(session, op):
    grids = session.execute(text(
        "SELECT a.code FROM areas a JOIN areas v ON v.id = a.parent_id WHERE v.code = 'EV1001' "
        "ORDER BY a.code")).scalars().all()
    kind = op[0]
    if kind == "transfer":
        # From a grid to one of its neighbours, the region a box around a point of their edge.
        source = grids[op[1] % len(grids)]
        pairs = session.execute(text(
            "SELECT b.code, ST_X(p), ST_Y(p) FROM areas a JOIN areas b ON b.parent_id = a.parent_id "
            "AND b.id <> a.id, LATERAL ST_PointOnSurface(ST_Intersection(a.geom, b.geom)) p "
            "WHERE a.code = :a AND ST_Intersects(a.geom, b.geom) ORDER BY b.code"),
            {"a": source}).all()
        if not pairs:
            return kind, [source, grids[op[2] % len(grids)]], box(X0, Y0, X0 + 0.001, Y0 + 0.001)
        target, x, y = pairs[op[2] % len(pairs)]
        w, h = 0.0005 + op[3] * 0.006, 0.0005 + op[4] * 0.006
        return kind, [source, target], box(x - w * op[5], y - h * op[6], x + w, y + h)
    if kind == "split":
        a, b = _at(op[2], op[3]), _at(op[4], op[5])
        far = (a[0] + (a[0] - b[0]) * 5, a[1] + (a[1] - b[1]) * 5), (b[0] + (b[0] - a[0]) * 5, b[1] + (b[1] - a[1]) * 5)
        return kind, [grids[op[1] % len(grids)]], line(*far)
    if kind == "merge":
        return kind, [grids[op[1] % len(grids)], grids[op[2] % len(grids)]], None
    if kind == "reshape":
        (x0, y0), (x1, y1) = _at(min(op[2], op[4]), min(op[3], op[5])), _at(max(op[2], op[4]), max(op[3], op[5]))
        return kind, [grids[op[1] % len(grids)]], box(x0, y0, x1 + 1e-4, y1 + 1e-4)
    if kind == "partition":
        (x, _), (_, y) = _at(op[1], 0), _at(0, op[2])
        return kind, ["EV1001"], {"type": "MultiLineString", "coordinates": [
            [[x, Y0 - 0.01], [x + 0.002, Y0 + SIZE + 0.01]], [[X0 - 0.01, y], [X0 + SIZE + 0.01, y - 0.001]]]}
    east = session.execute(text("SELECT a.code FROM areas a JOIN areas v ON v.id = a.parent_id "
                                "WHERE v.code = 'EV1002' ORDER BY a.code")).scalars().all()
    return kind, [east[op[1] % len(east)], "EV1001"], None


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(ops=st.lists(operation, min_size=1, max_size=4))
def test_random_edits_keep_the_partition_and_revert_to_the_same_wkb(session, ops):
    nested = session.begin_nested()
    try:
        planner_fixtures.build(session)
        original = wkb(session)
        applied = []
        for op in ops:
            kind, codes, geometry = _request(session, op)
            try:
                result = run(session, kind, codes, geometry)
            except InvalidInput:
                continue  # refused with a reason: nothing may have changed
            finally:
                assert_exact_partition(session)
            applied.append(result.change_id)
        for change_id in reversed(applied):
            changes.revert(session, change_id, reason="undo everything", actor=ACTOR, scope=Scope.all())
            assert_exact_partition(session)
        assert wkb(session) == original
    finally:
        nested.rollback()


def test_problems_show_a_grid_left_in_pieces_and_workload(session, region):
    from geo.boundaries import validation

    result = changes.apply(session, "transfer", areas=["EV1001001", "EV1001002"],
                         geometry=box(20.005, 20.025, 20.02, 20.03), reason=None, actor=ACTOR,
                         preview=True, scope=Scope.all())
    assert result.rows[0]["after"]["parts"] == 2
    assert any(p["kind"] == "non_contiguous" for p in result.problems)  # shown before saving
    run(session, "transfer", ["EV1001001", "EV1001002"], box(20.005, 20.025, 20.02, 20.03))
    found = validation.problems(session, "EV1001")
    pieces = [p for p in found if p["kind"] == "non_contiguous"]
    assert pieces and pieces[0]["codes"] == ["EV1001001"] and pieces[0]["geometry"]["type"]
    assert all(p["severity"] == "warning" for p in found)
    assert validation.as_geojson(found)["features"][0]["properties"]["kind"]


def test_a_merge_keeps_every_household_and_their_numbers_apart(session, region):
    # Both grids number their households from 1: the merged grid holds both, none lost or refused.
    for code in ("EV1001001", "EV1001002"):
        session.execute(text("""
            INSERT INTO households (grid_id, number, geom)
            SELECT a.id, n, CASE WHEN n = '0002' THEN NULL ELSE ST_PointOnSurface(a.geom) END
              FROM areas a, (VALUES ('0001'), ('0002')) v(n) WHERE a.code = :c"""), {"c": code})
    run(session, "merge", ["EV1001001", "EV1001002"])
    numbers = session.execute(text(
        "SELECT h.number FROM households h JOIN areas a ON a.id = h.grid_id WHERE a.code = 'EV1001001' "
        "ORDER BY 1")).scalars().all()
    assert numbers == ["0001", "0001/EV1001002", "0002", "0002/EV1001002"]
