"""The one relation every reader of incidents goes through (geo/policy.py), and live events that
carry a generalised and an exact form.

- `areas.label_point`: a point inside each area (ST_PointOnSurface), kept by PostgreSQL itself; a
  sensitive incident is shown there to the audiences that do not act on it.
- `incidents_for(exact, everywhere, scope)`: the incidents of a scope as an audience may see them.
  A plain SQL function, so the planner inlines it and filters on `geom` still reach the GiST
  indexes: the exact branch the one on incidents.geom, the generalised one the one on
  areas.label_point.
- `live_events.payload_exact`: what only the exact roles may receive; `payload` is safe for every
  viewer of the event's area. New incidents are published that way.

Revision ID: 0009
Revises: 0008
"""
from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMNS = """
    id bigint, external_id text, district_code varchar, category text, subtype text,
    severity smallint, status text, occurred_at timestamptz, reported_at timestamptz,
    accepted_at timestamptz, resolved_at timestamptz, closed_at timestamptz,
    resolution_level text, address text, geom geometry, generalised boolean,
    geocode_level text, geocode_confidence real, grid_id integer, area_id integer,
    area_path ltree, outside_jurisdiction boolean, source text, sensitive boolean,
    reporter_name text, reporter_phone text, description text, created_by integer, attrs jsonb
"""

SCHEMA = f"""
ALTER TABLE areas ADD COLUMN label_point geometry(Point, 4326)
    GENERATED ALWAYS AS (ST_PointOnSurface(geom)) STORED;
CREATE INDEX areas_label_point_idx ON areas USING gist (label_point);

-- The incidents an audience may read, as it may see them. Scope: the area subtrees (`scope`) unless
-- `everywhere`; an incident outside every jurisdiction only for `everywhere`. Generalised (not
-- `exact`): a sensitive incident at its area's label point, without address, description,
-- reporter or attributes (geocoding candidates carry points); reporters only for `exact`.
CREATE FUNCTION incidents_for(exact boolean, everywhere boolean, scope ltree[])
RETURNS TABLE ({COLUMNS})
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT i.id, i.external_id, i.district_code, i.category, i.subtype, i.severity, i.status,
           i.occurred_at, i.reported_at, i.accepted_at, i.resolved_at, i.closed_at,
           i.resolution_level, i.address, i.geom, false, i.geocode_level, i.geocode_confidence,
           i.grid_id, i.area_id, a.path, i.outside_jurisdiction, i.source, i.sensitive,
           CASE WHEN exact THEN i.reporter_name END, CASE WHEN exact THEN i.reporter_phone END,
           i.description, i.created_by, i.attrs
      FROM incidents i LEFT JOIN areas a ON a.id = COALESCE(i.area_id, i.grid_id)
     WHERE (exact OR NOT i.sensitive)
       AND (everywhere OR a.path <@ scope)
    UNION ALL
    SELECT i.id, i.external_id, i.district_code, i.category, i.subtype, i.severity, i.status,
           i.occurred_at, i.reported_at, i.accepted_at, i.resolved_at, i.closed_at,
           i.resolution_level, NULL, a.label_point, true, NULL, NULL,
           i.grid_id, i.area_id, a.path, i.outside_jurisdiction, i.source, i.sensitive,
           NULL, NULL, NULL, i.created_by, NULL
      FROM incidents i LEFT JOIN areas a ON a.id = COALESCE(i.area_id, i.grid_id)
     WHERE NOT exact AND i.sensitive
       AND (everywhere OR a.path <@ scope)
$$;

ALTER TABLE live_events ADD COLUMN payload_exact jsonb;

-- Publish an event with a generalised payload for every viewer of its area and, when it differs,
-- an exact one for the roles that act on it.
CREATE FUNCTION live_publish(p_kind text, p_path ltree, p_payload jsonb, p_exact jsonb)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint;
    message text;
BEGIN
    INSERT INTO live_events (kind, area_path, payload, payload_exact)
        VALUES (p_kind, p_path, p_payload, p_exact) RETURNING id INTO new_id;
    message := json_build_object('id', new_id, 'kind', p_kind, 'path', p_path::text,
                                 'data', p_payload, 'exact', p_exact)::text;
    IF octet_length(message) > 7500 THEN   -- NOTIFY payloads stop at 8000 bytes: send a reference
        message := json_build_object('id', new_id, 'kind', p_kind, 'path', p_path::text,
                                     'ref', true)::text;
    END IF;
    PERFORM pg_notify('anwang_live', message);
    RETURN new_id;
END $$;

-- New recent incidents appear on the live map whoever inserts them; a sensitive one is published
-- at its area's label point without its address, its exact form kept for the exact roles.
CREATE OR REPLACE FUNCTION live_incidents_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n integer;
    r record;
    shown jsonb;
BEGIN
    SELECT count(*) INTO n FROM new_rows WHERE occurred_at > now() - interval '1 day';
    IF n = 0 THEN
        RETURN NULL;
    ELSIF n > 50 THEN
        PERFORM live_publish('incidents', NULL, jsonb_build_object('count', n));
        RETURN NULL;
    END IF;
    FOR r IN SELECT i.*, a.path AS area_path, g.code AS grid_code, a.label_point
               FROM new_rows i
               LEFT JOIN areas a ON a.id = COALESCE(i.area_id, i.grid_id)
               LEFT JOIN areas g ON g.id = i.grid_id
              WHERE i.occurred_at > now() - interval '1 day' ORDER BY i.id LOOP
        shown := jsonb_build_object(
            'id', r.id, 'category', r.category, 'severity', r.severity, 'status', r.status,
            'occurred_at', r.occurred_at, 'grid', r.grid_code, 'sensitive', r.sensitive);
        IF r.sensitive THEN
            PERFORM live_publish('incident', r.area_path,
                shown || jsonb_build_object('generalised', true, 'address', NULL,
                                            'lon', ST_X(r.label_point), 'lat', ST_Y(r.label_point)),
                shown || jsonb_build_object('generalised', false, 'address', r.address,
                                            'lon', ST_X(r.geom), 'lat', ST_Y(r.geom)));
        ELSE
            PERFORM live_publish('incident', r.area_path,
                shown || jsonb_build_object('generalised', false, 'address', r.address,
                                            'lon', ST_X(r.geom), 'lat', ST_Y(r.geom)), NULL);
        END IF;
    END LOOP;
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    # The trigger as 0005 left it, then what this revision added.
    from importlib import import_module

    patrol = import_module("geo.migrations.versions.0005_patrol")
    start = patrol.SCHEMA.index("CREATE FUNCTION live_incidents_inserted()")
    end = patrol.SCHEMA.index("CREATE TRIGGER incidents_live")
    op.execute(patrol.SCHEMA[start:end].replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    op.execute("""
        DROP FUNCTION IF EXISTS live_publish(text, ltree, jsonb, jsonb);
        ALTER TABLE live_events DROP COLUMN IF EXISTS payload_exact;
        DROP FUNCTION IF EXISTS incidents_for(boolean, boolean, ltree[]);
        DROP INDEX IF EXISTS areas_label_point_idx;
        ALTER TABLE areas DROP COLUMN IF EXISTS label_point;
    """)
