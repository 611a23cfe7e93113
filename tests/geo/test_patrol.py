"""Patrol core on the real PostGIS: units and device tokens, idempotent out-of-order ingest into
day partitions, quality flags kept out of tracks, grid time between sparse fixes, coverage against
risk, KNN dispatch and the assignment lifecycle, and NOTIFY delivered only on commit."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from geo import audit
from geo.errors import Conflict, InvalidInput
from geo.patrol import dispatch, filters, fixes, groupcommit, ingest, tracks, units
from geo.policy import Audience, Scope
from layers import coverage

ADMIN = Audience.system()
EVERYWHERE = Scope.all()
ACTOR = audit.Actor("test")
# The `tiny` region: grids TZ1A1 (10.00–10.01 E), TZ1A2 (10.01–10.02 E), TZ2A1, TZ2A2 along 10.00–10.02 N.
M_PER_DEG = 111320.0


def now():
    return datetime.now(timezone.utc).replace(microsecond=0)


def fix(ts, lon, lat, **kw):
    return fixes.Fix(ts=ts, lon=lon, lat=lat, **kw)


def unit(session, callsign="巡逻1", kind="car", device="dev-1", area="TZ1A1", status="on_duty"):
    uid, token = units.add_unit(session, ACTOR, callsign, kind, device, area, status)
    return uid, token


def store(session, token, batch):
    ref = units.unit_for_token(session, token, ingest.utc_days(batch))
    return ingest.ingest(session, ref, batch)


def count(session, uid):
    return session.execute(text("SELECT count(*) FROM positions WHERE unit_id = :u"), {"u": uid}).scalar()


# -- units -----------------------------------------------------------------------------------
def test_unit_token_is_stored_only_as_its_hash(session, tiny):
    uid, token = unit(session)
    stored = session.execute(text("SELECT token_hash, district_code, status FROM units WHERE id = :u"),
                             {"u": uid}).one()
    assert token.startswith("dev_") and token not in stored.token_hash
    assert stored.token_hash == units.hash_token(token)
    assert stored.district_code == "TZ" and stored.status == "on_duty"
    assert units.unit_for_token(session, token).id == uid
    assert units.unit_for_token(session, token + "x") is None
    new = units.rotate_token(session, ACTOR, "巡逻1")
    assert units.unit_for_token(session, token) is None and units.unit_for_token(session, new).id == uid
    assert session.execute(text("SELECT count(*) FROM audit_log WHERE action = 'unit.add' "
                                "AND target_id = '巡逻1'")).scalar() == 1


def test_unit_mistakes_are_named(session, tiny):
    unit(session)
    with pytest.raises(Conflict) as e:
        unit(session, device="dev-2")
    assert e.value.field == "callsign"
    with pytest.raises(Conflict) as e:
        unit(session, callsign="巡逻2")
    assert e.value.field == "device_id"
    with pytest.raises(InvalidInput) as e:
        units.add_unit(session, ACTOR, "X1", "horse", "d9")
    assert e.value.field == "kind"
    with pytest.raises(Exception) as e:
        units.add_unit(session, ACTOR, "X2", "car", "d10", area="NOPE")
    assert e.value.field == "area"


def test_shifts_do_not_overlap(session, tiny):
    unit(session)
    start = now().replace(hour=8, minute=0, second=0)
    units.add_shift(session, ACTOR, "巡逻1", start, 24, "日间巡逻 / 夜间值守")
    with pytest.raises(Conflict):
        units.add_shift(session, ACTOR, "巡逻1", start + timedelta(hours=12), 24)
    assert units.shifts(session, "巡逻1")[0]["task"] == "日间巡逻 / 夜间值守"


# -- parsing and flags -----------------------------------------------------------------------
def test_times_are_utc_and_1901_is_refused():
    assert fixes.parse_time("2024-05-01T08:00:00+08:00") == datetime(2024, 5, 1, 0, 0, tzinfo=timezone.utc)
    assert fixes.parse_time(1714521600) == datetime(2024, 5, 1, 0, 0, tzinfo=timezone.utc)
    assert fixes.parse_time("1714521600000") == datetime(2024, 5, 1, 0, 0, tzinfo=timezone.utc)
    assert fixes.parse_time("2024-05-01 00:00:00") == datetime(2024, 5, 1, 0, 0, tzinfo=timezone.utc)
    with pytest.raises(InvalidInput, match="before 2000"):
        fixes.parse_time("1901-12-13T20:45:52Z")
    with pytest.raises(InvalidInput, match="future"):
        fixes.parse_time((now() + timedelta(days=2)).isoformat())
    with pytest.raises(InvalidInput) as e:
        fixes.parse_batch({"positions": [{"ts": now().isoformat(), "lon": 10, "lat": 95}]})
    assert e.value.field == "positions[0].lat"


def test_jumps_and_poor_accuracy_are_flagged_and_the_anchor_recovers():
    t0 = now() - timedelta(minutes=10)
    step = 10 / M_PER_DEG   # 10 m
    track = [fix(t0 + timedelta(seconds=10 * i), 10.005 + i * step, 10.005) for i in range(5)]
    track.append(fix(t0 + timedelta(seconds=50), 10.5, 10.5))                   # 75 km in 10 s
    track.append(fix(t0 + timedelta(seconds=60), 10.005 + 6 * step, 10.005, accuracy=350))
    track.append(fix(t0 + timedelta(seconds=70), 10.005 + 7 * step, 10.005))
    repeat = fix(t0 + timedelta(seconds=70), 10.9, 10.9)      # the same second again: the first one wins
    out = filters.flag_fixes(list(reversed(track)) + [repeat], None, speed_limit=55, accuracy_limit=100)
    assert [f.ts for f in out] == sorted(f.ts for f in out) and len(out) == 8
    assert [f.flags for f in out] == [0, 0, 0, 0, 0, filters.FLAG_JUMP, filters.FLAG_ACCURACY, 0]
    # A wrong anchor: three consistent fixes far away are taken back as clean.
    far = [fix(t0 + timedelta(seconds=10 * i), 11.0 + i * step, 11.0) for i in range(4)]
    out = filters.flag_fixes(far, (t0 - timedelta(seconds=10), 10.0, 10.0), speed_limit=55)
    assert [f.flags for f in out] == [0, 0, 0, 0]


# -- ingest ----------------------------------------------------------------------------------
def test_ingest_is_idempotent_out_of_order_and_creates_partitions(session, tiny):
    uid, token = unit(session)
    old_day = date.today() - timedelta(days=400)
    base = datetime(old_day.year, old_day.month, old_day.day, 23, 59, 0, tzinfo=timezone.utc)
    step = 5 / M_PER_DEG
    track = [fix(base + timedelta(seconds=10 * i), 10.005 + i * step, 10.005) for i in range(12)]
    later, earlier = track[6:], track[:6]
    r1 = store(session, token, later)                 # crosses midnight: two new partitions
    r2 = store(session, token, earlier)               # late fixes slot in before
    r3 = store(session, token, track)                 # the whole batch replayed
    assert (r1.inserted, r2.inserted, r3.inserted, r3.duplicates) == (6, 6, 0, 12)
    assert count(session, uid) == 12
    for d in (old_day, old_day + timedelta(days=1)):
        assert session.execute(text("SELECT to_regclass(:n)"), {"n": f"positions_{d:%Y%m%d}"}).scalar()
    # The last position never goes back in time, even though the earlier batch came last.
    last = session.execute(text("SELECT ts FROM unit_last_positions WHERE unit_id = :u"), {"u": uid}).scalar()
    assert last == track[-1].ts


def test_flags_are_stored_and_kept_out_of_the_track(session, tiny):
    uid, token = unit(session)
    t0 = now() - timedelta(minutes=30)
    step = 10 / M_PER_DEG
    good = [fix(t0 + timedelta(seconds=10 * i), 10.002 + i * step, 10.005) for i in range(30)]
    bad = [fix(t0 + timedelta(seconds=10 * 10 + 5), 10.3, 10.3),
           fix(t0 + timedelta(seconds=10 * 20 + 5), 10.002 + 20 * step, 10.006, accuracy=500)]
    r = store(session, token, good + bad)
    assert (r.inserted, r.jumps, r.poor_accuracy) == (32, 1, 1)
    s = tracks.summary(session, uid, t0, now())
    assert s["points"] == 30 and s["flagged"] == {"jump": 1, "poor_accuracy": 1}
    assert s["length_m"] == pytest.approx(290, rel=0.02)       # the jump would add ~80 km
    built = tracks.build(session, uid, start=t0, end=now())
    assert built["points"] == 30
    assert session.execute(text("SELECT ST_NPoints(geom) FROM tracks WHERE id = :i"), {"i": built["id"]}).scalar() == 30


def test_live_event_is_logged_and_units_geojson_shows_last_clean_fix(session, tiny):
    uid, token = unit(session)
    t0 = now() - timedelta(seconds=30)
    r = store(session, token, [fix(t0, 10.005, 10.005, heading=90, speed=3.0),
                                fix(t0 + timedelta(seconds=10), 10.0053, 10.005, heading=91, speed=3.1)])
    ingest.publish_result(session, r)
    ev = session.execute(text("SELECT kind, area_path::text, payload FROM live_events WHERE id = :i"),
                         {"i": r.event_id}).one()
    assert ev.kind == "position" and ev.payload["callsign"] == "巡逻1" and ev.payload["heading"] == 91
    assert ev.area_path.count(".") == 3          # district.township.village.grid ids
    fc = units.units_geojson(session, EVERYWHERE)
    f = next(f for f in fc["features"] if f["properties"]["callsign"] == "巡逻1")
    assert f["geometry"]["coordinates"] == pytest.approx([10.0053, 10.005])
    assert f["properties"]["device_id"] == "dev-1" and f["properties"]["stale"] is False
    # Where was everyone at time T: before the second fix, the unit was at the first.
    then = units.units_geojson(session, EVERYWHERE, at=t0 + timedelta(seconds=5))
    f = next(f for f in then["features"] if f["properties"]["callsign"] == "巡逻1")
    assert f["geometry"]["coordinates"] == pytest.approx([10.005, 10.005])
    # Scope: a subtree that does not hold the unit's home hides it.
    other = session.execute(text("SELECT path::text FROM areas WHERE code = 'TZ2'")).scalar()
    assert not [f for f in units.units_geojson(session, Scope(("TZ2",), (other,)))["features"]
                if f["properties"]["callsign"] == "巡逻1"]


def test_notify_is_delivered_only_after_commit(engine, tiny):
    import psycopg

    from geo import db

    url = engine.url.render_as_string(hide_password=False).replace("postgresql+psycopg://", "postgresql://")
    listener = psycopg.connect(url, autocommit=True)
    listener.execute("LISTEN anwang_live")
    try:
        with db.session_scope(engine) as s:
            s.execute(text("DELETE FROM units WHERE callsign = 'NOTIFY-1'"))
            _, token = units.add_unit(s, ACTOR, "NOTIFY-1", "foot", "notify-1")
        conn = engine.connect()
        trans = conn.begin()
        from sqlalchemy.orm import Session

        s = Session(bind=conn)
        ingest.publish_result(s, store(s, token, [fix(now(), 10.001, 10.001)]))
        s.flush()
        assert list(listener.notifies(timeout=0.5)) == []          # not before commit …
        trans.rollback()
        assert list(listener.notifies(timeout=0.5)) == []          # … never after a rollback
        with db.session_scope(engine) as s:
            r = store(s, token, [fix(now(), 10.001, 10.001)])
            s.commit()
            assert list(listener.notifies(timeout=0.3)) == []      # the fixes alone notify nobody
            ingest.commit_and_publish(s, r)
        got = [json.loads(n.payload) for n in listener.notifies(timeout=2, stop_after=1)]
        assert got and got[0]["kind"] == "position" and got[0]["data"]["callsign"] == "NOTIFY-1"
    finally:
        listener.close()
        with db.session_scope(engine) as s:
            uid = s.execute(text("SELECT id FROM units WHERE callsign = 'NOTIFY-1'")).scalar()
            s.execute(text("DELETE FROM positions WHERE unit_id = :u"), {"u": uid})
            s.execute(text("DELETE FROM live_events WHERE payload->>'callsign' = 'NOTIFY-1'"))
            s.execute(text("DELETE FROM units WHERE id = :u"), {"u": uid})


# -- group commit (the OsmAnd port) ---------------------------------------------------------
@pytest.fixture()
def raw(engine):
    """Give committed units GC-A, GC-B, GC-C and an autocommit connection; remove what they stored."""
    # Committed, because the group commit writes on its own connection, outside the test's transaction.
    import psycopg

    from geo import db

    names = ("GC-A", "GC-B", "GC-C")

    def remove():
        with db.session_scope(engine) as s:
            s.execute(text("DELETE FROM positions WHERE unit_id IN (SELECT id FROM units WHERE callsign = ANY(:n))"),
                      {"n": list(names)})
            s.execute(text("DELETE FROM live_events WHERE payload->>'callsign' = ANY(:n)"), {"n": list(names)})
            s.execute(text("DELETE FROM units WHERE callsign = ANY(:n)"), {"n": list(names)})

    remove()
    with db.session_scope(engine) as s:
        for name in names:
            units.add_unit(s, ACTOR, name, "car", name.lower(), status="on_duty")
    url = engine.url.render_as_string(hide_password=False).replace("postgresql+psycopg://", "postgresql://")
    conn = psycopg.connect(url, autocommit=True)
    yield conn
    conn.close()
    remove()


def _pings(t0):
    """Make fresh fixes: single pings and one buffered pair that exercise every rule of the flags."""
    step = 10 / M_PER_DEG   # 10 m
    at = lambda s, lon, lat=10.005, **kw: fix(t0 + timedelta(seconds=s), lon, lat, **kw)   # noqa: E731
    return [
        [at(0, 10.005)], [at(10, 10.005 + step)],
        [at(20, 10.5, 10.5)],                                   # 75 km in 10 s: a jump
        [at(30, 10.005 + 3 * step, accuracy=350)],              # poor accuracy
        [at(15, 10.005 + 1.5 * step)],                          # late: slots in between, judged from t0+10
        [at(5, 10.005 + 40 * step)],                            # late, judged from t0 (a jump), not t0-10
        [at(10, 10.005 + step)],                                # the app retrying: a duplicate
        [at(40, 11.0, 11.0)], [at(50, 11.0 + step, 11.0)],      # three agreeing jumps: the anchor was wrong,
        [at(60, 11.0 + 2 * step, 11.0)],                        # so the third is clean
        [at(70, 11.0 + 3 * step, 11.0), at(80, 11.0 + 4 * step, 11.0)],   # Traccar Client 9's buffered fixes
        [at(-10, 10.005 - step)],                               # stored before: a duplicate again
    ]


def _state(conn, callsign):
    rows = conn.execute("SELECT p.ts, ST_X(p.geom), ST_Y(p.geom), p.flags FROM positions p JOIN units u "
                        "ON u.id = p.unit_id WHERE u.callsign = %s ORDER BY p.ts", (callsign,)).fetchall()
    last = conn.execute("SELECT l.ts, ST_X(l.geom), ST_Y(l.geom), l.seen_at, l.seen_lon, l.seen_lat, l.jump_chain "
                        "FROM unit_last_positions l JOIN units u ON u.id = l.unit_id WHERE u.callsign = %s",
                        (callsign,)).fetchone()
    return rows, last


def _same_event(payload):
    return {k: v for k, v in payload.items() if k not in ("unit", "callsign")}


def test_group_commit_judges_pings_as_if_they_came_one_by_one(raw, engine):
    from geo import db

    t0 = now() - timedelta(minutes=20)
    for device in ("gc-a", "gc-b", "gc-c"):       # one fix each unit stored before
        groupcommit.ingest_pings(raw, [groupcommit.Ping(device, _pings(t0)[-1])])
    # The reference: one ping at a time through the session path (the /osmand route), each committed.
    expected = []
    for batch in _pings(t0):
        with db.session_scope(engine) as s:
            r = ingest.ingest(s, units.unit_for_device(s, "gc-a", ingest.utc_days(batch)), batch)
            s.commit()
            expected.append((r.inserted, r.duplicates, r.jumps, r.poor_accuracy, r.live and _same_event(r.live[2])))
    # The same pings of two units, interleaved with an unknown device, in one group commit.
    group = []
    for b, c in zip(_pings(t0), _pings(t0)):
        group += [groupcommit.Ping("gc-b", b), groupcommit.Ping("nobody", [fix(t0, 10.0, 10.0)]), groupcommit.Ping("gc-c", c)]
    outcomes = groupcommit.ingest_pings(raw, group)
    assert outcomes[1::3] == [groupcommit.UNKNOWN_DEVICE] * len(expected)
    for unit_outcomes in (outcomes[0::3], outcomes[2::3]):
        got = [(r.inserted, r.duplicates, r.jumps, r.poor_accuracy, r.live and _same_event(r.live[2]))
               for r in unit_outcomes]
        assert got == expected
    assert [r.inserted for r in outcomes[0::3]] == [1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 2, 0]
    reference = _state(raw, "GC-A")
    jump, poor = filters.FLAG_JUMP, filters.FLAG_ACCURACY
    assert [p[3] for p in reference[0]] == [0, 0, jump, 0, 0, jump, poor, jump, jump, 0, 0, 0]
    assert _state(raw, "GC-B") == reference and _state(raw, "GC-C") == reference
    # The live events go out after the commit, in one asynchronous transaction, in the pings' order.
    groupcommit.publish_pings(raw, outcomes)
    assert raw.execute("SHOW synchronous_commit").fetchone()[0] == "on"     # only the events' commit was not
    ids = [r.event_id for r in outcomes[0::3] if r.live]
    assert len(ids) == 10 and ids == sorted(ids)
    events = raw.execute("SELECT payload FROM live_events WHERE id = ANY(%s) ORDER BY id", (ids,)).fetchall()
    assert [_same_event(e[0]) for e in events] == [json.loads(json.dumps(e[4], default=str))
                                                   for e in expected if e[4]]


def test_group_commit_checks_tokens_and_a_failed_group_stores_nothing(raw, monkeypatch):
    t0 = now() - timedelta(minutes=5)
    token_hash = raw.execute("SELECT token_hash FROM units WHERE callsign = 'GC-A'").fetchone()[0]
    out = groupcommit.ingest_pings(raw, [groupcommit.Ping("gc-a", [fix(t0, 10.0, 10.0)], token_hash="nope"),
                                    groupcommit.Ping("nobody", [fix(t0, 10.0, 10.0)], token_hash="nope"),
                                    groupcommit.Ping("gc-a", [fix(t0 + timedelta(seconds=5), 10.0, 10.0)], token_hash)])
    assert out[:2] == [groupcommit.UNAUTHORIZED, groupcommit.UNAUTHORIZED] and out[2].inserted == 1
    assert len(_state(raw, "GC-A")[0]) == 1
    # A fix for a day without its partition fails the statement, and with it the whole group.
    day = date.today() - timedelta(days=777)
    assert raw.execute("SELECT to_regclass(%s)", (f"positions_{day:%Y%m%d}",)).fetchone()[0] is None
    monkeypatch.setattr(groupcommit, "ensure_partitions_with", lambda run, days: None)
    old = datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc)
    with pytest.raises(Exception, match="partition"):
        groupcommit.ingest_pings(raw, [groupcommit.Ping("gc-b", [fix(t0, 10.0, 10.0)]), groupcommit.Ping("gc-c", [fix(old, 10.0, 10.0)])])
    assert _state(raw, "GC-B") == ([], None) and _state(raw, "GC-C") == ([], None)


def test_a_fix_another_writer_stores_meanwhile_is_a_duplicate(raw, engine, monkeypatch):
    from geo import db

    t0 = now() - timedelta(minutes=2)
    ensure = ingest.ensure_partitions_with

    def another_writer_first(run, days):
        # Runs between the group's look-up and its write: the /osmand route stores the same fix.
        monkeypatch.setattr(groupcommit, "ensure_partitions_with", ensure)
        ensure(run, days)
        with db.session_scope(engine) as s:
            ingest.ingest(s, units.unit_for_device(s, "gc-b", [t0.date()]), [fix(t0, 10.0, 10.0)])

    monkeypatch.setattr(groupcommit, "ensure_partitions_with", another_writer_first)
    out = groupcommit.ingest_pings(raw, [groupcommit.Ping("gc-b", [fix(t0, 10.0, 10.0)]),
                                    groupcommit.Ping("gc-c", [fix(t0, 10.0, 10.0)])])
    assert (out[0].inserted, out[0].duplicates, out[0].live) == (0, 1, None)
    assert out[1].inserted == 1 and out[1].live is not None
    assert len(_state(raw, "GC-B")[0]) == 1


# -- tracks and grids ------------------------------------------------------------------------
def test_grid_time_counts_a_grid_crossed_between_two_sparse_fixes(session, tiny):
    uid, token = unit(session)
    t0 = now() - timedelta(minutes=20)
    # Two fixes 10 minutes apart, west of TZ1A2 and east of it: the straight segment crosses all of
    # TZ1A2 (0.01° wide) and parts of TZ1A1 and TZ2A1, with no fix inside TZ1A2.
    store(session, token, [fix(t0, 10.0075, 10.005), fix(t0 + timedelta(minutes=10), 10.0225, 10.005)])
    s = tracks.summary(session, uid, t0, now())
    by = {g["code"]: g for g in s["grids"]}
    assert set(by) == {"TZ1A1", "TZ1A2", "TZ2A1"}
    assert by["TZ1A2"]["minutes"] == pytest.approx(10 * 0.01 / 0.015, rel=0.01)
    assert by["TZ1A1"]["minutes"] == pytest.approx(10 * 0.0025 / 0.015, rel=0.02)
    assert sum(g["minutes"] for g in s["grids"]) == pytest.approx(10, rel=0.001)
    assert all(g["visits"] == 1 for g in s["grids"])
    assert s["duration_s"] == 600


def test_track_is_simplified_per_zoom(session, tiny):
    uid, token = unit(session)
    t0 = now() - timedelta(minutes=40)
    step = 2 / M_PER_DEG
    zigzag = [fix(t0 + timedelta(seconds=5 * i), 10.001 + i * step, 10.005 + (i % 2) * 0.5 / M_PER_DEG)
              for i in range(400)]
    store(session, token, zigzag)
    full = tracks.track_feature(session, uid, t0, now(), None, with_stats=False)
    coarse = tracks.track_feature(session, uid, t0, now(), 12, with_stats=False)
    fine = tracks.track_feature(session, uid, t0, now(), 19, with_stats=False)
    assert full["properties"]["shown_points"] == 400
    assert coarse["properties"]["shown_points"] < 10 < fine["properties"]["shown_points"]
    r = tracks.replay(session, uid, t0, now())
    assert r["total"] == 400 and r["points"][0][0] < r["points"][-1][0]


# -- coverage --------------------------------------------------------------------------------
def test_coverage_without_risk_is_unknown_and_gaps_follow_risk(session, tiny):
    uid, token = unit(session)
    t0 = now() - timedelta(minutes=30)
    store(session, token, [fix(t0 + timedelta(seconds=30 * i), 10.002 + i * 0.0002, 10.005) for i in range(20)])
    rows = {g["code"]: g for g in coverage.coverage(session, EVERYWHERE, 24) if g["code"].startswith("TZ")}
    assert {g["risk"] for g in rows.values()} == {"unknown"}      # risk_levels may be empty
    assert rows["TZ1A1"]["visits"] == 1 and rows["TZ1A1"]["minutes"] > 5
    assert rows["TZ2B2"]["visits"] == 0 and rows["TZ2B2"]["risk"] == "unknown"
    assert not [g for g in coverage.gaps(session, EVERYWHERE, 24) if g["code"].startswith("TZ")]
    for code, colour in (("TZ1A1", "red"), ("TZ2B2", "red"), ("TZ2B1", "orange"), ("TZ1B1", "yellow")):
        session.execute(text(
            "INSERT INTO risk_levels (area_id, period_start, period_end, score, level) "
            "SELECT id, current_date - 7, current_date + 7, 0.9, :c FROM areas WHERE code = :a"),
            {"a": code, "c": colour})
    gaps = [g["code"] for g in coverage.gaps(session, EVERYWHERE, 6) if g["code"].startswith("TZ")]
    assert gaps == ["TZ2B2", "TZ2B1"]           # red first; TZ1A1 was patrolled; yellow is not high
    session.execute(text("UPDATE risk_levels SET override_level = 'blue', override_reason = 'test' "
                         "WHERE area_id = (SELECT id FROM areas WHERE code = 'TZ2B2')"))
    assert [g["code"] for g in coverage.gaps(session, EVERYWHERE, 6) if g["code"].startswith("TZ")] == ["TZ2B1"]


# -- dispatch --------------------------------------------------------------------------------
def _incident(session, lon, lat, minutes_ago=5):
    return session.execute(text(
        "INSERT INTO incidents (category, occurred_at, geom, grid_id, address) VALUES "
        "('dispute', now() - make_interval(mins => :m), ST_SetSRID(ST_MakePoint(:x, :y), 4326), "
        "(SELECT id FROM areas WHERE level = 4 AND ST_Contains(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326)) LIMIT 1), "
        "'测试路1号') RETURNING id"), {"x": lon, "y": lat, "m": minutes_ago}).scalar_one()


def test_nearest_on_duty_units_assign_and_lifecycle(session, tiny):
    t = now() - timedelta(seconds=20)
    places = {"近": (10.006, 10.005), "中": (10.012, 10.005), "远": (10.030, 10.030), "休": (10.0055, 10.005)}
    for i, (cs, (x, y)) in enumerate(places.items()):
        _, token = unit(session, cs, "car", f"knn-{i}", "TZ1A1", "off_duty" if cs == "休" else "on_duty")
        store(session, token, [fix(t, x, y)])
    incident = _incident(session, 10.005, 10.005)
    # The new incident is on the live log (a trigger, whoever inserts it).
    assert session.execute(text("SELECT count(*) FROM live_events WHERE kind = 'incident' "
                                "AND (payload->>'id')::bigint = :i"), {"i": incident}).scalar() == 1
    near = dispatch.nearest(session, ADMIN, incident, k=2)["units"]
    assert [u["callsign"] for u in near] == ["近", "中"]           # off-duty 休 is closer but not offered
    assert near[0]["distance_m"] == pytest.approx(0.001 * M_PER_DEG * 0.985, rel=0.02)
    assert near[0]["age_s"] < 60
    a = dispatch.assign(session, ACTOR, incident, "近", ADMIN, "去看看")
    assert a["status"] == "assigned" and a["distance_m"] == pytest.approx(near[0]["distance_m"], rel=0.01)
    assert session.execute(text("SELECT status FROM units WHERE callsign = '近'")).scalar() == "busy"
    assert [u["callsign"] for u in dispatch.nearest(session, ADMIN, incident, k=2)["units"]] == ["中", "远"]
    with pytest.raises(Conflict):
        dispatch.assign(session, ACTOR, incident, "近", ADMIN)
    a = dispatch.transition(session, ACTOR, a["id"], "cancel", ADMIN)
    assert a["status"] == "cancelled" and a["closed_at"]
    with pytest.raises(Conflict):
        dispatch.transition(session, ACTOR, a["id"], "acknowledge", ADMIN)
    b = dispatch.assign(session, ACTOR, incident, "中", ADMIN)
    for action in ("acknowledge", "arrive", "close"):
        b = dispatch.transition(session, ACTOR, b["id"], action, ADMIN)
    assert b["status"] == "closed" and b["acknowledged_at"] <= b["arrived_at"] <= b["closed_at"]
    assert session.execute(text("SELECT status FROM units WHERE callsign = '中'")).scalar() == "on_duty"
    with pytest.raises(Conflict):
        dispatch.transition(session, ACTOR, b["id"], "arrive", ADMIN)
    session.execute(text("UPDATE assignments SET assigned_at = now() - interval '10 minutes' WHERE id = :i"),
                    {"i": b["id"]})
    stats = {s["code"]: s for s in dispatch.response_stats(session, ADMIN, level=2)}
    assert stats["TZ1"]["assignments"] == 2 and stats["TZ1"]["closed"] == 1
    assert stats["TZ1"]["arrive_p50_s"] >= 600 - 5
