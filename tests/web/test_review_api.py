"""The risk, scorecard, heat, hot spot, review and public APIs: roles, scope, the one error shape,
an unchanged database after bad input, a public endpoint that leaks nothing, the CLI commands."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from layers import review
from layers.selection import TZ
from tests import town
from tests.layers.incidents import add_incident
from web.cli import main
from web.vendor import PACKAGES


def last_month_day(day: int = 5) -> datetime:
    """A day in the last complete calendar month (the public map's window)."""
    now = datetime.now(TZ)
    first = now.replace(day=1, hour=10, minute=0, second=0, microsecond=0)
    return (first - timedelta(days=1)).replace(day=day, hour=10)


def csrf_headers(client) -> dict:
    """The session's CSRF token, as the pages send it with every write."""
    page = client.get("/login").get_data(as_text=True)
    return {"X-CSRFToken": re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)}


def test_risk_geojson_for_an_area(client, login, tiny):
    login("analyst", "TZ1")
    r = client.get("/api/risk?area=TZ1")
    assert r.status_code == 200 and r.mimetype == "application/geo+json"
    fc = r.get_json()
    assert [f["id"] for f in fc["features"]] == ["TZ1A1", "TZ1A2", "TZ1B1", "TZ1B2"]
    p = fc["features"][0]["properties"]
    assert p["level"] in ("blue", "yellow", "orange", "red") and p["reasons"] and "score" in p
    assert fc["summary"]["grids"] == 4
    # A grid worker reads the reasons of their own grids, never the township's.
    login("grid_worker", "TZ1A1")
    assert [f["id"] for f in client.get("/api/risk").get_json()["features"]] == ["TZ1A1"]
    assert client.get("/api/risk?area=TZ1").status_code == 403


def test_risk_needs_a_login(client, tiny):
    r = client.get("/api/risk?area=TZ")
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "unauthorized"


def test_override_by_an_analyst_in_scope(client, login, session, tiny):
    login("analyst", "TZ1")
    until = (datetime.now(TZ) + timedelta(days=3)).isoformat()
    r = client.post("/api/risk/TZ1A1/override", json={"level": "red", "reason": "节日安保", "until": until},
                    headers=csrf_headers(client))
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["level"] == "red"
    props = next(f["properties"] for f in client.get("/api/risk?area=TZ1").get_json()["features"]
                 if f["id"] == "TZ1A1")
    assert props["level"] == "red" and props["override"]["reason"] == "节日安保"
    assert session.execute(text("SELECT count(*) FROM audit_log WHERE action = 'risk.override' "
                                "AND target_id = 'TZ1A1'")).scalar() == 1
    assert client.get("/api/risk/TZ1A1/history").get_json()["periods"][0]["override"]["level"] == "red"
    cleared = client.delete("/api/risk/TZ1A1/override", headers=csrf_headers(client))
    assert cleared.status_code == 200 and cleared.get_json()["previous"] == "red"


def _override_rows(session) -> int:
    return session.execute(text("SELECT count(*) FROM risk_levels WHERE override_level IS NOT NULL")).scalar()


def test_override_outside_scope_or_role_is_refused_and_changes_nothing(client, login, session, tiny):
    until = (datetime.now(TZ) + timedelta(days=3)).isoformat()
    body = {"level": "red", "reason": "越权测试", "until": until}
    login("analyst", "TZ2")
    r = client.post("/api/risk/TZ1A1/override", json=body, headers=csrf_headers(client))
    assert r.status_code == 403 and r.get_json()["error"]["field"] == "area"
    login("dispatcher", "TZ")
    r = client.post("/api/risk/TZ1A1/override", json=body, headers=csrf_headers(client))
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "forbidden"
    assert _override_rows(session) == 0
    assert session.execute(text("SELECT count(*) FROM risk_levels")).scalar() == 0


def test_override_without_csrf_is_refused(client, login, session, tiny):
    login("analyst", "TZ")
    r = client.post("/api/risk/TZ1A1/override", json={"level": "red", "reason": "x" * 5,
                                                       "until": "2099-01-01"})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "csrf"
    assert _override_rows(session) == 0


