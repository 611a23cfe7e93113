"""Every way through an import's report leads somewhere: taken as suggested, it succeeds or meets a
different, named problem. Fit and skip-bad together import what fits; parents come by location
or from a member of a nested object; and the wording follows the caller's hints."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from geo import audit
from geo.boundaries import ingest, partition
from geo.boundaries.ingest_report import Hints
from geo.errors import InvalidInput
from geo.policy import Scope
from tests.geo.planner_fixtures import bad_imports, feature, square, write_geojson

ACTOR = audit.Actor("ways-test")
# The values a person would choose where a suggestion leaves them open.
CHOSEN = {"code_prefix": "W-", "parent": "TZ", "parent_field": "parent", "crs": "wgs84",
          "code_field": "code", "name_field": "name", "level": 2}


def region_imports():
    """Bad files against the tiny region (TZ → TZ1 → TZ1A → TZ1A1 at 10.00–10.01 × 10.00–10.02),
    each with the values a person would choose where its suggestions leave them open and whether
    some way through ends in an import: (name, features, options, expected problem, choices,
    imports). Where none does, each way still meets a different, named problem."""
    west = [[[10.0, 10.0], [10.005, 10.0], [10.005, 10.02], [10.0, 10.02], [10.0, 10.0]]]
    east = [[[10.005, 10.0], [10.01, 10.0], [10.01, 10.02], [10.005, 10.02], [10.005, 10.0]]]
    return [
        ("unknown parent code", [feature("U1", west, parent="NOPE"), feature("U2", east, parent="TZ1A1")],
         {"level": 5}, "missing_parent", {}, True),
        ("unknown parent code in a field given", [feature("U1", west, parent="NOPE"),
                                                  feature("U2", east, parent="TZ1A1")],
         {"level": 5, "parent_field": "parent"}, "missing_parent", {}, True),
        ("empty parent field", [feature("E1", west, parent=""), feature("E2", east, parent="TZ1A1")],
         {"level": 5}, "missing_parent", {}, True),
        ("ambiguous parent", [feature("A1", west, parent="TZ9"), feature("A2", east, parent="TZ9")],
         {"level": 5}, "ambiguous_parent", {"parent": "TZ1A"}, True),
        ("no such parent field", [feature("N1", west), feature("N2", east)],
         {"level": 5, "parent_field": "nope"}, "parent_field", {}, True),
        ("parent at another level", [feature("L1", west), feature("L2", east)],
         {"level": 5, "parent": "TZ1A"}, "parent", {}, False),
        ("code already there", [feature("TZ1A1", west, parent="TZ1A1"), feature("X2", east, parent="TZ1A1")],
         {"level": 5}, "code_exists", {}, True),
        # CGCS2000 is used in China only; 10°E 10°N is far outside it, but fine as WGS84.
        ("geographic CRS tag far from the coordinates", [feature("C1", west, parent="TZ1A1"),
                                                         feature("C2", east, parent="TZ1A1")],
         {"level": 5, "_crs": "EPSG:4490"}, "crs_mismatch", {}, True),
        ("projected CRS tag on degrees", [feature("C1", west, parent="TZ1A1"),
                                          feature("C2", east, parent="TZ1A1")],
         {"level": 5, "_crs": "EPSG:4547"}, "crs_mismatch", {}, True),
        ("a whole export of other levels", [feature("O1", west, parent="TZ1A1", level=5),
                                            feature("O2", east, parent="TZ1A1", level=5)],
         {"level": 4}, "other_level", {}, True),
        ("outside the parent", [feature("P1", west, parent="TZ1A2"), feature("P2", east, parent="TZ1A2")],
         {"level": 5}, "misfit", {}, True),
    ]


def ambiguous(session) -> None:
    """Two level-4 areas that a reference 'TZ9' matches once leading zeros are forgiven: 0TZ9 in
    TZ1A (inside TZ1A1's outline, a duplicate of it) and 00TZ9 in TZ2A."""
    session.execute(text("""
        INSERT INTO areas (code, name, level, parent_id, geom)
        SELECT c.code, c.code, 4, p.id, g.geom FROM (VALUES ('0TZ9', 'TZ1A', 'TZ1A1'),
                                                           ('00TZ9', 'TZ2A', 'TZ2A1')) c(code, parent, like_)
          JOIN areas p ON p.code = c.parent JOIN areas g ON g.code = c.like_"""))


def attempt(session, path, options: dict) -> tuple[set, list[dict]]:
    """Import (dry) with `options`: the problems it names and the ways through it suggests.

    A problem is (kind, feature) of a refused report, or ('invalid', field) of bad arguments;
    success is no problem at all.
    """
    try:
        report = ingest.load(session, path, actor=ACTOR, scope=Scope.all(), dry_run=True,
                             **{"level": 1, **options})
    except InvalidInput as exc:
        return {("invalid", exc.field)}, list(exc.details.get("ways", []))
    ways = []
    for e in report.errors:
        assert e.message and (e.ways or e.advice), e  # every refusal says what to do
        ways += [w for w in e.ways if w not in ways]
    return {(e.kind, e.feature) for e in report.errors}, ways


def take(way: dict, chosen: dict | None = None) -> dict:
    chosen = {**CHOSEN, **(chosen or {})}
    return {k: chosen[k] if v is None else v for k, v in way.items()}


def follow(session, path, options: dict, depth: int = 3, chosen: dict | None = None) -> list[list[str]]:
    """Take every suggested way, one step at a time: each must lead to success or to another
    problem. Returns the chains that reached success."""
    problems, ways = attempt(session, path, options)
    if not problems:
        return [[]]
    assert ways, f"{problems} suggests no way through"
    reached = []
    for way in ways:
        taken = {**options, **take(way, chosen)}
        after, _ = attempt(session, path, taken)
        assert not (after & problems) or after != problems, \
            f"taking {way} leaves the same problem {sorted(after & problems)}"
        gone = {p for p in problems if p not in after}
        assert gone or not after, f"{way} changed nothing of {problems}"
        if depth > 1:
            reached += [[json.dumps(way)] + chain
                        for chain in follow(session, path, taken, depth - 1, chosen)]
    return reached


@pytest.mark.parametrize("name,features,options,expected", bad_imports(), ids=[b[0] for b in bad_imports()])
def test_every_way_through_a_bad_file_leads_somewhere(session, tiny, tmp_path, name, features,
                                                      options, expected):
    path = write_geojson(tmp_path / "bad.geojson", features)
    problems, ways = attempt(session, path, options)
    assert expected in {kind for kind, _ in problems} | {field for kind, field in problems
                                                          if kind == "invalid"}
    assert ways
    follow(session, path, options, depth=2)


@pytest.mark.parametrize("name,features,options,expected,chosen,imports", region_imports(),
                         ids=[b[0] for b in region_imports()])
def test_every_way_through_a_bad_file_in_a_region_leads_somewhere(session, tiny, tmp_path, name,
                                                                  features, options, expected, chosen,
                                                                  imports):
    ambiguous(session)
    crs = options.pop("_crs", None)
    path = write_geojson(tmp_path / "bad.geojson", features, crs=crs)
    problems, ways = attempt(session, path, options)
    assert expected in {kind for kind, _ in problems} | {field for kind, field in problems
                                                          if kind == "invalid"}, problems
    assert ways
    chains = follow(session, path, options, depth=3, chosen=chosen)
    assert bool(chains) == imports, chains


def _misfits(tmp_path):
    # Under grid TZ1A1 (10.00–10.01 × 10.00–10.02): M1 reaches east into TZ1A2, M2 leaves a gap
    # at the top, and M3 lies wholly in TZ2 — nothing of it is inside its parent.
    return write_geojson(tmp_path / "micro.geojson", [
        feature("M1", [[[10.0, 10.0], [10.0102, 10.0], [10.0102, 10.01], [10.0, 10.01], [10.0, 10.0]]],
                parent="TZ1A1"),
        feature("M2", [[[10.0, 10.01], [10.01, 10.01], [10.01, 10.0195], [10.0, 10.0195], [10.0, 10.01]]],
                parent="TZ1A1"),
        feature("M3", square(10.03, 10.03, 0.005), parent="TZ1A1")])


def test_fit_and_skip_bad_import_what_fits(session, tiny, tmp_path):
    path = _misfits(tmp_path)
    chains = follow(session, path, {"level": 5}, depth=3)
    assert ['{"fit": true}', '{"skip_bad": true}'] in chains
    fitted = ingest.load(session, path, level=5, fit=True, actor=ACTOR, scope=Scope.all())
    assert [(e.kind, e.feature) for e in fitted.errors] == [("outside_parent", 3)]
    assert "skip_bad=True" in fitted.summary() and "fit=True" not in fitted.summary()
    done = ingest.load(session, path, level=5, fit=True, skip_bad=True, actor=ACTOR, scope=Scope.all())
    assert not done.refused and done.created == ["M1", "M2"], done.lines()
    assert [(s.kind, s.feature) for s in done.skipped] == [("outside_parent", 3)]
    assert partition.validate_partition(session, "TZ1A1") == []


def test_parents_by_location_are_the_areas_overlapping_most(session, tiny, tmp_path):
    # Micro-grids over TZ1A1 and TZ1A2 (no parent field at all), one reaching 0.5 % into the
    # neighbour, and one far away.
    path = write_geojson(tmp_path / "beats.geojson", [
        feature("B1", [[[10.0, 10.0], [10.0101, 10.0], [10.0101, 10.02], [10.0, 10.02], [10.0, 10.0]]]),
        feature("B2", [[[10.0101, 10.0], [10.02, 10.0], [10.02, 10.02], [10.0101, 10.02], [10.0101, 10.0]]]),
        feature("B3", square(12.0, 12.0))])
    refused = ingest.load(session, path, level=5, parent_by_location=True, fit=True, actor=ACTOR,
                          scope=Scope.all())
    assert ("no_parent_found", 3) in {(e.kind, e.feature) for e in refused.errors}
    report = ingest.load(session, path, level=5, parent_by_location=True, fit=True, skip_bad=True,
                         actor=ACTOR, scope=Scope.all())
    assert not report.refused and report.created == ["B1", "B2"], report.lines()
    located = {p["code"]: (p["parent"], round(p["share_pct"], 1)) for p in report.located}
    assert located == {"B1": ("TZ1A1", 99.0), "B2": ("TZ1A2", 100.0)}
    assert "  located feature 1 [B1] in TZ1A1 (99.0 % of it inside)" in report.lines()
    parents = dict(session.execute(text(
        "SELECT a.code, p.code FROM areas a JOIN areas p ON p.id = a.parent_id "
        "WHERE a.code IN ('B1', 'B2')")).all())
    assert parents == {"B1": "TZ1A1", "B2": "TZ1A2"}


def test_a_parent_field_with_parents_by_location_locates_only_what_the_field_cannot_name(
        session, tiny, tmp_path):
    west = [[[10.0, 10.0], [10.005, 10.0], [10.005, 10.02], [10.0, 10.02], [10.0, 10.0]]]
    east = [[[10.005, 10.0], [10.01, 10.0], [10.01, 10.02], [10.005, 10.02], [10.005, 10.0]]]
    # K1 names its parent; K2 names one that is not there, K3 none: both lie in TZ1A2.
    path = write_geojson(tmp_path / "mixed.geojson", [
        feature("K1", west, parent="TZ1A1"), feature("K2", square(10.01, 10.0), parent="TZ9Z"),
        feature("K3", square(10.01, 10.01), parent=""), feature("K4", east, parent="TZ1A1")])
    refused = ingest.load(session, path, level=5, parent_field="parent", actor=ACTOR, scope=Scope.all())
    assert [(e.kind, e.feature) for e in refused.errors][:2] == [("missing_parent", 2),
                                                                 ("missing_parent", 3)]
    assert all({"parent_by_location": True} in e.ways for e in refused.errors[:2])
    report = ingest.load(session, path, level=5, parent_field="parent", parent_by_location=True,
                         fit=True, actor=ACTOR, scope=Scope.all())
    assert not report.refused and report.created == ["K1", "K2", "K3", "K4"], report.lines()
    assert {p["code"]: p["parent"] for p in report.located} == {"K2": "TZ1A2", "K3": "TZ1A2"}


def test_a_nested_parent_object_is_read_with_a_dotted_field(session, tmp_path):
    session.execute(text("INSERT INTO areas (code, name, level, geom) VALUES ('210200', '大连市', 1, "
                         "ST_Multi(ST_MakeEnvelope(121.5, 38.8, 121.8, 39.1, 4326)))"))
    outline = [[[121.5, 38.8], [121.8, 38.8], [121.8, 39.1], [121.5, 39.1], [121.5, 38.8]]]
    path = write_geojson(tmp_path / "datav.geojson", [{
        "type": "Feature", "geometry": {"type": "Polygon", "coordinates": outline},
        "properties": {"adcode": 210202, "name": "中山区", "level": "district",
                       "parent": {"adcode": 210200}, "acroutes": [100000, 210000, 210200]}}])
    refused = ingest.load(session, path, level=2, code_field="adcode", actor=ACTOR, scope=Scope.all())
    [error] = refused.errors
    assert error.kind == "parent_is_object" and '{"adcode": 210200}' in error.message
    assert error.ways[0] == {"parent_field": "parent.adcode"}
    report = ingest.load(session, path, level=2, code_field="adcode", parent_field="parent.adcode",
                         actor=ACTOR, scope=Scope.all())
    assert report.created == ["210202"], report.lines()
    assert session.execute(text("SELECT p.code FROM areas a JOIN areas p ON p.id = a.parent_id "
                                "WHERE a.code = '210202'")).scalar() == "210200"


def test_the_ways_are_worded_as_the_caller_spells_its_options(session, tmp_path):
    path = write_geojson(tmp_path / "dup.geojson", [feature("D1", square(30.0, 30.0)),
                                                    feature("D1", square(30.01, 30.0))])
    flags = Hints({"merge_duplicates": "--merge-duplicates", "skip_bad": "--skip-bad"}, joiner=" ",
                  on="", quote=False)
    form = Hints({"path": "file"}, joiner="=", on="=1", quote=False)
    by_flag = ingest.load(session, path, level=1, hints=flags, actor=ACTOR, scope=Scope.all())
    by_form = ingest.load(session, path, level=1, hints=form, actor=ACTOR, scope=Scope.all())
    assert by_flag.errors[0].fix.startswith("--merge-duplicates (dissolves them into one area)")
    assert "--skip-bad" in by_flag.summary()
    assert by_form.errors[0].fix.startswith("merge_duplicates=1 (")
    assert "skip_bad=1" in by_form.summary() and "--" not in by_form.summary()
    with pytest.raises(InvalidInput) as missing:
        ingest.load(session, tmp_path / "gone.geojson", level=1, name="我的边界.geojson", hints=form,
                    actor=ACTOR, scope=Scope.all())
    assert missing.value.field == "file" and str(tmp_path) not in missing.value.message
    assert "我的边界.geojson" in missing.value.message
