"""Frozen monthly releases of the public safety map (layers/public.py).

- `public_releases`: one row per jurisdiction and local calendar month, written once after the
  month is complete and never updated, with the secret seed its rounding was drawn from.
- `public_release_cells`: the published count of every grid and hexagon of a release, a multiple
  of the release's base; a grid keeps the geometry it had then, so it can still be drawn after it
  is retired. Hexagons are named by their cell id, from which their geometry follows.
- `incidents_sensitive_occurred_idx`: the few sensitive incidents by time. Every generalising
  reader (the public, analysts) goes through the generalised branch of `incidents_for`, which
  otherwise scans a month of all incidents once per area label point (1.3 s for a month of the
  demo, 0.08 s with it).

Revision ID: 0011
Revises: 0010
"""
from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE public_releases (
    id serial PRIMARY KEY,
    area_code varchar(40) NOT NULL,
    month date NOT NULL CHECK (extract(day FROM month) = 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    seed bytea NOT NULL,
    method text NOT NULL,
    base smallint NOT NULL CHECK (base > 1),
    hex_m real NOT NULL CHECK (hex_m > 0),
    UNIQUE (area_code, month)
);

CREATE TABLE public_release_cells (
    release_id integer NOT NULL REFERENCES public_releases (id) ON DELETE CASCADE,
    level text NOT NULL CHECK (level IN ('grid', 'hex')),
    cell text NOT NULL,
    area_id integer,                    -- the grid's id; no foreign key: a release outlives retired grids
    name text,
    geom geometry(MultiPolygon, 4326),  -- the grid as it was; NULL for hexagons
    published integer NOT NULL CHECK (published >= 0),
    PRIMARY KEY (release_id, level, cell),
    CHECK ((level = 'grid') = (area_id IS NOT NULL AND geom IS NOT NULL))
);
CREATE INDEX public_release_cells_geom_idx ON public_release_cells USING gist (geom);
CREATE INDEX incidents_sensitive_occurred_idx ON incidents (occurred_at) WHERE sensitive;

-- A release is frozen: whatever happens to incidents or grids later, its numbers stay as published.
CREATE FUNCTION public_release_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'public releases are frozen: % on % refused', TG_OP, TG_TABLE_NAME;
END $$;
CREATE TRIGGER public_releases_frozen BEFORE UPDATE ON public_releases
    FOR EACH ROW EXECUTE FUNCTION public_release_frozen();
CREATE TRIGGER public_release_cells_frozen BEFORE UPDATE ON public_release_cells
    FOR EACH ROW EXECUTE FUNCTION public_release_frozen();

-- Only multiples of the release's base are ever stored, whoever writes the cells.
CREATE FUNCTION public_release_cell_rounded() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.published % (SELECT base FROM public_releases WHERE id = NEW.release_id) <> 0 THEN
        RAISE EXCEPTION 'published count % of % % is not a multiple of its release''s base',
            NEW.published, NEW.level, NEW.cell USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER public_release_cells_rounded BEFORE INSERT ON public_release_cells
    FOR EACH ROW EXECUTE FUNCTION public_release_cell_rounded();
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("""
        DROP INDEX IF EXISTS incidents_sensitive_occurred_idx;
        DROP TABLE IF EXISTS public_release_cells;
        DROP TABLE IF EXISTS public_releases;
        DROP FUNCTION IF EXISTS public_release_cell_rounded();
        DROP FUNCTION IF EXISTS public_release_frozen();
    """)
