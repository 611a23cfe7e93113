"""One way to answer and to read a request: JSON and GeoJSON bodies (non-ASCII kept, messages in
the reader's language) and the query-string and body arguments every view parses.

Every parser raises `InvalidInput(field, message)` naming the argument and what was expected, so a
bad value is a 400 in the one error shape, never a 500.
"""
from __future__ import annotations

import json
from datetime import datetime

from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider

from geo.errors import InvalidInput
from geo.inputs import check_json_tree, check_text, number_value, whole_number

from .i18n import localize

GEOJSON = "application/geo+json"


def _dumps(obj) -> str:
    return json.dumps(localize(obj), ensure_ascii=False, default=str)


def json_response(obj, status: int = 200, media: str = "application/json",
                  headers: dict | None = None) -> Response:
    """A JSON body (of media type `media`); every `geo.messages.Message` in it in the reader's
    language."""
    return Response(_dumps(obj), status=status, headers={**(headers or {}), "Content-Type": media})


def geojson_response(obj, status: int = 200) -> Response:
    """A GeoJSON body (RFC 7946 media type), from an object or from text PostGIS already built."""
    body = obj if isinstance(obj, str) else _dumps(obj)
    return Response(body, status=status, mimetype=GEOJSON)


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON, reading bodies by the rules of `geo.inputs.check_json_tree`: no NaN or
    Infinity, no numbers beyond what JSON carries exactly, no NUL or lone surrogate, no nesting
    deeper than any body the API reads — each a 400 naming where it is, raised past
    `get_json(silent=True)` so that no view can read such a body by accident."""

    def loads(self, s: str | bytes, **kwargs):
        if isinstance(s, bytes):
            try:
                s = s.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise InvalidInput("body", f"the body is not UTF-8 (byte {exc.start})") from None
        try:
            obj = json.loads(s, **kwargs)   # NaN, Infinity and 1e400 become floats the check names
        except RecursionError:
            raise InvalidInput("body", "the JSON is nested too deeply") from None
        check_json_tree(obj)
        return obj


def init_app(app: Flask) -> None:
    """Read JSON strictly, and refuse a NUL in the path, the query or an upload's form fields
    before any view sees it (PostgreSQL text cannot hold one; no code or name contains one).
    Other bodies are left to their readers: the OsmAnd endpoint parses its raw body itself."""
    app.json = StrictJSONProvider(app)

    @app.before_request
    def refuse_nul():
        for name, value in (request.view_args or {}).items():
            if isinstance(value, str):
                check_text(value, name)
        fields = [request.args]
        if request.mimetype == "multipart/form-data":   # uploads: their text fields too
            fields.append(request.form)
        for source in fields:
            for name, value in source.items(multi=True):
                check_text(name, "query")
                check_text(value, name)


def json_body() -> dict:
    """The request's JSON object body, or a 400 naming what was expected."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("body", "expected a JSON object with Content-Type: application/json")
    return body


def optional_json_body() -> dict:
    """The request's JSON object body if it has one (no body reads as {}), or a 400."""
    if not request.get_data(cache=True):
        return {}
    return json_body()


def text_arg(name: str, default: str | None = None) -> str | None:
    """A query-string argument as given (an empty one counts as absent)."""
    value = request.args.get(name)
    return default if value in (None, "") else value


def int_arg(name: str, default: int | None = None, lo: int | None = None,
            hi: int | None = None) -> int | None:
    """A whole-number argument within [lo, hi]."""
    value = request.args.get(name)
    if value in (None, ""):
        return default
    return whole_number(value, name, lo=lo, hi=hi)


def float_arg(name: str, default: float | None = None, lo: float | None = None,
              hi: float | None = None) -> float | None:
    """A finite decimal argument within [lo, hi]."""
    value = request.args.get(name)
    if value in (None, ""):
        return default
    return number_value(value, name, lo=lo, hi=hi)


def time_arg(name: str, parse) -> datetime | None:
    """A time argument read by `parse(value, name)` (a geo parser that raises InvalidInput)."""
    value = request.args.get(name)
    return None if value in (None, "") else parse(value, name)


def flag(value) -> bool:
    """A form or JSON flag: 1/true/yes/on."""
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("1", "true", "yes", "on") if value is not None else False
