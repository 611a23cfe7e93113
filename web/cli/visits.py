"""`anwang households`: import the household registry from CSV/XLSX files with Chinese headers.
"""
from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from geo import audit, db
from geo.policy import Audience
from web.cli.common import friendly, ready_engine


@click.group("households", cls=AppGroup)
def households_group():
    """Households: the registry of each grid."""


@households_group.command("import", with_appcontext=False)
@click.argument("path", type=click.Path(dir_okay=False))
@friendly
def households_import(path):
    """Import households from a CSV or XLSX file (网格编码, 户号, 户主姓名, 联系电话, 身份证号, 人口数,
    地址, 经度, 纬度); a household with the same grid and 户号 is updated. All or nothing: every
    refused row is listed with its line and nothing is written."""
    from geo.visits import households

    with db.session_scope(ready_engine()) as session:
        report = households.import_file(session, audit.Actor.cli(), path, Audience.system())
    for line, field, message in report.errors:
        click.echo(f"  line {line} ({field}): {message}", err=True)
    if report.errors:
        click.echo(f"refused: {len(report.errors):,} bad row(s), nothing written", err=True)
        sys.exit(1)
    click.echo(f"imported {report.inserted:,} new household(s), updated {report.updated:,}")
