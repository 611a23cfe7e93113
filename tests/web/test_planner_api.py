"""The planner API: preview then commit a change set, 409 on a stale version naming what changed,
history with diff and revert, problems as GeoJSON, as-of boundaries, import/export, soft locks,
roles and scopes, and one error shape for every refusal."""
from __future__ import annotations

import io
import json
import re
from urllib.parse import quote

import pytest
from sqlalchemy import text

from tests.geo import planner_fixtures
from tests.geo.planner_fixtures import bad_imports, feature, square


@pytest.fixture()
def region(session):
    return planner_fixtures.build(session)


def csrf(client) -> dict:
    """The session's CSRF token (from the logout form every page has) as the pages send it."""
    page = client.get("/").get_data(as_text=True)
    return {"X-CSRFToken": re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)}


@pytest.fixture()
def planner(client, login, region):
    login("planner", "EV")
    return csrf(client)


def versions(client, parent="EV1001"):
    body = client.get(f"/api/areas?level=4&parent={parent}").get_json()
    return {f["id"]: f["properties"]["version"] for f in body["features"]}


TRANSFER = {"op": "transfer", "areas": ["EV1001001", "EV1001002"],
            "geometry": {"type": "Polygon", "coordinates": [[[20.010, 20.020], [20.016, 20.020],
                                                             [20.016, 20.026], [20.010, 20.026],
                                                             [20.010, 20.020]]]}}


def assert_error_shape(response, status, field=None):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body["error"]) >= {"code", "message", "field"} and body["error"]["message"]
    if field:
        assert body["error"]["field"] == field
    return body["error"]


def test_preview_then_commit_then_history_diff_and_revert(client, planner, session):
    seen = versions(client)
    preview = client.post("/api/changes", json={**TRANSFER, "preview": True}, headers=planner)
    assert preview.status_code == 200 and preview.get_json()["preview"] is True
    rows = preview.get_json()["rows"]
    assert {r["code"] for r in rows} == {"EV1001001", "EV1001002"}
    assert versions(client) == seen  # nothing written
    body = {**TRANSFER, "reason": "调整两网格边界", "base_versions": {c: seen[c] for c in TRANSFER["areas"]}}
    done = client.post("/api/changes", json=body, headers=planner)
    assert done.status_code == 201, done.get_data(as_text=True)
    change_id = done.get_json()["change_id"]
    assert versions(client)["EV1001001"] == seen["EV1001001"] + 1

    listed = client.get("/api/changes?area=EV1001").get_json()["changes"]
    assert listed[0]["id"] == change_id and listed[0]["reason"] == "调整两网格边界"
    assert listed[0]["author"].startswith("t_planner")
    detail = client.get(f"/api/changes/{change_id}").get_json()
    assert {f["properties"]["kind"] for f in detail["diff"]["features"]} == {"added", "removed"}

    revert = client.post(f"/api/changes/{change_id}/revert", json={"reason": "撤销"}, headers=planner)
    assert revert.status_code == 201 and revert.get_json()["reverts_id"] == change_id
    again = client.post(f"/api/changes/{change_id}/revert", json={"reason": "撤销"}, headers=planner)
    assert assert_error_shape(again, 409)["code"] == "conflict"


def test_stale_version_is_409_with_what_changed(client, planner):
    seen = versions(client)
    base = {c: seen[c] for c in TRANSFER["areas"]}
    first = client.post("/api/changes", json={**TRANSFER, "reason": "甲的修改", "base_versions": base},
                        headers=planner)
    assert first.status_code == 201
    second = client.post("/api/changes", json={"op": "merge", "areas": TRANSFER["areas"],
                                               "reason": "乙的修改", "base_versions": base},
                         headers=planner)
    error = assert_error_shape(second, 409, "base_versions")
    assert "甲的修改" in error["message"] and "划转" in error["message"]
    stale = error["details"]["stale"]
    assert {s["code"] for s in stale} == set(TRANSFER["areas"])
    assert stale[0]["changes"][0]["id"] == first.get_json()["change_id"]


