"""Position fixes parsed at the edge: time, coordinates, speed, heading, accuracy, battery — each
field checked for type and range before anything is stored.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Literal, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from geo.errors import InvalidInput
from geo.inputs import number_value

EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)   # GPS week roll-overs and 1901 epochs are not times
MAX_BATCH = 10000




# -- parsing fixes ---------------------------------------------------------------------------
@dataclass
class Fix:
    """One position fix as reported (speed in m/s, heading in degrees from north)."""

    ts: datetime
    lon: float
    lat: float
    speed: float | None = None
    heading: float | None = None
    accuracy: float | None = None
    altitude: float | None = None
    battery: float | None = None
    flags: int = 0
    hdop: float | None = None


def device_zone(name: str | None) -> tzinfo:
    """The time zone named (an IANA name such as Asia/Shanghai); UTC when none is named."""
    if not name:
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: expected an IANA name such as Asia/Shanghai") from None


def parse_time(value, field: str = "ts", tz: tzinfo = timezone.utc) -> datetime:
    """ISO 8601, or Unix seconds / milliseconds since the epoch, as UTC; a time without a zone is
    local time in `tz`."""
    if isinstance(value, bool) or value is None or value == "":
        raise InvalidInput(field, "a time is required: ISO 8601 with a zone, or Unix seconds")
    ts = None
    if isinstance(value, (int, float)) or (isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value.strip())):
        number = float(value)
        if abs(number) >= 1e11:          # milliseconds, as phones and JavaScript send them
            number /= 1000.0
        try:
            ts = datetime.fromtimestamp(number, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise InvalidInput(field, f"time {value!r} is out of range") from None
    elif isinstance(value, str):
        s = value.strip().replace(" ", "T", 1)
        if s.endswith("Z") or s.endswith("z"):
            s = s[:-1] + "+00:00"
        try:
            ts = datetime.fromisoformat(s)
        except ValueError:
            raise InvalidInput(field, f"time {value!r} is not ISO 8601 or Unix seconds") from None
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=tz)
    else:
        raise InvalidInput(field, f"time {value!r} is not ISO 8601 or Unix seconds")
    ts = ts.astimezone(timezone.utc)
    if ts < EARLIEST:
        raise InvalidInput(field, f"time {ts.isoformat()} is before 2000: not a real fix time "
                                  "(a device clock or file without a valid time)")
    if ts > datetime.now(timezone.utc) + timedelta(minutes=10):
        raise InvalidInput(field, f"time {ts.isoformat()} is in the future")
    return ts


@overload
def number_field(obj: dict, key: str, field: str, lo: float | None = None, hi: float | None = None, *,
                 required: Literal[True]) -> float: ...


@overload
def number_field(obj: dict, key: str, field: str, lo: float | None = None, hi: float | None = None,
                 required: bool = False) -> float | None: ...


def number_field(obj: dict, key: str, field: str, lo: float | None = None, hi: float | None = None,
                 required: bool = False) -> float | None:
    """A number of a fix within [lo, hi]. An optional sensor value of exactly -1 is Android's
    "unknown" and reads as None; any other value out of range is refused, never stored."""
    value = obj.get(key)
    if not required and value == -1 and not isinstance(value, bool):
        return None
    return number_value(value, field, lo=lo, hi=hi, required=required)


def parse_fix(obj: dict, where: str = "positions[0]", tz: tzinfo = timezone.utc) -> Fix:
    """One fix from the batch API: {ts|time|timestamp, lon, lat, speed, heading, accuracy, altitude, battery}."""
    if not isinstance(obj, dict):
        raise InvalidInput(where, "each position must be a JSON object")
    ts_value = next((obj[k] for k in ("ts", "time", "timestamp") if obj.get(k) not in (None, "")), None)
    ts = parse_time(ts_value, f"{where}.ts", tz)
    lon = number_field(obj, "lon", f"{where}.lon", -180, 180, required=True)
    lat = number_field(obj, "lat", f"{where}.lat", -90, 90, required=True)
    return Fix(ts=ts, lon=lon, lat=lat,
               speed=number_field(obj, "speed", f"{where}.speed", 0, 1000),
               heading=_heading(number_field(obj, "heading", f"{where}.heading", 0, 360)),
               accuracy=number_field(obj, "accuracy", f"{where}.accuracy", 0, 1e6),
               altitude=number_field(obj, "altitude", f"{where}.altitude", -1000, 20000),
               battery=number_field(obj, "battery", f"{where}.battery", 0, 100))


def _heading(degrees: float | None) -> float | None:
    """A course in [0, 360): due north is 0 whether a device says 0 or 360."""
    return None if degrees is None else degrees % 360


def parse_batch(body) -> list[Fix]:
    """The batch API's body: {"positions": [...]} or a bare list of fixes."""
    items = body.get("positions") if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise InvalidInput("positions", 'expected {"positions": [{"ts", "lon", "lat", …}, …]}')
    if not items:
        raise InvalidInput("positions", "the batch is empty")
    if len(items) > MAX_BATCH:
        raise InvalidInput("positions", f"at most {MAX_BATCH} positions per batch; got {len(items)}")
    return [parse_fix(item, f"positions[{i}]") for i, item in enumerate(items)]
