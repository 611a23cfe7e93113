"""Vector tiles: the tile cache and the triggers that expire it, and the self-served basemap.

- `tile_cache`: one Mapbox Vector Tile per layer, zoom, column, row and audience class (the public,
  or a scope with or without the exact points of sensitive incidents), gzip-compressed, with its
  ETag, when it was built, when the clock alone makes it stale (`expires_at`: the coverage window
  moving, an override lapsing, a new month's release), and its envelope in WGS84 including the
  64-pixel buffer the tile is cut with, GiST-indexed so that an edit finds the tiles it meets.
- Statement-level triggers on areas, incidents, risk_levels, public_releases, basemap_features,
  roads and places delete, in the transaction of the change, exactly the cached tiles whose
  envelope meets what changed (old and new geometry; for a sensitive incident also the label point
  it is shown at). UPDATE triggers keep only the old rows (the new ones are read back from the
  table by id): capturing both would double what a bulk re-assignment of a million incidents
  spends on its transition table.
- Builders and expiring writers meet on advisory locks, so that a tile read before a change
  commits is never stored after the change has expired the cache: a builder stores its tile only
  if it holds one of its layer's 8 keys exclusively (taken without waiting, before it reads), and
  every writer that expires a layer takes all 8 keys shared (writers never wait for each other).
- `basemap_features`: roads, railways, water, land use, buildings and named places imported from
  OpenStreetMap extracts (geo/osm.py), with the zoom each appears from; the demo's `roads` and
  `places` are read beside them.

Revision ID: 0014
Revises: 0011
"""
from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE tile_cache (
    layer text NOT NULL,
    z smallint NOT NULL CHECK (z BETWEEN 0 AND 24),
    x integer NOT NULL,
    y integer NOT NULL,
    audience text NOT NULL,
    tile bytea NOT NULL,                -- gzip-compressed MVT; empty for an empty tile
    etag text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,             -- NULL: only an edit expires it
    envelope geometry(Polygon, 4326) NOT NULL,
    PRIMARY KEY (layer, z, x, y, audience),
    CHECK (x >= 0 AND y >= 0 AND x < (1 << z) AND y < (1 << z))
);
CREATE INDEX tile_cache_envelope_idx ON tile_cache USING gist (envelope);

CREATE TABLE basemap_features (
    id bigserial PRIMARY KEY,
    source text NOT NULL,               -- the extract it came from (re-importing it replaces these)
    layer text NOT NULL CHECK (layer IN ('roads', 'railways', 'water', 'landuse', 'buildings', 'places')),
    class text NOT NULL,
    name text,                          -- name:zh where the data has it, else name
    minzoom smallint NOT NULL CHECK (minzoom BETWEEN 0 AND 24),
    osm_id bigint,
    geom geometry(Geometry, 4326) NOT NULL
);
CREATE INDEX basemap_features_geom_idx ON basemap_features USING gist (geom);
CREATE INDEX basemap_features_source_idx ON basemap_features (source);

-- Every writer that expires a layer's tiles takes the layer's keys shared, in one order.
CREATE FUNCTION tile_expiry_lock(p_layers text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtext('anwang.tiles'), hashtext(l || ':' || s))
       FROM unnest(p_layers) l, generate_series(0, 7) s ORDER BY l, s;
END $$;

-- Areas: their own layer, the risk and coverage grids, the incidents they scope and generalise,
-- and the public map's grids. An update counts when what a tile shows or whom it is shown to
-- changed (the geometry, code, name, level, parent or path), not households or versions.
CREATE FUNCTION tiles_expire_areas() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    layers text[] := ARRAY['areas', 'coverage', 'incidents', 'public', 'risk'];
BEGIN
    PERFORM tile_expiry_lock(layers);
    IF NOT EXISTS (SELECT 1 FROM tile_cache WHERE layer = ANY(layers)) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        DELETE FROM tile_cache t USING new_rows c
         WHERE t.layer = ANY(layers) AND t.envelope && c.geom AND ST_Intersects(t.envelope, c.geom);
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM tile_cache t USING old_rows c
         WHERE t.layer = ANY(layers) AND t.envelope && c.geom AND ST_Intersects(t.envelope, c.geom);
    ELSE
        DELETE FROM tile_cache t USING (
            SELECT g.geom FROM old_rows o JOIN areas n ON n.id = o.id,
                   LATERAL (VALUES (o.geom), (n.geom)) g(geom)
             WHERE (o.geom, o.code, o.name, o.level, o.parent_id, o.path)
                   IS DISTINCT FROM (n.geom, n.code, n.name, n.level, n.parent_id, n.path)) c
         WHERE t.layer = ANY(layers) AND t.envelope && c.geom AND ST_Intersects(t.envelope, c.geom);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER areas_tiles_ins AFTER INSERT ON areas REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tiles_expire_areas();
