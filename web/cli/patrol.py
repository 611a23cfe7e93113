"""`anwang units`, `anwang tracks`, `anwang simulate`: patrol units, their tracks, and the demo's
simulated patrol.
"""
from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from geo import audit, db, settings
from geo.errors import AnwangError
from geo.patrol import fixes, units
from geo.patrol.filters import Limits
from web.cli.common import friendly, ready_engine


# -- patrol: units, tracks, simulator ----------------------------------------------------------
@click.group("units", cls=AppGroup)
def units_group():
    """Patrol units (car, foot patrol, volunteer team) and their tracking devices."""


@units_group.command("add", with_appcontext=False)
@click.argument("callsign")
@click.option("--kind", required=True, type=click.Choice(["car", "foot", "volunteer"]))
@click.option("--device-id", help="The tracking device's id (Traccar Client's device identifier).")
@click.option("--area", help="Home area code (township, village or grid).")
@click.option("--status", default="off_duty", show_default=True,
              type=click.Choice(["on_duty", "busy", "off_duty"]))
@friendly
def units_add(callsign, kind, device_id, area, status):
    """Create a unit and print its device token (shown only once)."""

    with db.session_scope(ready_engine()) as session:
        _, token = units.add_unit(session, audit.Actor.cli(), callsign, kind, device_id, area, status)
    click.echo(token)


@units_group.command("token", with_appcontext=False)
@click.argument("callsign")
@friendly
def units_token(callsign):
    """Replace a unit's device token and print the new one."""

    with db.session_scope(ready_engine()) as session:
        click.echo(units.rotate_token(session, audit.Actor.cli(), callsign))


@units_group.command("status", with_appcontext=False)
@click.argument("callsign")
@click.argument("status", type=click.Choice(["on_duty", "busy", "off_duty"]))
@friendly
def units_status(callsign, status):
    """Set a unit's duty status."""

    with db.session_scope(ready_engine()) as session:
        units.set_status(session, audit.Actor.cli(), callsign, status)
    click.echo(f"{callsign} is {status}")


@units_group.command("shift", with_appcontext=False)
@click.argument("callsign")
@click.option("--start", help="ISO 8601 start (default: now).")
@click.option("--hours", default=24.0, show_default=True, type=float)
@click.option("--task", help="What the shift is for (day patrol, night watch …).")
@friendly
def units_shift(callsign, start, hours, task):
    """Add a duty shift (24 hours by default)."""
    from datetime import datetime, timezone


    starts = fixes.parse_time(start, "start") if start else datetime.now(timezone.utc).replace(microsecond=0)
    with db.session_scope(ready_engine()) as session:
        sid = units.add_shift(session, audit.Actor.cli(), callsign, starts, hours, task)
    click.echo(f"shift {sid}: {callsign} from {starts.isoformat()} for {hours:g} h")


@click.group("tracks", cls=AppGroup)
def tracks_group():
    """Patrol tracks: GPX import and shift tracks."""


@tracks_group.command("import", with_appcontext=False)
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--unit", "callsign", required=True, help="Call sign of the unit the track belongs to.")
@friendly
def tracks_import(path, callsign):
    """Import a GPX file; print the points imported and the length in metres."""
    from geo.patrol import gpx

    with db.session_scope(ready_engine()) as session:
        result = gpx.import_path(session, audit.Actor.cli(), callsign, path, limits=Limits(
            settings.number("ANWANG_MAX_SPEED_MS"), settings.number("ANWANG_POOR_ACCURACY_M")))
    click.echo(f"{result.points} points imported, length {result.length_m:.1f} m "
               f"({len(result.tracks)} track(s) of {result.track_points} points)")
    for t in result.tracks:
        kind = "timed track" if t["timed"] else "untimed route"
        click.echo(f"  {kind}: {t['points']} points, {t['length_m']:.1f} m"
                   + (f"  ({t['reason']})" if t["reason"] else ""))
    for reason in result.skipped:
        click.echo(f"  skipped {reason}")


@tracks_group.command("build", with_appcontext=False)
@click.option("--unit", "callsign", required=True)
@click.option("--shift", "shift_id", type=int, help="Shift id (default: the current shift, or the last 24 h).")
@friendly
def tracks_build(callsign, shift_id):
    """Build a unit's shift track from its clean positions."""
    from geo.patrol import tracks

    with db.session_scope(ready_engine()) as session:
        out = tracks.build(session, units.unit_id(session, callsign), shift_id)
    if out is None:
        click.echo(f"{callsign}: fewer than two clean positions in that shift")
        sys.exit(1)
    click.echo(f"track {out['id']}: {out['points']} points, {out['length_m']:.1f} m, "
               f"{out['duration_s'] / 60:.1f} min, {len(out['grids'])} grid(s)")


@click.group("simulate", cls=AppGroup)
def simulate_group():
    """Simulators for demos and benchmarks."""


@simulate_group.command("patrol", with_appcontext=False)
@click.option("--units", "count", default=20, show_default=True, type=click.IntRange(1, 5000))
@click.option("--interval", default=5.0, show_default=True, type=click.FloatRange(0.2, 3600))
@click.option("--url", default="http://127.0.0.1:5000", show_default=True, help="The running app.")
@click.option("--duration", default=600.0, show_default=True, type=float,
              help="Seconds to run (0: until Ctrl-C).")
@click.option("--protocol", default="api", show_default=True, type=click.Choice(["api", "osmand"]))
@click.option("--area", help="Drive only on roads in this area, and make it the units' home.")
@click.option("--prefix", default="SIM", show_default=True)
@click.option("--wait", "wait_for_app", is_flag=True, help="Wait up to a minute for the app to answer first.")
@friendly
def simulate_patrol(count, interval, url, duration, protocol, area, prefix, wait_for_app):
    """Drive N units along the demo roads, pinging the app over HTTP every S seconds."""
    from data import simulator

    with db.session_scope(ready_engine()) as session:
        network = simulator.load_network(session, area)
        if not network.roads:
            raise AnwangError("no roads to drive on: load the demo first (`anwang demo`)")
        units = simulator.prepare_units(session, count, prefix, area)
    sim = simulator.Simulator(url, units, network, interval, protocol)
    if wait_for_app and not simulator.wait_for(url, 60):
        raise AnwangError(f"no answer from {url}/api/health within 60 s")
    click.echo(f"{count} units on {len(network.roads)} roads, one fix every {interval:g} s "
               f"via {protocol} to {url}" + (f" for {duration:g} s" if duration > 0 else " (Ctrl-C stops)"))
    def report(s):
        last = f"  last error: {s['last_error']}" if s["errors"] else ""
        click.echo(f"  {s['elapsed_s']:>7.1f} s  sent {s['sent']:,}  errors {s['errors']:,}  "
                   f"{s['rate_per_s']:.1f}/s{last}")

    try:
        stats = sim.run(duration, report)
    except KeyboardInterrupt:
        stats = sim.stats(0)
    report(stats)
