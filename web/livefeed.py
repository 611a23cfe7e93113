"""GET /api/live: Server-Sent Events, every viewer a socket owned by one event loop per process.

The request is an ordinary Flask request in a server thread — session cookie or bearer token,
role, scope — and then the per-user cap on concurrent streams. Under `anwang serve` the answer is a
`Handover`: the server gives the socket to this process's feed (web/worker.py) and its thread goes
back to the pool at once, so a viewer costs a socket and a small object, not a thread, and
thousands of them leave the API, /api/health and the OsmAnd port as quick as none.

The feed's loop sends the hub's new events (web/live.py) in batches, each rendered once per
audience by the same rules as before (scope and generalisation per event) and written without
blocking. Batches are spaced by the number of viewers (MIN_BATCH_S to MAX_BATCH_S), so the sends a
second stay bounded however many watch. A viewer that cannot keep up is cut off past MAX_PENDING
bytes and resumes with Last-Event-ID when it reconnects; one resuming from an id the ring no longer
holds is caught up from `live_events` a page at a time by a small pool of reader threads, so the
loop never waits on the database. A viewer that leaves is noticed at once (its socket reads
end-of-file), and its socket and its slot are freed.

Servers that cannot hand a socket over (the development server, the test client) get the
thread-held `web.live.stream`, under the same cap.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

from flask import Blueprint, Response, current_app, make_response, request

from geo.inputs import number_value, whole_number
from geo.policy import Audience

from . import database
from .auth import current_user, roles
from .errors import error_response
from .live import KEEPALIVE_S, PAGE, RESUME_SLACK, Follower, Hub, frames, hub_for, read_log, stream

log = logging.getLogger(__name__)
bp = Blueprint("live", __name__, url_prefix="/api")

HANDOVER = "anwang.live.handover"   # in the WSGI environ when the server can give the socket away
MIN_BATCH_S, MAX_BATCH_S = 0.02, 0.25
SENDS_PER_S = 10000        # batches are spaced so that all viewers together cost about this many
MAX_PENDING = 4 << 20      # bytes a viewer may fall behind before it is cut off
LOW_WATER = 64 << 10       # a resume reads its next page once less than this waits to be sent
READERS = 2                # threads reading the table for resuming viewers
FD_RESERVE = 256           # file descriptors kept for the database, the API and the OsmAnd port
HELLO = b"retry: 2000\n: connected\n\n"
KEEPALIVE = b": keepalive\n\n"


@bp.get("/live")
@roles("dispatcher", "analyst")
def live():
    """Server-Sent Events: position, unit_status, incident(s), risk, assignment."""
    user = current_user()
    viewer = Audience.of(user)
    # A resuming viewer's id is one this stream gave: anything else is a client's mistake, told.
    header = request.headers.get("Last-Event-ID")
    last_id = whole_number(header if header is not None else request.args.get("last_event_id"),
                           "Last-Event-ID" if header is not None else "last_event_id", lo=0)
    max_seconds = number_value(request.args.get("max_seconds"), "max_seconds", lo=0.001,
                               what="a number of seconds")
    if request.method == "HEAD":
        return Response(mimetype="text/event-stream")
    app = current_app._get_current_object()
    cap = int(app.config["LIVE_STREAMS_PER_USER"])
    slot = slots_for(app).take(user.id, cap)
    if slot is None:
        resp = make_response(error_response(
            429, "too_many_streams", f"at most {cap} live streams at once per user: close another "
                                     f"tab or screen showing the live map first"))
        resp.headers["Retry-After"] = "10"
        return resp
    try:
        hub = hub_for(app, _conninfo)
        engine = database.engine()
        if request.environ.get(HANDOVER):
            if hub.last_id is None:
                hub.ready.wait(5.0)       # a new process: its first LISTEN is on its way
            feed = feed_for(app, hub, engine)
            if feed.full():
                slot.release()
                return error_response(503, "live_full", "this server has no room for another live "
                                                         "viewer; try again in a minute")
            resp = Handover(feed, viewer, last_id, max_seconds, slot)
        else:
            hub.ready.wait(5.0)
            resp = Response(stream(hub, engine, last_id, viewer, max_seconds), mimetype="text/event-stream")
            resp.call_on_close(slot.release)
    except BaseException:
        slot.release()
        raise
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["X-Accel-Buffering"] = "no"
    return resp


def _conninfo() -> str:
    url = database.engine().url.render_as_string(hide_password=False)
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


# -- the per-user cap --------------------------------------------------------------------------
class Slot:
    """One open stream of one user; `release` frees it, once."""

    __slots__ = ("slots", "user", "held")

    def __init__(self, slots: Slots, user):
        self.slots, self.user, self.held = slots, user, True

    def release(self) -> None:
        with self.slots.lock:
            if self.held:
                self.held = False
                left = self.slots.held[self.user] - 1
                if left:
                    self.slots.held[self.user] = left
                else:
                    del self.slots.held[self.user]


class Slots:
    """The live streams each user has open in this process."""

    def __init__(self):
        self.held: dict = {}
        self.lock = threading.Lock()

    def take(self, user, cap: int) -> Slot | None:
        """A slot for one more stream of `user`, or None at the cap."""
        with self.lock:
            n = self.held.get(user, 0)
            if n >= cap:
                return None
            self.held[user] = n + 1
        return Slot(self, user)

    def count(self, user) -> int:
        with self.lock:
            return self.held.get(user, 0)


def slots_for(app) -> Slots:
    ext = app.extensions.setdefault("anwang_live", {})
    with _lock:
        return ext.setdefault("slots", Slots())


def feed_for(app, hub: Hub, engine) -> Feed:
    """The app's feed in this process, running."""
    ext = app.extensions.setdefault("anwang_live", {})
    with _lock:
        feed = ext.get("feed")
        if feed is None or feed.pid != os.getpid() or feed.hub is not hub or not feed.thread.is_alive():
            feed = ext["feed"] = Feed(hub, engine)
    return feed


