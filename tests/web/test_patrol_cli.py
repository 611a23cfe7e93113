"""`anwang units add` prints the device token, `anwang tracks import` the points and the length in
metres; mistakes are one line on stderr with exit status 1."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from geo import db
from geo.patrol import units
from web.cli import main

CALLSIGN = "命令行-1"


@pytest.fixture()
def run(engine):
    runner = CliRunner()
    yield lambda *args: runner.invoke(main, list(args), catch_exceptions=False)
    with db.session_scope(engine) as s:
        uid = s.execute(text("SELECT id FROM units WHERE callsign = :c"), {"c": CALLSIGN}).scalar()
        if uid:
            s.execute(text("DELETE FROM positions WHERE unit_id = :u"), {"u": uid})
            s.execute(text("DELETE FROM units WHERE id = :u"), {"u": uid})


def test_units_add_prints_a_working_token_and_tracks_import_prints_points_and_length(run, engine, realdata):
    added = run("units", "add", CALLSIGN, "--kind", "foot", "--device-id", "cli-1")
    assert added.exit_code == 0
    token = added.output.strip()
    assert token.startswith("dev_")
    with db.session_scope(engine) as s:
        assert units.unit_for_token(s, token).callsign == CALLSIGN
    again = run("units", "add", CALLSIGN, "--kind", "foot")
    assert again.exit_code == 1 and again.output.count("\n") == 1 and "already exists" in again.output

    imported = run("tracks", "import", str(realdata / "gpx" / "cerknicko-jezero.gpx"), "--unit", CALLSIGN)
    assert imported.exit_code == 0
    assert imported.output.startswith("296 points imported, length 4576.9 m")
    refused = run("tracks", "import", str(realdata / "gpx" / "unicode_with_bom.gpx"), "--unit", CALLSIGN)
    assert refused.exit_code == 1 and "no track or route" in refused.output
    missing = run("tracks", "import", "/nonexistent.gpx", "--unit", CALLSIGN)
    assert missing.exit_code == 1 and "no such file" in missing.output