CREATE TRIGGER areas_tiles_upd AFTER UPDATE ON areas REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tiles_expire_areas();
CREATE TRIGGER areas_tiles_del AFTER DELETE ON areas REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tiles_expire_areas();

-- Incidents: where each is shown — its point, and for a sensitive one its area's label point, where
-- the audiences that generalise see it. Points are gathered per 0.02° cell into one multipoint, so
-- a statement touching a million incidents probes the cache's index a few hundred times, not a
-- million, and ST_Intersects against the multipoint is still exact.
CREATE FUNCTION tiles_expire_incidents() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    shown text;
BEGIN
    PERFORM tile_expiry_lock(ARRAY['incidents']);
    IF NOT EXISTS (SELECT 1 FROM tile_cache WHERE layer = 'incidents') THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        shown := 'SELECT p.geom FROM (
                     SELECT o.geom AS og, o.sensitive AS os, COALESCE(o.area_id, o.grid_id) AS oa,
                            n.geom AS ng, n.sensitive AS ns, COALESCE(n.area_id, n.grid_id) AS na
                       FROM old_rows o JOIN incidents n ON n.id = o.id
                      WHERE (o.geom, o.grid_id, o.area_id, o.sensitive, o.category, o.severity, o.status,
                             o.occurred_at, o.outside_jurisdiction)
                            IS DISTINCT FROM (n.geom, n.grid_id, n.area_id, n.sensitive, n.category,
                                              n.severity, n.status, n.occurred_at, n.outside_jurisdiction)) c,
                   LATERAL (VALUES (c.og), (c.ng),
                                   (CASE WHEN c.os THEN (SELECT label_point FROM areas WHERE id = c.oa) END),
                                   (CASE WHEN c.ns THEN (SELECT label_point FROM areas WHERE id = c.na) END)) p(geom)';
    ELSE
        shown := format('SELECT r.geom FROM %1$I r
                         UNION ALL
                         SELECT a.label_point FROM %1$I r JOIN areas a ON a.id = COALESCE(r.area_id, r.grid_id)
                          WHERE r.sensitive',
                        CASE WHEN TG_OP = 'INSERT' THEN 'new_rows' ELSE 'old_rows' END);
    END IF;
    EXECUTE format('DELETE FROM tile_cache t USING (
                        SELECT ST_Collect(geom) AS geom FROM (%s) s(geom) WHERE geom IS NOT NULL
                         GROUP BY floor(ST_X(geom) / 0.02), floor(ST_Y(geom) / 0.02)) c
                     WHERE t.layer = ''incidents'' AND t.envelope && c.geom
                       AND ST_Intersects(t.envelope, c.geom)', shown);
    RETURN NULL;
END $$;
CREATE TRIGGER incidents_tiles_ins AFTER INSERT ON incidents REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tiles_expire_incidents();
CREATE TRIGGER incidents_tiles_upd AFTER UPDATE ON incidents REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tiles_expire_incidents();
CREATE TRIGGER incidents_tiles_del AFTER DELETE ON incidents REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tiles_expire_incidents();

-- Risk levels: the colour of a grid in the areas, risk and coverage layers. Scores are not in any
-- tile, so the upsert every assessment makes expires nothing unless a level, an override or the
-- period in force changed.
CREATE FUNCTION tiles_expire_risk() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    layers text[] := ARRAY['areas', 'coverage', 'risk'];
BEGIN
    PERFORM tile_expiry_lock(layers);
    IF NOT EXISTS (SELECT 1 FROM tile_cache WHERE layer = ANY(layers)) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        DELETE FROM tile_cache t USING areas a
         WHERE a.id IN (SELECT area_id FROM new_rows)
           AND t.layer = ANY(layers) AND t.envelope && a.geom AND ST_Intersects(t.envelope, a.geom);
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM tile_cache t USING areas a
         WHERE a.id IN (SELECT area_id FROM old_rows)
           AND t.layer = ANY(layers) AND t.envelope && a.geom AND ST_Intersects(t.envelope, a.geom);
    ELSE
        DELETE FROM tile_cache t USING areas a
         WHERE a.id IN (SELECT g.area_id FROM old_rows o JOIN risk_levels n ON n.id = o.id,
                               LATERAL (VALUES (o.area_id), (n.area_id)) g(area_id)
                         WHERE (o.area_id, o.period_start, o.level, o.override_level, o.override_until)
                               IS DISTINCT FROM
                               (n.area_id, n.period_start, n.level, n.override_level, n.override_until))
           AND t.layer = ANY(layers) AND t.envelope && a.geom AND ST_Intersects(t.envelope, a.geom);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER risk_levels_tiles_ins AFTER INSERT ON risk_levels REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tiles_expire_risk();
