"""OGC API – Features at /ogc as a client meets it: the QGIS request sequence with every link
followed, formats and media types, paging, authentication and roles, errors naming the parameter,
and HTML pages that keep to the Content-Security-Policy (no inline script or style)."""
from __future__ import annotations

import base64
import re

import pytest
from sqlalchemy import text

from geo import audit, users
from tests.web.ogc_common import get_json, token

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
QGIS = {"Accept": "application/json"}


@pytest.fixture()
def reader(session, make_user, tiny):
    """A dispatcher over the whole tiny region (the demo may share the database)."""
    return token(session, make_user, "dispatcher", "TZ")


def _links(body) -> list[dict]:
    """Every link of an answer that is a URL (a templated one is a pattern, followed on its own)."""
    found = list(body.get("links", []))
    for nested in body.get("collections", []):
        found.extend(nested.get("links", []))
    return [link for link in found if not link.get("templated")]


def test_a_qgis_session_on_the_demo_follows_every_link(client, session, make_user, demo):
    headers = {**token(session, make_user, "admin"), **QGIS}
    landing = get_json(client, "/ogc", headers)
    rels = {link["rel"]: link for link in landing["links"]}
    assert {"self", "alternate", "service-desc", "service-doc", "conformance", "data"} <= set(rels)
    conformance = get_json(client, rels["conformance"]["href"], headers)
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conformance["conformsTo"]
    api = client.get(rels["service-desc"]["href"], headers=headers)
    assert api.status_code == 200 and api.headers["Content-Type"].startswith("application/vnd.oai.openapi+json")
    assert api.get_json()["openapi"].startswith("3.0")
    listing = get_json(client, rels["data"]["href"], headers)
    grids = next(c for c in listing["collections"] if c["id"] == "grids")
    collection = get_json(client, next(link["href"] for link in grids["links"] if link["rel"] == "self"), headers)
    minx, miny, maxx, maxy = collection["extent"]["spatial"]["bbox"][0]
    items_link = next(link for link in collection["links"] if link["rel"] == "items" and link["type"] == "application/geo+json")
    box = f"{minx},{miny},{(minx + maxx) / 2},{(miny + maxy) / 2}"
    page = client.get(f"{items_link['href']}&bbox={box}&limit=50", headers={**headers, "Accept":
                                                                          "application/geo+json"})
    assert page.status_code == 200 and page.mimetype == "application/geo+json"
    body = page.get_json()
    expected = session.execute(text("SELECT count(*) FROM areas WHERE level = 4 AND ST_Intersects("
                                    "geom, ST_MakeEnvelope(:a, :b, :c, :d, 4326))"),
                               dict(zip("abcd", map(float, box.split(","))))).scalar()
    assert body["numberMatched"] == expected > 50 and body["numberReturned"] == 50
    # The vector tile layers: an XYZ template a GIS client fills in, and its TileJSON.
    templates = [link for link in landing["links"] if link.get("templated")]
    assert {"areas", "incidents", "basemap"} <= {link["title"].split()[2] for link in templates}
    for link in templates:
        tile = client.get(link["href"].format(z=12, x=3372, y=1642), headers=headers)
        assert tile.status_code in (200, 204) and tile.mimetype == link["type"], link
    tilejson = [link for link in landing["links"] if link["rel"] == "describedby"]
    assert len(tilejson) == len(templates)
    # Every link of every answer resolves, in the media type it announces.
    for source in (landing, conformance, listing, collection, body):
        for link in _links(source):
            response = client.get(link["href"], headers=headers)
            assert response.status_code == 200, link
            assert response.mimetype == link["type"].split(";")[0], link
    following = get_json(client, next(link["href"] for link in body["links"] if link["rel"] == "next"), headers)
    assert not {f["id"] for f in following["features"]} & {f["id"] for f in body["features"]}


def test_pages_of_a_collection_add_up_and_link_both_ways(client, reader, tiny):
    seen, url, pages = [], "/ogc/collections/grids/items?limit=3", 0
    while url:
        body = get_json(client, url, reader)
        assert body["numberMatched"] == 8 and body["numberReturned"] == len(body["features"]) <= 3
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", body["timeStamp"])
        rels = {link["rel"]: link["href"] for link in body["links"]}
        assert ("prev" in rels) == (pages > 0)
        seen.extend(f["id"] for f in body["features"])
        url, pages = rels.get("next"), pages + 1
    assert pages == 3 and len(set(seen)) == 8 == len(seen)
    assert seen == sorted(seen)
    # A limit above the maximum is answered with the maximum, and the links carry it.
    body = get_json(client, "/ogc/collections/grids/items?limit=999999", reader)
    assert body["numberReturned"] == 8
    assert "limit=999999" in next(link["href"] for link in body["links"] if link["rel"] == "self")


