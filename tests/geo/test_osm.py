"""The basemap from a real OpenStreetMap extract (Liechtenstein, 2013): what the import keeps, a
basemap tile over Vaduz with roads and Chinese labels, a re-import, and the command line."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from geo import osm
from geo.errors import InvalidInput
from geo.policy import Audience
from layers import tiles
from tests import mvt
from web.cli import main

pytestmark = pytest.mark.realdata
VADUZ = (9.5227962, 47.1392862)
EXPECTED = {"buildings": 3723, "landuse": 309, "places": 214, "railways": 34, "roads": 2748, "water": 101}


@pytest.fixture()
def extract(realdata):
    return realdata / "osm" / "liechtenstein-2013-08-03.osm.pbf"


def test_the_import_keeps_roads_railways_water_land_use_buildings_and_places(session, extract):
    report = osm.load(session, extract)
    assert report.counts == EXPECTED
    classes = dict(session.execute(text("SELECT class, count(*) FROM basemap_features "
                                        "WHERE layer = 'roads' GROUP BY class")).all())
    assert classes == {"primary": 81, "secondary": 91, "tertiary": 33, "minor": 1026, "service": 357, "path": 1160}
    town = session.execute(text("SELECT name, minzoom, ST_X(geom), ST_Y(geom) FROM basemap_features "
                                "WHERE layer = 'places' AND class = 'town'")).one()
    assert town[:2] == ("瓦都茲", 8) and (town[2], town[3]) == pytest.approx(VADUZ)   # name:zh before name
    # Polygons get their zoom from their area on the ground; every geometry stored is valid.
    assert session.execute(text("SELECT count(*) FROM basemap_features WHERE NOT ST_IsValid(geom)")).scalar() == 0
    assert session.execute(text("SELECT min(minzoom) FROM basemap_features WHERE layer = 'buildings'")).scalar() == 14
    # Importing the same extract again replaces it: nothing twice.
    again = osm.load(session, extract)
    assert again.replaced == sum(EXPECTED.values()) and again.counts == EXPECTED


def test_a_basemap_tile_over_vaduz_has_roads_and_chinese_labels(session, extract):
    osm.load(session, extract)
    x, y = mvt.tile_of(14, *VADUZ)
    decoded = mvt.decode(tiles.serve(session, "basemap", 14, x, y, Audience.public()).body)
    assert {"roads", "buildings", "places"} <= set(decoded)
    roads = decoded["roads"].features
    assert len(roads) > 50 and all(f.type == "LineString" for f in roads)
    assert {"primary", "minor"} <= {f.properties["class"] for f in roads}
    assert any(f.properties.get("name") for f in roads)
    places = {f.properties.get("name"): f for f in decoded["places"].features}
    assert "瓦都茲" in places and places["瓦都茲"].properties["class"] == "town"
    assert all(f.type == "Polygon" for f in decoded["buildings"].features)
    # At zoom 9 only what a regional map shows: no building, no footpath.
    x9, y9 = mvt.tile_of(9, *VADUZ)
    low = mvt.decode(tiles.serve(session, "basemap", 9, x9, y9, Audience.public()).body)
    assert "buildings" not in low and {f.properties["class"] for f in low["roads"].features} <= {"primary", "secondary"}


def test_the_other_tags_and_the_name_shown():
    extra = osm.tags('"name:zh"=>"瓦都茲","note"=>"a \\"quoted\\" word","capital"=>"yes"')
    assert extra == {"name:zh": "瓦都茲", "note": 'a "quoted" word', "capital": "yes"}
    assert osm.label("Vaduz", extra) == "瓦都茲"
    assert osm.label("Vaduz", {"name:zh-Hans": "瓦杜兹"}) == "瓦杜兹"
    assert osm.label("Vaduz", {}) == "Vaduz"
    assert osm.classify_line({"highway": "trunk_link"}) == ("roads", "trunk", 6)
    assert osm.classify_line({"highway": "proposed"}) is None
    assert osm.classify_polygon({"building": "no", "landuse": "forest"}, {}) == ("landuse", "forest")
    assert osm.classify_polygon({}, {"water": "lake"}) == ("water", "lake")


def test_bad_paths_name_the_field(session, tmp_path):
    for path in (tmp_path / "missing.osm.pbf", tmp_path):
        with pytest.raises(InvalidInput) as caught:
            osm.load(session, path)
        assert caught.value.field == "path"
    broken = tmp_path / "broken.osm.pbf"
    broken.write_bytes(b"not a protobuf")
    with pytest.raises(InvalidInput, match="cannot read"):
        osm.load(session, broken)


def test_the_command_imports_and_reports_each_layer(engine, extract):
    runner = CliRunner()
    try:
        result = runner.invoke(main, ["basemap", "import", str(extract)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert lines[0].startswith("liechtenstein-2013-08-03.osm.pbf: 7,129 features")
        assert "  roads          2,748" in lines
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM basemap_features WHERE source = :s"), {"s": extract.name})
    missing = runner.invoke(main, ["basemap", "import", "nowhere.osm.pbf"])
    assert missing.exit_code == 1 and missing.output.strip() == "error (path): no such file: nowhere.osm.pbf"
