"""The deployment files: docker-compose.yml and the Dockerfile (Docker itself cannot run here)."""
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_db_service_is_postgis_with_a_health_check_and_a_named_volume():
    spec = compose()
    db = spec["services"]["db"]
    assert db["image"].startswith("postgis/postgis:")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    volume, _, target = db["volumes"][0].partition(":")
    assert volume in spec["volumes"] and target == "/var/lib/postgresql/data"
    assert db["environment"]["POSTGRES_DB"] == "anwang"


def test_app_waits_for_a_healthy_db_and_points_at_it():
    app = compose()["services"]["app"]
    assert app["build"] == "."
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    url = app["environment"]["DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://") and "@db:5432/anwang" in url
    assert "ANWANG_SECRET_KEY" in app["environment"]


def test_dockerfile_installs_npm_assets_and_runs_gunicorn():
    text = (ROOT / "Dockerfile").read_text()
    assert "npm ci" in text and "node_modules" in text
    assert "gunicorn" in text and "web:create_app()" in text
    assert "USER anwang" in text  # never root at run time


def test_ci_script_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
