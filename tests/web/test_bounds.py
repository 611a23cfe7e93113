"""Bounded work over HTTP: a cancelled statement answers 503 naming its bound; the limits answer
413/422 naming the limit and the field with the database unchanged; a large import runs as a
background job whose progress and outcome its owner (or an administrator) reads at /api/jobs/{id}."""
from __future__ import annotations

import gzip
import time
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from tests.geo import planner_fixtures
from tests.geo.planner_fixtures import feature, square
from tests.web.test_planner_api import TRANSFER, _upload, assert_error_shape, csrf

COUNTS = ("areas", "area_versions", "boundary_changes", "audit_log", "jobs")


@pytest.fixture()
def region(session):
    return planner_fixtures.build(session)


def _counts(session) -> dict:
    return {t: session.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in COUNTS}


def test_a_statement_over_the_timeout_answers_503_naming_it(app, client, connection):
    from web import database
    from web.auth import public

    @public
    def slow():
        database.session().execute(text("SELECT pg_sleep(5)"))
        return "never"

    app.add_url_rule("/api/test-slow", "test_slow", slow)
    connection.execute(text("SET LOCAL statement_timeout = '200ms'"))
    started = time.monotonic()
    response = client.get("/api/test-slow")
    assert time.monotonic() - started < 3
    error = assert_error_shape(response, 503)
    assert error["code"] == "statement_timeout" and "ANWANG_REQUEST_STATEMENT_TIMEOUT" in error["message"]
    assert response.headers["Retry-After"] == "5"
    connection.execute(text("SET LOCAL statement_timeout = 0"))


def test_change_geometry_and_body_limits_refuse_before_any_work(app, client, login, session, region):
    login("planner", "EV")
    headers = csrf(client)
    before = _counts(session)
    app.config["MAX_VERTICES"] = 4
    response = client.post("/api/changes", json={**TRANSFER, "reason": "测试", "preview": True}, headers=headers)
    error = assert_error_shape(response, 422, "geometry")
    assert error["code"] == "limit_exceeded" and "ANWANG_MAX_VERTICES" in error["message"]
    assert error["details"] == {"limit": "ANWANG_MAX_VERTICES", "max": 4, "got": 5}
    app.config["MAX_VERTICES"] = 100000
    app.config["MAX_CHANGE_BYTES"] = 200
    response = client.post("/api/changes", json={**TRANSFER, "reason": "测" * 100, "preview": True},
                           headers=headers)
    error = assert_error_shape(response, 413, "geometry")
    assert error["details"]["limit"] == "ANWANG_MAX_CHANGE_BYTES" and error["details"]["got"] > 200
    app.config["MAX_CHANGE_BYTES"] = 5000000
    ok = client.post("/api/changes", json={**TRANSFER, "reason": "测试", "preview": True}, headers=headers)
    assert ok.status_code == 200, ok.get_data(as_text=True)
    assert _counts(session) == before


def test_import_limits_answer_413_and_422_with_the_database_unchanged(app, client, login, session):
    login("admin")
    headers = csrf(client)
    before = _counts(session)
    app.config["MAX_IMPORT_FEATURES"] = 2
    features = [feature(f"LIM{i}", square(40.0 + i * 0.01, 40.0)) for i in range(3)]
    error = assert_error_shape(_upload(client, headers, features, level=1), 413, "file")
    assert error["code"] == "limit_exceeded" and "ANWANG_MAX_IMPORT_FEATURES" in error["message"]
    assert error["details"] == {"limit": "ANWANG_MAX_IMPORT_FEATURES", "max": 2, "got": 3}
    app.config["MAX_IMPORT_FEATURES"] = 20000
    app.config["MAX_VERTICES"] = 100
    ring = [[40.0 + 0.01 * i / 200, 40.0] for i in range(200)] + [[40.01, 40.01], [40.0, 40.01], [40.0, 40.0]]
    jagged = feature("LIMJ", [ring])
    error = assert_error_shape(_upload(client, headers, [features[0], jagged], level=1), 422, "file")
    assert error["details"] == {"limit": "ANWANG_MAX_VERTICES", "max": 100, "got": 203}
    assert "第 2 个要素" in error["message"]      # the page's language (Chinese by default)
    assert _counts(session) == before


