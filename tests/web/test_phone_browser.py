"""The grid worker's phone, in the system Chromium at 390 × 844 with the network closed: visits and
a report with a photo made without signal wait in the outbox and are stored exactly once, with the
right grid, when the signal returns — also when the outbox is sent twice; after logout the service
worker gives the next person nothing of the last; every page fits a phone (no element wider than
the screen, touch targets of at least 44 px)."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from tests.browser import login, open_page, wait_for
from tests.web.test_phone import png

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True,
         "has_touch": True, "service_workers": "allow"}

# What a page must satisfy on a phone, evaluated in it: every element inside the screen's width
# (unless a scrolling or clipping box holds it), every control a target of at least 44 × 44 px
# (a checkbox or radio button counts with its label). Map content (tiles, shapes, markers) and the
# inline links of the map's attribution line are not controls of the page.
CHECK = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [], small = [];
  const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
    (e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/\\s+/).join('.') : '') +
    (e.textContent ? ' "' + e.textContent.trim().slice(0, 30) + '"' : '');
  const clipped = (e) => { for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX; if (o !== 'visible') { return true; } } return false; };
  const shown = (e) => { const r = e.getBoundingClientRect(); const s = getComputedStyle(e);
      return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; };
  for (const e of document.body.querySelectorAll('*')) {
    if (!shown(e) || clipped(e)) { continue; }
    const r = e.getBoundingClientRect();
    if (r.right > width + 1 || r.left < -1) { wide.push(name(e) + ' ' + Math.round(r.left) + '..' + Math.round(r.right)); }
  }
  const targets = 'a[href], button, input:not([type=hidden]), select, textarea, summary, [role=button]';
  for (const e of document.body.querySelectorAll(targets)) {
    if (e.closest('.leaflet-pane, .leaflet-control-attribution') || !shown(e)) { continue; }
    let box = e;
    if (e.matches('input[type=checkbox], input[type=radio]')) { box = e.closest('label') || e.labels[0] || e; }
    const r = box.getBoundingClientRect();
    if (r.width < 43.5 || r.height < 43.5) { small.push(name(e) + ' ' + Math.round(r.width) + 'x' + Math.round(r.height)); }
  }
  return {scrollWidth: document.documentElement.scrollWidth, width, wide, small};
}"""

# The outbox entries of this phone, read straight from IndexedDB; and all of them set back to
# "waiting", as if every answer had been lost on the way.
ENTRIES = """() => new Promise((resolve, reject) => {
  const req = indexedDB.open('anwang', 1);
  req.onsuccess = () => { const all = req.result.transaction('outbox').objectStore('outbox').getAll();
    all.onsuccess = () => resolve(all.result); all.onerror = () => reject(all.error); };
  req.onerror = () => reject(req.error);
})"""
LOSE_ANSWERS = """() => new Promise((resolve, reject) => {
  const req = indexedDB.open('anwang', 1);
  req.onsuccess = () => { const t = req.result.transaction('outbox', 'readwrite'); const store = t.objectStore('outbox');
    const all = store.getAll(); all.onsuccess = () => { for (const e of all.result) { store.put({...e, state: 'waiting', result: null}); } };
    t.oncomplete = () => resolve(all.result.length); t.onerror = () => reject(t.error); };
  req.onerror = () => reject(req.error);
})"""

# The report's entry written again under its own key with another description (a second phone
# that copied the outbox, say): the server must refuse it.
REUSE_KEY = """() => new Promise((resolve, reject) => {
  const req = indexedDB.open('anwang', 1);
  req.onsuccess = () => { const t = req.result.transaction('outbox', 'readwrite'); const store = t.objectStore('outbox');
    const all = store.getAll();
    all.onsuccess = () => { const e = all.result.find((x) => x.kind === 'report');
      store.put({...e, state: 'waiting', result: null, body: {...e.body, description: 'changed'}}); };
    t.oncomplete = () => resolve(true); t.onerror = () => reject(t.error); };
  req.onerror = () => reject(req.error);
})"""


def _grid(s, pattern: str) -> dict:
    code, lon, lat = s.execute(text(
        "SELECT code, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM areas "
        "WHERE level = 4 AND code LIKE :p ORDER BY code LIMIT 1"), {"p": pattern}).one()
    return {"grid": code, "lon": lon, "lat": lat}


