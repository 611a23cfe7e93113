"""Read stamps: every write a list shows advances its family's stamp, and a claim succeeds only
while no such write is in flight — so a kept body is never one read before a write that commits
after it. Two real connections to the test database; nothing is committed."""
from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import stamps


@pytest.fixture()
def two(engine):
    """A writer's and a reader's session, each in its own transaction, both rolled back."""
    opened = []
    for _ in range(2):
        conn = engine.connect()
        conn.begin()
        opened.append((conn, Session(bind=conn)))
    yield opened[0][1], opened[1][1]
    for conn, s in opened:
        s.close()
        conn.rollback()
        conn.close()


def test_each_write_advances_the_families_it_changes(session):
    before = {f: stamps.current(session, f) for f in stamps.FAMILIES}
    session.execute(text("UPDATE incidents SET status = status WHERE id = (SELECT min(id) FROM incidents)"))
    assert stamps.current(session, stamps.INCIDENTS) > before[stamps.INCIDENTS]
    assert stamps.current(session, stamps.AREAS) == before[stamps.AREAS]
    middle = {f: stamps.current(session, f) for f in stamps.FAMILIES}
    # An area's name is in both lists (incidents carry their area's code and name).
    session.execute(text("UPDATE areas SET name = name WHERE id = (SELECT min(id) FROM areas)"))
    assert all(stamps.current(session, f) > middle[f] for f in stamps.FAMILIES)
    middle = {f: stamps.current(session, f) for f in stamps.FAMILIES}
    session.execute(text("UPDATE area_staff SET role = role WHERE false"))   # a statement, even of no row
    assert stamps.current(session, stamps.AREAS) > middle[stamps.AREAS]
    assert stamps.current(session, stamps.INCIDENTS) == middle[stamps.INCIDENTS]


def test_a_claim_fails_while_a_write_is_in_flight_and_holds_writers_off(two):
    writer, reader = two
    writer.execute(text("UPDATE incidents SET status = status WHERE id = (SELECT min(id) FROM incidents)"))
    assert not stamps.claim(reader, stamps.INCIDENTS)        # uncommitted: the reader must not keep
    assert stamps.claim(reader, stamps.AREAS)                # another family is free
    writer.rollback()
    reader.rollback()
    assert stamps.claim(reader, stamps.INCIDENTS)            # no write in flight
    kept = stamps.current(reader, stamps.INCIDENTS)
    # A write that starts now waits for the claim to end before its stamp moves.
    writer.execute(text("SET LOCAL lock_timeout = '300ms'"))
    with pytest.raises(Exception, match="lock timeout"):
        writer.execute(text("UPDATE incidents SET status = status WHERE id = (SELECT min(id) FROM incidents)"))
    assert stamps.current(reader, stamps.INCIDENTS) == kept


def test_a_transaction_that_wrote_the_family_never_keeps(two):
    writer, _ = two
    assert stamps.claim(writer, stamps.AREAS)
    writer.execute(text("UPDATE incidents SET status = status WHERE id = (SELECT min(id) FROM incidents)"))
    assert not stamps.claim(writer, stamps.INCIDENTS)        # its own write may yet roll back
    assert stamps.claim(writer, stamps.AREAS)                # it wrote no area


def test_an_unknown_family_is_refused(session):
    with pytest.raises(ValueError):
        stamps.current(session, "users")
