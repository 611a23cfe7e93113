"""The per-process read cache over real transactions: a body is kept only when built with no
write of its family in flight, served while the stamp holds, and built again (without keeping)
while a write is in flight. Two real connections; nothing is committed."""
from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import stamps
from web import create_app, readcache


@pytest.fixture()
def sessions(engine):
    opened = []

    def open_one() -> Session:
        conn = engine.connect()
        conn.begin()
        s = Session(bind=conn)
        opened.append((conn, s))
        return s

    yield open_one
    for conn, s in opened:
        s.close()
        conn.rollback()
        conn.close()


def test_kept_served_then_rebuilt_around_a_write(database_url, sessions):
    app = create_app({"TESTING": True, "SECRET_KEY": "t", "DATABASE_URL": database_url, "BASEMAP": "none"})
    builds = []

    def build(tag):
        def run():
            builds.append(tag)
            return f'{{"built": "{tag}"}}'
        return run

    with app.app_context():
        reader = sessions()
        first = readcache.body(reader, stamps.INCIDENTS, "k", build("a"))
        reader.rollback()
        again = readcache.body(reader, stamps.INCIDENTS, "k", build("b"))
        assert again is first and builds == ["a"]             # kept, and served while the stamp holds
        reader.rollback()

        writer = sessions()
        writer.execute(text("UPDATE incidents SET status = status WHERE id = (SELECT min(id) FROM incidents)"))
        during = readcache.body(reader, stamps.INCIDENTS, "k", build("c"))
        assert during.text == '{"built": "c"}'                 # the stamp moved: built again …
        reader.rollback()
        readcache.body(reader, stamps.INCIDENTS, "k", build("d"))
        assert builds == ["a", "c", "d"]                       # … and not kept while the write is in flight
        reader.rollback()
        writer.rollback()

        after = readcache.body(reader, stamps.INCIDENTS, "k", build("e"))
        reader.rollback()
        assert readcache.body(reader, stamps.INCIDENTS, "k", build("f")) is after and builds[-1] == "e"
        # Another family's stamp did not move: its bodies are another key space.
        readcache.body(reader, stamps.AREAS, "k", build("g"))
        assert builds[-1] == "g"
