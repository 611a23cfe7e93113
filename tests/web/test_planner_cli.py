"""`anwang areas import|export|validate`: the report on stdout, exit status 1 on refusal, nothing
written by a dry run, the same bad inputs refused as by the core and the API."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from tests.geo.planner_fixtures import bad_imports, feature, square, write_geojson
from web.cli import main


@pytest.fixture()
def run(engine):
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke


@pytest.fixture()
def cleanup(engine):
    """Remove what a committed CLI import wrote (codes starting with CLI)."""
    yield
    with engine.begin() as conn:
        ids = conn.execute(text("SELECT id FROM areas WHERE code LIKE 'CLI%'")).scalars().all()
        changes = conn.execute(text("SELECT DISTINCT change_id FROM area_versions WHERE code LIKE 'CLI%'")).scalars().all()
        conn.execute(text("DELETE FROM area_versions WHERE code LIKE 'CLI%'"))
        conn.execute(text("DELETE FROM areas WHERE id = ANY(:ids)"), {"ids": ids})
        conn.execute(text("DELETE FROM audit_log WHERE action = 'areas.import' AND target_id = ANY(:c)"),
                     {"c": [str(c) for c in changes]})
        conn.execute(text("DELETE FROM boundary_changes WHERE id = ANY(:c)"), {"c": changes})


@pytest.mark.parametrize("name,features,options,expected", bad_imports(), ids=[b[0] for b in bad_imports()])
def test_bad_files_are_refused_by_the_command(run, tmp_path, name, features, options, expected):
    path = write_geojson(tmp_path / "bad.geojson", features)
    args = ["areas", "import", path, "--level", options.get("level", 1)]
    if "code_field" in options:
        args += ["--code-field", options["code_field"]]
    result = run(*args)
    assert result.exit_code == 1
    if expected in ("code_field", "parent"):
        assert result.output.strip().startswith(f"error ({expected}):"), result.output
    else:
        assert expected in result.output and "refused:" in result.output and "nothing written" in result.output


def test_dry_run_import_and_export(run, engine, tmp_path, cleanup):
    path = write_geojson(tmp_path / "cli.geojson", [feature("CLI1", square(33.0, 33.0)),
                                                    feature("CLI2", square(33.01, 33.0))])
    dry = run("areas", "import", path, "--level", "district", "--dry-run")
    assert dry.exit_code == 0 and "would import 2 area(s) at level 1" in dry.output
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM areas WHERE code LIKE 'CLI%'")).scalar() == 0
    done = run("areas", "import", path, "--level", "1")
    assert done.exit_code == 0 and "imported 2 area(s)" in done.output and "change #" in done.output
    out = tmp_path / "out.geojson"
    exported = run("areas", "export", "--level", "1", "-o", out)
    assert exported.exit_code == 0 and "written to" in exported.output
    codes = {f["properties"]["code"] for f in json.loads(out.read_text())["features"]}
    assert {"CLI1", "CLI2"} <= codes
    gpkg = tmp_path / "out.gpkg"
    assert run("areas", "export", "--level", "1", "--format", "gpkg", "-o", gpkg).exit_code == 0
    again = run("areas", "import", gpkg, "--level", "1", "--dry-run")
    assert again.exit_code == 1 and "code_exists" in again.output and "--code-prefix" in again.output
    assert run("areas", "validate", "--area", "CLI1").exit_code == 0
