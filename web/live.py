"""Live events in a web process: the one LISTEN connection, the ring of recent events, and the form
of each event every audience may receive.

One listener thread per web process holds the only LISTEN connection (channel `anwang_live`) and
appends every notification, in commit order, to a bounded in-memory ring. An event may carry a
generalised form for every viewer of its area and an exact one for the roles that act on it
(geo.policy); `frames` renders a run of events for one audience. Every event carries its
`live_events` id as the SSE id, so a viewer reconnecting with Last-Event-ID (EventSource does it by
itself) resumes exactly from the ring, or, when the id has left the ring or was served by another
process, from the `live_events` table (with a small overlap dropped by id).

A NOTIFY sent while no connection listens is lost, but its event is in the table: each time the
listener (re)connects it LISTENs first and then reads the table after the newest id it holds, so a
database restart costs viewers a pause, never an event.

The viewers themselves are served by web/livefeed.py; `stream` is the thread-held body for servers
that cannot hand a socket over (the development server, the tests' client).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque

from geo import db
from geo.policy import Audience

log = logging.getLogger(__name__)

CHANNEL = "anwang_live"
RING_SIZE = 20000
KEEPALIVE_S = 15.0
RESUME_SLACK = 200          # ids that may commit out of order around a resume point
PAGE = 2000                 # rows of the table read at a time (a backfill, a resume)
RETENTION = "1 day"
SUMMARIES = ("incidents", "risk_bulk")   # counts only, no place: everyone may see them


class Hub:
    """The process's LISTEN connection and the ring of recent events it fans out."""

    def __init__(self, conninfo: str, ring_size: int = RING_SIZE, name: str = "anwang live"):
        self.conninfo, self.name = conninfo, name
        self.ring: deque = deque(maxlen=ring_size)   # (seq, id, kind, path, data, exact data)
        self.by_id: dict = {}
        self.seq = 0
        self.last_id: int | None = None     # the newest id held: where a backfill starts
        self.floor = 0                      # the newest id when the listener first connected
        self.cond = threading.Condition()
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.clients = 0
        self.watchers: list = []
        self.backfilled = 0                 # events taken from the table after a lost connection

    # -- the listener ---------------------------------------------------------------------------
    def start(self) -> Hub:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._run, name="anwang-live-listener", daemon=True)
            self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()

    def watch(self, callback) -> None:
        """Call `callback()` (from the listener's thread) whenever events are appended."""
        self.watchers.append(callback)

    def _run(self) -> None:
        import psycopg

        backoff = 0.5
        last_prune = 0.0
        while not self.stopping.is_set():
            try:
                # The request role's bounds: the backfill after a reconnect is a read like any other.
                with psycopg.connect(self.conninfo, autocommit=True, application_name=self.name,
                                     options=db.connect_options("request")) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    # Listening first, then reading the table: an event committed in between is
                    # both read and notified (and kept once), never neither.
                    self.backfill(conn)
                    self.ready.set()
                    backoff = 0.5
                    while not self.stopping.is_set():
                        # One packet at a time, read whole: the generator holds the connection, so a
                        # referenced payload can only be read after it, and leaving it early would
                        # drop the rest of the packet.
                        payloads = [n.payload for n in conn.notifies(timeout=2.0, stop_after=1)]
                        if payloads:
                            self._receive(conn, payloads)
                        if time.monotonic() - last_prune > 600:
                            last_prune = time.monotonic()
                            conn.execute(f"DELETE FROM live_events WHERE ts < now() - interval '{RETENTION}'")
            except Exception as exc:  # noqa: BLE001 — the listener must survive server restarts
                self.ready.clear()
                if self.stopping.is_set():
                    break
                log.warning("live listener lost its connection (%s); retrying in %.1f s", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def backfill(self, conn) -> int:
        """Append what the table holds after the newest event held; the number appended."""
        if self.last_id is None:
            # The first connection: nothing to catch up, but a mark to catch up from should this
            # connection be lost before an event arrives.
            # Events up to it are history, not news: a backfill never reaches below it.
            newest = conn.execute("SELECT coalesce(max(id), 0) FROM live_events").fetchone()[0]
            with self.cond:
                self.floor = newest
                self.last_id = newest if self.last_id is None else max(self.last_id, newest)
            return 0
        after, added = max(self.floor, self.last_id - RESUME_SLACK), 0
        while True:
            rows = conn.execute("SELECT id, kind, area_path::text, payload::text, payload_exact::text "
                                "FROM live_events WHERE id > %s ORDER BY id LIMIT %s", (after, PAGE)).fetchall()
            added += self.extend(rows)
            if len(rows) < PAGE:
                break
            after = rows[-1][0]
        if added:
            self.backfilled += added
            log.warning("live listener reconnected: %d events taken from the table", added)
        return added

    def _receive(self, conn, payloads: list[str]) -> None:
        events = []
        for payload in payloads:
            try:
                msg = json.loads(payload)
            except ValueError:
                continue
            if msg.get("ref"):        # too big for NOTIFY: read it from the log
                row = conn.execute("SELECT payload::text, payload_exact::text FROM live_events "
                                   "WHERE id = %s", (msg["id"],)).fetchone()
                if row is None:
                    continue
                data, exact = row
            else:
                data = json.dumps(msg.get("data"), ensure_ascii=False, separators=(",", ":"))
                exact = (json.dumps(msg["exact"], ensure_ascii=False, separators=(",", ":"))
                         if msg.get("exact") is not None else None)
            events.append((int(msg["id"]), msg.get("kind") or "message", msg.get("path"), data, exact))
        self.extend(events)

    def append(self, event_id: int, kind: str, path: str | None, data: str,
               exact: str | None = None) -> bool:
        """Add one event to the ring; False if the ring holds it already."""
        return self.extend([(event_id, kind, path, data, exact)]) == 1

    def extend(self, events) -> int:
        """Add events (id, kind, path, data, exact) in order, each id once; the number added."""
        added = 0
        with self.cond:
            for event_id, kind, path, data, exact in events:
                if event_id in self.by_id:
                    continue
                self.seq += 1
                if len(self.ring) == self.ring.maxlen:
                    old = self.ring[0]
                    self.by_id.pop(old[1], None)
                self.ring.append((self.seq, event_id, kind, path, data, exact))
                self.by_id[event_id] = self.seq
                self.last_id = event_id if self.last_id is None else max(self.last_id, event_id)
                added += 1
            if added:
                self.cond.notify_all()
        if added:
            for wake in self.watchers:
                wake()
        return added

    # -- readers --------------------------------------------------------------------------------
    def after(self, seq: int) -> tuple[list, int, bool]:
        """Events with a local sequence above `seq`; (events, new seq, overflowed). Hold cond."""
        if not self.ring or seq >= self.seq:
            return [], seq, False
        first = self.ring[0][0]
        overflow = seq < first - 1
        start = max(seq + 1, first) - first
        events = [self.ring[i] for i in range(start, len(self.ring))]
        return events, self.seq, overflow


def hub_for(app, conninfo_of) -> Hub:
    """The app's hub in this process, started; `conninfo_of()` gives its connection string."""
    import os

    ext = app.extensions.setdefault("anwang_live", {})
    with _hub_lock:
        hub = ext.get("hub")
        if hub is None or ext.get("hub_pid") != os.getpid():
            # Made in the process that serves: a listener thread does not survive a fork.
            hub = ext["hub"] = Hub(conninfo_of())
            ext["hub_pid"] = os.getpid()
        hub.start()
    return hub


_hub_lock = threading.Lock()


# -- what each audience receives -----------------------------------------------------------------
def _visible(path: str | None, audience: Audience, kind: str | None = None) -> bool:
    return kind in SUMMARIES or audience.scope.covers(path)


def _shown(audience: Audience, data: str, exact: str | None) -> str:
    """The form of an event this audience may receive."""
    return exact if exact is not None and audience.exact else data


def _frame(event_id: int, kind: str, data: str) -> str:
    return f"id: {event_id}\nevent: {kind}\ndata: {data}\n\n"


class Follower:
    """The ids lately sent to one viewer, so that an event read from both the table and the ring
    goes out once."""

    WINDOW = PAGE + 4 * RESUME_SLACK

    def __init__(self):
        self.sent: set = set()
        self.order: deque = deque()

    def take(self, event_id: int) -> bool:
        """Whether the event is new to this viewer (and remember it)."""
        if event_id in self.sent:
            return False
        self.sent.add(event_id)
        self.order.append(event_id)
        if len(self.order) > self.WINDOW:
            self.sent.discard(self.order.popleft())
        return True


def frames(events, audience: Audience, follower: Follower | None = None) -> str:
    """The SSE frames of ring entries (seq, id, kind, path, data, exact) this audience may see."""
    out = []
    for _seq, event_id, kind, path, data, exact in events:
        if not _visible(path, audience, kind):
            continue
        if follower is not None and not follower.take(event_id):
            continue
        out.append(_frame(event_id, kind, _shown(audience, data, exact)))
    return "".join(out)


def read_log(engine, after_id: int, limit: int = PAGE) -> list[tuple]:
    """Rows of `live_events` after an id, oldest first, shaped as ring entries (seq 0)."""
    from sqlalchemy import text

    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, kind, area_path::text, payload::text, payload_exact::text "
                                 "FROM live_events WHERE id > :i ORDER BY id LIMIT :n"),
                            {"i": after_id, "n": limit}).all()
    return [(0, *r) for r in rows]


