"""Markup planted in every text that reaches a page stays text, in the system Chromium with the
network closed.

Script-looking payloads go into area names (written in the database, given as the names of a
split's new grids, and imported from a boundary file), a split's reason, a risk override's reason,
a grid leader's name, an incident's description, address, reporter and subtype, a user's display
name, a live risk alert, and inputs the server echoes in its error messages. Then every page is
opened as each role that can see it, and the tooltips, popups, panels and lists showing those texts
are opened. Each page must show the payload literally where it belongs, run none of it, ask for
nothing it names (`<img src=x>`), and break no rule of its Content-Security-Policy.

Pages are checked twice: under their real policy, and with the policy switched off in the browser,
so that the encoding alone is shown to hold (with the policy on, an injected handler would only be
blocked, not run).
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, urlsplit

import pytest
from sqlalchemy import text

from geo import db
from tests.browser import login, open_page, wait_for
from tests.security.xss_plant import (
    ADDRESS,
    CALLSIGN,
    CSP_PROBE,
    DESCRIPTION,
    DISPLAY_NAME,
    EXACT_ROLES,
    GPX,
    GRID,
    IMG,
    IMPORT_CODE,
    IMPORTED,
    LIVE_ADDRESS,
    OVERRIDE_REASON,
    PASSWORD,
    PHONE,
    REPORTER,
    SPLIT_NAMES,
    SPLIT_REASON,
    STAFF,
    SUBTYPE,
    SVG,
    TOWNSHIP,
    URL,
    VILLAGE,
    Planted,
    _api,
    _clean,
    _plant,
    _split_target,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def planted(engine, demo, live_server):
    base = live_server(BASEMAP="none")
    with engine.connect() as conn:
        split = _split_target(conn)
    names, made = {}, {}
    try:
        yield _plant(engine, base, split, names, made)
    finally:
        _clean(engine, names, made)


# -- looking at a page ----------------------------------------------------------------------------
@dataclass
class Visit:
    page: object
    external: list
    errors: list
    failed: list
    asked_for_x: list
    allowed: tuple = ()             # answers the test provokes on purpose: "404 /api/tracks/import" …


@contextmanager
def visit(browser, planted: Planted, csp: bool, artifacts, name: str):
    """A page with the network closed, recording console errors, 4xx/5xx answers and requests for
    the payloads' `x`; on leaving, checks that nothing ran, nothing was injected, nothing refused."""
    external, errors, failed, asked = [], [], [], []
    page = open_page(browser, planted.base, external, errors, bypass_csp=not csp,
                     viewport={"width": 1600, "height": 1000})
    page.context.add_init_script(CSP_PROBE)
    page.on("response", lambda r: failed.append(f"{r.status} {urlsplit(r.url).path}") if r.status >= 400 else None)
    page.on("request", lambda r: asked.append(r.url) if urlsplit(r.url).path.rstrip("/").endswith("/x") else None)
    page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
    v = Visit(page, external, errors, failed, asked)
    try:
        yield v
        assert_clean(v)
    except Exception:
        page.screenshot(path=str(artifacts / f"xss-{name}-failure.png"))
        raise
    finally:
        page.context.close()


def assert_clean(v: Visit) -> None:
    """Nothing ran, nothing became an element, nothing was refused or failed unasked."""
    for frame in v.page.frames:
        where = frame.url
        assert frame.evaluate("window.__xss") is None, f"a payload ran in {where}"
        assert frame.evaluate("document.querySelectorAll('[onerror], [onload]').length") == 0, \
            f"a payload became an element in {where}"
        assert frame.evaluate("window.__csp || []") == [], f"the policy refused something in {where}"
    assert v.asked_for_x == [], "a payload's <img src=x> was loaded"
    assert v.external == []
    refused = [e for e in v.errors if "Content Security Policy" in e or "Refused to" in e]
    assert refused == [], refused
    unexpected = [f for f in v.failed if not f.startswith(v.allowed)]
    assert unexpected == [], unexpected
    # The only console errors allowed are Chromium's lines for the answers the test provoked.
    noise = [e for e in v.errors if not (v.allowed and "Failed to load resource" in e)]
    assert noise == [], noise


def shows(page, selector: str, words: str, timeout: float = 15000) -> None:
    """Wait until an element matching `selector` holds `words` as text (the payload, literally)."""
    try:
        wait_for(page, "([sel, s]) => [...document.querySelectorAll(sel)].some(e => e.textContent.includes(s))",
                 [selector, words], timeout=timeout)
    except TimeoutError:
        ran = page.evaluate("[window.__xss, document.querySelectorAll('[onerror], [onload]').length]")
        raise AssertionError(f"{words!r} is not shown as text in {selector} "
                             f"(window.__xss: {ran[0]}, payload elements: {ran[1]})") from None


