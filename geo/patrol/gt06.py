"""The GT06 protocol (Concox and the many trackers that copy it): binary frames over TCP.

A frame is `78 78`, a length byte (protocol number to CRC), the protocol number, its content, a
serial number, a CRC-ITU of length … serial, and `0D 0A`; `79 79` frames carry a two-byte length.
A device logs in with its IMEI (BCD) first; the server acknowledges the login, heartbeats, locations
and alarms with the protocol number and the serial number it was sent. What is read here:

- 0x01 login: the IMEI (the unit's device id) and, when sent, the device's time zone;
- 0x12 / 0x22 location, 0x16 / 0x26 alarm: UTC date and time (unless the login named a zone),
  satellites, latitude and longitude in 1/30000 minute, speed in km/h, course and status bits
  (positioned, east/west, north/south); an alarm also carries its code;
- 0x13 status / 0x23 heartbeat: a report without a position (charging, ignition, battery);
- 0x8A time request: answered with the server's UTC time.
Other protocol numbers are framed and passed over.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo

from geo.patrol.events import Heard
from geo.patrol.filters import FLAG_INVALID
from geo.patrol.fixes import Fix

SHORT, LONG, STOP = b"\x78\x78", b"\x79\x79", b"\r\n"
LOGIN, LOCATION, STATUS, ALARM = 0x01, 0x12, 0x13, 0x16
LOCATION_2, HEARTBEAT_2, ALARM_2, TIME_REQUEST = 0x22, 0x23, 0x26, 0x8A
ACKNOWLEDGED = {LOGIN, LOCATION, STATUS, ALARM, LOCATION_2, HEARTBEAT_2, ALARM_2}
MAX_LENGTH = 2048      # longer is not a GT06 frame but a false start in noise
UNIT = 30000 * 60      # latitude and longitude are sent in 1/30000 minute
# Alarm codes of the alarm packet in the GT06 protocol description (variants add their own).
ALARMS = {0x01: "sos", 0x02: "power_cut", 0x03: "vibration", 0x04: "fence_in", 0x05: "fence_out",
          0x06: "overspeed"}


class Malformed(ValueError):
    """A frame that is framed correctly but says something no GT06 frame says."""


def crc_itu(data: bytes) -> int:
    """CRC-ITU as GT06 uses it (CRC-16/X-25: reflected 0x1021, initial and final 0xFFFF)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def encode(protocol: int, content: bytes, serial: int) -> bytes:
    """A `78 78` frame (what the server sends)."""
    body = bytes([len(content) + 5, protocol]) + content + serial.to_bytes(2, "big")
    return SHORT + body + crc_itu(body).to_bytes(2, "big") + STOP


def ack(protocol: int, serial: int) -> bytes:
    """The acknowledgement of a frame: its protocol number and serial, no content."""
    return encode(protocol, b"", serial)


def time_reply(serial: int, now: datetime) -> bytes:
    """The answer to a time request: the server's UTC time, a byte per field."""
    t = now.astimezone(timezone.utc)
    return encode(TIME_REQUEST, bytes([t.year - 2000, t.month, t.day, t.hour, t.minute, t.second]), serial)


@dataclass
class Frame:
    protocol: int
    content: bytes
    serial: int


def split(buffer: bytes) -> tuple[list[Frame], bytes, int]:
    """Cut the complete frames off the front of what a connection has read.

    Returns the frames, what is left (the start of a frame still arriving) and how many bytes were
    skipped: noise before a start mark, and frames whose length, stop bytes or CRC are wrong.
    """
    frames: list[Frame] = []
    i = skipped = 0
    while True:
        short, long = buffer.find(SHORT, i), buffer.find(LONG, i)
        start = min((p for p in (short, long) if p >= 0), default=-1)
        if start < 0:
            keep = 1 if buffer[-1:] in (b"\x78", b"\x79") and len(buffer) > i else 0
            return frames, buffer[len(buffer) - keep:], skipped + len(buffer) - i - keep
        skipped += start - i
        i = start
        head = 4 if buffer[i] == LONG[0] else 3
        if len(buffer) - i < head:
            return frames, buffer[i:], skipped
        length = int.from_bytes(buffer[i + 2:i + head], "big")
        if not 5 <= length <= MAX_LENGTH:        # protocol, serial and CRC take five bytes
            i, skipped = i + 1, skipped + 1
            continue
        total = head + length + 2
        if len(buffer) - i < total:
            return frames, buffer[i:], skipped
        raw = buffer[i:i + total]
        if raw[-2:] != STOP:
            i, skipped = i + 1, skipped + 1      # a false start: look for the next mark
            continue
        i += total
        if crc_itu(raw[2:-4]) != int.from_bytes(raw[-4:-2], "big"):
            skipped += total
            continue
        frames.append(Frame(raw[head], raw[head + 1:-6], int.from_bytes(raw[-6:-4], "big")))


