"""The monthly 周交办、月讲评 report: weeks, resolution levels, overdue matters, grids that turned red,
and a standalone document with nothing to fetch."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import text

from geo import audit
from geo.errors import InvalidInput
from layers import report, review, risk, selection
from layers.selection import SYSTEM, TZ
from tests.layers.incidents import add_incident

MAY = selection.parse_month("2026-05")


def test_weeks_of_the_month(session, tiny):
    add_incident(session, 10.005, 10.005, occurred_at=datetime(2026, 5, 4, 9, tzinfo=TZ),
                 resolved_at=datetime(2026, 5, 6, tzinfo=TZ))
    add_incident(session, 10.005, 10.005, occurred_at=datetime(2026, 5, 5, 9, tzinfo=TZ), status="handling")
    add_incident(session, 10.005, 10.005, occurred_at=datetime(2026, 4, 28, tzinfo=TZ),
                 resolved_at=datetime(2026, 5, 12, tzinfo=TZ))
    path = session.execute(text("SELECT path::text FROM areas WHERE code = 'TZ'")).scalar()
    weeks = report.weekly(session, path, *MAY, SYSTEM)
    assert [w["from"] for w in weeks] == ["2026-05-01", "2026-05-04", "2026-05-11", "2026-05-18", "2026-05-25"]
    second = weeks[1]
    assert (second["assigned"], second["assigned_resolved"], second["resolved"], second["open_end"]) == (2, 1, 1, 1)
    assert second["rate"] == 50.0
    assert weeks[2]["resolved"] == 1 and weeks[2]["assigned"] == 0   # April's matter, resolved in May
    assert weeks[-1]["to"] == "2026-05-31"


def test_resolution_levels_and_overdue(session, tiny):
    for level in ("group", "group", "village", "township"):
        add_incident(session, 10.005, 10.005, occurred_at=datetime(2026, 5, 3, tzinfo=TZ), resolution_level=level)
    add_incident(session, 10.005, 10.005, category="criminal", occurred_at=datetime(2026, 5, 3, tzinfo=TZ),
                 resolution_level="district")                                     # not a dispute
    old = add_incident(session, 10.025, 10.025, severity=4, status="handling",
                       occurred_at=datetime(2026, 3, 20, tzinfo=TZ))
    path = session.execute(text("SELECT path::text FROM areas WHERE code = 'TZ'")).scalar()
    r = report.resolution(session, path, *MAY, SYSTEM)
    assert r["total"] == 4 and [x["count"] for x in r["levels"]] == [2, 1, 1, 0]
    assert r["within_village"] == 75.0 and r["within_township"] == 100.0
    o = report.overdue(session, path, MAY[1], SYSTEM)
    assert o["total"] == 1 and o["items"][0]["id"] == old and o["items"][0]["days"] == 73
    assert set(o["items"][0]) == {"id", "category", "severity", "status", "grid", "reported_at", "days"}


def test_grids_that_turned_red(session, tiny):
    now = datetime(2026, 6, 10, tzinfo=TZ)
    risk.update(session, audit.Actor("test"), as_of=datetime(2026, 4, 29, tzinfo=TZ), area="TZ", now=now)
    for _ in range(4):
        add_incident(session, 10.005, 10.005, category="criminal", severity=4,
                     occurred_at=datetime(2026, 5, 12, tzinfo=TZ))
    risk.update(session, audit.Actor("test"), as_of=datetime(2026, 5, 13, tzinfo=TZ), area="TZ", now=now)
    path = session.execute(text("SELECT path::text FROM areas WHERE code = 'TZ'")).scalar()
    turned = report.turned(session, path, *MAY)
    assert [(t["code"], t["from"], t["to"], t["week"]) for t in turned] == [("TZ1A1", "blue", "red", "2026-05-11")]
    assert {r["rule"] for r in turned[0]["reasons"]} >= {"score", "floor"}


def test_the_document_is_standalone(session, tiny):
    add_incident(session, 10.005, 10.005, occurred_at=datetime(2026, 5, 3, tzinfo=TZ))
    doc = report.build(session, "TZ", "2026-05", SYSTEM, with_map=False)
    review.check_offline(doc)
    assert "测试TZ" in doc and "周交办" in doc and "四色预警" in doc and "2026-05-31" in doc
    assert "EPSG:32632" in doc
    assert "走访与村务" in doc and "“510”圆桌议事会（次）" in doc and "60000+" in doc   # beside the article
    english = report.build(session, "TZ", "2026-05", SYSTEM, locale="en", with_map=False)
    assert "Week by week" in english and "Visits and village records" in english


def test_a_bad_output_name_is_refused(session, tiny, tmp_path):
    with pytest.raises(InvalidInput) as exc:
        report.write(session, "TZ", "2026-05", tmp_path / "report.docx")
    assert exc.value.field == "output"
    with pytest.raises(InvalidInput):
        report.build(session, "TZ", "May", SYSTEM)


def test_check_offline_catches_what_a_browser_would_fetch():
    for bad in ('<script src="https://cdn.example/x.js"></script>', '<link rel="stylesheet" href="//cdn/x.css">',
                '<div style="background:url(http://x/y.png)">', '<img src="http://x/y.png">',
                "<style>@import url('https://x/y.css');</style>"):
        with pytest.raises(RuntimeError):
            review.check_offline(bad)
    review.check_offline('<a href="https://leafletjs.com">Leaflet</a><script src="/vendor/leaflet/leaflet.js"></script>')
