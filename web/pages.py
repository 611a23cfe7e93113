"""HTML pages. Each page is a template plus its own script; data comes from /api."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template, send_from_directory

from geo import areas, policy
from geo.errors import NotFound
from layers import basemap

from . import database, tiles
from .auth import ANY_USER, current_user, public, roles

bp = Blueprint("pages", __name__)


def map_config() -> dict:
    """What the page script needs to know: basemaps and their settings, and where the map opens —
    the extent of the reader's own area (their scope, else the home jurisdiction), so importing
    another jurisdiction never moves anyone's map."""
    cfg = current_app.config
    user = current_user()
    out = {"basemap": cfg["BASEMAP"], "osmUrl": cfg["OSM_TILE_URL"], "tiandituKey": cfg["TIANDITU_KEY"],
           "tiandituUrl": basemap.TIANDITU_URL, "tiles": tiles.for_pages(user), "home": None, "extent": None}
    s = database.session()
    try:
        home = user.scope.home(s) if user is not None else policy.home_area(s)
    except NotFound:      # nothing loaded yet: the map opens on the whole world
        return out
    out.update(home=home, extent=areas.extent(s, home))
    return out


@bp.get("/")
@roles(*ANY_USER)
def index():
    return render_template("index.html", map_config=map_config())


@bp.get("/favicon.ico")
@public
def favicon():
    """The icon, for documents that name none (an API answer opened in a tab, a framed map)."""
    return send_from_directory(current_app.static_folder, "favicon.svg", mimetype="image/svg+xml",
                               max_age=86400)
