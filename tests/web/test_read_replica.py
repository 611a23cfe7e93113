"""A streaming read replica: routed reads are answered by the hot standby, a user reads their own
save at once, and a replica that falls behind is passed over for the primary.

Two clusters of their own under a temporary folder: a primary (migrated, with the tiny region)
and its replica made by `anwang db replica`'s code (pg_basebackup -R).
"""
from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from geo import audit, db, replica, settings, users
from geo.cluster import Cluster
from tests import town
from tests.incident_cases import VALID
from tests.scratch import cluster_folder
from web import create_app, database

pytestmark = pytest.mark.skipif(bool(settings.database_url()), reason="DATABASE_URL is set")
DB = "anwang"
MAX_LAG = 0.5


@pytest.fixture(scope="module")
def pair():
    """(primary, replica) clusters, the primary migrated with the tiny region and two users."""
    with cluster_folder("replica") as folder:
        yield from _pair(Cluster(folder / "var"))


def _pair(primary: Cluster):
    standby = replica.replica_of(primary)
    engine = None
    try:
        primary.start()
        primary.ensure_database(DB)
        engine = db.make_engine(primary.url(DB))
        db.migrate(engine)
        with db.session_scope(engine) as s:
            town.add_tiny(s)
            users.add_user(s, audit.Actor("test"), "dispatcher_pair", "dispatcher", password="correct horse 1",
                           scopes=["TZ"])
            users.add_user(s, audit.Actor("test"), "analyst_pair", "analyst", password="correct horse 1",
                           scopes=["TZ"])
        replica.create(primary, standby)
        standby.start()
        assert replica.status(primary, wait=30).state == "streaming"
        yield primary, standby
    finally:
        if engine is not None:
            engine.dispose()
        standby.stop()
        primary.stop()


@pytest.fixture()
def app(pair):
    primary, standby = pair
    application = create_app({"TESTING": True, "SECRET_KEY": "replica-test", "BASEMAP": "none",
                              "DATABASE_URL": primary.url(DB), "READ_DATABASE_URL": standby.url(DB),
                              "READ_MAX_LAG": MAX_LAG})
    yield application
    ext = application.extensions["anwang"]
    ext["router"].replica.dispose()
    ext["engine"].dispose()


def replay(standby: Cluster, action: str) -> None:
    with standby.connect(DB) as conn:
        conn.execute(f"SELECT pg_wal_replay_{action}()")


def caught_up(primary: Cluster, standby: Cluster, wait: float = 30) -> None:
    with primary.connect(DB) as conn:
        target = replica.lsn(conn.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()[0])
    deadline = time.monotonic() + wait
    with standby.connect(DB) as conn:
        while replica.lsn(conn.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()[0]) < target:
            assert time.monotonic() < deadline, "the replica did not catch up"
            time.sleep(0.05)


def served_by_replica(app) -> bool:
    """Whether a routed read of a request with nobody's saves behind it is answered by the replica."""
    with app.test_request_context():
        return database.read_session().execute(text("SELECT pg_is_in_recovery()")).scalar()


def log_in(app, pair, username: str):
    """A test client with a live session of `username` and the CSRF token the pages send."""
    from geo import logins
    from geo.users import principal_of
    from web.auth import SESSION_KEY

    engine = db.make_engine(pair[0].url(DB))
    with db.session_scope(engine) as s:
        row = s.execute(text("SELECT id, username, role, display_name FROM users WHERE username = :u"),
                        {"u": username}).mappings().one()
        key = logins.open_session(s, principal_of(s, row))
    engine.dispose()
    client = app.test_client()
    with client.session_transaction() as sess:
        sess[SESSION_KEY] = key
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return client, {"X-CSRFToken": token}


