"""Risk, scorecards, heat, hot spots, the /review page and the public map. Views parse, call layers/, serialise."""
from __future__ import annotations

import json
from datetime import datetime

from flask import Blueprint, Response, current_app, jsonify, render_template, request
from flask_babel import get_locale
from sqlalchemy import text

from geo.errors import InvalidInput
from layers import heat, hotspots, public, report, review, risk, scorecards, selection
from layers.registry import LAYERS

from . import database
from .api import GEOJSON, require_json
from .auth import ANY_USER, actor, current_user, require_scope, roles
from .auth import public as public_view
from .pages import map_config

bp = Blueprint("review", __name__)


def default_area() -> str:
    """The caller's first scope, else the (first) district: what a map opens on."""
    user = current_user()
    if user is not None and user.scope_codes:
        return user.scope_codes[0]
    code = database.session().execute(text("SELECT code FROM areas WHERE level = 1 ORDER BY code LIMIT 1")).scalar()
    if code is None:
        raise InvalidInput("area", "no area has been loaded yet")
    return code


def area_arg() -> str:
    """The `area` argument, else the default area."""
    return (request.args.get("area") or "").strip() or default_area()


def geojson(obj) -> Response:
    """Serialise a GeoJSON object (non-ASCII kept as is)."""
    return Response(json.dumps(obj, ensure_ascii=False), mimetype=GEOJSON)


def locale() -> str:
    """The request's interface language: zh or en."""
    return str(get_locale() or "zh")[:2]


@bp.get("/api/layers")
@roles(*ANY_USER)
def layer_list():
    """The map layers this user may read (the registry), with where each is served."""
    role = current_user().role
    return jsonify({"layers": [layer.describe() for layer in LAYERS.values()
                               if role == "admin" or role in layer.roles or "public" in layer.roles]})


# -- four-colour risk ----------------------------------------------------------------------------
@bp.get("/api/risk")
@roles(*ANY_USER)
def risk_levels():
    """Every grid of the area with its level (blue/yellow/orange/red), score and reasons."""
    return geojson(risk.features(database.session(), area_arg()))


@bp.get("/api/risk/<code>/history")
@roles(*ANY_USER)
def risk_history(code: str):
    return jsonify({"code": code, "periods": risk.history(database.session(), code)})


@bp.post("/api/risk/<code>/override")
@roles("analyst")
def risk_override(code: str):
    """Set a grid's level by hand: {"level", "reason", "until"}."""
    body = require_json()
    require_scope(code)
    result = risk.set_override(database.session(), actor(), code, body)
    database.session().commit()
    return jsonify(result)


@bp.delete("/api/risk/<code>/override")
@roles("analyst")
def risk_override_clear(code: str):
    require_scope(code)
    result = risk.clear_override(database.session(), actor(), code)
    database.session().commit()
    return jsonify(result)


# -- 三零 scorecards -------------------------------------------------------------------------------
@bp.get("/api/scorecards")
@roles(*ANY_USER)
def scorecard():
    as_of = selection.parse_time(request.args.get("as_of"), "as_of", end=True)
    return jsonify(scorecards.scorecard(database.session(), area_arg(), as_of=as_of))


# -- heat and hot spots ---------------------------------------------------------------------------
@bp.get("/api/heat")
@roles("analyst", "dispatcher")
def heat_map():
    """Kernel density of the selected incidents: leaflet.heat points, or a PNG overlay (format=image)."""
    sel = selection.parse({**request.args, "area": area_arg()})
    bandwidth = heat.check_bandwidth(request.args.get("bandwidth"))
    fmt = request.args.get("format", "points")
    if fmt not in ("points", "image"):
        raise InvalidInput("format", f"format must be points or image; got {fmt!r}")
    surf = heat.surface(database.session(), sel, bandwidth)
    body = heat.heat_points(surf) if fmt == "points" else heat.overlay(surf)
    return jsonify({**body, "selection": sel.describe(), "crs": f"EPSG:{surf.plane.epsg}"})


