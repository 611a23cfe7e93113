"""Patrol dispatch: each unit's last known position (for the live map and KNN dispatch), the live
event log behind /api/live (ids for Last-Event-ID resume, NOTIFY on commit), incident
assignments with their lifecycle timestamps, and a trigger that publishes new incidents without
their writers knowing about the live map. Risk alerts are published by layers/risk.py, which
knows when a grid really turns orange or red.

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-29
"""
from alembic import op

revision = "0005"
down_revision = "0001"
branch_labels = ("patrol",)
depends_on = None

SCHEMA = r"""
-- The newest clean fix of every unit (flags = 0) and when the device was last heard from at all.
-- Kept by the ingest in the same transaction as the positions; the GiST index serves KNN `<->`.
CREATE TABLE unit_last_positions (
    unit_id integer PRIMARY KEY REFERENCES units(id) ON DELETE CASCADE,
    ts timestamptz NOT NULL,
    geom geometry(Point, 4326) NOT NULL,
    speed real,
    heading real,
    accuracy real,
    battery real,
    seen_at timestamptz NOT NULL,
    -- The newest fix of any quality and how many jump-flagged fixes in a row agree with each other
    -- up to it: three in a row mean the anchor (the last clean fix) was wrong, and they become clean.
    seen_lon double precision,
    seen_lat double precision,
    jump_chain smallint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX unit_last_positions_geom_idx ON unit_last_positions USING gist (geom);

CREATE INDEX units_status_idx ON units (status);
CREATE UNIQUE INDEX units_token_hash_idx ON units (token_hash);
CREATE INDEX shifts_unit_range_idx ON shifts (unit_id, ends_at);

-- The live event log: every event sent to /api/live has its id here, so a client reconnecting with
-- Last-Event-ID gets what it missed even from another web process. Old rows are pruned.
CREATE TABLE live_events (
    id bigserial PRIMARY KEY,
    ts timestamptz NOT NULL DEFAULT now(),
    kind text NOT NULL,
    area_path ltree,
    payload jsonb NOT NULL
);
CREATE INDEX live_events_ts_idx ON live_events (ts);

-- Publish one event: log it and NOTIFY the listeners (delivered only when the transaction commits).
CREATE FUNCTION live_publish(p_kind text, p_path ltree, p_payload jsonb) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint;
    message text;
BEGIN
    INSERT INTO live_events (kind, area_path, payload) VALUES (p_kind, p_path, p_payload)
        RETURNING id INTO new_id;
    message := json_build_object('id', new_id, 'kind', p_kind, 'path', p_path::text,
                                 'data', p_payload)::text;
    IF octet_length(message) > 7500 THEN   -- NOTIFY payloads stop at 8000 bytes: send a reference
        message := json_build_object('id', new_id, 'kind', p_kind, 'path', p_path::text,
                                     'ref', true)::text;
    END IF;
    PERFORM pg_notify('anwang_live', message);
    RETURN new_id;
END $$;

-- Dispatch: one unit sent to one incident, from assignment to close.
CREATE TABLE assignments (
    id bigserial PRIMARY KEY,
    incident_id bigint NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    unit_id integer NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    status text NOT NULL DEFAULT 'assigned'
        CHECK (status IN ('assigned', 'acknowledged', 'arrived', 'closed', 'cancelled')),
    assigned_at timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz,
    arrived_at timestamptz,
    closed_at timestamptz,
    assigned_by integer REFERENCES users(id) ON DELETE SET NULL,
    distance_m double precision,
    note text,
    CHECK (acknowledged_at IS NULL OR acknowledged_at >= assigned_at),
    CHECK (arrived_at IS NULL OR arrived_at >= assigned_at),
    CHECK (closed_at IS NULL OR closed_at >= assigned_at)
);
CREATE INDEX assignments_incident_idx ON assignments (incident_id);
CREATE INDEX assignments_unit_idx ON assignments (unit_id, assigned_at);
CREATE INDEX assignments_assigned_idx ON assignments (assigned_at);
CREATE UNIQUE INDEX assignments_open_idx ON assignments (incident_id, unit_id)
    WHERE status IN ('assigned', 'acknowledged', 'arrived');

-- New recent incidents appear on the live map whoever inserts them. A bulk load (history, demo)
-- is one summary event, not thousands.
CREATE FUNCTION live_incidents_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n integer;
    r record;
BEGIN
    SELECT count(*) INTO n FROM new_rows WHERE occurred_at > now() - interval '1 day';
    IF n = 0 THEN
        RETURN NULL;
    ELSIF n > 50 THEN
        PERFORM live_publish('incidents', NULL, jsonb_build_object('count', n));
        RETURN NULL;
    END IF;
    FOR r IN SELECT i.*, a.path AS area_path, a.code AS grid_code
               FROM new_rows i LEFT JOIN areas a ON a.id = i.grid_id
              WHERE i.occurred_at > now() - interval '1 day' ORDER BY i.id LOOP
        PERFORM live_publish('incident', r.area_path, jsonb_build_object(
            'id', r.id, 'category', r.category, 'severity', r.severity, 'status', r.status,
            'occurred_at', r.occurred_at, 'address', r.address, 'grid', r.grid_code,
            'lon', ST_X(r.geom), 'lat', ST_Y(r.geom)));
    END LOOP;
    RETURN NULL;
END $$;
CREATE TRIGGER incidents_live AFTER INSERT ON incidents REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION live_incidents_inserted();
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS incidents_live ON incidents")
    op.execute("DROP FUNCTION IF EXISTS live_incidents_inserted()")
    op.execute("DROP TABLE IF EXISTS assignments")
    op.execute("DROP FUNCTION IF EXISTS live_publish(text, ltree, jsonb)")
    op.execute("DROP TABLE IF EXISTS live_events")
    op.execute("DROP INDEX IF EXISTS shifts_unit_range_idx")
    op.execute("DROP INDEX IF EXISTS units_token_hash_idx")
    op.execute("DROP INDEX IF EXISTS units_status_idx")
    op.execute("DROP TABLE IF EXISTS unit_last_positions")