def test_every_resource_answers_json_or_html_as_asked(client, reader, tiny):
    for path, media in (("/ogc", "application/json"), ("/ogc/conformance", "application/json"),
                        ("/ogc/api", "application/vnd.oai.openapi+json"),
                        ("/ogc/collections", "application/json"),
                        ("/ogc/collections/risk", "application/json"),
                        ("/ogc/collections/incidents/queryables", "application/schema+json"),
                        ("/ogc/collections/grids/items", "application/geo+json"),
                        ("/ogc/collections/grids/items/TZ1A1", "application/geo+json")):
        assert client.get(path, headers=reader).mimetype == media, path
        for html in (client.get(path + "?f=html", headers=reader), client.get(path, headers={**reader, **BROWSER})):
            assert html.status_code == 200 and html.mimetype == "text/html", path
            _obeys_csp(html)
        assert client.get(path + "?f=json", headers={**reader, **BROWSER}).mimetype == media
        assert client.get(path + "?f=xml", headers=reader).get_json()["error"]["field"] == "f"


def _obeys_csp(response) -> None:
    page = response.get_data(as_text=True)
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "style-src 'self'" in response.headers["Content-Security-Policy"]
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=|javascript:", page, re.IGNORECASE)
    for tag in re.findall(r"<script[^>]*>", page, re.IGNORECASE):
        assert "src=" in tag or 'type="application/json"' in tag, tag


def test_html_items_page_is_a_readable_table(client, reader, tiny):
    page = client.get("/ogc/collections/grids/items?f=html&limit=2&offset=2&lang=en",
                      headers=reader).get_data(as_text=True)
    assert "<table" in page and "TZ1A2" not in page and "TZ1B1" in page
    assert "Previous page" in page and "Next page" in page
    assert 'href="/ogc/collections/grids/items/TZ1B1?f=html"' in page


def test_anonymous_readers_are_refused_and_browsers_sent_to_log_in(client, tiny):
    for path in ("/ogc", "/ogc/collections", "/ogc/collections/grids/items",
                 "/ogc/collections/grids/items/TZ1A1"):
        response = client.get(path)
        assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"
        assert client.get(path, headers=BROWSER).status_code == 302
    # The description of the service is public, as /api/openapi.json is.
    assert client.get("/ogc/api").status_code == 200
    assert client.get("/ogc/conformance").status_code == 200


def test_a_token_is_also_taken_as_the_password_of_basic_authentication(client, session, make_user, tiny):
    name, _ = make_user("analyst", "TZ1")
    secret = users.create_token(session, audit.Actor("test"), name)

    def basic(user: str, password: str) -> dict:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    body = get_json(client, "/ogc/collections/grids/items", basic(name, secret))
    assert {f["id"] for f in body["features"]} == {"TZ1A1", "TZ1A2", "TZ1B1", "TZ1B2"}
    for wrong in (basic("someone_else", secret), basic(name, "correct horse 1"), basic(name, ""),
                  {"Authorization": "Basic not-base64!"}):
        assert client.get("/ogc/collections", headers=wrong).status_code == 401
    # Only for reading /ogc: never a login to the rest of the API.
    assert client.get("/api/areas", headers=basic(name, secret)).status_code == 401


def test_roles_per_collection(client, session, make_user, tiny):
    planner = token(session, make_user, "planner", "TZ1")
    listed = {c["id"] for c in get_json(client, "/ogc/collections", planner)["collections"]}
    assert listed == {"districts", "townships", "villages", "grids", "risk", "incidents", "entities"}
    for path in ("/ogc/collections/coverage", "/ogc/collections/coverage/items",
                 "/ogc/collections/coverage/queryables", "/ogc/collections/coverage/items/TZ1A1"):
        assert get_json(client, path, planner, 403)["error"]["field"] == "collectionId"
    dispatcher = token(session, make_user, "dispatcher", "TZ1")
    body = get_json(client, "/ogc/collections/coverage/items", dispatcher)
    assert body["numberMatched"] == 4 and body["features"][0]["properties"]["risk"]


