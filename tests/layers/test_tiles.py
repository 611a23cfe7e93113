"""Vector tiles on the `tiny` region, decoded: layers and fields by zoom, the audience's scope and
generalisation, counts below the point zoom, and the cache — what an edit expires is exactly the
cached tiles its geometry meets, in the edit's own transaction."""
from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from geo import audit
from geo.boundaries import changes
from geo.policy import Audience, Scope
from layers import tile_queries, tiles
from layers.selection import TZ
from tests import mvt
from tests.layers.incidents import add_incident

NOW = datetime(2026, 11, 20, 12, tzinfo=TZ)
SECRET = (10.0012345, 10.0023456)      # a sensitive incident's exact point, in TZ1A1


def tile(session, layer, z, lon, lat, audience, now=NOW):
    x, y = mvt.tile_of(z, lon, lat)
    return mvt.decode(tiles.serve(session, layer, z, x, y, audience, now).body), (z, x, y)


def near(points, lon, lat, metres):
    return [p for p in points if math.hypot((p[0] - lon) * 111320 * math.cos(math.radians(lat)),
                                            (p[1] - lat) * 110540) < metres]


@pytest.fixture()
def audiences(session, tiny):
    return {"admin": Audience.system(),
            "analyst": Audience("analyst", Scope.of_codes(session, ["TZ"])),
            "dispatcher": Audience("dispatcher", Scope.of_codes(session, ["TZ"])),
            "township": Audience("analyst", Scope.of_codes(session, ["TZ1"]))}


def test_areas_by_zoom_with_their_fields_and_labels(session, audiences):
    low, _ = tile(session, "areas", 9, 10.02, 10.02, audiences["admin"])
    assert {f.properties["level"] for f in low["areas"].features if f.properties["code"].startswith("TZ")} == {1, 2}
    high, _ = tile(session, "areas", 13, 10.005, 10.01, audiences["admin"])
    feature = next(f for f in high["areas"].features if f.properties["code"] == "TZ1A1")
    assert feature.type == "Polygon"
    assert feature.properties == {"code": "TZ1A1", "name": "测试TZ1A1", "level": 4, "parent_code": "TZ1A",
                                  "risk": "unknown"}
    assert {f.properties["level"] for f in high["areas"].features if f.properties["code"].startswith("TZ")} == {1, 2, 3, 4}
    labels = {f.properties["code"]: f for f in high["area_labels"].features}
    assert labels["TZ1A1"].type == "Point"


def test_a_grid_carries_its_risk_colour_in_force(session, audiences):
    grid = session.execute(text("SELECT id FROM areas WHERE code = 'TZ1A1'")).scalar()
    session.execute(text("INSERT INTO risk_levels (area_id, period_start, period_end, score, level, "
                         "override_level, override_until) VALUES (:g, '2026-11-16', '2026-11-22', 3, 'yellow', "
                         "'red', :until)"), {"g": grid, "until": NOW + timedelta(days=2)})
    decoded, _ = tile(session, "risk", 13, 10.005, 10.005, audiences["analyst"])
    props = {f.properties["code"]: f.properties for f in decoded["risk"].features}
    assert props["TZ1A1"] == {"code": "TZ1A1", "name": "测试TZ1A1", "risk": "red", "computed": "yellow",
                              "override": True, "period_start": "2026-11-16"}
    assert props["TZ1A2"]["risk"] == "unknown"
    # The override lapses on its own: the cached tile says until when it holds.
    expires = session.execute(text("SELECT expires_at FROM tile_cache WHERE layer = 'risk'")).scalar()
    assert expires == NOW + timedelta(days=2)
    later, _ = tile(session, "risk", 13, 10.005, 10.005, audiences["analyst"], now=NOW + timedelta(days=3))
    assert {f.properties["code"]: f.properties["risk"] for f in later["risk"].features}["TZ1A1"] == "yellow"


def test_a_township_user_gets_nothing_of_another_township(session, audiences):
    add_incident(session, 10.035, 10.035, occurred_at=NOW - timedelta(days=3))
    township = audiences["township"]
    for layer in ("risk", "incidents"):
        decoded, _ = tile(session, layer, 15, 10.035, 10.035, township)
        assert decoded == {}, layer
    areas_tile, _ = tile(session, "areas", 15, 10.035, 10.035, township)
    # Only the district both townships lie in, the outline their own map is drawn in.
    assert {f.properties["code"] for f in areas_tile["areas"].features} == {"TZ"}
    own, _ = tile(session, "incidents", 15, 10.015, 10.005, township)
    assert own == {} or "incidents" in own
    assert tile(session, "incidents", 15, 10.035, 10.035, audiences["analyst"])[0]["incidents"].features