# -- background imports: the app on the committed test database, its job on a thread of its own ---
@pytest.fixture()
def committed_app(engine, database_url):
    """An app on the committed test database and two committed users (an administrator and a
    planner) with a signed-in client each; everything they made is removed afterwards."""
    from geo import audit, db, logins, users
    from geo.users import principal_of
    from web import create_app
    from web.auth import SESSION_KEY

    app = create_app({"TESTING": True, "SECRET_KEY": "test-secret", "DATABASE_URL": database_url,
                      "BASEMAP": "none", "IMPORT_INLINE_FEATURES": 2})
    tag = uuid.uuid4().hex[:8]
    clients, ids = {}, []
    with db.session_scope(engine) as s:
        s.execute(text("INSERT INTO areas (code, name, level, geom) VALUES (:c, :n, 1, "
                       "ST_Multi(ST_MakeEnvelope(43, 43, 43.01, 43.01, 4326)))"), {"c": f"JOBS{tag}", "n": "作业测试"})
        for role in ("admin", "planner"):
            name = f"job_{role}_{tag}"
            scope = None if role == "admin" else f"JOBS{tag}"
            users.add_user(s, audit.Actor("test"), name, role, password="correct horse 1",
                           scopes=[scope] if scope else None)
            row = s.execute(text("SELECT id, username, role, display_name FROM users WHERE username = :u"),
                            {"u": name}).mappings().one()
            ids.append(row["id"])
            key = logins.open_session(s, principal_of(s, row))
            client = app.test_client()
            with client.session_transaction() as sess:
                sess[SESSION_KEY] = key
            clients[role] = client
    yield app, clients
    for thread in app.extensions["anwang"]["jobs"].values():
        thread.join(60)
    with db.session_scope(engine) as s:
        s.execute(text("DELETE FROM jobs WHERE owner_id = ANY(:u)"), {"u": ids})
        s.execute(text("DELETE FROM audit_log WHERE actor_id = ANY(:u)"), {"u": ids})
        s.execute(text("DELETE FROM users WHERE id = ANY(:u)"), {"u": ids})
        s.execute(text("DELETE FROM areas WHERE code = :c"), {"c": f"JOBS{tag}"})
    for key in ("engine", "import_engine"):
        if app.extensions["anwang"].get(key) is not None:
            app.extensions["anwang"][key].dispose()


def _wait(client, url: str) -> tuple[dict, list]:
    """Poll the job until it ends; the last answer and every progress seen on the way."""
    seen: list = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = client.get(url)
        assert response.status_code == 200, response.get_data(as_text=True)
        job = response.get_json()
        if job["progress"] and job["progress"] not in seen:
            seen.append(job["progress"])
        if job["status"] in ("done", "failed"):
            return job, seen
        time.sleep(0.05)
    raise AssertionError(f"job {url} did not end")


def test_a_large_import_runs_as_a_job_its_owner_follows(committed_app):
    app, clients = committed_app
    admin = clients["admin"]
    headers = csrf(admin)
    features = [feature(f"JOB{i}", square(41.0 + i * 0.01, 41.0)) for i in range(3)]
    answer = _upload(admin, headers, features, level=1, dry_run=1)
    assert answer.status_code == 202, answer.get_data(as_text=True)
    started = answer.get_json()
    assert started["status"] == "queued" and answer.headers["Location"] == started["url"]
    job, seen = _wait(admin, started["url"])
    assert job["status"] == "done" and job["kind"] == "areas.import" and job["error"] is None
    assert job["result"]["created"] == ["JOB0", "JOB1", "JOB2"] and job["result"]["dry_run"] is True
    assert job["progress"] == {"stage": "partition", "step": 4, "steps": 5}
    assert all(p["steps"] == 5 for p in seen) and [p["step"] for p in seen] == sorted(p["step"] for p in seen)
    # Only its owner, or an administrator over its area, reads it; nobody else learns it exists.
    other = clients["planner"]
    missing = other.get(started["url"])
    assert missing.status_code == 404 and missing.get_json()["error"]["field"] == "id"
    assert other.get("/api/jobs/999999999").status_code == 404
    assert app.test_client().get(started["url"]).status_code == 401


