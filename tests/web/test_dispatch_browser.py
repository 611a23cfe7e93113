"""/dispatch in the system Chromium with the network closed: pings posted through the API move the
unit's marker within 2 s over the live SSE stream; silent units turn grey; replay and "where was
everyone at time T" work; nothing leaves the machine and the console stays clean."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
from sqlalchemy import text

from geo import audit, db
from geo.patrol import units as patrol_units
from tests.browser import login, open_page, wait_for

pytestmark = pytest.mark.browser
CALLSIGN, SILENT = "浏览器-1", "浏览器-静"


@pytest.fixture()
def units(engine, demo):
    tokens = {}
    with db.session_scope(engine) as s:
        for cs, device in ((CALLSIGN, "browser-1"), (SILENT, "browser-2")):
            s.execute(text("DELETE FROM units WHERE callsign = :c"), {"c": cs})
            _, tokens[cs] = patrol_units.add_unit(s, audit.Actor("test"), cs, "car", device, "411103", "on_duty")
    yield tokens
    with db.session_scope(engine) as s:
        for cs in (CALLSIGN, SILENT):
            uid = s.execute(text("SELECT id FROM units WHERE callsign = :c"), {"c": cs}).scalar()
            if uid:
                s.execute(text("DELETE FROM positions WHERE unit_id = :u"), {"u": uid})
                s.execute(text("DELETE FROM live_events WHERE payload->>'callsign' = :c"), {"c": cs})
                s.execute(text("DELETE FROM units WHERE id = :u"), {"u": uid})


def post(base, token, fixes):
    r = requests.post(f"{base}/api/positions", headers={"Authorization": f"Bearer {token}"},
                      json={"positions": fixes}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_marker_moves_within_two_seconds_of_a_ping(live_server, browser, browser_user, units, artifacts):
    base = live_server(BASEMAP="none")
    now = datetime.now(timezone.utc)
    # A short trail for the live unit, and one fix five minutes old for the silent one.
    post(base, units[CALLSIGN], [{"ts": (now - timedelta(seconds=60 - 10 * i)).isoformat(),
                                  "lon": 114.00 + 0.0004 * i, "lat": 33.60, "heading": 90, "speed": 4.0}
                                 for i in range(5)])
    post(base, units[SILENT], [{"ts": (now - timedelta(minutes=5)).isoformat(), "lon": 114.01, "lat": 33.61}])
    external, errors = [], []
    page = open_page(browser, base, external, errors)
    try:
        login(page, base, *browser_user)
        page.goto(f"{base}/dispatch")
        wait_for(page, "window.anwangTest?.dispatch && document.body.dataset.unitsLoaded === '1'", timeout=15000)
        wait_for(page, "document.body.dataset.live === 'open'", timeout=10000)
        start = page.evaluate(f"anwangTest.dispatch.unitLatLng({CALLSIGN!r})")
        assert start == pytest.approx([33.60, 114.0016], abs=1e-6)
        assert page.evaluate(f"anwangTest.dispatch.unitColour({SILENT!r})") == "#a0aec0"      # grey: silent > 2 min
        assert page.evaluate(f"anwangTest.dispatch.unitColour({CALLSIGN!r})") == "#2f855a"    # on duty
        assert page.locator(f'#unit-list li:has-text("{CALLSIGN}")').count() == 1
        page.fill("#unit-search", "静")
        wait_for(page, "document.querySelectorAll('#unit-list li').length === 1", timeout=3000)
        page.fill("#unit-search", "")

        for step in range(1, 4):
            lon = 114.0016 + 0.001 * step
            sent = time.monotonic()
            # A fix every 10 s of device time (93 m each: 9 m/s, no jump), sent as fast as we can.
            ts = now - timedelta(seconds=20) + timedelta(seconds=10 * step)
            post(base, units[CALLSIGN], [{"ts": ts.isoformat(), "lon": lon,
                                          "lat": 33.60, "heading": 45 * step, "speed": 5.0}])
            wait_for(page,
                f"(() => {{ const p = anwangTest.dispatch.unitLatLng({CALLSIGN!r}); return p && Math.abs(p[1] - {lon}) < 1e-7; }})()",
                timeout=2000, polling=20)
            assert time.monotonic() - sent < 2.0
        page.screenshot(path=str(artifacts / "dispatch.png"))

        # Replay of the unit's shift (the last 24 hours here) with the time slider.
        page.evaluate(f"anwangTest.dispatch.startReplay({CALLSIGN!r})")
        page.wait_for_selector("#replay-box:not([hidden])", timeout=5000)
        wait_for(page, "Number(document.getElementById('replay-slider').max) >= 5", timeout=5000)
        page.fill("#replay-slider", "0")
        page.dispatch_event("#replay-slider", "input")
        assert page.inner_text("#replay-time")

        # Where was everyone 30 seconds ago: the live unit was on its first trail.
        then = datetime.now() - timedelta(seconds=30)
        page.fill("#at-time", then.strftime("%Y-%m-%dT%H:%M"))
        page.click("#at-show")
        wait_for(page, "Number(document.body.dataset.timeAt || 0) >= 1", timeout=5000)
        page.click("#at-live")
        page.screenshot(path=str(artifacts / "dispatch-replay.png"))
    except Exception:
        page.screenshot(path=str(artifacts / "dispatch-failure.png"))
        raise
    finally:
        page.context.close()
    assert external == []
    assert errors == []
