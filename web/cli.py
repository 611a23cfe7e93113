"""The `anwang` command: database, demo, users and tokens, areas, serve.

Failures the user can fix (a missing package, a bad argument) print one clear line and exit 1;
tracebacks are for bugs only.
"""
from __future__ import annotations

import functools
import secrets
import sys
import time

import click
from flask.cli import FlaskGroup

from geo import audit, db, settings
from geo.cluster import Cluster
from geo.errors import AnwangError


def _create_app():
    from . import create_app

    return create_app()


def friendly(fn):
    """Turn domain errors into one line on stderr and exit status 1."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AnwangError as exc:
            where = f" ({exc.field})" if exc.field else ""
            click.echo(f"error{where}: {exc.message}", err=True)
            sys.exit(1)
    return wrapper


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False,
             add_version_option=False, load_dotenv=False, set_debug_flag=False)
def main():
    """Anwang (安网): grid-based public-safety governance on PostGIS."""


def ready_engine():
    """Start the embedded cluster if needed, migrate, and return an engine."""
    engine = db.make_engine(db.ensure_server())
    db.migrate(engine)
    return engine


# -- database --------------------------------------------------------------------------------
@main.group("db")
def db_group():
    """The database: the embedded cluster under var/ unless DATABASE_URL is set."""


@db_group.command("up", with_appcontext=False)
@friendly
def db_up():
    """Create (first time) and start the embedded PostGIS, then migrate."""
    if settings.database_url():
        click.echo("DATABASE_URL is set: using that server, no embedded cluster")
    else:
        cluster = Cluster.default()
        created = cluster.init()
        started = cluster.start()
        cluster.ensure_database()
        state = "created and started" if created else "started" if started else "already running"
        click.echo(f"embedded PostGIS {state}: socket in {cluster.socket_dir}")
    engine = ready_engine()
    click.echo(f"schema at revision {db.schema_revision(engine)}")


@db_group.command("down", with_appcontext=False)
@friendly
def db_down():
    """Stop the embedded PostGIS."""
    if settings.database_url():
        click.echo("DATABASE_URL is set: nothing embedded to stop")
        return
    stopped = Cluster.default().stop()
    click.echo("embedded PostGIS stopped" if stopped else "embedded PostGIS was not running")


@db_group.command("upgrade", with_appcontext=False)
@friendly
def db_upgrade():
    """Migrate the schema to the newest revision."""
    engine = ready_engine()
    click.echo(f"schema at revision {db.schema_revision(engine)}")


@db_group.command("url", with_appcontext=False)
def db_url():
    """Print the connection URL (for psql or QGIS)."""
    url = settings.database_url()
    click.echo(url.replace("postgresql+psycopg://", "postgresql://") if url
               else Cluster.default().libpq_url())


# -- demo ------------------------------------------------------------------------------------
DEMO_USERS = [
    ("admin", "admin", None),
    ("dispatcher", "dispatcher", "411103"),
    ("planner", "planner", "411103"),
    ("analyst", "analyst", "411103"),
    ("gridworker", "grid_worker", None),  # scoped to one grid, chosen below
]


@main.command("demo", with_appcontext=False)
@click.option("--reset", is_flag=True, help="Delete the demo region and load it again.")
@friendly
def demo(reset: bool):
    """Load the 郾城区 demo (idempotent) and print one login per role."""
    from data import load as demo_load
    from data import yancheng

    started = time.monotonic()
    engine = ready_engine()
    with db.session_scope(engine) as session:
        if reset and demo_load.is_loaded(session):
            click.echo("removing the previous demo …")
            demo_load.unload(session)
        if demo_load.is_loaded(session):
            click.echo("郾城区 demo already loaded (use --reset to reload)")
            summary = None
        else:
            click.echo("generating 郾城区 demo data …")
            t0 = time.monotonic()
            data = yancheng.generate()
            click.echo(f"  generated in {time.monotonic() - t0:.1f} s")
            summary = demo_load.load(session, data, progress=_progress)
            click.echo("")
        logins = _demo_users(session)
    elapsed = time.monotonic() - started
    click.echo("")
    click.echo("─" * 64)
    if summary:
        click.echo("郾城区 demo loaded in %.1f s" % elapsed)
        for key, value in summary.items():
            click.echo(f"  {key:<22} {value:>10,}" if isinstance(value, int) else f"  {key:<22} {value}")
    click.echo("Demo logins (passwords are new on every run):")
    for username, role, scope, password in logins:
        click.echo(f"  {username:<12} {password:<22} {role:<12} scope {scope or 'everywhere'}")
    click.echo("─" * 64)


def _progress(step: str, done: int, total: int) -> None:
    width = 24
    filled = int(width * done / total) if total else width
    click.echo(f"\r  {step:<22} [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,}   ",
               nl=False)
    if done >= total:
        click.echo("")


def _demo_users(session) -> list[tuple[str, str, str | None, str]]:
    from sqlalchemy import text

    from geo import users

    grid = session.execute(text("SELECT code FROM areas WHERE level = 4 AND code LIKE '411103002004%' "
                                "ORDER BY code LIMIT 1")).scalar()
    out = []
    for username, role, scope in DEMO_USERS:
        if role == "grid_worker":
            scope = grid
        password = "demo-" + secrets.token_urlsafe(9)
        users.add_user(session, audit.Actor.cli(), username, role, password=password,
                       scopes=[scope] if scope else None, replace=True)
        out.append((username, role, scope, password))
    return out


# -- users and tokens ------------------------------------------------------------------------
@main.group("users")
def users_group():
    """Users, roles and area scopes."""


@users_group.command("add", with_appcontext=False)
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["admin", "dispatcher", "planner",
                                                          "analyst", "grid_worker"]))
@click.option("--scope", "scopes", multiple=True, help="Area code of a subtree the user may act in.")
@click.option("--password", help="At least 8 characters; prompted for when omitted.")
@click.option("--display-name")
@friendly
def users_add(name, role, scopes, password, display_name):
    """Create a user with a role and area scope."""
    from geo import users

    if password is None:
        if sys.stdin.isatty():
            password = click.prompt("password", hide_input=True, confirmation_prompt=True)
        else:
            password = secrets.token_urlsafe(12)
            click.echo(f"generated password: {password}")
    with db.session_scope(ready_engine()) as session:
        users.add_user(session, audit.Actor.cli(), name, role, password=password,
                       scopes=list(scopes), display_name=display_name)
    click.echo(f"user {name} added ({role}{', scope ' + ', '.join(scopes) if scopes else ''})")


@main.group("tokens")
def tokens_group():
    """API tokens for scripts and devices."""


@tokens_group.command("create", with_appcontext=False)
@click.argument("name")
@click.option("--label", help="What the token is for (defaults to the user name).")
@friendly
def tokens_create(name, label):
    """Create a bearer token acting as user NAME and print it (shown only once)."""
    from geo import users

    with db.session_scope(ready_engine()) as session:
        token = users.create_token(session, audit.Actor.cli(), name, label)
    click.echo(token)


# -- areas -----------------------------------------------------------------------------------
@main.group("areas")
def areas_group():
    """Governance areas: validate (import and export come with the planner)."""


@areas_group.command("validate", with_appcontext=False)
@click.option("--area", help="Check only this area's subtree.")
@friendly
def areas_validate(area):
    """Check that every level is an exact partition: no gap, no overlap, valid geometry."""
    from geo import areas

    with db.session_scope(ready_engine()) as session:
        counts = areas.counts_by_level(session, area)
        problems = areas.validate_partition(session, area)
    click.echo("areas per level: " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    for p in problems:
        click.echo(f"  {p['kind']:<16} {' / '.join(p['codes'])}  {p.get('message') or ''}")
    if problems:
        click.echo(f"{len(problems)} problem(s)")
        sys.exit(1)
    click.echo("exact partition: no gaps, no overlaps, every geometry valid")


# -- patrol: units, tracks, simulator ----------------------------------------------------------
@main.group("units")
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
    from geo import patrol

    with db.session_scope(ready_engine()) as session:
        _, token = patrol.add_unit(session, audit.Actor.cli(), callsign, kind, device_id, area, status)
    click.echo(token)


@units_group.command("token", with_appcontext=False)
@click.argument("callsign")
@friendly
def units_token(callsign):
    """Replace a unit's device token and print the new one."""
    from geo import patrol

    with db.session_scope(ready_engine()) as session:
        click.echo(patrol.rotate_token(session, audit.Actor.cli(), callsign))


