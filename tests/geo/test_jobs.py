"""A job whose process died is reported failed, not left `running` for ever: its key is free once
its connection is gone. A job whose work still holds its key stays running."""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import jobs
from geo.policy import Scope


def _job(session, status: str, age: str = "0 s") -> int:
    return session.execute(text(
        "INSERT INTO jobs (kind, status, created_at) VALUES ('areas.import', :s, now() - CAST(:age AS interval)) "
        "RETURNING id"), {"s": status, "age": age}).scalar_one()


def _read(session, job_id: int) -> dict:
    return jobs.read(session, job_id, user_id=0, role="admin", scope=Scope.all())


def test_a_running_job_nobody_holds_is_reported_lost(session):
    job = _read(session, _job(session, "running"))
    assert job["status"] == "failed" and job["error"]["code"] == "interrupted"
    assert session.execute(text("SELECT status FROM jobs WHERE id = :i"), {"i": job["id"]}).scalar_one() == "failed"


def test_a_job_whose_work_holds_its_key_stays_running(session, engine):
    job_id = _job(session, "running")
    with engine.connect() as worker:       # the work's transaction, in another connection
        Session(bind=worker).execute(text("SELECT pg_advisory_xact_lock(hashtext('anwang.jobs'), :i)"),
                                     {"i": job_id})
        assert _read(session, job_id)["status"] == "running"
        worker.rollback()


def test_a_job_queued_past_the_grace_never_started(session):
    assert _read(session, _job(session, "queued"))["status"] == "queued"
    late = _read(session, _job(session, "queued", "1 hour"))
    assert late["status"] == "failed" and late["error"]["code"] == "interrupted"
    assert _read(session, _job(session, "done"))["status"] == "done"
