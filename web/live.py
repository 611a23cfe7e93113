"""GET /api/live: Server-Sent Events fed by PostgreSQL LISTEN/NOTIFY.

One listener thread per web process holds the only LISTEN connection (channel `anwang_live`) and
appends every notification, in commit order, to a bounded in-memory ring; each SSE client is a
generator that waits on the ring's condition and writes what is new, filtered to the viewer's
area scope and audience (an event may carry a generalised form for every viewer of its area and
an exact one for the roles that act on it: geo.policy). Every event carries its `live_events` id
as the SSE id, so a browser reconnecting
with Last-Event-ID (EventSource does it by itself) resumes exactly from the ring, or, when the id
has left the ring or was served by another process, from the `live_events` table (with a small
overlap that clients drop by id). Comments keep idle connections alive through proxies.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque

from flask import Blueprint, Response, current_app, request

from geo.policy import Audience

from . import database
from .auth import current_user, roles

log = logging.getLogger(__name__)
bp = Blueprint("live", __name__, url_prefix="/api")

CHANNEL = "anwang_live"
RING_SIZE = 20000
KEEPALIVE_S = 15.0
RESUME_SLACK = 200          # ids that may commit out of order around a resume point
RETENTION = "1 day"


class Hub:
    """The process's LISTEN connection and the ring of recent events it fans out."""

    def __init__(self, conninfo: str, ring_size: int = RING_SIZE):
        self.conninfo = conninfo
        self.ring: deque = deque(maxlen=ring_size)   # (seq, id, kind, path, data, exact data)
        self.by_id: dict = {}
        self.seq = 0
        self.cond = threading.Condition()
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.clients = 0

    # -- the listener ---------------------------------------------------------------------------
    def start(self) -> Hub:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._run, name="anwang-live-listener", daemon=True)
            self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()

    def _run(self) -> None:
        import psycopg

        backoff = 0.5
        last_prune = 0.0
        while not self.stopping.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.ready.set()
                    backoff = 0.5
                    while not self.stopping.is_set():
                        for note in conn.notifies(timeout=2.0):
                            self._receive(conn, note.payload)
                        if time.monotonic() - last_prune > 600:
                            last_prune = time.monotonic()
                            conn.execute(f"DELETE FROM live_events WHERE ts < now() - interval '{RETENTION}'")
            except Exception as exc:  # noqa: BLE001 — the listener must survive server restarts
                self.ready.clear()
                if self.stopping.is_set():
                    break
                log.warning("live listener lost its connection (%s); retrying in %.1f s", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    def _receive(self, conn, payload: str) -> None:
        try:
            msg = json.loads(payload)
        except ValueError:
            return
        if msg.get("ref"):        # too big for NOTIFY: read it from the log
            row = conn.execute("SELECT payload::text, payload_exact::text FROM live_events WHERE id = %s",
                               (msg["id"],)).fetchone()
            if row is None:
                return
            data, exact = row
        else:
            data = json.dumps(msg.get("data"), ensure_ascii=False, separators=(",", ":"))
            exact = (json.dumps(msg["exact"], ensure_ascii=False, separators=(",", ":"))
                     if msg.get("exact") is not None else None)
        self.append(int(msg["id"]), msg.get("kind") or "message", msg.get("path"), data, exact)

    def append(self, event_id: int, kind: str, path: str | None, data: str,
               exact: str | None = None) -> None:
        with self.cond:
            self.seq += 1
            if len(self.ring) == self.ring.maxlen:
                old = self.ring[0]
                self.by_id.pop(old[1], None)
            self.ring.append((self.seq, event_id, kind, path, data, exact))
            self.by_id[event_id] = self.seq
            self.cond.notify_all()

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


def hub_for(app) -> Hub:
    ext = app.extensions.setdefault("anwang_live", {})
    with _hub_lock:
        hub = ext.get("hub")
        if hub is None:
            url = database.engine().url.render_as_string(hide_password=False)
            conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
            hub = ext["hub"] = Hub(conninfo)
        hub.start()
    return hub


_hub_lock = threading.Lock()


SUMMARIES = ("incidents", "risk_bulk")   # counts only, no place: everyone may see them


def _visible(path: str | None, audience: Audience, kind: str | None = None) -> bool:
    return kind in SUMMARIES or audience.scope.covers(path)


def _shown(audience: Audience, data: str, exact: str | None) -> str:
    """The form of an event this audience may receive."""
    return exact if exact is not None and audience.exact else data


def _frame(event_id: int, kind: str, data: str) -> str:
    return f"id: {event_id}\nevent: {kind}\ndata: {data}\n\n"


def _from_table(engine, after_id: int, audience: Audience, sent: set, limit: int = 5000) -> list[str]:
    from sqlalchemy import text

    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, kind, area_path::text, payload::text, payload_exact::text "
                                 "FROM live_events WHERE id > :i ORDER BY id LIMIT :n"),
                            {"i": max(0, after_id - RESUME_SLACK), "n": limit}).all()
    out = []
    for r in rows:
        if r[0] in sent or not _visible(r[2], audience, r[1]):
            continue
        sent.add(r[0])
        out.append(_frame(r[0], r[1], _shown(audience, r[3], r[4])))
    return out


