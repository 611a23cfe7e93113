"""The whole data model: areas and their history, staff, 三零 subjects, gazetteer, incidents,
units and day-partitioned positions, tracks, risk levels, users/roles/scopes, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = r"""
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE EXTENSION IF NOT EXISTS ltree;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE roles (
    name text PRIMARY KEY,
    description text
);
INSERT INTO roles (name, description) VALUES
    ('admin', 'everything, everywhere'),
    ('dispatcher', 'patrol dispatch: units, positions, incident assignment'),
    ('planner', 'grid boundaries: import, edit, validate'),
    ('analyst', 'heat maps, hot spots, risk, reports'),
    ('grid_worker', 'reports incidents and visits in their own grids');

CREATE TABLE users (
    id serial PRIMARY KEY,
    username text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9_.@-]{2,64}$'),
    display_name text,
    password_hash text,
    role text NOT NULL REFERENCES roles(name),
    active boolean NOT NULL DEFAULT true,
    locale varchar(8),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id serial PRIMARY KEY,
    user_id integer NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name text NOT NULL,
    token_hash text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz
);

CREATE TABLE areas (
    id serial PRIMARY KEY,
    code varchar(32) NOT NULL UNIQUE,
    name text NOT NULL,
    level smallint NOT NULL CHECK (level BETWEEN 1 AND 5),
    kind text,
    parent_id integer REFERENCES areas(id),
    path ltree,
    group_id integer,
    geom geometry(MultiPolygon, 4326) NOT NULL,
    households integer CHECK (households >= 0),
    population integer CHECK (population >= 0),
    urban boolean,
    version integer NOT NULL DEFAULT 1,
    attrs jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX areas_geom_idx ON areas USING gist (geom);
-- Subtree lookups: `path <@ ancestor.path` uses this GiST index; code prefixes use the btree below.
CREATE INDEX areas_path_idx ON areas USING gist (path);
CREATE INDEX areas_code_prefix_idx ON areas (code text_pattern_ops);
CREATE INDEX areas_parent_idx ON areas (parent_id);
CREATE INDEX areas_level_idx ON areas (level);

-- Keep `path` (ltree of ancestor ids) in step with parent_id, including whole moved subtrees.
CREATE FUNCTION areas_set_path() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    parent_path ltree;
BEGIN
    IF NEW.parent_id IS NULL THEN
        NEW.path := text2ltree(NEW.id::text);
    ELSE
        SELECT path INTO parent_path FROM areas WHERE id = NEW.parent_id;
        IF parent_path IS NULL THEN
            RAISE EXCEPTION 'parent area % does not exist', NEW.parent_id;
        END IF;
        IF parent_path ~ ('*.' || NEW.id::text || '.*')::lquery THEN
            RAISE EXCEPTION 'area % cannot be moved under its own descendant', NEW.id;
        END IF;
        NEW.path := parent_path || text2ltree(NEW.id::text);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER areas_path_ins BEFORE INSERT ON areas FOR EACH ROW EXECUTE FUNCTION areas_set_path();
CREATE TRIGGER areas_path_upd BEFORE UPDATE OF parent_id ON areas FOR EACH ROW
    WHEN (OLD.parent_id IS DISTINCT FROM NEW.parent_id) EXECUTE FUNCTION areas_set_path();

CREATE FUNCTION areas_move_subtree() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE areas SET path = NEW.path || subpath(path, nlevel(OLD.path))
     WHERE path <@ OLD.path AND id <> NEW.id;
    RETURN NULL;
END $$;
CREATE TRIGGER areas_path_cascade AFTER UPDATE OF parent_id ON areas FOR EACH ROW
    WHEN (OLD.path IS DISTINCT FROM NEW.path) EXECUTE FUNCTION areas_move_subtree();

CREATE TABLE area_groups (
    id serial PRIMARY KEY,
    parent_id integer NOT NULL REFERENCES areas(id) ON DELETE CASCADE,
    code varchar(32) NOT NULL UNIQUE,
    name text NOT NULL,
    leader text
);
ALTER TABLE areas ADD CONSTRAINT areas_group_fk FOREIGN KEY (group_id) REFERENCES area_groups(id)
    ON DELETE SET NULL;

CREATE TABLE boundary_changes (
    id serial PRIMARY KEY,
    kind text NOT NULL,
    author_id integer REFERENCES users(id),
    reason text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    payload jsonb,
    reverts_id integer REFERENCES boundary_changes(id)
);

CREATE TABLE area_versions (
    id serial PRIMARY KEY,
    area_id integer NOT NULL REFERENCES areas(id) ON DELETE CASCADE,
    version integer NOT NULL,
    code varchar(32) NOT NULL,
    name text NOT NULL,
    level smallint NOT NULL,
    parent_id integer,
    geom geometry(MultiPolygon, 4326),
    households integer,
    population integer,
    valid_from timestamptz NOT NULL DEFAULT now(),
    valid_to timestamptz,
    change_id integer REFERENCES boundary_changes(id),
    UNIQUE (area_id, version)
);
CREATE INDEX area_versions_geom_idx ON area_versions USING gist (geom);
CREATE INDEX area_versions_valid_idx ON area_versions (level, valid_from, valid_to);

CREATE TABLE people (
    id serial PRIMARY KEY,
    name text NOT NULL,
    phone text,
    gender varchar(1),
    party_member boolean,
    notes text
);

CREATE TABLE area_staff (
    id serial PRIMARY KEY,
    area_id integer NOT NULL REFERENCES areas(id) ON DELETE CASCADE,
    person_id integer NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    role text NOT NULL CHECK (role IN ('leader', 'worker', 'supervisor')),
    since date,
    UNIQUE (area_id, person_id, role)
);
CREATE INDEX area_staff_area_idx ON area_staff (area_id);

CREATE TABLE departments (
    id serial PRIMARY KEY,
    code varchar(32) NOT NULL UNIQUE,
    name text NOT NULL
);

CREATE TABLE entities (
    id serial PRIMARY KEY,
    name text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('village', 'enterprise', 'institution')),
    area_id integer REFERENCES areas(id),
    department_id integer REFERENCES departments(id),
    geom geometry(Geometry, 4326),
    address text,
    compliant boolean,
    attrs jsonb
);
CREATE INDEX entities_geom_idx ON entities USING gist (geom);
CREATE INDEX entities_area_idx ON entities (area_id);

