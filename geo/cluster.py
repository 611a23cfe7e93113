"""The embedded PostGIS: a private cluster under var/ reached by a unix socket.

The server never runs as root: when the CLI is invoked as root the cluster belongs to the
`postgres` system user (created by Debian's packages) and every server command runs as that user.
Authentication is `trust` on the socket only, and the socket directory is mode 0700, so only the
cluster's owner (and root) can connect. No TCP port is opened unless ANWANG_DB_PORT is set.
WAL is archived from the first start (geo/backups.py takes the base backups it is replayed onto).
"""
from __future__ import annotations

import glob
import os
import pwd
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from . import settings
from .errors import SetupError

SUPERUSER = "anwang"


def _pg_bindir() -> Path:
    """Find the newest installed PostgreSQL server binaries (Debian keeps them out of PATH)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parent.parent.name))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise SetupError("PostgreSQL server not installed: run `make setup` "
                     "(or apt-get install postgresql postgis)")


def pg_tool(name: str) -> Path:
    """A PostgreSQL client program (pg_dump, pg_restore …) of the newest installed version."""
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(Path(p).parent.parent.name))
    found = candidates[-1] if candidates else shutil.which(name)
    if not found:
        raise SetupError(f"{name} not installed: apt-get install postgresql-client")
    return Path(found)


def _postgis_available(bindir: Path) -> bool:
    share = subprocess.run([str(bindir / "pg_config"), "--sharedir"], capture_output=True, text=True)
    sharedir = share.stdout.strip() if share.returncode == 0 else f"/usr/share/postgresql/{bindir.parent.name}"
    return bool(glob.glob(f"{sharedir}/extension/postgis.control"))


def _reachable(folder: Path) -> None:
    """Let other users pass through `folder` and its parents (search only, never list): the
    server's user must reach var/ and the backups folder from the root."""
    p = folder
    while p != p.parent:
        mode = p.stat().st_mode
        if not mode & 0o001:
            os.chmod(p, mode | 0o001)
        p = p.parent