def test_a_refused_job_reports_the_import_error_and_writes_nothing(committed_app, engine):
    app, clients = committed_app
    admin = clients["admin"]
    overlapping = [feature(f"JOBX{i}", square(42.0, 42.0)) for i in range(3)]
    answer = _upload(admin, csrf(admin), overlapping + [{"type": "Feature", "properties": {"code": "JOBX0"},
                                                          "geometry": overlapping[0]["geometry"]}], level=1)
    assert answer.status_code == 202, answer.get_data(as_text=True)
    job, _ = _wait(admin, answer.get_json()["url"])
    assert job["status"] == "failed" and job["result"] is None
    assert job["error"]["code"] == "import_refused" and job["error"]["field"] == "file"
    assert job["error"]["details"]["errors"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM areas WHERE code LIKE 'JOBX%'")).scalar() == 0


def test_the_kept_area_layer_follows_every_change_it_shows(client, login, session, tiny):
    """/api/areas without a bbox is kept per process and scope, and rebuilt after any change to an
    area, its group or its staff, even one made by SQL in another transaction."""
    login("analyst", "TZ1")

    def grid(code):
        body = client.get("/api/areas?level=4&parent=TZ1").get_json()
        return next(f["properties"] for f in body["features"] if f["id"] == code)

    first = grid("TZ1A1")
    assert grid("TZ1A1") == first                     # the kept body
    session.execute(text("UPDATE areas SET name = '新名字' WHERE code = 'TZ1A1'"))
    assert grid("TZ1A1")["name"] == "新名字"
    person = session.execute(text("INSERT INTO people (name) VALUES ('网格员甲') RETURNING id")).scalar_one()
    before = grid("TZ1A1")["staff"]
    session.execute(text("INSERT INTO area_staff (area_id, person_id, role) "
                         "SELECT id, :p, 'worker' FROM areas WHERE code = 'TZ1A1'"), {"p": person})
    assert grid("TZ1A1")["staff"] == before + 1
    group = session.execute(text("INSERT INTO area_groups (parent_id, code, name) SELECT id, 'TZ1A-G1', '一组' "
                                 "FROM areas WHERE code = 'TZ1A' RETURNING id")).scalar_one()
    session.execute(text("UPDATE areas SET group_id = :g WHERE code = 'TZ1A1'"), {"g": group})
    assert grid("TZ1A1")["group"] == "一组"
    # Another scope's layer is its own: a user of TZ2 never gets TZ1's body.
    login("analyst", "TZ2")
    codes = {f["id"] for f in client.get("/api/areas?level=4").get_json()["features"]}
    assert codes and not any(c.startswith("TZ1") for c in codes)


def test_the_kept_incident_list_follows_every_change_it_shows(client, login, session, tiny):
    """/api/incidents is kept per process, audience and question, and answers the change after
    any write to an incident or an area — with one body per audience: an analyst never gets the
    dispatcher's exact point of a sensitive incident."""
    from tests.layers.incidents import add_incident

    when = datetime(2026, 5, 1, 8, tzinfo=UTC)
    quiet = add_incident(session, 10.005, 10.005, occurred_at=when, status="reported")
    hidden = add_incident(session, 10.006, 10.004, occurred_at=when, status="reported", sensitive=True)
    url = "/api/incidents?bbox=9.99,9.99,10.05,10.05&limit=50"

    def listed():
        return {f["id"]: f for f in client.get(url).get_json()["features"]}

    login("dispatcher", "TZ")
    first = listed()
    assert first[hidden]["geometry"]["coordinates"] == [10.006, 10.004]
    assert listed() == first                                   # the kept body
    session.execute(text("UPDATE incidents SET status = 'accepted' WHERE id = :i"), {"i": quiet})
    assert listed()[quiet]["properties"]["status"] == "accepted"
    session.execute(text("UPDATE areas SET name = '改名网格' WHERE code = 'TZ1A1'"))
    assert listed()[quiet]["properties"]["area_name"] == "改名网格"
    added = add_incident(session, 10.007, 10.006, occurred_at=when)
    assert added in listed()
    # Same question, other audience: its own body.
    login("analyst", "TZ")
    seen = listed()
    assert seen[hidden]["properties"]["generalised"] and seen[hidden]["geometry"]["coordinates"] != [10.006, 10.004]
    assert seen[hidden]["properties"]["address"] is None


def test_a_kept_list_is_sent_compressed_and_revalidated(client, login, tiny):
    login("analyst", "TZ")
    for url in ("/api/areas?level=4", "/api/incidents?bbox=9.99,9.99,10.05,10.05"):
        first = client.get(url, headers={"Accept-Encoding": "gzip"})
        assert first.status_code == 200
        etag = first.headers["ETag"]
        assert first.headers["Cache-Control"] == "private, no-cache"
        again = client.get(url, headers={"Accept-Encoding": "gzip", "If-None-Match": etag})
        assert again.status_code == 304 and again.data == b""
        plain = client.get(url)
        assert "Content-Encoding" not in plain.headers and plain.get_json()["type"] == "FeatureCollection"
        if len(plain.data) >= 1024:
            assert first.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(first.data) == plain.data
