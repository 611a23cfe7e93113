"""The first map in the system Chromium with the network closed: Leaflet loads from the app,
boundaries are drawn, the click panel fills, no request leaves the machine, no console error."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.browser import login, open_page, wait_for

pytestmark = pytest.mark.browser


def test_map_renders_offline_with_boundaries_and_panel(live_server, browser, browser_user, artifacts):
    base = live_server(BASEMAP="none")
    external, errors = [], []
    page = open_page(browser, base, external, errors)
    try:
        login(page, base, *browser_user)
        wait_for(page, "window.L && window.anwangTest?.map", timeout=10000)
        wait_for(page, "document.body.dataset.shownLevel === '2'", timeout=15000)
        assert page.locator("path.leaflet-interactive").count() >= 10   # townships
        page.select_option("#level-select", "4")
        wait_for(page, "document.body.dataset.shownLevel === '4'", timeout=15000)
        assert page.locator("path.leaflet-interactive").count() > 198   # grids
        page.select_option("#level-select", "3")
        wait_for(page, "document.body.dataset.shownLevel === '3'", timeout=15000)
        assert page.locator("path.leaflet-interactive").count() >= 198  # villages
        # Village names show from zoom 12: look at one village there, then come back.
        view = page.evaluate("""() => { const m = window.anwangTest.map; const back = [m.getCenter(), m.getZoom()];
            m.eachLayer(l => { if (l.feature && l.feature.properties.name === '金牛社区') {
                m.fitBounds(l.getBounds(), {maxZoom: 13, animate: false}); } });
            if (m.getZoom() < 12) { m.setZoom(12, {animate: false}); }
            return back; }""")
        page.locator(".leaflet-tooltip", has_text="金牛社区").first.wait_for(timeout=5000)
        page.evaluate("([c, z]) => window.anwangTest.map.setView(c, z, {animate: false})", view)
        page.locator("path.leaflet-interactive").nth(40).click(force=True)
        wait_for(page, "document.getElementById('area-info').dataset.code", timeout=10000)
        panel = page.inner_text("#area-info")
        assert "户数" in panel and "人口" in panel and "编码" in panel
        page.screenshot(path=str(artifacts / "map.png"))
    except Exception:
        page.screenshot(path=str(artifacts / "map-failure.png"))
        raise
    finally:
        page.context.close()
    assert external == []
    assert errors == []


def test_osm_basemap_is_the_only_thing_that_would_leave_and_the_map_still_works(
        live_server, browser, browser_user, artifacts):
    base = live_server(BASEMAP="osm")
    external, errors = [], []
    page = open_page(browser, base, external, errors)
    try:
        login(page, base, *browser_user)
        page.goto(f"{base}/?lang=en")
        wait_for(page, "document.body.dataset.shownLevel === '2'", timeout=15000)
        assert page.locator("path.leaflet-interactive").count() >= 10
        assert "Click an area" in page.inner_text("#area-info")
        page.screenshot(path=str(artifacts / "map-en-osm-blocked.png"))
    finally:
        page.context.close()
    assert external and all(urlsplit(u).hostname == "tile.openstreetmap.org" for u in external)
    assert all("ERR_INTERNET_DISCONNECTED" in e or "Failed to load resource" in e for e in errors), errors
