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


def test_the_report_speaks_in_the_commands_flags(run, tmp_path):
    path = write_geojson(tmp_path / "dup.geojson", [feature("CLID", square(35.0, 35.0)),
                                                    feature("CLID", square(35.01, 35.0))])
    refused = run("areas", "import", path, "--level", "1")
    assert refused.exit_code == 1
    assert "--merge-duplicates (dissolves them into one area)" in refused.output
    assert "a way through: --merge-duplicates; --skip-bad" in refused.output
    assert "=True" not in refused.output and "merge_duplicates" not in refused.output
    parentless = run("areas", "import", path, "--level", "2")
    assert parentless.exit_code == 1 and "--parent-by-location" in parentless.output
    fitted = run("areas", "import", path, "--level", "1", "--merge-duplicates", "--dry-run")
    assert fitted.exit_code == 0 and "would import 1 area(s)" in fitted.output


def test_export_to_xlsx_and_back(run, engine, tmp_path, cleanup):
    path = write_geojson(tmp_path / "cli.geojson", [feature("CLIX", square(36.0, 36.0))])
    assert run("areas", "import", path, "--level", "1").exit_code == 0
    sheet = tmp_path / "out.xlsx"
    exported = run("areas", "export", "--level", "1", "--format", "xlsx", "-o", sheet)
    assert exported.exit_code == 0 and sheet.exists()
    again = run("areas", "import", sheet, "--level", "1", "--dry-run")
    assert again.exit_code == 1 and "feature(s), CRS EPSG:4326" in again.output
    assert "code_exists" in again.output and "[CLIX]: code CLIX already exists" in again.output
