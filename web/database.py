"""One engine per app (created on first use) and one session per request; with ANWANG_READ_URL a
second, read engine on a streaming replica and a read session per request (`read_session`)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask, current_app, g
from flask import session as cookie
from sqlalchemy import event, text
from sqlalchemy.orm import Session, sessionmaker

from geo import db
from geo.replica import ReadRouter

# The caller's last commit, as the primary's flushed WAL position after it: in the session cookie
# (it follows a browser across workers) and per process by user id (for bearer tokens).
LAST_WRITE = "anwang_wal"


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
        if router() is not None:
            event.listen(g.db_session, "before_commit", _note_write)
    return g.db_session


def router() -> ReadRouter | None:
    """The app's read router, when ANWANG_READ_URL names a replica."""
    ext = current_app.extensions["anwang"]
    if "router" not in ext:
        url = current_app.config.get("READ_DATABASE_URL")
        replica = db.make_engine(url, connect_args={
            "application_name": "anwang-read",
            # Nothing may write through the read engine, even when it points at a primary.
            "options": "-c jit=off -c default_transaction_read_only=on"}) if url else None
        ext["router"] = ReadRouter(engine(), replica, float(current_app.config.get("READ_MAX_LAG", 1))) \
            if replica is not None else None
    return ext["router"]


def read_session(since: datetime | None = None) -> Session:
    """The request's session for reads that tolerate ANWANG_READ_MAX_LAG seconds of lag
    (analytics, exports, public statistics): on the replica when it holds the caller's own last
    save and lags less than that, else the request's primary session. `since`: also hold what was
    committed at that moment (a row just published by someone else) when it is that recent.
    Never write through it."""
    route = router()
    if route is None or g.get("db_wrote"):
        return session()       # this request saved something: read it back from where it is
    if "db_read" not in g:
        need = _last_write()
        if since is not None and since > datetime.now(UTC) - timedelta(seconds=2 * route.max_lag):
            need = max(need, route.primary_position())
        conn = route.replica_connection(need)
        g.db_read = Session(bind=conn, expire_on_commit=False) if conn is not None else None
    return g.db_read or session()


def _note_write(s: Session) -> None:
    # Commits made while the caller is being identified (a token's last use, a session's last
    # seen) are bookkeeping, not saves anyone reads back; the caller is known after them.
    if "principal" in g and "db_wrote" not in g and s.execute(
            text("SELECT pg_current_xact_id_if_assigned() IS NOT NULL")).scalar():
        g.db_wrote = True


def _last_write() -> int:
    principal = g.get("principal")
    if principal is None:
        return 0           # no one to read back (and the public's cookie is left untouched)
    return max(int(cookie.get(LAST_WRITE, 0)),
               current_app.extensions["anwang"]["writes"].get(principal.id, 0))


def init_app(app: Flask) -> None:
    app.extensions["anwang"] = {"engine": None, "writes": {}}

    @app.after_request
    def remember_write(response):
        # After the commit, before the answer: the caller's next read must see this position.
        principal = g.get("principal")
        if g.get("db_wrote") and principal is not None:
            position = router().primary_position()
            cookie[LAST_WRITE] = position
            app.extensions["anwang"]["writes"][principal.id] = position
        return response

    @app.teardown_appcontext
    def close_session(exc):
        s = g.pop("db_session", None)
        if s is not None:
            s.rollback()
            s.close()
        read = g.pop("db_read", None)
        if read is not None:
            conn = read.get_bind()
            read.close()
            conn.close()
