"""The shapes of the values callers send, checked in one place: text, numbers and whole numbers.

Every check raises `InvalidInput(field, message)` naming the field and what was expected, so a
value of the wrong kind — a list for a longitude, `true` for a count, 10^400, a NUL byte — is a 400
in the one error shape, never a server error and never stored as something else (`true` as 1).

The rules for a whole request body (nesting depth, NaN, numbers beyond what JSON carries exactly,
NUL and lone surrogates) are `check_json_tree`; the web edge applies it to every JSON body.
"""
from __future__ import annotations

import math
from typing import Any

from .errors import InvalidInput
from .messages import msg

# I-JSON (RFC 7493 §2.2): integers beyond ±(2^53 − 1) are not exchanged exactly between
# implementations, and no value of this system (ids, counts, seconds) comes near them.
MAX_SAFE_INTEGER = 2**53 - 1
# A reason given for a change, an override or a revert: a sentence or a short paragraph.
MAX_REASON = 500
# Deeper than any body the API reads (a GeoJSON multipolygon is five levels).
MAX_DEPTH = 32


def check_text(value: str, field: str) -> str:
    """`value` unchanged, or InvalidInput if it holds a character that text cannot: a NUL
    (PostgreSQL text cannot hold it) or a lone surrogate (no UTF-8 form; I-JSON forbids it)."""
    if "\x00" in value:
        raise InvalidInput(field, msg("{field} must not contain a NUL character", field=field))
    if any("\ud800" <= c <= "\udfff" for c in value):
        raise InvalidInput(field, msg("{field} must not contain a lone surrogate (not Unicode text)",
                                      field=field))
    return value


def text_value(value: Any, field: str, *, required: bool = False, max_length: int | None = None) -> str | None:
    """A string (stripped; empty counts as absent), or InvalidInput naming the field."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(field, msg("{field} is required", field=field))
        return None
    if not isinstance(value, str):
        raise InvalidInput(field, msg("{field} must be text; got {kind}", field=field, kind=_kind(value)))
    value = check_text(value.strip(), field)
    if max_length is not None and len(value) > max_length:
        raise InvalidInput(field, msg("{field} must be at most {most} characters; got {got}", field=field,
                                      most=max_length, got=len(value)))
    return value


def number_value(value: Any, field: str, *, lo: float | None = None, hi: float | None = None,
                 required: bool = False, what: str = msg("a number")) -> float | None:
    """A finite number within [lo, hi], from a JSON number or a numeric string; never from a
    boolean, list or object."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(field, msg("{field} is required ({what})", field=field, what=what))
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidInput(field, msg("{field} must be {what}; got {got}", field=field, what=what,
                                      got=_kind(value)))
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise InvalidInput(field, msg("{field} must be {what}; got {got}", field=field, what=what,
                                      got=_shown(value))) from None
    if not math.isfinite(number):
        raise InvalidInput(field, msg("{field} must be a finite number; got {got}", field=field,
                                      got=_shown(value)))
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        raise InvalidInput(field, msg("{field} must be {range}; got {got}", field=field, range=_range(lo, hi),
                                      got=_shown(value)))
    return number


def whole_number(value: Any, field: str, *, lo: int | None = None, hi: int | None = None,
                 required: bool = False) -> int | None:
    """A whole number within [lo, hi] (default: what JSON carries exactly)."""
    number = number_value(value, field, required=required, what=msg("a whole number"))
    if number is None:
        return None
    if not number.is_integer():
        raise InvalidInput(field, msg("{field} must be a whole number; got {got}", field=field,
                                      got=_shown(value)))
    lo = -MAX_SAFE_INTEGER if lo is None else lo
    hi = MAX_SAFE_INTEGER if hi is None else hi
    if not lo <= number <= hi:
        raise InvalidInput(field, msg("{field} must be a whole number {range}; got {got}", field=field,
                                      range=_range(lo, hi), got=_shown(value)))
    return int(number)


def check_json_tree(obj: Any, path: str = "body", depth: int = 0) -> None:
    """Reject what a parsed JSON body may hold but no field of this system accepts: nesting deeper
    than MAX_DEPTH, integers beyond ±MAX_SAFE_INTEGER, non-finite numbers, NUL or lone surrogates
    in strings (keys included). The field named is the path to the value, e.g. `names[1]`."""
    if depth > MAX_DEPTH:
        raise InvalidInput(path, msg("the JSON is nested more than {depth} levels deep", depth=MAX_DEPTH))
    if isinstance(obj, str):
        check_text(obj, path)
    elif isinstance(obj, bool) or obj is None:
        return
    elif isinstance(obj, int):
        if abs(obj) > MAX_SAFE_INTEGER:
            raise InvalidInput(path, msg("{field} is a whole number beyond ±{most:,}, which JSON does not "
                                         "carry exactly", field=path, most=MAX_SAFE_INTEGER))
    elif isinstance(obj, float):
        if not math.isfinite(obj):
            raise InvalidInput(path, msg("{field} must be a finite number", field=path))
    elif isinstance(obj, dict):
        for key, value in obj.items():
            check_text(key, path)          # a bad key is named by where it is, not by itself
            name = key if path == "body" else f"{path}.{key}"
            check_json_tree(value, name, depth + 1)
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            check_json_tree(value, f"{path}[{i}]", depth + 1)


def _kind(value: Any) -> str:
    kinds = {bool: msg("true/false"), list: msg("a list"), dict: msg("an object")}
    return kinds.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "…"


def _range(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return msg("from {lo:g} to {hi:g}", lo=lo, hi=hi)
    if lo is not None:
        return msg("at least {lo:g}", lo=lo)
    return msg("at most {hi:g}", hi=hi) if hi is not None else msg("any number")
