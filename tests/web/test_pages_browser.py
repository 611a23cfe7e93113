"""Every page at 1600 px in the system Chromium with the network closed: each loads its icon and
everything else it asks for, its policy refuses nothing, and a screenshot of it lands in artifacts/."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from tests.browser import login, open_page, wait_for

pytestmark = pytest.mark.browser

# Records what a Content-Security-Policy refused (init scripts run under any policy).
CSP_PROBE = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI), true);
"""

# page -> (path, a JavaScript expression true once it has drawn its data)
PAGES = {
    "dashboard": ("/", "document.body.dataset.shownLevel && document.body.dataset.riskGrids"
                       " && document.body.dataset.incidentsLoaded"),
    "dispatch": ("/dispatch", "document.body.dataset.unitsLoaded === '1'"),
    "planner": ("/planner", "document.body.dataset.village"),
    "report": ("/report", "window.anwangTest?.map"),
    "review": ("/review?area=411103&month=2026-10", None),   # its map is a sandboxed frame of its own
    "public": ("/public", "document.body.dataset.publicLoaded === 'grid:12'"),
}


def test_every_page_at_1600_px(live_server, browser, browser_user, engine, artifacts):
    base = live_server(BASEMAP="none")
    with engine.connect() as conn:
        village, township = conn.execute(text(
            "SELECT v.code, t.code FROM areas v JOIN areas t ON t.id = v.parent_id "
            "WHERE v.level = 3 AND v.code LIKE '411103%' ORDER BY v.code LIMIT 1")).one()
    external, errors, failed, icons = [], [], [], []
    page = open_page(browser, base, external, errors, viewport={"width": 1600, "height": 1000})
    page.context.add_init_script(CSP_PROBE)
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("response", lambda r: icons.append(r.status) if urlsplit(r.url).path.startswith(
        ("/static/favicon", "/favicon")) else None)
    try:
        page.goto(f"{base}/login")
        page.screenshot(path=str(artifacts / "page-login-1600.png"))
        login(page, base, *browser_user)
        for name, (path, ready) in PAGES.items():
            page.goto(f"{base}{path}", timeout=60000)
            if name == "planner":
                wait_for(page, "document.body.dataset.ready === '1'", timeout=20000)
                page.select_option("#township-select", township)
                wait_for(page, f"document.querySelector('#village-select option[value=\"{village}\"]')")
                page.select_option("#village-select", village)
            if ready:
                wait_for(page, ready, timeout=30000)
            else:
                page.frame_locator("iframe.review-map").locator(".leaflet-control-layers").wait_for(timeout=30000)
            page.wait_for_timeout(500)   # tiles of the last move, labels, fades
            for frame in page.frames:
                assert frame.evaluate("window.__csp || []") == [], (name, frame.url)
            page.screenshot(path=str(artifacts / f"page-{name}-1600.png"))
    except Exception:
        page.screenshot(path=str(artifacts / "page-failure-1600.png"))
        raise
    finally:
        page.context.close()
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM area_locks"))
    assert icons and set(icons) == {200}
    assert failed == []
    assert external == []
    assert errors == []
