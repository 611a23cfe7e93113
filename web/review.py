"""Risk, scorecards, heat, hot spots, the /review page and the public map. Views parse, call layers/
with the caller's audience (geo.policy: scope, generalisation and the analytics' floors), serialise."""
from __future__ import annotations

import base64
import hashlib
import re
from datetime import datetime

from flask import Blueprint, Response, current_app, render_template, request
from flask_babel import get_locale

from geo.errors import InvalidInput
from layers import basemap, heat, hotspots, public, report, review, risk, scorecards, selection
from layers.registry import LAYERS
from layers.review_basemaps import Basemaps

from . import database
from .auth import ANY_USER, actor, audience, current_user, require_scope, roles
from .auth import public as public_view
from .pages import map_config
from .responses import geojson_response, json_body, json_response
from .tiles import for_pages

bp = Blueprint("review", __name__)


def area_arg() -> str:
    """The `area` argument (exactly as given), else the caller's home area."""
    return request.args.get("area") or current_user().scope.home(database.session())


def locale() -> str:
    """The request's interface language: zh or en."""
    return str(get_locale() or "zh")[:2]


def _selection() -> selection.Selection:
    return selection.parse(database.session(), request.args, audience(), default_area=area_arg())


@bp.get("/api/layers")
@roles(*ANY_USER)
def layer_list():
    """The map layers this user may read (the registry), with where each is served."""
    role = current_user().role
    return json_response({"layers": [layer.describe() for layer in LAYERS.values()
                                     if role == "admin" or role in layer.roles or "public" in layer.roles]})


# -- four-colour risk ----------------------------------------------------------------------------
@bp.get("/api/risk")
@roles(*ANY_USER)
def risk_levels():
    """Every grid of the area with its level (blue/yellow/orange/red), score and reasons."""
    area = require_scope(area_arg())["code"]
    return geojson_response(risk.features(database.session(), area))


@bp.get("/api/risk/<code>/history")
@roles(*ANY_USER)
def risk_history(code: str):
    require_scope(code)
    return json_response({"code": code, "periods": risk.history(database.session(), code)})


@bp.post("/api/risk/<code>/override")
@roles("analyst")
def risk_override(code: str):
    """Set a grid's level by hand: {"level", "reason", "until"}."""
    body = json_body()
    require_scope(code)
    result = risk.set_override(database.session(), actor(), code, body)
    database.session().commit()
    return json_response(result)


@bp.delete("/api/risk/<code>/override")
@roles("analyst")
def risk_override_clear(code: str):
    require_scope(code)
    result = risk.clear_override(database.session(), actor(), code)
    database.session().commit()
    return json_response(result)


# -- 三零 scorecards -------------------------------------------------------------------------------
@bp.get("/api/scorecards")
@roles(*ANY_USER)
def scorecard():
    as_of = selection.parse_time(request.args.get("as_of"), "as_of", end=True)
    return json_response(scorecards.scorecard(database.read_session(), area_arg(), audience(), as_of=as_of))


# -- heat and hot spots ---------------------------------------------------------------------------
@bp.get("/api/heat")
@roles("analyst", "dispatcher")
def heat_map():
    """Kernel density of the selected incidents: leaflet.heat points, or a PNG overlay (format=image)."""
    sel = _selection()
    bandwidth = heat.check_bandwidth(request.args.get("bandwidth"), sel.audience)
    fmt = request.args.get("format", "points")
    if fmt not in ("points", "image"):
        raise InvalidInput("format", f"format must be points or image; got {fmt!r}")
    surf = heat.surface(database.read_session(), sel, bandwidth)
    body = heat.heat_points(surf) if fmt == "points" else heat.overlay(surf)
    return json_response({**body, "selection": sel.describe(), "crs": f"EPSG:{surf.plane.epsg}"})


@bp.get("/api/hotspots")
@roles("analyst")
def hot_spots():
    """Gi* hot and cold spots on hexagons (level=hex, default) or on the governance grids (level=grid)."""
    args = request.args
    sel = _selection()
    level = args.get("level", "hex")
    if level not in ("hex", "grid"):
        raise InvalidInput("level", f"level must be hex or grid; got {level!r}")
    inference = hotspots.check_inference(args.get("inference"))
    perms = hotspots.check_permutations(args.get("permutations"))
    if level == "grid":
        band = hotspots.check_band(args.get("band"), 100)
        return geojson_response(hotspots.grids(database.read_session(), sel, band_m=band,
                                               inference=inference, permutations=perms))
    size = hotspots.check_size(args.get("size"), sel.audience)
    band = hotspots.check_band(args.get("band"), size * 1.8)
    return geojson_response(hotspots.hexagons(database.read_session(), sel, size_m=size, band_m=band,
                                              inference=inference, permutations=perms))