@pytest.fixture()
def phones(engine, demo):
    """Two committed grid workers, each in one demo grid of their own; removed with what they
    wrote afterwards."""
    from geo import audit, db, users

    made = []
    with db.session_scope(engine) as s:
        for n, pattern in enumerate(("411103002004%", "411103001%")):
            who = {"name": f"phone_worker_{n}", "password": f"phone-pass-{n}x", **_grid(s, pattern)}
            users.add_user(s, audit.Actor("test"), who["name"], "grid_worker", password=who["password"],
                           scopes=[who["grid"]], replace=True)
            made.append(who)
    yield made
    with db.session_scope(engine) as s:
        for who in made:
            uid = s.execute(text("SELECT id FROM users WHERE username = :u"), {"u": who["name"]}).scalar()
            if s.execute(text("SELECT to_regclass('visits')")).scalar():
                s.execute(text("DELETE FROM visits WHERE visitor_id = :u"), {"u": uid})
            s.execute(text("DELETE FROM incidents WHERE created_by = :u"), {"u": uid})
            s.execute(text("DELETE FROM audit_log WHERE actor_id = :u"), {"u": uid})
            s.execute(text("DELETE FROM users WHERE id = :u"), {"u": uid})


def phone(browser, base, who, external, errors):
    return open_page(browser, base, external, errors, **PHONE, geolocation={
        "latitude": who["lat"], "longitude": who["lon"], "accuracy": 12}, permissions=["geolocation"])


def controlled(page):
    """Wait until the service worker controls the page. It installs the whole shell first; a page
    whose navigation began before the worker was active is controlled from its next load."""
    active = "navigator.serviceWorker.getRegistration().then(r => Boolean(r && r.active && r.active.state === 'activated'))"
    wait_for(page, active, timeout=60000)
    if not page.evaluate("navigator.serviceWorker.controller !== null"):
        page.reload()
    wait_for(page, "navigator.serviceWorker.controller !== null", timeout=15000)


def stored(engine, who) -> dict:
    from geo import db

    with db.session_scope(engine) as s:
        uid = s.execute(text("SELECT id FROM users WHERE username = :u"), {"u": who["name"]}).scalar()
        incidents = s.execute(text(
            "SELECT i.id, g.code, i.idempotency_key::text, "
            "(SELECT count(*) FROM incident_photos p WHERE p.incident_id = i.id) "
            "FROM incidents i JOIN areas g ON g.id = i.grid_id WHERE i.created_by = :u ORDER BY i.id"),
            {"u": uid}).all()
        visits = s.execute(text(
            "SELECT v.id, g.code, v.idempotency_key::text, v.kind FROM visits v "
            "JOIN areas g ON g.id = v.grid_id WHERE v.visitor_id = :u ORDER BY v.id"), {"u": uid}).all()
    return {"incidents": incidents, "visits": visits}