CREATE TABLE places (
    id serial PRIMARY KEY,
    name text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('road', 'door', 'compound', 'building', 'poi', 'group')),
    area_id integer REFERENCES areas(id),
    parent_id integer REFERENCES places(id) ON DELETE CASCADE,
    geom geometry(Geometry, 4326),
    address text,
    attrs jsonb
);
CREATE INDEX places_geom_idx ON places USING gist (geom);
CREATE INDEX places_name_trgm_idx ON places USING gin (name gin_trgm_ops);
CREATE INDEX places_area_idx ON places (area_id);
CREATE INDEX places_parent_idx ON places (parent_id);

CREATE TABLE roads (
    id serial PRIMARY KEY,
    name text,
    road_class text,
    district_code varchar(32),
    geom geometry(LineString, 4326) NOT NULL
);
CREATE INDEX roads_district_idx ON roads (district_code);
CREATE INDEX roads_geom_idx ON roads USING gist (geom);

CREATE TABLE incidents (
    id bigserial PRIMARY KEY,
    external_id text,
    district_code varchar(32),
    category text NOT NULL CHECK (category IN ('petition', 'accident', 'criminal', 'dispute', 'hazard')),
    subtype text,
    severity smallint NOT NULL DEFAULT 1 CHECK (severity BETWEEN 1 AND 4),
    status text NOT NULL DEFAULT 'reported' CHECK (status IN
        ('reported', 'accepted', 'handling', 'resolved', 'followed_up', 'closed', 'escalated')),
    occurred_at timestamptz NOT NULL,
    reported_at timestamptz NOT NULL DEFAULT now(),
    accepted_at timestamptz,
    resolved_at timestamptz,
    closed_at timestamptz,
    resolution_level text CHECK (resolution_level IN ('group', 'village', 'township', 'district')),
    address text,
    geom geometry(Point, 4326),
    geocode_level text,
    geocode_confidence real,
    grid_id integer REFERENCES areas(id),
    outside_jurisdiction boolean NOT NULL DEFAULT false,
    source text,
    sensitive boolean NOT NULL DEFAULT false,
    reporter_name text,
    reporter_phone text,
    description text,
    created_by integer REFERENCES users(id),
    attrs jsonb
);
CREATE INDEX incidents_geom_idx ON incidents USING gist (geom);
CREATE INDEX incidents_occurred_idx ON incidents (occurred_at);
CREATE INDEX incidents_grid_idx ON incidents (grid_id, occurred_at);
CREATE INDEX incidents_category_idx ON incidents (category, occurred_at);
CREATE UNIQUE INDEX incidents_external_idx ON incidents (source, external_id) WHERE external_id IS NOT NULL;

