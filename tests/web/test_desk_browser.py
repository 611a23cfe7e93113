"""Each desk user's day in the system Chromium with the network closed, in Chinese and in English:
the dispatcher's queue, the analyst's month, the planner's map and the public map. Every page keeps
its console clean (favicon included) and loads nothing from elsewhere; screenshots at 1600 px go to
artifacts/."""
from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from shapely.geometry import shape
from sqlalchemy import text

from geo import audit, db
from geo.patrol import units as patrol_units
from geo.policy import home_area
from layers import selection
from tests.browser import login, open_page, wait_for

pytestmark = pytest.mark.browser
WIDE = {"viewport": {"width": 1600, "height": 1000}}
LANGS = ("zh", "en")
NEAR, SILENT = "队列-近", "队列-静"
ADDRESS = {"zh": "漯河市郾城区测试路 8 号", "en": "No. 8 Test Road, Yancheng"}
WORDS = {
    "zh": {"reported": "已上报", "stale": "无信号", "not_cut": "没有把", "finish": "完成画线",
           "until": "数据截至", "method": "z 得分", "reasons": "原因", "cv": "变异系数", "heading": "网格规划"},
    "en": {"reported": "reported", "stale": "no signal", "not_cut": "does not cut", "finish": "Finish line",
           "until": "data until", "method": "z-score", "reasons": "Reasons", "cv": "coefficient of variation",
           "heading": "Grid planner"},
}


def _open(browser, base, lang, user, external, errors, path):
    page = open_page(browser, base, external, errors, **WIDE)
    login(page, base, *user)
    page.goto(f"{base}{path}{'&' if '?' in path else '?'}lang={lang}")
    return page


def _post(base, token, fixes):
    r = requests.post(f"{base}/api/positions", headers={"Authorization": f"Bearer {token}"},
                      json={"positions": fixes}, timeout=10)
    assert r.status_code == 200, r.text


@pytest.fixture()
def desk_units(engine, demo):
    tokens = {}
    with db.session_scope(engine) as s:
        for cs, device in ((NEAR, "queue-near"), (SILENT, "queue-silent")):
            s.execute(text("DELETE FROM units WHERE callsign = :c"), {"c": cs})
            _, tokens[cs] = patrol_units.add_unit(s, audit.Actor("test"), cs, "car", device, "411103", "on_duty")
    yield tokens
    with db.session_scope(engine) as s:
        s.execute(text("DELETE FROM assignments WHERE incident_id IN "
                       "(SELECT id FROM incidents WHERE address = ANY(:a))"), {"a": list(ADDRESS.values())})
        s.execute(text("DELETE FROM incidents WHERE address = ANY(:a)"), {"a": list(ADDRESS.values())})
        for cs in (NEAR, SILENT):
            uid = s.execute(text("SELECT id FROM units WHERE callsign = :c"), {"c": cs}).scalar()
            if uid:
                s.execute(text("DELETE FROM positions WHERE unit_id = :u"), {"u": uid})
                s.execute(text("DELETE FROM live_events WHERE payload->>'callsign' = :c"), {"c": cs})
                s.execute(text("DELETE FROM units WHERE id = :u"), {"u": uid})


