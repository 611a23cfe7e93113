"""What every command shares: domain errors as one line on stderr, and a migrated database.
"""
from __future__ import annotations

import functools
import sys

import click

from geo import db
from geo.errors import AnwangError


def friendly(fn):
    """Turn domain errors into one line on stderr and exit status 1."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AnwangError as exc:
            where = f" ({exc.field})" if exc.field else ""
            click.echo(f"error{where}: {exc.message}", err=True)
            sys.exit(1)
    return wrapper


def ready_engine():
    """Start the embedded cluster if needed, migrate, and return an engine."""
    engine = db.make_engine(db.ensure_server(), role="cli")
    db.migrate(engine)
    return engine