@bp.get("/api/hotspots/emerging")
@roles("analyst")
def emerging_hot_spots():
    """Emerging hot spots on hexagon × month bins (Esri's pattern names)."""
    args = request.args
    sel = _selection()
    size = hotspots.check_size(args.get("size"), sel.audience)
    band = hotspots.check_band(args.get("band"), size * 1.8)
    return geojson_response(hotspots.emerging(database.read_session(), sel, size_m=size, band_m=band))


# -- review: comparison, page, report ---------------------------------------------------------------
def month_arg() -> tuple[datetime, datetime]:
    """The `month` argument's [start, end), else the last complete month (a month under way is
    never the default: its figures would read as a fall)."""
    raw = request.args.get("month")
    if raw:
        return selection.parse_month(raw)
    return selection.last_complete_month()


@bp.get("/api/review/compare")
@roles("analyst")
def compare():
    start, end = month_arg()
    return json_response(review.compare(database.read_session(), area_arg(), start, end, audience()))


@bp.get("/review")
@roles("analyst")
def review_page():
    """The analysts' page of one month with its comparison to the month before; the map is its
    own document (/review/map), framed here."""
    s = database.session()
    area = require_scope(area_arg())["code"]
    start, end = month_arg()
    comparison = review.compare(s, area, start, end, audience())
    areas_list = review.area_choices(s, current_user().scope)
    latest = selection.latest(s, audience())
    months = report.recent_months(s, audience())
    month = start.strftime("%Y-%m")
    return render_template("review.html", comparison=comparison, area=area, month=month,
                           months=months if month in months else sorted([*months, month], reverse=True),
                           areas=areas_list,
                           data_until=latest.astimezone(selection.TZ).date().isoformat() if latest else None)


@bp.get("/review/map")
@roles("analyst")
def review_map_document():
    """The month's folium map as a document of its own, framed by /review. Its inline scripts are
    allowed by their hashes only (CSP), and every text in it is escaped. It offers the basemaps
    every page offers and opens on `basemap` (the reader's choice, which the page passes on), else
    the configured one."""
    s = database.session()
    area = require_scope(area_arg())["code"]
    start, end = month_arg()
    document = review.render(review.review_map(s, area, start, end, audience(), locale=locale(),
                                               basemaps=_basemaps()))
    response = Response(document, mimetype="text/html")
    response.headers["Content-Security-Policy"] = inline_script_policy(document)
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def _basemaps() -> Basemaps:
    cfg = current_app.config
    wanted = request.args.get("basemap")
    local = for_pages(current_user()).get("basemap") or {}
    return Basemaps(chosen=wanted if wanted in basemap.CHOICES else cfg["BASEMAP"],
                    local_url=local.get("url"), local_maxzoom=local.get("maxzoom", basemap.MAXZOOM),
                    local_attribution=local.get("attribution", ""),
                    osm_url=cfg["OSM_TILE_URL"] or None, tianditu_key=cfg["TIANDITU_KEY"] or None)


SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S)
STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.S)


def inline_script_policy(document: str) -> str:
    """A Content-Security-Policy allowing exactly this document's inline scripts and styles (by
    their SHA-256), scripts from this site, and framing by this site only."""
    def hashes(pattern) -> str:
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(m.encode()).digest()).decode()}'"
                        for m in pattern.findall(document))
    return (f"default-src 'self'; script-src 'self' {hashes(SCRIPT)}; "
            f"style-src 'self' 'unsafe-inline'; img-src 'self' data: blob: {current_app.config['TILE_HOSTS']}; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'self'")


