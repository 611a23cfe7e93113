"""Every refusal the planner can meet reaches the page in the page's language: each kind of error
of the change, lock, history and import endpoints, asked in Chinese and in English, and every
message the planner's modules can raise has its Chinese in the catalogue."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po
from sqlalchemy import text

from tests.geo import planner_fixtures
from tests.geo.planner_fixtures import feature, square
from tests.web.test_planner_api import TRANSFER, csrf, versions

ROOT = Path(__file__).resolve().parents[2]
# The modules whose messages a planner meets: the change sets and their checks, locks, history,
# import and export, the scope and input checks they go through, and the blueprint.
PLANNER_MODULES = [*sorted((ROOT / "geo" / "boundaries").glob("*.py")),
                   *(ROOT / "geo" / f"{m}.py" for m in ("policy", "inputs", "limits", "areas")),
                   ROOT / "web" / "planner.py"]
# Two English words in a row: a sentence left untranslated (a code, a field or a file format on
# its own is not one).
SENTENCE = re.compile(r"[A-Za-z]{2,}[ \-][A-Za-z]{2,}")
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture()
def region(session):
    return planner_fixtures.build(session)


def _outline(session, code: str) -> dict:
    return json.loads(session.execute(text("SELECT ST_AsGeoJSON(ST_GeometryN(geom, 1)) FROM areas "
                                           "WHERE code = :c"), {"c": code}).scalar_one())


def _change(base: dict, **body) -> dict:
    return {**body, "base_versions": {c: base[c] for c in body["areas"] if c in base}}


def _upload(name: str, content: bytes, **form):
    """The request keywords of an upload, made afresh for each request (a file is read once)."""
    return lambda: {"data": {"file": (io.BytesIO(content), name), **{k: str(v) for k, v in form.items()}},
                    "content_type": "multipart/form-data"}


def _cases(client, session, login, make_user, monkeypatch) -> list[tuple]:
    """(kind, method, url, request keywords, status, field) for every refusal, as one planner (in
    EV1001 and EV1002) meets them; the requests that need a state set it up first."""
    seen = versions(client) | versions(client, "EV1002")
    line = {"type": "LineString", "coordinates": [[20.001, 20.008], [20.005, 20.009]]}
    far = {"type": "Polygon", "coordinates": square(30.0, 30.0)}
    committed = client.post("/api/changes", json={**_change(seen, **TRANSFER), "reason": "先前的划转"},
                            headers=csrf(client))
    assert committed.status_code == 201, committed.get_data(as_text=True)
    done = committed.get_json()["change_id"]
    reverted = client.post(f"/api/changes/{done}/revert", json={"reason": "撤回划转"}, headers=csrf(client))
    assert reverted.status_code == 201, reverted.get_data(as_text=True)
    # A lock someone else holds, on the other village.
    holder, _ = make_user("planner", "EV")
    session.execute(text("INSERT INTO area_locks (area_id, user_id, username, acquired_at, expires_at) "
                         "SELECT a.id, u.id, u.username, now(), now() + interval '10 minutes' "
                         "FROM areas a, users u WHERE a.code = 'EV1002' AND u.username = :u"), {"u": holder})
    session.flush()
    monkeypatch.setitem(client.application.config, "MAX_VERTICES", 50)
    many = {"type": "LineString", "coordinates": [[20.0 + i * 1e-4, 20.0] for i in range(60)]}
    outline = _outline(session, "EV1001003")
    twice = json.dumps({"type": "FeatureCollection", "features": [
        feature("HD1", square(34.0, 34.0)), feature("HD1", square(34.01, 34.0))]}).encode()
    swapped = json.dumps({"type": "FeatureCollection", "features": [
        feature("SW1", square(20.01, 20.01)), feature("SW2", square(20.01, 100.0))]}).encode()
    post = "POST"
    return [
        ("unknown op", post, "/api/changes", {"json": {"op": "fly", "areas": ["EV1001001"]}}, 400, "op"),
        ("areas not a list", post, "/api/changes", {"json": {"op": "merge", "areas": "EV1001001"}}, 400, "areas"),
        ("area named twice", post, "/api/changes",
         {"json": {"op": "merge", "areas": ["EV1001001", "EV1001001"], "preview": True}}, 400, "areas"),
        ("not an area code", post, "/api/changes",
         {"json": {"op": "merge", "areas": ["EV 1001"], "preview": True}}, 400, "areas"),
        ("no such area", post, "/api/changes",
         {"json": {"op": "merge", "areas": ["EV1001001", "NOPE"], "preview": True}}, 404, "areas"),
        ("reason missing", post, "/api/changes",
         {"json": _change(seen, op="merge", areas=["EV1001003", "EV1001004"])}, 400, "reason"),
        ("reason too long", post, "/api/changes",
         {"json": _change(seen, op="merge", areas=["EV1001003", "EV1001004"], reason="长" * 501)},
         400, "reason"),
        ("base versions missing", post, "/api/changes",
         {"json": {"op": "merge", "areas": ["EV1001003", "EV1001004"], "reason": "合并"}}, 400, "base_versions"),
        ("base versions not an object", post, "/api/changes",
         {"json": {"op": "merge", "areas": ["EV1001003", "EV1001004"], "reason": "合并",
                   "base_versions": [1]}}, 400, "base_versions"),
        ("base versions lacking an area", post, "/api/changes",
         {"json": {"op": "merge", "areas": ["EV1001003", "EV1001004"], "reason": "合并",
                   "base_versions": {"EV1001003": seen["EV1001003"]}}}, 400, "base_versions"),
        ("version not a number", post, "/api/changes",
         {"json": {"op": "merge", "areas": ["EV1001003", "EV1001004"], "reason": "合并",
                   "base_versions": {"EV1001003": "x", "EV1001004": 1}}}, 400, "base_versions"),
        ("stale version", post, "/api/changes",
         {"json": {**_change(seen, **TRANSFER), "reason": "基于旧版本的划转"}}, 409, "base_versions"),
        ("line does not cut the grid in two", post, "/api/changes",
         {"json": {"op": "split", "areas": ["EV1001003"], "preview": True, "geometry": line}}, 400, "geometry"),
        ("split of two areas", post, "/api/changes",
         {"json": {"op": "split", "areas": ["EV1001003", "EV1001004"], "preview": True, "geometry": line}},
         400, "areas"),
        ("split by a polygon", post, "/api/changes",
         {"json": {"op": "split", "areas": ["EV1001003"], "preview": True, "geometry": far}}, 400, "geometry"),
        ("geometry missing", post, "/api/changes",
         {"json": {"op": "split", "areas": ["EV1001003"], "preview": True}}, 400, "geometry"),
        ("geometry not GeoJSON", post, "/api/changes",
         {"json": {"op": "split", "areas": ["EV1001003"], "preview": True, "geometry": "{"}}, 400, "geometry"),
        ("coordinates swapped", post, "/api/changes",
         {"json": {"op": "split", "areas": ["EV1001003"], "preview": True,
                   "geometry": {"type": "LineString", "coordinates": [[20.0, 120.0], [20.1, 120.0]]}}},
         400, "geometry"),
        ("transfer of one area", post, "/api/changes",
         {"json": {"op": "transfer", "areas": ["EV1001003"], "preview": True, "geometry": far}}, 400, "areas"),
        ("transfer across villages", post, "/api/changes",
         {"json": {"op": "transfer", "areas": ["EV1001003", "EV1002001"], "preview": True, "geometry": far}},
         400, "areas"),
        ("transfer region outside the grid", post, "/api/changes",
         {"json": {"op": "transfer", "areas": ["EV1001003", "EV1001004"], "preview": True, "geometry": far}},
         400, "geometry"),
        ("merge of one area", post, "/api/changes",
         {"json": {"op": "merge", "areas": ["EV1001003"], "preview": True}}, 400, "areas"),
        ("merge of grids apart", post, "/api/changes",
         {"json": {"op": "merge", "areas": ["EV1001001", "EV1002002"], "preview": True}}, 400, "areas"),
        ("reshape to the same outline", post, "/api/changes",
         {"json": {"op": "reshape", "areas": ["EV1001003"], "preview": True, "geometry": outline}},
         400, "geometry"),
        ("reshape outside the grid", post, "/api/changes",
         {"json": {"op": "reshape", "areas": ["EV1001003"], "preview": True, "geometry": far}}, 400, "geometry"),
        ("partition with a piece under another", post, "/api/changes",
         {"json": {"op": "partition", "areas": ["EV1001"], "preview": True,
                   "geometry": {"type": "MultiPolygon", "coordinates": [square(20.001, 20.005)] * 2}}},
         400, "geometry"),
        ("partition of a grid's parent's parent", post, "/api/changes",
         {"json": {"op": "partition", "areas": ["EV1"], "preview": True, "geometry": far}}, 400, "areas"),
        ("move to the wrong level", post, "/api/changes",
         {"json": {"op": "move", "areas": ["EV1001003", "EV1"], "preview": True}}, 400, "areas"),
        ("move to its own village", post, "/api/changes",
         {"json": {"op": "move", "areas": ["EV1001003", "EV1001"], "preview": True}}, 400, "areas"),
        ("too many vertices", post, "/api/changes",
         {"json": {"op": "split", "areas": ["EV1001003"], "preview": True, "geometry": many}}, 422, "geometry"),
        ("outside the scope", post, "/api/changes",
         {"json": {"op": "merge", "areas": ["TZ1A1", "TZ1A2"], "preview": True}}, 403, "areas"),
        ("revert twice", post, f"/api/changes/{done}/revert", {"json": {"reason": "再撤回"}}, 409, None),
        ("no such change", post, "/api/changes/999999/revert", {"json": {"reason": "撤回"}}, 404, "id"),
        ("history without an area", "GET", "/api/changes", {}, 400, "area"),
        ("diff without versions", "GET", "/api/areas/EV1001001/diff?from=x&to=1", {}, 400, "from"),
        ("diff of a missing version", "GET", "/api/areas/EV1001001/diff?from=1&to=99", {}, 404, "version"),
        ("lock outside the scope", post, "/api/areas/TZ1A1/lock", {}, 403, "area"),
        ("releasing someone else's lock", "DELETE", "/api/areas/EV1002/lock", {}, 403, None),
        ("overriding a lock as a planner", "DELETE", "/api/areas/EV1002/lock?override=1", {}, 403, "override"),
        ("import without a file", post, "/api/areas/import", {"data": {}}, 400, "file"),
        ("import of a wrong kind of file", post, "/api/areas/import", _upload("村界.txt", b"x", level=4), 400, "file"),
        ("import without a level", post, "/api/areas/import",
         _upload("村界.geojson", twice, parent="EV1001"), 400, "level"),
        ("import of an unreadable file", post, "/api/areas/import",
         _upload("坏的.gpkg", b"not a geopackage", level=4, parent="EV1001"), 400, "file"),
        ("import at the wrong level", post, "/api/areas/import",
         _upload("村界.geojson", twice, level=4, parent="EV1"), 400, "parent"),
        ("import refused by its report", post, "/api/areas/import",
         _upload("村界.geojson", twice, level=4, parent="EV1001"), 422, "file"),
        ("import of swapped coordinates", post, "/api/areas/import", _upload("村界.geojson", swapped, level=4,
                                                                              parent="EV1001"), 422, "file"),
        ("export without a parent", "GET", "/api/areas/export", {}, 400, "parent"),
        ("export in an unknown format", "GET", "/api/areas/export?parent=EV1001&format=dwg", {}, 400, "format"),
    ]


def test_every_planner_refusal_reaches_the_page_in_its_language(client, session, login, make_user,
                                                                   region, tiny, monkeypatch):
    login("planner", "EV")
    headers = csrf(client)
    cases = _cases(client, session, login, make_user, monkeypatch)
    said = {}
    for kind, method, url, keywords, status, field in cases:
        answers = {}
        for lang in ("zh", "en"):
            joiner = "&" if "?" in url else "?"
            response = client.open(f"{url}{joiner}lang={lang}", method=method, headers=headers,
                                   **(keywords() if callable(keywords) else keywords))
            assert response.status_code == status, (kind, response.get_data(as_text=True))
            error = response.get_json()["error"]
            if field:
                assert error["field"] == field, (kind, error)
            # An import's report: each problem and its ways through, in the page's language too.
            problems = [e["message"] for e in error.get("details", {}).get("errors", [])]
            answers[lang] = " | ".join([error["message"], *problems])
        zh, en = answers["zh"], answers["en"]
        assert CJK.search(zh) and not SENTENCE.search(zh), (kind, zh)
        assert re.search(r"\b[a-z]{3,}\b", en) and zh != en, (kind, en)
        said[kind] = zh
    # The refusals a planner meets most, in the words a Chinese page shows.
    assert said["no such area"] == "没有编码为 'NOPE' 的区域"
    assert said["stale version"].startswith("您载入之后边界已被修改：EV1001001 现为第")
    assert "划转" in said["stale version"] and "先前的划转" in said["stale version"]
    assert said["reason too long"] == "reason 最多 500 个字符；收到 501 个"
    assert said["line does not cut the grid in two"].startswith("这条线没有把 EV1001003 一分为二")
    assert said["overriding a lock as a planner"] == "只有管理员才能解除他人的锁定"
    assert said["releasing someone else's lock"].startswith("EV1002 已被 t_planner_")
    assert len(said) >= 40, sorted(said)


def test_every_planner_message_has_its_chinese():
    catalogue = read_po((ROOT / "web/translations/zh/LC_MESSAGES/messages.po").open("rb"))
    missing = []
    for path in PLANNER_MODULES:
        for _line, template, _comments, _context in extract_from_file("python", str(path), keywords={"msg": None}):
            entry = catalogue.get(template)
            if entry is None or not entry.string:
                missing.append(f"{path.relative_to(ROOT)}: {template}")
    assert not missing, "\n".join(missing)
