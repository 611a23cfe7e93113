"""Incident files (CSV and XLSX) and the Chicago acceptance test.
"""
from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from geo import crs
from geo.errors import InvalidInput
from geo.incidents import (
    tabular,
)
from tests.geo.incidents_common import ACTOR, SHANGHAI, count
from tests.incident_cases import BAD_REPORTS, report

# -- import ------------------------------------------------------------------------------------
CSV_HEADERS = {"external_id": "编号", "occurred_at": "发生时间", "category": "事件类型",
               "subtype": "子类", "severity": "等级", "lon": "经度", "lat": "纬度", "address": "地址",
               "description": "事件描述", "reporter_name": "反映人", "reporter_phone": "联系电话",
               "sensitive": "敏感"}


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(CSV_HEADERS.values()))
        w.writeheader()
        for r in rows:
            w.writerow({CSV_HEADERS[k]: v for k, v in r.items() if k in CSV_HEADERS})
    return path


def write_xlsx(path: Path, rows: list[dict]) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(list(CSV_HEADERS.values()))
    for r in rows:
        sheet.append([r.get(k) for k in CSV_HEADERS])
    book.save(path)
    return path


def good_rows(n: int) -> list[dict]:
    return [report({"external_id": f"R{k}", "lon": 10.001 + 0.001 * k,
                    "occurred_at": "2026-10-01 09:30"}) for k in range(n)]


def test_csv_with_chinese_headers_imports(session, places, tmp_path):
    rows = good_rows(3) + [report({"external_id": "A1", "lon": None, "lat": None,
                                   "address": "河东街道翠湖路12号晨曦花园3号楼"})]
    result = tabular.import_file(session, ACTOR, write_csv(tmp_path / "事件.csv", rows))
    assert result.rejected == [] and result.imported == 4 and result.written
    assert result.columns["occurred_at"] == "发生时间" and result.columns["lon"] == "经度"
    assert result.geocode_levels == {"coordinates": 3, "building": 1}
    got = session.execute(text("SELECT external_id, a.code, occurred_at FROM incidents i "
                               "JOIN areas a ON a.id = i.grid_id WHERE source = 'import:事件.csv' "
                               "ORDER BY external_id")).all()
    assert [(e, c) for e, c, _ in got] == [("A1", "TZ1A2"), ("R0", "TZ1A1"), ("R1", "TZ1A1"), ("R2", "TZ1A1")]
    assert got[1][2] == datetime(2026, 10, 1, 9, 30, tzinfo=SHANGHAI)  # local time by default
    assert session.execute(text("SELECT count(*) FROM incident_events e JOIN incidents i ON "
                                "i.id = e.incident_id WHERE i.source = 'import:事件.csv'")).scalar() == 4


def test_xlsx_with_bad_rows_is_refused_with_a_line_by_line_report(session, places, tmp_path):
    rows = good_rows(2) + [report({"external_id": "B1", "category": "天气"}),
                           report({"external_id": "B2", "lat": 95}),
                           report({"external_id": "B3", "lon": None, "lat": None, "address": "火星基地一号"}),
                           report({"external_id": "R0"})]
    path = write_xlsx(tmp_path / "事件.xlsx", rows)
    before = {t: count(session, t) for t in ("incidents", "incident_events", "audit_log")}
    result = tabular.import_file(session, ACTOR, path)
    assert [(r["line"], r["field"]) for r in result.rejected] == [
        (4, "category"), (5, "lat"), (6, "address"), (7, "external_id")]
    assert "repeats line 2" in result.rejected[3]["reason"]
    assert result.imported == 0 and not result.written
    assert {t: count(session, t) for t in before} == before          # nothing written at all
    partial = tabular.import_file(session, ACTOR, path, skip_bad=True)
    assert partial.imported == 2 and len(partial.rejected) == 4


# A file's coordinate system is a command option, not a row value: those cases are the option's.
ROW_CASES = [c for c in BAD_REPORTS if c[3]]


@pytest.mark.parametrize("name,changes,field,_csv", ROW_CASES, ids=[c[0] for c in ROW_CASES])
def test_bad_rows_are_reported_with_line_and_field(session, places, tmp_path, name, changes, field, _csv):
    rows = good_rows(1) + [report({**changes, "external_id": "BAD"})]
    result = tabular.import_file(session, ACTOR, write_csv(tmp_path / "bad.csv", rows))
    assert [(r["line"], r["field"]) for r in result.rejected] == [(3, field)]
    assert result.imported == 0


def test_dry_run_reports_and_writes_nothing(session, places, tmp_path):
    before = count(session, "incidents"), count(session, "audit_log")
    result = tabular.import_file(session, ACTOR, write_csv(tmp_path / "a.csv", good_rows(3)), dry_run=True)
    assert result.imported == 3 and result.dry_run and not result.written
    assert (count(session, "incidents"), count(session, "audit_log")) == before


def test_importing_the_same_file_twice_rejects_every_row(session, places, tmp_path):
    path = write_csv(tmp_path / "a.csv", good_rows(2))
    tabular.import_file(session, ACTOR, path)
    again = tabular.import_file(session, ACTOR, path)
    assert [r["field"] for r in again.rejected] == ["external_id", "external_id"]
    assert "already imported as incident" in again.rejected[0]["reason"]


