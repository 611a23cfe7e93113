"""One way to answer and to read a request: JSON and GeoJSON bodies (non-ASCII kept, messages in
the reader's language) and the query-string and body arguments every view parses.

Every parser raises `InvalidInput(field, message)` naming the argument and what was expected, so a
bad value is a 400 in the one error shape, never a 500.
"""
from __future__ import annotations

import json
import math
from datetime import datetime

from flask import Response, request

from geo.errors import InvalidInput

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


def json_body() -> dict:
    """The request's JSON object body, or a 400 naming what was expected."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("body", "expected a JSON object with Content-Type: application/json")
    return body


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
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(name, f"{name} must be a whole number; got {value!r}") from None
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        raise InvalidInput(name, f"{name} must be a whole number from {lo} to {hi}; got {value!r}")
    return number


def float_arg(name: str, default: float | None = None, lo: float | None = None,
              hi: float | None = None) -> float | None:
    """A finite decimal argument within [lo, hi]."""
    value = request.args.get(name)
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except ValueError:
        raise InvalidInput(name, f"{name} must be a number; got {value!r}") from None
    if not math.isfinite(number) or (lo is not None and number < lo) or (hi is not None and number > hi):
        raise InvalidInput(name, f"{name} must be a number from {lo} to {hi}; got {value!r}")
    return number


def time_arg(name: str, parse) -> datetime | None:
    """A time argument read by `parse(value, name)` (a geo parser that raises InvalidInput)."""
    value = request.args.get(name)
    return None if value in (None, "") else parse(value, name)


def flag(value) -> bool:
    """A form or JSON flag: 1/true/yes/on."""
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("1", "true", "yes", "on") if value is not None else False
