"""The `anwang` command: one clear line for every user error, never a traceback."""
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from web.cli import main


@pytest.fixture()
def run(engine):
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


def test_db_url_points_at_the_socket(run):
    result = run("db", "url")
    assert result.exit_code == 0
    assert result.output.startswith("postgresql://") and "host=" in result.output


def test_db_up_is_idempotent(run):
    first, second = run("db", "up"), run("db", "up")
    assert first.exit_code == second.exit_code == 0
    assert "already running" in second.output or "DATABASE_URL" in second.output
    from alembic.script import ScriptDirectory

    from geo import db

    heads = ScriptDirectory.from_config(db.alembic_config("postgresql://")).get_heads()
    assert f"revision {','.join(sorted(heads))}" in second.output


def test_users_add_refuses_bad_input_in_one_line(run):
    result = run("users", "add", "someone", "--role", "analyst", "--password", "long enough 1")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error (scope): a analyst needs an area scope (--scope CODE)"]
    result = run("users", "add", "someone", "--role", "analyst", "--scope", "NOWHERE",
                 "--password", "long enough 1")
    assert result.exit_code == 1 and "no area with code 'NOWHERE'" in result.output
    result = run("users", "add", "someone", "--role", "emperor")
    assert result.exit_code == 2 and "emperor" in result.output


def test_users_add_and_token_create(run, engine):
    result = run("users", "add", "cli_admin", "--role", "admin", "--password", "long enough 1")
    assert result.exit_code == 0, result.output
    token = run("tokens", "create", "cli_admin").output.strip()
    assert token.startswith("anw_") and len(token) > 30
    with engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_log WHERE target_id = 'cli_admin'")).scalar() == 2
        conn.execute(text("DELETE FROM users WHERE username = 'cli_admin'"))
    missing = run("tokens", "create", "nobody_here")
    assert missing.exit_code == 1 and "no active user 'nobody_here'" in missing.output
