"""The H02 protocol (Sinotrack and many other Chinese trackers): text messages over TCP.

A message is `*HQ,ID,COMMAND,…#` (some makers write another word for HQ). The position commands
(V1, and V2, V4, V19, VI1 which carry the same fields) read
`hhmmss,A|V,ddmm.mmmm,N|S,dddmm.mmmm,E|W,speed in knots,course,ddmmyy,status`: UTC time, `A` for a
valid fix (anything else is stored flagged as no fix), degrees and minutes. NBR carries the cell
towers the device hears; every other command (LINK, XT, V3, …) reports that the device is alive.
The server sends nothing back: V1 needs no answer. Binary (`$…`) reports are not read.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from geo.patrol.events import Heard
from geo.patrol.filters import FLAG_INVALID
from geo.patrol.fixes import Fix

KNOTS = 0.514444
MAX_MESSAGE = 1024          # no H02 message is longer; a start without an end that far is noise
POSITIONS = {"V1", "V2", "V4", "V19", "VI1"}
# time, validity, latitude, N/S, longitude, E/W, speed, course, (a one- or two-digit field some
# firmware adds,) date — found anywhere after the command, so V4's leading reply fields are passed over.
POSITION = re.compile(r"(?:^|,)(\d{6})?,([A-Z0-9]?),(-?\d+(?:-\d+)?(?:\.\d+)?)?,([NS]),"
                      r"(-?\d+(?:-\d+)?(?:\.\d+)?)?,([EW]),(\d+(?:\.\d+)?)?,(\d+(?:\.\d+)?)?(?:,\d{1,2})?,"
                      r"(\d{6})?(?:,|$)")


class Malformed(ValueError):
    """A message between `*` and `#` that no H02 device sends."""


def split(buffer: bytes) -> tuple[list[str], bytes, int]:
    """Cut the complete `*…#` messages off the front of what a connection has read.

    Returns the messages, what is left (a message still arriving) and how many bytes were skipped
    (line ends, noise, and a start cut off by the next one).
    """
    messages: list[str] = []
    i = skipped = 0
    while True:
        start = buffer.find(b"*", i)
        if start < 0:
            return messages, b"", skipped + len(buffer) - i
        skipped += start - i
        end = buffer.find(b"#", start)
        following = buffer.find(b"*", start + 1, end if end >= 0 else len(buffer))
        if following >= 0:                        # a message cut off by the next one
            skipped += following - start
            i = following
            continue
        if end < 0:
            if len(buffer) - start > MAX_MESSAGE:
                skipped, i = skipped + len(buffer) - start, len(buffer)
                continue
            return messages, buffer[start:], skipped
        messages.append(buffer[start:end + 1].decode("ascii", "replace"))
        i = end + 1


@dataclass
class Message:
    """What a message says: who sent it, and its fix or its report without a position."""

    device: str
    command: str
    fix: Fix | None = None
    heard: Heard | None = None


def _degrees(text: str, hemisphere: str, negative: str) -> float:
    """ddmm.mmmm (or dddmm.mmmm, or the -dd-mm.mmmm some firmware writes) as signed degrees."""
    dashed = re.fullmatch(r"-(\d+)-(\d+(?:\.\d+)?)", text)
    if dashed:
        degrees, minutes = int(dashed[1]), float(dashed[2])
    else:
        value = abs(float(text))
        degrees = int(value // 100)
        minutes = value - degrees * 100
    if minutes >= 60:
        raise Malformed(f"{text} is not degrees and minutes")
    value = degrees + minutes / 60
    return -value if hemisphere == negative else value


def _time(hhmmss: str | None, ddmmyy: str | None, received: datetime) -> datetime:
    if not hhmmss or not ddmmyy:
        return received                           # the device did not say: when it arrived
    try:
        return datetime(2000 + int(ddmmyy[4:6]), int(ddmmyy[2:4]), int(ddmmyy[0:2]), int(hhmmss[0:2]),
                        int(hhmmss[2:4]), int(hhmmss[4:6]), tzinfo=timezone.utc)
    except ValueError:
        raise Malformed(f"no date and time in {hhmmss},{ddmmyy}") from None


def _position(rest: str, received: datetime) -> Fix | None:
    match = POSITION.search(rest)
    if match is None or not match[3] or not match[5]:
        return None                               # no coordinates: the device has no fix to tell
    hhmmss, valid, lat, ns, lon, ew, speed, course, ddmmyy = match.groups()
    lat_deg, lon_deg = _degrees(lat, ns, "S"), _degrees(lon, ew, "W")
    if not (-90 <= lat_deg <= 90 and -180 <= lon_deg <= 180):
        raise Malformed(f"no position at {lat},{ns} {lon},{ew}")
    heading = float(course) if course else None
    return Fix(ts=_time(hhmmss, ddmmyy, received), lon=lon_deg, lat=lat_deg,
               speed=float(speed) * KNOTS if speed else None,
               heading=heading if heading is not None and 0 <= heading <= 360 else None,
               flags=0 if valid == "A" else FLAG_INVALID)


def _cells(fields: list[str], received: datetime) -> Heard:
    """NBR: time, MCC, MNC, timing advance, count, then LAC, cell id and signal of each, date."""
    try:
        mcc, mnc, count = int(fields[1]), int(fields[2]), int(fields[4])
        cells = [{"mcc": mcc, "mnc": mnc, "lac": int(fields[5 + 3 * k]), "cid": int(fields[6 + 3 * k]),
                  "signal": int(fields[7 + 3 * k])} for k in range(count)]
        ts = _time(fields[0], fields[5 + 3 * count], received)
    except (ValueError, IndexError):
        raise Malformed("NBR is time,mcc,mnc,ta,count,(lac,cid,signal)×count,date") from None
    return Heard(ts, "cells", None, {"cell": cells, "protocol": "h02"}, received=received)


def decode(message: str, received: datetime | None = None) -> Message:
    """What one `*…#` message says."""
    received = received or datetime.now(timezone.utc)
    fields = message.strip()[1:-1].split(",")
    if len(fields) < 2:
        raise Malformed(f"expected *XX,ID,COMMAND,…#; got {message[:60]!r}")
    device, command = fields[1].strip(), fields[2].strip().upper() if len(fields) > 2 else ""
    out = Message(device, command)
    if command in POSITIONS:
        out.fix = _position(",".join(fields[3:]), received)
    elif command == "NBR":
        out.heard = _cells(fields[3:], received)
    if out.fix is None and out.heard is None:
        out.heard = Heard(received, "heartbeat", None, {"command": command, "protocol": "h02"},
                          received=received)
    return out
