"""The OsmAnd / Traccar Client protocol: the query-string and JSON forms decoded into fixes, or into a
report without a position (a heartbeat, or cell towers and Wi-Fi access points) when a request
carries no coordinates, as Traccar accepts it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo

from geo.errors import InvalidInput
from geo.patrol.events import Heard
from geo.patrol.filters import FLAG_INVALID
from geo.patrol.fixes import Fix, number_field, parse_fix, parse_time

# -- OsmAnd / Traccar Client -----------------------------------------------------------------
KNOTS = 0.514444   # m/s per knot: the query-string form carries speed in knots
MAX_CELLS = 32     # cell towers or Wi-Fi access points kept from one request
FALSE = ("false", "0", "no")


@dataclass
class Report:
    """What one OsmAnd request reported: the device, its fixes, and a report without a position."""

    device: str
    fixes: list[Fix] = field(default_factory=list)
    heard: Heard | None = None


def _multi(params) -> dict[str, list[str]]:
    """Every value of every parameter, from a mapping, a MultiDict or a list of pairs."""
    if hasattr(params, "items"):
        pairs = params.items(multi=True) if hasattr(params, "getlist") else params.items()
    else:
        pairs = params
    out: dict[str, list[str]] = {}
    for key, value in pairs:
        if value not in (None, ""):
            out.setdefault(key, []).append(str(value))
    return out


def _cells(values: list[str]) -> list[dict]:
    """`cell=mcc,mnc,lac,cid[,signal]` as Traccar's query form sends them."""
    out = []
    for value in values[:MAX_CELLS]:
        parts = value.split(",")
        try:
            numbers = [int(p) for p in parts]
        except ValueError:
            numbers = []
        if len(numbers) not in (4, 5):
            raise InvalidInput("cell", f"a cell is mcc,mnc,lac,cid[,signal]; got {value!r}")
        cell = dict(zip(("mcc", "mnc", "lac", "cid"), numbers))
        if len(numbers) == 5:
            cell["signal"] = numbers[4]
        out.append(cell)
    return out


def _wifi(values: list[str]) -> list[dict]:
    """`wifi=mac,signal` access points."""
    out = []
    for value in values[:MAX_CELLS]:
        mac, _, signal = value.partition(",")
        try:
            out.append({"mac": mac.replace("-", ":").lower(), "signal": int(signal)})
        except ValueError:
            raise InvalidInput("wifi", f"a Wi-Fi access point is mac,signal; got {value!r}") from None
    return out


def parse_osmand_query(params, tz: tzinfo = timezone.utc) -> Report:
    """The query-string (or form-body) form Traccar Client sends:
    `?id=&timestamp=&lat=&lon=&speed=&bearing=&altitude=&accuracy=&hdop=&batt=` (speed in knots,
    timestamp in Unix seconds, milliseconds, ISO 8601 or `yyyy-MM-dd HH:mm:ss` in `tz`, battery in
    %). Without coordinates it is a report of cell towers (`cell=`) and Wi-Fi (`wifi=`), or a
    heartbeat."""
    values = _multi(params)
    get = lambda k: values[k][0] if k in values else None   # noqa: E731
    device = get("id") or get("deviceid")
    if not device:
        raise InvalidInput("id", "the device id (id=…) is missing")
    lat, lon = get("lat"), get("lon")
    if lat is None and lon is None and get("location"):
        parts = str(get("location")).split(",")
        if len(parts) == 2:
            lat, lon = parts
    ts = get("timestamp") or datetime.now(timezone.utc).isoformat()
    battery = number_field({"batt": get("batt")}, "batt", "batt", 0, 100)
    if lat is None and lon is None:
        details = {"cell": _cells(values.get("cell", [])), "wifi": _wifi(values.get("wifi", []))}
        details = {k: v for k, v in details.items() if v}
        return Report(str(device), [], Heard(parse_time(ts, "timestamp", tz), "cells" if details else "heartbeat",
                                             battery, details or None))
    # Android reports an accuracy of 0 when it has none: a radius of 0 m is never a measurement.
    accuracy = get("accuracy") or get("hacc")
    obj = {"lat": lat, "lon": lon, "heading": get("bearing") or get("heading"), "altitude": get("altitude"),
           "accuracy": accuracy if accuracy is not None and _positive(accuracy) else None}
    fix = parse_fix({**obj, "ts": ts}, "query", tz)
    fix.battery = battery
    speed = get("speed")
    if speed is not None:
        knots = number_field({"speed": speed}, "speed", "speed", 0, 2000)
        fix.speed = knots * KNOTS if knots is not None else None
    # HDOP is a factor without a unit: it is kept as it came, and no radius is made up from it.
    fix.hdop = number_field({"hdop": get("hdop")}, "hdop", "hdop", 0, 100)
    if (get("valid") or "").lower() in FALSE:
        fix.flags |= FLAG_INVALID
    return Report(str(device), [fix])


def _positive(value) -> bool:
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return True          # not a number: parse_fix says so with the field's name


def _battery(loc: dict) -> float | None:
    """battery.level in 0–1 as a percentage (-1: unknown)."""
    battery = loc.get("battery")
    battery = battery if isinstance(battery, dict) else {}
    level = battery.get("level")
    try:
        return float(level) * 100 if level is not None and 0 <= float(level) <= 1 else None
    except (TypeError, ValueError):
        return None


def parse_osmand_json(body: dict, tz: tzinfo = timezone.utc) -> Report:
    """The JSON form of the Traccar Client 9 app (transistorsoft location template):
    {"location": {...} or [...], "device_id": "…"} with coords.{latitude, longitude, accuracy,
    speed (m/s), heading, altitude}, ISO timestamp and battery.level in 0–1. A location without
    coords (a heartbeat) reports that the device is alive, not where it is."""
    if not isinstance(body, dict):
        raise InvalidInput("body", "expected a JSON object")
    device = body.get("device_id") or body.get("id")
    locations = body.get("location")
    if locations is None:
        locations = {k: v for k, v in body.items() if k not in ("device_id", "id")}
    if isinstance(locations, dict):
        locations = [locations]
    if not device:
        raise InvalidInput("device_id", "the device id (device_id) is missing")
    if not isinstance(locations, list) or not locations:
        raise InvalidInput("location", "expected a location object or a list of them")
    report = Report(str(device))
    for i, loc in enumerate(locations):
        where = f"location[{i}]"
        if not isinstance(loc, dict):
            raise InvalidInput(where, "a location must be a JSON object")
        ts = loc.get("timestamp") or datetime.now(timezone.utc).isoformat()
        if "coords" not in loc:
            event = loc.get("event") if isinstance(loc.get("event"), str) and loc.get("event") else None
            heard = Heard(parse_time(ts, f"{where}.timestamp", tz), "heartbeat", _battery(loc),
                          {"event": event} if event else None)
            if report.heard is None or heard.ts >= report.heard.ts:
                report.heard = heard
            continue
        c = loc["coords"]
        if not isinstance(c, dict):
            raise InvalidInput(where, "coords must be an object with latitude and longitude")
        report.fixes.append(parse_fix({"ts": ts, "lat": c.get("latitude"), "lon": c.get("longitude"),
                                       "speed": c.get("speed"), "heading": c.get("heading"),
                                       "accuracy": c.get("accuracy"), "altitude": c.get("altitude"),
                                       "battery": _battery(loc)}, where, tz))
    return report
