"""The `anwang` command: database, demo, users and tokens, areas, serve.

Failures the user can fix (a missing package, a bad argument) print one clear line and exit 1;
tracebacks are for bugs only.
"""
from __future__ import annotations

import functools
import secrets
import subprocess
import sys
import time

import click
from flask.cli import FlaskGroup

from geo import audit, db, settings
from geo.cluster import Cluster
from geo.errors import AnwangError
from geo.patrol import fixes, units


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
        if reset:
            click.echo("removing the previous demo …")
            demo_load.unload(session)  # whatever version it was; a no-op when there is none
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
            _demo_risk(session)
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


def _demo_risk(session) -> None:
    """Give the demo's grids their four-colour history: the 12 weeks to its last day, then today."""
    from data.yancheng import PERIOD_END
    from layers import risk

    t0 = time.monotonic()
    actor = audit.Actor.cli()
    risk.backfill(session, actor, 12, as_of=PERIOD_END)
    report = risk.update(session, actor)
    levels = ", ".join(f"{k} {v}" for k, v in report.levels.items())
    click.echo(f"  four-colour risk: {levels} ({time.monotonic() - t0:.1f} s)")


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
    """Governance areas: import, export and validate boundaries."""


@areas_group.command("validate", with_appcontext=False)
@click.option("--area", help="Check only this area's subtree.")
@friendly
def areas_validate(area):
    """Prove every level an exact partition; list split-up grids and workload off the norms too.

    Partition errors (gap, overlap, outside the parent, invalid geometry) exit with status 1;
    warnings (non-contiguous grids, households per grid or per grid worker) do not.
    """
    from geo import areas
    from geo.boundaries import validation

    with db.session_scope(ready_engine()) as session:
        counts = areas.counts_by_level(session, area)
        problems = validation.problems(session, area)
    click.echo("areas per level: " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    errors = [p for p in problems if p["severity"] == "error"]
    for p in errors + [p for p in problems if p["severity"] != "error"]:
        click.echo(f"  {p['severity']:<8} {p['kind']:<16} {' / '.join(p['codes'])}  "
                   f"{p.get('message') or ''}")
    if errors:
        click.echo(f"{len(errors)} partition error(s), {len(problems) - len(errors)} warning(s)")
        sys.exit(1)
    click.echo("exact partition: no gaps, no overlaps, every geometry valid"
               + (f" ({len(problems)} warning(s))" if problems else ""))


@areas_group.command("import", with_appcontext=False)
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--level", required=True, help="1 district, 2 township, 3 village, 4 grid (or the name).")
@click.option("--parent", help="Code of the parent of every feature (or the root to look parents up in).")
@click.option("--parent-field", help="Field holding each feature's parent code.")
@click.option("--code-field", help="Field holding the code (default: code or id).")
@click.option("--name-field", help="Field holding the name (default: name, else the code).")
@click.option("--crs", help="Coordinates' system when the tag is missing or wrong: EPSG:n, wgs84, gcj02, bd09.")
@click.option("--code-prefix", default="", help="Prepended to every code (keeps jurisdictions apart).")
@click.option("--layer", help="Layer of a GeoPackage (default: the first).")
@click.option("--repair", is_flag=True, help="Make invalid rings valid (ST_MakeValid); the area change is reported.")
@click.option("--merge-duplicates", is_flag=True, help="Dissolve features that share a code into one area.")
@click.option("--fit", is_flag=True, help="Clip to the parent and give slivers to neighbours.")
@click.option("--skip-bad", is_flag=True, help="Import the good features, report the bad ones.")
@click.option("--dry-run", is_flag=True, help="Check and report; write nothing.")
@friendly
def areas_import(path, level, parent, parent_field, code_field, name_field, crs, code_prefix,
                 layer, repair, merge_duplicates, fit, skip_bad, dry_run):
    """Import boundaries from GeoJSON, GeoPackage, Shapefile or CSV (WKT), reprojected to WGS84."""
    from geo.boundaries import ingest

    with db.session_scope(ready_engine()) as session:
        report = ingest.load(session, path, level=level, parent=parent, parent_field=parent_field,
                             code_field=code_field, name_field=name_field, crs=crs,
                             repair=repair, dry_run=dry_run, merge_duplicates=merge_duplicates,
                             skip_bad=skip_bad, fit=fit, code_prefix=code_prefix, layer=layer,
                             actor=audit.Actor.cli())
    for line in report.lines():
        click.echo(line)
    if report.refused:
        sys.exit(1)


@areas_group.command("export", with_appcontext=False)
@click.option("--level", help="Only this level.")
@click.option("--parent", help="Only this area's subtree.")
@click.option("--format", "fmt", type=click.Choice(["geojson", "gpkg", "shp", "csv"]),
              help="Default: from the file name.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="File to write.")
@friendly
def areas_export(level, parent, fmt, output):
    """Export boundaries (full precision: import → export → import gives the same geometry)."""
    from geo.boundaries import export

    with db.session_scope(ready_engine()) as session:
        n = export.export(session, output, level=level, parent=parent, fmt=fmt)
    click.echo(f"{n} area(s) written to {output}")


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


@main.group("tracks")
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
    from geo.patrol import tracks

    with db.session_scope(ready_engine()) as session:
        out = tracks.build(session, units.unit_id(session, callsign), shift_id)
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
@click.option("--wait", "wait_for_app", is_flag=True, help="Wait up to a minute for the app to answer first.")
@friendly
def simulate_patrol(count, interval, url, duration, protocol, area, prefix, wait_for_app):
    """Drive N units along the demo roads, pinging the app over HTTP every S seconds."""
    from . import simulator

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
    report = lambda s: click.echo(f"  {s['elapsed_s']:>7.1f} s  sent {s['sent']:,}  errors {s['errors']:,}  "  # noqa: E731
                                  f"{s['rate_per_s']:.1f}/s" + (f"  last error: {s['last_error']}" if s["errors"] else ""))
    try:
        stats = sim.run(duration, report)
    except KeyboardInterrupt:
        stats = sim.stats(0)
    report(stats)


# -- incidents -------------------------------------------------------------------------------
@main.group("incidents")
def incidents_group():
    """Incidents: import files, re-assign grids."""


@incidents_group.command("import", with_appcontext=False)
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--map", "maps", multiple=True, metavar="FIELD=COLUMN",
              help="Read FIELD from COLUMN (fields: external_id, occurred_at, category, subtype, "
                   "severity, lon, lat, address, description, reporter_name, reporter_phone, "
                   "sensitive, source).")
@click.option("--category", help="One category for the whole file (信访/事故/案件/矛盾纠纷/隐患 or "
                                 "petition/accident/criminal/dispute/hazard); the file's own "
                                 "category column then becomes the subtype.")
@click.option("--crs", help="Coordinate system of lon/lat: wgs84 (default), cgcs2000, gcj02, bd09.")
@click.option("--time-format", help="strptime format of the time column, e.g. '%m/%d/%Y %I:%M:%S %p'.")
@click.option("--timezone", "tz", help="Zone of times without an offset (default Asia/Shanghai).")
@click.option("--source", help="Channel recorded on every incident (default import:FILENAME).")
@click.option("--skip-bad", is_flag=True, help="Import the good rows and list the bad ones.")
@click.option("--dry-run", is_flag=True, help="Check and report, write nothing.")
@friendly
def incidents_import(path, maps, category, crs, time_format, tz, source, skip_bad, dry_run):
    """Import incidents from a CSV or XLSX file; every rejected row is reported with its line."""
    from geo.incidents import tabular

    mapping = tabular.parse_mapping(maps)
    with db.session_scope(ready_engine()) as session:
        report = tabular.import_file(session, audit.Actor.cli(), path, mapping=mapping,
                                     category=category, crs=crs, time_format=time_format, tz=tz,
                                     source=source, skip_bad=skip_bad, dry_run=dry_run)
    columns = ", ".join(f"{f}←{c}" for f, c in report.columns.items())
    click.echo(f"{report.path}: {report.rows:,} rows; columns {columns}")
    for r in report.rejected:
        where = f" ({r['field']})" if r["field"] else ""
        click.echo(f"  line {r['line']}{where}: {r['reason']}", err=True)
    for w in report.warnings[:50]:
        click.echo(f"  line {w['line']}: warning: {w['warning']}", err=True)
    levels = ", ".join(f"{k} {v:,}" for k, v in sorted(report.geocode_levels.items()))
    if report.rejected and not skip_bad:
        click.echo(f"refused: {len(report.rejected):,} bad row(s), nothing written "
                   "(fix them, or --skip-bad to import the rest)", err=True)
        sys.exit(1)
    verb = "would import" if dry_run else "imported"
    click.echo(f"{verb} {report.imported:,} incident(s); rejected {len(report.rejected):,}; "
               f"outside every jurisdiction {report.outside_jurisdiction:,}; located by {levels or '-'}")


@incidents_group.command("assign", with_appcontext=False)
@click.option("--area", "areas", multiple=True, help="Only incidents now in this area's subtree.")
@friendly
def incidents_assign(areas):
    """Re-assign incidents to the finest area containing them (after boundary edits)."""
    from geo.incidents import assignment

    with db.session_scope(ready_engine()) as session:
        changed = assignment.assign(session, area_codes=list(areas) if areas else None,
                                   everything=not areas)
        audit.record(session, audit.Actor.cli(), "assignment.assign",
                     details={"areas": list(areas), "changed": changed})
    click.echo(f"{changed:,} incident(s) re-assigned")


# -- risk and the monthly report -------------------------------------------------------------
@main.group("risk")
def risk_group():
    """Four-colour risk (四色预警) per grid."""


def _interval(value: str | None) -> float | None:
    """'15m', '1h', '90s' or a number of seconds."""
    if not value:
        return None
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        seconds = float(value[:-1]) * units[value[-1]] if value[-1] in units else float(value)
    except (ValueError, IndexError):
        seconds = -1
    if seconds < 10:
        raise AnwangError(f"--every must be like 15m, 1h or 600 (at least 10 s); got {value!r}",
                          field="every")
    return seconds


@risk_group.command("update", with_appcontext=False)
@click.option("--area", help="Only the grids under this area (default: every grid).")
@click.option("--as-of", "as_of", help="Assess as of this date or date-time (default: now).")
@click.option("--backfill", default=0, type=int, help="First rebuild this many past periods (the history).")
@click.option("--policy", type=click.Path(dir_okay=False), help="Policy file (default layers/risk_policy.yaml).")
@click.option("--every", help="Keep running: refresh every interval (15m, 1h …) until stopped.")
@friendly
def risk_update(area, as_of, backfill, policy, every):
    """Assess every grid's four-colour level now (and alert dispatch on a turn to orange or red).

    For a scheduled refresh either keep it running with --every 15m or use cron, e.g.
    `*/15 * * * * cd /srv/anwang && .venv/bin/anwang risk update`.
    """
    from layers import risk
    from layers.selection import parse_time

    pol = risk.load_policy(policy)
    moment = parse_time(as_of, "as_of") if as_of else None
    seconds = _interval(every)
    engine = ready_engine()
    while True:
        started = time.monotonic()
        with db.session_scope(engine) as session:
            actor = audit.Actor.cli()
            if backfill:
                reports = risk.backfill(session, actor, backfill, as_of=moment, area=area, policy=pol)
                click.echo(f"history: {backfill} period(s) from {reports[0].period_start} rebuilt")
                report = reports[-1]
            else:
                report = risk.update(session, actor, as_of=moment, area=area, policy=pol)
        levels = ", ".join(f"{k} {v}" for k, v in report.levels.items())
        click.echo(f"period {report.period_start}–{report.period_end}: {report.grids} grid(s): {levels}; "
                   f"{len(report.changes)} change(s), {len(report.alerts)} alert(s) "
                   f"({time.monotonic() - started:.1f} s)")
        for code, before, after in report.changes[:20]:
            click.echo(f"  {code}: {before} → {after}")
        if seconds is None:
            return
        backfill = 0
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))


