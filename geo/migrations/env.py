"""Alembic environment: the URL comes from the caller (geo.db.migrate) or geo.db.engine_url()."""
from alembic import context
from sqlalchemy import create_engine

from geo.db import autogenerate_options, engine_url
from geo.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata,
                          **autogenerate_options())
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or engine_url())
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata,
                          **autogenerate_options())
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