BAD = [
    ("post", "/api/risk/TZ1A1/override", {"level": "purple", "reason": "原因说明", "until": "2099-01-01"}, 400, "level"),
    ("post", "/api/risk/TZ1A1/override", {"level": "red", "reason": "", "until": "2099-01-01"}, 400, "reason"),
    ("post", "/api/risk/TZ1A1/override", {"level": "red", "reason": "原因说明", "until": "soon"}, 400, "until"),
    ("post", "/api/risk/TZ1A1/override", "not json", 400, "body"),
    ("post", "/api/risk/TZ1A/override", {"level": "red", "reason": "原因说明", "until": "2099-01-01"}, 400, "code"),
    ("post", "/api/risk/NOPE/override", {"level": "red", "reason": "原因说明", "until": "2099-01-01"}, 404, "area"),
    ("delete", "/api/risk/TZ1A1/override", None, 404, "code"),
    ("get", "/api/risk?area=NOPE", None, 404, "area"),
    ("get", "/api/risk/TZ1A/history", None, 400, "code"),
    ("get", "/api/scorecards?area=TZ&as_of=yesterday", None, 400, "as_of"),
    ("get", "/api/heat?area=TZ&bandwidth=abc", None, 400, "bandwidth"),
    ("get", "/api/heat?area=TZ&format=svg", None, 400, "format"),
    ("get", "/api/heat?area=TZ&category=fire", None, 400, "category"),
    ("get", "/api/heat?area=TZ&since=2026-06-02&until=2026-06-01", None, 400, "until"),
    ("get", "/api/hotspots?area=TZ&level=county", None, 400, "level"),
    ("get", "/api/hotspots?area=TZ&size=5", None, 400, "size"),
    ("get", "/api/hotspots?area=TZ&band=10", None, 400, "band"),
    ("get", "/api/hotspots?area=TZ&permutations=12", None, 400, "permutations"),
    ("get", "/api/hotspots?area=TZ&inference=bootstrap", None, 400, "inference"),
    ("get", "/api/hotspots/emerging?area=TZ&since=2026-05-01&until=2026-06-30", None, 400, "since"),
    ("get", "/api/review/compare?area=TZ&month=2026-13", None, 400, "month"),
    ("get", "/api/public/stats?level=point", None, 400, "level"),
    ("get", "/api/public/stats?months=1", None, 400, "months"),
]


@pytest.mark.parametrize("method, url, body, status, field", BAD, ids=[f"{b[0]} {b[1]} {b[4]}" for b in BAD])
def test_bad_input_gets_the_one_error_shape_and_changes_nothing(client, login, session, tiny,
                                                                method, url, body, status, field):
    login("analyst", "TZ")
    before = session.execute(text("SELECT count(*) FROM risk_levels")).scalar()
    kwargs = {"headers": csrf_headers(client)} if method != "get" else {}
    if isinstance(body, dict):
        kwargs["json"] = body
    elif body is not None:
        kwargs["data"] = body
    r = getattr(client, method)(url, **kwargs)
    assert r.status_code == status, r.get_data(as_text=True)
    error = r.get_json()["error"]
    assert set(error) >= {"code", "message", "field"} and error["field"] == field and error["message"]
    assert session.execute(text("SELECT count(*) FROM risk_levels")).scalar() == before


def test_analytics_are_for_analysts(client, login, tiny):
    login("grid_worker", "TZ1A1")
    for url in ("/api/hotspots?area=TZ", "/api/hotspots/emerging?area=TZ", "/api/review/compare?area=TZ"):
        r = client.get(url)
        assert r.status_code == 403 and r.get_json()["error"]["code"] == "forbidden", url
    assert client.get("/review").status_code == 403
    assert client.get("/api/scorecards?area=TZ1A1").status_code == 200   # the dashboard's panels
    assert client.get("/api/scorecards?area=TZ").status_code == 403     # not the district's