def test_split_and_as_of_shows_the_old_boundaries(client, planner, session):
    before = session.execute(text("SELECT clock_timestamp()")).scalar()
    seen = versions(client)
    split = client.post("/api/changes", headers=planner, json={
        "op": "split", "areas": ["EV1001003"], "reason": "人口增长",
        "geometry": {"type": "LineString", "coordinates": [[19.99, 20.007], [20.02, 20.010]]},
        "base_versions": {"EV1001003": seen["EV1001003"]}})
    assert split.status_code == 201
    assert sorted(versions(client)) == ["EV1001001", "EV1001002", "EV1001004", "EV1001005", "EV1001006"]
    old = client.get(f"/api/areas?level=4&parent=EV1001&as_of={quote(before.isoformat())}").get_json()
    assert [f["id"] for f in old["features"]] == ["EV1001001", "EV1001002", "EV1001003", "EV1001004"]
    assert_error_shape(client.get("/api/areas?level=4&as_of=yesterday"), 400, "as_of")
    # A planner may revert it although the split grid itself now lives only in the history.
    undo = client.post(f"/api/changes/{split.get_json()['change_id']}/revert", json={"reason": "撤销拆分"},
                       headers=planner)
    assert undo.status_code == 201, undo.get_data(as_text=True)
    assert "EV1001003" in versions(client)


def test_problems_are_geojson_with_workload(client, planner, session):
    seen = versions(client)
    client.post("/api/changes", headers=planner, json={
        "op": "merge", "areas": ["EV1001001", "EV1001002"], "reason": "合并",
        "base_versions": {c: seen[c] for c in ("EV1001001", "EV1001002")}})
    body = client.get("/api/areas/EV1001/problems").get_json()
    assert body["type"] == "FeatureCollection" and body["errors"] == 0
    kinds = {(f["properties"]["kind"], f["properties"]["codes"][0]) for f in body["features"]}
    assert ("workload", "EV1001001") in kinds  # 660 households, the urban norm is 300–500
    assert all(f["geometry"] for f in body["features"])


def test_roles_and_scopes(client, login, region, tiny):
    login("analyst", "EV")
    assert client.get("/api/changes?area=EV1001").status_code == 200
    assert_error_shape(client.post("/api/changes", json=TRANSFER, headers=csrf(client)), 403)
    login("planner", "TZ")
    headers = csrf(client)
    assert_error_shape(client.post("/api/changes", json={**TRANSFER, "preview": True}, headers=headers),
                       403, "areas")
    assert_error_shape(client.get("/api/areas/EV1001/problems"), 403)
    login("grid_worker", "TZ1A1")
    assert client.get("/planner").status_code == 403


def test_bad_change_requests_share_one_error_shape(client, planner):
    cases = [({"op": "fly", "areas": ["EV1001001"]}, 400, "op"),
             ({"op": "merge", "areas": ["EV1001001", "EV1001002"], "reason": "合并"}, 400, "base_versions"),
             ({"op": "merge", "areas": ["EV1001001", "NOPE"], "preview": True}, 404, "areas"),
             ({"op": "split", "areas": ["EV1001003"], "preview": True,
               "geometry": {"type": "LineString", "coordinates": [[20.001, 20.008], [20.005, 20.009]]}},
              400, "geometry")]
    for body, status, field in cases:
        assert_error_shape(client.post("/api/changes", json=body, headers=planner), status, field)
    assert_error_shape(client.post("/api/changes", data="x", headers=planner), 400, "body")
    assert_error_shape(client.post("/api/changes/999999/revert", json={"reason": "xx"},
                                   headers=planner), 404)


def test_soft_lock_is_visible_to_another_planner(client, login, region):
    login("planner", "EV")
    mine = client.post("/api/areas/EV1001/lock", headers=csrf(client)).get_json()
    assert mine["mine"] is True
    first = mine["username"]
    login("planner", "EV")
    theirs = client.post("/api/areas/EV1001/lock", headers=csrf(client)).get_json()
    assert theirs["mine"] is False and theirs["username"] == first
    assert [lock["username"] for lock in client.get("/api/locks?parent=EV").get_json()["locks"]] == [first]


