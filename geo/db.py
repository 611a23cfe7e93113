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


def make_engine(url: str | None = None, **kw) -> Engine:
    """An engine with a modest pool; connections are checked before use (servers restart)."""
    kw.setdefault("pool_pre_ping", True)
    # PostGIS declares its functions expensive, so geometry queries over set-returning functions
    # (ST_Dump of ST_Split …) or large polygons get plan costs in the millions and a JIT compile of
    # ~250 ms for work of ~1 ms. Every connection the app makes turns JIT off.
    kw.setdefault("connect_args", {}).setdefault("options", "-c jit=off")
    kw.setdefault("pool_size", 5)
    kw.setdefault("max_overflow", 10)
    return create_engine(url or engine_url(), **kw)


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
