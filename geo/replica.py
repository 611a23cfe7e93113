"""A streaming read replica of the embedded cluster, and the rule that sends reads to it.

The replica is a hot standby under var/replica (pg_basebackup -R from the primary's socket) with its
own socket and, if asked, its own TCP port. A replication slot keeps the WAL it has not received
yet, at most max_slot_wal_keep_size of it, so a replica left stopped never fills the primary's disk.

ReadRouter decides per read: the replica when it has replayed far enough, else the primary.
"""
from __future__ import annotations

import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from .backups import Progress, quiet
from .cluster import SUPERUSER, Cluster, pg_tool
from .errors import SetupError

SLOT = "anwang_replica"
APPLICATION = "anwang_replica"


def replica_of(primary: Cluster, port: int | None = None) -> Cluster:
    """The replica's cluster beside the primary's (var/replica), on the port it was made with
    unless another is given."""
    replica = Cluster(primary.root / "replica", port)
    if port is None and replica.initialised() and replica.setting("listen_addresses"):
        replica.port = int(replica.setting("port") or 5432)
    return replica


def create(primary: Cluster, replica: Cluster, progress: Progress = quiet) -> None:
    """Make the replica's data folder: a base backup of the primary that starts as a standby
    following it (standby.signal, primary_conninfo), with its own socket and port."""
    if replica.initialised():
        raise SetupError(f"a replica already exists in {replica.root}")
    with primary.connect() as conn:
        # A slot left by an earlier replica would hold WAL for nobody.
        conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                     "WHERE slot_name = %s AND NOT active", (SLOT,))
        keep = conn.execute("SHOW max_slot_wal_keep_size").fetchone()[0]
    if keep == "-1":
        primary.configure({"max_slot_wal_keep_size": "4GB"})
        primary.reload()
    replica.prepare_dirs()
    progress(f"copying the primary into {replica.data_dir} (pg_basebackup -R, slot {SLOT}) …")
    try:
        primary.run([str(pg_tool("pg_basebackup")), "-D", str(replica.data_dir), "-Fp", "-Xstream",
                     "--checkpoint=fast", "-R", "-C", "-S", SLOT, "-h", str(primary.socket_dir),
                     "-p", str(primary.socket_port), "-U", SUPERUSER, "--no-password"])
    except SetupError:
        shutil.rmtree(replica.data_dir, ignore_errors=True)
        raise
    conninfo = replica.setting("primary_conninfo") or ""
    replica.configure({
        "primary_conninfo": f"{conninfo} application_name={APPLICATION}",
        "unix_socket_directories": str(replica.socket_dir),
        "port": str(replica.socket_port),
        "listen_addresses": "127.0.0.1" if replica.port else "",
        # Long analytics queries are not cancelled by the primary's vacuum (it waits for them).
        "hot_standby": "on",
        "hot_standby_feedback": "on",
    })


def remove(replica: Cluster, primary: Cluster | None = None) -> bool:
    """Stop and delete the replica (and its slot on the primary); return True if there was one."""
    if not replica.initialised():
        return False
    replica.stop()
    shutil.rmtree(replica.root / "pg")
    if primary is not None and primary.running():
        with primary.connect() as conn:
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                         "WHERE slot_name = %s AND NOT active", (SLOT,))
    return True


@dataclass
class Status:
    """How far the replica follows: the primary's view of it (pg_stat_replication)."""

    state: str | None
    lag_bytes: int | None
    replay_lag: float | None


def status(primary: Cluster, wait: float = 0) -> Status:
    """The replica's state as the primary sees it, waiting up to `wait` s for it to stream."""
    deadline = time.monotonic() + wait
    while True:
        with primary.connect() as conn:
            row = conn.execute("""
                SELECT state, pg_wal_lsn_diff(pg_current_wal_flush_lsn(), replay_lsn)::bigint,
                       extract(epoch FROM replay_lag)::float
                  FROM pg_stat_replication WHERE application_name = %s""", (APPLICATION,)).fetchone()
        if (row and row[0] == "streaming" and row[1] is not None) or time.monotonic() >= deadline:
            return Status(*row) if row else Status(None, None, None)
        time.sleep(0.2)


# -- routing reads ------------------------------------------------------------------------------------
def lsn(value: str | None) -> int:
    """A WAL position ('16/B374D848') as a number (0 for none)."""
    if not value:
        return 0
    high, _, low = str(value).partition("/")
    return (int(high, 16) << 32) | int(low, 16)


class ReadRouter:
    """Send reads that tolerate `max_lag` seconds of lag to a replica while it keeps up.

    A read goes to the replica when the WAL it has replayed covers (a) what the caller asks for,
    their own last commit, so that a user sees their own saves, and (b) the primary's position at
    some moment in the last `max_lag` seconds, so that no one reads older data than that. Otherwise
    it goes to the primary; an unreachable replica is left alone for a few seconds.
    """

    RETRY_AFTER = 5.0

    def __init__(self, primary: Engine, replica: Engine, max_lag: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.primary, self.replica, self.max_lag, self.clock = primary, replica, max_lag, clock
        self._samples: deque[tuple[float, int]] = deque()    # (when, primary's flushed position)
        self._lock = threading.Lock()
        self._down_until = 0.0

    def primary_position(self) -> int:
        """The primary's flushed WAL position: every commit acknowledged before this call is at or
        below it (and the replica can only receive flushed WAL)."""
        with self.primary.connect() as conn:
            position = lsn(conn.execute(text("SELECT pg_current_wal_flush_lsn()::text")).scalar_one())
        with self._lock:
            self._samples.append((self.clock(), position))
        return position

    def horizon(self) -> int:
        """A position the replica must have replayed to lag at most `max_lag`: the primary's at a
        moment between max_lag/2 and max_lag ago when a sample of then exists (the replica has
        usually passed it), else a younger one. The primary is asked at most every max_lag/4 s."""
        now = self.clock()
        with self._lock:
            while self._samples and now - self._samples[0][0] > self.max_lag:
                self._samples.popleft()
            fresh = bool(self._samples) and now - self._samples[-1][0] < self.max_lag / 4
        if not fresh:
            self.primary_position()
        with self._lock:
            old = [position for at, position in self._samples if now - at >= self.max_lag / 2]
            return old[-1] if old else self._samples[0][1]

    def replica_connection(self, need: int = 0) -> Connection | None:
        """A connection to the replica if it has replayed `need` and the horizon, else None."""
        if self.clock() < self._down_until:
            return None
        horizon = self.horizon()
        try:
            conn = self.replica.connect()
        except DBAPIError:
            self._down_until = self.clock() + self.RETRY_AFTER
            return None
        try:
            recovering, replayed = conn.execute(text(
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text")).one()
            conn.rollback()
        except DBAPIError:
            conn.close()
            self._down_until = self.clock() + self.RETRY_AFTER
            return None
        # A server not in recovery (a promoted replica, or the primary itself) has no lag.
        if not recovering or lsn(replayed) >= max(need, horizon):
            return conn
        conn.close()
        return None
