"""The OsmAnd / Traccar Client protocol: the query-string and JSON forms decoded into fixes.
"""
from __future__ import annotations

from datetime import datetime, timezone

from geo.errors import InvalidInput
from geo.patrol.fixes import Fix, number_field, parse_fix

# -- OsmAnd / Traccar Client -----------------------------------------------------------------
KNOTS = 0.514444   # m/s per knot: the query-string form carries speed in knots


def parse_osmand_query(params) -> tuple[str, list[Fix]]:
    """The query-string (or form-body) form Traccar Client sends:
    `?id=&timestamp=&lat=&lon=&speed=&bearing=&altitude=&accuracy=&batt=` (speed in knots,
    timestamp in Unix seconds, milliseconds, ISO 8601 or `yyyy-MM-dd HH:mm:ss`, battery in %)."""
    get = lambda k: params.get(k) if params.get(k) not in (None, "") else None   # noqa: E731
    device = get("id") or get("deviceid")
    if not device:
        raise InvalidInput("id", "the device id (id=…) is missing")
    lat, lon = get("lat"), get("lon")
    if (lat is None or lon is None) and get("location"):
        parts = str(get("location")).split(",")
        if len(parts) == 2:
            lat, lon = parts
    obj = {"lat": lat, "lon": lon, "heading": get("bearing") or get("heading"),
           "altitude": get("altitude"), "accuracy": get("accuracy"), "battery": get("batt")}
    fix = parse_fix({**obj, "ts": get("timestamp") or datetime.now(timezone.utc).isoformat()}, "query")
    speed = get("speed")
    if speed is not None:
        knots = number_field({"speed": speed}, "speed", "speed", 0, 2000)
        fix.speed = knots * KNOTS if knots is not None else None
    if fix.accuracy is None and get("hdop") is not None:
        hdop = number_field({"hdop": get("hdop")}, "hdop", "hdop", 0, 100)
        fix.accuracy = hdop * 5 if hdop is not None else None   # ~5 m user range error per HDOP unit
    return str(device), [fix]


def parse_osmand_json(body: dict) -> tuple[str, list[Fix]]:
    """The JSON form of the Traccar Client 9 app (transistorsoft location template):
    {"location": {...} or [...], "device_id": "…"} with coords.{latitude, longitude, accuracy,
    speed (m/s), heading, altitude}, ISO timestamp and battery.level in 0–1."""
    if not isinstance(body, dict):
        raise InvalidInput("body", "expected a JSON object")
    device = body.get("device_id") or body.get("id")
    locations = body.get("location")
    if locations is None and "coords" in body:
        locations = body
    if isinstance(locations, dict):
        locations = [locations]
    if not device:
        raise InvalidInput("device_id", "the device id (device_id) is missing")
    if not isinstance(locations, list) or not locations:
        raise InvalidInput("location", "expected a location object or a list of them")
    fixes = []
    for i, loc in enumerate(locations):
        where = f"location[{i}]"
        if not isinstance(loc, dict) or not isinstance(loc.get("coords"), dict):
            raise InvalidInput(where, "a location needs a coords object")
        c = loc["coords"]
        battery = loc.get("battery") if isinstance(loc.get("battery"), dict) else {}
        level = battery.get("level")
        try:
            level = float(level) * 100 if level is not None and float(level) >= 0 else None
        except (TypeError, ValueError):
            level = None
        fixes.append(parse_fix({"ts": loc.get("timestamp"), "lat": c.get("latitude"),
                                "lon": c.get("longitude"), "speed": c.get("speed"),
                                "heading": c.get("heading"), "accuracy": c.get("accuracy"),
                                "altitude": c.get("altitude"), "battery": level}, where))
    return str(device), fixes
