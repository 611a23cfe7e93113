"""The `anwang` command: one group of commands per feature, each in its own module here.

Failures the user can fix (a missing package, a bad argument) print one clear line and exit 1;
tracebacks are for bugs only.
"""
from __future__ import annotations

import click
from flask.cli import FlaskGroup

from . import accounts, areas, backups, database, demo, incidents, patrol, public, review, server, tiles, visits


def _create_app():
    from web import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False,
             add_version_option=False, load_dotenv=False, set_debug_flag=False)
def main():
    """Anwang (安网): grid-based public-safety governance on PostGIS."""


for command in (database.db_group, demo.demo, accounts.users_group, accounts.tokens_group,
                areas.areas_group, patrol.units_group, patrol.tracks_group, patrol.simulate_group,
                incidents.incidents_group, review.risk_group, review.report_cmd, public.public_group,
                backups.backup_group, backups.restore_cmd, tiles.basemap_group, tiles.tiles_group,
                server.serve, server.trackers, visits.households_group):
    main.add_command(command)
