"""Which incidents an analysis looks at: area, categories, time range and audience — parsed once,
queried once, always through the audience's incidents relation (geo.policy).

Times are wall-clock Asia/Shanghai: a day or a month means the local calendar day or month. For an
audience that sees sensitive incidents generalised, a window is widened to whole local days, so no
two narrow windows can be subtracted to isolate one incident.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import areas
from geo.errors import InvalidInput
from geo.policy import Audience
from geo.vocabulary import CATEGORIES

TZ = ZoneInfo("Asia/Shanghai")
MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


SYSTEM = Audience.system()


@dataclass(frozen=True)
class Selection:
    """Incidents inside `area` (a code; None = everywhere), of `categories` (empty = all), in
    [since, until), as `audience` may read them (the system itself, exactly, by default)."""

    area: str | None = None
    categories: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    audience: Audience = SYSTEM

    def describe(self) -> dict:
        return {"area": self.area, "categories": list(self.categories) or list(CATEGORIES),
                "since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None,
                "generalised": not self.audience.exact}


@dataclass
class Points:
    """Incident points as parallel numpy arrays (lon, lat order)."""

    ids: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    category: np.ndarray
    severity: np.ndarray
    occurred: np.ndarray  # seconds since the epoch

    def __len__(self) -> int:
        return len(self.ids)


def parse_categories(value) -> tuple[str, ...]:
    """Accept a comma-separated list (or sequence) of incident categories; empty means all."""
    if value is None or value == "" or value == []:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    cats = tuple(dict.fromkeys(str(c).strip().lower() for c in items if str(c).strip()))
    bad = [c for c in cats if c not in CATEGORIES]
    if bad:
        raise InvalidInput("category", f"category must be any of {', '.join(CATEGORIES)} "
                                       f"(comma-separated); got {', '.join(bad)!r}")
    return cats


def parse_time(value, field_name: str, *, end: bool = False) -> datetime | None:
    """Parse an ISO date or date-time; a bare date is local midnight (the day after it when `end`)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=TZ)
    if isinstance(value, date):
        day = value + timedelta(days=1) if end else value
        return datetime.combine(day, time(), TZ)
    raw = str(value).strip()
    try:
        if len(raw) == 10:
            return parse_time(date.fromisoformat(raw), field_name, end=end)
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(field_name, f"{field_name} must be an ISO date (YYYY-MM-DD) or date-time; "
                                       f"got {raw!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=TZ)


def parse_month(value) -> tuple[datetime, datetime]:
    """Parse 'YYYY-MM' into the local month's [start, end)."""
    m = MONTH.match(str(value or "").strip())
    if not m:
        raise InvalidInput("month", f"month must be YYYY-MM; got {value!r}")
    year, month = int(m.group(1)), int(m.group(2))
    start = datetime(year, month, 1, tzinfo=TZ)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=TZ)
    return start, end


def previous_month(start: datetime) -> tuple[datetime, datetime]:
    """The local month before the one starting at `start`."""
    prev = (start - timedelta(days=1)).replace(day=1)
    return prev, start


def last_complete_month(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The local calendar month before the one `now` falls in: the newest month that has ended."""
    now = (now or datetime.now(TZ)).astimezone(TZ)
    return previous_month(now.replace(day=1, hour=0, minute=0, second=0, microsecond=0))


def parse(session: Session, args: Mapping, audience: Audience, *,
          default_area: str | None = None) -> Selection:
    """Build a Selection from request-like arguments — area (in the audience's scope; else
    `default_area`), category, since, until — for `audience`."""
    area = args.get("area") or default_area
    if not area:
        raise InvalidInput("area", "area is required (an area code, e.g. 411103)")
    code = audience.scope.area(session, area)["code"]
    since = parse_time(args.get("since"), "since")
    until = parse_time(args.get("until"), "until", end=True)
    if since and until and since >= until:
        raise InvalidInput("until", f"until must be after since; got since={args.get('since')!r}, "
                                    f"until={args.get('until')!r}")
    if audience.whole_days:
        since, until = whole_days(since, until)
    return Selection(area=code, categories=parse_categories(args.get("category")),
                     since=since, until=until, audience=audience)


def whole_days(since: datetime | None, until: datetime | None) -> tuple:
    """Widen [since, until) to whole local days (since back to its midnight, until on to the next)."""
    if since is not None:
        since = datetime.combine(since.astimezone(TZ).date(), time(), TZ)
    if until is not None:
        local = until.astimezone(TZ)
        day = local.date() if local.timetz().replace(tzinfo=None) == time() else local.date() + timedelta(days=1)
        until = datetime.combine(day, time(), TZ)
    return since, until


def latest(session: Session, audience: Audience) -> datetime | None:
    """When the newest incident the audience may read occurred."""
    params: dict = {}
    return session.execute(text(f"SELECT max(i.occurred_at) FROM {audience.incidents(params)}"),
                           params).scalar()


def area_geometry(session: Session, code: str):
    """The area's WGS84 (Multi)Polygon as a shapely geometry; NotFound for an unknown code."""
    row = areas.area_row(session, code)
    wkb = session.execute(text("SELECT ST_AsBinary(geom) FROM areas WHERE id = :id"),
                          {"id": row["id"]}).scalar_one()
    return shapely.from_wkb(bytes(wkb))


def query(sel: Selection, session: Session, alias: str = "i") -> tuple[str, str, dict]:
    """The relation (`FROM` text) of the incidents `sel`'s audience may read, the SQL conditions
    selecting those of `sel` in it, and their bound parameters."""
    params: dict = {}
    relation = sel.audience.incidents(params, alias)
    cond = [f"{alias}.geom IS NOT NULL", f"NOT {alias}.outside_jurisdiction"]
    if sel.area:
        row = areas.area_row(session, sel.area)
        # `&&`/ST_Intersects against the area's own geometry lets the GiST index on incidents.geom prune.
        cond.append(f"ST_Intersects({alias}.geom, (SELECT geom FROM areas WHERE id = :sel_area))")
        params["sel_area"] = row["id"]
    if sel.categories:
        cond.append(f"{alias}.category = ANY(:sel_cats)")
        params["sel_cats"] = list(sel.categories)
    if sel.since:
        cond.append(f"{alias}.occurred_at >= :sel_since")
        params["sel_since"] = sel.since
    if sel.until:
        cond.append(f"{alias}.occurred_at < :sel_until")
        params["sel_until"] = sel.until
    return relation, " AND ".join(cond), params


def points(session: Session, sel: Selection, *, public: bool = False) -> Points:
    """Fetch the selected incidents as arrays, where the audience sees them (a sensitive one at its
    generalised point for a generalising audience); `public` leaves out those flagged sensitive."""
    relation, cond, params = query(sel, session)
    if public:
        cond += " AND NOT i.sensitive"
    rows = session.execute(text(f"""
        SELECT i.id, ST_X(i.geom), ST_Y(i.geom), i.category, i.severity,
               extract(epoch FROM i.occurred_at)
          FROM {relation} WHERE {cond} ORDER BY i.id"""), params).all()
    if not rows:
        empty = np.array([], float)
        return Points(np.array([], np.int64), empty, empty, np.array([], object),
                      np.array([], np.int16), empty)
    ids, lon, lat, cat, sev, occ = zip(*rows)
    return Points(np.array(ids, np.int64), np.array(lon, float), np.array(lat, float),
                  np.array(cat, object), np.array(sev, np.int16), np.array(occ, float))
