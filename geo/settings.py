"""Where things live: the project root, the embedded cluster under var/, the real-data folder.

Read from the environment on each call, never at import time, so tests and the CLI can set them.
"""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    """Folder holding the embedded cluster, its socket and logs (`ANWANG_VAR`, default ./var)."""
    return Path(os.environ.get("ANWANG_VAR") or PROJECT_ROOT / "var").resolve()


def realdata_dir() -> Path:
    """Folder of the third-party reference sets the tests read (`ANWANG_REALDATA` overrides the
    copy kept in the repository under tests/data/realdata)."""
    return Path(os.environ.get("ANWANG_REALDATA") or PROJECT_ROOT / "tests" / "data" / "realdata").resolve()


def database_url() -> str | None:
    """The external server's URL (`DATABASE_URL`), or None for the embedded cluster."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        return None
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def embedded_port() -> int | None:
    """TCP port for the embedded cluster on 127.0.0.1 (`ANWANG_DB_PORT`); None means socket only."""
    value = os.environ.get("ANWANG_DB_PORT", "").strip()
    return int(value) if value else None


def database_name() -> str:
    """Database name inside the embedded cluster (`ANWANG_DB_NAME`, default anwang)."""
    return os.environ.get("ANWANG_DB_NAME", "anwang")
