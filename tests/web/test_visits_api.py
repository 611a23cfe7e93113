"""Households, 走访 visits and the idempotent writes a phone's offline queue relies on: each record
stored once however often it is sent, a different body under a used key refused, a 回访 that arrives
after its matter was closed answered in words, identity generalised for readers that do not act."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from tests import town
from tests.incident_cases import VALID
from tests.web.test_incidents_api import Api, count


@pytest.fixture()
def api(client):
    return Api(client)


@pytest.fixture()
def homes(session, tiny):
    town.build(session)
    ids = []
    for n, (code, lon) in enumerate((("TZ1A1", 10.004), ("TZ1A1", 10.006), ("TZ2B1", 10.03))):
        ids.append(session.execute(text("""
            INSERT INTO households (grid_id, number, head_name, phone, id_number, members, address, geom)
            VALUES ((SELECT id FROM areas WHERE code = :c), :n, '王建国', '13800001234',
                    '411103198001011234', 3, '幸福路8号', ST_SetSRID(ST_MakePoint(:x, 10.01), 4326))
            RETURNING id"""), {"c": code, "n": f"{n + 1:04d}", "x": lon}).scalar_one())
    return ids


def visit(**changes) -> dict:
    return {"kind": "home", "occurred_at": "2026-11-02T10:00:00+08:00", "notes": "了解家庭情况",
            **changes}


def send(api, body, key=None, url="/api/visits"):
    headers = {"Idempotency-Key": key} if key else {}
    return api.client.post(url, json=body, headers={**api._headers(), **headers})


def test_a_visit_sent_twice_is_stored_once(api, login, homes, session):
    login("grid_worker", "TZ1A1")
    key = str(uuid.uuid4())
    first = send(api, visit(household_id=homes[0]), key)
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["replayed"] is False and first.get_json()["grid_code"] == "TZ1A1"
    before = count(session, "visits"), count(session, "audit_log")
    again = send(api, visit(household_id=homes[0]), key)
    assert again.status_code == 200 and again.get_json()["replayed"] is True
    assert again.get_json()["id"] == first.get_json()["id"]
    assert (count(session, "visits"), count(session, "audit_log")) == before
    other = send(api, visit(household_id=homes[1]), key)
    assert other.status_code == 409 and other.get_json()["error"]["field"] == "Idempotency-Key"
    assert (count(session, "visits"), count(session, "audit_log")) == before
    bad = send(api, visit(household_id=homes[1]), "not-a-uuid")
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "Idempotency-Key"


def test_the_same_key_from_another_user_is_another_record(api, login, homes, session):
    key = str(uuid.uuid4())
    before = count(session, "visits")
    login("grid_worker", "TZ1A1")
    assert send(api, visit(household_id=homes[0]), key).status_code == 201
    api.token = None
    login("dispatcher", "TZ")
    assert send(api, visit(household_id=homes[0]), key).status_code == 201
    assert count(session, "visits") == before + 2


def test_a_report_sent_twice_is_stored_once(api, login, homes, session):
    login("grid_worker", "TZ1A1")
    key = str(uuid.uuid4())
    first = send(api, VALID, key, "/api/incidents")
    assert first.status_code == 201 and first.get_json()["replayed"] is False
    before = count(session, "incidents"), count(session, "incident_events")
    again = send(api, VALID, key, "/api/incidents")
    assert again.status_code == 200 and again.get_json()["replayed"] is True
    assert again.get_json()["id"] == first.get_json()["id"]
    assert (count(session, "incidents"), count(session, "incident_events")) == before
    changed = send(api, {**VALID, "description": "另一件事"}, key, "/api/incidents")
    assert changed.status_code == 409 and changed.get_json()["error"]["field"] == "Idempotency-Key"
    assert count(session, "incidents") == before[0]


def test_an_issue_found_on_a_visit_becomes_an_incident_in_the_same_step(api, login, homes, session):
    login("grid_worker", "TZ1A1")
    r = send(api, visit(lon=10.005, lat=10.012, issues=[
        {"category": "矛盾纠纷", "severity": 2, "description": "邻里宅基地纠纷", "report": True},
        {"category": "hazard", "description": "楼道堆放杂物"}]))
    assert r.status_code == 201, r.get_json()
    issues = r.get_json()["issues"]
    assert issues[0]["incident_id"] and "incident_id" not in issues[1]
    row = session.execute(text("SELECT category, grid_id = (SELECT id FROM areas WHERE code = 'TZ1A1'), "
                               "source FROM incidents WHERE id = :i"),
                          {"i": issues[0]["incident_id"]}).one()
    assert tuple(row) == ("dispute", True, "走访")


def test_a_bad_issue_stores_nothing(api, login, homes, session):
    login("grid_worker", "TZ1A1")
    before = count(session, "visits"), count(session, "incidents"), count(session, "audit_log")
    r = send(api, visit(lon=10.005, lat=10.012, issues=[
        {"category": "dispute", "report": True}, {"category": "外星人", "report": True}]))
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "issues[1].category"
    assert (count(session, "visits"), count(session, "incidents"), count(session, "audit_log")) == before


def test_a_place_outside_the_workers_grids_names_the_grid_it_fell_in(api, login, homes, session):
    login("grid_worker", "TZ1A1")
    before = count(session, "visits")
    r = send(api, visit(lon=10.015, lat=10.005))
    assert r.status_code == 403 and r.get_json()["error"]["field"] == "location"
    assert "TZ1A2" in r.get_json()["error"]["message"]
    assert send(api, visit(household_id=homes[2])).status_code == 403
    assert count(session, "visits") == before


@pytest.mark.parametrize("changes,field", [
    ({"kind": "visiting"}, "kind"), ({"occurred_at": "yesterday"}, "occurred_at"),
    ({"occurred_at": "2099-01-01T00:00:00Z"}, "occurred_at"), ({"kind": "follow_up"}, "incident_id"),
    ({"incident_id": 5}, "incident_id"), ({"people": 0}, "people"), ({"notes": ["x"]}, "notes"),
    ({"lon": 200, "lat": 10}, "lon"), ({}, "location"), ({"household_id": "x"}, "household_id"),
    ({"household_id": 987654321}, "household_id"),
    ({"issues": "many", "lon": 10.005, "lat": 10.01}, "issues")])
def test_bad_visits_are_a_4xx_naming_the_field(api, login, homes, session, changes, field):
    login("grid_worker", "TZ1A1")
    before = count(session, "visits")
    r = send(api, visit(**changes))
    assert r.status_code in (400, 404), r.get_json()
    assert r.get_json()["error"]["field"] == field
    assert count(session, "visits") == before


def _resolved(session, grid="TZ1A1") -> int:
    return session.execute(text("""
        INSERT INTO incidents (category, status, occurred_at, resolved_at, resolution_level, geom, grid_id,
                               area_id)
        VALUES ('dispute', 'resolved', now() - interval '3 days', now() - interval '1 day', 'group',
                ST_SetSRID(ST_MakePoint(10.005, 10.01), 4326), (SELECT id FROM areas WHERE code = :g),
                (SELECT id FROM areas WHERE code = :g))
        RETURNING id"""), {"g": grid}).scalar_one()


def test_a_follow_up_visit_is_what_follows_a_matter_up(api, login, homes, session):
    login("grid_worker", "TZ1A1")
    matter = _resolved(session)
    said = api.post(f"/api/incidents/{matter}/transitions", json={"to": "followed_up"})
    assert said.status_code == 400 and said.get_json()["error"]["field"] == "to"
    r = send(api, visit(kind="回访", incident_id=matter, notes="当事人表示满意"))
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["kind"] == "follow_up" and r.get_json()["grid_code"] == "TZ1A1"
    status = session.execute(text("SELECT status FROM incidents WHERE id = :i"), {"i": matter}).scalar()
    assert status == "followed_up"
    assert api.post(f"/api/incidents/{matter}/transitions", json={"to": "closed"}).status_code == 200


def test_a_follow_up_of_a_matter_closed_meanwhile_is_a_conflict_in_words(api, login, homes, session):
    login("grid_worker", "TZ1A1")
    matter = _resolved(session)
    session.execute(text("UPDATE incidents SET status = 'closed', closed_at = now() WHERE id = :i"),
                    {"i": matter})
    key = str(uuid.uuid4())
    before = count(session, "visits")
    r = send(api, visit(kind="follow_up", incident_id=matter), key)     # Chinese by default
    assert r.status_code == 409 and r.get_json()["error"]["field"] == "incident_id"
    assert f"事项{matter}已由" in r.get_json()["error"]["message"]
    en = api.client.post("/api/visits?lang=en", json=visit(kind="follow_up", incident_id=matter),
                         headers={**api._headers(), "Idempotency-Key": key})
    assert en.status_code == 409 and f"Matter {matter} was closed" in en.get_json()["error"]["message"]
    assert count(session, "visits") == before
    reopened = _resolved(session)
    session.execute(text("UPDATE incidents SET status = 'handling' WHERE id = :i"), {"i": reopened})
    assert send(api, visit(kind="follow_up", incident_id=reopened)).status_code == 409


def test_households_identity_follows_the_audience(api, login, homes):
    login("grid_worker", "TZ1A1")
    exact = api.get("/api/households?grid=TZ1A1").get_json()
    assert exact["identity"] == "exact" and exact["total"] == 2
    assert exact["households"][0]["head_name"] == "王建国"
    assert exact["households"][0]["id_number"] == "411103198001011234"
    assert api.get("/api/households?grid=TZ2B1").status_code == 403
    assert api.get("/api/households").get_json()["error"]["field"] == "grid"
    login("analyst", "TZ")
    body = api.get("/api/households?grid=TZ1A1").get_data(as_text=True)
    assert "王建国" not in body and "13800001234" not in body and "198001011234" not in body
    assert "幸福路" not in body and "10.004" not in body
    first = api.get("/api/households?grid=TZ1A1").get_json()["households"][0]
    assert first["head_name"] == "王某" and first["phone"].startswith("138")


def test_coverage_per_grid_and_worker_and_the_day(api, login, homes, session):
    name = login("grid_worker", "TZ1A")
    month = "2026-11"
    for h in homes[:2]:
        assert send(api, visit(household_id=h)).status_code == 201
    assert send(api, visit(household_id=homes[0], occurred_at="2026-11-03T10:00:00+08:00")).status_code == 201
    cov = api.get(f"/api/visits/coverage?month={month}").get_json()
    a1 = next(g for g in cov["grids"] if g["code"] == "TZ1A1")
    assert (a1["households"], a1["visited"], a1["visits"], a1["share"]) == (2, 2, 3, 100.0)
    assert {g["code"] for g in cov["grids"]} == {"TZ1A1", "TZ1A2"}
    assert cov["workers"][0]["worker"] == name and cov["workers"][0]["visits"] == 3
    listed = api.get(f"/api/visits?grid=TZ1A1&month={month}").get_json()["visits"]
    assert len(listed) == 3 and listed[0]["household_head"] == "王建国"
    assert api.get("/api/visits?month=2026-13").get_json()["error"]["field"] == "month"
    day = api.get("/api/me/day").get_json()
    assert {g["code"] for g in day["grids"]} == {"TZ1A1", "TZ1A2"}
    assert all(g["due_today"] >= 0 for g in day["grids"])


@pytest.fixture()
def committed_grid(engine):
    """A grid committed (the CLI runs its own transaction), removed afterwards."""
    from geo import db

    with db.session_scope(engine) as s:
        s.execute(text("INSERT INTO areas (code, name, level, geom) VALUES ('CLIHG', '导入测试网格', 4, "
                       "ST_Multi(ST_MakeEnvelope(20, 20, 20.01, 20.01, 4326)))"))
    yield "CLIHG"
    with db.session_scope(engine) as s:
        s.execute(text("DELETE FROM audit_log WHERE action = 'households.import'"))
        s.execute(text("DELETE FROM areas WHERE code = 'CLIHG'"))   # its households cascade


def test_cli_imports_households_with_chinese_headers(engine, committed_grid, tmp_path):
    from click.testing import CliRunner

    from web.cli import main

    def write(name: str, rows: list[str]):
        path = tmp_path / name
        path.write_text("网格编码,户号,户主姓名,联系电话,身份证号,人口数,地址,经度,纬度\n" + "\n".join(rows),
                        encoding="utf-8-sig")
        return str(path)

    def stored():
        with engine.connect() as conn:
            return conn.execute(text("SELECT h.number, h.head_name, h.members FROM households h "
                                     "JOIN areas g ON g.id = h.grid_id WHERE g.code = 'CLIHG' "
                                     "ORDER BY h.number")).all()

    bad = write("bad.csv", ["CLIHG,0001,李四,13800000001,411103198001011234,3,一号,20.005,20.005",
                            "CLIHG,0002,王五,13800000002,12345,2,二号,,",
                            "NOPE,0003,赵六,,,1,三号,,"])
    result = CliRunner().invoke(main, ["households", "import", bad], catch_exceptions=False)
    assert result.exit_code == 1 and "line 3 (id_number)" in result.output
    assert "line 4 (grid)" in result.output and stored() == []
    good = write("good.csv", ["CLIHG,0001,李四,13800000001,411103198001011234,3,一号,20.005,20.005",
                              "CLIHG,0002,王五,13800000002,,2,二号,,"])
    result = CliRunner().invoke(main, ["households", "import", good], catch_exceptions=False)
    assert result.exit_code == 0 and "imported 2 new" in result.output
    again = write("again.csv", ["CLIHG,0002,王五,13800000002,,4,二号,,"])
    result = CliRunner().invoke(main, ["households", "import", again], catch_exceptions=False)
    assert "updated 1" in result.output
    assert [tuple(r) for r in stored()] == [("0001", "李四", 3), ("0002", "王五", 4)]