@pytest.mark.parametrize("lang", LANGS)
def test_dispatcher_queue_nearest_units_and_quiet_map(lang, live_server, browser, browser_user, desk_units,
                                                       engine, artifacts):
    base = live_server(BASEMAP="none")
    words = WORDS[lang]
    now = datetime.now(UTC)
    _post(base, desk_units[NEAR], [{"ts": (now - timedelta(seconds=20)).isoformat(), "lon": 114.002,
                                    "lat": 33.601, "heading": 90, "speed": 3.0}])
    # A unit silent for five hours: out of the list's way, no label on the map.
    with db.session_scope(engine) as s:
        uid = s.execute(text("SELECT id FROM units WHERE callsign = :c"), {"c": SILENT}).scalar()
        s.execute(text("""INSERT INTO unit_last_positions (unit_id, ts, seen_at, geom)
                          VALUES (:u, now() - interval '5 hours', now() - interval '5 hours',
                                  ST_SetSRID(ST_MakePoint(114.01, 33.61), 4326))
                          ON CONFLICT (unit_id) DO UPDATE SET ts = EXCLUDED.ts, seen_at = EXCLUDED.seen_at,
                                                              geom = EXCLUDED.geom"""), {"u": uid})
        # A red grid nobody patrolled: a coverage gap.
        gap = s.execute(text("""
            INSERT INTO risk_levels (area_id, period_start, period_end, score, level, reasons)
            SELECT id, current_date, current_date + 1, 99, 'red', '[]'::jsonb FROM areas
             WHERE level = 4 ORDER BY code DESC LIMIT 1 RETURNING id""")).scalar()
    external, errors = [], []
    page = _open(browser, base, lang, browser_user, external, errors, "/dispatch")
    try:
        wait_for(page, "window.anwangTest?.dispatch && document.body.dataset.unitsLoaded === '1'", timeout=20000)
        wait_for(page, "document.body.dataset.live === 'open'", timeout=10000)
        before = page.evaluate("anwangTest.dispatch.queue().length")

        # A new incident reaches the queue over the live stream within 2 s, with its address.
        with db.session_scope(engine) as s:
            incident = s.execute(text("""
                INSERT INTO incidents (category, status, occurred_at, address, geom, grid_id)
                VALUES ('dispute', 'reported', now(), :a, ST_SetSRID(ST_MakePoint(114.003, 33.601), 4326),
                        (SELECT g.id FROM areas g WHERE g.level = 4
                          AND ST_Contains(g.geom, ST_SetSRID(ST_MakePoint(114.003, 33.601), 4326)) LIMIT 1))
                RETURNING id"""), {"a": ADDRESS[lang]}).scalar()
        sent = time.monotonic()
        wait_for(page, f"anwangTest.dispatch.queue().some(q => q.id === {incident})", timeout=2000, polling=20)
        assert time.monotonic() - sent < 2.0
        queue = page.evaluate("anwangTest.dispatch.queue()")
        assert len(queue) == before + 1 and queue[-1]["id"] == incident      # oldest first: the new one last
        item = page.locator(f"#queue-list li[data-incident='{incident}']")
        assert ADDRESS[lang] in item.inner_text() and words["reported"] in item.inner_text()
        assert page.title().startswith(f"({len(queue)}) ")
        assert int(page.evaluate("document.body.dataset.chimes || 0")) >= 1

        # One click: the nearest units listed and drawn on the map.
        item.click()
        wait_for(page, "Number(document.body.dataset.nearestLines || 0) >= 1", timeout=5000)
        assert NEAR in page.inner_text("#nearest-list")
        assert page.locator(".nearest-tip").count() >= 1
        info = page.inner_text("#incident-info")
        assert words["reported"] in info and (lang == "en" or "reported" not in info)

        # Live units first, the long-silent ones collapsed; the popup and the list agree.
        wait_for(page, f"document.querySelector('#silent-list')?.textContent.includes({SILENT!r})", timeout=5000)
        assert SILENT not in page.inner_text("#unit-list")
        assert page.locator("#silent-units").evaluate("d => !d.open && !d.hidden")
        state = page.evaluate(f"anwangTest.dispatch.unitState({SILENT!r})")
        assert state == words["stale"]
        page.evaluate(f"""(() => {{ const u = Object.values(anwangTest.dispatch.units)
                                      .find(x => x.p.callsign === {SILENT!r}); u.marker.openPopup(); }})()""")
        assert words["stale"] in page.inner_text(".unit-popup")
        # Zoomed out, the call signs go once the zoom has ended. A fly-to still under way (the
        # nearest units, an open popup's pan) may end at its own zoom: stop it and zoom out again.
        wait_for(page, """(() => {
            const m = anwangTest.dispatch.map;
            if (m.getZoom() > 11) { m.stop(); m.closePopup(); m.setZoom(11, {animate: false}); }
            return document.getElementById('map').classList.contains('unit-labels-off');
        })()""", timeout=10000, polling=300)

        # A coverage gap is named on the map and explained by a legend.
        wait_for(page, "document.querySelectorAll('#gap-list li').length > 0", timeout=15000)
        page.locator("#gap-list li").first.click()
        assert page.locator("#gap-legend").is_visible()
        assert page.locator(".leaflet-tooltip").filter(has_text=re.compile(r"\d+")).count() >= 1

        # "Where was everyone at time T", then a few icon refreshes with the live layer off the map.
        page.click("#at-show")
        wait_for(page, "document.body.dataset.timeAt !== undefined", timeout=5000)
        page.wait_for_timeout(5600)
        page.click("#at-live")
        page.evaluate(f"anwangTest.dispatch.selectIncident({incident}, true)")
        wait_for(page, "Number(document.body.dataset.nearestLines || 0) >= 1", timeout=5000)
        page.screenshot(path=str(artifacts / f"desk-dispatcher-{lang}.png"))
    except Exception:
        page.screenshot(path=str(artifacts / f"desk-dispatcher-{lang}-failure.png"))
        raise
    finally:
        page.context.close()
        with db.session_scope(engine) as s:
            s.execute(text("DELETE FROM risk_levels WHERE id = :g"), {"g": gap})
    assert external == []
    assert errors == []