CREATE TABLE incident_events (
    id bigserial PRIMARY KEY,
    incident_id bigint NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    ts timestamptz NOT NULL DEFAULT now(),
    actor_id integer REFERENCES users(id),
    from_status text,
    to_status text NOT NULL,
    level text,
    note text
);
CREATE INDEX incident_events_incident_idx ON incident_events (incident_id, ts);

CREATE TABLE incident_links (
    incident_a bigint NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    incident_b bigint NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    created_by integer REFERENCES users(id),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (incident_a, incident_b),
    CHECK (incident_a < incident_b)
);

CREATE TABLE units (
    id serial PRIMARY KEY,
    callsign text NOT NULL UNIQUE,
    kind text NOT NULL CHECK (kind IN ('car', 'foot', 'volunteer')),
    device_id text UNIQUE,
    token_hash text,
    home_area_id integer REFERENCES areas(id),
    district_code varchar(32),
    status text NOT NULL DEFAULT 'off_duty',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shifts (
    id serial PRIMARY KEY,
    unit_id integer NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    task text,
    CHECK (ends_at > starts_at)
);
CREATE INDEX shifts_unit_idx ON shifts (unit_id, starts_at);

-- Positions: one partition per day (created on demand by ensure_position_partition), primary key
-- (unit_id, ts) so a replayed batch is idempotent with ON CONFLICT DO NOTHING.
CREATE TABLE positions (
    unit_id integer NOT NULL,
    ts timestamptz NOT NULL,
    geom geometry(Point, 4326) NOT NULL,
    speed real,
    heading real,
    accuracy real,
    altitude real,
    battery real,
    flags smallint NOT NULL DEFAULT 0,
    district_code varchar(32),
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (unit_id, ts)
) PARTITION BY RANGE (ts);
CREATE INDEX positions_geom_idx ON positions USING gist (geom);
CREATE INDEX positions_ts_idx ON positions (ts);

CREATE FUNCTION ensure_position_partition(day date) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    name text := 'positions_' || to_char(day, 'YYYYMMDD');
BEGIN
    IF to_regclass(name) IS NULL THEN
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF positions
                        FOR VALUES FROM (%L) TO (%L)', name,
                       (day::timestamp AT TIME ZONE 'UTC'), ((day + 1)::timestamp AT TIME ZONE 'UTC'));
    END IF;
    RETURN name;
END $$;

CREATE TABLE tracks (
    id serial PRIMARY KEY,
    unit_id integer NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    shift_id integer REFERENCES shifts(id) ON DELETE SET NULL,
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    geom geometry(LineString, 4326),
    length_m double precision,
    points integer,
    source text,
    stats jsonb
);
CREATE INDEX tracks_geom_idx ON tracks USING gist (geom);
CREATE INDEX tracks_unit_idx ON tracks (unit_id, starts_at);

CREATE TABLE risk_levels (
    id serial PRIMARY KEY,
    area_id integer NOT NULL REFERENCES areas(id) ON DELETE CASCADE,
    period_start date NOT NULL,
    period_end date NOT NULL,
    score double precision NOT NULL,
    level text NOT NULL CHECK (level IN ('blue', 'yellow', 'orange', 'red')),
    reasons jsonb,
    override_level text CHECK (override_level IN ('blue', 'yellow', 'orange', 'red')),
    override_by integer REFERENCES users(id),
    override_reason text,
    override_until timestamptz,
    computed_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (area_id, period_start)
);

CREATE TABLE user_scopes (
    user_id integer NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    area_id integer NOT NULL REFERENCES areas(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, area_id)
);

CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    ts timestamptz NOT NULL DEFAULT now(),
    actor_id integer REFERENCES users(id) ON DELETE SET NULL,
    actor text NOT NULL,
    action text NOT NULL,
    target_type text,
    target_id text,
    area_code varchar(32),
    details jsonb,
    remote_addr text
);
CREATE INDEX audit_log_ts_idx ON audit_log (ts);
CREATE INDEX audit_log_target_idx ON audit_log (target_type, target_id);
"""

TABLES = ("audit_log", "user_scopes", "risk_levels", "tracks", "positions", "shifts", "units",
          "incident_links", "incident_events", "incidents", "roads", "places", "entities",
          "departments", "area_staff", "people", "area_versions", "boundary_changes", "areas",
          "area_groups", "api_tokens", "users", "roles")


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    for table in TABLES:
        op.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')
    op.execute("DROP FUNCTION IF EXISTS ensure_position_partition(date)")
    op.execute("DROP FUNCTION IF EXISTS areas_move_subtree()")
    op.execute("DROP FUNCTION IF EXISTS areas_set_path()")
