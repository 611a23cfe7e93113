"""Households, 走访 visits, coverage and a grid worker's day over HTTP. Views parse, call
geo/visits with the caller's audience (geo.policy), commit."""
from __future__ import annotations

from datetime import datetime, timedelta

from flask import Blueprint, request

from geo import idempotency
from geo.errors import InvalidInput
from geo.visits import coverage, households, records
from layers.selection import TZ, parse_month

from . import database
from .auth import actor, audience, roles
from .incidents import IDEMPOTENCY_KEY
from .responses import json_body, json_response, text_arg

bp = Blueprint("visits", __name__)
READERS = ("dispatcher", "analyst", "grid_worker")
VISITORS = ("dispatcher", "grid_worker")


def _month() -> tuple[datetime, datetime]:
    """The `month` argument (YYYY-MM) as a local [start, end), else this month."""
    raw = text_arg("month")
    if raw is None:
        now = datetime.now(TZ)
        raw = f"{now.year}-{now.month:02d}"
    return parse_month(raw)


@bp.get("/api/households")
@roles(*READERS)
def household_list():
    grid = request.args.get("grid")
    if not grid:
        raise InvalidInput("grid", "grid is required: the code of one of your grids")
    return json_response(households.listing(database.session(), grid, audience(), _month()))


@bp.post("/api/visits")
@roles(*VISITORS)
def create():
    s = database.session()
    body = json_body()
    key = idempotency.Key.of(request.headers.get(idempotency.HEADER), body)
    result = records.create(s, actor(), body, audience(), key)
    s.commit()
    return json_response(result, 200 if result["replayed"] else 201)


@bp.get("/api/visits")
@roles(*READERS)
def listing():
    return json_response(records.listing(database.session(), audience(), _month(),
                                         text_arg("grid")))


@bp.get("/api/visits/coverage")
@roles(*READERS)
def coverage_view():
    return json_response(coverage.coverage(database.session(), audience(), _month(),
                                           text_arg("area")))


@bp.get("/api/me/day")
@roles("grid_worker")
def my_day():
    now = datetime.now(TZ)
    today = now.date()
    month = parse_month(f"{today.year}-{today.month:02d}")
    tomorrow = datetime(today.year, today.month, today.day, tzinfo=TZ) + timedelta(days=1)
    return json_response(coverage.day(database.session(), audience(), today, month, tomorrow))


def openapi_paths(geojson: dict, param, errors) -> dict:
    """The OpenAPI description of these routes (merged into /api/openapi.json)."""
    issue = {"type": "object", "required": ["category"], "properties": {
        "category": {"type": "string", "description": "petition|accident|criminal|dispute|hazard"},
        "severity": {"type": "integer", "minimum": 1, "maximum": 4},
        "description": {"type": "string"},
        "report": {"type": "boolean", "description": "also report it as an incident at the visit's "
                                                     "place, in the same transaction"}}}
    visit = {"type": "object", "required": ["kind", "occurred_at"], "properties": {
        "kind": {"type": "string", "enum": ["home", "follow_up", "safety", "outreach"],
                 "description": "入户走访 | 回访 (with incident_id) | 安全检查 | 政策宣传"},
        "household_id": {"type": "integer"}, "lon": {"type": "number"}, "lat": {"type": "number"},
        "crs": {"type": "string", "enum": ["wgs84", "cgcs2000", "gcj02", "bd09"]},
        "incident_id": {"type": "integer", "description": "the matter a 回访 follows up"},
        "occurred_at": {"type": "string", "format": "date-time"},
        "people": {"type": "integer", "minimum": 1, "maximum": 99,
                   "description": "residents met (人次), default 1"},
        "notes": {"type": "string"}, "issues": {"type": "array", "items": issue}}}
    month = param("month", "YYYY-MM (local), default this month")
    return {
        "/api/households": {"get": {
            "summary": "The households of one grid with their last visit; name, phone and ID "
                       "number generalised for roles that do not act in the grid",
            "parameters": [param("grid", "grid code", True), month],
            "responses": {"200": {"description": "grid, total, identity, households"},
                          **errors(400, 401, 403, 404)}}},
        "/api/visits": {
            "get": {"summary": "The visits of a month in a grid (or your whole scope), newest first",
                    "parameters": [param("grid", "grid (or any area) code"), month],
                    "responses": {"200": {"description": "month, visits"},
                                  **errors(400, 401, 403, 404)}},
            "post": {"summary": "Record a 走访 visit; issues marked report become incidents in the "
                                "same transaction; a 回访 moves its resolved matter to followed_up "
                                "(409 in words if it was closed or reopened meanwhile). With an "
                                "Idempotency-Key a repeat stores nothing (200, replayed: true)",
                     "parameters": [IDEMPOTENCY_KEY],
                     "requestBody": {"required": True,
                                     "content": {"application/json": {"schema": visit}}},
                     "responses": {"201": {"description": "the visit, replayed: false"},
                                   "200": {"description": "the visit stored earlier under this "
                                                          "Idempotency-Key, replayed: true"},
                                   **errors(400, 401, 403, 404, 409)}}},
        "/api/visits/coverage": {"get": {
            "summary": "Households visited in a month per grid (against its plan) and per worker",
            "parameters": [month, param("area", "area code: its grids only")],
            "responses": {"200": {"description": "total, grids, workers"},
                          **errors(400, 401, 403, 404)}}},
        "/api/me/day": {"get": {
            "summary": "A grid worker's day: visits due today per grid (from the month's plan), "
                       "the households to visit first, the open matters of their grids",
            "responses": {"200": {"description": "date, grids, due, matters"}, **errors(401, 403)}}},
    }
