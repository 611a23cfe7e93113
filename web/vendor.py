"""Front-end packages installed by npm, served by the app itself (no CDN: intranets are offline)."""
from __future__ import annotations

from flask import Blueprint, abort, send_from_directory

from .auth import public
from .config import project_path

bp = Blueprint("vendor", __name__, url_prefix="/vendor")

# Only these package folders are reachable, and within them only files (never node_modules/.bin).
PACKAGES = {
    "leaflet": "leaflet/dist",
    "leaflet.markercluster": "leaflet.markercluster/dist",
    "leaflet.heat": "leaflet.heat/dist",
    "leaflet-geoman": "@geoman-io/leaflet-geoman-free/dist",
    "protomaps-leaflet": "protomaps-leaflet/dist",
}


def node_modules():
    return project_path("node_modules")


@bp.get("/<package>/<path:filename>")
@public
def asset(package: str, filename: str):
    folder = PACKAGES.get(package)
    if folder is None:
        abort(404)
    # send_from_directory refuses paths that escape the folder.
    return send_from_directory(node_modules() / folder, filename, max_age=86400)
