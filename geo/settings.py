"""Every setting Anwang reads from the environment, in one table, and where things live.

Values are read on each call, never at import time, so tests and the command line can set them.
This is the only module that reads the environment: the web app turns the table into its config
(`web/config.py`), and feature code receives the values as arguments. The README's configuration
table lists the same names (a test compares them).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Setting:
    """One environment variable: its default (as the README shows it), what it means, and the app
    config key it sets, if any."""

    name: str
    default: str
    meaning: str
    config: str | None = None


SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting("DATABASE_URL", "", "any PostGIS 3 server instead of the embedded cluster"),
    Setting("ANWANG_VAR", "./var", "where the embedded cluster, its socket and the session key live"),
    Setting("ANWANG_DB_PORT", "", "also let the embedded cluster listen on 127.0.0.1:PORT"),
    Setting("ANWANG_DB_NAME", "anwang", "database inside the embedded cluster"),
    Setting("ANWANG_BACKUPS", "", "where `anwang backup` keeps base backups, archived WAL and dumps "
            "(default: var/backups)"),
    Setting("ANWANG_READ_URL", "", "a streaming replica for reads that tolerate a second of lag "
            "(analytics, exports, public statistics); unset: every read on the primary", "READ_DATABASE_URL"),
    Setting("ANWANG_READ_MAX_LAG", "1", "seconds a routed read may lag behind the primary before it "
            "goes to the primary", "READ_MAX_LAG"),
    Setting("ANWANG_REALDATA", "tests/data/realdata", "another copy of the third-party test sets"),
    Setting("ANWANG_SECRET_KEY", "", "session signing key (random, kept in var/secret_key, when unset)"),
    Setting("ANWANG_SECURE_COOKIES", "0", "1 behind HTTPS", "SESSION_COOKIE_SECURE"),
    Setting("ANWANG_BASEMAP", "local", "default basemap: local (the self-served vector basemap, /tiles/basemap), "
            "osm, tianditu or none", "BASEMAP"),
    Setting("ANWANG_TIANDITU_KEY", "", "Tianditu tk key; the Tianditu basemap appears when set",
            "TIANDITU_KEY"),
    Setting("ANWANG_OSM_TILE_URL", "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
            "the OpenStreetMap tile server (an intranet mirror, say)", "OSM_TILE_URL"),
    Setting("ANWANG_LOCALE", "zh", "default interface language (zh or en)", "BABEL_DEFAULT_LOCALE"),
    Setting("ANWANG_MAX_SPEED_MS", "55", "speed in m/s above which a fix is an impossible jump",
            "MAX_SPEED_MS"),
    Setting("ANWANG_POOR_ACCURACY_M", "100", "accuracy radius in m above which a fix is too vague "
            "for tracks", "POOR_ACCURACY_M"),
    Setting("ANWANG_OSMAND_PORT", "", "also answer the OsmAnd protocol on this port", "OSMAND_PORT"),
    Setting("ANWANG_OSMAND_REQUIRE_TOKEN", "0", "1: OsmAnd pings need the device token as well"),
    Setting("ANWANG_DEVICE_TIMEZONE", "Asia/Shanghai", "time zone of OsmAnd times sent without one "
            "(Traccar reads them as the server's local time)", "DEVICE_TIMEZONE"),
    Setting("ANWANG_GT06_PORT", "", "also listen for GT06 trackers (binary, TCP) on this port"),
    Setting("ANWANG_H02_PORT", "", "also listen for H02 trackers (text, TCP) on this port"),
    Setting("ANWANG_OSMAND_THREADS", "32", "threads answering the OsmAnd port, apart from the API's "
            "(anwang serve)"),
    Setting("ANWANG_LIVE_STREAMS_PER_USER", "20", "live map streams (/api/live) one user may hold open "
            "at once in each worker; one more is refused with 429", "LIVE_STREAMS_PER_USER"),
    Setting("ANWANG_THREADS", "128", "gunicorn threads per worker for the API and pages (anwang serve)"),
    Setting("ANWANG_WORKERS", "1", "gunicorn worker processes (anwang serve)"),
    Setting("ANWANG_ACCESS_LOG", "1", "0 turns the access log of anwang serve off"),
    Setting("ANWANG_CHROMIUM", "", "the Chromium that prints report PDFs (default: the system's)"),
    Setting("ANWANG_TEST_DB", "anwang_test", "the test suite's database in the embedded cluster"),
)}
TRUE = ("1", "true", "yes", "on")


def value(name: str) -> str:
    """The setting's value: the environment's, else its default."""
    setting = SETTINGS[name]           # a name not in the table is a bug, not a default
    raw = os.environ.get(name, "").strip()
    return raw or setting.default


def flag(name: str) -> bool:
    """A yes/no setting."""
    return value(name).lower() in TRUE


def number(name: str) -> float:
    """A numeric setting (a clear error for a value that is not a number)."""
    raw = value(name)
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number; got {raw!r}") from None


def var_dir() -> Path:
    """Folder holding the embedded cluster, its socket and logs (`ANWANG_VAR`, default ./var)."""
    raw = os.environ.get("ANWANG_VAR", "").strip()
    return Path(raw or PROJECT_ROOT / "var").resolve()


def realdata_dir() -> Path:
    """Folder of the third-party reference sets the tests read (`ANWANG_REALDATA` overrides the
    copy kept in the repository under tests/data/realdata)."""
    return (PROJECT_ROOT / value("ANWANG_REALDATA")).resolve()


def backups_dir() -> Path:
    """Folder of base backups, archived WAL and dumps (`ANWANG_BACKUPS`, default var/backups)."""
    raw = value("ANWANG_BACKUPS")
    return Path(raw).resolve() if raw else var_dir() / "backups"


def database_url() -> str | None:
    """The external server's URL (`DATABASE_URL`), or None for the embedded cluster."""
    return sqlalchemy_url(value("DATABASE_URL"))


def read_url() -> str | None:
    """The replica's URL for reads (`ANWANG_READ_URL`), or None: every read on the primary."""
    return sqlalchemy_url(value("ANWANG_READ_URL"))


def sqlalchemy_url(url: str) -> str | None:
    """A libpq URL in the form SQLAlchemy's psycopg driver takes (None for an empty one)."""
    if not url:
        return None
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def embedded_port() -> int | None:
    """TCP port for the embedded cluster on 127.0.0.1 (`ANWANG_DB_PORT`); None means socket only."""
    raw = value("ANWANG_DB_PORT")
    return int(raw) if raw else None


def database_name() -> str:
    """Database name inside the embedded cluster (`ANWANG_DB_NAME`, default anwang)."""
    return value("ANWANG_DB_NAME")
