"""Read stamps: how a process keeping the bodies of the map's reads knows they are still true.

- sequences `read_stamp_areas` and `read_stamp_incidents`: a statement trigger advances them on
  every write that can change what an area list or an incident list shows — areas, their groups
  and their staff for the areas; incidents, and areas again for the incidents (their lists carry
  area codes and names, scopes are area paths, and generalised points are area label points).
- Before advancing, the trigger takes the family's advisory key shared, held to its commit. A
  reader that claims the key exclusively without waiting knows that no change of the family is in
  flight and that none can commit before its own transaction ends: the stamp it then reads names
  exactly the rows it reads, and it may keep the body. A reader that fails to claim serves what it
  built without keeping it, as does a transaction that has itself written the family (the trigger
  marks it in a transaction-local setting): it may yet roll back. (`max(id)` of an insert-only
  table, as `area_changes` was, cannot say this: a transaction holding a smaller id may commit
  after a larger one has been read.)
- `area_changes` (0015), one row per statement and never trimmed, is replaced by the areas' sequence.

Revision ID: 0018
Revises: 0017
"""
from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

FAMILIES = {   # table -> the families of reads its writes change
    "areas": ("areas", "incidents"),
    "area_groups": ("areas",),
    "area_staff": ("areas",),
    "incidents": ("incidents",),
}

SCHEMA = """
CREATE SEQUENCE read_stamp_areas;
CREATE SEQUENCE read_stamp_incidents;

CREATE FUNCTION read_stamp_advance() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    family text;
BEGIN
    FOREACH family IN ARRAY TG_ARGV LOOP
        PERFORM pg_advisory_xact_lock_shared(hashtext('anwang.reads'), hashtext(family));
        PERFORM nextval(('read_stamp_' || family)::regclass);
        -- What this transaction reads of the family now includes its own uncommitted writes.
        PERFORM set_config('anwang.wrote_' || family, 'yes', true);
    END LOOP;
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    for table in ("areas", "area_groups", "area_staff"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_changes ON {table}")
    op.execute("DROP FUNCTION IF EXISTS area_changes_touch()")
    op.execute("DROP TABLE IF EXISTS area_changes")
    op.execute(SCHEMA)
    for table, families in FAMILIES.items():
        args = ", ".join(f"'{f}'" for f in families)
        op.execute(f"CREATE TRIGGER {table}_read_stamp AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION read_stamp_advance({args})")


def downgrade() -> None:
    for table in FAMILIES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_read_stamp ON {table}")
    op.execute("DROP FUNCTION IF EXISTS read_stamp_advance()")
    op.execute("DROP SEQUENCE IF EXISTS read_stamp_incidents")
    op.execute("DROP SEQUENCE IF EXISTS read_stamp_areas")
    op.execute("""
        CREATE TABLE area_changes (id bigserial PRIMARY KEY, ts timestamptz NOT NULL DEFAULT now(),
                                   source text NOT NULL);
        INSERT INTO area_changes (source) VALUES ('initial');
        CREATE FUNCTION area_changes_touch() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO area_changes (source) VALUES (TG_TABLE_NAME);
            RETURN NULL;
        END $$;""")
    for table in ("areas", "area_groups", "area_staff"):
        op.execute(f"CREATE TRIGGER {table}_changes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION area_changes_touch()")
