"""The map's reads kept per process: the bodies of the area and incident lists, valid while their
family's read stamp (geo.stamps) has not moved — for everyone of the same scope and the same
question, one sequence read instead of building and compressing the GeoJSON again.

A body is kept with its gzip encoding (made once, when first asked for) and its ETag, so a reader
that has it already gets a 304. Keys carry everything the body depends on besides the stamp (the
audience's scope and exactness, the arguments); the cache holds at most MAX_BYTES of bodies and
drops the least recently used first.
"""
from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from flask import Response, current_app, request
from sqlalchemy.orm import Session

from geo import stamps

from .compression import DYNAMIC_LEVEL, MIN_BYTES
from .responses import GEOJSON

MAX_BYTES = 48 * 1024 * 1024


@dataclass
class Body:
    """A body as built, for one stamp."""

    stamp: int
    text: str
    etag: str
    _gzip: bytes | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def of(cls, stamp: int, text: str) -> Body:
        return cls(stamp, text, hashlib.md5(text.encode(), usedforsecurity=False).hexdigest())

    def gzip(self) -> bytes:
        with self._lock:
            if self._gzip is None:
                self._gzip = gzip.compress(self.text.encode(), DYNAMIC_LEVEL, mtime=0)
            return self._gzip

    @property
    def size(self) -> int:
        return len(self.text) + (len(self._gzip) if self._gzip else 0)


class ReadCache:
    """The newest body of each key, valid for one stamp."""

    def __init__(self, max_bytes: int = MAX_BYTES):
        self.max_bytes, self.items, self.lock = max_bytes, OrderedDict[Hashable, Body](), threading.Lock()

    def get(self, key: Hashable, stamp: int) -> Body | None:
        with self.lock:
            body = self.items.get(key)
            if body is None or body.stamp != stamp:
                return None
            self.items.move_to_end(key)
            return body

    def put(self, key: Hashable, body: Body) -> None:
        with self.lock:
            old = self.items.get(key)
            if old is None or old.stamp <= body.stamp:
                self.items[key] = body
                self.items.move_to_end(key)
            total = sum(b.size for b in self.items.values())
            while total > self.max_bytes and len(self.items) > 1:
                _, dropped = self.items.popitem(last=False)
                total -= dropped.size


def _cache(name: str) -> ReadCache:
    caches = current_app.extensions["anwang"].setdefault("read_caches", {})
    return caches.setdefault(name, ReadCache())


def body(session: Session, family: str, key: Hashable, build: Callable[[], str]) -> Body:
    """The body of `key` from the cache while the family's stamp holds, else built by `build` (with
    `session`) and kept if no write of the family was in flight."""
    cache = _cache(family)
    found = cache.get(key, stamps.current(session, family))
    if found is not None:
        return found
    keep = stamps.claim(session, family)
    stamp = stamps.current(session, family)
    built = Body.of(stamp, build())
    if keep:
        cache.put(key, built)
    return built


def geojson(session: Session, family: str, key: Hashable, build: Callable[[], str]) -> Response:
    """`body` as a GeoJSON response: gzip-encoded for a client that accepts it, with its ETag (a
    reader holding it gets 304), to be revalidated on every use (it is of the caller's scope)."""
    kept = body(session, family, key, build)
    gzipped = len(kept.text) >= MIN_BYTES and bool(request.accept_encodings["gzip"])
    response = Response(kept.gzip() if gzipped else kept.text, mimetype=GEOJSON)
    if gzipped:
        response.headers["Content-Encoding"] = "gzip"
    response.vary.add("Accept-Encoding")
    response.set_etag(kept.etag, weak=gzipped)
    response.headers["Cache-Control"] = "private, no-cache"
    return response.make_conditional(request)