def stream(hub: Hub, engine, last_id: int | None, audience: Audience, max_seconds: float | None):
    """The SSE body for one client."""
    deadline = time.monotonic() + max_seconds if max_seconds else None
    sent: set = set()
    sent_order: deque = deque()

    def remember(ids):
        for i in ids:
            sent_order.append(i)
        while len(sent_order) > 4 * RESUME_SLACK:
            sent.discard(sent_order.popleft())

    with hub.cond:
        hub.clients += 1
        cursor = hub.seq
        exact = last_id is not None and last_id in hub.by_id
        if exact:
            cursor = hub.by_id[last_id]
    try:
        yield "retry: 2000\n: connected\n\n"
        if last_id is not None and not exact:
            frames = _from_table(engine, last_id, audience, sent)
            remember(list(sent))
            if frames:
                yield "".join(frames)
        while deadline is None or time.monotonic() < deadline:
            with hub.cond:
                if hub.seq <= cursor:
                    hub.cond.wait(KEEPALIVE_S if deadline is None
                                  else max(0.05, min(KEEPALIVE_S, deadline - time.monotonic())))
                events, cursor, overflow = hub.after(cursor)
            if overflow and sent_order:
                frames = _from_table(engine, sent_order[-1], audience, sent)
                if frames:
                    yield "".join(frames)
            if not events:
                yield ": keepalive\n\n"
                continue
            frames, ids = [], []
            for _seq, event_id, kind, path, data, exact in events:
                if event_id in sent or not _visible(path, audience, kind):
                    continue
                ids.append(event_id)
                frames.append(_frame(event_id, kind, _shown(audience, data, exact)))
            if frames:
                sent.update(ids)
                remember(ids)
                yield "".join(frames)
    finally:
        with hub.cond:
            hub.clients -= 1


@bp.get("/live")
@roles("dispatcher", "analyst")
def live():
    """Server-Sent Events: position, unit_status, incident(s), risk, assignment."""
    viewer = Audience.of(current_user())
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    try:
        last_id = int(raw) if raw not in (None, "") else None
    except ValueError:
        last_id = None
    try:
        max_seconds = float(request.args["max_seconds"]) if "max_seconds" in request.args else None
    except ValueError:
        max_seconds = None
    app = current_app._get_current_object()
    hub = hub_for(app)
    hub.ready.wait(5.0)
    engine = database.engine()
    resp = Response(stream(hub, engine, last_id, viewer, max_seconds), mimetype="text/event-stream")
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["X-Accel-Buffering"] = "no"
    return resp
