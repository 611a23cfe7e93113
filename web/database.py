"""One engine per app (created on first use) and one session per request."""
from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session, sessionmaker

from geo import db


def engine():
    ext = current_app.extensions["anwang"]
    if ext.get("engine") is None:
        url = current_app.config.get("DATABASE_URL") or db.engine_url()
        ext["engine"] = db.make_engine(url)
        ext["sessionmaker"] = sessionmaker(bind=ext["engine"], expire_on_commit=False)
    return ext["engine"]


def session() -> Session:
    """The request's session; the view commits its writes, anything else is rolled back at teardown."""
    if "db_session" not in g:
        engine()
        g.db_session = current_app.extensions["anwang"]["sessionmaker"]()
    return g.db_session


def init_app(app: Flask) -> None:
    app.extensions["anwang"] = {"engine": None}

    @app.teardown_appcontext
    def close_session(exc):
        s = g.pop("db_session", None)
        if s is not None:
            s.rollback()
            s.close()
