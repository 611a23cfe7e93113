"""Test fixtures: a real PostGIS (the embedded cluster's `anwang_test` database, or DATABASE_URL),
the schema created once per session, the 郾城区 demo loaded once when a test asks for it, and a
rolled-back transaction around every test (code that commits only releases a savepoint).
"""
from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

TEST_DB = os.environ.get("ANWANG_TEST_DB", "anwang_test")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"

# Everything the process starts (the CLI under test included) uses the test database.
os.environ.setdefault("ANWANG_DB_NAME", TEST_DB)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def database_url() -> str:
    from geo import settings
    from geo.cluster import Cluster

    url = settings.database_url()
    if url:
        return url
    cluster = Cluster.default()
    cluster.start()
    cluster.drop_database(TEST_DB)
    cluster.ensure_database(TEST_DB)
    return cluster.url(TEST_DB)


@pytest.fixture(scope="session")
def engine(database_url):
    from geo import db

    eng = db.make_engine(database_url)
    db.migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def demo(engine):
    """The 郾城区 demo, generated and committed once for the whole session; returns the Demo."""
    from data import load, yancheng
    from geo import db

    generated = yancheng.generate()
    with db.session_scope(engine) as s:
        if not load.is_loaded(s):
            load.load(s, generated)
    return generated


@pytest.fixture()
def connection(engine):
    conn = engine.connect()
    trans = conn.begin()
    yield conn
    trans.rollback()
    conn.close()


@pytest.fixture()
def session(connection) -> Session:
    """A session inside the test's transaction; its commits become savepoints."""
    s = Session(bind=connection, join_transaction_mode="create_savepoint")
    yield s
    s.close()


@pytest.fixture()
def app(connection, database_url):
    from web import create_app

    application = create_app({"TESTING": True, "SECRET_KEY": "test-secret",
                              "DATABASE_URL": database_url, "BASEMAP": "none"})
    ext = application.extensions["anwang"]
    ext["engine"] = connection.engine
    ext["sessionmaker"] = sessionmaker(bind=connection, join_transaction_mode="create_savepoint",
                                       expire_on_commit=False)
    return application


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def make_user(session):
    """Create a user in the test transaction: make_user(role, scope=None) -> (username, password)."""
    from geo import audit, users

    counter = iter(range(1000))

    def make(role: str, scope: str | None = None, password: str = "correct horse 1") -> tuple[str, str]:
        name = f"t_{role}_{next(counter)}"
        if scope is None and role != "admin":
            scope = session.execute(text("SELECT code FROM areas ORDER BY level, code LIMIT 1")).scalar()
        users.add_user(session, audit.Actor("test"), name, role, password=password,
                       scopes=[scope] if scope else None)
        session.flush()
        return name, password

    return make


def sign_in(client, session, username: str) -> str:
    """Give a test client a live server-side session of `username` (no password check); its key."""
    from geo import logins
    from geo.users import principal_of
    from web.auth import SESSION_KEY

    row = session.execute(text("SELECT id, username, role, display_name FROM users "
                               "WHERE username = :u"), {"u": username}).mappings().one()
    key = logins.open_session(session, principal_of(session, row))
    session.flush()
    with client.session_transaction() as sess:
        sess[SESSION_KEY] = key
    return key


@pytest.fixture()
def login(client, make_user, session):
    """Log the test client in with a new user of `role`; return the username."""
    def do(role: str = "admin", scope: str | None = None) -> str:
        name, _ = make_user(role, scope)
        sign_in(client, session, name)
        return name

    return do


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The third-party reference sets (tests/data/realdata, or ANWANG_REALDATA)."""
    from geo import settings

    path = settings.realdata_dir()
    if not path.is_dir():
        pytest.fail(f"real data folder {path} is missing (the repository carries tests/data/realdata)")
    return path


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture()
def tiny(session):
    """A hand-made 4-level region of boxes near (10°E, 10°N): codes TZ, TZ1…, exact partition.

    TZ (district) → TZ1, TZ2 (west/east halves) → TZ1A, TZ1B (south/north) → TZ1A1, TZ1A2 (west/east).
    """
    from tests import town

    return town.add_tiny(session)


def fresh_database(engine, suffix: str):
    """An empty, migrated database beside the test database; its engine (see drop_database)."""
    from geo import db

    name = f"{TEST_DB}_{suffix}"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    other = db.make_engine(engine.url.set(database=name))
    db.migrate(other)
    return other


def drop_database(engine, other) -> None:
    """Close and drop a database made by fresh_database."""
    other.dispose()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{other.url.database}"'))


@pytest.fixture(scope="session")
def lone_engine(engine):
    """A second, empty test database for one jurisdiction at a time, as a deployment holds: the
    shared one gathers regions far apart (the demo, the tiny town, the planner's), too spread out
    for one grid lookup over them all."""
    lone = fresh_database(engine, "lone")
    yield lone
    drop_database(engine, lone)


@pytest.fixture()
def lone(lone_engine) -> Session:
    """A session in the second database, inside a transaction rolled back after the test."""
    conn = lone_engine.connect()
    trans = conn.begin()
    s = Session(bind=conn, join_transaction_mode="create_savepoint")
    yield s
    s.close()
    trans.rollback()
    conn.close()


@pytest.fixture()
def lone_client(lone):
    """A test client of an app on the second database, inside `lone`'s transaction (its commits
    become savepoints), for pages that serve one home jurisdiction."""
    from web import create_app

    conn = lone.get_bind()
    application = create_app({"TESTING": True, "SECRET_KEY": "test-secret", "BASEMAP": "none",
                              "DATABASE_URL": conn.engine.url.render_as_string(hide_password=False)})
    ext = application.extensions["anwang"]
    ext["engine"] = conn.engine
    ext["sessionmaker"] = sessionmaker(bind=conn, join_transaction_mode="create_savepoint",
                                       expire_on_commit=False)
    return application.test_client()


# -- browser tests ---------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def live_server(engine, demo, database_url):
    """live_server(BASEMAP="none", ...) -> base URL of the app on a free local port.

    The app has its own engine on the committed test database (the demo); one server per distinct
    configuration, all stopped at the end of the session.
    """
    from werkzeug.serving import make_server

    from web import create_app

    servers = {}

    def start(**config) -> str:
        key = tuple(sorted(config.items()))
        if key not in servers:
            app = create_app({"SECRET_KEY": "browser-test", "DATABASE_URL": database_url,
                              "BASEMAP": "none", **config})
            server = make_server("127.0.0.1", 0, app, threaded=True)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers[key] = server
        return f"http://127.0.0.1:{servers[key].server_port}"

    yield start
    for server in servers.values():
        server.shutdown()


@pytest.fixture(scope="session")
def browser_user(engine):
    """A committed admin for logging in through the real login page: (username, password)."""
    from geo import audit, db, users

    name, password = "browser_admin", "browser-pass-1"
    with db.session_scope(engine) as s:
        users.add_user(s, audit.Actor("test"), name, "admin", password=password, replace=True)
    yield name, password
    with db.session_scope(engine) as s:
        s.execute(text("DELETE FROM users WHERE username = :u"), {"u": name})


@pytest.fixture(scope="session")
def browser():
    """The system Chromium, headless, via Playwright (no browser download)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail("the system Chromium is missing: `make test-deps` installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync"])
        yield b
        b.close()
