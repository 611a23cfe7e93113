"""The schema as migrated: the model agrees with it; indexes, partitions, the area path trigger,
constraints."""
import datetime as dt
import re
import warnings

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import CheckConstraint, MetaData, text
from sqlalchemy.exc import IntegrityError, SAWarning
from sqlalchemy.schema import CreateIndex

from geo import db
from geo.models import Base


def schema_differences(connection) -> list[str]:
    """List what autogenerate would change to make the migrated database match the model."""
    context = MigrationContext.configure(connection, opts=db.autogenerate_options())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        differences = [describe(d) for d in compare_metadata(context, Base.metadata)]
    # What Alembic cannot compare or change it only warns about: a generated column whose
    # expression differs, a column type SQLAlchemy cannot reflect. Those are differences too.
    return differences + [str(w.message) for w in caught
                          if issubclass(w.category, (UserWarning, SAWarning))]


def describe(diff) -> str:
    """Name one of Alembic's differences by its operation, table and object."""
    if isinstance(diff, list):  # the changes of one column come as a list
        return "; ".join(describe(d) for d in diff)
    op, *args = diff
    if op.startswith("modify_"):
        _, table, column, _, database, model = args
        return f"{op} {table}.{column}: database {database!r}, model {model!r}"
    if op.endswith("_column"):
        return f"{op} {args[1]}.{args[2].name}"
    item = args[0]
    if op.endswith("_table"):
        return f"{op} {item.name}"
    return f"{op} {item.table.name}: {item.name or ', '.join(c.name for c in item.columns)}"


def test_the_model_declares_what_the_migrations_create(connection):
    # A day's partition of positions holds rows, not schema: it is never a difference.
    connection.execute(text("SELECT ensure_position_partition(DATE '2026-01-02')"))
    differences = schema_differences(connection)
    assert not differences, "the model and the migrations differ:\n" + "\n".join(differences)


def _indexes_and_checks(connection, table: str) -> set[tuple[str, str]]:
    """Read the definitions of a table's check constraints and indexes other than its keys'."""
    rows = connection.execute(text("""
        SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE i.indrelid = CAST(:t AS regclass)
           AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid
                              AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))
        UNION ALL
        SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
         WHERE conrelid = CAST(:t AS regclass) AND contype = 'c'"""), {"t": table})
    return {(name, re.sub(r" ON (ONLY )?\S+?\.", " ON ", definition)) for name, definition in rows}


def test_the_model_builds_indexes_and_checks_as_the_migrations_do(connection):
    # Alembic compares an index's columns and uniqueness only, not its access method (GiST, GIN),
    # operator classes or predicate, and no check constraints at all. So the model's are built on an
    # empty copy of each table, and the definitions PostgreSQL reads back must equal the migrated ones.
    copies, mismatched = MetaData(), []
    for table in Base.metadata.sorted_tables:
        connection.execute(text(f'CREATE TEMP TABLE "{table.name}" (LIKE public."{table.name}")'))
        for index in table.to_metadata(copies, schema="pg_temp").indexes:
            connection.execute(CreateIndex(index))
        declared = [*table.constraints, *(c for column in table.columns for c in column.constraints)]
        for check in (c for c in declared if isinstance(c, CheckConstraint)):
            condition = check.sqltext.compile(dialect=connection.dialect,
                                              compile_kwargs={"literal_binds": True})
            connection.exec_driver_sql(f'ALTER TABLE pg_temp."{table.name}" '
                                       f'ADD CONSTRAINT "{check.name}" CHECK ({condition})')
        model = _indexes_and_checks(connection, f"pg_temp.{table.name}")
        migrated = _indexes_and_checks(connection, f"public.{table.name}")
        mismatched += [f"{table.name} {name}, migrations: {d}" for name, d in sorted(migrated - model)]
        mismatched += [f"{table.name} {name}, model: {d}" for name, d in sorted(model - migrated)]
    assert not mismatched, "the model and the migrations differ:\n" + "\n".join(mismatched)


def test_every_geometry_column_has_a_gist_index(session):
    columns = session.execute(text(
        "SELECT f_table_name, f_geometry_column FROM geometry_columns "
        "WHERE f_table_schema = 'public' AND f_table_name NOT LIKE 'positions\\_%'")).all()
    assert {t for t, _ in columns} >= {"areas", "area_versions", "entities", "places", "roads",
                                       "incidents", "positions", "tracks"}
    for table, column in columns:
        indexed = session.execute(text("""
            SELECT count(*) FROM pg_index i
              JOIN pg_class c ON c.oid = i.indexrelid
              JOIN pg_am am ON am.oid = c.relam
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
             WHERE i.indrelid = CAST(:t AS regclass) AND a.attname = :c AND am.amname = 'gist'"""),
            {"t": table, "c": column}).scalar()
        assert indexed, f"{table}.{column} has no GiST index"


