"""The reader's basemap choice across pages in the system Chromium with the network closed: /review's
framed map offers the same basemaps as every page and opens on the self-served one, drawn from this
app alone; a choice made on the dashboard holds on /public, /report and /review, and one made on
the review's map holds on the other pages."""
from __future__ import annotations

import pytest

from tests.browser import login, open_page, wait_for

pytestmark = pytest.mark.browser
REVIEW = "/review?area=411103&month=2026-10"
# The page's basemap key (lib/map.js exposes it for tests).
KEY = "window.anwangTest && window.anwangTest.basemap && window.anwangTest.basemap.key"
# What the review frame's self-served basemap has drawn: its tiles and the names it placed.
FRAME_DRAWN = """() => {
    const layer = Object.keys(window).filter((k) => k.startsWith("local_basemap_")).map((k) => window[k])[0];
    if (!layer || !layer._map) return null;
    const index = layer.labelers.getIndex(layer._tileZoom);
    return {labels: index ? index.tree.all().length : 0,
            drawn: document.querySelectorAll(".leaflet-tile-container canvas.leaflet-tile-loaded").length};
}"""


def _review_frame(page, base):
    page.goto(f"{base}{REVIEW}", timeout=90000)
    page.frame_locator("iframe.review-map").locator(".anwang-legend").wait_for(timeout=90000)
    frame = next(f for f in page.frames if f != page.main_frame)
    wait_for(frame, "document.body.dataset.basemap", timeout=10000)
    return frame


def _key_on(page, base, path):
    page.goto(f"{base}{path}")
    return wait_for(page, KEY, timeout=20000)


def test_the_basemap_choice_holds_on_every_page_and_review_draws_the_local_one(live_server, browser,
                                                                               browser_user, artifacts):
    base = live_server(BASEMAP="local")
    external, errors, tiles = [], [], []
    page = open_page(browser, base, external, errors)
    page.on("request", lambda r: tiles.append(r.url) if "/tiles/basemap/" in r.url else None)
    try:
        login(page, base, *browser_user)
        # /review, with no choice made yet: the self-served basemap, its tiles from this app.
        frame = _review_frame(page, base)
        assert frame.evaluate("document.body.dataset.basemap") == "local"
        drawn = wait_for(frame, f"(() => {{ const d = ({FRAME_DRAWN})(); "
                                "return d && d.drawn > 0 && d.labels > 0 ? d : null; })()", timeout=30000)
        assert drawn["drawn"] > 0 and drawn["labels"] > 0
        assert tiles and all(url.startswith(base) for url in tiles)
        offered = frame.eval_on_selector_all(".leaflet-control-layers-base label", "ls => ls.map(l => l.innerText.trim())")
        assert len(offered) >= 3                     # local, OpenStreetMap, none — as on every page
        page.screenshot(path=str(artifacts / "basemap-review-local.png"))

        # No basemap, chosen on the dashboard, holds on /public, /report and the review's map.
        page.goto(f"{base}/")
        wait_for(page, KEY, timeout=20000)
        page.hover(".leaflet-control-layers")
        page.locator(".leaflet-control-layers-base label", has_text="无底图").click()
        wait_for(page, "localStorage.getItem('anwang.basemap') === 'none'")
        assert _key_on(page, base, "/public") == "none"
        assert _key_on(page, base, "/report") == "none"
        assert _review_frame(page, base).evaluate("document.body.dataset.basemap") == "none"

        # A choice made on the review's map holds on the other pages.
        frame = next(f for f in page.frames if f != page.main_frame)
        frame.locator(".leaflet-control-layers-base label", has_text="本地地图").click()
        wait_for(page, "localStorage.getItem('anwang.basemap') === 'local'")
        assert _key_on(page, base, "/public") == "local"
    except Exception:
        page.screenshot(path=str(artifacts / "basemap-choice-failure.png"))
        raise
    finally:
        page.context.close()
    assert external == []
    assert errors == []