def _quote(value: str) -> str:
    """A value as postgresql.conf spells a string (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


@dataclass
class Cluster:
    """One embedded cluster: data, socket and log under a var/ folder, its TCP port on 127.0.0.1
    (None: the socket only) and the folder its backups and archived WAL go to."""

    root: Path
    port: int | None = None
    backups: Path | None = None

    @classmethod
    def default(cls) -> Cluster:
        return cls(settings.var_dir(), settings.embedded_port(), settings.backups_dir())

    @property
    def backup_dir(self) -> Path:
        return self.backups or self.root / "backups"

    @property
    def data_dir(self) -> Path:
        return self.root / "pg" / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "pg" / "run"

    @property
    def log_file(self) -> Path:
        return self.root / "pg" / "server.log"

    @property
    def socket_port(self) -> int:
        """The port in the socket's name (.s.PGSQL.PORT): the TCP port, else PostgreSQL's default."""
        return self.port or 5432

    def url(self, dbname: str | None = None) -> str:
        """SQLAlchemy URL of a database in this cluster, over the unix socket."""
        return (f"postgresql+psycopg://{SUPERUSER}@/{dbname or settings.database_name()}"
                f"?host={self.socket_dir}&port={self.socket_port}")

    def libpq_url(self, dbname: str | None = None) -> str:
        """The same URL in libpq form, for psql and QGIS."""
        return (f"postgresql://{SUPERUSER}@/{dbname or settings.database_name()}"
                f"?host={self.socket_dir}&port={self.socket_port}")

    # -- running commands as the cluster owner -------------------------------------------------
    def _owner(self) -> str | None:
        """System user the server runs as: None (the caller) unless the caller is root."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:
            raise SetupError("running as root and no `postgres` system user exists to own the "
                             "cluster: install Debian's postgresql package") from exc
        return "postgres"

    def run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
        """Run a PostgreSQL program as the cluster's owner; a failure is one SetupError line."""
        return self._run(args, check)

    def own(self, *paths: Path) -> None:
        """Give folders to the cluster's owner (the server writes archived WAL and backups there)."""
        owner = self._owner()
        for path in paths:
            path.mkdir(parents=True, exist_ok=True)
            if owner:
                entry = pwd.getpwnam(owner)
                os.chown(path, entry.pw_uid, entry.pw_gid)
                _reachable(path.parent)

    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
        name = Path(args[0]).name
        owner = self._owner()
        if owner:
            args = ["runuser", "-u", owner, "--"] + args
        proc = subprocess.run(args, capture_output=True, text=True)
        if check and proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise SetupError(f"{name} failed: {tail[0]}")
        return proc

    def prepare_dirs(self) -> None:
        """Make the folders the server writes, owned by its user, the socket folder private."""
        for d in (self.root / "pg", self.socket_dir):
            d.mkdir(parents=True, exist_ok=True)
        owner = self._owner()
        if owner:
            entry = pwd.getpwnam(owner)
            for d in (self.root / "pg", self.socket_dir):
                os.chown(d, entry.pw_uid, entry.pw_gid)
            _reachable(self.root)
        os.chmod(self.socket_dir, 0o700)

    # -- lifecycle ------------------------------------------------------------------------------
    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def running(self) -> bool:
        if not self.initialised():
            return False
        bindir = _pg_bindir()
        return self._run([str(bindir / "pg_ctl"), "status", "-D", str(self.data_dir)], check=False).returncode == 0

    def init(self) -> bool:
        """Create the cluster the first time; return True if it was created now."""
        bindir = _pg_bindir()
        if not _postgis_available(bindir):
            raise SetupError("PostGIS is not installed for PostgreSQL "
                             f"{bindir.parent.name}: run `make setup` (apt-get install postgis)")
        if self.initialised():
            return False
        self.prepare_dirs()
        self._run([str(bindir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                   "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"])
        port = self.port
        conf = [
            "# Anwang embedded cluster",
            f"unix_socket_directories = '{self.socket_dir}'",
            f"listen_addresses = '{'127.0.0.1' if port else ''}'",
            f"port = {port or 5432}",
            "fsync = on",
            "shared_buffers = 256MB",
            "work_mem = 32MB",
            "maintenance_work_mem = 256MB",
            "max_connections = 200",
            "logging_collector = off",
        ]
        # Appending keeps the file's owner; ALTER SYSTEM can still manage it later.
        with open(self.data_dir / "postgresql.auto.conf", "a") as fh:
            fh.write("\n".join(conf) + "\n")
        # archive_mode needs a restart to change, so it is on from the start.
        self.configure(self.archive_settings())
        return True

    # -- configuration and WAL archiving --------------------------------------------------------
    @property
    def conf_file(self) -> Path:
        return self.data_dir / "postgresql.auto.conf"

    def setting(self, name: str) -> str | None:
        """A setting as postgresql.auto.conf holds it (the last line naming it wins), unquoted."""
        found = None
        if self.conf_file.exists():
            for line in self.conf_file.read_text().splitlines():
                m = re.match(rf"\s*{name}\s*=\s*(.*?)\s*$", line)
                if m:
                    raw = m.group(1)
                    found = raw[1:-1].replace("''", "'") if raw.startswith("'") else raw
        return found

    def configure(self, values: Mapping[str, str | None]) -> None:
        """Set (None: remove) settings in postgresql.auto.conf; a running server needs a reload."""
        lines = self.conf_file.read_text().splitlines() if self.conf_file.exists() else []
        kept = [line for line in lines
                if not any(re.match(rf"\s*{name}\s*=", line) for name in values)]
        kept += [f"{name} = {_quote(value)}" for name, value in values.items() if value is not None]
        # Writing the existing file in place keeps its owner.
        with open(self.conf_file, "w") as fh:
            fh.write("\n".join(kept) + "\n")

    def reload(self) -> None:
        self._run([str(_pg_bindir() / "pg_ctl"), "reload", "-D", str(self.data_dir)])

    def system_id(self) -> str:
        """The cluster's system identifier: a base backup and the WAL it replays share it."""
        out = self._run([str(_pg_bindir() / "pg_controldata"), "-D", str(self.data_dir)]).stdout
        m = re.search(r"Database system identifier:\s*(\d+)", out)
        if not m:
            raise SetupError(f"pg_controldata shows no system identifier for {self.data_dir}")
        return m.group(1)

    def wal_archive(self, system_id: str | None = None) -> Path:
        """Where WAL is archived: one folder per cluster lineage (a re-created cluster starts its
        segment names again, a restored one continues its backup's)."""
        return self.backup_dir / "wal" / (system_id or self.system_id())

    def archive_settings(self) -> dict[str, str]:
        """Archive every finished WAL segment gzipped (an idle one shrinks to a few kB), a segment
        at least every 5 minutes; an identical copy already there counts as done, another refuses."""
        folder = self.wal_archive()
        self.own(self.backup_dir, self.backup_dir / "wal", folder)
        target = f"{shlex.quote(str(folder))}/%f.gz"
        command = (f'f={target}; if test -f "$f"; then gzip -1 -n < %p | cmp -s - "$f"; '
                   f'else gzip -1 -n < %p > "$f.part" && sync "$f.part" && mv "$f.part" "$f"; fi')
        return {"archive_mode": "on", "archive_command": command, "archive_timeout": "300"}

    def restore_command(self, system_id: str) -> str:
        source = f"{shlex.quote(str(self.wal_archive(system_id)))}/%f.gz"
        return f"test -f {source} && gzip -dc {source} > %p"

    def start(self, timeout: int = 60) -> bool:
        """Start the server if it is not running; return True if it was started now."""
        self.init()
        if self.running():
            return False
        self.prepare_dirs()
        bindir = _pg_bindir()
        port = self.port
        opts = f"-c listen_addresses='{'127.0.0.1' if port else ''}' -p {self.socket_port}"
        proc = self._run([str(bindir / "pg_ctl"), "start", "-w", "-t", str(timeout), "-D", str(self.data_dir),
                          "-l", str(self.log_file), "-o", opts], check=False)
        if proc.returncode != 0:
            last = ""
            if self.log_file.exists():
                lines = self.log_file.read_text(errors="replace").strip().splitlines()
                last = lines[-1] if lines else ""
            raise SetupError(f"embedded PostgreSQL did not start (see {self.log_file}): {last}")
        return True

    def stop(self) -> bool:
        """Stop the server if it runs; return True if it was stopped now."""
        if not self.running():
            return False
        bindir = _pg_bindir()
        self._run([str(bindir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.data_dir)])
        return True

    def connect(self, dbname: str = "postgres", wait: float = 30):
        """An autocommit psycopg connection over the socket, waiting up to `wait` s for the server."""
        import psycopg

        deadline = time.monotonic() + wait
        while True:
            try:
                return psycopg.connect(self.libpq_url(dbname), autocommit=True)
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise SetupError(f"cannot connect to the embedded cluster in {self.socket_dir}") from None
                time.sleep(0.2)

    def ensure_database(self, dbname: str | None = None) -> bool:
        """Create the database with PostGIS if missing; return True if it was created now."""
        import psycopg

        dbname = dbname or settings.database_name()
        conn = self.connect()
        with conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{dbname}"')
        with psycopg.connect(self.libpq_url(dbname), autocommit=True) as db:
            db.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        return not exists

    def drop_database(self, dbname: str) -> None:
        import psycopg

        with psycopg.connect(self.libpq_url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
