"""Four-colour risk: score and floors, hysteresis (up at once, down after quiet periods and a 回访),
overrides with expiry, history, explanations for every grid, and the NOTIFY alert to dispatch."""
from __future__ import annotations

import json
import math
from datetime import datetime, timedelta

import psycopg
import pytest
from sqlalchemy import text

from geo import audit, db
from geo.errors import InvalidInput, NotFound
from layers import risk, risk_policy
from layers.selection import TZ
from tests.layers.incidents import add_follow_up, add_incident
from web import live

ACTOR = audit.Actor("test")
G = "TZ1A1"          # a tiny grid: lon 10.00–10.01, lat 10.00–10.02
LON, LAT = 10.005, 10.01


def at(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=TZ)


def level_of(fc: dict, code: str) -> dict:
    return next(f["properties"] for f in fc["features"] if f["id"] == code)


@pytest.fixture()
def policy():
    return risk.load_policy()


def test_default_policy_is_complete(policy):
    assert policy.period_days == 7 and policy.half_life_days == 30
    assert policy.thresholds["yellow"] < policy.thresholds["orange"] < policy.thresholds["red"]
    assert any(f.id == "open_red_dispute" and f.level == "orange" and f.open for f in policy.floors)
    assert policy.quiet_periods >= 1 and policy.require_follow_up