@dataclass
class Message:
    """What a frame says: a login, a fix, a report without a position, or nothing to store."""

    protocol: int
    serial: int
    imei: str | None = None
    zone: tzinfo | None = None
    fix: Fix | None = None
    heard: Heard | None = None


def _login(frame: Frame) -> Message:
    digits = frame.content[:8].hex()
    if len(digits) != 16 or not digits.isdigit():
        raise Malformed(f"a login carries the IMEI in 8 BCD bytes; got {frame.content[:8].hex()}")
    message = Message(frame.protocol, frame.serial, imei=digits[1:] if digits[0] == "0" else digits)
    if len(frame.content) >= 12:
        # Type (2 bytes), then the zone: bits 15–4 are hours × 100 + minutes, bit 3 set means west.
        bits = int.from_bytes(frame.content[10:12], "big")
        minutes = (bits >> 4) // 100 * 60 + (bits >> 4) % 100
        if minutes <= 14 * 60:
            message.zone = timezone(timedelta(minutes=-minutes if bits & 0x08 else minutes))
    return message


def _fix(content: bytes, zone: tzinfo) -> Fix:
    """The 18-byte GPS block: time, satellites, latitude, longitude, speed, course and status."""
    if len(content) < 18:
        raise Malformed(f"a location needs 18 bytes of GPS data; got {len(content)}")
    try:
        ts = datetime(2000 + content[0], content[1], content[2], content[3], content[4], content[5],
                      tzinfo=zone).astimezone(timezone.utc)
    except ValueError:
        raise Malformed(f"no date and time in {content[:6].hex()}") from None
    lat = int.from_bytes(content[7:11], "big") / UNIT
    lon = int.from_bytes(content[11:15], "big") / UNIT
    status = int.from_bytes(content[16:18], "big")
    if not status & 0x0400:
        lat = -lat                                # south
    if status & 0x0800:
        lon = -lon                                # west
    if lat > 90 or lon < -180 or lon > 180 or lat < -90:
        raise Malformed(f"no position at {lat}, {lon}")
    return Fix(ts=ts, lon=lon, lat=lat, speed=content[15] / 3.6, heading=float(status & 0x03FF),
               flags=0 if status & 0x1000 else FLAG_INVALID)


def decode(frame: Frame, zone: tzinfo = timezone.utc, received: datetime | None = None) -> Message:
    """What one frame says; `zone` is the device's time zone (UTC unless its login named one)."""
    received = received or datetime.now(timezone.utc)
    message = Message(frame.protocol, frame.serial)
    content = frame.content
    if frame.protocol == LOGIN:
        return _login(frame)
    if frame.protocol in (LOCATION, LOCATION_2):
        if content:                              # an empty location says nothing (but is answered)
            message.fix = _fix(content, zone)
    elif frame.protocol in (ALARM, ALARM_2):
        message.fix = _fix(content, zone)
        at = 18 + (content[18] if len(content) > 18 else 0)
        if len(content) < at + 4:
            raise Malformed("an alarm needs its status after the cell data")
        code = content[at + 3]
        if code:
            message.heard = Heard(message.fix.ts, "alarm", _level(content[at + 1]),
                                  {"code": code, "name": ALARMS.get(code), "protocol": "gt06"},
                                  received=received)
    elif frame.protocol == STATUS:
        if len(content) < 3:
            raise Malformed("a status needs its terminal, voltage and signal bytes")
        message.heard = Heard(received, "heartbeat", _level(content[1]),
                              {**_terminal(content[0]), "gsm": content[2]}, received=received)
    elif frame.protocol == HEARTBEAT_2:
        if len(content) < 4:
            raise Malformed("a heartbeat needs its terminal, voltage and signal bytes")
        message.heard = Heard(received, "heartbeat", None,
                              {**_terminal(content[0]), "volts": int.from_bytes(content[1:3], "big") / 100,
                               "gsm": content[3]}, received=received)
    return message


def _level(level: int) -> float | None:
    """The voltage level 0–6 as a battery percentage."""
    return round(level * 100 / 6, 1) if 0 <= level <= 6 else None


def _terminal(info: int) -> dict:
    """The terminal information byte: ignition (ACC), charging and GPS tracking."""
    return {"ignition": bool(info & 0x02), "charging": bool(info & 0x04), "gps": bool(info & 0x40)}