def test_schema_has_the_whole_model(session):
    tables = set(session.execute(text(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
    expected = {"areas", "area_versions", "boundary_changes", "area_groups", "people", "area_staff",
                "entities", "departments", "places", "roads", "incidents", "incident_events",
                "incident_links", "units", "shifts", "tracks", "risk_levels", "users", "roles",
                "user_scopes", "api_tokens", "audit_log"}
    assert expected <= tables
    kind = session.execute(text("SELECT relkind FROM pg_class WHERE relname = 'positions'")).scalar()
    assert kind == "p"  # partitioned


def _area(session, code, level, parent_id=None, box=(0, 0, 1, 1)):
    return session.execute(text(
        "INSERT INTO areas (code, name, level, parent_id, geom) VALUES "
        "(:c, :n, :l, :p, ST_Multi(ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))) RETURNING id"),
        {"c": code, "n": code, "l": level, "p": parent_id, "x0": box[0], "y0": box[1], "x1": box[2],
         "y1": box[3]}).scalar_one()


def test_path_trigger_keeps_subtrees_when_a_branch_moves(session):
    root = _area(session, "T1", 1)
    a = _area(session, "T1A", 2, root)
    b = _area(session, "T1B", 2, root)
    v = _area(session, "T1A1", 3, a)
    g = _area(session, "T1A1G", 4, v)
    def subtree(code):
        return set(session.execute(text(
            "SELECT c.code FROM areas c, areas r WHERE r.code = :r AND c.path <@ r.path AND c.id <> r.id"),
            {"r": code}).scalars())
    assert subtree("T1A") == {"T1A1", "T1A1G"}
    session.execute(text("UPDATE areas SET parent_id = :b WHERE id = :v"), {"b": b, "v": v})
    assert subtree("T1A") == set()
    assert subtree("T1B") == {"T1A1", "T1A1G"}
    path = session.execute(text("SELECT path::text FROM areas WHERE id = :g"), {"g": g}).scalar()
    assert path == f"{root}.{b}.{v}.{g}"


def test_an_area_cannot_move_under_its_own_descendant(session):
    root = _area(session, "T2", 1)
    child = _area(session, "T2A", 2, root)
    with pytest.raises(Exception, match="own descendant"):
        session.execute(text("UPDATE areas SET parent_id = :c WHERE id = :r"), {"c": child, "r": root})


def test_positions_are_unique_per_unit_and_time_and_partitioned_by_day(session):
    unit = session.execute(text("INSERT INTO units (callsign, kind) VALUES ('T-01', 'car') "
                                "RETURNING id")).scalar_one()
    day = dt.date(2026, 1, 2)
    name = session.execute(text("SELECT ensure_position_partition(:d)"), {"d": day}).scalar()
    assert name == "positions_20260102"
    assert session.execute(text("SELECT ensure_position_partition(:d)"), {"d": day}).scalar() == name
    insert = text("INSERT INTO positions (unit_id, ts, geom) VALUES (:u, :ts, "
                  "ST_SetSRID(ST_MakePoint(114, 33.6), 4326)) ON CONFLICT DO NOTHING")
    ts = dt.datetime(2026, 1, 2, 12, tzinfo=dt.timezone.utc)
    session.execute(insert, {"u": unit, "ts": ts})
    session.execute(insert, {"u": unit, "ts": ts})
    assert session.execute(text("SELECT count(*) FROM positions_20260102")).scalar() == 1
    with pytest.raises(IntegrityError):
        with session.begin_nested():
            session.execute(text("INSERT INTO positions (unit_id, ts, geom) VALUES (:u, :ts, "
                                 "ST_SetSRID(ST_MakePoint(114, 33.6), 4326))"), {"u": unit, "ts": ts})


def test_incident_category_is_checked(session):
    with pytest.raises(IntegrityError):
        with session.begin_nested():
            session.execute(text("INSERT INTO incidents (category, occurred_at) VALUES ('gossip', now())"))


def test_the_migrations_have_one_head():
    from alembic.script import ScriptDirectory

    from geo import db

    script = ScriptDirectory.from_config(db.alembic_config("postgresql+psycopg://"))
    assert len(script.get_heads()) == 1, script.get_heads()