def stream(hub: Hub, engine, last_id: int | None, audience: Audience, max_seconds: float | None):
    """The SSE body for one client, holding the server thread that iterates it."""
    deadline = time.monotonic() + max_seconds if max_seconds else None
    follower = Follower()
    position = last_id              # the newest id handled: where a resume from the table starts
    with hub.cond:
        hub.clients += 1
        cursor = hub.seq
        resume = last_id is not None and last_id not in hub.by_id
        if last_id is not None and not resume:
            cursor = hub.by_id[last_id]
    try:
        yield "retry: 2000\n: connected\n\n"
        while deadline is None or time.monotonic() < deadline:
            if resume:
                # Everything after `position`, page by page, then the ring from where it stood.
                with hub.cond:
                    cursor = hub.seq
                after = position - RESUME_SLACK
                while True:
                    rows = read_log(engine, after)
                    text = frames(rows, audience, follower)
                    if text:
                        yield text
                    if rows:
                        after = rows[-1][1]
                        position = max(position, after)
                    if len(rows) < PAGE:
                        break
                resume = False
            with hub.cond:
                if hub.seq <= cursor:
                    hub.cond.wait(KEEPALIVE_S if deadline is None
                                  else max(0.05, min(KEEPALIVE_S, deadline - time.monotonic())))
                events, cursor, overflow = hub.after(cursor)
            if overflow and engine is not None and position is not None:
                resume = True           # the ring moved past this viewer: the table has it all
                continue
            if not events:
                yield ": keepalive\n\n"
                continue
            position = max(position or 0, max(e[1] for e in events))
            text = frames(events, audience, follower)
            if text:
                yield text
    finally:
        with hub.cond:
            hub.clients -= 1
