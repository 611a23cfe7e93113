"""Configuration: defaults, then the environment (the settings table in geo/settings.py), then the
mapping given to create_app."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from geo import settings
from geo.patrol import fixes

DEFAULTS = {
    "BABEL_DEFAULT_LOCALE": "zh",
    "LANGUAGES": ["zh", "en"],
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_NAME": "anwang_session",
    "PERMANENT_SESSION_LIFETIME": 8 * 3600,
    "WTF_CSRF_CHECK_DEFAULT": False,  # checked in auth.before_request unless a bearer token is used
    "WTF_CSRF_TIME_LIMIT": None,
    "MAX_CONTENT_LENGTH": 64 * 1024 * 1024,
    "JSON_SORT_KEYS": False,
}

# How each setting that configures the app is read (text otherwise).
CASTS = {
    "SESSION_COOKIE_SECURE": lambda v: v.lower() in settings.TRUE,
    "MAX_SPEED_MS": float,
    "POOR_ACCURACY_M": float,
    "OSMAND_PORT": lambda v: int(v) if v else None,
    "READ_DATABASE_URL": settings.sqlalchemy_url,
    "READ_MAX_LAG": float,
    "DEVICE_TIMEZONE": lambda v: _zone_name(v),
    "LIVE_STREAMS_PER_USER": lambda v: int(float(v)),
}


def _zone_name(name: str) -> str:
    """The time zone name, once the tz database is known to have it (a clear error otherwise)."""
    fixes.device_zone(name)
    return name


def secret_key() -> str:
    """ANWANG_SECRET_KEY, else a random key kept in var/secret_key so sessions survive restarts."""
    key = settings.value("ANWANG_SECRET_KEY")
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
    for setting in settings.SETTINGS.values():
        if setting.config:
            config[setting.config] = CASTS.get(setting.config, str)(settings.value(setting.name))
    config.update(overrides or {})
    if "SECRET_KEY" not in config:
        config["SECRET_KEY"] = secret_key()
    return config


def project_path(*parts: str) -> Path:
    return settings.PROJECT_ROOT.joinpath(*parts)
