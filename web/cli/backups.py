"""`anwang backup` and `anwang restore`: base backups with WAL archiving for the embedded cluster,
pg_dump files for a DATABASE_URL server, and putting either back.
"""
from __future__ import annotations

from datetime import datetime

import click
from flask.cli import AppGroup

from geo import backups, db, settings
from geo.cluster import Cluster
from geo.errors import InvalidInput, SetupError
from web.cli.common import friendly


def _local(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %z") if moment else "—"


def parse_moment(raw: str | None) -> datetime | None:
    """An ISO 8601 moment; without a UTC offset it is this machine's local time."""
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidInput("to", f"a time like '2026-03-01 10:15' or '2026-03-01T10:15:00+08:00'; "
                                 f"got {raw!r}") from None
    return moment if moment.tzinfo else moment.astimezone()


def _line(label: str, value: str) -> None:
    click.echo(f"  {label:<12} {value}")


# -- anwang backup ------------------------------------------------------------------------------------
@click.group("backup", cls=AppGroup, invoke_without_command=True)
@click.option("--keep", type=click.IntRange(1), metavar="N",
              help="Then delete all but the newest N backups (and the archived WAL only they needed).")
@click.option("--restart", is_flag=True,
              help="Restart the embedded cluster if WAL archiving needs a restart to begin.")
@click.pass_context
@friendly
def backup_group(ctx, keep, restart):
    """Back up the database: a verified base backup of the embedded cluster (restorable to any
    moment after it from the archived WAL), or a pg_dump file of the DATABASE_URL database."""
    if ctx.invoked_subcommand:
        return
    url = settings.database_url()
    if url:
        _dump(url, keep)
    else:
        _base_backup(keep, restart)


def _base_backup(keep: int | None, restart: bool) -> None:
    cluster = Cluster.default()
    if cluster.start():
        click.echo(f"started the embedded cluster ({cluster.socket_dir})")
    if backups.enable_archiving(cluster):
        if not restart:
            raise SetupError("WAL archiving is now configured but begins only after a restart of the embedded "
                             "cluster: run `anwang backup --restart` (or `anwang db down`, `anwang db up`, "
                             "then `anwang backup`)")
        click.echo("restarting the embedded cluster so that WAL archiving begins …")
        cluster.stop()
        cluster.start()
    backup = backups.base_backup(cluster, progress=click.echo)
    backups.prune(cluster, cluster.backup_dir, keep, progress=click.echo)
    state = backups.archiving(cluster)
    kept = [b for b in backups.list_backups(cluster.backup_dir) if b.kind == "base"]
    click.echo(f"\nbackup {backup.id}: base backup of the embedded cluster, verified")
    _line("folder", f"{backup.path} ({backups.human(backup.size)}, {backup.meta['seconds']} s)")
    _line("WAL archive", f"{state.folder} (archive_mode {state.mode}; {state.archived} segments archived since "
                         f"the server started, last {state.last_archived or '—'} at {_local(state.last_archived_at)})")
    if state.failing:
        _line("WARNING", f"archiving fails since {_local(state.last_failed_at)} ({state.last_failed}): "
                         f"see {cluster.log_file}")
    _line("restores to", f"any moment from {_local(backup.finished)} on, e.g.")
    _line("", f"anwang restore --to '{backup.finished.astimezone():%Y-%m-%d %H:%M:%S}'")
    _line("kept", f"{len(kept)} base backup(s), {backups.human(backups.folder_size(cluster.backup_dir))} "
                  f"with the archive, in {cluster.backup_dir}")


def _dump(url: str, keep: int | None) -> None:
    folder = settings.backups_dir()
    backup = backups.dump(url, folder, progress=click.echo)
    backups.prune(None, folder, keep, progress=click.echo)
    click.echo(f"\nbackup {backup.id}: pg_dump of database {backup.meta['database']} "
               f"(PostgreSQL {backup.meta['server_version']})")
    _line("file", f"{backup.path} ({backups.human(backup.size)}, {backup.meta['seconds']} s)")
    _line("restores", "the database as it was at " + _local(backup.started) + ", into a new database:")
    _line("", f"anwang restore --backup {backup.id} --into {backup.meta['database']}_restored")


@backup_group.command("list", with_appcontext=False)
@friendly
def backup_list():
    """List the backups: ID, kind, when, size and what each restores to."""
    url = settings.database_url()
    cluster = None if url else Cluster.default()
    folder = settings.backups_dir()
    found = backups.list_backups(folder)
    if not found:
        click.echo(f"no backups in {folder}: `anwang backup` makes one")
        return
    system = cluster.system_id() if cluster and cluster.initialised() else None
    reach = backups.archive_reach(cluster, system) if cluster and system else None
    click.echo(f"{'ID':<20} {'kind':<5} {'finished':<26} {'size':>9}  restores to")
    for b in found:
        if b.kind == "dump":
            what = f"its own moment (database {b.meta['database']})"
        elif system and b.system != system:
            what = "another cluster's history"
        else:
            what = f"any moment from then to {_local(reach)} (archived WAL)"
        click.echo(f"{b.id:<20} {b.kind:<5} {_local(b.finished):<26} {backups.human(b.size):>9}  {what}")


# -- anwang restore -----------------------------------------------------------------------------------
@click.command("restore")
@click.option("--to", "to", metavar="TIME",
              help="The moment to restore (ISO 8601; local time without an offset). Default: the latest.")
@click.option("--backup", "backup_id", metavar="ID", help="The backup to start from (default: the newest "
                                                          "that finished before TIME).")
@click.option("--into", metavar="NAME", help="For a dump: the new database to restore it into.")
@click.option("--yes", is_flag=True, help="Do not ask before replacing the embedded cluster's data.")
@friendly
def restore_cmd(to, backup_id, into, yes):
    """Restore: the embedded cluster to a moment in time, in its place (the data it replaces is
    kept aside), or a dump into a new database."""
    from geo import replica, restore

    moment = parse_moment(to)
    url = settings.database_url()
    found = backups.list_backups(settings.backups_dir())
    named = next((b for b in found if b.id == backup_id), None)
    if url or (named and named.kind == "dump"):
        backup = restore.choose(found, "dump", moment, backup_id)
        if not into:
            raise InvalidInput("into", f"--into NAME: the new database to restore dump {backup.id} into")
        target = url or db.ensure_server()
        restore.restore_dump(target, backup, into, progress=click.echo)
        click.echo(f"\nrestored dump {backup.id} (taken {_local(backup.started)}) into the new database {into}")
        _line("use it", f"point DATABASE_URL at …/{into}, or compare it with the live database first")
        return
    cluster = Cluster.default()
    when = _local(moment) if moment else "the latest"
    if not yes:
        click.confirm(f"Replace the embedded cluster's data with its state at {when}? "
                      f"(the current data is kept aside in {cluster.data_dir.parent})", abort=True)
    standby = replica.replica_of(cluster)
    if standby.stop():
        click.echo("stopped the read replica")
    done = restore.restore_cluster(cluster, to=moment, backup_id=backup_id, progress=click.echo)
    if replica.remove(standby, cluster):
        click.echo(f"removed the read replica in {standby.root}: it followed the history this restore replaced "
                   "(`anwang db replica` makes a new one)")
    reached = f"to {_local(done.target)}" if done.target else "to the end of the archived WAL"
    click.echo(f"\nrestored the embedded cluster {reached} in {done.seconds:.1f} s")
    _line("from backup", f"{done.backup.id} (finished {_local(done.backup.finished)})")
    _line("stopped", done.stopped_at or "at the end of the archived WAL")
    _line("last commit", done.last_commit or "—")
    _line("timeline", f"{done.timeline} (the history after this moment stays in the archive)")
    if done.aside:
        _line("old data", f"{done.aside} (delete it once you are content)")
    _line("next", "`anwang db upgrade` if the restored schema is older than the code; `anwang backup` soon")
