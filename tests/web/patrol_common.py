"""What the patrol tests share: the clock, a device's positions, a page's CSRF token and a batch."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from sqlalchemy import text

from geo import audit
from geo.patrol import units

ACTOR = audit.Actor("test")


def now():
    return datetime.now(timezone.utc).replace(microsecond=0)


def positions(session, uid):
    return session.execute(text("SELECT ts, ST_X(geom), ST_Y(geom), speed, heading, accuracy, battery, flags "
                                "FROM positions WHERE unit_id = :u ORDER BY ts"), {"u": uid}).all()


def csrf(client) -> dict:
    """The page's CSRF token as the header the dispatch page sends with every write."""
    page = client.get("/dispatch").get_data(as_text=True)
    return {"X-CSRFToken": re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)}


def batch(n=50, start=None):
    start = start or now() - timedelta(minutes=10)
    return {"positions": [{"ts": (start + timedelta(seconds=5 * i)).isoformat(), "lon": 10.002 + i * 0.00005,
                           "lat": 10.005, "speed": 1.4, "heading": 90, "accuracy": 6, "battery": 77}
                          for i in range(n)]}


def committed_unit(engine, callsign, device, area="411103"):
    from geo import db

    with db.session_scope(engine) as s:
        s.execute(text("DELETE FROM units WHERE callsign = :c"), {"c": callsign})
        _, token = units.add_unit(s, ACTOR, callsign, "car", device, area, "on_duty")
    return token


def cleanup(engine, callsign):
    from geo import db

    with db.session_scope(engine) as s:
        uid = s.execute(text("SELECT id FROM units WHERE callsign = :c"), {"c": callsign}).scalar()
        if uid:
            s.execute(text("DELETE FROM positions WHERE unit_id = :u"), {"u": uid})
            s.execute(text("DELETE FROM units WHERE id = :u"), {"u": uid})
