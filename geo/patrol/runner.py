"""One way to run the patrol SQL on a SQLAlchemy session or on a bare psycopg connection (the
OsmAnd fast path), so the same statements serve both.
"""
from __future__ import annotations

from psycopg.pq import ExecStatus
from psycopg.rows import dict_row
from sqlalchemy.orm import Session


class Runner:
    """Runs pyformat SQL (`%(name)s`) on a SQLAlchemy session, inside its transaction, or on a raw
    psycopg connection (the OsmAnd fast path, in autocommit); rows come back as dicts."""

    def __init__(self, session: Session | None = None, conn=None):
        self.session, self.conn = session, conn

    def rows(self, sql: str, params: dict | None = None) -> list[dict]:
        if self.session is not None:
            result = self.session.connection().exec_driver_sql(sql, params or {})
            return [dict(r) for r in result.mappings().all()] if result.returns_rows else []
        # dict_row takes the column names from the result, without building a description per call.
        cur = self.conn.cursor(row_factory=dict_row)
        cur.execute(sql, params or {})
        return cur.fetchall() if cur.pgresult.status == ExecStatus.TUPLES_OK else []

    def one(self, sql: str, params: dict | None = None) -> dict | None:
        rows = self.rows(sql, params)
        return rows[0] if rows else None

    def single(self, sql: str, params: dict | None = None) -> dict:
        """The row of a statement that always returns one (an aggregate, a SELECT without FROM)."""
        row = self.one(sql, params)
        if row is None:
            raise RuntimeError(f"no row from a statement that always returns one: {sql[:80]!r}")
        return row

    def dbapi(self):
        """The psycopg connection (for COPY)."""
        if self.session is not None:
            return self.session.connection().connection.dbapi_connection
        return self.conn