@pytest.mark.parametrize("lang", LANGS)
def test_analyst_month_layers_and_figures(lang, live_server, browser, browser_user, artifacts):
    base = live_server(BASEMAP="none")
    words = WORDS[lang]
    external, errors = [], []
    page = _open(browser, base, lang, browser_user, external, errors, "/")
    try:
        # The dashboard's 三零 cards say where the data ends.
        wait_for(page, "document.getElementById('sanling').dataset.area", timeout=30000)
        assert words["until"] in page.inner_text("#sanling-until")

        # The month defaults to the last complete month, listed even without incidents.
        page.goto(f"{base}/review?area=411103&lang={lang}", timeout=90000)
        last = selection.last_complete_month()[0].strftime("%Y-%m")
        assert page.eval_on_selector("#review-month", "s => s.value") == last
        months = page.eval_on_selector_all("#review-month option", "os => os.map(o => o.value)")
        assert months == sorted(months, reverse=True) and len(months) >= 12
        assert words["until"] in page.inner_text("#review-data-until")

        # The month with the demo's data, on the map: Gi* on top of the villages, with reasons.
        page.goto(f"{base}/review?area=411103&month=2026-10&lang={lang}", timeout=90000)
        frame = page.frame_locator("iframe.review-map")
        frame.locator(".anwang-legend").wait_for(timeout=60000)
        inner = next(f for f in page.frames if f != page.main_frame)
        scale = frame.locator(".leaflet-control-scale").inner_text()
        assert "km" in scale or " m" in scale
        assert "mi" not in scale and "ft" not in scale
        legend = frame.locator(".anwang-legend").inner_text()
        assert words["method"] in legend and "FDR" in legend
        sections = inner.evaluate("""() => [...document.querySelectorAll('.anwang-legend-section')]
                                          .map(s => s.hidden)""")
        assert sections.count(False) >= 3          # risk, heat and hot spots shown; emerging off
        # Hover hot-spot hexagons whose centre is in view and inside the hexagon, one after the
        # other, until a tooltip opens (a legend or a control may lie over the first).
        points = inner.evaluate("""() => {
            const map = Object.keys(window).filter(k => k.startsWith("map_")).map(k => window[k])
                              .find(v => v instanceof L.Map);
            const size = map.getSize();
            const found = [];
            map.eachLayer(l => {
                if (!l.feature || !l.feature.properties.class_label) { return; }
                const p = map.latLngToContainerPoint(l.getBounds().getCenter());
                if (p.x > 40 && p.y > 40 && p.x < size.x - 40 && p.y < size.y - 40) { found.push([p.x, p.y]); }
            });
            return found.slice(0, 8);
        }""")
        assert points, "no hot-spot hexagon in view"
        box = page.locator("iframe.review-map").bounding_box()
        tip = frame.locator(".leaflet-tooltip")
        for x, y in points:
            page.mouse.move(box["x"] + x, box["y"] + y)
            try:
                tip.first.wait_for(timeout=2000)
            except PlaywrightTimeout:
                continue
            if "z =" in tip.first.inner_text():
                break
        said = tip.first.inner_text()
        assert "z =" in said and words["reasons"] in said

        # Switching the four colours off takes their legend away.
        risk_name = {"zh": "四色风险", "en": "Four-colour risk"}[lang]
        frame.locator(".leaflet-control-layers-overlays label", has_text=risk_name).click()
        hidden = inner.evaluate("""() => document.querySelectorAll('.anwang-legend-section')[0].hidden""")
        assert hidden
        page.screenshot(path=str(artifacts / f"desk-analyst-{lang}.png"))
    except Exception:
        page.screenshot(path=str(artifacts / f"desk-analyst-{lang}-failure.png"))
        raise
    finally:
        page.context.close()
    assert external == []
    assert errors == []


