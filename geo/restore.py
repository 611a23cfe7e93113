"""Putting backups back: the embedded cluster to a moment in time (point-in-time recovery from a
base backup and the archived WAL, into its own place), or a dump into a new database.

A restore of the embedded cluster never destroys anything: the data it replaces is moved aside
(var/pg/data.before-restore-…), and a restore that fails puts it back.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .backups import Backup, Progress, libpq_target, list_backups, quiet
from .cluster import Cluster, pg_tool
from .errors import InvalidInput, SetupError

RECOVERY = ("restore_command", "recovery_target_time", "recovery_target_action", "recovery_target_timeline")
NOT_REACHED = "before configured recovery target was reached"
DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass
class Restored:
    """What a point-in-time recovery did, for its summary."""

    backup: Backup
    target: datetime | None        # None: everything the archive holds
    aside: Path | None             # where the data it replaced now lies
    stopped_at: str | None         # the server's own words on where replay stopped
    last_commit: str | None
    timeline: int
    seconds: float


def choose(backups: list[Backup], kind: str, to: datetime | None, backup_id: str | None,
           system: str | None = None) -> Backup:
    """The backup to restore: the one named, else the newest of `kind` finished before `to`."""
    usable = [b for b in backups if b.kind == kind and (system is None or b.system in (None, system))]
    if backup_id:
        named = [b for b in backups if b.id == backup_id]
        if not named:
            raise InvalidInput("backup", f"no backup {backup_id!r}; `anwang backup list` shows them")
        if to and named[0].finished > to:
            raise InvalidInput("to", f"backup {backup_id} finished at {named[0].finished:%Y-%m-%d %H:%M:%S%z}, "
                                     f"after {to:%Y-%m-%d %H:%M:%S%z}: choose an older one")
        return named[0]
    if not usable:
        raise SetupError(f"no {'base backup' if kind == 'base' else 'dump'} to restore: run `anwang backup` first")
    before = [b for b in usable if to is None or b.finished <= to]
    if not before:
        raise InvalidInput("to", f"no backup finished before {to:%Y-%m-%d %H:%M:%S%z}; the oldest finished at "
                                 f"{usable[0].finished:%Y-%m-%d %H:%M:%S%z}")
    return before[-1]


# -- the embedded cluster ---------------------------------------------------------------------------
def seal(cluster: Cluster, wait: float = 60) -> datetime:
    """Archive everything committed so far: a last commit (recovery to an earlier time stops at
    it) and a segment switch, waiting until that segment is in the archive; return its time."""
    with cluster.connect() as conn:
        at = conn.execute("SELECT now() FROM (SELECT txid_current()) AS x").fetchone()[0]
        segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
        if conn.execute("SHOW archive_mode").fetchone()[0] == "off":
            return at
        target = cluster.wal_archive() / f"{segment}.gz"
        deadline = time.monotonic() + wait
        while not target.exists():
            if time.monotonic() > deadline:
                failed = conn.execute("SELECT last_failed_wal, last_failed_time FROM pg_stat_archiver").fetchone()
                why = f" (last failure: {failed[0]} at {failed[1]:%H:%M:%S})" if failed[0] else ""
                raise SetupError(f"WAL segment {segment} did not reach the archive in {wait:.0f} s{why}: "
                                 f"see {cluster.log_file}")
            time.sleep(0.1)
    return at


def _log_since(cluster: Cluster, offset: int) -> str:
    if not cluster.log_file.exists():
        return ""
    with open(cluster.log_file, "rb") as fh:
        fh.seek(offset)
        return fh.read().decode(errors="replace")


def _found(log: str, pattern: str) -> str | None:
    m = re.findall(pattern, log)
    return m[-1].strip() if m else None


def _fatal(log: str) -> str | None:
    return _found(log, r"(?:FATAL|PANIC):\s*(.*)")


def _wait_promoted(cluster: Cluster, offset: int, progress: Progress, timeout: float) -> None:
    """Wait until replay has stopped and the server is a primary again (a new timeline)."""
    deadline, said = time.monotonic() + timeout, time.monotonic()
    while True:
        if not cluster.running():
            raise SetupError(_fatal(_log_since(cluster, offset)) or "the server stopped during recovery")
        try:
            with cluster.connect(wait=1) as conn:
                recovering, replayed = conn.execute(
                    "SELECT pg_is_in_recovery(), pg_last_xact_replay_timestamp()").fetchone()
        except SetupError:
            recovering, replayed = True, None
        if not recovering:
            return
        if time.monotonic() > deadline:
            raise SetupError(f"recovery did not finish within {timeout:.0f} s")
        if replayed and time.monotonic() - said > 5:
            progress(f"  replayed up to {replayed:%Y-%m-%d %H:%M:%S%z} …")
            said = time.monotonic()
        time.sleep(0.2)


def _recover(cluster: Cluster, backup: Backup, target: datetime | None, progress: Progress,
             timeout: float) -> str:
    """Put the base backup in the data folder and replay the archive to `target`; the log."""
    if cluster.data_dir.exists():
        shutil.rmtree(cluster.data_dir)
    cluster.prepare_dirs()                     # also when the data folder was lost with its parent
    cluster.run(["cp", "-a", str(backup.path / "data"), str(cluster.data_dir)])
    (cluster.data_dir / "standby.signal").unlink(missing_ok=True)
    cluster.configure({
        **cluster.archive_settings(),          # the new timeline goes on into today's archive
        "restore_command": cluster.restore_command(backup.meta["system"]),
        "recovery_target_time": target.astimezone(UTC).isoformat(sep=" ") if target else None,
        "recovery_target_action": "promote",
        "recovery_target_timeline": "latest",
    })
    cluster.run(["touch", str(cluster.data_dir / "recovery.signal")])
    offset = cluster.log_file.stat().st_size if cluster.log_file.exists() else 0
    try:
        cluster.start(timeout=int(timeout))
        _wait_promoted(cluster, offset, progress, timeout)
    except SetupError as exc:
        cluster.stop()
        raise SetupError(_fatal(_log_since(cluster, offset)) or exc.message) from None
    cluster.configure(dict.fromkeys(RECOVERY))
    return _log_since(cluster, offset)


def restore_cluster(cluster: Cluster, *, to: datetime | None = None, backup_id: str | None = None,
                    progress: Progress = quiet, timeout: float = 3600) -> Restored:
    """Point-in-time recovery of the embedded cluster into its place: archive the last WAL, stop,
    move the data aside, restore the base backup, replay the archive to `to` (None: all of it),
    promote. On failure the data moved aside comes back and the cluster is as it was."""
    clock = time.monotonic()
    system = cluster.system_id() if cluster.initialised() else None
    backup = choose(list_backups(cluster.backup_dir), "base", to, backup_id, system)
    sealed = None
    if cluster.running():
        progress("archiving the WAL written so far …")
        sealed = seal(cluster)
        progress("stopping the embedded cluster (its connections close; servers reconnect) …")
        cluster.stop()
    # A moment at or after the seal is everything: no commit after it exists to stop before.
    target = to if to is not None and (sealed is None or to < sealed) else None
    aside = None
    if cluster.data_dir.exists():
        aside = cluster.data_dir.with_name(f"data.before-restore-{datetime.now():%Y%m%dT%H%M%S}")
        cluster.data_dir.rename(aside)
        progress(f"moved the current data aside to {aside}")
    progress(f"restoring base backup {backup.id} and replaying WAL "
             f"{'to ' + target.isoformat(sep=' ', timespec='seconds') if target else 'to its end'} …")
    try:
        try:
            log = _recover(cluster, backup, target, progress, timeout)
        except SetupError as exc:
            if NOT_REACHED not in exc.message or target is None:
                raise
            progress("the archive ends before that moment: replaying all of it …")
            target = None
            log = _recover(cluster, backup, None, progress, timeout)
    except BaseException:
        cluster.stop()
        if aside is not None:
            failed = cluster.data_dir.with_name(aside.name.replace("before-restore", "failed-restore"))
            if cluster.data_dir.exists():
                cluster.data_dir.rename(failed)
            aside.rename(cluster.data_dir)
            cluster.start()
        raise
    with cluster.connect() as conn:
        timeline = int(conn.execute("SELECT timeline_id FROM pg_control_checkpoint()").fetchone()[0])
        current = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()[0]
    return Restored(backup, target, aside, _found(log, r"recovery stopping (?:before|after) (.*)"),
                    _found(log, r"last completed transaction was at log time (.*)"),
                    max(timeline, int(current[:8], 16)), time.monotonic() - clock)


# -- a dump ------------------------------------------------------------------------------------------
def restore_dump(url: str, backup: Backup, into: str, progress: Progress = quiet) -> None:
    """pg_restore a dump into a new database `into` on the server of `url` (never over an existing one)."""
    import psycopg

    if not DATABASE_NAME.fullmatch(into or ""):
        raise InvalidInput("into", f"a new database name (letters, digits, _); got {into!r}")
    with libpq_target(url) as conninfo, psycopg.connect(conninfo, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (into,)).fetchone():
            raise InvalidInput("into", f"database {into} exists: restore into a new name, or drop it first")
        conn.execute(f'CREATE DATABASE "{into}"')
    progress(f"restoring dump {backup.id} into the new database {into} (pg_restore) …")
    with libpq_target(url, into) as target:
        proc = subprocess.run([str(pg_tool("pg_restore")), "--no-owner", "--exit-on-error", "--no-password",
                               f"--dbname={target}", str(backup.path)], capture_output=True, text=True)
    if proc.returncode != 0:
        with libpq_target(url) as conninfo, psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{into}"')
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SetupError(f"pg_restore failed: {tail}")
