"""Every environment variable is in the one settings table, the README lists exactly that table,
and nothing but geo/settings.py reads the environment."""
from __future__ import annotations

import re
from pathlib import Path

from geo.settings import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
NAME = re.compile(r"\bANWANG_[A-Z][A-Z0-9_]*\b")
SOURCES = ("geo", "layers", "web", "data", "bench", "tests", ".ci")


def _files():
    for folder in SOURCES:
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".sh", "") and "__pycache__" not in path.parts:
                yield path
    for name in ("Makefile", "Dockerfile", "docker-compose.yml"):
        yield ROOT / name


def test_every_variable_used_is_in_the_table():
    used = {m for path in _files() for m in NAME.findall(path.read_text(encoding="utf-8", errors="ignore"))}
    assert used - set(SETTINGS) == set()


def test_the_readme_lists_exactly_the_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Configuration"):]
    listed = re.findall(r"^\| `((?:ANWANG_|DATABASE_URL)[A-Z0-9_]*)` \|", section, re.M)
    assert listed == list(SETTINGS)


def test_only_the_settings_module_reads_the_environment():
    readers = []
    for folder in ("geo", "layers", "web", "data"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if re.search(r"os\.environ|os\.getenv", text) and path != ROOT / "geo" / "settings.py":
                readers.append(str(path.relative_to(ROOT)))
    assert readers == []