def test_offline_visits_and_a_report_with_a_photo_are_stored_once(live_server, browser, engine, phones,
                                                                    artifacts):
    base = live_server(BASEMAP="none")
    who = phones[0]
    external, errors = [], []
    page = phone(browser, base, who, external, errors)
    try:
        login(page, base, who["name"], who["password"])
        assert page.url == f"{base}/day"
        wait_for(page, "document.body.dataset.dayLoaded === '1'", timeout=15000)
        controlled(page)
        page.goto(f"{base}/report")               # seen once online, so the phone keeps it
        wait_for(page, "window.anwangTest?.report", timeout=10000)
        page.goto(f"{base}/day")
        wait_for(page, "document.body.dataset.dayLoaded === '1'", timeout=15000)
        page.screenshot(path=str(artifacts / "phone-day.png"), full_page=True)

        page.context.set_offline(True)
        kinds = ["home", "safety", "outreach"]
        for n, kind in enumerate(kinds):
            page.click("#new-visit")
            page.select_option("select[name=kind]", kind)
            page.click("#visit-location")
            wait_for(page, "document.getElementById('visit-where').textContent.includes('±12 m')", timeout=10000)
            page.fill("textarea[name=notes]", f"走访记录 {n + 1}")
            page.click("#visit-form button[type=submit]")
            wait_for(page, f"document.getElementById('outbox').dataset.waiting === '{n + 1}'", timeout=5000)
        assert "等待发送" in page.inner_text("#outbox")
        page.screenshot(path=str(artifacts / "phone-day-offline.png"), full_page=True)

        page.goto(f"{base}/report")               # from the phone's cache: there is no network
        wait_for(page, "window.anwangTest?.report", timeout=10000)
        assert page.input_value("input[name=occurred_at]")          # the time is filled in
        page.click("#submit")                                        # nothing chosen yet
        assert "请" in page.inner_text("#result")                   # …answered in Chinese
        page.click("#use-location")
        wait_for(page, "document.body.dataset.pointChosen === '1'", timeout=10000)
        assert "±12 m" in page.inner_text("#where")
        page.select_option("select[name=category]", "hazard")
        page.fill("textarea[name=description]", "路灯损坏，夜间无照明")
        page.set_input_files("input[name=photo]", files=[{"name": "lamp.png", "mimeType": "image/png",
                                                           "buffer": png(64, 48)}])
        page.click("#submit")
        wait_for(page, "document.getElementById('outbox').dataset.waiting === '4'", timeout=10000)
        wait_for(page, "!document.body.dataset.pointChosen", timeout=10000)   # the old point went with its marker
        assert page.locator(".leaflet-marker-icon").count() == 0
        page.screenshot(path=str(artifacts / "phone-report-offline.png"), full_page=True)
        assert stored(engine, who) == {"incidents": [], "visits": []}

        page.context.set_offline(False)
        page.evaluate("window.dispatchEvent(new Event('online'))")   # as the phone does when signal returns
        wait_for(page, "document.getElementById('outbox').dataset.sent === '4'", timeout=20000)
        first = stored(engine, who)
        keys = {e["key"] for e in page.evaluate(ENTRIES)}
        assert len(first["visits"]) == 3 and len(first["incidents"]) == 1
        assert {v[1] for v in first["visits"]} == {who["grid"]} and sorted(v[3] for v in first["visits"]) == sorted(kinds)
        assert first["incidents"][0][1] == who["grid"] and first["incidents"][0][3] == 1   # its photo
        assert {v[2] for v in first["visits"]} | {first["incidents"][0][2]} == keys
        page.screenshot(path=str(artifacts / "phone-report-sent.png"), full_page=True)

        # Every answer lost on the way: the whole outbox goes again and nothing is stored twice.
        assert page.evaluate(LOSE_ANSWERS) == 4
        page.evaluate("window.anwangTest.report.flush()")
        wait_for(page, "document.getElementById('outbox').dataset.sent === '4'", timeout=20000)
        assert stored(engine, who) == first
        assert all(e["result"]["replayed"] for e in page.evaluate(ENTRIES))

        # A key sent again with another body is a conflict the outbox shows in words.
        page.evaluate(REUSE_KEY)
        page.evaluate("window.anwangTest.report.flush()")
        wait_for(page, "document.querySelector('#outbox li[data-state=conflict]')", timeout=20000)
        assert "未保存" in page.inner_text("#outbox li[data-state=conflict]")
        assert stored(engine, who) == first
        page.screenshot(path=str(artifacts / "phone-outbox-conflict.png"), full_page=True)
    except Exception:
        page.screenshot(path=str(artifacts / "phone-failure.png"), full_page=True)
        raise
    finally:
        page.context.close()
    assert external == []
    assert [e for e in errors if "ERR_INTERNET_DISCONNECTED" not in e and "Failed to load" not in e] == []


