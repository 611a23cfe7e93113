"""Backups that restore: base backups of the embedded cluster replayed with its archived WAL to any
moment after them, or `pg_dump` files of a DATABASE_URL server. geo/restore.py puts them back.

The backups folder (ANWANG_BACKUPS, default var/backups) holds
  base/ID/data, base/ID/backup.json   a verified pg_basebackup of the embedded cluster
  wal/SYSTEM/SEGMENT.gz               the WAL archived since (geo/cluster.py), per cluster lineage
  dumps/ID.dump, dumps/ID.json        pg_dump -Fc of one database of a DATABASE_URL server
ID is the UTC time the backup began (20260301T021500Z). The .json file is written last, so a
folder without one is an interrupted backup and is never offered for a restore.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .cluster import SUPERUSER, Cluster, pg_tool
from .errors import SetupError

Progress = Callable[[str], None]


def quiet(message: str) -> None:
    """Progress that says nothing."""


@dataclass
class Backup:
    """One backup on disk: a base backup of the embedded cluster or a dump of one database."""

    id: str
    kind: str                  # "base" or "dump"
    path: Path                 # the base backup's folder, or the dump file
    started: datetime
    finished: datetime
    size: int
    meta: dict

    @property
    def system(self) -> str | None:
        return self.meta.get("system")


def new_id(folder: Path, now: datetime | None = None) -> str:
    """The ID of a backup beginning now: its UTC time, with a suffix when that second is taken."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    ident, n = stamp, 1
    while (folder / ident).exists() or (folder / f"{ident}.json").exists():
        n += 1
        ident = f"{stamp}-{n}"
    return ident


def list_backups(folder: Path) -> list[Backup]:
    """Every complete backup in the folder, oldest first."""
    found = []
    for meta_file in [*folder.glob("base/*/backup.json"), *folder.glob("dumps/*.json")]:
        meta = json.loads(meta_file.read_text())
        path = meta_file.parent if meta["kind"] == "base" else meta_file.with_suffix(".dump")
        found.append(Backup(meta["id"], meta["kind"], path, datetime.fromisoformat(meta["started"]),
                            datetime.fromisoformat(meta["finished"]), meta["size"], meta))
    return sorted(found, key=lambda b: (b.started, b.id))


def folder_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def human(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def _write_meta(path: Path, meta: dict) -> None:
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(part, path)


# -- the embedded cluster: WAL archiving and base backups -------------------------------------------
@dataclass
class Archiving:
    """The state of WAL archiving of a running cluster (pg_stat_archiver)."""

    mode: str
    folder: Path
    archived: int
    last_archived: str | None
    last_archived_at: datetime | None
    failed: int
    last_failed: str | None
    last_failed_at: datetime | None

    @property
    def failing(self) -> bool:
        """The last attempt failed: segments pile up in pg_wal until the archive takes them."""
        return bool(self.last_failed_at and (not self.last_archived_at
                                             or self.last_failed_at > self.last_archived_at))


def archiving(cluster: Cluster) -> Archiving:
    with cluster.connect() as conn:
        mode = conn.execute("SHOW archive_mode").fetchone()[0]
        row = conn.execute("""SELECT archived_count, last_archived_wal, last_archived_time,
                                     failed_count, last_failed_wal, last_failed_time
                                FROM pg_stat_archiver""").fetchone()
    return Archiving(mode, cluster.wal_archive(), *row)


def enable_archiving(cluster: Cluster) -> bool:
    """Archive WAL into the backups folder; return True when a restart is still needed for it.

    The command follows the folder configured now (a reload); archive_mode itself is read only at
    server start, so a cluster made before archiving existed needs one restart.
    """
    wanted = cluster.archive_settings()
    with cluster.connect() as conn:
        current = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in wanted}
    if current["archive_command"] != wanted["archive_command"] or current["archive_mode"] == "off":
        cluster.configure(wanted)
        cluster.reload()
    return current["archive_mode"] == "off"


def _backup_label(data: Path) -> dict:
    """START WAL LOCATION, START TIMELINE … of a base backup's backup_label."""
    label = {}
    for line in (data / "backup_label").read_text().splitlines():
        key, _, value = line.partition(": ")
        label[key] = value
    return label


def base_backup(cluster: Cluster, progress: Progress = quiet) -> Backup:
    """Copy the running embedded cluster with pg_basebackup (with the WAL that makes the copy
    consistent), verify the copy against its manifest, and describe it in backup.json."""
    system = cluster.system_id()
    base = cluster.backup_dir / "base"
    started = datetime.now(UTC)
    ident = new_id(base, started)
    target = base / ident
    cluster.own(cluster.backup_dir, base, target)
    clock = time.monotonic()
    try:
        progress(f"copying the cluster into {target} (pg_basebackup, after a fast checkpoint) …")
        cluster.run([str(pg_tool("pg_basebackup")), "-D", str(target / "data"), "-Fp", "-Xstream",
                     "--checkpoint=fast", f"--label=anwang {ident}", "-h", str(cluster.socket_dir),
                     "-p", str(cluster.socket_port), "-U", SUPERUSER, "--no-password"])
        copied = time.monotonic() - clock
        progress(f"copied {human(folder_size(target))} in {copied:.1f} s; verifying against its manifest "
                 "(pg_verifybackup) …")
        cluster.run([str(pg_tool("pg_verifybackup")), "--quiet", str(target / "data")])
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    label = _backup_label(target / "data")
    wal = re.match(r"(\S+) \(file (\w+)\)", label["START WAL LOCATION"])
    ranges = json.loads((target / "data" / "backup_manifest").read_text())["WAL-Ranges"]
    finished = datetime.now(UTC)
    meta = {"id": ident, "kind": "base", "system": system, "started": started.isoformat(),
            "finished": finished.isoformat(), "size": folder_size(target),
            "timeline": int(label["START TIMELINE"]), "start_lsn": wal.group(1) if wal else None,
            "start_wal": wal.group(2) if wal else None, "end_lsn": ranges[-1]["End-LSN"],
            "seconds": round(time.monotonic() - clock, 1), "verified": True}
    _write_meta(target / "backup.json", meta)
    return Backup(ident, "base", target, started, finished, meta["size"], meta)


