"""GPX import of a finished patrol track (GPX 1.0 and 1.1, with or without a byte-order mark).

Each track segment with at least two points is imported:

- a *timed* segment (every point has a time, all after 2000, none in the future, never going back,
  and the segment lasting more than zero seconds) becomes positions of the unit (flagged like any
  other fixes) and one stored track;
- a segment without usable times — no timestamps, or bogus ones such as the 1901-12-13 20:45:52
  that a zero 32-bit clock produces — becomes an *untimed route*: a stored track with its shape and
  length but no positions, because a time that is not real must not be taken as one.

Routes (`<rte>`) are untimed routes too. Waypoints alone, single points and empty segments are
not tracks: a file with nothing else is refused with the reason.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import audit
from geo.errors import InvalidInput, NotFound
from geo.patrol import fixes, ingest, units
from geo.patrol.filters import DEFAULT_LIMITS, Limits

EARLIEST = fixes.EARLIEST


@dataclass
class Part:
    """One line of the file: a track segment or a route."""

    kind: str                     # "track" or "route"
    name: str | None
    points: list                  # gpxpy points
    timed: bool
    reason: str | None = None     # why it is untimed


@dataclass
class ImportResult:
    file: str
    points: int = 0               # positions inserted (timed points)
    track_points: int = 0         # points stored in tracks (timed and untimed)
    length_m: float = 0.0         # all imported tracks and routes
    track_length_m: float = 0.0   # from <trk> only: comparable to gpxpy's length_2d
    route_length_m: float = 0.0
    tracks: list = field(default_factory=list)
    skipped: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"file": self.file, "points": self.points, "track_points": self.track_points,
                "length_m": round(self.length_m, 1), "track_length_m": round(self.track_length_m, 1),
                "route_length_m": round(self.route_length_m, 1), "tracks": self.tracks,
                "skipped": self.skipped}


def parse(data: bytes | str, name: str = "upload"):
    """Parse GPX bytes (a BOM is fine) with gpxpy; InvalidInput with the parser's reason if not GPX."""
    import gpxpy
    import gpxpy.gpx

    if isinstance(data, bytes):
        raw = data
        try:
            data = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            data = raw.decode("latin-1")
    data = data.lstrip("\ufeff")
    if not data.strip():
        raise InvalidInput("file", f"{name}: the file is empty")
    try:
        return gpxpy.parse(data)
    except gpxpy.gpx.GPXException as exc:
        raise InvalidInput("file", f"{name}: not a readable GPX file ({exc})") from None
    except Exception as exc:  # noqa: BLE001 — gpxpy raises plain errors on some broken input
        raise InvalidInput("file", f"{name}: not a readable GPX file ({exc.__class__.__name__}: {exc})") from None


