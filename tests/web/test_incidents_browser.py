"""Incidents in the system Chromium with the network closed: a grid worker reports through the
form (a script payload in the description), then the dashboard's clustered incidents layer shows
it in a popup as plain text — nothing executes, nothing leaves the machine, no console error."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.browser import login, open_page, wait_for

pytestmark = pytest.mark.browser

PAYLOAD = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>排水沟纠纷'


@pytest.fixture()
def worker(engine, demo):
    """A committed grid worker scoped to one demo grid; removed with their reports afterwards."""
    from geo import audit, db, users

    name, password = "browser_gridworker", "browser-pass-2"
    with db.session_scope(engine) as s:
        grid, lon, lat = s.execute(text(
            "SELECT code, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM areas "
            "WHERE level = 4 AND code LIKE '411103002004%' ORDER BY code LIMIT 1")).one()
        users.add_user(s, audit.Actor("test"), name, "grid_worker", password=password,
                       scopes=[grid], replace=True)
    yield {"name": name, "password": password, "grid": grid, "lon": lon, "lat": lat}
    with db.session_scope(engine) as s:
        uid = s.execute(text("SELECT id FROM users WHERE username = :u"), {"u": name}).scalar()
        s.execute(text("DELETE FROM incidents WHERE created_by = :u"), {"u": uid})
        s.execute(text("DELETE FROM audit_log WHERE actor_id = :u"), {"u": uid})
        s.execute(text("DELETE FROM users WHERE id = :u"), {"u": uid})


def test_report_form_then_map_popup_escape_user_text(live_server, browser, browser_user, worker,
                                                     artifacts):
    base = live_server(BASEMAP="none")
    external, errors = [], []
    page = open_page(browser, base, external, errors)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        login(page, base, worker["name"], worker["password"])
        page.goto(f"{base}/report")
        wait_for(page, "window.anwangTest?.map", timeout=10000)
        assert page.locator("path.leaflet-interactive").count() == 1          # only their grid
        point = page.evaluate(
            "([lat, lon]) => { const p = window.anwangTest.map.latLngToContainerPoint([lat, lon]);"
            " return [p.x, p.y]; }", [worker["lat"], worker["lon"]])
        box = page.locator("#map").bounding_box()
        page.mouse.click(box["x"] + point[0], box["y"] + point[1])
        wait_for(page, "document.body.dataset.pointChosen === '1'", timeout=5000)
        page.select_option("select[name=category]", "dispute")
        page.fill("input[name=subtype]", "邻里纠纷")
        page.fill("input[name=occurred_at]", "2026-10-30T09:30")
        page.fill("textarea[name=description]", PAYLOAD)
        page.fill("input[name=reporter_name]", "<b>王</b>")
        page.click("#submit")
        wait_for(page, "document.getElementById('result').dataset.savedId", timeout=10000)
        incident_id = page.get_attribute("#result", "data-saved-id")
        assert worker["grid"] in page.inner_text("#result")
        page.locator("#result").scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / "incident-report-form.png"))
        page.context.close()

        page = open_page(browser, base, external, errors)
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        login(page, base, *browser_user)
        wait_for(page, "window.anwangTest?.incidents && document.body.dataset.incidentsLoaded",
                               timeout=20000)
        assert int(page.evaluate("document.body.dataset.incidentsLoaded")) > 0
        assert page.locator(".marker-cluster").count() > 0                   # clustered
        loads = int(page.evaluate("document.body.dataset.incidentsLoads"))
        page.evaluate("([lat, lon]) => window.anwangTest.map.setView([lat, lon], 18)",
                      [worker["lat"], worker["lon"]])
        wait_for(page, f"Number(document.body.dataset.incidentsLoads) > {loads}", timeout=15000)
        wait_for(page,
            "id => { let hit = false; window.anwangTest.incidents.layer.eachLayer("
            "l => { if (l.feature.id === id) hit = true; }); return hit; }",
            arg=int(incident_id), timeout=15000)
        page.evaluate(
            "id => { let m = null; window.anwangTest.incidents.layer.eachLayer("
            "l => { if (l.feature.id === id) m = l; });"
            " m.openPopup(); }",
            int(incident_id))
        popup = page.locator(".incident-popup")
        popup.wait_for(timeout=10000)
        text_shown = popup.inner_text()
        assert PAYLOAD in text_shown and "<b>王</b>" in text_shown
        assert popup.locator("img, script, b").count() == 0
        assert page.evaluate("window.__pwned") is None
        page.wait_for_timeout(400)  # the popup's fade-in, for a readable screenshot
        page.screenshot(path=str(artifacts / "incident-popup.png"))

        # Filters: hazards only drops the dispute just reported from the layer.
        before = int(page.evaluate("document.body.dataset.incidentsLoaded"))
        page.select_option("#incident-filters select[name=category]", "hazard")
        wait_for(page, f"document.body.dataset.incidentsLoaded !== '{before}'", timeout=10000)
        ids = page.evaluate("() => { const out = []; window.anwangTest.incidents.layer.eachLayer("
                            "l => out.push(l.feature.properties.category)); return out; }")
        assert ids and set(ids) == {"hazard"}
        page.screenshot(path=str(artifacts / "incident-layer-filtered.png"))
    except Exception:
        page.screenshot(path=str(artifacts / "incident-browser-failure.png"))
        raise
    finally:
        page.context.close()
    assert dialogs == []
    assert external == []
    assert errors == []


def test_dispatch_page_offers_the_clustered_layer_with_filters(live_server, browser, browser_user,
                                                               artifacts):
    base = live_server(BASEMAP="none")
    external, errors = [], []
    page = open_page(browser, base, external, errors)
    try:
        login(page, base, *browser_user)
        page.goto(f"{base}/dispatch")
        wait_for(page, "window.anwangTest?.incidents", timeout=15000)
        toggle = page.locator("#incident-show")
        assert not toggle.is_checked()                       # off by default beside the live units
        toggle.check()
        wait_for(page, "Number(document.body.dataset.incidentsLoaded) > 0", timeout=20000)
        page.select_option("#incident-filters select[name=severity]", "3,4")
        wait_for(page,
            "() => { const s = new Set(); window.anwangTest.incidents.layer.eachLayer("
            "l => s.add(l.feature.properties.severity)); return s.size && [...s].every(v => v >= 3); }",
            timeout=15000)
        page.screenshot(path=str(artifacts / "incident-layer-dispatch.png"))
    except Exception:
        page.screenshot(path=str(artifacts / "incident-dispatch-failure.png"))
        raise
    finally:
        page.context.close()
    assert external == []
    assert errors == []
