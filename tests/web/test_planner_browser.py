"""Split a grid through /planner in the system Chromium with the network closed: choose the
village, pick the grid, draw the line with Leaflet-Geoman, read the preview, give a reason, save —
then see the two new grids on the map and the change in the history."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from geo import audit, db
from geo.boundaries import changes
from geo.policy import Scope
from tests.browser import login, open_page, wait_for

pytestmark = pytest.mark.browser


def _grid_to_split(engine) -> dict:
    """A large demo grid that a west–east line through its inner point cuts into exactly two."""
    with engine.connect() as conn:
        rows = conn.execute(text("""
            SELECT g.code, v.code AS village, t.code AS township, ST_XMin(g.geom) AS x0,
                   ST_XMax(g.geom) AS x1, ST_X(ST_PointOnSurface(g.geom)) AS x,
                   ST_Y(ST_PointOnSurface(g.geom)) AS y
              FROM areas g JOIN areas v ON v.id = g.parent_id JOIN areas t ON t.id = v.parent_id
             WHERE g.level = 4 AND g.code LIKE '411103%'
             ORDER BY ST_Area(g.geom) DESC LIMIT 20""")).mappings().all()
        for r in rows:
            margin = (r["x1"] - r["x0"]) * 0.15
            start, end = (r["x0"] - margin, r["y"]), (r["x1"] + margin, r["y"])
            pieces = conn.execute(text(
                "SELECT ST_NumGeometries(ST_Split(g.geom, ST_SetSRID(ST_MakeLine(ST_MakePoint(:a, :y), "
                "ST_MakePoint(:b, :y)), 4326))) FROM areas g WHERE g.code = :c"),
                {"a": start[0], "b": end[0], "y": r["y"], "c": r["code"]}).scalar()
            if pieces == 2:
                return {**r, "start": start, "end": end}
    raise AssertionError("no demo grid splits in two")


def test_split_a_grid_in_the_planner_offline(live_server, browser, browser_user, engine, demo, artifacts):
    base = live_server(BASEMAP="none")
    grid = _grid_to_split(engine)
    external, errors = [], []
    page = open_page(browser, base, external, errors)
    change_id = None
    try:
        login(page, base, *browser_user)
        page.goto(f"{base}/planner")
        wait_for(page, "document.body.dataset.ready === '1'", timeout=15000)
        page.select_option("#township-select", grid["township"])
        wait_for(page, f"document.querySelector('#village-select option[value=\"{grid['village']}\"]')",
                               timeout=10000)
        page.select_option("#village-select", grid["village"])
        wait_for(page, f"document.body.dataset.village === '{grid['village']}'", timeout=15000)
        before = page.evaluate("document.body.dataset.gridCodes").split(",")
        assert "🔒" not in page.inner_text("#lock-state")  # our own lock, not someone else's

        box = page.locator("#map").bounding_box()

        def at(lon, lat):
            p = page.evaluate(f"(() => {{ const p = anwangTest.planner.pixel({lon}, {lat}); return [p.x, p.y]; }})()")
            return box["x"] + p[0], box["y"] + p[1]

        def draw_split():
            # Zoom so the grid and a margin around it are in view (where the line starts and ends).
            page.evaluate(f"anwangTest.planner.map.fitBounds(L.geoJSON(anwangTest.planner.state.grids['{grid['code']}'])"
                          ".getBounds(), {padding: [220, 220], animate: false})")
            page.click("#tool-split")
            page.mouse.click(*at(grid["x"], grid["y"]))   # select the grid
            wait_for(page, f"document.getElementById('selection').textContent.includes('{grid['code']}')")
            # Drawing starts just after the click that chose the grid has reached the map.
            wait_for(page, "anwangTest.planner.map.pm.globalDrawModeEnabled()")
            page.mouse.click(*at(*grid["start"]))         # draw the line across it …
            page.mouse.click(*at(*grid["end"]))
            # … and finish it with the page's control (clicking the last point again would too,
            # unless snapping moved that point onto a neighbour's edge).
            page.wait_for_selector("#finish-shape:not([hidden])", timeout=10000)
            page.click("#finish-shape")
            page.wait_for_selector("#preview-box:not([hidden])", timeout=15000)

        draw_split()
        assert page.locator("#preview-table tr.status-created").count() == 2
        assert page.locator("#preview-table tr.status-retired").count() == 1
        assert "✓" in page.inner_text("#live-check")
        page.screenshot(path=str(artifacts / "planner-preview.png"))

        assert page.is_disabled("#save-btn")           # a reason is required
        page.fill("#reason", "人口增长，按道路拆分网格")
        # Someone else saved a version of the grid meanwhile: the conflict is told in the page's
        # language, and its button reloads the village to redo the edit on what is there now.
        with engine.begin() as conn:
            conn.execute(text("UPDATE areas SET version = version + 1 WHERE code = :c"), {"c": grid["code"]})
        page.click("#save-btn")
        page.wait_for_selector("#message.conflict", timeout=15000)
        told = page.inner_text("#message")
        assert "您载入之后边界已被修改" in told and f"{grid['code']} 现为第" in told, told
        page.screenshot(path=str(artifacts / "planner-conflict.png"))
        with engine.begin() as conn:
            conn.execute(text("UPDATE areas SET version = version - 1 WHERE code = :c"), {"c": grid["code"]})
        page.click("#message button")
        wait_for(page, f"document.body.dataset.village === '{grid['village']}'", timeout=15000)
        draw_split()
        page.fill("#reason", "人口增长，按道路拆分网格")
        page.click("#save-btn")
        wait_for(page, f"!(document.body.dataset.gridCodes || '').includes('{grid['code']}')",
                               timeout=15000)
        after = page.evaluate("document.body.dataset.gridCodes").split(",")
        new = sorted(set(after) - set(before))
        assert len(new) == 2 and all(c.startswith(grid["village"]) for c in new)
        assert len(after) == len(before) + 1
        for code in new:  # both new grids are drawn and labelled on the map
            page.locator(".grid-label", has_text=code[-3:]).first.wait_for(timeout=5000)
        first = page.locator("#history-list li").first
        assert first.get_attribute("data-kind") == "split"
        assert "人口增长" in first.inner_text()
        change_id = int(first.get_attribute("data-change"))
        # The saved message comes once the village has been drawn again.
        wait_for(page, f"document.getElementById('message').textContent.includes('#{change_id}')", timeout=15000)
        page.screenshot(path=str(artifacts / "planner-split.png"))
    except Exception:
        page.screenshot(path=str(artifacts / "planner-failure.png"))
        print("console errors:", errors, "external:", external)
        raise
    finally:
        page.context.close()
        # The demo is shared by the whole session: put the grid back exactly and drop the lock.
        with db.session_scope(engine) as s:
            if change_id is None:
                change_id = s.execute(text(
                    "SELECT id FROM boundary_changes WHERE kind = 'split' AND payload -> 'codes' ? :c "
                    "ORDER BY id DESC LIMIT 1"), {"c": grid["code"]}).scalar()
            if change_id is not None:
                changes.revert(s, change_id, reason="test cleanup", actor=audit.Actor("test"), scope=Scope.all())
            s.execute(text("DELETE FROM area_locks"))
    assert external == []
    # The one console line Chromium writes for the conflict the test provoked, and nothing else.
    assert [e for e in errors if "409 (CONFLICT)" not in e] == [] and len(errors) == 1