@units_group.command("status", with_appcontext=False)
@click.argument("callsign")
@click.argument("status", type=click.Choice(["on_duty", "busy", "off_duty"]))
@friendly
def units_status(callsign, status):
    """Set a unit's duty status."""
    from geo import patrol

    with db.session_scope(ready_engine()) as session:
        patrol.set_status(session, audit.Actor.cli(), callsign, status)
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

    from geo import patrol

    starts = patrol.parse_time(start, "start") if start else datetime.now(timezone.utc).replace(microsecond=0)
    with db.session_scope(ready_engine()) as session:
        sid = patrol.add_shift(session, audit.Actor.cli(), callsign, starts, hours, task)
    click.echo(f"shift {sid}: {callsign} from {starts.isoformat()} for {hours:g} h")


@main.group("tracks")
def tracks_group():
    """Patrol tracks: GPX import and shift tracks."""


@tracks_group.command("import", with_appcontext=False)
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--unit", "callsign", required=True, help="Call sign of the unit the track belongs to.")
@friendly
def tracks_import(path, callsign):
    """Import a GPX file; print the points imported and the length in metres."""
    from geo import gpx

    with db.session_scope(ready_engine()) as session:
        result = gpx.import_path(session, audit.Actor.cli(), callsign, path)
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
    from geo import patrol, tracks

    with db.session_scope(ready_engine()) as session:
        out = tracks.build(session, patrol.unit_id(session, callsign), shift_id)
    if out is None:
        click.echo(f"{callsign}: fewer than two clean positions in that shift")
        sys.exit(1)
    click.echo(f"track {out['id']}: {out['points']} points, {out['length_m']:.1f} m, "
               f"{out['duration_s'] / 60:.1f} min, {len(out['grids'])} grid(s)")