def _upload(client, headers, features, **form):
    data = {"file": (io.BytesIO(json.dumps({"type": "FeatureCollection", "features": features}).encode()),
                     "areas.geojson"), **{k: str(v) for k, v in form.items()}}
    return client.post("/api/areas/import", data=data, headers=headers,
                       content_type="multipart/form-data")


def test_import_and_export_over_http(client, login, region):
    login("admin")
    headers = csrf(client)
    features = [feature("H1", square(32.0, 32.0)), feature("H2", square(32.01, 32.0))]
    dry = _upload(client, headers, features, level=1, dry_run=1)
    assert dry.status_code == 200 and dry.get_json()["created"] == ["H1", "H2"]
    assert client.get("/api/areas/H1").status_code == 404
    done = _upload(client, headers, features, level=1)
    assert done.status_code == 201 and done.get_json()["change_id"]
    assert client.get("/api/areas/H1").status_code == 200
    refused = _upload(client, headers, features, level=1)
    error = assert_error_shape(refused, 422, "file")
    assert error["code"] == "import_refused" and error["details"]["errors"][0]["kind"] == "code_exists"

    export = client.get("/api/areas/export?level=4&parent=EV1001&format=geojson")
    assert export.status_code == 200 and "attachment" in export.headers["Content-Disposition"]
    assert len(json.loads(export.data)["features"]) == 4
    shp = client.get("/api/areas/export?level=4&parent=EV1001&format=shp")
    assert shp.status_code == 200 and shp.data[:2] == b"PK"
    assert_error_shape(client.get("/api/areas/export?level=4&parent=EV1001&format=kml"), 400, "format")


@pytest.mark.parametrize("name,features,options,expected", bad_imports(), ids=[b[0] for b in bad_imports()])
def test_bad_imports_over_http(client, login, name, features, options, expected):
    login("admin")
    response = _upload(client, csrf(client), features, **{"level": 1, **options})
    if expected in ("code_field", "parent"):
        assert_error_shape(response, 400, expected)
    else:
        error = assert_error_shape(response, 422, "file")
        assert expected in {e["kind"] for e in error["details"]["errors"]}


def test_planner_page_needs_the_planner_role(client, login, region):
    login("planner", "EV")
    page = client.get("/planner")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "/vendor/leaflet-geoman/leaflet-geoman.min.js" in html and 'name="csrf-token"' in html
    login("analyst", "EV")
    assert client.get("/planner").status_code == 403


def test_problems_and_preview_notes_speak_the_readers_language(client, planner, session):
    seen = versions(client)
    merge = {"op": "merge", "areas": ["EV1001001", "EV1001002"], "reason": "合并", "preview": True,
             "base_versions": {c: seen[c] for c in ("EV1001001", "EV1001002")}}
    zh = client.post("/api/changes", json=merge, headers=planner).get_json()
    en = client.post("/api/changes?lang=en", json=merge, headers=planner).get_json()
    assert zh["notes"] == ["EV1001002 并入 EV1001001"] and en["notes"] == ["EV1001002 merge into EV1001001"]
    merge.pop("preview")
    assert client.post("/api/changes", json=merge, headers=planner).status_code == 201

    def workload(lang: str) -> str:
        body = client.get(f"/api/areas/EV1001/problems?lang={lang}").get_json()
        return next(f["properties"]["message"] for f in body["features"]
                    if f["properties"]["kind"] == "workload" and f["properties"]["codes"] == ["EV1001001"])

    assert workload("zh") == "EV1001001 有 660 户；城市网格标准为 300–500 户"
    assert workload("en") == "EV1001001 has 660 households; the urban norm is 300–500"
    # The history, too.
    assert client.get("/api/changes?area=EV1001&lang=zh").get_json()["changes"][0]["notes"] == \
        ["EV1001002 并入 EV1001001"]
    assert client.get("/api/changes?area=EV1001&lang=en").get_json()["changes"][0]["notes"] == \
        ["EV1001002 merge into EV1001001"]