def fit(page, bbox: list, zoom: float, hook: str = "map") -> None:
    """Show the box on the page's map, at least at `zoom`."""
    page.evaluate("([b, z, hook]) => { const h = window.anwangTest[hook]; const m = h.map || h;"
                  " m.fitBounds([[b[1], b[0]], [b[3], b[2]]], {animate: false});"
                  " if (m.getZoom() < z) { m.setZoom(z, {animate: false}); } }", [bbox, zoom, hook])


def fire_click(page, code: str, hook: str = "map") -> None:
    """Click the area with this code on the page's map as Leaflet delivers a click."""
    page.evaluate("([code, hook]) => { const h = window.anwangTest[hook]; const m = h.map || h;"
                  " let hit = null; m.eachLayer(l => { if (l.feature && l.feature.properties &&"
                  " l.feature.properties.code === code && l.listens('click')) { hit = l; } });"
                  " hit.fire('click'); }", [code, hook])


def sign_in(v: Visit, planted: Planted, role: str) -> None:
    """Log in through the login page as the planted user of `role`, then open the dashboard (a grid
    worker lands on their day)."""
    login(v.page, planted.base, planted.users[role], PASSWORD)
    if v.page.url != f"{planted.base}/":
        v.page.goto(f"{planted.base}/")


MODES = [pytest.param(True, id="csp"), pytest.param(False, id="encoding-only")]


# -- the pages --------------------------------------------------------------------------------------
@pytest.mark.parametrize("role, csp", [("admin", True), ("admin", False), ("dispatcher", False),
                                       ("planner", False), ("analyst", False), ("grid_worker", True),
                                       ("grid_worker", False)])
def test_dashboard_labels_panel_risk_and_popup(browser, planted, artifacts, role, csp):
    with visit(browser, planted, csp, artifacts, f"dashboard-{role}") as v:
        page = v.page
        sign_in(v, planted, role)
        wait_for(page, "window.anwangTest?.map && document.body.dataset.shownLevel", timeout=20000)
        shows(page, ".topbar .who", DISPLAY_NAME)
        # Only recent incidents: a small layer, not 3,000 markers reloaded at every view below.
        page.fill("#incident-filters input[name=from]", (datetime.now() - timedelta(days=1)).strftime("%Y-%m-%d"))
        page.dispatch_event("#incident-filters input[name=from]", "change")
        if role != "grid_worker":        # a grid worker's map holds their grid only
            page.select_option("#level-select", "2")
            fit(page, planted.bbox[planted.township], 10.5)
            shows(page, ".leaflet-tooltip", TOWNSHIP)
            page.select_option("#level-select", "3")
            fit(page, planted.bbox[planted.village], 12.5)
            shows(page, ".leaflet-tooltip", VILLAGE)
        if role == "admin":              # the imported jurisdiction is outside everyone else's scope
            page.select_option("#level-select", "2")
            fit(page, planted.bbox[IMPORT_CODE + "01"], 11)
            shows(page, ".leaflet-tooltip", IMPORTED[1])
        page.select_option("#level-select", "4")
        fit(page, planted.bbox[planted.grid], 15)
        shows(page, ".leaflet-tooltip", GRID)
        if role != "grid_worker":
            for code, name in zip(planted.split_codes, SPLIT_NAMES):
                fit(page, planted.bbox[code], 15)
                shows(page, ".leaflet-tooltip", name)
        fit(page, planted.bbox[planted.grid], 15)
        wait_for(page, "document.body.dataset.shownLevel === '4'")
        fire_click(page, planted.grid)
        shows(page, "#area-info h2", GRID)
        shows(page, "#area-info", STAFF)
        if role != "grid_worker":
            shows(page, "#area-info .path", TOWNSHIP)
            shows(page, "#area-info .path", VILLAGE)
        shows(page, "#risk-detail", GRID)
        shows(page, "#risk-detail li", OVERRIDE_REASON)
        shows(page, "#sanling-title", GRID)

        page.evaluate("([lon, lat]) => window.anwangTest.map.setView([lat, lon], 18, {animate: false})",
                      list(planted.point))
        wait_for(page, "id => { let hit = false; window.anwangTest.incidents.layer.eachLayer("
                       "l => { if (l.feature.id === id) { hit = true; } }); return hit; }",
                 arg=planted.incident, timeout=20000)
        page.evaluate("id => window.anwangTest.incidents.layer.eachLayer("
                      "l => { if (l.feature.id === id) { l.openPopup(); } })", planted.incident)
        for words in (DESCRIPTION, ADDRESS, SUBTYPE, GRID):
            shows(page, ".incident-popup", words)
        if role in EXACT_ROLES:
            shows(page, ".incident-popup", REPORTER)
        page.screenshot(path=str(artifacts / f"xss-dashboard-{role}.png"))


