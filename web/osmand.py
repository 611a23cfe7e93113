"""The OsmAnd protocol of the Traccar Client app: parsing its requests, and its own port, served by a
lean WSGI handler with a group commit behind it.

Requests on the OsmAnd port (any path: the phone app is configured with a bare server URL such as
http://host:5055) skip Flask's session, cookie and CSRF machinery. Each handler thread hands its
parsed ping to the process's writer thread and waits. The writer stores every ping waiting in one
statement with one durable commit, judged as if they had come one by one, wakes the handlers — which
answer 200 only then, so a 200 still means stored — and publishes their live events in one
asynchronous commit. Pings that arrive while a commit is under way make the next group, so a busy
port needs far fewer commits and round trips than pings, and an idle one adds no delay.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import threading
from urllib.parse import parse_qsl

from geo import settings
from geo.errors import InvalidInput
from geo.patrol import groupcommit, osmand, units
from geo.patrol.filters import DEFAULT_LIMITS, Limits

log = logging.getLogger(__name__)
MAX_GROUP = 500        # pings per commit: bounds the statement and the wait behind a long queue
WAIT_S = 60.0          # longer than this and the handler answers 500 (the app keeps the fix and retries)


def parse_osmand(args, body: bytes, form=None) -> tuple[str, list]:
    """Return the device id and fixes of an OsmAnd request in any of Traccar Client's forms."""
    # The query string (GET or POST, as Traccar Client for Android sends it), a form body, or the
    # JSON body of Traccar Client 9.
    if args:
        return osmand.parse_osmand_query(args)
    if body[:1] in (b"{", b"["):
        try:
            data = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput("body", "the body is not valid JSON") from None
        return osmand.parse_osmand_json(data)
    if form:
        return osmand.parse_osmand_query(form)
    raise InvalidInput("id", "no position: expected ?id=&lat=&lon=&timestamp=… or a JSON body")


def require_token() -> bool:
    """Tell whether the server demands the device token (`token=`) besides the device id."""
    return settings.flag("ANWANG_OSMAND_REQUIRE_TOKEN")


class _Waiting:
    """A ping handed to the writer, and what became of it."""

    __slots__ = ("ping", "done", "outcome", "error")

    def __init__(self, ping: groupcommit.Ping):
        self.ping, self.outcome, self.error = ping, None, None
        # Held until the writer releases it: the cheapest one-shot wake-up between two threads.
        self.done = threading.Lock()
        self.done.acquire()


class GroupCommit:
    """The process's writer thread: stores the pings handed to it, a group per commit."""

    def __init__(self, conninfo: str, max_group: int = MAX_GROUP, wait_s: float = WAIT_S,
                 limits: Limits = DEFAULT_LIMITS):
        self.conninfo, self.max_group, self.wait_s, self.limits = conninfo, max_group, wait_s, limits
        self.pid = os.getpid()
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.conn = None
        self.thread = threading.Thread(target=self._run, name="anwang-osmand-writer", daemon=True)
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
                    log.exception("OsmAnd writer failed on a group of %d pings", len(group))
                    for w in group:
                        if w.outcome is None and w.error is None:
                            w.error = exc
                            w.done.release()

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
                # pings that fail alone (all of them when the database is away) answer 500.
                log.warning("group commit of %d OsmAnd pings failed (%s); storing them one by one",
                            len(group), exc)
                for w in group:
                    self._write([w])
                return
            log.exception("OsmAnd ping failed")
            group[0].error = exc
            group[0].done.release()
            return
        for w, outcome in zip(group, outcomes):
            w.outcome = outcome
            w.done.release()
        try:
            groupcommit.publish_pings(conn, outcomes)
        except Exception:  # noqa: BLE001 — the fixes are stored; only their live events are lost
            log.exception("live events of %d stored OsmAnd pings were not published", len(group))
            self._drop_connection()


class OsmandPort:
    """WSGI middleware answering every request on the OsmAnd port with the lean handler."""

    def __init__(self, app, port: int, conninfo=None, limits: Limits = DEFAULT_LIMITS):
        self.app, self.port, self.conninfo, self.limits = app, str(port), conninfo, limits
        self.writer: GroupCommit | None = None
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ.get("SERVER_PORT") == self.port:
            return self.handle(environ, start_response)
        return self.app(environ, start_response)

    def _writer(self) -> GroupCommit:
        writer = self.writer
        if writer is not None and writer.pid == os.getpid() and writer.thread.is_alive():
            return writer
        with self.lock:
            # Made on first use in each worker process: threads do not survive gunicorn's fork.
            if self.writer is None or self.writer.pid != os.getpid() or not self.writer.thread.is_alive():
                info = self.conninfo() if callable(self.conninfo) else self.conninfo
                self.writer = GroupCommit(info, limits=self.limits)
            return self.writer

    def close(self) -> None:
        """Stop this process's writer (tests; a worker's writer ends with the process)."""
        if self.writer is not None and self.writer.pid == os.getpid():
            self.writer.close()
            self.writer = None

    @staticmethod
    def _reply(start_response, status: str, body: bytes = b"", json_body: bool = False):
        headers = [("Content-Length", str(len(body)))]
        if json_body:
            headers.append(("Content-Type", "application/json"))
        start_response(status, headers)
        return [body]

    def _error(self, start_response, status: str, code: str, message: str, field=None):
        body = json.dumps({"error": {"code": code, "message": message, "field": field}},
                          ensure_ascii=False).encode()
        return self._reply(start_response, status, body, json_body=True)

    def handle(self, environ, start_response):
        """Answer one OsmAnd request: 200 once stored, 400 unknown device or bad fix, 500 on failure."""
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "POST"):
            return self._error(start_response, "405 METHOD NOT ALLOWED", "method_not_allowed", "GET or POST")
        args = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=False))
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(min(length, 1 << 20)) if length > 0 else b""
        form = None
        if not args and body and body[:1] not in (b"{", b"["):
            form = dict(parse_qsl(body.decode("latin-1")))
        try:
            device, fixes = parse_osmand(args, body, form)
        except InvalidInput as exc:
            return self._error(start_response, "400 BAD REQUEST", exc.code, exc.message, exc.field)
        token_hash = units.hash_token(args.get("token") or "") if require_token() else None
        try:
            outcome = self._writer().store(groupcommit.Ping(device, fixes, token_hash))
        except Exception:  # noqa: BLE001 — answer 500 (the app retries) and keep serving
            return self._error(start_response, "500 INTERNAL SERVER ERROR", "internal_error",
                               "internal server error")
        if outcome == groupcommit.UNAUTHORIZED:
            return self._error(start_response, "401 UNAUTHORIZED", "unauthorized",
                               "this server needs the device token (token=…)", "token")
        if outcome == groupcommit.UNKNOWN_DEVICE:
            return self._error(start_response, "400 BAD REQUEST", "unknown_device",
                               f"no unit has device id {device!r}", "id")
        return self._reply(start_response, "200 OK")
