"""`anwang db`: the embedded PostGIS under var/ (or the DATABASE_URL server) and its schema.
"""
from __future__ import annotations

import click
from flask.cli import AppGroup

from geo import db, settings
from geo.cluster import Cluster
from web.cli.common import friendly, ready_engine


# -- database --------------------------------------------------------------------------------
@click.group("db", cls=AppGroup)
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
