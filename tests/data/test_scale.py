"""`anwang demo --scale N`: copies of 郾城区 side by side, in the test's transaction (N = 2)."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from data import scale
from data.yancheng import DISTRICT_CODE
from geo.errors import Conflict, InvalidInput

# What a copy must repeat of the county, per table, keyed by how a row is found in a district.
PER_DISTRICT = {
    "areas": "SELECT count(*) FROM areas WHERE code LIKE :c || '%'",
    "grids": "SELECT count(*) FROM areas WHERE code LIKE :c || '%' AND level = 4",
    "households": "SELECT sum(households) FROM areas WHERE code LIKE :c || '%' AND level = 4",
    "population": "SELECT sum(population) FROM areas WHERE code = :c",
    "staff": "SELECT count(*) FROM area_staff s JOIN areas a ON a.id = s.area_id WHERE a.code LIKE :c || '%'",
    "groups": "SELECT count(*) FROM area_groups WHERE code LIKE :c || '%'",
    "grouped villages": "SELECT count(*) FROM areas WHERE code LIKE :c || '%' AND group_id IS NOT NULL",
    "entities": "SELECT count(*) FROM entities e JOIN areas a ON a.id = e.area_id WHERE a.code LIKE :c || '%'",
    "incidents": "SELECT count(*) FROM incidents WHERE district_code = :c",
    "incidents in its grids": "SELECT count(*) FROM incidents i JOIN areas g ON g.id = i.grid_id "
                              "WHERE i.district_code = :c AND g.code LIKE :c || '%' "
                              "AND ST_Intersects(g.geom, i.geom)",
    "units": "SELECT count(*) FROM units WHERE district_code = :c",
    "last fixes": "SELECT count(*) FROM unit_last_positions l JOIN units u ON u.id = l.unit_id "
                  "WHERE u.district_code = :c",
    "roads": "SELECT count(*) FROM roads WHERE district_code = :c",
    "risk levels": "SELECT count(*) FROM risk_levels r JOIN areas a ON a.id = r.area_id "
                   "WHERE a.code LIKE :c || '%'",
    "risk colours": "SELECT string_agg(r.level, ',' ORDER BY a.code) FROM risk_levels r "
                    "JOIN areas a ON a.id = r.area_id WHERE a.code LIKE :c || '%'",
    "versions": "SELECT count(*) FROM area_versions WHERE code LIKE :c || '%'",
}


def counts(session, code: str) -> dict:
    return {name: session.execute(text(sql), {"c": code}).scalar() for name, sql in PER_DISTRICT.items()}


def fingerprint(session) -> dict:
    """The real county as it is: its counts and an md5 of every area's and incident's geometry."""
    return {**counts(session, DISTRICT_CODE), **session.execute(text("""
        SELECT (SELECT md5(string_agg(code || name || ST_AsEWKB(geom)::text, ',' ORDER BY code))
                  FROM areas WHERE code LIKE :c || '%') AS areas,
               (SELECT md5(string_agg(id || ST_AsEWKB(geom)::text || COALESCE(grid_id, 0), ',' ORDER BY id))
                  FROM incidents WHERE district_code = :c) AS incidents,
               (SELECT count(*) FROM areas) - (SELECT count(*) FROM areas WHERE code LIKE '99%') AS others"""),
        {"c": DISTRICT_CODE}).one()._asdict()}


@pytest.fixture()
def copied(session, demo):
    from data.yancheng import PERIOD_END
    from geo import audit
    from layers import risk

    risk.update(session, audit.Actor("test"), as_of=PERIOD_END)  # the colours the copies must repeat
    before = fingerprint(session)
    summary = scale.replicate(session, 2)
    return before, summary


def test_each_copy_repeats_the_county(session, copied):
    _, summary = copied
    county = counts(session, DISTRICT_CODE)
    assert county["grids"] == 540 and county["incidents"] == 20_000 and county["risk levels"] == 540
    assert scale.present(session) == [1, 2]
    assert summary["copies added"] == 2 and summary["incidents"] == 2 * county["incidents"]
    for k in (1, 2):
        assert counts(session, scale.copy_code(k)) == county, k
    names = session.execute(text("SELECT code, name, parent_id FROM areas WHERE level = 1 ORDER BY code")).all()
    assert [(c, n) for c, n, _ in names] == [
        ("411103", "郾城区"), ("990001", "郾城区 副本 1"), ("990002", "郾城区 副本 2")]
    assert all(parent is None for *_, parent in names)
    # Every copied area hangs under its own copy of its parent, all the way up.
    wrong = session.execute(text("""
        SELECT count(*) FROM areas a JOIN areas p ON p.id = a.parent_id
         WHERE a.code LIKE '99%' AND (left(p.code, 6) <> left(a.code, 6)
                                      OR substr(p.code, 7) <> substr(a.attrs->>'copy_of', 7, length(p.code) - 6)
                                      OR NOT a.path <@ p.path)""")).scalar()
    assert wrong == 0


def test_no_code_of_a_copy_can_be_a_real_one(session, copied):
    codes = session.execute(text("SELECT code FROM areas")).scalars().all()
    assert len(codes) == len(set(codes))
    copies = [c for c in codes if not c.startswith(DISTRICT_CODE)]
    assert len(copies) == 2 * 749 and all(c.startswith(scale.PREFIX) for c in copies)
    # GB/T 2260 province codes run from 11 to 82: 99 is none of them.
    assert not 11 <= int(scale.PREFIX) <= 82
    unique_refs = session.execute(text("""
        SELECT (SELECT count(*) - count(DISTINCT code) FROM area_groups)
             + (SELECT count(*) - count(DISTINCT callsign) FROM units)
             + (SELECT count(*) - count(DISTINCT device_id) FROM units)""")).scalar()
    assert unique_refs == 0


def test_copies_meet_neither_each_other_nor_the_county(session, copied):
    meeting = session.execute(text("""
        SELECT a.code, b.code FROM areas a JOIN areas b ON a.code < b.code AND ST_Intersects(a.geom, b.geom)
         WHERE a.level = 1 AND b.level = 1""")).all()
    assert meeting == []
    # Grids of different districts never meet either, and a copy's grids stay inside their district.
    stray = session.execute(text("""
        SELECT count(*) FROM areas g JOIN areas d ON d.level = 1 AND d.code = left(g.code, 6)
         WHERE g.level = 4 AND NOT ST_Covers(ST_Buffer(d.geom, 1e-9), g.geom)""")).scalar()
    assert stray == 0


def test_the_real_demo_is_untouched(session, copied):
    before, _ = copied
    assert fingerprint(session) == before
    scale.remove(session)
    assert fingerprint(session) == before


def test_scale_zero_removes_every_copy(session, copied):
    removed = scale.remove(session)
    assert removed["areas"] == 2 * 749 and removed["incidents"] == 40_000
    assert scale.present(session) == []
    left = session.execute(text("""
        SELECT (SELECT count(*) FROM areas WHERE code LIKE '99%')
             + (SELECT count(*) FROM area_versions WHERE code LIKE '99%')
             + (SELECT count(*) FROM incidents WHERE district_code LIKE '99%')
             + (SELECT count(*) FROM units WHERE district_code LIKE '99%')
             + (SELECT count(*) FROM roads WHERE district_code LIKE '99%')
             + (SELECT count(*) FROM area_groups WHERE code LIKE '99%')
             + (SELECT count(*) FROM entities WHERE attrs ? 'scale_copy')""")).scalar()
    assert left == 0
    assert scale.replicate(session, 0)["copies added"] == 0


def test_running_twice_does_not_double_them(session, copied):
    first = {k: counts(session, scale.copy_code(k)) for k in (1, 2)}
    again = scale.replicate(session, 2)
    assert again == {"copies removed": 0, "copies kept": 2, "copies added": 0}
    assert {k: counts(session, scale.copy_code(k)) for k in (1, 2)} == first
    # Fewer copies asked for: the ones above go, the rest stay as they were.
    fewer = scale.replicate(session, 1)
    assert fewer["copies removed"] == 1 and scale.present(session) == [1]
    assert counts(session, scale.copy_code(1)) == first[1]


def test_bad_numbers_and_occupied_places_are_refused(session, demo):
    for bad in (-1, 10_000, "3", True):
        with pytest.raises(InvalidInput) as err:
            scale.replicate(session, bad)
        assert err.value.field == "scale"
    # Another jurisdiction east of the county, where copy 1 would go: nothing is written.
    session.execute(text("""
        INSERT INTO areas (code, name, level, geom) SELECT '411104', '召陵区', 1,
               ST_Multi(ST_Translate(ST_Envelope(geom), ST_XMax(geom) - ST_XMin(geom) + 0.05, 0))
          FROM areas WHERE code = :c"""), {"c": DISTRICT_CODE})
    with pytest.raises(Conflict):
        scale.replicate(session, 1)


def test_the_command_refuses_a_negative_scale(engine):
    from web.cli import main

    result = CliRunner().invoke(main, ["demo", "--scale", "-1"])
    assert result.exit_code == 2 and "--scale" in result.output
