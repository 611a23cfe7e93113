"""Configuration: defaults, then the environment (ANWANG_*), then the mapping given to create_app."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from geo import settings

DEFAULTS = {
    "BASEMAP": "osm",                 # osm | tianditu | none — the map works with none (offline)
    "TIANDITU_KEY": "",
    "OSM_TILE_URL": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
    "BABEL_DEFAULT_LOCALE": "zh",
    "LANGUAGES": ["zh", "en"],
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": False,   # set ANWANG_SECURE_COOKIES=1 behind HTTPS
    "SESSION_COOKIE_NAME": "anwang_session",
    "PERMANENT_SESSION_LIFETIME": 8 * 3600,
    "WTF_CSRF_CHECK_DEFAULT": False,  # checked in auth.before_request unless a bearer token is used
    "WTF_CSRF_TIME_LIMIT": None,
    "MAX_CONTENT_LENGTH": 64 * 1024 * 1024,
    "JSON_SORT_KEYS": False,
}

ENV = {
    "ANWANG_BASEMAP": ("BASEMAP", str),
    "ANWANG_TIANDITU_KEY": ("TIANDITU_KEY", str),
    "ANWANG_OSM_TILE_URL": ("OSM_TILE_URL", str),
    "ANWANG_LOCALE": ("BABEL_DEFAULT_LOCALE", str),
    "ANWANG_SECURE_COOKIES": ("SESSION_COOKIE_SECURE", lambda v: v.lower() in ("1", "true", "yes")),
}


def secret_key() -> str:
    """ANWANG_SECRET_KEY, else a random key kept in var/secret_key so sessions survive restarts."""
    key = os.environ.get("ANWANG_SECRET_KEY")
    if key:
        return key
    path = settings.var_dir() / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def load(overrides: dict | None = None) -> dict:
    """Build the configuration mapping."""
    config = dict(DEFAULTS)
    for var, (key, cast) in ENV.items():
        if os.environ.get(var):
            config[key] = cast(os.environ[var])
    config.update(overrides or {})
    if "SECRET_KEY" not in config:
        config["SECRET_KEY"] = secret_key()
    return config


def project_path(*parts: str) -> Path:
    return settings.PROJECT_ROOT.joinpath(*parts)
