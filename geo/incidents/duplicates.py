"""The same matter reported twice: likely duplicates scored on distance, time, text and category,
and the links that record two reports are one matter.
"""
from __future__ import annotations

import math
import re
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import audit
from geo.db import rowcount
from geo.errors import InvalidInput, NotFound
from geo.incidents.queries import incident_id, visible
from geo.policy import Audience

# -- duplicates and links --------------------------------------------------------------------------
DUPLICATE_RADIUS_M = 300.0
DUPLICATE_WINDOW = timedelta(hours=72)
DUPLICATE_THRESHOLD = 0.55


def _bigrams(s: str | None) -> set[str]:
    s = re.sub(r"\s+", "", (s or "").lower())
    return {s[i:i + 2] for i in range(len(s) - 1)} if len(s) > 1 else ({s} if s else set())


def similarity(a: str | None, b: str | None) -> float:
    """Text similarity of two descriptions: Dice coefficient of character bigrams (works for Chinese)."""
    x, y = _bigrams(a), _bigrams(b)
    if not x or not y:
        return 0.0
    return 2 * len(x & y) / (len(x) + len(y))


def duplicates(session: Session, incident_id, audience: Audience, *,
               radius_m: float = DUPLICATE_RADIUS_M, window: timedelta = DUPLICATE_WINDOW,
               limit: int = 5, threshold: float = DUPLICATE_THRESHOLD) -> list[dict]:
    """Likely reports of the same matter through another channel: near in space and time, similar
    in text; scored 0–1 (distance 40 %, time 25 %, text 25 %, same category 10 %).

    Both the report and its candidates are read as the audience sees them: only incidents in its
    scope, a sensitive one at its generalised point, so no distance measures a hidden point.
    """
    row = visible(session, incident_id, audience)
    if row["geom"] is None:
        return []
    # Candidates by an index-friendly box first (1° of latitude ≈ 111 km; longitude scaled), then
    # the true distance on the geography type.
    dlat = radius_m / 111_000.0
    dlon = dlat / max(0.1, math.cos(math.radians(row["lat"])))
    params = {"id": row["id"], "dlon": dlon, "dlat": dlat, "radius": radius_m, "window": window,
              "lon": row["lon"], "lat": row["lat"], "at": row["occurred_at"]}
    rows = session.execute(text(f"""
        WITH i AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS geom)
        SELECT o.id, o.category, o.subtype, o.status, o.occurred_at, o.description, o.address,
               o.source, ST_Distance(o.geom::geography, i.geom::geography) AS metres,
               EXISTS (SELECT 1 FROM incident_links l WHERE l.incident_a = LEAST(o.id, :id)
                         AND l.incident_b = GREATEST(o.id, :id)) AS linked
          FROM i JOIN {audience.incidents(params, "o")}
            ON o.id <> :id
           AND o.geom && ST_Expand(i.geom, :dlon, :dlat)
           AND ST_DWithin(o.geom::geography, i.geom::geography, :radius)
           AND o.occurred_at BETWEEN CAST(:at AS timestamptz) - :window
                                 AND CAST(:at AS timestamptz) + :window"""),
        params).mappings().all()
    out = []
    for r in rows:
        d = 1 - float(r["metres"]) / radius_m
        t = 1 - abs((r["occurred_at"] - row["occurred_at"]).total_seconds()) / window.total_seconds()
        words = max(similarity(row["description"], r["description"]),
                    similarity((row["address"] or "") + (row["description"] or ""),
                               (r["address"] or "") + (r["description"] or "")))
        same = 1.0 if r["category"] == row["category"] else 0.0
        score = 0.4 * d + 0.25 * t + 0.25 * words + 0.1 * same
        if score >= threshold or r["linked"]:
            out.append({"id": r["id"], "score": round(score, 3), "distance_m": round(float(r["metres"]), 1),
                        "hours_apart": round(abs((r["occurred_at"] - row["occurred_at"]).total_seconds()) / 3600, 2),
                        "text_similarity": round(words, 3), "category": r["category"],
                        "subtype": r["subtype"], "status": r["status"], "source": r["source"],
                        "linked": r["linked"]})
    out.sort(key=lambda x: (-x["score"], x["id"]))
    return out[:limit]


def _pair(a, b) -> tuple[int, int]:
    x, y = incident_id(a, "id"), incident_id(b, "other")
    if x == y:
        raise InvalidInput("other", "an incident cannot be linked to itself")
    return min(x, y), max(x, y)


def link(session: Session, actor: audit.Actor, a, b, audience: Audience) -> dict:
    """Record that two incidents report the same matter (both visible to the audience); idempotent."""
    x, y = _pair(a, b)
    for i in (x, y):
        visible(session, i, audience, field="other" if i != int(a) else "id")
    inserted = rowcount(session.execute(text(
        "INSERT INTO incident_links (incident_a, incident_b, created_by) VALUES (:a, :b, :u) "
        "ON CONFLICT DO NOTHING"), {"a": x, "b": y, "u": actor.user_id}))
    if inserted:
        audit.record(session, actor, "incident.link", target_type="incident", target_id=x,
                     details={"other": y})
    return {"incident_a": x, "incident_b": y, "created": bool(inserted)}


def unlink(session: Session, actor: audit.Actor, a, b, audience: Audience) -> None:
    """Remove a link between two incidents the audience may see; NotFound if they were not linked."""
    x, y = _pair(a, b)
    for i in (x, y):
        visible(session, i, audience, field="other" if i != int(a) else "id")
    deleted = rowcount(session.execute(
        text("DELETE FROM incident_links WHERE incident_a = :a AND incident_b = :b"), {"a": x, "b": y}))
    if not deleted:
        raise NotFound(f"incidents {x} and {y} are not linked", field="other")
    audit.record(session, actor, "incident.unlink", target_type="incident", target_id=x,
                 details={"other": y})