def test_a_sensitive_incident_is_exact_only_for_the_roles_that_act_on_it(session, audiences):
    add_incident(session, *SECRET, occurred_at=NOW - timedelta(days=2), sensitive=True)
    add_incident(session, 10.003, 10.004, occurred_at=NOW - timedelta(days=2))
    label = session.execute(text("SELECT ST_X(label_point), ST_Y(label_point) FROM areas "
                                 "WHERE code = 'TZ1A1'")).one()
    for z in (14, 16):
        analyst, where = tile(session, "incidents", z, *SECRET, audiences["analyst"])
        assert near(mvt.points(analyst, *where), *SECRET, 5) == [], z
        shown, where = tile(session, "incidents", z, *label, audiences["analyst"])
        assert near(mvt.points(shown, *where), *label, 2), z        # at its grid's label point
        dispatcher, where = tile(session, "incidents", z, *SECRET, audiences["dispatcher"])
        assert near(mvt.points(dispatcher, *where), *SECRET, 1), z
        feature = next(f for f in dispatcher["incidents"].features if f.properties["sensitive"])
        assert set(feature.properties) == {"id", "category", "severity", "status", "occurred", "sensitive",
                                           "generalised"}
    # The analyst's and the dispatcher's tiles are different cache entries.
    classes = set(session.execute(text("SELECT audience FROM tile_cache WHERE layer = 'incidents'")).scalars())
    assert classes == {"generalised:TZ", "exact:TZ"}


def test_below_the_point_zoom_a_tile_holds_counts_per_cell(session, audiences):
    for i in range(7):
        add_incident(session, 10.0051 + 0.0001 * i, 10.0051, occurred_at=NOW - timedelta(days=i + 1),
                     category="petition" if i < 3 else "dispute", status="reported" if i < 2 else "closed")
    add_incident(session, *SECRET, occurred_at=NOW - timedelta(days=1), sensitive=True)
    for who in ("dispatcher", "analyst"):
        decoded, where = tile(session, "incidents", 12, 10.005, 10.005, audiences[who])
        assert "incidents" not in decoded
        cells = decoded["incident_cells"].features
        assert sum(c.properties["count"] for c in cells) == 8
        assert sum(c.properties["petition"] for c in cells) == 3
        assert sum(c.properties["open"] for c in cells) == 2
        assert all(c.type == "Polygon" for c in cells)
    # Cells as small as a 250 m hexagon at least for the analyst; 1/16 of the tile otherwise.
    x, y = mvt.tile_of(13, 10.005, 10.005)
    assert tile_queries.cell_splits(tiles.TileAddress(13, x, y), audiences["dispatcher"]) == 4
    assert tile_queries.cell_splits(tiles.TileAddress(13, x, y), audiences["analyst"]) == 3


def test_layers_below_their_zoom_are_empty_and_bad_addresses_name_the_field(session, audiences):
    assert tiles.serve(session, "risk", 5, 16, 15, audiences["admin"], NOW).body == b""
    from geo.errors import InvalidInput, NotFound
    for (z, x, y), name in (((17, 0, 0), "z"), ((3, 8, 0), "x"), ((3, 0, -1), "y")):
        with pytest.raises(InvalidInput) as caught:
            tiles.serve(session, "areas", z, x, y, audiences["admin"], NOW)
        assert caught.value.field == name
    with pytest.raises(NotFound):
        tiles.serve(session, "hotspots", 1, 0, 0, audiences["admin"], NOW)


def test_tilejson_describes_the_layer_for_the_caller(session, audiences):
    doc = tiles.tilejson(session, "incidents", audiences["township"], "http://h/tiles/incidents/{z}/{x}/{y}.mvt")
    assert doc["tilejson"] == "3.0.0" and doc["tiles"] == ["http://h/tiles/incidents/{z}/{x}/{y}.mvt"]
    assert doc["bounds"] == pytest.approx([10.0, 10.0, 10.02, 10.04])          # TZ1, the caller's area
    layers = {v["id"]: v for v in doc["vector_layers"]}
    assert layers["incidents"]["minzoom"] == 14 and "category" in layers["incidents"]["fields"]
    assert layers["incident_cells"]["maxzoom"] == 13


# -- the cache and its expiry ------------------------------------------------------------------------
def _cache_all(session, audience, layers=("areas", "risk", "incidents"), zooms=range(10, 17)):
    """Build and cache every tile of these layers over the tiny region."""
    for layer in layers:
        for z in zooms:
            x0, y1 = mvt.tile_of(z, 9.999, 9.999)
            x1, y0 = mvt.tile_of(z, 10.041, 10.041)
            for x in range(x0, x1 + 1):
                for y in range(y0, y1 + 1):
                    tiles.serve(session, layer, z, x, y, audience, NOW)


def _cached(session) -> set:
    return set(session.execute(text("SELECT layer, z, x, y, audience FROM tile_cache")).all())


