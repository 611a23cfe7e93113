"""HTML pages. Each page is a template plus its own script; data comes from /api."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template

from .auth import ANY_USER, roles

bp = Blueprint("pages", __name__)


def map_config() -> dict:
    """What the page script needs to know: basemaps and their settings."""
    cfg = current_app.config
    return {"basemap": cfg["BASEMAP"], "osmUrl": cfg["OSM_TILE_URL"],
            "tiandituKey": cfg["TIANDITU_KEY"]}


@bp.get("/")
@roles(*ANY_USER)
def index():
    return render_template("index.html", map_config=map_config())
