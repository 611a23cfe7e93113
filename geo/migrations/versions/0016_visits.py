"""Households, 走访 visits and their monthly plans, village round-table meetings and logbooks, and
the idempotency keys of writes made from a phone.

- `households`: the registry per grid. Name, phone and ID number identify a person; readers that do
  not act in the grid see them generalised (geo/visits/households.py).
- `visits`: one grid worker's visit — to a household or a place — of one kind (入户走访, 回访 of a
  matter, 安全检查, 政策宣传), with the issues found. A 回访 names its matter (`incident_id`); it is
  what the four-colour hysteresis, the lifecycle and the 三零 scorecards count as a follow-up.
- `visit_plans`: how many households a grid plans to visit in a month.
- `village_meetings`: "510" 圆桌议事会 round-table meetings — participants by kind, problems raised,
  linked matters, outcomes.
- `village_logbook`: 三色治理 entries in the red (honours), black (misconduct) and blue (village
  memory) books.
- `incidents.idempotency_key`, `visits.idempotency_key`: a client-generated key stored with the
  record, unique per user, with a hash of the request that wrote it, so a repeat is answered with
  the stored record and a different body under the same key is refused.

Revision ID: 0016
Revises: 0013
"""
from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0014"
branch_labels = None
depends_on = None

SCHEMA = """
ALTER TABLE incidents ADD COLUMN idempotency_key uuid, ADD COLUMN request_hash text;
CREATE UNIQUE INDEX incidents_idempotency_idx ON incidents (created_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE households (
    id bigserial PRIMARY KEY,
    grid_id integer NOT NULL REFERENCES areas(id) ON DELETE CASCADE,
    number text NOT NULL,
    head_name text,
    phone text,
    id_number text,
    members smallint NOT NULL DEFAULT 1 CHECK (members BETWEEN 1 AND 99),
    address text,
    geom geometry(Point, 4326),
    notes text,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (grid_id, number)
);
CREATE INDEX households_geom_idx ON households USING gist (geom);

CREATE TABLE visits (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('home', 'follow_up', 'safety', 'outreach')),
    household_id bigint REFERENCES households(id) ON DELETE SET NULL,
    incident_id bigint REFERENCES incidents(id) ON DELETE CASCADE,
    grid_id integer REFERENCES areas(id) ON DELETE CASCADE,
    geom geometry(Point, 4326),
    occurred_at timestamptz NOT NULL,
    people smallint NOT NULL DEFAULT 1 CHECK (people BETWEEN 1 AND 99),
    notes text,
    issues jsonb,
    visitor_id integer REFERENCES users(id),
    person_id integer REFERENCES people(id) ON DELETE SET NULL,
    idempotency_key uuid,
    request_hash text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (kind <> 'follow_up' OR incident_id IS NOT NULL)
);
CREATE INDEX visits_grid_idx ON visits (grid_id, occurred_at);
CREATE INDEX visits_household_idx ON visits (household_id, occurred_at);
CREATE INDEX visits_incident_idx ON visits (incident_id) WHERE incident_id IS NOT NULL;
-- Coverage per worker, and removing a person without scanning every visit.
CREATE INDEX visits_person_idx ON visits (person_id) WHERE person_id IS NOT NULL;
CREATE INDEX visits_geom_idx ON visits USING gist (geom);
CREATE UNIQUE INDEX visits_idempotency_idx ON visits (visitor_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE visit_plans (
    grid_id integer NOT NULL REFERENCES areas(id) ON DELETE CASCADE,
    month date NOT NULL CHECK (extract(day FROM month) = 1),
    households integer NOT NULL CHECK (households >= 0),
    created_by integer REFERENCES users(id),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (grid_id, month)
);

CREATE TABLE village_meetings (
    id bigserial PRIMARY KEY,
    area_id integer NOT NULL REFERENCES areas(id) ON DELETE CASCADE,
    held_on date NOT NULL,
    topic text NOT NULL,
    participants jsonb NOT NULL,
    problems_raised integer NOT NULL DEFAULT 0 CHECK (problems_raised >= 0),
    problems_solved integer NOT NULL DEFAULT 0 CHECK (problems_solved >= 0),
    disputes_settled integer NOT NULL DEFAULT 0 CHECK (disputes_settled >= 0),
    site_inspection boolean NOT NULL DEFAULT false,
    incident_ids bigint[] NOT NULL DEFAULT '{}',
    outcomes text,
    created_by integer REFERENCES users(id),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX village_meetings_area_idx ON village_meetings (area_id, held_on);

CREATE TABLE village_logbook (
    id bigserial PRIMARY KEY,
    area_id integer NOT NULL REFERENCES areas(id) ON DELETE CASCADE,
    colour text NOT NULL CHECK (colour IN ('red', 'black', 'blue')),
    recorded_on date NOT NULL,
    title text NOT NULL,
    body text,
    resolved_dispute boolean NOT NULL DEFAULT false,
    incident_id bigint REFERENCES incidents(id) ON DELETE SET NULL,
    created_by integer REFERENCES users(id),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX village_logbook_area_idx ON village_logbook (area_id, recorded_on);
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS village_logbook, village_meetings, visit_plans, visits, households")
    op.execute("DROP INDEX IF EXISTS incidents_idempotency_idx")
    op.execute("ALTER TABLE incidents DROP COLUMN IF EXISTS request_hash, "
               "DROP COLUMN IF EXISTS idempotency_key")
