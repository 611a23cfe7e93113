"""Background jobs over HTTP: a view that hands work over (`start`) answers 202 with the job's
address, and `GET /api/jobs/{id}` shows its owner (or an administrator over its area) the status,
progress and outcome. The work runs on a thread of this process with a connection of the import
role, so its statements have the import's bounds, not a request's."""
from __future__ import annotations

import threading
from collections.abc import Callable

from flask import Blueprint, current_app

from geo import jobs

from . import database
from .auth import ANY_USER, current_user, roles
from .responses import json_response

bp = Blueprint("jobs", __name__)


@bp.get("/api/jobs/<int:job_id>")
@roles(*ANY_USER)
def job_detail(job_id: int):
    user, s = current_user(), database.session()
    job = jobs.read(s, job_id, user_id=user.id, role=user.role, scope=user.scope)
    s.commit()      # a lost job, found so on the way, stays failed
    return json_response(job)


def start(kind: str, area_code: str | None, work: Callable[..., dict]) -> dict:
    """Record a job of the caller's and run `work(session, progress)` after this request; the 202
    answer's body (`job`, `url`, `status`)."""
    s = database.session()
    job_id = jobs.create(s, kind, current_user().id, area_code)
    s.commit()              # the job exists before its thread looks for it
    thread = threading.Thread(target=jobs.run, args=(database.import_engine(), job_id, work),
                              name=f"anwang-job-{job_id}", daemon=True)
    current_app.extensions["anwang"]["jobs"][job_id] = thread
    thread.start()
    return {"job": job_id, "url": f"/api/jobs/{job_id}", "status": "queued"}


def openapi_paths(geojson: dict, param, errors) -> dict:
    """The jobs' part of /api/openapi.json."""
    job = {"type": "object", "properties": {
        "id": {"type": "integer"}, "kind": {"type": "string"},
        "status": {"enum": ["queued", "running", "done", "failed"]},
        "progress": {"type": "object", "description": "{stage, step, steps} as the work reports it"},
        "result": {"type": ["object", "null"], "description": "what the work answers when done"},
        "error": {"type": ["object", "null"], "description": "{code, message, field} when failed"}}}
    return {"/api/jobs/{job_id}": {"get": {
        "summary": "A background job (a large import): status, progress, result or error; only its "
                   "owner or an administrator over its area reads it",
        "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
        "responses": {"200": {"description": "the job", "content": {"application/json": {"schema": job}}},
                      **errors(401, 404)}}}}
