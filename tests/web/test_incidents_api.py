"""The incidents API: intake with role and area scope, GeoJSON listing, lifecycle, links and
duplicates, statistics, geocoding, CSRF, the one error shape — and the CLI import."""
from __future__ import annotations

import csv
import re

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from tests import town
from tests.incident_cases import BAD_REPORTS, VALID, report


@pytest.fixture()
def places(session, tiny):
    return town.build(session)


def post(client, body, **kw):
    return client.post("/api/incidents", json=body, **kw)


class Api:
    """The test client with the session's CSRF token on every write, as the pages send it."""

    def __init__(self, client):
        self.client = client
        self.token = None

    def _headers(self) -> dict:
        if self.token is None:
            page = self.client.get("/login").get_data(as_text=True)
            self.token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        return {"X-CSRFToken": self.token}

    def get(self, url, **kw):
        return self.client.get(url, **kw)

    def post(self, url, **kw):
        return self.client.post(url, headers=self._headers(), **kw)

    def delete(self, url, **kw):
        return self.client.delete(url, headers=self._headers(), **kw)


@pytest.fixture()
def api(client):
    return Api(client)


def count(session, table):
    return session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_a_grid_worker_reports_in_their_own_grid(api, login, places, session):
    c = api
    name = login("grid_worker", "TZ1A1")
    r = post(c, VALID)
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["properties"]["grid_code"] == "TZ1A1"
    assert body["properties"]["source"] == "网格员上报"
    assert body["duplicates"] == [] and body["warnings"] == []
    actor = session.execute(text("SELECT actor FROM audit_log WHERE action = 'incident.report' "
                                 "AND target_id = :i"), {"i": str(body["id"])}).scalar()
    assert actor == name


def test_a_grid_worker_cannot_report_outside_their_grids(api, login, places, session):
    login("grid_worker", "TZ1A1")
    before = count(session, "incidents"), count(session, "audit_log")
    r = post(api, report({"lon": 10.035, "lat": 10.035}))
    assert r.status_code == 403 and r.get_json()["error"]["field"] == "location"
    outside = post(api, report({"lon": 11.5, "lat": 12.5}))
    assert outside.status_code == 403 and outside.get_json()["error"]["field"] == "location"
    assert (count(session, "incidents"), count(session, "audit_log")) == before


def test_an_admin_may_record_a_point_outside_every_jurisdiction(api, login, places):
    login("admin")
    r = post(api, report({"lon": 11.5, "lat": 12.5}))
    assert r.status_code == 201 and r.get_json()["properties"]["outside_jurisdiction"] is True


def test_analysts_and_planners_do_not_write(api, login, places):
    for role in ("analyst", "planner"):
        login(role, "TZ")
        assert post(api, VALID).status_code == 403


@pytest.mark.parametrize("name,changes,field,_csv", BAD_REPORTS, ids=[c[0] for c in BAD_REPORTS])
def test_bad_reports_are_a_400_naming_the_field(api, login, places, session,
                                                name, changes, field, _csv):
    login("dispatcher", "TZ")
    before = count(session, "incidents"), count(session, "audit_log"), count(session, "incident_events")
    r = post(api, report(changes))
    assert r.status_code == 400, r.get_json()
    error = r.get_json()["error"]
    assert set(error) >= {"code", "message", "field"} and error["field"] == field
    assert (count(session, "incidents"), count(session, "audit_log"),
            count(session, "incident_events")) == before


def test_an_unknown_address_lists_candidates(api, login, places):
    login("dispatcher", "TZ")
    r = post(api, report({"lon": None, "lat": None, "address": "柳桥镇一组王家"}))
    assert r.status_code == 201  # located at 柳桥镇, with the ambiguity as a warning
    assert r.get_json()["properties"]["area_code"] == "TZ2" and r.get_json()["warnings"]
    r = post(api, report({"lon": None, "lat": None, "address": "火星基地"}))
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "address"


def test_a_body_that_is_not_json(api, login, places):
    login("dispatcher", "TZ")
    r = api.post("/api/incidents", data="category=x")
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "body"


def test_session_writes_need_the_csrf_token(client, login, places, session):
    login("dispatcher", "TZ")
    before = count(session, "incidents")
    r = post(client, VALID)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "csrf"
    assert count(session, "incidents") == before


