"""Read stamps (migration 0018): a number per family of reads — the area lists, the incident lists —
that every write changing what they show advances, so a process may keep the bodies it built and
know, from one sequence read, whether they are still true.

A body may be kept only if it was built under a claim: `claim` succeeds when no write of the
family is in flight, and then none can commit until the claimer's transaction ends, so the stamp
read after the claim names exactly the rows read after it. Writers never wait long for a claim
(it lasts one read), and a reader never waits for a writer: it builds without keeping.
"""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

AREAS = "areas"
INCIDENTS = "incidents"
FAMILIES = (AREAS, INCIDENTS)      # as read_stamp_<family> in migration 0018


def _family(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"no read stamp {family!r}")
    return family


def current(session: Session, family: str) -> int:
    """The family's stamp now (0 before its first write)."""
    return int(session.execute(text(
        f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM read_stamp_{_family(family)}")).scalar_one())


def claim(session: Session, family: str) -> bool:
    """Claim the right to keep what this transaction reads of the family from now on; True when no
    write of it is in flight (none can then commit before this transaction ends) and this
    transaction has written none (it may yet roll back)."""
    return bool(session.execute(text(
        "SELECT pg_try_advisory_xact_lock(hashtext('anwang.reads'), hashtext(:f)) "
        "AND current_setting('anwang.wrote_' || :f, true) IS DISTINCT FROM 'yes'"),
        {"f": _family(family)}).scalar_one())
