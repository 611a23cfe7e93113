"""GPX import on the real files in tests/data/realdata/gpx: every file is imported with its track
length within 1 % of gpxpy's length_2d, or refused with a clear reason; tracks without usable
times (none, or the bogus 1901 ones) become untimed routes and never positions."""
from __future__ import annotations

import gpxpy
import pytest
from sqlalchemy import text

from geo import audit
from geo.errors import InvalidInput
from geo.patrol import gpx, units

pytestmark = pytest.mark.realdata
ACTOR = audit.Actor("test")


@pytest.fixture()
def walker(session):
    uid, _ = units.add_unit(session, ACTOR, "GPX-1", "foot", "gpx-1")
    return uid


def _reference(path):
    with open(path, encoding="utf-8-sig") as fh:
        ref = gpxpy.parse(fh)
    routes = sum(r.length() for r in ref.routes if len(r.points) > 1)
    return ref, routes


def test_every_real_file_is_imported_within_one_percent_or_refused(session, walker, realdata):
    files = sorted((realdata / "gpx").glob("*.gpx"))
    assert len(files) >= 7
    outcomes = {}
    for path in files:
        ref, routes = _reference(path)
        try:
            result = gpx.import_path(session, ACTOR, "GPX-1", path)
        except InvalidInput as exc:
            assert exc.field == "file" and "no track or route" in exc.message
            outcomes[path.name] = "refused"
            continue
        assert result.track_length_m == pytest.approx(ref.length_2d(), rel=0.01), path.name
        assert result.route_length_m == pytest.approx(routes, rel=0.01), path.name
        timed_points = sum(len(s.points) for t in ref.tracks for s in t.segments
                           if len(s.points) > 1 and all(p.time and p.time.year >= 2000 for p in s.points)
                           and s.points[0].time != s.points[-1].time)
        assert result.points == timed_points, path.name
        outcomes[path.name] = result
    assert outcomes["unicode_with_bom.gpx"] == "refused"      # a single waypoint is not a track
    assert outcomes["cerknicko-jezero.gpx"].points == 296      # 7 timed segments, one empty one skipped
    assert any("0 point(s)" in s for s in outcomes["track-with-empty-segment.gpx"].skipped)
    assert outcomes["route.gpx"].tracks[0]["kind"] == "route"
    mixed = outcomes["korita-zbevnica.gpx"]
    assert [t["timed"] for t in mixed.tracks] == [False, True, True]   # one segment has no times
    # Nothing before 2000 ever became a position.
    assert session.execute(text("SELECT count(*) FROM positions WHERE unit_id = :u AND ts < '2000-01-01'"),
                           {"u": walker}).scalar() == 0


def test_1901_timestamps_make_an_untimed_route(session, walker, realdata):
    result = gpx.import_path(session, ACTOR, "GPX-1", realdata / "gpx" / "Mojstrovka.gpx")
    assert result.points == 0 and len(result.tracks) == 1
    track = result.tracks[0]
    assert track["timed"] is False and "1901" in track["reason"] and track["points"] == 184
    row = session.execute(text("SELECT source, stats FROM tracks WHERE id = :i"), {"i": track["id"]}).one()
    assert row.source == "gpx-route" and row.stats["timed"] is False


def test_timed_import_is_idempotent_and_feeds_positions(session, walker, realdata):
    path = realdata / "gpx" / "track-with-empty-segment.gpx"
    first = gpx.import_path(session, ACTOR, "GPX-1", path)
    again = gpx.import_path(session, ACTOR, "GPX-1", path)
    assert first.points == 9 and again.points == 0
    assert session.execute(text("SELECT count(*) FROM positions WHERE unit_id = :u"), {"u": walker}).scalar() == 9


def test_garbage_is_refused_with_the_reason(session, walker):
    with pytest.raises(InvalidInput, match="not a readable GPX"):
        gpx.import_gpx(session, ACTOR, "GPX-1", b"<gpx><trk><trkseg><trkpt lat='x'", "broken.gpx")
    with pytest.raises(InvalidInput, match="empty"):
        gpx.import_gpx(session, ACTOR, "GPX-1", b"", "empty.gpx")
