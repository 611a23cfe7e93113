"""`anwang basemap import` and `anwang tiles clear`: the self-served basemap and the tile cache.
"""
from __future__ import annotations

import click
from flask.cli import AppGroup

from geo import audit, db
from web.cli.common import friendly, ready_engine


@click.group("basemap", cls=AppGroup)
def basemap_group():
    """The self-served basemap: OpenStreetMap extracts beside the demo's own roads and places."""


@basemap_group.command("import", with_appcontext=False)
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--area", help="Keep only what lies in this area's bounding box.")
@friendly
def basemap_import(path, area):
    """Import an OpenStreetMap extract (.osm.pbf): roads, railways, water, land use, buildings and
    named places, Chinese names where the data has them. Importing the same file again replaces it."""
    from geo import osm

    with db.session_scope(ready_engine()) as session:
        report = osm.load(session, path, area=area, actor=audit.Actor.cli())
    click.echo(f"{report.source}: {sum(report.counts.values()):,} features in {report.seconds:.1f} s"
               + (f" (replacing {report.replaced:,})" if report.replaced else ""))
    for layer, n in report.counts.items():
        click.echo(f"  {layer:<10} {n:>9,}")


@click.group("tiles", cls=AppGroup)
def tiles_group():
    """The vector tile cache (edits expire it by themselves)."""


@tiles_group.command("clear", with_appcontext=False)
@click.option("--layer", help="Only this layer's tiles (areas, risk, coverage, incidents, public, basemap).")
@friendly
def tiles_clear(layer):
    """Drop cached tiles, e.g. after an upgrade that changes what tiles hold."""
    from layers import tile_cache, tiles

    if layer:
        tiles.layer_named(layer)
    with db.session_scope(ready_engine()) as session:
        n = tile_cache.clear(session, layer)
    click.echo(f"{n:,} cached tiles dropped")
