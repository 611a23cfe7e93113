"""`anwang incidents`: import incident files and re-assign grids.
"""
from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from geo import audit, db
from web.cli.common import friendly, ready_engine


# -- incidents -------------------------------------------------------------------------------
@click.group("incidents", cls=AppGroup)
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