def _upload_named(client, headers, name, content: bytes, **form):
    data = {"file": (io.BytesIO(content), name), **{k: str(v) for k, v in form.items()}}
    return client.post("/api/areas/import", data=data, headers=headers,
                       content_type="multipart/form-data")


def test_a_refused_import_speaks_in_form_fields_and_the_uploads_own_name(client, login):
    login("admin")
    headers = csrf(client)
    twice = json.dumps({"type": "FeatureCollection", "features": [
        feature("HD1", square(34.0, 34.0)), feature("HD1", square(34.01, 34.0))]}).encode()
    refused = _upload_named(client, headers, "村界 草稿.geojson", twice, level=1)
    error = assert_error_shape(refused, 422, "file")
    said = json.dumps(error, ensure_ascii=False)
    assert "村界 草稿.geojson" in error["message"] and error["details"]["path"] == "村界 草稿.geojson"
    assert "/tmp" not in said and "upload" not in said and "--" not in said
    assert "merge_duplicates=1" in error["message"] and "skip_bad=1" in error["message"]
    assert error["details"]["errors"][0]["ways"] == [{"merge_duplicates": True}, {"skip_bad": True}]
    # The way through, taken as the report words it, imports the file.
    done = _upload_named(client, headers, "村界 草稿.geojson", twice, level=1, merge_duplicates=1)
    assert done.status_code == 201 and done.get_json()["merged"][0]["code"] == "HD1"
    unreadable = _upload_named(client, headers, "坏的.gpkg", b"not a geopackage", level=1)
    error = assert_error_shape(unreadable, 400, "file")
    assert "坏的.gpkg" in error["message"] and "/tmp" not in error["message"]
    parentless = _upload_named(client, headers, "grids.geojson", twice, level=2)
    error = assert_error_shape(parentless, 400, "parent")
    assert "parent_by_location=1" in error["message"] and "--" not in error["message"]
    assert {"parent_by_location": True} in error["details"]["ways"]


def test_a_datav_parent_object_over_http(client, login, session):
    login("admin")
    headers = csrf(client)
    session.execute(text("INSERT INTO areas (code, name, level, geom) VALUES ('210200', '大连市', 1, "
                         "ST_Multi(ST_MakeEnvelope(121.5, 38.8, 121.8, 39.1, 4326)))"))
    datav = json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"adcode": 210202, "name": "中山区", "parent": {"adcode": 210200}},
        "geometry": {"type": "Polygon", "coordinates": [[[121.5, 38.8], [121.8, 38.8], [121.8, 39.1],
                                                         [121.5, 39.1], [121.5, 38.8]]]}}]}).encode()
    refused = _upload_named(client, headers, "dalian.json", datav, level=2, code_field="adcode")
    error = assert_error_shape(refused, 422, "file")
    assert "parent_field=parent.adcode" in error["message"]
    done = _upload_named(client, headers, "dalian.json", datav, level=2, code_field="adcode",
                         parent_field="parent.adcode")
    assert done.status_code == 201, done.get_data(as_text=True)


def test_xlsx_export_comes_back_through_the_import(client, login, region):
    login("admin")
    headers = csrf(client)
    sheet = client.get("/api/areas/export?level=4&parent=EV1001&format=xlsx")
    assert sheet.status_code == 200 and sheet.data[:2] == b"PK"
    assert sheet.headers["Content-Disposition"].endswith('.xlsx"')
    again = _upload_named(client, headers, "grids.xlsx", sheet.data, level=4, dry_run=1)
    error = assert_error_shape(again, 422, "file")
    assert {e["kind"] for e in error["details"]["errors"]} == {"code_exists"}
    assert "code_prefix=PREFIX" in error["message"]