def test_after_logout_the_next_person_gets_nothing_of_the_last(live_server, browser, phones, artifacts):
    base = live_server(BASEMAP="none")
    first, second = phones
    external, errors = [], []
    page = phone(browser, base, first, external, errors)
    cached = "async () => { const c = await caches.open('anwang-user'); return (await c.keys()).map(r => r.url); }"
    offline_text = "async (url) => { try { const r = await fetch(url); return r.status + ' ' + await r.text(); } catch (e) { return 'failed'; } }"
    try:
        login(page, base, first["name"], first["password"])
        wait_for(page, "document.body.dataset.dayLoaded === '1'", timeout=15000)
        controlled(page)
        page.goto(f"{base}/day")                    # loaded through the worker this time
        wait_for(page, "document.body.dataset.dayLoaded === '1'", timeout=15000)
        page.goto(f"{base}/report")
        wait_for(page, "window.anwangTest?.report", timeout=10000)
        urls = page.evaluate(cached)
        assert f"{base}/report" in urls and f"{base}/api/me/day" in urls
        page.context.set_offline(True)                 # the phone serves the first worker their own
        assert first["grid"] in page.evaluate(offline_text, "/report")
        page.context.set_offline(False)

        page.click("form.logout button[type=submit]")
        page.wait_for_url(f"{base}/login")
        assert page.evaluate(cached) == []
        login(page, base, second["name"], second["password"])
        page.context.set_offline(True)
        for url in ("/report", "/day", "/api/me/day"):
            answer = page.evaluate(offline_text, url)
            assert first["grid"] not in answer and first["name"] not in answer, (url, answer[:200])
        page.context.set_offline(False)
    finally:
        page.context.close()
    assert external == []


PAGES = {"anonymous": ["/login", "/public"],
         "worker": ["/day", "/report", "/", "/public"],
         "admin": ["/", "/dispatch", "/planner", "/review", "/report", "/ogc", "/ogc/collections?f=html",
                   "/ogc/collections/incidents/items?f=html&limit=5"]}


def test_every_page_fits_a_phone(live_server, browser, browser_user, phones, artifacts):
    base = live_server(BASEMAP="none")
    problems = {}
    for who, paths in PAGES.items():
        external, errors = [], []
        page = open_page(browser, base, external, errors, **PHONE)
        try:
            if who == "worker":
                login(page, base, phones[0]["name"], phones[0]["password"])
            elif who == "admin":
                login(page, base, *browser_user)
            for path in paths:
                page.goto(f"{base}{path}")
                page.wait_for_load_state("load")     # /dispatch keeps a live stream open: never idle
                page.wait_for_timeout(1500)
                found = page.evaluate(CHECK)
                slug = path.split("?")[0].strip("/").replace("/", "-") or "index"
                page.screenshot(path=str(artifacts / f"phone-{who}-{slug}.png"), full_page=True)
                if found["wide"] or found["small"] or found["scrollWidth"] > found["width"]:
                    problems[f"{who} {path}"] = found
        finally:
            page.context.close()
        assert external == []
    (artifacts / "phone-fit.json").write_text(json.dumps(problems, ensure_ascii=False, indent=1))
    assert problems == {}, json.dumps(problems, ensure_ascii=False, indent=1)


def test_patrol_from_the_phone_posts_positions_through_the_batch_api(live_server, browser, engine, phones):
    from geo import audit, db
    from geo.patrol import units

    base = live_server(BASEMAP="none")
    who = phones[0]
    with db.session_scope(engine) as s:
        s.execute(text("DELETE FROM units WHERE callsign = 'PHONE-1'"))
        _, token = units.add_unit(s, audit.Actor("test"), "PHONE-1", "foot", area=who["grid"], status="on_duty")
    external, errors = [], []
    page = phone(browser, base, who, external, errors)
    try:
        login(page, base, who["name"], who["password"])
        wait_for(page, "document.body.dataset.dayLoaded === '1'", timeout=15000)
        page.click("#patrol-toggle")
        assert "调度员" in page.inner_text("#patrol-status")          # no token yet: said in words
        page.fill("#patrol-token", token)
        page.click("#patrol-toggle")
        wait_for(page, "window.anwangTest.patrol.pending() > 0", timeout=15000)
        page.evaluate("window.anwangTest.patrol.send()")
        wait_for(page, "window.anwangTest.patrol.sent() > 0", timeout=15000)
        with db.session_scope(engine) as s:
            lon, lat, accuracy = s.execute(text(
                "SELECT ST_X(p.geom), ST_Y(p.geom), p.accuracy FROM positions p JOIN units u ON u.id = p.unit_id "
                "WHERE u.callsign = 'PHONE-1'")).one()
        assert abs(lon - who["lon"]) < 1e-6 and abs(lat - who["lat"]) < 1e-6 and accuracy == 12
        page.click("#patrol-toggle")
        assert page.evaluate("document.body.dataset.patrol") == "off"
    finally:
        page.context.close()
        with db.session_scope(engine) as s:
            s.execute(text("DELETE FROM units WHERE callsign = 'PHONE-1'"))
    assert external == []
