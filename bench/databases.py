"""Benchmark databases: fresh, migrated databases in the embedded cluster, with the demo if asked."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from geo import db  # noqa: E402
from geo.cluster import Cluster  # noqa: E402


def step(label: str) -> None:
    """Print one progress line at once."""
    print(f"  … {label}", flush=True)


def fresh(name: str) -> str:
    """Drop and create database `name`, migrate it, and return its SQLAlchemy URL."""
    cluster = Cluster.default()
    cluster.start()
    cluster.drop_database(name)
    cluster.ensure_database(name)
    url = cluster.url(name)
    engine = db.make_engine(url)
    db.migrate(engine)
    engine.dispose()
    return url


def with_demo(name: str):
    """A fresh database with the 郾城区 demo loaded; return its engine."""
    from data import load, yancheng

    engine = db.make_engine(fresh(name))
    step("generating and loading the 郾城区 demo")

    def progress(what: str, done: int, total: int) -> None:
        if done >= total:
            print(f"      {what:<18} {total:>9,}", flush=True)

    with db.session_scope(engine) as s:
        load.load(s, yancheng.generate(), progress=progress)
    return engine


def drop(name: str) -> None:
    """Remove a benchmark database."""
    Cluster.default().drop_database(name)