_lock = threading.Lock()


# -- handing the socket over -------------------------------------------------------------------
class HandedOver(Exception):
    """Raised through the server once a request's socket belongs to the feed (web/worker.py)."""


class Handover(Response):
    """An SSE answer whose head and body the feed writes: calling it gives the socket away."""

    def __init__(self, feed: Feed, audience: Audience, last_id, max_seconds, slot: Slot):
        super().__init__(iter(()), mimetype="text/event-stream")
        self.feed, self.audience, self.last_id, self.max_seconds, self.slot = (
            feed, audience, last_id, max_seconds, slot)

    def __call__(self, environ, start_response):
        try:
            _body, status, headers = self.get_wsgi_response(environ)
            lines = [f"{environ.get('SERVER_PROTOCOL') or 'HTTP/1.1'} {status}"]
            lines += [f"{k}: {v}" for k, v in headers
                      if k.lower() not in ("content-length", "connection", "transfer-encoding")]
            # No length and no chunks: the body ends when the connection does.
            lines.append("Connection: close")
            head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
            self.feed.adopt(environ["gunicorn.socket"], head, self.audience, self.last_id,
                            self.max_seconds, self.slot)
        except BaseException:
            self.slot.release()
            raise
        raise HandedOver()


def _capacity() -> int:
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else max(16, soft - FD_RESERVE)


# -- the feed ----------------------------------------------------------------------------------
class Viewer:
    """One live socket and where its viewer stands."""

    __slots__ = ("sock", "fd", "audience", "slot", "max_seconds", "out", "last_write", "cursor",
                 "follower", "dedup_below", "resuming", "closing", "closed", "drained")

    def __init__(self, sock, audience: Audience, slot: Slot, max_seconds):
        self.sock, self.fd, self.audience, self.slot = sock, sock.fileno(), audience, slot
        self.max_seconds = max_seconds
        self.out: bytearray | None = None    # what the socket has not taken yet
        self.last_write = 0.0
        self.cursor: int | None = None       # a ring position ahead of the feed's, to start after
        self.follower: Follower | None = None   # after a resume: ids the table already sent
        self.dedup_below = 0
        self.resuming = self.closing = self.closed = False
        self.drained: asyncio.Future | None = None


