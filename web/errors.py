"""One error shape for the API — {"error": {"code", "message", "field"}} — and pages otherwise."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from geo.errors import (
    AnwangError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    SetupError,
)

from .i18n import localize

STATUS = {InvalidInput: 400, NotFound: 404, Conflict: 409, Forbidden: 403, SetupError: 503}
log = logging.getLogger(__name__)


def is_ogc() -> bool:
    """Whether the request is for the OGC API – Features service under /ogc."""
    return request.path == "/ogc" or request.path.startswith("/ogc/")


def wants_html() -> bool:
    """Whether the reader asked for a page: ?f=html, else an Accept header preferring HTML (a
    browser's) over JSON."""
    if request.args.get("f"):
        return request.args["f"] == "html"
    best = request.accept_mimetypes.best_match(["application/json", "application/geo+json", "text/html"])
    return best == "text/html"


def _wants_json() -> bool:
    if is_ogc():
        return not wants_html()
    return (request.path.startswith(("/api/", "/tiles/", "/osmand"))
            or request.accept_mimetypes.best == "application/json")


def error_response(status: int, code: str, message: str, field: str | None = None,
                   details: dict | None = None):
    from .i18n import localize

    message = localize(message)  # a geo.messages.Message in the reader's language
    if _wants_json():
        body = {"error": {"code": code, "message": message, "field": field}}
        if details:
            body["error"]["details"] = details
        return jsonify(body), status
    return render_template("error.html", status=status, message=message), status


def register(app: Flask) -> None:
    @app.errorhandler(AnwangError)
    def domain_error(exc: AnwangError):
        status = next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 400)
        # A Message (geo.messages) reaches the reader in their language; other text as it is.
        return error_response(status, exc.code, localize(exc.message), exc.field, localize(exc.details))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        # Internals stay in the log, never in the response body.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal server error")
