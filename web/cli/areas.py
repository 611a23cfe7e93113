"""`anwang areas`: import, export and validate boundaries.
"""
from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from geo import audit, db
from geo.boundaries.ingest_report import Hints
from geo.policy import Scope
from web.cli.common import friendly, ready_engine

# The report's ways through, worded as this command's flags (`--skip-bad`, `--crs wgs84`).
IMPORT_OPTIONS = ("parent", "parent_field", "parent_by_location", "code_field", "name_field", "crs",
                  "code_prefix", "layer", "repair", "merge_duplicates", "fit", "skip_bad", "dry_run",
                  "level")
CLI_HINTS = Hints({o: "--" + o.replace("_", "-") for o in IMPORT_OPTIONS}, joiner=" ", on="",
                  quote=False)


# -- areas -----------------------------------------------------------------------------------
@click.group("areas", cls=AppGroup)
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
@click.option("--parent-field", help="Field holding each feature's parent code; parent.adcode reads "
                                    "member adcode of an object field parent (DataV).")
@click.option("--parent-by-location", is_flag=True,
              help="Each feature's parent is the area of the level above it overlaps most "
                   "(with --parent-field: each whose field names no area).")
@click.option("--code-field", help="Field holding the code (default: code or id).")
@click.option("--name-field", help="Field holding the name (default: name, else the code).")
@click.option("--crs", help="Coordinates' system when the tag is missing or wrong: EPSG:n, wgs84, gcj02, bd09.")
@click.option("--code-prefix", default="", help="Prepended to every code (keeps jurisdictions apart).")
@click.option("--layer", help="Layer of a GeoPackage, sheet of an XLSX (default: the first).")
@click.option("--repair", is_flag=True, help="Make invalid rings valid (ST_MakeValid); the area change is reported.")
@click.option("--merge-duplicates", is_flag=True, help="Dissolve features that share a code into one area.")
@click.option("--fit", is_flag=True, help="Clip to the parent and give slivers to neighbours.")
@click.option("--skip-bad", is_flag=True, help="Import the good features, report the bad ones.")
@click.option("--dry-run", is_flag=True, help="Check and report; write nothing.")
@friendly
def areas_import(path, level, parent, parent_field, parent_by_location, code_field, name_field, crs,
                 code_prefix, layer, repair, merge_duplicates, fit, skip_bad, dry_run):
    """Import boundaries from GeoJSON, GeoPackage, Shapefile, CSV or XLSX (WKT), reprojected to WGS84."""
    from geo.boundaries import ingest

    with db.session_scope(ready_engine()) as session:
        report = ingest.load(session, path, level=level, parent=parent, parent_field=parent_field,
                             parent_by_location=parent_by_location, code_field=code_field,
                             name_field=name_field, crs=crs, repair=repair, dry_run=dry_run,
                             merge_duplicates=merge_duplicates, skip_bad=skip_bad, fit=fit,
                             code_prefix=code_prefix, layer=layer, hints=CLI_HINTS,
                             actor=audit.Actor.cli(), scope=Scope.all())
    for line in report.lines():
        click.echo(line)
    if report.refused:
        sys.exit(1)


@areas_group.command("export", with_appcontext=False)
@click.option("--level", help="Only this level.")
@click.option("--parent", help="Only this area's subtree.")
@click.option("--format", "fmt", type=click.Choice(["geojson", "gpkg", "shp", "csv", "xlsx"]),
              help="Default: from the file name.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="File to write.")
@friendly
def areas_export(level, parent, fmt, output):
    """Export boundaries with every attribute the importer reads back (full precision: import →
    export → import gives the same geometry and columns)."""
    from geo.boundaries import export

    with db.session_scope(ready_engine()) as session:
        n = export.export(session, output, level=level, parent=parent, fmt=fmt)
    click.echo(f"{n} area(s) written to {output}")