def prune(cluster: Cluster | None, folder: Path, keep: int | None, progress: Progress = quiet) -> list[str]:
    """Delete all but the newest `keep` backups, and archived WAL older than the oldest base backup
    kept (no restore can start before it); return the IDs deleted."""
    backups = list_backups(folder)
    system = cluster.system_id() if cluster else None
    gone = []
    for kind in ("base", "dump"):
        mine = [b for b in backups if b.kind == kind and (kind == "dump" or b.system == system)]
        for b in (mine[:-keep] if keep else []):
            if b.kind == "base":
                (b.path / "backup.json").unlink()   # first, so a half-deleted folder is never offered
                shutil.rmtree(b.path)
            else:
                b.path.with_suffix(".json").unlink()
                b.path.unlink(missing_ok=True)
            gone.append(b.id)
    kept = [b for b in list_backups(folder) if b.kind == "base" and b.system == system]
    if cluster and kept and kept[0].meta.get("start_wal") and cluster.wal_archive(system).is_dir():
        cluster.run([str(pg_tool("pg_archivecleanup")), "-x", ".gz", str(cluster.wal_archive(system)),
                     kept[0].meta["start_wal"]])
    if gone:
        progress(f"deleted {len(gone)} older backup(s): {', '.join(gone)}")
    return gone


def archive_reach(cluster: Cluster, system: str | None = None) -> datetime | None:
    """When the newest archived WAL segment was written: the latest moment a restore reaches."""
    folder = cluster.wal_archive(system)
    times = [f.stat().st_mtime for f in folder.glob("*.gz")] if folder.is_dir() else []
    return datetime.fromtimestamp(max(times), UTC) if times else None


# -- a DATABASE_URL server: pg_dump ------------------------------------------------------------------
@contextmanager
def libpq_target(url: str, database: str | None = None) -> Iterator[str]:
    """The URL as libpq takes it, its password in a private passfile (not on any command line)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if database:
        u = u.set(database=database)
    password = u.password
    u = u.set(drivername="postgresql", password=None)
    with tempfile.TemporaryDirectory(prefix="anwang-") as tmp:
        if password:
            passfile = Path(tmp) / "pgpass"
            escaped = re.sub(r"([:\\])", r"\\\1", str(password))
            passfile.write_text(f"*:*:*:*:{escaped}\n")
            passfile.chmod(0o600)
            u = u.update_query_dict({"passfile": str(passfile)})
        yield u.render_as_string(hide_password=False)


def server_version(conninfo: str) -> int:
    """The server's major version (15, 16 …)."""
    import psycopg

    try:
        with psycopg.connect(conninfo) as conn:
            (number,) = conn.execute("SHOW server_version_num").fetchall()[0]
            return int(number) // 10000
    except psycopg.OperationalError as exc:
        raise SetupError(f"cannot reach the database server: {str(exc).strip().splitlines()[-1]}") from None


def tool_version(tool: Path) -> int:
    out = subprocess.run([str(tool), "--version"], capture_output=True, text=True).stdout
    m = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(m.group(1)) if m else 0


def dump(url: str, folder: Path, progress: Progress = quiet) -> Backup:
    """pg_dump -Fc of the DATABASE_URL database into dumps/ID.dump (restorable with pg_restore,
    whole or table by table)."""
    tool = pg_tool("pg_dump")
    dumps = folder / "dumps"
    dumps.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    ident = new_id(dumps, started)
    target = dumps / f"{ident}.dump"
    clock = time.monotonic()
    with libpq_target(url) as conninfo:
        server = server_version(conninfo)
        if tool_version(tool) < server:
            raise SetupError(f"{tool} (version {tool_version(tool)}) cannot dump a PostgreSQL {server} server: "
                             f"install postgresql-client-{server}, or dump in the database container (README)")
        progress(f"dumping the database into {target} (pg_dump -Fc) …")
        part = target.with_name(target.name + ".part")
        proc = subprocess.run([str(tool), "--format=custom", "--no-password", f"--file={part}", conninfo],
                              capture_output=True, text=True)
    if proc.returncode != 0:
        part.unlink(missing_ok=True)
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SetupError(f"pg_dump failed: {tail}")
    os.replace(part, target)
    from sqlalchemy.engine import make_url

    finished, size = datetime.now(UTC), target.stat().st_size
    meta = {"id": ident, "kind": "dump", "database": make_url(url).database, "server_version": server,
            "started": started.isoformat(), "finished": finished.isoformat(), "size": size,
            "seconds": round(time.monotonic() - clock, 1)}
    _write_meta(target.with_suffix(".json"), meta)
    return Backup(ident, "dump", target, started, finished, size, meta)