@bp.get("/review/report")
@roles("analyst")
def review_report():
    """The month's 周交办、月讲评 report as one standalone HTML file (every asset inside)."""
    area = require_scope(area_arg())["code"]
    start, _ = month_arg()
    document = report.build(database.read_session(), area, start.strftime("%Y-%m"), audience(),
                            locale=locale())
    filename = f"anwang-report-{area}-{start:%Y-%m}.html"
    return Response(document, mimetype="text/html",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# -- the public map -----------------------------------------------------------------------------------
@bp.get("/api/public/stats")
@public_view
def public_stats():
    """Incident counts per grid or hexagon: sums of frozen monthly releases rounded to multiples of
    5; no points, no text. The first request after a month ends publishes that month."""
    level = public.parse_level(request.args.get("level"))
    months = public.parse_months(request.args.get("months"))
    now = datetime.now(selection.TZ)
    releases = public.ensure(database.session(), public.complete_months(months, now))
    database.session().commit()       # a month just ended is published on the primary, then read
    reader = database.read_session(since=max(r.created_at for r in releases))
    body = public.stats(reader, level=level, months=months, now=now)
    response = geojson_response(body)
    response.headers["Cache-Control"] = "public, max-age=600"
    return response


@bp.get("/public")
@public_view
def public_page():
    return render_template("public.html", map_config=map_config())


def openapi_paths(geojson: dict, param, errors) -> dict:
    """This blueprint's part of the OpenAPI document."""
    area = param("area", "area code (default: your scope, else the district)")
    filters = [area, param("category", "petition,accident,criminal,dispute,hazard (comma-separated)"),
               param("since", "ISO date or date-time (local midnight for a date)"),
               param("until", "ISO date (inclusive) or date-time")]
    code = {"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}
    override = {"type": "object", "required": ["level", "reason", "until"], "properties": {
        "level": {"enum": list(risk.LEVELS)}, "reason": {"type": "string"},
        "until": {"type": "string", "format": "date-time"}}}
    return {
        "/api/layers": {"get": {"summary": "The map layers you may read (the LAYERS registry)",
                                "responses": {"200": {"description": "layers"}, **errors(401)}}},
        "/api/risk": {"get": {
            "summary": "Four-colour risk per grid: level (blue/yellow/orange/red), score, reasons, override",
            "parameters": [area], "responses": {"200": {"description": "FeatureCollection", "content": geojson},
                                                **errors(401, 404)}}},
        "/api/risk/{code}/history": {"get": {
            "summary": "Every stored period of one grid", "parameters": [code],
            "responses": {"200": {"description": "periods, newest first"}, **errors(400, 401, 404)}}},
        "/api/risk/{code}/override": {
            "post": {"summary": "Set a grid's level by hand (analyst, in scope)", "parameters": [code],
                     "requestBody": {"content": {"application/json": {"schema": override}}},
                     "responses": {"200": {"description": "the level now in force"}, **errors(400, 401, 403, 404)}},
            "delete": {"summary": "Lift a grid's override", "parameters": [code],
                       "responses": {"200": {"description": "the computed level"}, **errors(401, 403, 404)}}},
        "/api/scorecards": {"get": {
            "summary": "三零 scorecard: days since the last case, zero months, rank, disputes, compliance",
            "parameters": [area, param("as_of", "ISO date or date-time (default now)")],
            "responses": {"200": {"description": "scorecard"}, **errors(400, 401, 404)}}},
        "/api/heat": {"get": {
            "summary": "Kernel density in metres: leaflet.heat points or a PNG overlay",
            "parameters": filters + [param("bandwidth", "metres (25–5000, default 300)"),
                                     param("format", "points | image")],
            "responses": {"200": {"description": "points or image with bounds"}, **errors(400, 401, 403, 404)}}},
        "/api/hotspots": {"get": {
            "summary": "Getis-Ord Gi* hot/cold spots (normal or permutation p-values, FDR) on hexagons or grids",
            "parameters": filters + [param("level", "hex | grid"), param("size", "hexagon edge in metres"),
                                     param("band", "distance band in metres"),
                                     param("inference", "normal (p of the z-score, default) | permutation"),
                                     param("permutations", "99 … 99999 (with inference=permutation)")],
            "responses": {"200": {"description": "FeatureCollection with analysis", "content": geojson},
                          **errors(400, 401, 403, 404)}}},
        "/api/hotspots/emerging": {"get": {
            "summary": "Emerging hot spots (Esri's patterns) on hexagon × month bins",
            "parameters": filters + [param("size", "hexagon edge in metres"), param("band", "metres")],
            "responses": {"200": {"description": "FeatureCollection", "content": geojson},
                          **errors(400, 401, 403, 404)}}},
        "/api/review/compare": {"get": {
            "summary": "This month against the last: totals, categories, every grid",
            "parameters": [area, param("month", "YYYY-MM")],
            "responses": {"200": {"description": "comparison"}, **errors(400, 401, 403, 404)}}},
        "/api/public/stats": {"get": {
            "summary": "Public: counts per grid or 1 km hexagon over the last 3 or 12 complete months, "
                       "sums of frozen monthly releases each randomly rounded to a multiple of 5",
            "security": [], "parameters": [param("level", "grid | hex"), param("months", "3 | 12")],
            "responses": {"200": {"description": "FeatureCollection", "content": geojson}, **errors(400)}}},
    }