@main.command("report", with_appcontext=False)
@click.option("--area", required=True, help="Area code, e.g. 411103 or 411103102.")
@click.option("--month", required=True, help="YYYY-MM")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="report.html (the PDF is written beside it) or report.pdf.")
@click.option("--no-pdf", is_flag=True, help="Only the HTML.")
@click.option("--lang", default="zh", type=click.Choice(["zh", "en"]), show_default=True)
@friendly
def report_cmd(area, month, output, no_pdf, lang):
    """Write the monthly 周交办、月讲评 report: standalone HTML (works offline) and a PDF."""
    from layers import report

    started = time.monotonic()
    with db.session_scope(ready_engine()) as session:
        files = report.write(session, area, month, output, pdf=not no_pdf, locale=lang)
    for path in files:
        click.echo(f"{path}  ({path.stat().st_size / 1e6:.1f} MB)")
    click.echo(f"report written in {time.monotonic() - started:.1f} s")


# -- serve -----------------------------------------------------------------------------------
@main.command("serve", with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--threads", default=None, type=int,
              help="Worker threads (default ANWANG_THREADS or 128: each live-map viewer holds one).")
@click.option("--workers", default=None, type=int,
              help="Worker processes (default ANWANG_WORKERS or 1); each has its own live listener and "
                   "OsmAnd writer, so one worker groups the most pings per commit.")
