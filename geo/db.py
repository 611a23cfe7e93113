"""Database access: the engine for the embedded cluster or DATABASE_URL, sessions, migrations."""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

from sqlalchemy import create_engine, text
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.orm import Session, sessionmaker

from . import settings
from .cluster import Cluster

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def engine_url(dbname: str | None = None) -> str:
    """DATABASE_URL if set, else the embedded cluster's socket URL."""
    return settings.database_url() or Cluster.default().url(dbname)


# Every connection has a role, and each role its own bounds (settings ANWANG_<ROLE>_STATEMENT_TIMEOUT
# and ANWANG_<ROLE>_LOCK_TIMEOUT): a web request must answer within seconds, a background import
# may work for minutes, the position writer must never queue its devices' pings behind a lock (a
# migration, a vacuum), and a command run by hand is bounded by the one who runs it.
ROLES = ("request", "import", "cli", "writer")


def timeouts(role: str) -> tuple[int, int]:
    """The role's (statement_timeout, lock_timeout) in milliseconds; 0 means no limit."""
    if role not in ROLES:
        raise ValueError(f"unknown connection role {role!r}: expected one of {', '.join(ROLES)}")
    name = role.upper()
    return (round(settings.number(f"ANWANG_{name}_STATEMENT_TIMEOUT") * 1000),
            round(settings.number(f"ANWANG_{name}_LOCK_TIMEOUT") * 1000))


def connect_options(role: str, extra: str = "") -> str:
    """The libpq `options` of a connection of `role`: its timeouts, JIT off, then `extra`."""
    statement, lock = timeouts(role)
    # PostGIS declares its functions expensive, so geometry queries over set-returning functions
    # (ST_Dump of ST_Split …) or large polygons get plan costs in the millions and a JIT compile of
    # ~250 ms for work of ~1 ms. Every connection the app makes turns JIT off.
    return " ".join(filter(None, (f"-c jit=off -c statement_timeout={statement} -c lock_timeout={lock}",
                                  extra)))


def make_engine(url: str | None = None, *, role: str = "cli", options: str = "", **kw) -> Engine:
    """An engine whose connections have `role`'s timeouts (and `options`), with a modest pool;
    connections are checked before use (servers restart)."""
    kw.setdefault("pool_pre_ping", True)
    kw.setdefault("connect_args", {})["options"] = connect_options(role, options)
    kw.setdefault("pool_size", 5)
    kw.setdefault("max_overflow", 10)
    return create_engine(url or engine_url(), **kw)


def cancelled(exc: BaseException) -> str | None:
    """Which bound cancelled the statement behind `exc` — "statement_timeout" or "lock_timeout" —
    or None when it failed for another reason."""
    import psycopg.errors

    orig = getattr(exc, "orig", exc)
    if isinstance(orig, psycopg.errors.LockNotAvailable):
        return "lock_timeout"
    if isinstance(orig, psycopg.errors.QueryCanceled) and "statement timeout" in str(orig):
        return "statement_timeout"
    return None


def ensure_server() -> str:
    """Start the embedded cluster and create its database if needed; return the URL to use."""
    url = settings.database_url()
    if url:
        return url
    cluster = Cluster.default()
    cluster.start()
    cluster.ensure_database()
    return cluster.url()


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


# Tables of the database that are not the model's: the daily partitions of `positions` (made at run
# time by ensure_position_partition and holding its rows, not a schema of their own), PostGIS's
# spatial_ref_sys, and Alembic's version table.
NOT_IN_MODEL = re.compile(r"positions_\d{8}|spatial_ref_sys|alembic_version")


def in_model(name: str | None, type_: str, parent_names: dict) -> bool:
    """Tell Alembic whether a database object is compared with the model (its `include_name`)."""
    return not (type_ == "table" and name is not None and NOT_IN_MODEL.fullmatch(name))


def autogenerate_options() -> dict:
    """Return how `alembic check`, autogenerate and the schema test compare the model with the database."""
    return {
        # Types as declared (real vs double precision, varchar lengths, geometry type and SRID);
        # Alembic compares the base type and its arguments, not array dimensions.
        "compare_type": True,
        # Defaults the database fills in (now(), false, 'reported'): inserts that leave them out
        # rely on them. Serial primary keys' nextval() is recognised and left out by Alembic.
        "compare_server_default": True,
        "include_name": in_model,
        # include_schemas stays off: only the default schema is compared, so PostGIS's topology
        # and tiger schemas, where installed, are never read.
    }


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (the one head by default) inside one transaction."""
    from alembic import command

    cfg = alembic_config(str(engine.url.render_as_string(hide_password=False)))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def rowcount(result) -> int:
    """How many rows a data-changing statement touched (its cursor result's rowcount)."""
    return cast(CursorResult, result).rowcount


def postgis_version(session: Session) -> str:
    """The PostGIS library version of the server (for the health check)."""
    return session.execute(text("SELECT postgis_lib_version()")).scalar_one()


def schema_revision(engine: Engine) -> str | None:
    """The schema's current Alembic revision, or None before the first migration."""
    with engine.connect() as conn:
        exists = conn.execute(text("SELECT to_regclass('alembic_version')")).scalar()
        if not exists:
            return None
        heads = conn.execute(text("SELECT version_num FROM alembic_version ORDER BY 1")).scalars()
        return ",".join(heads) or None


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on any error."""
    session = sessionmaker(bind=engine, expire_on_commit=False)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
