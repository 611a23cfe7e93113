"""The declarative base every table of the model shares, the SRID, and the ltree type.
"""
from __future__ import annotations

from sqlalchemy import (
    MetaData,
)
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import UserDefinedType

SRID = 4326


class LTree(UserDefinedType):
    """PostgreSQL ltree (materialised path of ancestor ids)."""

    cache_ok = True

    def get_col_spec(self, **kw):
        return "LTREE"


# SQLAlchemy does not know ltree and would reflect it as NullType, with a warning, so autogenerate
# could never compare these columns; reflected ltree columns become this type instead.
ischema_names["ltree"] = LTree


class Base(DeclarativeBase):
    # PostgreSQL's own names for constraints declared without one, so that the model names a
    # primary key, unique or foreign key constraint exactly as the migrations' CREATE TABLE did.
    metadata = MetaData(naming_convention={
        "pk": "%(table_name)s_pkey",
        "uq": "%(table_name)s_%(column_0_N_name)s_key",
        "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    })