@click.option("--osmand-port", default=None, type=int,
              help="Also listen here for the OsmAnd protocol (Traccar Client's server URL), any path.")
@click.option("--simulate", default=0, show_default=True, type=click.IntRange(0, 5000), metavar="N",
              help="Also drive N simulated units (SIM-001 …) along the roads, pinging this server every "
                   "5 s, so that the live map moves; they stop with the server.")
@friendly
def serve(host, port, threads, workers, osmand_port, simulate):
    """Start the database if needed and serve the app with gunicorn."""
    import os

    from gunicorn.app.base import BaseApplication

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
    simulator = _start_simulator(host, port, simulate) if simulate else None
    parent = os.getpid()
    try:
        Server().run()
    finally:
        # Gunicorn's workers leave through here too; only the server that started it stops it.
        if simulator is not None and os.getpid() == parent:
            simulator.terminate()
            try:
                simulator.wait(10)
            except subprocess.TimeoutExpired:
                simulator.kill()


def _start_simulator(host: str, port: int, count: int) -> subprocess.Popen:
    """`anwang simulate patrol` against this server in a child process that ends with it."""
    import ctypes
    import signal

    target = "127.0.0.1" if host in ("", "0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    log_path = settings.var_dir() / "simulator.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)

    def die_with_parent() -> None:
        # PR_SET_PDEATHSIG: the kernel stops the simulator even if the server is killed outright.
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)

    with open(log_path, "ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-c", "from web.cli import main; main()", "simulate", "patrol",
             "--units", str(count), "--interval", "5", "--duration", "0", "--wait",
             "--url", f"http://{target}:{port}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    click.echo(f"simulated patrol: {count} units pinging every 5 s (log: {log_path})")
    return child
