"""The writer thread behind the OsmAnd port and the tracker ports: every ping handed to it while a
commit is under way goes into the next group commit (`groupcommit.ingest_pings`).

A handler either waits for its ping's outcome (`store`, for a thread per request) or is called back
with it from the writer thread (`submit`, for an event loop). Either way the outcome is known only
once the commit holding the ping is done, so an answer sent then still means stored.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable

from geo.patrol import groupcommit
from geo.patrol.filters import DEFAULT_LIMITS, Limits

log = logging.getLogger(__name__)
MAX_GROUP = 500        # pings per commit: bounds the statement and the wait behind a long queue
WAIT_S = 60.0          # longer than this and a waiting handler gives up (the device retries)


class _Waiting:
    """A ping handed to the writer, and what became of it."""

    __slots__ = ("ping", "done", "outcome", "error", "callback")
    error: Exception | None

    def __init__(self, ping: groupcommit.Ping, callback: Callable[[_Waiting], None] | None = None):
        self.ping, self.outcome, self.error, self.callback = ping, None, None, callback
        # Held until the writer releases it: the cheapest one-shot wake-up between two threads.
        self.done = threading.Lock()
        self.done.acquire()

    def finish(self) -> None:
        """Wake the handler waiting for this ping, or call it back."""
        if self.callback is None:
            self.done.release()
            return
        try:
            self.callback(self)
        except Exception:  # noqa: BLE001 — a handler's failure must not stop the writer
            log.exception("a ping's callback failed")


class GroupCommit:
    """The process's writer thread: stores the pings handed to it, a group per commit."""

    def __init__(self, conninfo: str, max_group: int = MAX_GROUP, wait_s: float = WAIT_S,
                 limits: Limits = DEFAULT_LIMITS):
        self.conninfo, self.max_group, self.wait_s, self.limits = conninfo, max_group, wait_s, limits
        self.pid = os.getpid()
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.conn = None
        self.thread = threading.Thread(target=self._run, name="anwang-ping-writer", daemon=True)
        self.thread.start()

    def store(self, ping: groupcommit.Ping):
        """Store a ping with the next group commit and return its outcome (see groupcommit.ingest_pings)."""
        waiting = _Waiting(ping)
        self.queue.put(waiting)
        if not waiting.done.acquire(timeout=self.wait_s):
            raise TimeoutError(f"no commit within {self.wait_s:.0f} s")
        if waiting.error is not None:
            raise waiting.error
        return waiting.outcome

    def submit(self, ping: groupcommit.Ping, callback: Callable[[_Waiting], None]) -> None:
        """Hand a ping to the writer; `callback(waiting)` runs on the writer thread once it is stored
        (`waiting.outcome`) or has failed (`waiting.error`)."""
        self.queue.put(_Waiting(ping, callback))

    def close(self) -> None:
        """Stop the writer once the pings already handed to it are stored, and close its connection."""
        self.queue.put(None)
        self.thread.join(10)
        if self.conn is not None:
            self.conn.close()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            group = [self.queue.get()]
            # Everything that came while the last group was being written goes in this one.
            while len(group) < self.max_group:
                try:
                    group.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            stopping = None in group
            group = [w for w in group if w is not None]
            if group:
                try:
                    self._write(group)
                except Exception as exc:  # noqa: BLE001 — no handler may be left waiting
                    log.exception("ping writer failed on a group of %d pings", len(group))
                    for w in group:
                        if w.outcome is None and w.error is None:
                            w.error = exc
                            w.finish()

    def _connection(self):
        import psycopg

        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(self.conninfo, autocommit=True)
        return self.conn

    def _drop_connection(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None

    def _write(self, group: list[_Waiting]) -> None:
        try:
            conn = self._connection()
            outcomes = groupcommit.ingest_pings(conn, [w.ping for w in group], self.limits)
        except Exception as exc:  # noqa: BLE001 — the writer must outlive any one group
            self._drop_connection()
            if len(group) > 1:
                # One bad ping must not fail the others with it: each again on its own, so only the
                # pings that fail alone (all of them when the database is away) fail.
                log.warning("group commit of %d pings failed (%s); storing them one by one",
                            len(group), exc)
                for w in group:
                    self._write([w])
                return
            log.exception("ping failed")
            group[0].error = exc
            group[0].finish()
            return
        for w, outcome in zip(group, outcomes):
            w.outcome = outcome
            w.finish()
        try:
            groupcommit.publish_pings(conn, outcomes)
        except Exception:  # noqa: BLE001 — the fixes are stored; only their live events are lost
            log.exception("live events of %d stored pings were not published", len(group))
            self._drop_connection()
