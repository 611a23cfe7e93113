"""Photos taken with a report: checked before anything is written, stored with the incident in the
same transaction, and shown only to readers who see the incident exactly (a sensitive matter's
photo may show the place, so a generalised reader gets none).

A photo arrives as a `data:` URL (what a phone's canvas produces), base64 inside.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import audit
from geo.errors import InvalidInput, NotFound
from geo.incidents.queries import visible
from geo.policy import Audience

MAX_PHOTOS = 4
MAX_BYTES = 5 * 1024 * 1024
# What each accepted image begins with.
SIGNATURES = {"image/jpeg": (b"\xff\xd8\xff",), "image/png": (b"\x89PNG\r\n\x1a\n",),
              "image/webp": (b"RIFF",)}
DATA_URL = re.compile(r"data:(image/[a-z]+);base64,(.*)\Z", re.S)


def _one(value, index: int) -> tuple[str, bytes]:
    field = f"photos[{index}]"
    match = DATA_URL.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidInput(field, "expected a data URL: data:image/jpeg;base64,…")
    content_type = match.group(1)
    if content_type not in SIGNATURES:
        raise InvalidInput(field, f"expected a JPEG, PNG or WebP image; got {content_type}")
    if len(match.group(2)) > MAX_BYTES * 4 // 3 + 4:
        raise InvalidInput(field, f"a photo may have at most {MAX_BYTES // (1024 * 1024)} MB")
    try:
        data = base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(field, "the photo is not valid base64") from None
    if not data.startswith(SIGNATURES[content_type]) or (
            content_type == "image/webp" and data[8:12] != b"WEBP"):
        raise InvalidInput(field, f"the bytes are not a {content_type} image")
    return content_type, data


def parse(value) -> list[tuple[str, bytes]]:
    """The photos of a report body (absent or null: none), or InvalidInput naming the bad one."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput("photos", "expected a list of data URLs")
    if len(value) > MAX_PHOTOS:
        raise InvalidInput("photos", f"at most {MAX_PHOTOS} photos per report")
    return [_one(v, i) for i, v in enumerate(value)]


def attach(session: Session, actor: audit.Actor, incident_id: int,
           photos: list[tuple[str, bytes]]) -> list[int]:
    """Store the photos of an incident the caller has just written (no commit); their ids."""
    ids = []
    for content_type, data in photos:
        digest = hashlib.sha256(data).hexdigest()
        photo_id = session.execute(text(
            "INSERT INTO incident_photos (incident_id, content_type, data, sha256, created_by) "
            "VALUES (:i, :t, :d, :h, :u) RETURNING id"),
            {"i": incident_id, "t": content_type, "d": data, "h": digest, "u": actor.user_id}).scalar_one()
        audit.record(session, actor, "incident.photo", target_type="incident", target_id=incident_id,
                     details={"photo": photo_id, "bytes": len(data), "sha256": digest})
        ids.append(int(photo_id))
    return ids


def listing(session: Session, incident, audience: Audience) -> list[dict]:
    """The photos of an incident this audience may see: id, type, size, digest, when."""
    row = visible(session, incident, audience)
    if row["generalised"]:
        return []
    return [{**r, "created_at": r["created_at"].isoformat()} for r in session.execute(text(
        "SELECT id, content_type, octet_length(data) AS bytes, sha256, created_at "
        "FROM incident_photos WHERE incident_id = :i ORDER BY id"), {"i": row["id"]}).mappings()]


def read(session: Session, incident, photo_id: int, audience: Audience) -> tuple[str, bytes]:
    """One photo's (content type, bytes), or NotFound (also for a generalised reader)."""
    row = visible(session, incident, audience)
    found = None if row["generalised"] else session.execute(text(
        "SELECT content_type, data FROM incident_photos WHERE incident_id = :i AND id = :p"),
        {"i": row["id"], "p": photo_id}).first()
    if found is None:
        raise NotFound(f"no photo {photo_id} of incident {row['id']}", field="photo")
    return found.content_type, bytes(found.data)
