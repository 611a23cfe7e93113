"""三零 scorecards: days since the last case and zero months, rank among siblings, dispute resolution
by level, compliance by department — and the article's 90.71 % / 97.7 % / > 96 % from the demo."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import text

from geo.errors import NotFound
from layers import scorecards
from layers.selection import SYSTEM, TZ
from tests.layers.incidents import add_incident

AS_OF = datetime(2026, 6, 15, 12, tzinfo=TZ)


def test_days_since_and_zero_months(session, tiny):
    add_incident(session, 10.005, 10.005, category="petition", occurred_at=datetime(2026, 6, 5, 9, tzinfo=TZ))
    add_incident(session, 10.005, 10.005, category="accident", occurred_at=datetime(2026, 2, 20, tzinfo=TZ))
    add_incident(session, 10.025, 10.025, category="criminal", occurred_at=datetime(2026, 6, 14, tzinfo=TZ))
    card = scorecards.scorecard(session, "TZ1A", SYSTEM, as_of=AS_OF)["sanling"]
    assert card["petition"]["days_since"] == 10 and card["petition"]["last_30_days"] == 1
    assert card["accident"]["days_since"] == 115 and card["accident"]["zero_months"] == 3  # Mar, Apr, May
    assert card["criminal"]["days_since"] is None and card["criminal"]["zero_months"] == 12  # it was in TZ2
    assert card["petition"]["label"] == "零上访"
    district = scorecards.scorecard(session, "TZ", SYSTEM, as_of=AS_OF)["sanling"]
    assert district["criminal"]["days_since"] == 1


def test_the_card_says_when_the_data_ends(session, tiny):
    early = datetime(2000, 1, 1, tzinfo=TZ)          # before any data, the demo's included
    assert scorecards.scorecard(session, "TZ", SYSTEM, as_of=early)["data_until"] is None
    add_incident(session, 10.005, 10.005, category="hazard", occurred_at=datetime(2026, 6, 15, 11, tzinfo=TZ))
    add_incident(session, 10.005, 10.005, category="hazard", occurred_at=datetime(2026, 7, 1, tzinfo=TZ))
    until = scorecards.scorecard(session, "TZ1A", SYSTEM, as_of=AS_OF)["data_until"]
    # The newest incident up to as_of (the one added, or a later one of the demo's when it is loaded).
    assert datetime(2026, 6, 15, 11, tzinfo=TZ) <= datetime.fromisoformat(until) <= AS_OF


def test_rank_within_the_parent(session, tiny):
    for _ in range(3):
        add_incident(session, 10.005, 10.005, category="petition", occurred_at=datetime(2026, 5, 1, tzinfo=TZ))
    add_incident(session, 10.015, 10.005, category="criminal", occurred_at=datetime(2026, 5, 1, tzinfo=TZ))
    add_incident(session, 10.005, 10.005, category="hazard", occurred_at=datetime(2026, 5, 1, tzinfo=TZ))
    first = scorecards.scorecard(session, "TZ1A1", SYSTEM, as_of=AS_OF)["rank"]   # 300 households, 3 cases
    second = scorecards.scorecard(session, "TZ1A2", SYSTEM, as_of=AS_OF)["rank"]  # 420 households, 1 case
    assert (second["position"], first["position"]) == (1, 2) and first["of"] == 2
    assert first["value"] == pytest.approx(10.0) and first["cases"] == 3   # hazards are not 三零 cases
    assert first["parent"]["code"] == "TZ1A"
    assert scorecards.scorecard(session, "TZ", SYSTEM, as_of=AS_OF)["rank"] is None


def test_dispute_resolution_rate_and_levels(session, tiny):
    when = datetime(2026, 4, 1, tzinfo=TZ)
    for level, n in (("group", 5), ("village", 3), ("township", 1), ("district", 1)):
        for _ in range(n):
            add_incident(session, 10.005, 10.005, occurred_at=when, resolution_level=level)
    add_incident(session, 10.005, 10.005, occurred_at=when, status="escalated")
    add_incident(session, 10.005, 10.005, occurred_at=when, status="handling")
    d = scorecards.scorecard(session, "TZ", SYSTEM, as_of=AS_OF)["disputes"]
    assert (d["total"], d["resolved"], d["open"], d["escalated"]) == (12, 10, 2, 1)
    assert d["resolution_rate"] == pytest.approx(83.33)
    assert [b["count"] for b in d["by_level"]] == [5, 3, 1, 1]
    assert d["within_village"] == 80.0 and d["within_township"] == 90.0
    assert d["not_passed_up"] == pytest.approx(100 * 10 / 12, abs=0.01)  # minus the escalated and the district one


def test_compliance_by_department(session, tiny):
    dept = {c: session.execute(text("INSERT INTO departments (code, name) VALUES (:c, :n) RETURNING id"),
                               {"c": c, "n": n}).scalar() for c, n in (("T-EDU", "教育局"), ("T-HLT", "卫健委"))}
    rows = [("TZ1A", "village", None, True), ("TZ1B", "village", None, False),
            ("TZ1A1", "enterprise", "T-EDU", True), ("TZ1A1", "institution", "T-EDU", False),
            ("TZ1A2", "enterprise", "T-HLT", True), ("TZ2A1", "enterprise", "T-HLT", True)]
    for area, kind, d, ok in rows:
        session.execute(text("INSERT INTO entities (name, kind, area_id, department_id, compliant) VALUES "
                             "('主体', :k, (SELECT id FROM areas WHERE code = :a), :d, :ok)"),
                        {"k": kind, "a": area, "d": dept.get(d), "ok": ok})
    c = scorecards.scorecard(session, "TZ1", SYSTEM, as_of=AS_OF)["compliance"]
    assert c["villages"] == {"total": 2, "compliant": 1, "rate": 50.0}
    assert c["enterprises"] == {"total": 3, "compliant": 2, "rate": 66.67}
    assert [(d["code"], d["rate"]) for d in c["departments"]] == [("T-EDU", 50.0), ("T-HLT", 100.0)]


def test_unknown_area(session, tiny):
    with pytest.raises(NotFound):
        scorecards.scorecard(session, "NOPE", SYSTEM)


def test_visits_and_village_records(session, tiny):
    from tests.layers.incidents import add_follow_up

    grid = "(SELECT id FROM areas WHERE code = 'TZ1A1')"
    homes = [session.execute(text(f"INSERT INTO households (grid_id, number, members) VALUES ({grid}, :n, 3) "
                                  "RETURNING id"), {"n": n}).scalar_one() for n in ("1", "2", "3", "4")]
    for h, when, people in ((homes[0], datetime(2026, 6, 2, tzinfo=TZ), 2),
                            (homes[0], datetime(2026, 5, 2, tzinfo=TZ), 1),
                            (homes[1], datetime(2025, 1, 2, tzinfo=TZ), 3)):       # over a year ago
        session.execute(text(f"INSERT INTO visits (kind, household_id, grid_id, occurred_at, people) "
                             f"VALUES ('home', :h, {grid}, :t, :p)"), {"h": h, "t": when, "p": people})
    done = add_incident(session, 10.005, 10.005, occurred_at=datetime(2026, 4, 1, tzinfo=TZ),
                        resolution_level="group")
    add_incident(session, 10.005, 10.005, occurred_at=datetime(2026, 4, 1, tzinfo=TZ), resolution_level="group")
    add_follow_up(session, done, datetime(2026, 4, 20, tzinfo=TZ))
    session.execute(text(f"""
        INSERT INTO village_meetings (area_id, held_on, topic, participants, problems_raised, problems_solved,
                                      disputes_settled, site_inspection)
        VALUES ({grid}, '2026-06-10', '停车难', '{{"resident": 5}}', 4, 3, 2, true)"""))
    session.execute(text(f"INSERT INTO village_logbook (area_id, colour, recorded_on, title, resolved_dispute) "
                         f"VALUES ({grid}, 'black', '2026-05-01', '争吵', true), "
                         f"({grid}, 'red', '2026-05-01', '好人好事', false)"))
    card = scorecards.scorecard(session, "TZ1A", SYSTEM, as_of=AS_OF)
    v = card["visits"]
    assert (v["households"], v["households_year"], v["people_year"]) == (4, 1, 3)
    assert (v["households_month"], v["people_month"], v["follow_ups_year"]) == (1, 2, 1)
    assert v["coverage_year"] == 25.0
    assert (card["disputes"]["followed_up"], card["disputes"]["resolved"]) == (1, 2)   # closings do not count
    assert card["village"]["meetings"] == {"meetings": 1, "site_inspections": 1, "problems_raised": 4,
                                           "problems_solved": 3, "disputes_settled": 2}
    assert card["village"]["logbook"] == {"red": 1, "black": 1, "blue": 0, "disputes_settled": 1}
    assert card["seed"]["households_visited"] == 60_000 and card["seed"]["meetings"] == 32
    assert scorecards.scorecard(session, "TZ2", SYSTEM, as_of=AS_OF)["visits"]["households"] == 0


def test_the_demo_reproduces_the_article(session, demo):
    card = scorecards.scorecard(session, "411103", SYSTEM, as_of=datetime(2026, 10, 31, 23, tzinfo=TZ))
    c = card["compliance"]
    assert (c["villages"]["total"], c["villages"]["compliant"]) == (183, 166)
    assert c["villages"]["rate"] == 90.71
    assert (c["enterprises"]["total"], c["enterprises"]["compliant"]) == (7022, 6861)
    assert round(c["enterprises"]["rate"], 1) == 97.7
    assert c["all"]["total"] == 7205 and len(c["departments"]) == 20
    assert card["disputes"]["resolution_rate"] > 96
    assert card["disputes"]["within_village"] > card["disputes"]["by_level"][0]["share"]
    for cat in ("petition", "accident", "criminal"):
        assert card["sanling"][cat]["days_since"] is not None
    v, village = card["visits"], card["village"]
    assert 60_000 < v["households_year"] < 70_000 and 130_000 < v["people_year"] < 140_000
    assert v["households"] == sum(a["households"] for a in demo.areas if a["level"] == 4)
    assert card["disputes"]["follow_up_rate"] > 98      # 回访 after every matter but the newest
    assert (village["meetings"]["meetings"], village["meetings"]["problems_solved"],
            village["meetings"]["disputes_settled"]) == (32, 106, 83)
    township = scorecards.scorecard(session, "411103102", SYSTEM, as_of=datetime(2026, 10, 31, tzinfo=TZ))
    assert township["rank"]["of"] == 10 and 1 <= township["rank"]["position"] <= 10
