"""One list of bad incident reports, run against every entry point (core, API, CSV import/CLI).

Each case: (name, changes to a valid report in the hand-made town, the field the error names,
whether a CSV row can express it). A change to None removes the key.
"""
from __future__ import annotations

VALID = {"category": "矛盾纠纷", "subtype": "邻里纠纷", "severity": 2,
         "occurred_at": "2026-10-01T09:30:00+08:00", "lon": 10.005, "lat": 10.005,
         "description": "两户因排水沟堵塞发生争执", "reporter_name": "王建国",
         "reporter_phone": "13900000001"}

BAD_REPORTS = [
    ("no category", {"category": None}, "category", True),
    ("unknown category", {"category": "weather"}, "category", True),
    ("severity out of range", {"severity": 7}, "severity", True),
    ("severity not a number", {"severity": "very"}, "severity", True),
    ("time not a time", {"occurred_at": "yesterday"}, "occurred_at", True),
    ("time in the future", {"occurred_at": "2999-01-01T00:00:00+08:00"}, "occurred_at", True),
    ("lon out of range", {"lon": 200}, "lon", True),
    ("lat not a number", {"lat": "abc"}, "lat", True),
    ("lat out of range", {"lat": 95}, "lat", True),
    ("lon and lat swapped", {"lon": 40.02, "lat": 30.02}, "lat", True),
    ("unknown crs", {"crs": "mars"}, "crs", False),
    ("no location", {"lon": None, "lat": None}, "location", True),
    ("address nobody knows", {"lon": None, "lat": None, "address": "火星基地一号"}, "address", True),
    ("description too long", {"description": "长" * 5000}, "description", True),
    ("phone not a phone", {"reporter_phone": "call me maybe"}, "reporter_phone", True),
    ("sensitive not a flag", {"sensitive": "maybe"}, "sensitive", True),
    # What only JSON can send: the wrong kind of value, numbers JSON does not carry, text that is not text.
    ("lon as true", {"lon": True}, "lon", False),
    ("lon as a list", {"lon": [114.0, 33.6]}, "lon", False),
    ("lat as an object", {"lat": {"value": 33.6}}, "lat", False),
    ("lon beyond 2^53", {"lon": 10 ** 20}, "lon", False),
    ("lat not finite", {"lat": float("inf")}, "lat", False),
    ("lat NaN", {"lat": float("nan")}, "lat", False),
    ("crs as a list", {"crs": ["gcj02"]}, "crs", False),
    ("description with a NUL", {"description": "a\x00b"}, "description", False),
    ("description with a lone surrogate", {"description": "\ud800"}, "description", False),
    ("category with a NUL", {"category": "dispute\x00"}, "category", False),
]


def report(changes: dict) -> dict:
    """The valid report with `changes` applied (None removes a key)."""
    body = dict(VALID)
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body
