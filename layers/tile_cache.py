"""The tile cache in PostgreSQL (`tile_cache`, migration 0014): one gzip-compressed tile per layer,
z/x/y and audience class, with its ETag.

Edits expire it by triggers in their own transaction. What keeps a tile read before an edit from
being stored after the edit has expired the cache is a lock: a builder claims one of the layer's
STRIPES advisory keys exclusively, without waiting, before it reads anything, and stores its tile
only if the claim succeeded; every expiring writer holds all of them shared until it commits. So
either the writer waits for the builder's row and then deletes it, or the builder, finding a
writer in flight, serves its tile without storing it.
"""
from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.db import rowcount

from .mvt import MARGIN, TileAddress

STRIPES = 8          # as tile_expiry_lock in migration 0014
GZIP_LEVEL = 6       # a tile is compressed once when built: within 1 % of level 9's bytes


@dataclass(frozen=True)
class Cached:
    """A tile as stored: gzip bytes (empty for an empty tile) and its ETag."""

    body: bytes
    etag: str


def encode(mvt: bytes) -> Cached:
    """Compress a tile for storing and serving, and name its content (the ETag is of the MVT)."""
    etag = hashlib.md5(mvt, usedforsecurity=False).hexdigest()
    return Cached(gzip.compress(mvt, GZIP_LEVEL, mtime=0) if mvt else b"", etag)


def lookup(session: Session, layer: str, t: TileAddress, audience: str, now: datetime) -> Cached | None:
    """The stored tile, unless it is missing or the clock has made it stale."""
    row = session.execute(text("""
        SELECT tile, etag FROM tile_cache
         WHERE layer = :layer AND z = :z AND x = :x AND y = :y AND audience = :audience
           AND (expires_at IS NULL OR expires_at > :now)"""),
        {"layer": layer, "z": t.z, "x": t.x, "y": t.y, "audience": audience, "now": now}).first()
    return None if row is None else Cached(bytes(row.tile), row.etag)


def claim(session: Session, layer: str, t: TileAddress) -> bool:
    """Claim the right to store this tile; call before reading what it is built from. In the same
    round trip, the transaction stops planning parallel workers: one tile is a small indexed read,
    and worker processes cost more to start than they save."""
    stripe = (t.x * 31 + t.y * 17 + t.z) % STRIPES
    return bool(session.execute(text(
        "SELECT pg_try_advisory_xact_lock(hashtext('anwang.tiles'), hashtext(:key)), "
        "set_config('max_parallel_workers_per_gather', '0', true)"),
        {"key": f"{layer}:{stripe}"}).one()[0])


def store(session: Session, layer: str, t: TileAddress, audience: str, tile: Cached,
          expires_at: datetime | None, durable: bool = False) -> None:
    """Keep a built tile (the caller claimed it and commits)."""
    # A lost cache row is rebuilt on the next request: unless the layer is durable, the commit need
    # not wait for the disk (set in the INSERT's own round trip).
    relaxed = "" if durable else "FROM (SELECT set_config('synchronous_commit', 'off', true)) cfg"
    session.execute(text(f"""
        INSERT INTO tile_cache (layer, z, x, y, audience, tile, etag, expires_at, envelope)
        SELECT :layer, :z, :x, :y, :audience, :tile, :etag, :expires_at,
               ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => {MARGIN}), 4326)
        {relaxed}
        ON CONFLICT (layer, z, x, y, audience) DO UPDATE
           SET tile = EXCLUDED.tile, etag = EXCLUDED.etag, created_at = now(),
               expires_at = EXCLUDED.expires_at"""),
        {"layer": layer, "z": t.z, "x": t.x, "y": t.y, "audience": audience, "tile": tile.body,
         "etag": tile.etag, "expires_at": expires_at})


def clear(session: Session, layer: str | None = None) -> int:
    """Drop every cached tile (of one layer); return how many."""
    result = session.execute(text("DELETE FROM tile_cache WHERE CAST(:layer AS text) IS NULL OR layer = :layer"),
                             {"layer": layer})
    return rowcount(result)


def counts(session: Session) -> dict[str, int]:
    """Cached tiles per layer."""
    rows = session.execute(text("SELECT layer, count(*) FROM tile_cache GROUP BY layer ORDER BY layer")).all()
    return {layer: int(n) for layer, n in rows}