class Feed:
    """The process's event loop thread and the viewers whose sockets it owns."""

    def __init__(self, hub: Hub, engine, capacity: int | None = None):
        self.hub, self.engine = hub, engine
        self.pid = os.getpid()
        self.capacity = capacity if capacity is not None else _capacity()
        self.viewers: set[Viewer] = set()
        with hub.cond:
            self.seq = hub.seq                  # the ring position every viewer in step has had
        self.position = hub.last_id or 0        # the newest id sent out
        self.loop = asyncio.new_event_loop()
        self.reader = ThreadPoolExecutor(READERS, thread_name_prefix="anwang-live-reader")
        self.wake_pending = False
        self.flush_handle: asyncio.TimerHandle | None = None
        self.last_flush = 0.0
        self.thread = threading.Thread(target=self._run, name="anwang-live-feed", daemon=True)
        self.thread.start()
        hub.watch(self.wake)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._tick)
        self.loop.run_forever()

    def full(self) -> bool:
        return len(self.viewers) >= self.capacity

    def stop(self) -> None:
        """Close every viewer and end the loop (tests; a worker's feed ends with the process)."""
        def shut():
            for v in list(self.viewers):
                self._close(v)
            self.loop.stop()

        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(shut)
            self.thread.join(5)
        self.reader.shutdown(wait=False)

    # -- from other threads --------------------------------------------------------------------
    def adopt(self, sock, head: bytes, audience: Audience, last_id, max_seconds, slot: Slot) -> None:
        """Take a socket whose answer begins with `head`: from now on it is the loop's."""
        self.loop.call_soon_threadsafe(self._join, Viewer(sock, audience, slot, max_seconds), head, last_id)

    def wake(self) -> None:
        """New events in the ring (called by the hub's listener)."""
        if not self.wake_pending:
            self.wake_pending = True
            self.loop.call_soon_threadsafe(self._on_wake)

    # -- in the loop ---------------------------------------------------------------------------
    def _join(self, v: Viewer, head: bytes, last_id) -> None:
        try:
            v.sock.setblocking(False)
            if v.sock.family in (socket.AF_INET, socket.AF_INET6):
                v.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # batches, not bytes
        except OSError:
            v.slot.release()
            v.sock.close()
            return
        now = self.loop.time()
        v.last_write = now
        self.viewers.add(v)
        self.loop.add_reader(v.fd, self._readable, v)
        if v.max_seconds:
            self.loop.call_at(now + v.max_seconds, self._expire, v)
        self._send(v, head + HELLO)
        if last_id is None:
            return                      # in step with the feed from the next batch
        with self.hub.cond:
            cursor = self.hub.by_id.get(last_id)
            events = self.hub.after(cursor)[0] if cursor is not None else []
        if cursor is None:
            self._resume(v, last_id)
        elif cursor > self.seq:
            v.cursor = cursor           # ahead of the feed (another process was quicker)
        else:
            text = frames([e for e in events if e[0] <= self.seq], v.audience)
            if text:
                self._send(v, text.encode())

    def _resume(self, v: Viewer, after_id: int) -> None:
        v.resuming, v.cursor = True, None
        v.follower = Follower()
        self.loop.create_task(self._catch_up(v, after_id))

    async def _catch_up(self, v: Viewer, after_id: int) -> None:
        """Send what the table holds after `after_id`, page by page, then join the feed."""
        after = after_id - RESUME_SLACK
        try:
            while not v.closed:
                with self.hub.cond:
                    cursor = self.hub.seq
                rows = await self.loop.run_in_executor(self.reader, read_log, self.engine, after)
                if v.closed:
                    return
                text = frames(rows, v.audience, v.follower)
                if text:
                    self._send(v, text.encode())
                if rows:
                    after = rows[-1][1]
                    v.dedup_below = max(v.dedup_below, after)
                if len(rows) == PAGE:
                    await self._drain(v)       # the next page once this one is on its way
                    continue
                with self.hub.cond:
                    events, _, overflow = self.hub.after(cursor)
                if overflow:
                    after -= RESUME_SLACK      # the ring moved on meanwhile: read on from the table
                    continue
                # Caught up: the ring since `cursor`, up to where the feed stands, then in step.
                text = frames([e for e in events if e[0] <= self.seq], v.audience, v.follower)
                if text:
                    self._send(v, text.encode())
                v.resuming = False
                return
        except Exception:  # noqa: BLE001 — the viewer reconnects and resumes; the loop goes on
            log.warning("a live viewer could not be caught up from the table", exc_info=True)
            self._close(v)

    async def _drain(self, v: Viewer) -> None:
        if v.out is not None and len(v.out) > LOW_WATER and not v.closed:
            v.drained = self.loop.create_future()
            await v.drained
            v.drained = None

    def _on_wake(self) -> None:
        self.wake_pending = False
        if self.flush_handle is not None:
            return
        gap = min(MAX_BATCH_S, max(MIN_BATCH_S, len(self.viewers) / SENDS_PER_S))
        delay = self.last_flush + gap - self.loop.time()
        if delay <= 0:
            self._flush()
        else:
            self.flush_handle = self.loop.call_later(delay, self._flush)

    def _flush(self) -> None:
        """Send every viewer the events that came since the last batch."""
        self.flush_handle = None
        self.last_flush = self.loop.time()
        with self.hub.cond:
            events, head, overflow = self.hub.after(self.seq)
        if not events:
            return
        self.seq, before = head, self.position
        newest = max(e[1] for e in events)
        self.position = max(before, newest)
        shared: dict = {}
        for v in list(self.viewers):
            if v.resuming or v.closed:
                continue
            if overflow:
                # More came since the last batch than the ring holds: the table has the rest.
                self._resume(v, before)
                continue
            if v.cursor is None and v.follower is None:
                data = shared.get(v.audience)
                if data is None:
                    data = shared[v.audience] = frames(events, v.audience).encode()
            else:
                mine = events if v.cursor is None else [e for e in events if e[0] > v.cursor]
                v.cursor = None
                data = frames(mine, v.audience, v.follower).encode()
                if v.follower is not None and newest > v.dedup_below + RESUME_SLACK:
                    v.follower = None          # past anything the table could also have sent
            if data:
                self._send(v, data)

    def _send(self, v: Viewer, data: bytes) -> None:
        if v.closed:
            return
        if v.out is not None:
            v.out += data
            if len(v.out) > MAX_PENDING:
                log.info("a live viewer fell %d bytes behind and was cut off", len(v.out))
                self._close(v)
            return
        try:
            n = v.sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            self._close(v)
            return
        v.last_write = self.loop.time()
        if n < len(data):
            v.out = bytearray(memoryview(data)[n:])
            self.loop.add_writer(v.fd, self._writable, v)

    def _writable(self, v: Viewer) -> None:
        try:
            n = v.sock.send(v.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(v)
            return
        del v.out[:n]
        v.last_write = self.loop.time()
        if not v.out:
            v.out = None
            self.loop.remove_writer(v.fd)
            if v.closing:
                self._close(v)
                return
        if v.drained is not None and not v.drained.done() and (v.out is None or len(v.out) <= LOW_WATER):
            v.drained.set_result(None)

    def _readable(self, v: Viewer) -> None:
        try:
            data = v.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(v)          # the viewer left: free its socket and slot now

    def _expire(self, v: Viewer) -> None:
        if v.out is None:
            self._close(v)
        elif not v.closing:
            v.closing = True        # once what is pending is sent (or at the next expiry)
            self.loop.call_later(5.0, self._close, v)

    def _close(self, v: Viewer) -> None:
        if v.closed:
            return
        v.closed = True
        self.viewers.discard(v)
        self.loop.remove_reader(v.fd)
        if v.out is not None:
            self.loop.remove_writer(v.fd)
        try:
            v.sock.close()
        except OSError:
            pass
        v.slot.release()
        if v.drained is not None and not v.drained.done():
            v.drained.set_result(None)

    def _tick(self) -> None:
        """Keep idle connections alive through proxies."""
        now = self.loop.time()
        for v in list(self.viewers):
            if v.out is None and now - v.last_write >= KEEPALIVE_S:
                self._send(v, KEEPALIVE)
        self.loop.call_later(1.0, self._tick)
