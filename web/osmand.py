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
import os
import threading
from datetime import timezone, tzinfo
from urllib.parse import parse_qsl

from geo import settings
from geo.errors import InvalidInput
from geo.inputs import check_json_tree, check_text
from geo.patrol import groupcommit, osmand, units
from geo.patrol.filters import DEFAULT_LIMITS, Limits
from geo.patrol.writer import GroupCommit, _Waiting  # noqa: F401 — the port's writer, and its tests'

BOM = b"\xef\xbb\xbf"


def _pairs(args) -> list[tuple[str, str]]:
    """The query's parameters as (name, value) pairs, repeated names kept (cell=, wifi=)."""
    if hasattr(args, "getlist"):
        return list(args.items(multi=True))
    return list(args.items()) if hasattr(args, "items") else list(args or ())


def parse_osmand(args, body: bytes, tz: tzinfo = timezone.utc) -> osmand.Report:
    """Return what an OsmAnd request reports, in any of the forms Traccar accepts."""
    # The query string (GET or POST, as Traccar Client for Android sends it); else the JSON body of
    # Traccar Client 9 (after any whitespace or byte-order mark); else a form body, whatever its
    # Content-Type says, with the query's parameters (token=) beside it.
    pairs = _checked(_pairs(args))
    if any(k in ("id", "deviceid") and v for k, v in pairs):
        return osmand.parse_osmand_query(pairs, tz)
    text = body[len(BOM):] if body.startswith(BOM) else body
    text = text.lstrip()
    if text[:1] in (b"{", b"["):
        try:
            data = json.loads(text.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise InvalidInput("body", "the body is not valid JSON") from None
        check_json_tree(data)
        return osmand.parse_osmand_json(data, tz)
    if not text:
        raise InvalidInput("id", "no position: expected ?id=&lat=&lon=&timestamp=… or a JSON body")
    form = parse_qsl(text.decode("utf-8", "replace"), keep_blank_values=True)
    return osmand.parse_osmand_query(_checked(form) + pairs, tz)


def _checked(pairs: list) -> list:
    """The pairs, once none holds a NUL or a lone surrogate (a device id with one would fail the
    write of every ping committed with it)."""
    for name, value in pairs:
        check_text(name, "query")
        check_text(value, name)
    return pairs


def require_token() -> bool:
    """Tell whether the server demands the device token (`token=`) besides the device id."""
    return settings.flag("ANWANG_OSMAND_REQUIRE_TOKEN")


class OsmandPort:
    """WSGI middleware answering every request on the OsmAnd port with the lean handler."""

    def __init__(self, app, port: int, conninfo=None, limits: Limits = DEFAULT_LIMITS,
                 tz: tzinfo = timezone.utc):
        self.app, self.port, self.conninfo, self.limits, self.tz = app, str(port), conninfo, limits, tz
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
        args = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=False)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(min(length, 1 << 20)) if length > 0 else b""
        try:
            report = parse_osmand(args, body, self.tz)
        except InvalidInput as exc:
            return self._error(start_response, "400 BAD REQUEST", exc.code, exc.message, exc.field)
        token = next((v for k, v in args if k == "token"), "")
        token_hash = units.hash_token(token) if require_token() else None
        try:
            outcome = self._writer().store(groupcommit.Ping(report.device, report.fixes, token_hash,
                                                            report.heard))
        except Exception:  # noqa: BLE001 — answer 500 (the app retries) and keep serving
            return self._error(start_response, "500 INTERNAL SERVER ERROR", "internal_error",
                               "internal server error")
        if outcome == groupcommit.UNAUTHORIZED:
            return self._error(start_response, "401 UNAUTHORIZED", "unauthorized",
                               "this server needs the device token (token=…)", "token")
        if outcome == groupcommit.UNKNOWN_DEVICE:
            return self._error(start_response, "400 BAD REQUEST", "unknown_device",
                               f"no unit has device id {report.device!r}", "id")
        return self._reply(start_response, "200 OK")