def _click_at(page, lon, lat):
    """Click the planner's map at a place (a real mouse click, at the map's pixel)."""
    point = page.evaluate(f"anwangTest.planner.pixel({lon}, {lat})")
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + point["x"], box["y"] + point["y"])


def _inside(page, layer_name):
    """A point inside the first feature of one of the planner's layers (lon, lat) and its bounds."""
    fc = page.evaluate(f"anwangTest.planner.{layer_name}.toGeoJSON()")
    geom = shape(fc["features"][0]["geometry"])
    p = geom.representative_point()
    return fc["features"][0]["properties"]["code"], (p.x, p.y), geom


@pytest.mark.parametrize("lang", LANGS)
def test_planner_starts_from_the_map_and_sees_the_split(lang, live_server, browser, browser_user, engine,
                                                       artifacts):
    base = live_server(BASEMAP="none")
    words = WORDS[lang]
    external, errors = [], []
    page = _open(browser, base, lang, browser_user, external, errors, "/planner")
    try:
        wait_for(page, "document.body.dataset.ready === '1'", timeout=20000)
        assert page.inner_text("h2").strip() == words["heading"]
        with db.session_scope(engine) as s:
            home = home_area(s)
            townships = s.execute(text("SELECT count(*) FROM areas t JOIN areas d ON t.path <@ d.path "
                                       "WHERE d.code = :h AND t.level = 2"), {"h": home}).scalar()
        assert page.locator("#township-select option").count() == townships + 1   # and "—"
        assert page.evaluate("anwangTest.planner.townships.getLayers().length") == townships

        # A township, then a village, chosen by clicking the map.
        code, (lon, lat), _ = _inside(page, "townships")
        _click_at(page, lon, lat)
        wait_for(page, f"document.body.dataset.township === {code!r}", timeout=10000)
        wait_for(page, "anwangTest.planner.villages.getLayers().length > 0", timeout=10000)
        village, (lon, lat), _ = _inside(page, "villages")
        _click_at(page, lon, lat)
        wait_for(page, f"document.body.dataset.village === {village!r}", timeout=15000)

        # Split a grid: a line that misses it is refused in the page's language …
        page.click("#tool-split")
        grid = page.evaluate("Object.values(anwangTest.planner.state.grids)[0]")
        geom = shape(grid["geometry"])
        p = geom.representative_point()
        # The grid in the middle of the view with room around it to start and end lines.
        page.evaluate("""g => anwangTest.planner.map.fitBounds(L.geoJSON(g).getBounds(),
                                                                 {padding: [220, 220], animate: false})""", grid)
        _click_at(page, p.x, p.y)
        minx, miny, maxx, maxy = geom.bounds
        pad = (maxx - minx) * 0.3
        below = miny - (maxy - miny) * 0.25
        _click_at(page, minx - pad, below)
        _click_at(page, maxx + pad, below)
        assert page.locator("#finish-shape").is_visible()
        assert words["finish"] in page.inner_text("#finish-shape")
        page.click("#finish-shape")
        wait_for(page, "document.getElementById('live-check').classList.contains('bad')", timeout=15000)
        assert words["not_cut"] in page.inner_text("#live-check")

        # … a line across it says so while it is drawn, and the preview's new grids are drawn.
        page.click("#tool-split")
        _click_at(page, p.x, p.y)
        y = p.y
        _click_at(page, minx - pad, y)
        _click_at(page, maxx + pad, y)
        assert page.evaluate("document.getElementById('live-check').classList.contains('ok')")
        page.click("#finish-shape")
        wait_for(page, "Number(document.body.dataset.previewShapes || 0) >= 2", timeout=20000)
        fits = page.evaluate("""(() => { const w = document.querySelector('#preview-box .table-wrap');
                                         return w.scrollWidth <= w.clientWidth + 1; })()""")
        assert fits
        assert words["cv"] in page.inner_text("#norms")
        page.screenshot(path=str(artifacts / f"desk-planner-{lang}.png"))
        page.click("#cancel-btn")
    except Exception:
        page.screenshot(path=str(artifacts / f"desk-planner-{lang}-failure.png"))
        raise
    finally:
        page.context.close()
    assert external == []
    # The one refusal asked for above: Chromium logs every 4xx answer to a fetch.
    assert errors == ["Failed to load resource: the server responded with a status of 400 (BAD REQUEST)"]