def test_one_category_for_a_file_turns_its_own_into_subtypes(session, places, tmp_path):
    path = tmp_path / "police.csv"
    path.write_text("Case,When,Primary Type,X,Y\nC1,2026-10-01 08:00,THEFT,10.005,10.005\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as err:
        tabular.import_file(session, ACTOR, path, mapping={"lon": "X", "lat": "Y"})
    assert err.value.field == "map" and "occurred_at" in err.value.message
    result = tabular.import_file(session, ACTOR, path, category="案件",
                                 mapping={"occurred_at": "When", "lon": "X", "lat": "Y",
                                          "external_id": "Case"})
    assert result.imported == 1
    row = session.execute(text("SELECT category, subtype, attrs FROM incidents WHERE external_id = 'C1'")).one()
    assert row[0] == "criminal" and row[1] == "THEFT" and row[2]["import"]["line"] == 2


@pytest.mark.parametrize("kw,field", [
    ({"mapping": {"colour": "地址"}}, "map"), ({"mapping": {"address": "Nowhere"}}, "map"),
    ({"category": "weather"}, "category"), ({"crs": "mars"}, "crs"), ({"tz": "Mars/Base"}, "timezone"),
])
def test_bad_import_options(session, places, tmp_path, kw, field):
    with pytest.raises(InvalidInput) as err:
        tabular.import_file(session, ACTOR, write_csv(tmp_path / "a.csv", good_rows(1)), **kw)
    assert err.value.field == field


def test_not_a_table(session, places, tmp_path):
    (tmp_path / "a.json").write_text("{}")
    with pytest.raises(InvalidInput):
        tabular.import_file(session, ACTOR, tmp_path / "a.json")
    (tmp_path / "b.xlsx").write_bytes(b"not a zip")
    with pytest.raises(InvalidInput):
        tabular.import_file(session, ACTOR, tmp_path / "b.xlsx")


def test_gcj02_file_with_a_time_format(session, places, tmp_path, demo):
    lon, lat = session.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM places WHERE kind = 'door' "
                                    "ORDER BY id LIMIT 1")).one()
    glon, glat = crs.wgs84_to_gcj02(lon, lat)
    path = tmp_path / "gaode.csv"
    path.write_text(f"时间,类型,经度,纬度\n01/10/2026 08:30,隐患,{glon},{glat}\n", encoding="utf-8")
    result = tabular.import_file(session, ACTOR, path, crs="gcj02", time_format="%d/%m/%Y %H:%M")
    assert result.imported == 1
    got = session.execute(text("SELECT ST_X(geom), ST_Y(geom), occurred_at FROM incidents "
                               "WHERE id = :i"), {"i": result.ids[0]}).one()
    assert abs(got[0] - lon) < 1e-7 and abs(got[1] - lat) < 1e-7
    assert got[2] == datetime(2026, 10, 1, 8, 30, tzinfo=SHANGHAI)


# -- the Chicago acceptance test ----------------------------------------------------------------
@pytest.mark.realdata
def test_chicago_crimes_land_in_the_beat_their_beat_column_names(session, realdata, tmp_path):
    import json

    from shapely.geometry import shape

    beats = json.loads((realdata / "chicago" / "police_beats.geojson").read_text())
    session.execute(text("INSERT INTO areas (code, name, level, geom) VALUES ('CHI', 'Chicago', 1, "
                         "ST_Multi(ST_MakeEnvelope(-88.5, 41.5, -87.3, 42.2, 4326)))"))
    rows = []
    for f in beats["features"]:
        beat = str(f["properties"]["BEAT_NUM"]).zfill(4)
        rows.append({"code": f"CHI-{beat}", "name": f"Beat {beat}", "wkt": shape(f["geometry"]).wkt})
    # A beat may come in several features (its parts): one area per beat, their union.
    session.execute(text(
        "INSERT INTO areas (code, name, level, parent_id, geom) "
        "SELECT r.code, min(r.name), 2, (SELECT id FROM areas WHERE code = 'CHI'), "
        "ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_Union(ST_GeomFromText(r.wkt, 4326))), 3)) "
        "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(code text, name text, wkt text) "
        "GROUP BY r.code"),
        {"rows": json.dumps(rows)})
    # The jurisdiction is exactly the union of its beats: a point in no beat is outside it.
    session.execute(text("UPDATE areas SET geom = (SELECT ST_Multi(ST_Union(c.geom)) FROM areas c "
                         "WHERE c.parent_id = areas.id) WHERE code = 'CHI'"))
    source = realdata / "chicago" / "crimes_sample_2012_2016.csv"
    result = tabular.import_file(
        session, ACTOR, source, category="criminal", tz="America/Chicago",
        mapping={"external_id": "ID", "occurred_at": "Date", "lon": "Longitude", "lat": "Latitude",
                 "description": "Description"})
    assert result.rejected == [] and result.imported == 5000
    agreement = session.execute(text("""
        SELECT avg(CASE WHEN a.code = 'CHI-' || lpad(i.attrs->'row'->>'Beat', 4, '0') THEN 1.0 ELSE 0 END),
               count(*) FILTER (WHERE i.subtype = 'THEFT'), count(*) FILTER (WHERE i.outside_jurisdiction)
          FROM incidents i LEFT JOIN areas a ON a.id = i.grid_id
         WHERE i.source = 'import:crimes_sample_2012_2016.csv'""")).one()
    print(f"\nChicago: {float(agreement[0]):.1%} of 5,000 incidents land in the beat their Beat column "
          f"names; {agreement[2]} fall in no beat")
    assert float(agreement[0]) >= 0.90
    assert agreement[1] == 1153                      # Primary Type became the subtype
    assert agreement[2] < 50                         # ~0.3 % in no beat: flagged, not dropped