def _utc(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    if t.tzinfo is None or t.utcoffset() is None:
        return t.replace(tzinfo=timezone.utc)    # GPX times are UTC by the standard
    return t.astimezone(timezone.utc)


def _point_time(p) -> datetime:
    """A point's time as UTC, for the points of a timed part (which all have one)."""
    t = _utc(p.time)
    if t is None:
        raise InvalidInput("file", "a point of a timed track segment has no time")
    return t


def _timing(points) -> tuple[bool, str | None]:
    maybe_times = [_utc(p.time) for p in points]
    if any(t is None for t in maybe_times):
        missing = sum(1 for t in maybe_times if t is None)
        return False, f"{missing} of {len(maybe_times)} points have no time"
    times = [t for t in maybe_times if t is not None]
    if min(times) < EARLIEST:
        hint = (" (1901-12-13 20:45:52 is the smallest 32-bit Unix time: the device had no clock)"
                if min(times).year == 1901 else "")
        return False, (f"timestamps from {min(times).date().isoformat()} are not real times{hint}: "
                       "imported as an untimed route")
    if max(times) > datetime.now(timezone.utc) + timedelta(days=1):
        return False, "timestamps lie in the future"
    if any(b < a for a, b in zip(times, times[1:])):
        return False, "timestamps go backwards"
    if times[-1] == times[0]:
        return False, "every point has the same time"
    return True, None


def parts(gpx) -> tuple[list[Part], list[str]]:
    """The importable lines of a parsed file, and why the rest was skipped."""
    out, skipped = [], []
    for ti, track in enumerate(gpx.tracks):
        for si, seg in enumerate(track.segments):
            label = f"track {ti + 1} segment {si + 1}"
            if len(seg.points) < 2:
                skipped.append(f"{label}: {len(seg.points)} point(s), not a line")
                continue
            timed, reason = _timing(seg.points)
            out.append(Part("track", track.name, seg.points, timed, reason))
    for ri, route in enumerate(gpx.routes):
        if len(route.points) < 2:
            skipped.append(f"route {ri + 1}: {len(route.points)} point(s), not a line")
            continue
        out.append(Part("route", route.name, route.points, False, "a route has no times"))
    return out, skipped


def _require_coordinates(part: Part, name: str) -> None:
    """Every point of a part in degrees on the globe (a NaN or 1e400 from a broken writer is refused)."""
    for i, p in enumerate(part.points, start=1):
        for axis, value, limit in (("lon", p.longitude, 180), ("lat", p.latitude, 90)):
            if value is None or not math.isfinite(value) or abs(value) > limit:
                raise InvalidInput("file", f"{name}: {part.kind} point {i} has {axis} {value!r}, "
                                           f"not decimal degrees within ±{limit}")


def import_gpx(session: Session, actor: audit.Actor, callsign: str, data: bytes | str,
               name: str = "upload", limits: Limits = DEFAULT_LIMITS) -> ImportResult:
    """Import a GPX file for a unit; raise InvalidInput (with the reason) if nothing is a track."""
    gpx = parse(data, name)
    found, skipped = parts(gpx)
    for part in found:
        _require_coordinates(part, name)
    if not found:
        what = []
        if gpx.waypoints:
            what.append(f"{len(gpx.waypoints)} waypoint(s)")
        what.extend(skipped)
        raise InvalidInput("file", f"{name}: no track or route with at least two points"
                                   + (f" (found only {'; '.join(what)})" if what else " (the file is empty)"))
    ref = units.unit_by_id(session, units.unit_id(session, callsign))
    if ref is None:   # deleted since unit_id found it
        raise NotFound(f"no unit {callsign!r}", field="unit")
    uid = ref.id
    result = ImportResult(file=name, skipped=skipped)
    imported_at = datetime.now(timezone.utc)
    for part in found:
        coords = [(p.longitude, p.latitude) for p in part.points]
        if part.timed:
            batch = [fixes.Fix(ts=_point_time(p), lon=p.longitude, lat=p.latitude,
                               altitude=p.elevation, speed=None,
                               accuracy=(p.horizontal_dilution * 5 if p.horizontal_dilution else None))
                     for p in part.points]
            res = ingest.ingest(session, ref, batch, publish_live=False, update_last=False,
                                limits=limits)
            result.points += res.inserted
            starts, ends = _point_time(part.points[0]), _point_time(part.points[-1])
            source = "gpx"
        else:
            res = None
            starts = ends = imported_at
            source = "gpx-route"
        wkt = "LINESTRING(" + ",".join(f"{x!r} {y!r}" for x, y in coords) + ")"
        stats = {"name": part.name or name, "file": name, "kind": part.kind, "timed": part.timed,
                 "reason": part.reason}
        if res is not None:
            stats.update({"inserted": res.inserted, "duplicates": res.duplicates,
                          "flagged": {"jump": res.jumps, "poor_accuracy": res.poor_accuracy}})
        row = session.execute(text(
            "INSERT INTO tracks (unit_id, starts_at, ends_at, geom, length_m, points, source, stats) "
            "SELECT :u, :s, :e, g, ST_Length(g::geography), ST_NPoints(g), :src, CAST(:stats AS jsonb) "
            "FROM (SELECT ST_GeomFromText(:wkt, 4326) AS g) x RETURNING id, length_m"),
            {"u": uid, "s": starts, "e": ends, "wkt": wkt, "src": source,
             "stats": json.dumps(stats, ensure_ascii=False, default=str)}).mappings().one()
        length = float(row["length_m"])
        result.length_m += length
        result.track_points += len(coords)
        if part.kind == "track":
            result.track_length_m += length
        else:
            result.route_length_m += length
        result.tracks.append({"id": row["id"], "kind": part.kind, "timed": part.timed,
                              "points": len(coords), "length_m": round(length, 1),
                              "starts_at": starts.isoformat() if part.timed else None,
                              "ends_at": ends.isoformat() if part.timed else None,
                              "reason": part.reason})
    audit.record(session, actor, "tracks.import", target_type="unit", target_id=callsign,
                 details={"file": name, "points": result.points, "length_m": round(result.length_m, 1),
                          "tracks": len(result.tracks)})
    return result


def import_path(session: Session, actor: audit.Actor, callsign: str, path: str | Path,
                limits: Limits = DEFAULT_LIMITS) -> ImportResult:
    path = Path(path)
    if not path.is_file():
        raise InvalidInput("path", f"no such file: {path}")
    return import_gpx(session, actor, callsign, path.read_bytes(), path.name, limits)