@pytest.mark.parametrize("lang", LANGS)
def test_public_map_newest_request_wins_and_the_legend_is_honest(lang, live_server, browser, engine, artifacts):
    base = live_server(BASEMAP="none")
    external, errors = [], []
    page = open_page(browser, base, external, errors, **WIDE)
    held = []

    def hold(route):
        held.append(route)          # the 12-month hexagons answer only after the 3-month ones

    try:
        page.goto(f"{base}/public?lang={lang}")
        wait_for(page, "document.body.dataset.publicLoaded === 'grid:12'", timeout=60000)
        page.route(re.compile(r".*/api/public/stats\?level=hex&months=12$"), hold)
        page.select_option("#public-level", "hex")
        wait_for(page, "true", timeout=100)
        page.select_option("#public-months", "3")
        wait_for(page, "document.body.dataset.publicLoaded === 'hex:3'", timeout=60000)
        for route in held:
            try:
                route.continue_()
            except Exception:   # noqa: BLE001 - the page already gave up on it
                pass
        page.wait_for_timeout(800)
        assert page.evaluate("document.body.dataset.publicLoaded") == "hex:3"
        assert held, "the older request was not made"

        # The legend: a class for 0, then classes starting at multiples of the rounding base.
        rows = page.locator("#public-legend div:has(i)").all_inner_texts()
        assert rows[0].strip() == "0"
        for row in rows[1:]:
            low, high = (int(x) for x in row.strip().split("–")) if "–" in row else (int(row), int(row))
            assert low % 5 == 0 and high % 5 == 0 and 0 < low <= high
        lows = [int(r.strip().split("–")[0]) for r in rows[1:]]
        assert lows == sorted(set(lows))

        # Only its own jurisdiction.
        meta = page.evaluate("fetch('/api/public/stats?level=grid&months=12').then(r => r.json()).then(j => j.meta)")
        with db.session_scope(engine) as s:
            assert meta["area"] == home_area(s)
            grids = s.execute(text("SELECT count(*) FROM areas g JOIN areas d ON g.path <@ d.path "
                                   "WHERE d.code = :h AND g.level = 4"), {"h": meta["area"]}).scalar()
        # Every grid of the jurisdiction; a grid retired since a frozen release is drawn as released.
        assert meta["cells"] >= grids
        page.screenshot(path=str(artifacts / f"desk-public-{lang}.png"))
    except Exception:
        page.screenshot(path=str(artifacts / f"desk-public-{lang}-failure.png"))
        raise
    finally:
        page.context.close()
    assert external == []
    assert errors == []


def test_every_desk_page_keeps_the_console_clean(live_server, browser, browser_user):
    base = live_server(BASEMAP="none")
    # Documents that name no icon (a framed map) get one here; a missing one is a console error.
    assert requests.get(f"{base}/favicon.ico", timeout=10).status_code == 200
    for lang in LANGS:
        external, errors = [], []
        page = open_page(browser, base, external, errors, **WIDE)
        try:
            login(page, base, *browser_user)
            for path in ("/", "/dispatch", "/review?area=411103&month=2026-10", "/planner", "/public"):
                page.goto(f"{base}{path}{'&' if '?' in path else '?'}lang={lang}", timeout=90000)
                page.wait_for_timeout(2500)     # the page's first requests answered
        finally:
            page.context.close()
        assert external == []
        assert errors == [], (lang, errors)