@main.group("simulate")
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
@friendly
def simulate_patrol(count, interval, url, duration, protocol, area, prefix):
    """Drive N units along the demo roads, pinging the app over HTTP every S seconds."""
    from . import simulator

    with db.session_scope(ready_engine()) as session:
        network = simulator.load_network(session, area)
        if not network.roads:
            raise AnwangError("no roads to drive on: load the demo first (`anwang demo`)")
        units = simulator.prepare_units(session, count, prefix, area)
    sim = simulator.Simulator(url, units, network, interval, protocol)
    click.echo(f"{count} units on {len(network.roads)} roads, one fix every {interval:g} s "
               f"via {protocol} to {url}" + (f" for {duration:g} s" if duration > 0 else " (Ctrl-C stops)"))
    report = lambda s: click.echo(f"  {s['elapsed_s']:>7.1f} s  sent {s['sent']:,}  errors {s['errors']:,}  "  # noqa: E731
                                  f"{s['rate_per_s']:.1f}/s" + (f"  last error: {s['last_error']}" if s["errors"] else ""))
    try:
        stats = sim.run(duration, report)
    except KeyboardInterrupt:
        stats = sim.stats(0)
    report(stats)


# -- serve -----------------------------------------------------------------------------------
@main.command("serve", with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--threads", default=None, type=int,
              help="Worker threads (default ANWANG_THREADS or 128: each live-map viewer holds one).")
@click.option("--workers", default=None, type=int,
              help="Worker processes (default ANWANG_WORKERS or 1); each has its own live listener.")
@click.option("--osmand-port", default=None, type=int,
              help="Also listen here for the OsmAnd protocol (Traccar Client's server URL), any path.")
@friendly
def serve(host, port, threads, workers, osmand_port):
    """Start the database if needed and serve the app with gunicorn."""
    from gunicorn.app.base import BaseApplication

    import os

    ready_engine()
    if osmand_port:
        os.environ["ANWANG_OSMAND_PORT"] = str(osmand_port)
    threads = threads or int(os.environ.get("ANWANG_THREADS") or 128)
    workers = workers or int(os.environ.get("ANWANG_WORKERS") or 1)
    app = _create_app()

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", [f"{host}:{port}"] + ([f"{host}:{osmand_port}"] if osmand_port else []))
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", threads)
            self.cfg.set("timeout", 120)
            self.cfg.set("accesslog", None if os.environ.get("ANWANG_ACCESS_LOG") == "0" else "-")

        def load(self):
            return app

    click.echo(f"serving on http://{host}:{port}  (Ctrl-C to stop)")
    if osmand_port:
        click.echo(f"OsmAnd / Traccar Client server URL: http://{host}:{osmand_port}")
    Server().run()
