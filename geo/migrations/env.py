"""Alembic environment: the URL comes from the caller (geo.db.migrate) or geo.db.engine_url()."""
from alembic import context
from sqlalchemy import create_engine

from geo.db import engine_url
from geo.models import Base

config = context.config
target_metadata = Base.metadata


def include_object(obj, name, type_, reflected, compare_to):
    # PostGIS and partition children are not part of the model.
    if type_ == "table" and (name == "spatial_ref_sys" or name.startswith("positions_")):
        return False
    return True


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata,
                          include_object=include_object)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or engine_url())
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata,
                          include_object=include_object)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