@bp.get("/api/hotspots")
@roles("analyst")
def hot_spots():
    """Gi* hot and cold spots on hexagons (level=hex, default) or on the governance grids (level=grid)."""
    args = request.args
    sel = selection.parse({**args, "area": area_arg()})
    level = args.get("level", "hex")
    if level not in ("hex", "grid"):
        raise InvalidInput("level", f"level must be hex or grid; got {level!r}")
    perms = hotspots.check_permutations(args.get("permutations"))
    if level == "grid":
        band = hotspots.check_band(args.get("band"), 100)
        return geojson(hotspots.grids(database.session(), sel, band_m=band, permutations=perms))
    size = hotspots.check_size(args.get("size"))
    band = hotspots.check_band(args.get("band"), size * 1.8)
    return geojson(hotspots.hexagons(database.session(), sel, size_m=size, band_m=band, permutations=perms))


@bp.get("/api/hotspots/emerging")
@roles("analyst")
def emerging_hot_spots():
    """Emerging hot spots on hexagon × month bins (Esri's pattern names)."""
    args = request.args
    sel = selection.parse({**args, "area": area_arg()})
    size = hotspots.check_size(args.get("size"))
    band = hotspots.check_band(args.get("band"), size * 1.8)
    return geojson(hotspots.emerging(database.session(), sel, size_m=size, band_m=band))


# -- review: comparison, page, report ---------------------------------------------------------------
def month_arg() -> tuple[datetime, datetime]:
    """The `month` argument's [start, end), else the month of the latest incident."""
    raw = request.args.get("month")
    if raw:
        return selection.parse_month(raw)
    latest = database.session().execute(text("SELECT max(occurred_at) FROM incidents")).scalar()
    moment = (latest or datetime.now(selection.TZ)).astimezone(selection.TZ)
    return selection.parse_month(f"{moment.year}-{moment.month:02d}")


@bp.get("/api/review/compare")
@roles("analyst")
def compare():
    start, end = month_arg()
    return jsonify(review.compare(database.session(), area_arg(), start, end))


@bp.get("/review")
@roles("analyst")
def review_page():
    """The analysts' map of one month with its comparison to the month before."""
    s = database.session()
    area = area_arg()
    start, end = month_arg()
    cfg = current_app.config
    basemap = cfg["OSM_TILE_URL"] if cfg["BASEMAP"] == "osm" else None
    m = review.review_map(s, area, start, end, locale=locale(), basemap_url=basemap)
    document = review.render(m)
    comparison = review.compare(s, area, start, end)
    areas_list = s.execute(text("SELECT code, name, level FROM areas WHERE level <= 2 ORDER BY level, code")).all()
    return render_template("review.html", map_html=review.iframe(document, title="review map"),
                           comparison=comparison, area=area, month=start.strftime("%Y-%m"),
                           months=report.recent_months(s), areas=areas_list)


@bp.get("/review/report")
@roles("analyst")
def review_report():
    """The month's 周交办、月讲评 report as one standalone HTML file (every asset inside)."""
    area = area_arg()
    start, _ = month_arg()
    document = report.build(database.session(), area, start.strftime("%Y-%m"), locale=locale())
    filename = f"anwang-report-{area}-{start:%Y-%m}.html"
    return Response(document, mimetype="text/html",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# -- the public map -----------------------------------------------------------------------------------
@bp.get("/api/public/stats")
@public_view
def public_stats():
    """Aggregated incident counts per grid or hexagon; cells under k suppressed; no points, no text."""
    level = public.parse_level(request.args.get("level"))
    months = public.parse_months(request.args.get("months"))
    response = geojson(public.stats(database.session(), level=level, months=months))
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
            "summary": "Getis-Ord Gi* hot/cold spots (permutations, FDR) on hexagons or grids",
            "parameters": filters + [param("level", "hex | grid"), param("size", "hexagon edge in metres"),
                                     param("band", "distance band in metres"),
                                     param("permutations", "99 … 99999")],
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
            "summary": "Public: aggregated counts per grid or 1 km hexagon, cells under 5 suppressed",
            "security": [], "parameters": [param("level", "grid | hex"), param("months", "3 | 12")],
            "responses": {"200": {"description": "FeatureCollection", "content": geojson}, **errors(400)}}},
    }