def test_a_bearer_token_needs_no_csrf(client, make_user, places, session):
    from geo import audit, users

    name, _ = make_user("dispatcher", "TZ")
    token = users.create_token(session, audit.Actor("test"), name)
    r = post(client, VALID, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201


def test_the_list_is_geojson_with_the_promised_properties(api, login, places):
    login("dispatcher", "TZ")
    ids = [post(api, report({"lon": 10.001 + k * 0.003})).get_json()["id"] for k in range(3)]
    r = api.get("/api/incidents?area=TZ&limit=2&bbox=10,10,10.04,10.04")
    assert r.status_code == 200 and r.mimetype == "application/geo+json"
    fc = r.get_json()
    assert fc["type"] == "FeatureCollection" and fc["numberMatched"] == 3 and len(fc["features"]) == 2
    f = fc["features"][0]
    assert f["geometry"]["type"] == "Point" and f["id"] in ids
    assert {"id", "external_id", "category", "severity", "status", "occurred_at", "grid_code",
            "geocode_level"} <= set(f["properties"])
    page2 = api.get("/api/incidents?area=TZ&limit=2&offset=2").get_json()
    assert len(page2["features"]) == 1


@pytest.mark.parametrize("query,field", [
    ("bbox=1,2", "bbox"), ("from=tomorrow", "from"), ("status=lost", "status"),
    ("category=weather", "category"), ("limit=0", "limit"), ("limit=99999", "limit"),
    ("area=NOWHERE", "area"), ("severity=9", "severity"),
])
def test_bad_list_queries(api, login, places, query, field):
    login("analyst", "TZ")
    r = api.get(f"/api/incidents?{query}")
    assert r.status_code in (400, 404) and r.get_json()["error"]["field"] == field


def test_privacy_over_http(api, login, places, app):
    login("dispatcher", "TZ")
    i = post(api, report({"sensitive": True, "lon": 10.002, "lat": 10.003})).get_json()["id"]
    exact = api.get(f"/api/incidents/{i}").get_json()
    assert exact["geometry"]["coordinates"] == [10.002, 10.003]
    assert exact["properties"]["reporter_phone"] == VALID["reporter_phone"]
    login("analyst", "TZ")
    seen = api.get(f"/api/incidents/{i}").get_json()
    assert seen["geometry"]["coordinates"] != [10.002, 10.003]
    assert seen["properties"]["generalised"] and seen["properties"]["reporter_phone"] is None
    listed = api.get("/api/incidents?area=TZ").get_json()["features"]
    assert all(f["properties"]["reporter_name"] is None for f in listed)


def test_the_lifecycle_over_http(api, login, places, session):
    login("grid_worker", "TZ1A1")
    c = api
    i = post(c, VALID).get_json()["id"]
    for to, extra in (("accepted", {}), ("handling", {"note": "组长调解"}),
                      ("resolved", {"level": "组", "note": "化解"})):
        r = c.post(f"/api/incidents/{i}/transitions", json={"to": to, **extra})
        assert r.status_code == 200, r.get_json()
    props = r.get_json()["properties"]
    assert props["status"] == "resolved" and props["resolution_level"] == "group"
    assert props["allowed"] == ["followed_up", "handling"]
    bad = c.post(f"/api/incidents/{i}/transitions", json={"to": "accepted"})
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "to"
    stale = c.post(f"/api/incidents/{i}/transitions", json={"to": "followed_up", "from": "handling"})
    assert stale.status_code == 409
    assert c.post("/api/incidents/abc/transitions", json={"to": "accepted"}).status_code == 400
    assert c.post("/api/incidents/987654321/transitions", json={"to": "accepted"}).status_code == 404


def test_transitions_respect_scope(api, login, places):
    login("dispatcher", "TZ")
    i = post(api, report({"lon": 10.035, "lat": 10.035})).get_json()["id"]
    login("grid_worker", "TZ1A1")
    r = api.post(f"/api/incidents/{i}/transitions", json={"to": "accepted"})
    assert r.status_code == 404  # not in scope: not even visible


def test_duplicates_and_links_over_http(api, login, places):
    login("dispatcher", "TZ")
    c = api
    a = post(c, report({"source": "12345热线"})).get_json()["id"]
    created = post(c, report({"source": "110接警", "lon": 10.0051}))
    b = created.get_json()["id"]
    assert [d["id"] for d in created.get_json()["duplicates"]] == [a]
    assert c.get(f"/api/incidents/{b}/duplicates").get_json()["duplicates"][0]["id"] == a
    r = c.post(f"/api/incidents/{b}/links", json={"other": a})
    assert r.status_code == 201 and r.get_json()["created"] is True
    assert c.post(f"/api/incidents/{b}/links", json={"other": a}).status_code == 200
    assert c.get(f"/api/incidents/{a}").get_json()["properties"]["links"] == [b]
    assert c.delete(f"/api/incidents/{a}/links/{b}").status_code == 204
    assert c.delete(f"/api/incidents/{a}/links/{b}").status_code == 404
    assert c.post(f"/api/incidents/{a}/links", json={"other": a}).status_code == 400
    login("analyst", "TZ")
    assert c.get(f"/api/incidents/{a}/duplicates").status_code == 403


def test_stats_over_http(api, login, places):
    login("dispatcher", "TZ")
    post(api, VALID)
    login("analyst", "TZ1")
    body = api.get("/api/incidents/stats?area=TZ1&from=2026-01-01&to=2027-01-01").get_json()
    assert body["area"]["code"] == "TZ1" and body["total"] == 1 and body["disputes"]["total"] == 1
    assert api.get("/api/incidents/stats?area=TZ2").status_code == 403
    assert api.get("/api/incidents/stats").get_json()["error"]["field"] == "area"


def test_geocode_and_reverse_over_http(api, login, places):
    login("analyst", "TZ")
    body = api.get("/api/geocode?q=河东街道翠湖路12号").get_json()
    assert body["status"] == "ok"
    for item in [body["best"]] + body["candidates"]:
        assert set(item) >= {"lon", "lat", "level", "confidence", "area_code", "matched"}
    assert body["best"]["level"] == "door" and body["best"]["area_code"] == "TZ1A2"
    ambiguous = api.get("/api/geocode?q=柳桥镇1组").get_json()
    assert ambiguous["status"] == "ambiguous" and len(ambiguous["candidates"]) == 2
    assert api.get("/api/geocode").get_json()["error"]["field"] == "q"
    lon, lat = town.door_point(12)
    rev = api.get(f"/api/reverse?lon={lon}&lat={lat}").get_json()
    assert rev["area"]["code"] == "TZ1A2" and rev["nearest"]["kind"] == "door"
    assert api.get("/api/reverse?lon=1000&lat=1").get_json()["error"]["field"] == "lon"


def test_the_report_form_shows_only_the_workers_grids(client, login, places):
    login("grid_worker", "TZ1A1")
    page = client.get("/report")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "TZ1A1" in html and "TZ1A2" not in html
    login("analyst", "TZ")
    assert client.get("/report").status_code == 403


def test_openapi_documents_the_incident_routes(client):
    paths = client.get("/api/openapi.json").get_json()["paths"]
    for p in ("/api/incidents", "/api/incidents/{id}", "/api/incidents/{id}/transitions",
              "/api/incidents/stats", "/api/geocode", "/api/reverse"):
        assert p in paths, p


# -- the command line --------------------------------------------------------------------------
def write_csv(path, rows):
    headers = ["编号", "发生时间", "事件类型", "等级", "经度", "纬度", "地址", "事件描述", "联系电话", "敏感"]
    keys = ["external_id", "occurred_at", "category", "severity", "lon", "lat", "address",
            "description", "reporter_phone", "sensitive"]
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(headers)
        for r in rows:
            w.writerow([r.get(k, "") for k in keys])
    return path


@pytest.fixture()
def committed_town(engine):
    """The hand-made town committed (the CLI runs its own transaction), removed afterwards."""
    from geo import db

    with db.session_scope(engine) as s:
        for code, x, y in (("CLITZ", 10.0, 10.0), ("CLITS", 30.0, 40.0)):
            s.execute(text("INSERT INTO areas (code, name, level, geom) VALUES (:c, :n, 1, "
                           "ST_Multi(ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)))"),
                      {"c": code, "n": code, "x0": x, "y0": y, "x1": x + 0.04, "y1": y + 0.04})
    yield "CLITZ"
    with db.session_scope(engine) as s:
        s.execute(text("DELETE FROM incidents WHERE source LIKE 'import:cli-%'"))
        s.execute(text("DELETE FROM audit_log WHERE action = 'incidents.import' AND target_id LIKE 'cli-%'"))
        s.execute(text("DELETE FROM audit_log WHERE action = 'incidents.assign' "
                       "AND details->'areas' ? 'CLITZ'"))
        s.execute(text("DELETE FROM areas WHERE code IN ('CLITZ', 'CLITS')"))


def test_cli_import_refuses_a_bad_file_line_by_line_and_writes_nothing(engine, committed_town, tmp_path):
    from web.cli import main

    rows = [report({"external_id": "C1", "occurred_at": "2026-10-01 08:00"}),
            report({"external_id": "C2", "category": "天气", "occurred_at": "2026-10-01 08:00"}),
            report({"external_id": "C3", "lat": 95, "occurred_at": "2026-10-01 08:00"})]
    path = write_csv(tmp_path / "cli-bad.csv", rows)
    with engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM incidents")).scalar()
    result = CliRunner().invoke(main, ["incidents", "import", str(path)], catch_exceptions=False)
    assert result.exit_code == 1
    assert "line 3 (category)" in result.output and "line 4 (lat)" in result.output
    assert "nothing written" in result.output
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM incidents")).scalar() == before
    dry = CliRunner().invoke(main, ["incidents", "import", str(path), "--skip-bad", "--dry-run"],
                             catch_exceptions=False)
    assert dry.exit_code == 0 and "would import 1 incident" in dry.output
    done = CliRunner().invoke(main, ["incidents", "import", str(path), "--skip-bad"],
                              catch_exceptions=False)
    assert done.exit_code == 0 and "imported 1 incident" in done.output
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM incidents")).scalar() == before + 1


def test_cli_import_options_are_checked(engine, tmp_path):
    from web.cli import main

    path = write_csv(tmp_path / "cli-x.csv", [report({"occurred_at": "2026-10-01 08:00"})])
    for args, expected in ((["--map", "nonsense"], "FIELD=COLUMN"),
                           (["--map", "colour=地址"], "unknown field"),
                           (["--crs", "mars"], "unknown coordinate system"),
                           (["--category", "weather"], "category must be one of")):
        result = CliRunner().invoke(main, ["incidents", "import", str(path), *args],
                                    catch_exceptions=False)
        assert result.exit_code == 1 and expected in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1


ROW_CASES = [c for c in BAD_REPORTS if c[3]]


@pytest.mark.parametrize("name,changes,field,_csv", ROW_CASES, ids=[c[0] for c in ROW_CASES])
def test_cli_import_names_each_bad_row(engine, committed_town, tmp_path, name, changes, field, _csv):
    from web.cli import main

    rows = [report({"external_id": "OK1", "occurred_at": "2026-10-01 08:00"}),
            report({"external_id": "BAD", "occurred_at": "2026-10-01 08:00", **changes})]
    if "occurred_at" in changes:
        rows[1]["occurred_at"] = changes["occurred_at"]
    result = CliRunner().invoke(main, ["incidents", "import", str(write_csv(tmp_path / "cli-row.csv", rows))],
                                catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert f"line 3 ({field})" in result.output and "nothing written" in result.output


def test_cli_assign_after_a_boundary_change(engine, committed_town, tmp_path):
    from web.cli import main

    path = write_csv(tmp_path / "cli-assign.csv",
                     [report({"external_id": "A1", "occurred_at": "2026-10-01 08:00"})])
    assert CliRunner().invoke(main, ["incidents", "import", str(path)]).exit_code == 0
    with engine.begin() as conn:   # the jurisdiction shrinks away from the incident
        conn.execute(text("UPDATE areas SET geom = ST_Multi(ST_MakeEnvelope(10.02, 10.02, 10.04, "
                          "10.04, 4326)) WHERE code = 'CLITZ'"))
    result = CliRunner().invoke(main, ["incidents", "assign", "--area", "CLITZ"], catch_exceptions=False)
    assert result.exit_code == 0 and result.output.strip() == "1 incident(s) re-assigned"
    with engine.connect() as conn:
        outside = conn.execute(text("SELECT outside_jurisdiction FROM incidents "
                                    "WHERE source = 'import:cli-assign.csv'")).scalar()
    assert outside is True