def test_a_broken_policy_names_the_problem(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("weights: {criminal: 1}\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as exc:
        risk.load_policy(bad)
    assert exc.value.field == "policy"
    bad.write_text(risk_policy.POLICY_FILE.read_text(encoding="utf-8").replace("red: 70", "red: 5"), encoding="utf-8")
    with pytest.raises(InvalidInput, match="thresholds must rise"):
        risk.load_policy(bad)


def test_periods_are_weeks_starting_on_monday(policy):
    start, end = risk_policy.period_of(at("2026-06-10"), policy)
    assert start.isoformat() == "2026-06-08" and end.isoformat() == "2026-06-14"
    assert risk_policy.period_of(at("2026-06-08", 0), policy)[0] == start


def test_score_weighs_category_severity_recency_and_openness(session, tiny, policy):
    now = at("2026-06-10")
    a = add_incident(session, LON, LAT, category="criminal", severity=2, occurred_at=now - timedelta(days=3))
    b = add_incident(session, LON, LAT, category="petition", severity=3, status="handling",
                     occurred_at=now - timedelta(days=30))
    add_incident(session, LON, LAT, category="hazard", severity=4, occurred_at=now - timedelta(days=120))
    gid = session.execute(text("SELECT id FROM areas WHERE code = :c"), {"c": G}).scalar()
    result = risk_policy.assess(session, policy, now, [gid])[gid]
    expected = 3.0 * 2.0 * 0.5 ** (3 / 30) + 2.5 * 4.0 * 0.5 ** (30 / 30) * 1.5
    assert result.score == pytest.approx(expected, rel=1e-9)   # the 120-day-old hazard is out of the window
    assert result.count == 2
    reason = result.reasons(policy)[0]
    assert reason["rule"] == "score" and reason["level"] == "blue"
    assert [i["id"] for i in reason["incidents"]] == [b, a]   # biggest contribution first
    assert "加权得分" in reason["zh"] and "score" in reason["en"]


def test_an_open_red_class_dispute_keeps_the_grid_at_least_orange(session, tiny, policy):
    now = at("2026-06-10")
    old = add_incident(session, LON, LAT, category="dispute", severity=4, status="handling",
                       occurred_at=now - timedelta(days=200))
    gid = session.execute(text("SELECT id FROM areas WHERE code = :c"), {"c": G}).scalar()
    result = risk_policy.assess(session, policy, now, [gid])[gid]
    assert result.score == 0 and result.score_level(policy) == "blue"
    assert result.level(policy) == "orange"
    floor = [r for r in result.reasons(policy) if r["rule"] == "floor"]
    assert floor[0]["id"] == "open_red_dispute" and floor[0]["incidents"] == [old]
    assert f"#{old}" in floor[0]["zh"]
    # Resolved before the assessment: the floor no longer applies.
    session.execute(text("UPDATE incidents SET status = 'closed', resolved_at = :t WHERE id = :i"),
                    {"t": now - timedelta(days=1), "i": old})
    assert risk_policy.assess(session, policy, now, [gid])[gid].level(policy) == "blue"
    # …but a week earlier it was still open.
    assert risk_policy.assess(session, policy, now - timedelta(days=7), [gid])[gid].level(policy) == "orange"


def test_a_closing_without_a_follow_up_visit_keeps_the_colour(session, tiny, policy):
    now = at("2026-09-01")
    risk.update(session, ACTOR, as_of=at("2026-05-27"), area="TZ", now=now)
    spike = [add_incident(session, LON, LAT, category="criminal", severity=4, occurred_at=at("2026-06-02"))
             for _ in range(4)]
    risk.update(session, ACTOR, as_of=at("2026-06-03"), area="TZ", now=now)
    # Every matter is closed (as an import without an event history records it), none visited.
    session.execute(text("UPDATE incidents SET status = 'closed', closed_at = :t WHERE id = ANY(:ids)"),
                    {"t": at("2026-06-20"), "ids": spike})
    day = at("2026-06-10")
    while day < at("2026-07-22"):
        risk.update(session, ACTOR, as_of=day, area="TZ", now=now)
        day += timedelta(days=7)
    held = level_of(risk.features(session, "TZ", now=day), G)
    assert held["level"] == "red" and held["reasons"][-1]["rule"] == "hold"
    assert held["reasons"][-1]["follow_up"] is False
    # The same week with a logged 回访 visit on one of them: down a step.
    add_follow_up(session, spike[1], at("2026-07-21", 9))
    risk.update(session, ACTOR, as_of=at("2026-07-22"), area="TZ", now=now)
    down = level_of(risk.features(session, "TZ", now=at("2026-07-22")), G)
    assert down["level"] == "orange" and down["reasons"][-1]["rule"] == "downgrade"


def test_up_at_once_down_only_after_quiet_periods_and_a_follow_up(session, tiny, policy):
    now = at("2026-09-01")
    risk.update(session, ACTOR, as_of=at("2026-05-27"), area="TZ", now=now)      # all blue, first time
    spike = [add_incident(session, LON, LAT, category="criminal", severity=4, occurred_at=at("2026-06-02"))
             for _ in range(4)]
    report = risk.update(session, ACTOR, as_of=at("2026-06-03"), area="TZ", now=now)
    assert (G, "blue", "red") in report.changes                     # upgrade at once, mid-week
    red = level_of(risk.features(session, "TZ", now=at("2026-06-03")), G)
    assert red["level"] == "red" and red["reasons"][-1]["rule"] == "upgrade"
    # Weekly refreshes: the score decays below red but, with no 回访 logged, the grid stays red.
    day = at("2026-06-10")
    while day < at("2026-07-21"):
        risk.update(session, ACTOR, as_of=day, area="TZ", now=now)
        day += timedelta(days=7)
    held = level_of(risk.features(session, "TZ", now=day), G)
    assert held["level"] == "red" and held["computed_level"] == "red"
    assert held["reasons"][-1]["rule"] == "hold" and "回访" in held["reasons"][-1]["zh"]
    assert held["reasons"][-1]["quiet_periods"] >= policy.quiet_periods
    # A follow-up visit is logged: down one step (red → orange), not straight to the computed level.
    add_follow_up(session, spike[0], at("2026-07-21", 9))
    risk.update(session, ACTOR, as_of=at("2026-07-22"), area="TZ", now=now)
    down = level_of(risk.features(session, "TZ", now=at("2026-07-22")), G)
    assert down["level"] == "orange"
    assert down["reasons"][-1]["rule"] == "downgrade" and down["reasons"][-1]["follow_up"] == "2026-07-21"
    # Later the same week: the new level has had no quiet period yet.
    risk.update(session, ACTOR, as_of=at("2026-07-24"), area="TZ", now=now)
    again = level_of(risk.features(session, "TZ", now=at("2026-07-24")), G)
    assert again["level"] == "orange" and again["reasons"][-1]["rule"] == "hold"
    # Two whole quiet weeks later it may step down again.
    for day in ("2026-07-29", "2026-08-05", "2026-08-12"):
        risk.update(session, ACTOR, as_of=at(day), area="TZ", now=now)
    assert level_of(risk.features(session, "TZ", now=at("2026-08-12")), G)["level"] == "yellow"
    # Every stored period is in the history, and the level changes are audited.
    hist = risk.history(session, G)
    assert [h["level"] for h in hist][:2] == ["yellow", "orange"] and hist[-1]["level"] == "blue"
    changes = session.execute(text("SELECT details->>'from', details->>'to' FROM audit_log "
                                   "WHERE action = 'risk.level' AND target_id = :g ORDER BY id"),
                              {"g": G}).all()
    assert [tuple(c) for c in changes] == [("blue", "red"), ("red", "orange"), ("orange", "yellow")]


def test_a_new_spike_raises_the_level_even_while_held(session, tiny, policy):
    now = at("2026-09-01")
    risk.update(session, ACTOR, as_of=at("2026-05-27"), area="TZ", now=now)
    add_incident(session, LON, LAT, category="dispute", severity=4, status="handling", occurred_at=at("2026-06-01"))
    assert (G, "blue", "orange") in risk.update(session, ACTOR, as_of=at("2026-06-02"), area="TZ", now=now).changes
    for _ in range(5):
        add_incident(session, LON, LAT, category="criminal", severity=4, occurred_at=at("2026-06-03"))
    report = risk.update(session, ACTOR, as_of=at("2026-06-04"), area="TZ", now=now)
    assert (G, "orange", "red") in report.changes
    assert any(a["code"] == G and a["level"] == "red" and a["previous"] == "orange" for a in report.alerts)


def test_every_grid_has_a_colour_and_an_explanation(session, tiny):
    fc = risk.features(session, "TZ", now=at("2026-06-10"))
    assert len(fc["features"]) == 8
    for f in fc["features"]:
        p = f["properties"]
        assert p["level"] in risk.LEVELS and p["reasons"] and all(r["zh"] and r["en"] for r in p["reasons"])
        assert p["stored"] is False and f["geometry"]["type"] == "MultiPolygon"
    risk.update(session, ACTOR, as_of=at("2026-06-10"), area="TZ", now=at("2026-06-10"))
    stored = risk.features(session, "TZ", now=at("2026-06-10"))
    assert all(f["properties"]["stored"] for f in stored["features"])
    assert stored["summary"]["levels"]["blue"] == 8


def test_override_with_reason_and_expiry(session, tiny):
    now = at("2026-06-10")
    risk.update(session, ACTOR, as_of=now, area="TZ", now=now)
    result = risk.set_override(session, ACTOR, G, {"level": "red", "reason": "重大活动安保",
                                                   "until": "2026-06-20T18:00:00+08:00"}, now=now)
    assert result["level"] == "red" and result["previous"] == "blue"
    props = level_of(risk.features(session, "TZ", now=now), G)
    assert props["level"] == "red" and props["computed_level"] == "blue"
    assert props["override"]["reason"] == "重大活动安保" and props["reasons"][-1]["rule"] == "override"
    # The next period's row carries the override until it expires…
    risk.update(session, ACTOR, as_of=at("2026-06-16"), area="TZ", now=at("2026-06-16"))
    assert level_of(risk.features(session, "TZ", now=at("2026-06-16")), G)["level"] == "red"
    # …after which the computed level is back in force.
    assert level_of(risk.features(session, "TZ", now=at("2026-06-21")), G)["level"] == "blue"
    risk.clear_override(session, ACTOR, G, now=at("2026-06-16"))
    assert level_of(risk.features(session, "TZ", now=at("2026-06-16")), G)["level"] == "blue"
    actions = session.execute(text("SELECT action FROM audit_log WHERE target_id = :g AND action LIKE "
                                   "'risk.override%' ORDER BY id"), {"g": G}).scalars().all()
    assert actions == ["risk.override", "risk.override.clear"]


@pytest.mark.parametrize("body, field", [
    ({"level": "purple", "reason": "x" * 5, "until": "2026-06-12"}, "level"),
    ({"level": "red", "reason": "", "until": "2026-06-12"}, "reason"),
    ({"level": "red", "reason": "原因说明"}, "until"),
    ({"level": "red", "reason": "原因说明", "until": "next week"}, "until"),
    ({"level": "red", "reason": "原因说明", "until": "2026-06-01"}, "until"),
    ({"level": "red", "reason": "原因说明", "until": "2027-06-01"}, "until"),
])
def test_override_input_is_checked(session, tiny, body, field):
    with pytest.raises(InvalidInput) as exc:
        risk.set_override(session, ACTOR, G, body, now=at("2026-06-10"))
    assert exc.value.field == field


def test_overrides_are_per_grid_only(session, tiny):
    with pytest.raises(InvalidInput, match="level 4"):
        risk.set_override(session, ACTOR, "TZ1A", {}, now=at("2026-06-10"))
    with pytest.raises(NotFound):
        risk.clear_override(session, ACTOR, G, now=at("2026-06-10"))


def test_turning_red_notifies_dispatch_in_the_same_transaction(engine):
    """Committed for real (LISTEN only hears committed notifications), then cleaned up."""
    codes = ("NZ", "NZ1", "NZ1A", "NZ1A1")
    # A connection of its own, outside the pool: LISTEN needs autocommit, which must not leak back.
    conninfo = engine.url.render_as_string(hide_password=False).replace("postgresql+psycopg://", "postgresql://")
    listener = psycopg.connect(conninfo, autocommit=True)
    try:
        listener.execute(f"LISTEN {live.CHANNEL}")
        now = at("2026-06-10")
        with db.session_scope(engine) as s:
            parent = None
            for level, code in enumerate(codes, start=1):
                parent = s.execute(text(
                    "INSERT INTO areas (code, name, level, parent_id, geom) VALUES (:c, :n, :l, :p, "
                    "ST_Multi(ST_MakeEnvelope(20.0, 20.0, 20.01, 20.01, 4326))) RETURNING id"),
                    {"c": code, "n": f"通知{code}", "l": level, "p": parent}).scalar_one()
            risk.update(s, ACTOR, as_of=at("2026-06-01"), area="NZ", now=now)
        with db.session_scope(engine) as s:
            for _ in range(4):
                add_incident(s, 20.005, 20.005, category="criminal", severity=4, occurred_at=at("2026-06-09"))
            report = risk.update(s, ACTOR, as_of=now, area="NZ", now=now)
            assert report.alerts and not _received(listener, 0.2)   # not before the commit
        got = _received(listener, 5.0)
        assert len(got) == 1
        event = json.loads(got[0])
        assert event["kind"] == "risk" and event["path"].count(".") == 3   # scoped to the grid
        payload = event["data"]
        assert payload["type"] == "risk" and payload["code"] == "NZ1A1"
        assert payload["level"] == "red" and payload["previous"] == "blue" and payload["reasons"]
    finally:
        listener.close()
        with db.session_scope(engine) as s:
            s.execute(text("DELETE FROM incidents WHERE grid_id IN (SELECT id FROM areas WHERE code LIKE 'NZ%')"))
            s.execute(text("DELETE FROM audit_log WHERE area_code LIKE 'NZ%' OR target_id = 'NZ'"))
            s.execute(text("DELETE FROM live_events WHERE kind = 'risk' AND payload->>'code' LIKE 'NZ%'"))
            for code in reversed(codes):
                s.execute(text("DELETE FROM areas WHERE code = :c"), {"c": code})


def _received(conn, timeout: float) -> list[str]:
    """Payloads delivered to a psycopg LISTEN connection within `timeout` seconds."""
    out = []
    deadline = datetime.now().timestamp() + timeout
    while not out:
        remaining = deadline - datetime.now().timestamp()
        if remaining <= 0:
            break
        gen = conn.notifies(timeout=remaining, stop_after=1)
        out += [n.payload for n in gen]
    return out


@pytest.mark.parametrize("score, level", [(0, "blue"), (17.99, "blue"), (18, "yellow"), (40, "orange"),
                                          (69.9, "orange"), (70, "red"), (math.inf, "red")])
def test_thresholds(policy, score, level):
    assert risk_policy.level_for(score, policy) == level