@pytest.mark.parametrize("role, csp", [("admin", True), ("dispatcher", False)])
def test_dispatch_tooltips_boxes_toasts_and_echoed_errors(browser, planted, artifacts, role, csp):
    with visit(browser, planted, csp, artifacts, f"dispatch-{role}") as v:
        page = v.page
        v.allowed = ("404 /api/tracks/import",)
        sign_in(v, planted, role)
        page.goto(f"{planted.base}/dispatch")
        wait_for(page, "window.anwangTest?.dispatch && document.body.dataset.unitsLoaded === '1'"
                       " && document.body.dataset.live === 'open'", timeout=20000)
        shows(page, ".topbar .who", DISPLAY_NAME)
        hook = "window.anwangTest.dispatch"
        # The incident of the last hour: its tooltip on the map and the incident box.
        wait_for(page, f"{hook}.incidents[{planted.incident}]", timeout=15000)
        page.evaluate(f"{hook}.incidents[{planted.incident}].marker.openTooltip()")
        shows(page, ".leaflet-tooltip", ADDRESS)
        page.evaluate(f"{hook}.selectIncident({planted.incident}, true)")
        shows(page, "#incident-info", ADDRESS)
        # The grid set red by hand and not patrolled: in the list and its tooltip on the map.
        shows(page, "#gap-list", GRID)
        open_area_tooltip = ("([layer, code]) => { let hit = null; window.anwangTest.dispatch.layers[layer]"
                             ".eachLayer(g => g.eachLayer(l => { if (l.feature.properties.code === code) hit = l; }));"
                             " if (hit) { hit.openTooltip(); } return Boolean(hit); }")
        wait_for(page, open_area_tooltip, ["gaps", planted.grid])
        shows(page, ".leaflet-tooltip", GRID)
        # Patrol coverage: every grid's tooltip names it.
        page.evaluate(f"{hook}.map.addLayer({hook}.layers.coverage)")
        wait_for(page, open_area_tooltip, ["coverage", planted.split_codes[0]], timeout=20000)
        shows(page, ".leaflet-tooltip", SPLIT_NAMES[0])
        # Live: a risk alert naming the grid as a toast, and a new incident with its address in the queue.
        with db.session_scope(planted.engine) as s:
            s.execute(text("SELECT live_publish('risk', CAST(:p AS ltree), CAST(:payload AS jsonb))"),
                      {"p": planted.path, "payload": json.dumps(
                          {"type": "risk", "code": planted.grid, "name": GRID, "level": "red",
                           "previous": "yellow", "reasons": [OVERRIDE_REASON]}, ensure_ascii=False)})
        shows(page, "#toasts", GRID)
        _api(planted.base, planted.tokens["admin"], "POST", "/api/incidents", json={
            "category": "hazard", "severity": 1, "address": LIVE_ADDRESS, "description": DESCRIPTION,
            "occurred_at": (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat(),
            "lon": planted.point[0], "lat": planted.point[1], "crs": "wgs84"})
        shows(page, "#queue-list", LIVE_ADDRESS)
        # The server's error message repeats the call sign typed into the GPX form.
        page.fill("#gpx-unit", CALLSIGN)
        page.set_input_files("#gpx-file", {"name": "track.gpx", "mimeType": "application/gpx+xml", "buffer": GPX})
        page.click("#gpx-form button[type=submit]")
        shows(page, "#gpx-result", CALLSIGN)
        page.screenshot(path=str(artifacts / f"xss-dispatch-{role}.png"))


@pytest.mark.parametrize("role, csp", [("admin", True), ("planner", False)])
def test_planner_choices_labels_history_and_preview(browser, planted, artifacts, role, csp):
    with visit(browser, planted, csp, artifacts, f"planner-{role}") as v:
        page = v.page
        sign_in(v, planted, role)
        page.goto(f"{planted.base}/planner")
        wait_for(page, "document.body.dataset.ready === '1'", timeout=20000)
        # The township list is the home jurisdiction's (the imported one's names are shown, as
        # text, on the dashboard's map).
        shows(page, "#township-select option", TOWNSHIP)
        page.select_option("#township-select", planted.township)
        wait_for(page, f"document.querySelector('#village-select option[value=\"{planted.village}\"]')")
        shows(page, "#village-select option", VILLAGE)
        page.select_option("#village-select", planted.village)
        wait_for(page, f"document.body.dataset.village === '{planted.village}'", timeout=20000)
        for words in (GRID, *SPLIT_NAMES):
            shows(page, ".leaflet-tooltip.grid-label", words)
        shows(page, "#history-list .why", SPLIT_REASON)
        # A merge preview lists the grids it touches by name.
        page.click("#tool-merge")
        fire_click(page, planted.grid, hook="planner")
        fire_click(page, planted.neighbour, hook="planner")
        page.click("#preview-btn")
        wait_for(page, "!document.getElementById('preview-box').hidden || "
                       "document.getElementById('live-check').textContent.startsWith('✕')", timeout=20000)
        assert page.is_visible("#preview-box"), page.inner_text("#live-check")
        shows(page, "#preview-table", GRID)
        page.click("#cancel-btn")
        page.screenshot(path=str(artifacts / f"xss-planner-{role}.png"))


@pytest.mark.parametrize("role, csp", [("grid_worker", True), ("grid_worker", False), ("admin", False)])
def test_report_form_tooltips_and_echoed_errors(browser, planted, artifacts, role, csp):
    with visit(browser, planted, csp, artifacts, f"report-{role}") as v:
        page = v.page
        sign_in(v, planted, role)
        page.goto(f"{planted.base}/report")
        wait_for(page, "window.anwangTest?.map", timeout=20000)
        page.evaluate("code => window.anwangTest.map.eachLayer(l => { if (l.feature &&"
                      " l.feature.properties.code === code) { l.openTooltip(); } })", planted.grid)
        shows(page, ".leaflet-tooltip", GRID)
        if role != "grid_worker":
            return
        v.allowed = ("400 /api/incidents",)
        point = page.evaluate("([lon, lat]) => { const p = window.anwangTest.map.latLngToContainerPoint([lat, lon]);"
                              " return [p.x, p.y]; }", list(planted.point))
        box = page.locator("#map").bounding_box()
        page.mouse.click(box["x"] + point[0], box["y"] + point[1])
        wait_for(page, "document.body.dataset.pointChosen === '1'")
        page.select_option("select[name=category]", "dispute")
        page.fill("input[name=subtype]", SUBTYPE)
        page.fill("input[name=occurred_at]", (datetime.now() - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
        page.fill("input[name=address]", ADDRESS)
        page.fill("textarea[name=description]", DESCRIPTION)
        page.fill("input[name=reporter_name]", REPORTER)
        page.fill("input[name=reporter_phone]", PHONE)     # refused, and repeated in the message
        page.click("#submit")
        shows(page, "#result.error", PHONE)
        page.fill("input[name=reporter_phone]", "0395-1234567")
        page.click("#submit")
        wait_for(page, "document.getElementById('result').dataset.savedId", timeout=15000)
        shows(page, "#result", planted.grid)
        page.screenshot(path=str(artifacts / f"xss-report-{role}.png"))


@pytest.mark.parametrize("csp", MODES)
def test_public_map_tooltips(browser, planted, artifacts, csp):
    with visit(browser, planted, csp, artifacts, "public") as v:
        page = v.page
        page.goto(f"{planted.base}/public")
        wait_for(page, "document.body.dataset.publicLoaded === 'grid:12'", timeout=30000)
        for code, words in ((planted.grid, GRID), (planted.split_codes[1], SPLIT_NAMES[1])):
            page.evaluate("code => window.anwangTest.map.eachLayer(l => { if (l.feature &&"
                          " l.feature.properties.id === code) { l.openTooltip(); } })", code)
            shows(page, ".leaflet-tooltip", words)


@pytest.mark.parametrize("csp", MODES)
def test_review_page_and_its_map(browser, planted, artifacts, csp):
    with visit(browser, planted, csp, artifacts, "review") as v:
        page = v.page
        sign_in(v, planted, "analyst")
        page.goto(f"{planted.base}/review?area={planted.township}", timeout=60000)
        shows(page, ".review-panel h2", TOWNSHIP)
        shows(page, "#review-area option", TOWNSHIP)
        frame = page.frame_locator("iframe.review-map")
        frame.locator(".leaflet-control-layers-overlays").wait_for(timeout=30000)
        page.screenshot(path=str(artifacts / "xss-review.png"))


@pytest.mark.parametrize("csp", MODES)
def test_login_redirect_and_error_pages(browser, planted, artifacts, csp):
    with visit(browser, planted, csp, artifacts, "login") as v:
        page = v.page
        v.allowed = ("400 /review", "404 /%22")   # a malformed area code; no such page
        page.goto(f"{planted.base}/login?next={quote(URL)}")
        page.fill("input[name=username]", planted.users["analyst"])
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{planted.base}/")      # never to the javascript: URL
        page.goto(f"{planted.base}/review?area={quote(IMG)}")
        shows(page, ".error-page", IMG)
        page.goto(f"{planted.base}/{quote(SVG)}")
        page.wait_for_selector(".error-page")

