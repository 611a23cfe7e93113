"""In the system Chromium with the network closed: the dashboard's four colours and 三零 panels,
/review (folium, assets from the app), /public (no login), and an exported report opened from disk
with nothing allowed but the file itself."""
from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

from geo import db
from layers import report
from tests.browser import login, open_page, wait_for

pytestmark = pytest.mark.browser


def _drawn_shapes(page) -> int:
    """Vector shapes on the folium map inside the page's iframe (drawn on a canvas, so count layers)."""
    frame = next(f for f in page.frames if f != page.main_frame)
    return frame.evaluate("""() => {
        // The sandboxed frame refuses localStorage, so read only folium's own map_* globals.
        const map = Object.keys(window).filter(k => k.startsWith("map_"))
                          .map(k => window[k]).find(v => v instanceof L.Map);
        let n = 0;
        map.eachLayer(l => { if (l instanceof L.Path) { n += 1; } });
        return n;
    }""")


def test_dashboard_shows_four_colours_and_the_articles_rates(live_server, browser, browser_user, artifacts):
    base = live_server(BASEMAP="none")
    external, errors = [], []
    page = open_page(browser, base, external, errors)
    try:
        login(page, base, *browser_user)
        wait_for(page, "document.body.dataset.riskGrids > 0", timeout=30000)
        grids = int(page.evaluate("document.body.dataset.riskGrids"))
        assert grids > 500
        legend = page.inner_text(".risk-legend")
        assert "红色" in legend and "蓝色" in legend
        counts = [int(x.split()[-1]) for x in legend.splitlines()[1:]]
        assert sum(counts) == grids                           # every grid has a colour
        wait_for(page, "document.getElementById('sanling').dataset.area", timeout=20000)
        assert page.inner_text("#rate-villages b") == "90.71%"
        assert page.inner_text("#rate-enterprises b") == "97.7%"
        assert float(page.inner_text("#rate-disputes b").rstrip("%")) > 96
        page.select_option("#level-select", "4")
        wait_for(page, "document.body.dataset.shownLevel === '4'", timeout=15000)
        page.uncheck("#incident-show")   # its markers are paths too: click a grid, not an incident
        page.locator("path.leaflet-interactive").nth(60).click(force=True)
        wait_for(page, "document.getElementById('risk-detail').dataset.code", timeout=10000)
        assert page.locator("#risk-detail li").count() >= 1    # the grid's explanation
        wait_for(page, "document.getElementById('sanling').dataset.area.length === 15", timeout=10000)
        page.screenshot(path=str(artifacts / "dashboard-risk.png"))
    except Exception:
        page.screenshot(path=str(artifacts / "dashboard-risk-failure.png"))
        raise
    finally:
        page.context.close()
    assert external == []
    assert errors == []


def test_review_page_renders_folium_offline(live_server, browser, browser_user, artifacts):
    base = live_server(BASEMAP="none")
    external, errors = [], []
    page = open_page(browser, base, external, errors)
    try:
        login(page, base, *browser_user)
        page.goto(f"{base}/review?area=411103&month=2026-10", timeout=60000)
        frame = page.frame_locator("iframe.review-map")
        frame.locator(".leaflet-control-layers-overlays").wait_for(timeout=20000)
        overlays = frame.locator(".leaflet-control-layers-overlays label").all_inner_texts()
        for name in ("四色风险", "热力图", "核密度", "热点", "新兴热点", "环比变化", "村（社区）边界"):
            assert any(name in o for o in overlays), (name, overlays)
        assert _drawn_shapes(page) > 500                                     # grids, hexagons, villages
        assert frame.locator(".anwang-legend").inner_text().count("%") >= 6
        assert frame.locator("img.leaflet-image-layer").count() == 1          # the KDE overlay
        assert "本月" in page.inner_text("#review-categories")
        page.screenshot(path=str(artifacts / "review.png"))
        href = page.get_attribute("#review-export", "href")
        assert href.startswith("/review/report?") and "month=2026-10" in href
    except Exception:
        page.screenshot(path=str(artifacts / "review-failure.png"))
        raise
    finally:
        page.context.close()
    assert external == []
    assert errors == []


def test_public_map_needs_no_login_and_shows_only_aggregates(live_server, browser, artifacts):
    base = live_server(BASEMAP="none")
    external, errors, bodies = [], [], []
    page = open_page(browser, base, external, errors)
    page.on("response", lambda r: bodies.append(r.text()) if "/api/public/stats" in r.url else None)
    try:
        page.goto(f"{base}/public")
        wait_for(page, "document.body.dataset.publicLoaded === 'grid:12'", timeout=60000)
        assert page.locator("path.leaflet-interactive").count() > 500
        # The page says what the numbers are: rounded to multiples of 5, so 0 can mean up to 4.
        assert "5的倍数" in page.inner_text(".map-legend") and "最多4起" in page.inner_text(".map-legend")
        assert "5的倍数" in page.inner_text("#public-meta") and "不再更改" in page.inner_text("#public-meta")
        page.select_option("#public-level", "hex")
        wait_for(page, "document.body.dataset.publicLoaded === 'hex:12'", timeout=30000)
        page.screenshot(path=str(artifacts / "public.png"))
    except Exception:
        page.screenshot(path=str(artifacts / "public-failure.png"))
        raise
    finally:
        page.context.close()
    assert bodies and all("reporter" not in b and "description" not in b for b in bodies)
    for body in bodies:
        fc = json.loads(body)
        assert all(f["properties"]["count"] % 5 == 0 for f in fc["features"])
        assert fc["meta"]["published_total"] % 5 == 0 and fc["meta"]["base"] == 5
    assert external == []
    assert errors == []


def test_exported_report_opens_from_disk_with_nothing_else(engine, demo, browser, artifacts):
    with db.session_scope(engine) as session:
        files = report.write(session, "411103", "2026-10", artifacts / "report-411103-2026-10.html")
    html, pdf = files
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 100_000
    context = browser.new_context(viewport={"width": 1200, "height": 900}, locale="zh-CN")
    requests, errors = [], []

    def gate(route):
        url = route.request.url
        if url == html.as_uri() or urlsplit(url).scheme in ("data", "about", "blob"):
            route.continue_()
        else:
            requests.append(url)
            route.abort("internetdisconnected")

    context.route("**/*", gate)
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(html.as_uri())
        assert "周交办" in page.inner_text("#weekly") and "90.71%" in page.inner_text("#sanling")
        frame = page.frame_locator("iframe.review-map")
        frame.locator(".leaflet-control-layers-overlays").wait_for(timeout=15000)
        assert _drawn_shapes(page) > 500
        page.screenshot(path=str(artifacts / "report.png"), full_page=True)
    finally:
        context.close()
    assert requests == []
    assert errors == []
