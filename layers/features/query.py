"""The query parameters of an items request (OGC API – Features Parts 1–3), read strictly: every
bad value is InvalidInput naming the parameter and what was expected, and a parameter the
collection does not know is refused rather than ignored (Part 1, /req/core/query-param-unknown).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from geo.errors import InvalidInput

from ..selection import TZ
from . import crs as crs_mod
from .collections import Collection, Property

LIMIT_DEFAULT = 100
LIMIT_MAX = 1000
OFFSET_MAX = 10 ** 9
# GDAL before 3.7 asks for CQL text as "cql-text" (the draft's name); what it sends is CQL2 text.
FILTER_LANGS = ("cql2-text", "cql-text")
# Parameters every items request may carry; `lang` switches the interface language of the pages.
COMMON = ("f", "lang", "limit", "offset", "bbox", "bbox-crs", "datetime", "crs", "filter",
          "filter-lang", "filter-crs")


@dataclass
class Query:
    """A parsed items request."""

    limit: int = LIMIT_DEFAULT
    offset: int = 0
    bbox: tuple[float, float, float, float] | None = None
    bbox_crs: crs_mod.Crs = crs_mod.CRS84
    crs: crs_mod.Crs = crs_mod.CRS84
    start: datetime | None = None
    end: datetime | None = None
    filter: str | None = None
    filter_crs: crs_mod.Crs = crs_mod.CRS84
    options: dict = field(default_factory=dict)
    equals: dict = field(default_factory=dict)   # queryable property → value (Part 3 parameters)


def _whole(args, name: str, lo: int, hi: int, default: int, *, cap: bool = False) -> int:
    value = args.get(name)
    if value is None or value == "":
        return default
    expected = f"{name} must be a whole number from {lo} to {hi}"
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(name, f"{expected}; got {value!r}") from None
    if cap and number > hi:   # a limit above the maximum is answered with the maximum (Part 1)
        return hi
    if not lo <= number <= hi:
        raise InvalidInput(name, f"{expected}; got {value!r}")
    return number


def _moment(value: str, *, upper: bool) -> datetime:
    """One end of a datetime: RFC 3339 date-time, or a local date meaning the whole day."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            start = datetime.combine(day, datetime.min.time(), TZ)
            return start + timedelta(days=1, microseconds=-1) if upper else start
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInput("datetime", "datetime must be an RFC 3339 date-time or date "
                                       "(2026-10-01T08:30:00Z, 2026-10-01), an interval start/end, "
                                       f"or an open interval ../end or start/..; got {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=TZ)


def parse_datetime(value: str | None) -> tuple[datetime | None, datetime | None]:
    """An instant or an interval (either end open with '..' or empty) as closed bounds."""
    if value is None or value == "":
        return None, None
    if "/" not in value:
        return _moment(value, upper=False), _moment(value, upper=True)
    if value.count("/") != 1:
        raise InvalidInput("datetime", f"datetime must be an instant or one interval start/end; got {value!r}")
    first, second = value.split("/")
    start = None if first in ("", "..") else _moment(first, upper=False)
    end = None if second in ("", "..") else _moment(second, upper=True)
    if start is None and end is None:
        raise InvalidInput("datetime", f"datetime needs at least one bound; got {value!r}")
    if start and end and end < start:
        raise InvalidInput("datetime", f"datetime must not end before it starts; got {value!r}")
    return start, end


def parse(collection: Collection, args) -> Query:
    """Read an items request's query string (a mapping of text) for `collection`."""
    known = set(COMMON) | set(collection.options) | {p.name for p in collection.queryables}
    unknown = sorted(k for k in args.keys() if k not in known)
    if unknown:
        raise InvalidInput(unknown[0], f"unknown parameter {unknown[0]!r} for collection "
                                       f"{collection.id}; known: {', '.join(sorted(known))}")
    q = Query(limit=_whole(args, "limit", 1, LIMIT_MAX, LIMIT_DEFAULT, cap=True),
              offset=_whole(args, "offset", 0, OFFSET_MAX, 0),
              crs=crs_mod.parse(args.get("crs"), "crs"),
              bbox_crs=crs_mod.parse(args.get("bbox-crs"), "bbox-crs"),
              filter_crs=crs_mod.parse(args.get("filter-crs"), "filter-crs"),
              options={k: args.get(k) for k in collection.options if args.get(k) not in (None, "")})
    if args.get("bbox-crs") and not args.get("bbox"):
        raise InvalidInput("bbox-crs", "bbox-crs names the CRS of bbox; give bbox too")
    q.bbox = crs_mod.parse_bbox(args.get("bbox"), q.bbox_crs)
    if args.get("datetime"):
        if not collection.temporal:
            raise InvalidInput("datetime", f"collection {collection.id} has no time to match datetime against")
        q.start, q.end = parse_datetime(args["datetime"])
    lang = args.get("filter-lang")
    if lang and lang not in FILTER_LANGS:
        raise InvalidInput("filter-lang", f"filter-lang must be {' or '.join(FILTER_LANGS)}; got {lang!r}")
    q.filter = args.get("filter") or None
    q.equals = {p.name: property_value(p, args[p.name]) for p in collection.queryables
                if args.get(p.name) not in (None, "")}
    return q


def property_value(prop: Property, value: str):
    """A queryable property's value given as a query parameter, typed as the property."""
    expected = {"integer": "a whole number", "number": "a number", "boolean": "true or false",
                "date-time": "an RFC 3339 date-time", "date": "a date (YYYY-MM-DD)"}
    try:
        if prop.type == "integer":
            return int(value)
        if prop.type == "number":
            return float(value)
        if prop.type == "boolean":
            return {"true": True, "false": False, "1": True, "0": False}[value.lower()]
        if prop.type == "date-time":
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=TZ)
        if prop.type == "date":
            return date.fromisoformat(value)
    except (ValueError, KeyError):
        raise InvalidInput(prop.name, f"{prop.name} must be {expected[prop.type]}; got {value!r}") from None
    return value