def test_routed_reads_are_answered_by_the_replica(app, pair):
    caught_up(*pair)
    with app.test_request_context():
        read = database.read_session()
        assert read.execute(text("SELECT pg_is_in_recovery()")).scalar() is True
        assert read.execute(text("SHOW application_name")).scalar() == "anwang-read"
        assert read.execute(text("SHOW transaction_read_only")).scalar() == "on"
        assert database.session().execute(text("SELECT pg_is_in_recovery()")).scalar() is False
        assert database.read_session() is read                       # one per request


def test_without_a_read_url_reads_share_the_primary_session(pair):
    plain = create_app({"TESTING": True, "SECRET_KEY": "x", "DATABASE_URL": pair[0].url(DB)})
    with plain.test_request_context():
        assert database.read_session() is database.session()
    plain.extensions["anwang"]["engine"].dispose()


def test_a_user_reads_their_own_save_while_the_replica_stands_still(app, pair):
    primary, standby = pair
    caught_up(primary, standby)
    client, csrf = log_in(app, pair, "dispatcher_pair")
    before = client.get("/api/heat?area=TZ").get_json()["n"]
    replay(standby, "pause")
    try:
        report = {**VALID, "occurred_at": datetime.now(UTC).isoformat()}
        saved = client.post("/api/incidents", json=report, headers=csrf)
        assert saved.status_code == 201, saved.get_json()
        # The very next read, and the ones after, see the save (the replica has not replayed it).
        assert client.get("/api/heat?area=TZ").get_json()["n"] == before + 1
        time.sleep(MAX_LAG / 2)
        assert client.get("/api/heat?area=TZ").get_json()["n"] == before + 1
        # Anyone's read, once the replica is more than the allowed lag behind, goes to the primary.
        time.sleep(MAX_LAG * 1.2)
        assert served_by_replica(app) is False
        other, _ = log_in(app, pair, "analyst_pair")
        assert other.get("/api/heat?area=TZ").get_json()["n"] == before + 1
    finally:
        replay(standby, "resume")
    caught_up(primary, standby)
    assert served_by_replica(app) is True
    assert client.get("/api/heat?area=TZ").get_json()["n"] == before + 1


def test_an_unreachable_replica_is_passed_over(pair):
    primary, standby = pair
    broken = create_app({"TESTING": True, "SECRET_KEY": "x", "DATABASE_URL": primary.url(DB),
                         "READ_DATABASE_URL": standby.url(DB).replace(str(standby.socket_dir), "/nonexistent")})
    with broken.test_request_context():
        assert database.read_session() is database.session()
    broken.extensions["anwang"]["engine"].dispose()


def test_db_replica_reports_the_replica_and_its_url(pair, monkeypatch):
    from click.testing import CliRunner

    from web.cli import main

    primary, standby = pair
    monkeypatch.setenv("ANWANG_VAR", str(primary.root))
    monkeypatch.setenv("ANWANG_DB_NAME", DB)
    monkeypatch.delenv("ANWANG_DB_PORT", raising=False)
    result = CliRunner().invoke(main, ["db", "replica"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "already running" in result.output and "replication: streaming" in result.output
    assert f"ANWANG_READ_URL='{standby.libpq_url(DB)}'" in result.output


def test_the_horizon_keeps_a_lagging_replica_within_the_lag():
    """The position a replica must have replayed is the primary's of between max_lag/2 and max_lag
    ago when known, else a younger one: never older than max_lag."""
    now = [100.0]
    positions = iter(range(1000, 100000, 1000))

    class Fake(replica.ReadRouter):
        def primary_position(self):
            with self._lock:
                self._samples.append((self.clock(), next(positions)))
            return self._samples[-1][1]

    router = Fake(None, None, max_lag=1.0, clock=lambda: now[0])
    assert router.horizon() == 1000                     # the first sample, taken now
    now[0] += 0.2
    assert router.horizon() == 1000                     # fresh enough: the primary is not asked
    now[0] += 0.4                                       # 0.6 s after the first
    assert router.horizon() == 1000 and len(router._samples) == 2
    now[0] += 0.6                                       # the first is too old now
    assert router.horizon() == 2000