def _meeting(session, rows, wkt: str) -> set:
    """The cached tiles (from their addresses alone) whose buffered envelope meets a geometry."""
    return {r for r in rows if session.execute(text(
        "SELECT ST_Intersects(ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => 0.015625), 4326), "
        "ST_GeomFromText(:w, 4326))"), {"z": r[1], "x": r[2], "y": r[3], "w": wkt}).scalar()}


def test_an_incident_expires_exactly_the_incident_tiles_it_meets(session, audiences):
    _cache_all(session, audiences["analyst"])
    before = _cached(session)
    assert len(before) > 100
    point = "POINT(10.0061 10.0173)"
    add_incident(session, 10.0061, 10.0173, occurred_at=NOW - timedelta(hours=1))
    expired = before - _cached(session)
    incident_tiles = {r for r in before if r[0] == "incidents"}
    assert expired == _meeting(session, incident_tiles, point)
    assert len(expired) >= 7                               # one per zoom at least


def test_a_sensitive_incident_also_expires_where_it_is_shown(session, audiences):
    _cache_all(session, audiences["analyst"], layers=("incidents",), zooms=range(14, 17))
    before = _cached(session)
    add_incident(session, *SECRET, occurred_at=NOW - timedelta(hours=1), sensitive=True)
    label = session.execute(text("SELECT ST_AsText(label_point) FROM areas WHERE code = 'TZ1A1'")).scalar()
    expired = before - _cached(session)
    assert expired == _meeting(session, before, f"GEOMETRYCOLLECTION(POINT({SECRET[0]} {SECRET[1]}), {label})")


def test_a_boundary_change_expires_exactly_the_tiles_meeting_old_and_new_boundaries(session, audiences):
    _cache_all(session, audiences["analyst"])
    before = _cached(session)
    shapes = dict(session.execute(text("SELECT code, ST_AsText(geom) FROM areas WHERE code IN ('TZ1A1', 'TZ1A2')")).all())
    square = {"type": "Polygon", "coordinates": [[[10.0095, 10.005], [10.0105, 10.005], [10.0105, 10.006],
                                                  [10.0095, 10.006], [10.0095, 10.005]]]}
    versions = dict(session.execute(text("SELECT code, version FROM areas WHERE code IN ('TZ1A1', 'TZ1A2')")).all())
    changes.apply(session, "transfer", areas=["TZ1A1", "TZ1A2"], geometry=square, base_versions=versions,
                  reason="测试", actor=audit.Actor("test"), scope=Scope.all())
    after = dict(session.execute(text("SELECT code, ST_AsText(geom) FROM areas WHERE code IN ('TZ1A1', 'TZ1A2')")).all())
    changed = f"GEOMETRYCOLLECTION({shapes['TZ1A1']}, {shapes['TZ1A2']}, {after['TZ1A1']}, {after['TZ1A2']})"
    expired = before - _cached(session)
    layers_met = {r for r in before if r[0] in ("areas", "risk", "incidents")}
    assert expired == _meeting(session, layers_met, changed)
    assert {r for r in before if r[0] == "areas"} - expired     # tiles elsewhere stay


def test_a_risk_level_expires_the_tiles_of_its_grid_and_nothing_else(session, audiences):
    _cache_all(session, audiences["analyst"], layers=("areas", "risk", "incidents"), zooms=range(12, 15))
    before = _cached(session)
    grid = session.execute(text("SELECT id, ST_AsText(geom) FROM areas WHERE code = 'TZ2B2'")).one()
    session.execute(text("INSERT INTO risk_levels (area_id, period_start, period_end, score, level) "
                         "VALUES (:g, '2026-11-16', '2026-11-22', 9, 'orange')"), {"g": grid.id})
    expired = before - _cached(session)
    assert expired == _meeting(session, {r for r in before if r[0] in ("areas", "risk")}, grid[1])
    # A new assessment that only changes the score expires nothing: no tile shows it.
    now_cached = _cached(session)
    session.execute(text("UPDATE risk_levels SET score = 10 WHERE area_id = :g"), {"g": grid.id})
    assert _cached(session) == now_cached


def test_a_tile_read_while_a_writer_is_in_flight_is_served_but_not_stored(session, audiences, engine):
    with engine.connect() as writer:
        writer.execute(text("SELECT tile_expiry_lock(ARRAY['incidents'])"))
        result = tiles.serve(session, "incidents", 14, *mvt.tile_of(14, 10.005, 10.005), audiences["admin"], NOW)
        assert result.cache == "bypass"
        writer.rollback()
    assert session.execute(text("SELECT count(*) FROM tile_cache WHERE layer = 'incidents'")).scalar() == 0
    again = tiles.serve(session, "incidents", 14, *mvt.tile_of(14, 10.005, 10.005), audiences["admin"], NOW)
    assert again.cache == "miss"
    assert tiles.serve(session, "incidents", 14, *mvt.tile_of(14, 10.005, 10.005), audiences["admin"],
                       NOW).cache == "hit"
