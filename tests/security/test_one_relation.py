"""Readers of incidents go through the one audience-aware relation (geo.policy): a test, so that a
new reader cannot forget. Only the writers and the system's own computations touch the table."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Where the incidents table itself may be read, and why.
WRITERS = {
    "geo/incidents/intake.py": "writes reports; checks an external id is not taken",
    "geo/incidents/assignment.py": "assigns incidents to areas (the system)",
    "geo/incidents/gridlookup.py": "the lookup bulk assignment reads (the system)",
    "geo/incidents/lifecycle.py": "locks the row it moves, after the audience check",
    "geo/incidents/queries.py": "incident_row: the stored row for a writer already authorised",
    "geo/incidents/tabular.py": "the import's own report of what it wrote",
    "geo/boundaries/impact.py": "counts of open incidents per area an authorised edit touches",
    "geo/patrol/dispatch.py": "the distance stored with an assignment the audience may make",
    "layers/risk_policy.py": "the four-colour assessment, computed by the system and stored",
    "layers/risk.py": "the follow-up visits the hysteresis needs, read by the system",
    "geo/visits/records.py": "locks the matter a 回访 moves, after the audience check",
}
PATTERN = re.compile(r"\b(?:FROM|JOIN)\s+incidents\b(?!_for|\w)", re.IGNORECASE)


def test_only_writers_read_the_incidents_table():
    offenders = []
    for package in ("geo", "layers", "web"):
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if "/migrations/" in rel or rel in WRITERS:
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if PATTERN.search(line):
                    offenders.append(f"{rel}:{n}: {line.strip()}")
    assert offenders == [], "read incidents through Audience.incidents(): " + "; ".join(offenders)


def test_the_writers_listed_still_exist():
    assert all((ROOT / rel).is_file() for rel in WRITERS)