CREATE TRIGGER risk_levels_tiles_upd AFTER UPDATE ON risk_levels REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tiles_expire_risk();
CREATE TRIGGER risk_levels_tiles_del AFTER DELETE ON risk_levels REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tiles_expire_risk();

-- A new public release changes every number of the public map's window.
CREATE FUNCTION tiles_expire_public() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tile_expiry_lock(ARRAY['public']);
    DELETE FROM tile_cache WHERE layer = 'public';
    RETURN NULL;
END $$;
CREATE TRIGGER public_releases_tiles AFTER INSERT OR DELETE ON public_releases
    FOR EACH STATEMENT EXECUTE FUNCTION tiles_expire_public();

-- The basemap: imported features, and the demo's roads and places it also draws.
CREATE FUNCTION tiles_expire_basemap() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tile_expiry_lock(ARRAY['basemap']);
    IF NOT EXISTS (SELECT 1 FROM tile_cache WHERE layer = 'basemap') THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        DELETE FROM tile_cache t USING new_rows c
         WHERE t.layer = 'basemap' AND t.envelope && c.geom AND ST_Intersects(t.envelope, c.geom);
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM tile_cache t USING old_rows c
         WHERE t.layer = 'basemap' AND t.envelope && c.geom AND ST_Intersects(t.envelope, c.geom);
    ELSE
        EXECUTE format('DELETE FROM tile_cache t USING (
            SELECT g.geom FROM old_rows o JOIN %1$I n ON n.id = o.id,
                   LATERAL (VALUES (o.geom), (n.geom)) g(geom)
             WHERE (o.geom, %2$s) IS DISTINCT FROM (n.geom, %3$s)) c
         WHERE t.layer = ''basemap'' AND t.envelope && c.geom AND ST_Intersects(t.envelope, c.geom)',
            TG_TABLE_NAME,
            CASE TG_TABLE_NAME WHEN 'roads' THEN 'o.name, o.road_class'
                               WHEN 'places' THEN 'o.name, o.kind'
                               ELSE 'o.layer, o.class, o.name, o.minzoom' END,
            CASE TG_TABLE_NAME WHEN 'roads' THEN 'n.name, n.road_class'
                               WHEN 'places' THEN 'n.name, n.kind'
                               ELSE 'n.layer, n.class, n.name, n.minzoom' END);
    END IF;
    RETURN NULL;
END $$;
"""

BASEMAP_TABLES = ("basemap_features", "roads", "places")


def _basemap_triggers() -> str:
    out = []
    for table in BASEMAP_TABLES:
        out.append(f"""
CREATE TRIGGER {table}_tiles_ins AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tiles_expire_basemap();
CREATE TRIGGER {table}_tiles_upd AFTER UPDATE ON {table} REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tiles_expire_basemap();
CREATE TRIGGER {table}_tiles_del AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tiles_expire_basemap();""")
    return "\n".join(out)


def upgrade() -> None:
    op.execute(SCHEMA)
    op.execute(_basemap_triggers())


def downgrade() -> None:
    for table in BASEMAP_TABLES:
        for suffix in ("ins", "upd", "del"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_tiles_{suffix} ON {table}")
    for table in ("areas", "incidents", "risk_levels"):
        for suffix in ("ins", "upd", "del"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_tiles_{suffix} ON {table}")
    op.execute("""
        DROP TRIGGER IF EXISTS public_releases_tiles ON public_releases;
        DROP FUNCTION IF EXISTS tiles_expire_basemap();
        DROP FUNCTION IF EXISTS tiles_expire_public();
        DROP FUNCTION IF EXISTS tiles_expire_risk();
        DROP FUNCTION IF EXISTS tiles_expire_incidents();
        DROP FUNCTION IF EXISTS tiles_expire_areas();
        DROP FUNCTION IF EXISTS tile_expiry_lock(text[]);
        DROP TABLE IF EXISTS basemap_features;
        DROP TABLE IF EXISTS tile_cache;
    """)
