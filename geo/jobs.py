"""Background jobs: work that exceeds a request's budget (a large boundary import) runs after its
request has answered 202, on a connection of the import role (geo.db.timeouts), and its owner
follows it at /api/jobs/{id}: status `queued → running → done | failed`, progress as the work
reports it (`{"stage", "step", "steps"}`), then the result or the error in the API's error shape.

Progress is written in transactions of its own, so readers see it while the work's one transaction
is still open; the work commits or rolls back as a whole, as it would inside a request.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from geo import db
from geo.errors import AnwangError, Forbidden, NotFound
from geo.policy import Scope

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]


def create(session: Session, kind: str, owner_id: int | None, area_code: str | None) -> int:
    """Record a queued job of `kind` for `owner_id` concerning `area_code`; its id."""
    return session.execute(text(
        "INSERT INTO jobs (kind, owner_id, area_code) VALUES (:k, :o, :a) RETURNING id"),
        {"k": kind, "o": owner_id, "a": area_code}).scalar_one()


def read(session: Session, job_id: int, *, user_id: int, role: str, scope: Scope) -> dict:
    """The job as its owner, or an administrator whose scope holds its area, may read it.

    Raises:
        NotFound: no such job, or one the caller may not read (its existence is not revealed).
    """
    row = session.execute(text(
        "SELECT id, kind, owner_id, area_code, status, progress, result, error, created_at, updated_at "
        "FROM jobs WHERE id = :i"), {"i": job_id}).mappings().first()
    if row is None or not (row["owner_id"] == user_id or _admin_over(session, role, scope, row["area_code"])):
        raise NotFound(f"no job {job_id}", field="id")
    job = dict(row)
    for key in ("created_at", "updated_at"):
        job[key] = job[key].isoformat()
    return job


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

    _update(engine, job_id, status="running")
    try:
        with db.session_scope(engine) as session:
            result = work(session, progress)
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
    else:
        _update(engine, job_id, status="done", result=result)


COLUMNS = {"status": "text", "progress": "jsonb", "result": "jsonb", "error": "jsonb"}


def _update(engine: Engine, job_id: int, **values) -> None:
    # Column names come from COLUMNS only; values are bound.
    sets = ", ".join(f"{k} = CAST(:{k} AS {COLUMNS[k]})" for k in values)
    params = {k: v if k == "status" else json.dumps(v, ensure_ascii=False, default=str) for k, v in values.items()}
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE jobs SET {sets}, updated_at = clock_timestamp() WHERE id = :i"),
                     {**params, "i": job_id})
