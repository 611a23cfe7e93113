"""The embedded PostGIS: a private cluster under var/ reached by a unix socket.

The server never runs as root: when the CLI is invoked as root the cluster belongs to the
`postgres` system user (created by Debian's packages) and every server command runs as that user.
Authentication is `trust` on the socket only, and the socket directory is mode 0700, so only the
cluster's owner (and root) can connect. No TCP port is opened unless ANWANG_DB_PORT is set.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import time
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


def _postgis_available(bindir: Path) -> bool:
    share = subprocess.run([str(bindir / "pg_config"), "--sharedir"], capture_output=True, text=True)
    sharedir = share.stdout.strip() if share.returncode == 0 else f"/usr/share/postgresql/{bindir.parent.name}"
    return bool(glob.glob(f"{sharedir}/extension/postgis.control"))


@dataclass
class Cluster:
    """One embedded cluster: data, socket and log under a var/ folder."""

    root: Path

    @classmethod
    def default(cls) -> "Cluster":
        return cls(settings.var_dir())

    @property
    def data_dir(self) -> Path:
        return self.root / "pg" / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "pg" / "run"

    @property
    def log_file(self) -> Path:
        return self.root / "pg" / "server.log"

    def url(self, dbname: str | None = None) -> str:
        """SQLAlchemy URL of a database in this cluster, over the unix socket."""
        return f"postgresql+psycopg://{SUPERUSER}@/{dbname or settings.database_name()}?host={self.socket_dir}"

    def libpq_url(self, dbname: str | None = None) -> str:
        """The same URL in libpq form, for psql and QGIS."""
        return f"postgresql://{SUPERUSER}@/{dbname or settings.database_name()}?host={self.socket_dir}"

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

    def _prepare_dirs(self) -> None:
        for d in (self.root / "pg", self.socket_dir):
            d.mkdir(parents=True, exist_ok=True)
        owner = self._owner()
        if owner:
            entry = pwd.getpwnam(owner)
            for d in (self.root / "pg", self.socket_dir):
                os.chown(d, entry.pw_uid, entry.pw_gid)
            # The owner must be able to reach var/ through its parents.
            p = self.root
            while p != p.parent:
                mode = p.stat().st_mode
                if not mode & 0o001:
                    os.chmod(p, mode | 0o001)
                p = p.parent
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
        self._prepare_dirs()
        self._run([str(bindir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                   "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"])
        port = settings.embedded_port()
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
        return True

    def start(self) -> bool:
        """Start the server if it is not running; return True if it was started now."""
        self.init()
        if self.running():
            return False
        self._prepare_dirs()
        bindir = _pg_bindir()
        port = settings.embedded_port()
        opts = f"-c listen_addresses='{'127.0.0.1' if port else ''}'" + (f" -p {port}" if port else "")
        proc = self._run([str(bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data_dir),
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

    def ensure_database(self, dbname: str | None = None) -> bool:
        """Create the database with PostGIS if missing; return True if it was created now."""
        import psycopg

        dbname = dbname or settings.database_name()
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = psycopg.connect(self.libpq_url("postgres"), autocommit=True)
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise SetupError(f"cannot connect to the embedded cluster in {self.socket_dir}")
                time.sleep(0.2)
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
