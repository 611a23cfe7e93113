"""The phone app's server side: the web manifest and the service worker (served from the root with
its own headers), where each role lands after login, the grid worker's day page, and photos taken
with a report (checked before anything is written, shown only to exact readers)."""
from __future__ import annotations

import base64
import json
import re
import struct
import zlib

import pytest
from sqlalchemy import text

from tests import town
from tests.incident_cases import VALID
from tests.web.test_incidents_api import Api


@pytest.fixture()
def api(client):
    return Api(client)


def png(width: int = 4, height: int = 3) -> bytes:
    """A real PNG, made here: `height` rows of `width` red pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def data_url(data: bytes, kind: str = "image/png") -> str:
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def count(session, table: str) -> int:
    return session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_the_manifest_names_the_app_and_its_icons_exist(client):
    r = client.get("/manifest.webmanifest")
    assert r.status_code == 200 and r.mimetype == "application/manifest+json"
    manifest = json.loads(r.get_data(as_text=True))
    assert manifest["name"] == "安网" and manifest["display"] == "standalone"
    assert manifest["start_url"] == "/start" and manifest["scope"] == "/"
    assert {i["purpose"] for i in manifest["icons"]} == {"any", "maskable"}
    for icon in manifest["icons"]:
        got = client.get(icon["src"])
        assert got.status_code == 200 and got.mimetype == "image/svg+xml", icon
        assert b"<script" not in got.data


def test_the_service_worker_is_served_from_the_root_with_its_own_policy(client):
    r = client.get("/sw.js")
    assert r.status_code == 200 and r.mimetype == "text/javascript"
    assert r.headers["Service-Worker-Allowed"] == "/"
    assert r.headers["Cache-Control"] == "no-cache"
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "unsafe" not in csp
    body = r.get_data(as_text=True)
    version = re.match(r'const VERSION = "([0-9a-f]{16})";\nconst SHELL = (\[.*\]);\n', body)
    assert version, body[:200]
    shell = json.loads(version.group(2))
    assert "/static/js/pages/pwa.js" in shell and "/static/js/lib/queue.js" in shell
    assert "/vendor/leaflet/leaflet.js" in shell and "/static/js/worker/sw.js" not in shell
    for url in shell:                       # the worker's install fails if any is missing
        assert client.get(url).status_code == 200, url
    # Every page registers exactly this version.
    page = client.get("/login").get_data(as_text=True)
    assert f'content="/sw.js?v={version.group(1)}"' in page
    assert 'rel="manifest"' in page and "js/pages/pwa.js" in page


def test_a_grid_worker_lands_on_their_day_and_others_on_the_map(client, make_user, tiny):
    def log_in(url, name, password):
        token = re.search(r'name="csrf_token" value="([^"]+)"',
                          client.get("/login").get_data(as_text=True)).group(1)
        return client.post(url, data={"username": name, "password": password, "csrf_token": token})

    for role, landing in (("grid_worker", "/day"), ("analyst", "/")):
        name, password = make_user(role, "TZ1A1")
        r = log_in("/login", name, password)
        assert r.status_code == 302 and r.headers["Location"] == landing, (role, r.headers)
        assert client.get("/start").headers["Location"] == landing
        assert log_in("/login?next=/report", name, password).headers["Location"] == "/report"


def test_the_day_page_shows_only_the_workers_grids(client, login, tiny):
    login("grid_worker", "TZ1A")
    r = client.get("/day")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    grids = json.loads(re.search(r'<script id="grids" type="application/json">(.*?)</script>', page, re.S).group(1))
    assert sorted(f["properties"]["code"] for f in grids["features"]) == ["TZ1A1", "TZ1A2"]
    assert "js/pages/day.js" in page and 'name="anwang-user"' in page


def test_the_day_page_is_the_grid_workers(client, login, tiny):
    login("analyst", "TZ1")
    assert client.get("/day").status_code == 403


def test_a_report_keeps_its_photo_and_exact_readers_see_it(api, client, login, session, tiny):
    town.build(session)
    login("grid_worker", "TZ1A1")
    image = png()
    r = api.post("/api/incidents", json={**VALID, "photos": [data_url(image)]})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert len(body["photos"]) == 1
    listed = client.get(f"/api/incidents/{body['id']}/photos").get_json()["photos"]
    assert [p["id"] for p in listed] == body["photos"] and listed[0]["bytes"] == len(image)
    got = client.get(f"/api/incidents/{body['id']}/photos/{body['photos'][0]}")
    assert got.status_code == 200 and got.mimetype == "image/png" and got.data == image
    assert session.execute(text("SELECT count(*) FROM audit_log WHERE action = 'incident.photo' "
                                "AND target_id = :i"), {"i": str(body["id"])}).scalar_one() == 1
    assert client.get(f"/api/incidents/{body['id']}/photos/{body['photos'][0] + 999}").status_code == 404


def test_a_sensitive_reports_photo_is_hidden_from_generalised_readers(api, client, login, session, tiny):
    town.build(session)
    login("grid_worker", "TZ1A1")
    r = api.post("/api/incidents", json={**VALID, "sensitive": True, "photos": [data_url(png())]})
    assert r.status_code == 201, r.get_json()
    incident, photo = r.get_json()["id"], r.get_json()["photos"][0]
    login("analyst", "TZ1")
    assert client.get(f"/api/incidents/{incident}/photos").get_json() == {"photos": []}
    assert client.get(f"/api/incidents/{incident}/photos/{photo}").status_code == 404


@pytest.mark.parametrize(("photos", "field"), [
    ("not a list", "photos"),
    (["data:text/html;base64,PHNjcmlwdD4="], "photos[0]"),
    ([data_url(b"GIF89a....", "image/png")], "photos[0]"),
    (["data:image/png;base64,***"], "photos[0]"),
    ([data_url(png())] * 5, "photos"),
])
def test_a_bad_photo_is_refused_and_nothing_is_written(api, login, session, tiny, photos, field):
    town.build(session)
    login("grid_worker", "TZ1A1")
    before = count(session, "incidents"), count(session, "incident_photos"), count(session, "audit_log")
    r = api.post("/api/incidents", json={**VALID, "photos": photos})
    assert r.status_code == 400 and r.get_json()["error"]["field"] == field, r.get_json()
    assert (count(session, "incidents"), count(session, "incident_photos"),
            count(session, "audit_log")) == before
