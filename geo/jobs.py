"""Background jobs: work that exceeds a request's budget (a large boundary import) runs after its
request has answered 202, on a connection of the import role (geo.db.timeouts), and its owner
follows it at /api/jobs/{id}: status `queued → running → done | failed`, progress as the work
reports it (`{"stage", "step", "steps"}`), then the result or the error in the API's error shape.

Progress is written in transactions of its own, so readers see it while the work's one transaction
is still open; the work commits or rolls back as a whole, as it would inside a request, and a job
is `done` in the same commit as its work.

A job whose process died does not stay `running`: its work's transaction holds the job's advisory
key from before it is marked running until it ends, and PostgreSQL lets the key go when the
connection does, so a reader that can take the key of a job still marked running knows it is lost
(as one still `queued` after QUEUED_GRACE, whose thread never started) and says it failed.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from geo import db
from geo.errors import AnwangError, Forbidden, NotFound
from geo.policy import Scope

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]
QUEUED_GRACE = timedelta(minutes=5)
LOST = {"code": "interrupted", "field": None,
        "message": "the server running this job stopped before it finished; nothing of it was kept — start it again"}


def create(session: Session, kind: str, owner_id: int | None, area_code: str | None) -> int:
    """Record a queued job of `kind` for `owner_id` concerning `area_code`; its id."""
    return session.execute(text(
        "INSERT INTO jobs (kind, owner_id, area_code) VALUES (:k, :o, :a) RETURNING id"),
        {"k": kind, "o": owner_id, "a": area_code}).scalar_one()


def read(session: Session, job_id: int, *, user_id: int, role: str, scope: Scope) -> dict:
    """The job as its owner, or an administrator whose scope holds its area, may read it; a lost
    one is marked failed on the way (the caller commits).

    Raises:
        NotFound: no such job, or one the caller may not read (its existence is not revealed).
    """
    row = session.execute(text(
        "SELECT id, kind, owner_id, area_code, status, progress, result, error, created_at, updated_at "
        "FROM jobs WHERE id = :i"), {"i": job_id}).mappings().first()
    if row is None or not (row["owner_id"] == user_id or _admin_over(session, role, scope, row["area_code"])):
        raise NotFound(f"no job {job_id}", field="id")
    job = dict(row)
    if job["status"] in ("queued", "running") and _lost(session, job):
        job.update(session.execute(text(
            "UPDATE jobs SET status = 'failed', error = CAST(:e AS jsonb), updated_at = clock_timestamp() "
            "WHERE id = :i AND status = :s RETURNING status, error, updated_at"),
            {"i": job_id, "s": job["status"], "e": json.dumps(LOST, ensure_ascii=False)}).mappings().first() or {})
    for key in ("created_at", "updated_at"):
        job[key] = job[key].isoformat()
    return job


def _lost(session: Session, job: dict) -> bool:
    """Whether a job not yet finished will never be: no one holds its key (running), or its thread
    never started (queued for longer than QUEUED_GRACE)."""
    if job["status"] == "queued":
        return bool(session.execute(text("SELECT :t < now() - :grace"),
                                    {"t": job["created_at"], "grace": QUEUED_GRACE}).scalar_one())
    free = session.execute(text("SELECT pg_try_advisory_xact_lock_shared(hashtext('anwang.jobs'), :i)"),
                           {"i": job["id"]}).scalar_one()
    if not free:
        return False
    # Taken: re-read, for the job may have ended (and let its key go) since the first read.
    status = session.execute(text("SELECT status FROM jobs WHERE id = :i"), {"i": job["id"]}).scalar_one()
    return bool(status == "running")


def _admin_over(session: Session, role: str, scope: Scope, area_code: str | None) -> bool:
    if role != "admin":
        return False
    if scope.everywhere:
        return True
    if area_code is None:
        return False
    try:
        scope.area(session, area_code, "area")
    except (Forbidden, NotFound):
        return False
    return True


def run(engine: Engine, job_id: int, work: Callable[[Session, Progress], dict]) -> None:
    """Run `work(session, progress)` as the job: its result (a JSON-able dict) when it returns, and
    its session committed; the error in the API's shape, and nothing of it kept, when it raises."""
    def progress(stage: str, step: int, steps: int) -> None:
        _update(engine, job_id, progress={"stage": stage, "step": step, "steps": steps})

    try:
        with db.session_scope(engine) as session:
            session.execute(text("SELECT pg_advisory_xact_lock(hashtext('anwang.jobs'), :i)"), {"i": job_id})
            _update(engine, job_id, status="running")
            result = work(session, progress)
            _finish(session, job_id, result)
    except AnwangError as exc:
        error: dict = {"code": exc.code, "message": exc.message, "field": exc.field}
        if exc.details:
            error["details"] = exc.details
        _update(engine, job_id, status="failed", error=error)
    except Exception as exc:  # noqa: BLE001 — a job's failure is its outcome, never the server's
        log.exception("job %s failed", job_id)
        cancelled = db.cancelled(exc)
        _update(engine, job_id, status="failed", error={
            "code": cancelled or "internal_error",
            "message": "the import took longer than ANWANG_IMPORT_STATEMENT_TIMEOUT allows and was "
                       "cancelled" if cancelled else "internal server error", "field": None})


COLUMNS = {"status": "text", "progress": "jsonb", "result": "jsonb", "error": "jsonb"}


def _finish(session: Session, job_id: int, result: dict) -> None:
    """Mark the job done with its result, in its work's transaction."""
    session.execute(text("UPDATE jobs SET status = 'done', result = CAST(:r AS jsonb), "
                         "updated_at = clock_timestamp() WHERE id = :i"),
                    {"i": job_id, "r": json.dumps(result, ensure_ascii=False, default=str)})


def _update(engine: Engine, job_id: int, **values) -> None:
    # Column names come from COLUMNS only; values are bound.
    sets = ", ".join(f"{k} = CAST(:{k} AS {COLUMNS[k]})" for k in values)
    params = {k: v if k == "status" else json.dumps(v, ensure_ascii=False, default=str) for k, v in values.items()}
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE jobs SET {sets}, updated_at = clock_timestamp() WHERE id = :i"),
                     {**params, "i": job_id})
