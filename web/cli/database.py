"""`anwang db`: the embedded PostGIS under var/ (or the DATABASE_URL server) and its schema.
"""
from __future__ import annotations

import click
from flask.cli import AppGroup

from geo import db, replica, settings
from geo.cluster import Cluster
from geo.errors import SetupError
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
        standby = replica.replica_of(cluster)
        if standby.initialised() and standby.start():
            click.echo(f"read replica started: socket in {standby.socket_dir}")
    engine = ready_engine()
    click.echo(f"schema at revision {db.schema_revision(engine)}")


@db_group.command("down", with_appcontext=False)
@friendly
def db_down():
    """Stop the embedded PostGIS."""
    if settings.database_url():
        click.echo("DATABASE_URL is set: nothing embedded to stop")
        return
    cluster = Cluster.default()
    if replica.replica_of(cluster).stop():
        click.echo("read replica stopped")
    stopped = cluster.stop()
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


@db_group.command("replica", with_appcontext=False)
@click.option("--port", type=int, default=None,
              help="Also listen on 127.0.0.1:PORT (default: its own unix socket only).")
@friendly
def db_replica(port):
    """Start a streaming read replica of the embedded cluster under var/replica (made the first time)."""
    if settings.database_url():
        raise SetupError("DATABASE_URL is set: give that server a replica of its own and set ANWANG_READ_URL")
    cluster = Cluster.default()
    cluster.start()
    standby = replica.replica_of(cluster, port)
    if not standby.initialised():
        replica.create(cluster, standby, progress=click.echo)
    elif port is not None:
        standby.configure({"port": str(port), "listen_addresses": "127.0.0.1"})
        standby.stop()
    started = standby.start()
    state = replica.status(cluster, wait=30)
    click.echo(f"read replica {'started' if started else 'already running'}: hot standby in {standby.root}, "
               f"socket in {standby.socket_dir}" + (f", 127.0.0.1:{standby.port}" if standby.port else ""))
    lag = f"{state.lag_bytes} bytes behind" if state.lag_bytes is not None else "lag unknown"
    click.echo(f"replication: {state.state or 'not streaming yet (see ' + str(standby.log_file) + ')'}, {lag}")
    click.echo("route analytics, exports and public statistics to it:")
    click.echo(f"  ANWANG_READ_URL='{standby.libpq_url()}'")