def test_heat_hotspots_and_comparison(client, login, session, tiny):
    login("analyst", "TZ")
    for k in range(40):
        add_incident(session, 10.03 + (k % 5) * 0.0004, 10.03 + (k // 5) * 0.0004,
                     occurred_at=datetime(2026, 5, 10, tzinfo=TZ), category="criminal")
    for _ in range(12):
        add_incident(session, 10.005, 10.005, occurred_at=datetime(2026, 4, 10, tzinfo=TZ))
    heat = client.get("/api/heat?area=TZ&bandwidth=250").get_json()
    assert heat["n"] == 52 and heat["crs"] == "EPSG:32632" and heat["points"][0][0] < 11   # lat first
    image = client.get("/api/heat?area=TZ&format=image&category=criminal").get_json()
    assert image["image"].startswith("data:image/png;base64,") and image["bounds"][0][0] < image["bounds"][1][0]
    hs = client.get("/api/hotspots?area=TZ&size=300&permutations=999").get_json()
    assert hs["analysis"]["band_m"] > 1000 and hs["analysis"]["incidents"] == 52
    assert hs["analysis"]["inference"] == "normal" and hs["analysis"]["permutations"] == 0
    assert all(f["properties"]["p"] == f["properties"]["p_norm"] for f in hs["features"])
    sim = client.get("/api/hotspots?area=TZ&size=300&inference=permutation&permutations=999").get_json()
    assert sim["analysis"]["inference"] == "permutation" and sim["analysis"]["permutations"] == 999
    assert all(f["properties"]["p"] == f["properties"]["p_sim"] for f in sim["features"])
    grids = client.get("/api/hotspots?area=TZ&level=grid&permutations=999").get_json()
    assert len(grids["features"]) == 8
    em = client.get("/api/hotspots/emerging?area=TZ&since=2026-01-01&until=2026-06-30&size=300").get_json()
    assert em["analysis"]["steps"] == ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"]
    cmp_ = client.get("/api/review/compare?area=TZ&month=2026-05").get_json()
    assert cmp_["totals"] == {"this": 40, "last": 12, "change": 28, "change_pct": 233.3}
    assert cmp_["increases"][0]["code"] == "TZ2B2" and cmp_["decreases"][0]["code"] == "TZ1A1"
    card = client.get("/api/scorecards?area=TZ2&as_of=2026-05-31").get_json()
    assert card["sanling"]["criminal"]["days_since"] == 21 and card["area"]["code"] == "TZ2"


def test_public_stats_publish_rounded_frozen_months(lone_client, lone):
    town.add_tiny(lone)                                                   # the home jurisdiction
    when = last_month_day()
    for _ in range(7):
        add_incident(lone, 10.005, 10.005, occurred_at=when)             # TZ1A1: 7, shown as 5 or 10
    for _ in range(3):
        add_incident(lone, 10.015, 10.005, occurred_at=when)             # TZ1A2: 3, shown as 0 or 5
    for _ in range(4):
        add_incident(lone, 10.015, 10.005, occurred_at=when, sensitive=True)      # never counted
    add_incident(lone, 10.025, 10.025, occurred_at=when - timedelta(days=400))    # outside 12 months
    r = lone_client.get("/api/public/stats?level=grid")                  # no login
    assert r.status_code == 200 and r.headers["Cache-Control"].startswith("public")
    fc = r.get_json()
    by_id = {f["id"]: f["properties"] for f in fc["features"]}
    assert set(by_id) == {f"TZ{t}{v}{g}" for t in "12" for v in "AB" for g in "12"}
    assert set(by_id["TZ1A1"]) == {"id", "name", "count", "retired"} and by_id["TZ1A1"]["name"] == "测试TZ1A1"
    assert by_id["TZ1A1"]["count"] in (5, 10) and by_id["TZ1A2"]["count"] in (0, 5)
    assert by_id["TZ2B2"]["count"] == 0
    meta = fc["meta"]
    assert meta["base"] == 5 and meta["rounding"] == "random rounding to base 5 of each monthly cell"
    assert meta["area"] == "TZ" and meta["months"] == 12 and len(meta["releases"]) == 12
    assert meta["published_total"] == sum(p["count"] for p in by_id.values())
    assert "0 can mean up to 4" in meta["note"]
    body = r.get_data(as_text=True)
    for leak in ("测试事件", "张三", "reporter", "description", "address", "Point", "seed"):
        assert leak not in body
    hexes = lone_client.get("/api/public/stats?level=hex&months=3").get_json()
    counts = [f["properties"]["count"] for f in hexes["features"]]
    assert counts and all(f["id"].startswith("32632:") for f in hexes["features"])
    assert all(c % 5 == 0 for c in counts) and sum(counts) in (5, 10, 15)
    assert all(f["geometry"]["type"] == "Polygon" for f in hexes["features"])
    assert hexes["meta"]["releases"] == meta["releases"][-3:]


def test_public_page_needs_no_login_and_review_does(client, tiny):
    r = client.get("/public")
    assert r.status_code == 200 and "js/pages/public.js" in r.get_data(as_text=True)
    assert client.get("/review").status_code == 302


def test_openapi_lists_the_review_endpoints(client):
    paths = client.get("/api/openapi.json").get_json()["paths"]
    for p in ("/api/layers", "/api/risk", "/api/risk/{code}/override", "/api/scorecards", "/api/heat", "/api/hotspots",
              "/api/hotspots/emerging", "/api/public/stats"):
        assert p in paths, p


def test_the_layer_registry_by_role(client, login, tiny):
    login("grid_worker", "TZ1A1")
    names = {layer["name"] for layer in client.get("/api/layers").get_json()["layers"]}
    assert names == {"risk", "public"}
    login("analyst", "TZ")
    layers = {layer["name"]: layer for layer in client.get("/api/layers").get_json()["layers"]}
    assert set(layers) == {"risk", "heat", "hotspots", "emerging", "public"}
    assert layers["hotspots"]["endpoint"] == "/api/hotspots" and layers["risk"]["title"]["zh"] == "四色风险"


def test_folium_assets_come_from_the_apps_own_vendor_folders():
    for package, folder in review.PACKAGE_DIRS.items():
        assert PACKAGES[package] == folder
        for name, (pkg, filename) in review.ASSETS.items():
            if pkg == package:
                assert review.vendor_file(pkg, filename).is_file(), name


def test_review_page_and_report_for_the_demo(client, login, demo):
    login("analyst", "411103")
    page = client.get("/review?area=411103102&month=2026-10")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "商桥镇" in html and 'src="/review/map?area=411103102&amp;month=2026-10"' in html
    review.check_offline(html)
    # The map is a document of its own whose inline scripts only their hashes allow.
    framed = client.get("/review/map?area=411103102&month=2026-10")
    assert framed.status_code == 200 and "/vendor/leaflet/leaflet.js" in framed.get_data(as_text=True)
    policy = framed.headers["Content-Security-Policy"]
    assert "'sha256-" in policy and "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    assert "frame-ancestors 'self'" in policy
    review.check_offline(framed.get_data(as_text=True))
    report = client.get("/review/report?area=411103102&month=2026-10")
    assert report.status_code == 200 and "attachment" in report.headers["Content-Disposition"]
    doc = report.get_data(as_text=True)
    review.check_offline(doc)
    assert "/vendor/" not in doc and "L.map(" in doc


def test_the_review_map_offers_every_basemap_and_opens_on_the_readers(client, login, tiny):
    login("analyst", "TZ")
    page = client.get("/review?area=TZ1&month=2026-10").get_data(as_text=True)
    assert 'data-basemap="none"' in page and "js/pages/review.js" in page      # the app's BASEMAP here

    def framed(query: str) -> str:
        r = client.get(f"/review/map?area=TZ1&month=2026-10{query}")
        assert r.status_code == 200
        return r.get_data(as_text=True)

    local = framed("&basemap=local")
    assert "/vendor/protomaps-leaflet/protomaps-leaflet.js" in local
    assert "window.anwangLocalBasemap" in local and '"/tiles/basemap/{z}/{x}/{y}.mvt"' in local
    assert "export " not in local.split("window.anwangLocalBasemap", 1)[1].split("</script>", 1)[0]
    assert 'document.body.dataset.basemap = "local"' in local
    # The layer switch's names, as folium writes them (JSON, non-ASCII escaped).
    assert all(json.dumps(name) in local for name in ("本地地图", "OpenStreetMap", "无底图"))
    review.check_offline(local)
    # An unknown choice falls back to the configured basemap; each one offered once.
    other = framed("&basemap=satellite")
    assert 'document.body.dataset.basemap = "none"' in other
    assert other.count("window.anwangLocalBasemap(") == 1


def test_cli_risk_update_and_report(demo, engine, tmp_path):
    runner = CliRunner()
    try:
        result = runner.invoke(main, ["risk", "update", "--area", "411103102", "--as-of", "2026-10-31"],
                               catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert "period 2026-10-26–2026-11-01: 97 grid(s)" in result.output
        with engine.connect() as conn:
            assert conn.execute(text(
                "SELECT count(*) FROM risk_levels r JOIN areas a ON a.id = r.area_id "
                "WHERE a.code LIKE '411103102%' AND r.period_start = '2026-10-26'")).scalar() == 97
        out = tmp_path / "report.html"
        result = runner.invoke(main, ["report", "--area", "411103102", "--month", "2026-10", "-o", str(out),
                                      "--no-pdf"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        doc = out.read_text(encoding="utf-8")
        review.check_offline(doc)
        assert "商桥镇" in doc and "周交办" in doc and "四色预警" in doc
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM risk_levels r USING areas a WHERE a.id = r.area_id "
                              "AND a.code LIKE '411103102%'"))
            conn.execute(text("DELETE FROM audit_log WHERE action LIKE 'risk.%'"))
            conn.execute(text("DELETE FROM live_events WHERE kind IN ('risk', 'risk_bulk')"))


def test_cli_public_release_publishes_a_month_once(demo, engine):
    runner = CliRunner()
    line = re.compile(r"411103 2026-10: (published now|already published [0-9: -]+); "
                      r"grid \d+ cells, total (\d+), hex \d+ cells, total (\d+) \(random rounding to base 5\)$")
    first = runner.invoke(main, ["public", "release", "--month", "2026-10"], catch_exceptions=False)
    try:
        assert first.exit_code == 0, first.output
        published = line.match(first.output.strip())
        assert published and int(published.group(2)) % 5 == 0 and int(published.group(3)) % 5 == 0
        assert int(published.group(2)) > 1000                            # the demo's October
        second = runner.invoke(main, ["public", "release", "--month", "2026-10"], catch_exceptions=False)
        again = line.match(second.output.strip())
        assert again and again.group(1).startswith("already published")
        assert again.groups()[1:] == published.groups()[1:]
        with engine.connect() as conn:
            assert conn.execute(text(
                "SELECT count(*) FROM public_release_cells c JOIN public_releases r ON r.id = c.release_id "
                "WHERE r.month = '2026-10-01' AND c.published % 5 <> 0")).scalar() == 0
    finally:
        if first.output.startswith("411103 2026-10: published now"):
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM public_releases WHERE month = '2026-10-01'"))
                conn.execute(text("DELETE FROM audit_log WHERE action = 'public.release'"))


@pytest.mark.parametrize("args, message", [
    (["risk", "update", "--every", "5s"], "--every must be"),
    (["risk", "update", "--as-of", "whenever"], "as_of must be an ISO date"),
    (["risk", "update", "--policy", "/nonexistent/policy.yaml"], "does not exist"),
    (["report", "--area", "411103", "--month", "2026-13", "-o", "x.html"], "month must be YYYY-MM"),
    (["report", "--area", "NOPE", "--month", "2026-10", "-o", "x.html"], "no area with code"),
    (["report", "--area", "411103", "--month", "2026-10", "-o", "x.txt"], "must end in .html or .pdf"),
    (["public", "release", "--month", "2026-13"], "month must be YYYY-MM"),
    (["public", "release", "--month", "2999-01"], "is not complete yet"),
])
def test_cli_errors_are_one_line(engine, args, message):
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error") and message in lines[0]
