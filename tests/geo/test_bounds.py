"""Bounded work in the core: each role of connection has its statement and lock timeouts, and the
limits on vertices and features refuse before any work."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from geo import db, limits
from geo.errors import TooComplex, TooLarge


def test_each_role_has_its_own_timeouts(database_url, monkeypatch):
    monkeypatch.setenv("ANWANG_REQUEST_STATEMENT_TIMEOUT", "1.5")
    monkeypatch.setenv("ANWANG_WRITER_LOCK_TIMEOUT", "0.25")
    seen = {}
    for role in db.ROLES:
        engine = db.make_engine(database_url, role=role, options="-c application_name=anwang-bounds")
        with engine.connect() as conn:
            seen[role] = tuple(conn.execute(text(f"SHOW {name}")).scalar()
                               for name in ("statement_timeout", "lock_timeout", "jit"))
        engine.dispose()
    assert seen == {"request": ("1500ms", "5s", "off"), "import": ("15min", "30s", "off"),
                    "cli": ("0", "1min", "off"), "writer": ("10s", "250ms", "off")}
    with pytest.raises(ValueError, match="connection role"):
        db.timeouts("viewer")


def test_a_statement_over_the_request_timeout_is_cancelled(database_url, monkeypatch):
    monkeypatch.setenv("ANWANG_REQUEST_STATEMENT_TIMEOUT", "0.3")
    engine = db.make_engine(database_url, role="request")
    try:
        started = time.monotonic()
        with engine.connect() as conn, pytest.raises(OperationalError) as caught:
            conn.execute(text("SELECT pg_sleep(5)"))
        assert time.monotonic() - started < 3
        assert db.cancelled(caught.value) == "statement_timeout"
        with engine.connect() as conn:            # the pool's next connection works as before
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_the_position_writer_gives_up_on_a_lock(engine, monkeypatch):
    """A migration holding `units` must not hold the devices' pings behind it for long."""
    from geo.patrol import fixes, groupcommit
    from geo.patrol.writer import GroupCommit, _Waiting

    monkeypatch.setenv("ANWANG_WRITER_LOCK_TIMEOUT", "0.3")
    url = engine.url.render_as_string(hide_password=False).replace("postgresql+psycopg://", "postgresql://")
    writer = GroupCommit(url)
    locked, release = threading.Event(), threading.Event()

    def hold():
        with engine.connect() as conn:
            conn.execute(text("LOCK TABLE units IN ACCESS EXCLUSIVE MODE"))
            locked.set()
            release.wait(10)
            conn.rollback()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        ts = datetime.now(timezone.utc) - timedelta(minutes=1)
        group = [_Waiting(groupcommit.Ping("lock-test", [fixes.Fix(ts=ts, lon=114.0, lat=33.6)]))]
        started = time.monotonic()
        with pytest.raises(Exception) as caught:   # psycopg.errors.LockNotAvailable
            writer._write(group)
        assert time.monotonic() - started < 3
        assert db.cancelled(caught.value) == "lock_timeout"
    finally:
        release.set()
        holder.join(10)
        writer.close()


def test_vertices_are_counted_without_parsing_and_limited():
    ring = [[10 + i * 1e-4, 10.0] for i in range(50)] + [[10, 10.001], [10, 10]]
    polygon = {"type": "Polygon", "coordinates": [ring]}
    collection = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": polygon, "properties": {}},
        {"type": "Feature", "geometry": {"type": "GeometryCollection",
                                         "geometries": [{"type": "Point", "coordinates": [1, 2]}]}}]}
    assert limits.geojson_vertices(polygon) == 52
    assert limits.geojson_vertices(collection) == 53
    assert limits.geojson_vertices(polygon, stop=10) == 11
    limits.check_geojson(polygon, 52)
    with pytest.raises(TooComplex) as caught:
        limits.check_geojson(polygon, 51)
    assert caught.value.field == "geometry" and "ANWANG_MAX_VERTICES" in caught.value.message
    assert caught.value.details == {"limit": "ANWANG_MAX_VERTICES", "max": 51, "got": 52}
    with pytest.raises(TooLarge) as caught:
        limits.check_features(20001, 20000)
    assert caught.value.details["limit"] == "ANWANG_MAX_IMPORT_FEATURES" and caught.value.field == "file"