def test_unknown_collections_and_features_are_404(client, reader, tiny):
    assert get_json(client, "/ogc/collections/nothing", reader, 404)["error"]["field"] == "collectionId"
    assert get_json(client, "/ogc/collections/nothing/items", reader, 404)["error"]["field"] == "collectionId"
    for path in ("/ogc/collections/grids/items/NOPE", "/ogc/collections/grids/items/TZ1",   # a township
                 "/ogc/collections/grids/items/%20TZ1A1", "/ogc/collections/incidents/items/abc",
                 "/ogc/collections/incidents/items/0", "/ogc/collections/incidents/items/99999999999999999999"):
        assert get_json(client, path, reader, 404)["error"]["field"] == "featureId", path


@pytest.mark.parametrize("query, field", [
    ("limit=0", "limit"), ("limit=ten", "limit"), ("offset=-1", "offset"), ("offset=1e3", "offset"),
    ("bbox=10,10,11", "bbox"), ("bbox=a,b,c,d", "bbox"), ("bbox=11,10,10,11", "bbox"),
    ("bbox=10,10,11,95", "bbox"), ("bbox=10,10,11,11&bbox-crs=EPSG:3857", "bbox-crs"),
    ("bbox-crs=EPSG:4326", "bbox-crs"), ("crs=EPSG:3857", "crs"), ("crs=wgs84", "crs"),
    ("datetime=yesterday", "datetime"), ("datetime=../..", "datetime"),
    ("datetime=2026-02-01/2026-01-01", "datetime"), ("filter-lang=ecql", "filter-lang"),
    ("filter=severity%20%3E", "filter"), ("filter=colour%20%3D%20'red'", "filter"),
    ("filter=description%20%3D%20'x'", "filter"), ("filter=severity%20%3D%20'high'", "filter"),
    ("filter=S_WITHIN(geometry,%20POINT(10%2010))", "filter"), ("filter-crs=EPSG:1", "filter-crs"),
    ("severity=high", "severity"), ("sensitive=maybe", "sensitive"), ("foo=1", "foo"),
])
def test_bad_values_are_400_naming_the_parameter(client, reader, tiny, query, field):
    body = get_json(client, f"/ogc/collections/incidents/items?{query}", reader, 400)
    assert body["error"]["field"] == field and body["error"]["message"]


def test_datetime_on_a_collection_without_time_is_refused(client, reader, tiny):
    body = get_json(client, "/ogc/collections/grids/items?datetime=2026-01-01", reader, 400)
    assert body["error"]["field"] == "datetime"
    assert get_json(client, "/ogc/collections/grids/items?hours=24", reader, 400)["error"]["field"] == "hours"
    assert get_json(client, "/ogc/collections/coverage/items?hours=99999", reader, 400)["error"]["field"] == "hours"


def test_the_api_document_describes_every_collection(client, tiny):
    doc = client.get("/ogc/api").get_json()
    assert doc["servers"][0]["url"] == "http://localhost/ogc"
    items = doc["paths"]["/collections/incidents/items"]["get"]["parameters"]
    names = {p.get("name") or p["$ref"].rsplit("/", 1)[1] for p in items}
    assert {"limit", "offset", "bbox", "bbox-crs", "crs", "datetime", "filter", "filter-lang",
            "category", "severity", "occurred_at"} <= names
    assert "address" not in names and "description" not in names
    grid_params = doc["paths"]["/collections/grids/items"]["get"]["parameters"]
    assert "datetime" not in {p.get("name") or p["$ref"].rsplit("/", 1)[1] for p in grid_params}
    limit = doc["components"]["parameters"]["limit"]["schema"]
    assert (limit["default"], limit["maximum"]) == (100, 1000)
    for cid in ("districts", "townships", "villages", "grids", "risk", "coverage", "incidents", "entities"):
        assert f"/collections/{cid}/items/{{featureId}}" in doc["paths"]


def test_the_api_document_is_well_formed_openapi_3_0(client, tiny):
    doc = client.get("/ogc/api").get_json()
    assert doc["openapi"] == "3.0.3" and doc["info"]["title"] and doc["info"]["version"]

    def resolve(node):
        if isinstance(node, dict) and "$ref" in node:
            target = doc
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return target
        return node

    for path, item in doc["paths"].items():
        declared = set(re.findall(r"\{(\w+)\}", path))
        for method, op in item.items():
            assert method == "get" and op["responses"] and op["operationId"], path
            params = [resolve(p) for p in op.get("parameters", [])]
            for p in params:
                assert {"name", "in", "schema"} <= set(p) and p["in"] in ("query", "path"), (path, p)
            assert {p["name"] for p in params if p["in"] == "path"} == declared, path
            for response in op["responses"].values():
                assert "description" in resolve(response), path
    assert len({op["operationId"] for item in doc["paths"].values() for op in item.values()}) == len(doc["paths"])
