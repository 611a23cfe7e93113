"""The first map in the system Chromium with the network closed: Leaflet loads from the app,
boundaries are drawn, the click panel fills, no request leaves the machine, no console error."""
from __future__ import annotations

import os
import shutil
import threading
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text
from werkzeug.serving import make_server

from geo import audit, db, users

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


@pytest.fixture(scope="module")
def live_server(engine, demo, database_url):
    """Start the app on a free local port with the given default basemap; stopped after the module."""
    from web import create_app

    servers = {}

    def start(basemap: str) -> str:
        if basemap not in servers:
            app = create_app({"SECRET_KEY": "browser-test", "DATABASE_URL": database_url,
                              "BASEMAP": basemap})
            server = make_server("127.0.0.1", 0, app, threaded=True)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers[basemap] = server
        return f"http://127.0.0.1:{servers[basemap].server_port}"

    yield start
    for server in servers.values():
        server.shutdown()


@pytest.fixture(scope="module")
def browser_user(engine):
    name, password = "browser_admin", "browser-pass-1"
    with db.session_scope(engine) as s:
        users.add_user(s, audit.Actor("test"), name, "admin", password=password, replace=True)
    yield name, password
    with db.session_scope(engine) as s:
        s.execute(text("DELETE FROM users WHERE username = :u"), {"u": name})


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail("the system Chromium is missing: `make test-deps` installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync"])
        yield b
        b.close()


def open_page(browser, base_url, external: list, console_errors: list):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")

    def gate(route):
        host = urlsplit(route.request.url).hostname
        if host in LOCAL_HOSTS:
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", gate)
    page = context.new_page()
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console_errors.append(str(e)))
    return page


def login(page, base_url, name, password):
    page.goto(f"{base_url}/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def test_map_renders_offline_with_boundaries_and_panel(live_server, browser, browser_user, artifacts):
    base = live_server("none")
    external, errors = [], []
    page = open_page(browser, base, external, errors)
    try:
        login(page, base, *browser_user)
        page.wait_for_function("window.L && window.anwangMap", timeout=10000)
        page.wait_for_function("document.body.dataset.shownLevel === '2'", timeout=15000)
        assert page.locator("path.leaflet-interactive").count() >= 10   # townships
        page.select_option("#level-select", "4")
        page.wait_for_function("document.body.dataset.shownLevel === '4'", timeout=15000)
        assert page.locator("path.leaflet-interactive").count() > 198   # grids
        page.select_option("#level-select", "3")
        page.wait_for_function("document.body.dataset.shownLevel === '3'", timeout=15000)
        assert page.locator("path.leaflet-interactive").count() >= 198  # villages
        page.locator(".leaflet-tooltip", has_text="金牛社区").first.wait_for(timeout=5000)
        page.locator("path.leaflet-interactive").nth(40).click(force=True)
        page.wait_for_function("document.getElementById('area-info').dataset.code", timeout=10000)
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
    base = live_server("osm")
    external, errors = [], []
    page = open_page(browser, base, external, errors)
    try:
        login(page, base, *browser_user)
        page.goto(f"{base}/?lang=en")
        page.wait_for_function("document.body.dataset.shownLevel === '2'", timeout=15000)
        assert page.locator("path.leaflet-interactive").count() >= 10
        assert "Click an area" in page.inner_text("#area-info")
        page.screenshot(path=str(artifacts / "map-en-osm-blocked.png"))
    finally:
        page.context.close()
    assert external and all(urlsplit(u).hostname == "tile.openstreetmap.org" for u in external)
    assert all("ERR_INTERNET_DISCONNECTED" in e or "Failed to load resource" in e for e in errors), errors
