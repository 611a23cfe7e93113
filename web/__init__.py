"""Anwang's web application: `create_app(config=None)` builds it; nothing happens at import time."""
from __future__ import annotations

from flask import Flask


def create_app(config: dict | None = None) -> Flask:
    """Build the app: defaults, then the environment, then `config` (tests pass a mapping)."""
    from . import (
        api,
        auth,
        compression,
        database,
        errors,
        i18n,
        incidents,
        jobs,
        livefeed,
        ogc,
        pages,
        patrol,
        phone,
        planner,
        responses,
        review,
        security,
        tiles,
        vendor,
        visits,
    )
    from .config import load

    app = Flask(__name__)
    app.config.from_mapping(load(config))
    database.init_app(app)
    compression.init_app(app)               # registered first, so it runs last: compresses what the rest made
    errors.register(app)
    responses.init_app(app)                 # strict JSON, no NUL in paths or queries
    security.init_app(app)
    i18n.init_app(app)
    auth.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(vendor.bp)
    app.register_blueprint(incidents.bp)    # intake, lifecycle, geocoding, /report
    app.register_blueprint(planner.bp)      # boundary edits, history, import/export, /planner
    app.register_blueprint(jobs.bp)         # /api/jobs/{id}: background imports
    patrol.init_app(app)                    # units, position ingest, /osmand, /dispatch
    app.register_blueprint(livefeed.bp)     # /api/live (Server-Sent Events)
    app.register_blueprint(review.bp)       # risk, scorecards, heat, hot spots, /review, /public
    app.register_blueprint(tiles.bp)        # /tiles: vector tiles, TileJSON, the basemap
    app.register_blueprint(ogc.bp)          # OGC API – Features for GIS clients, /ogc
    app.register_blueprint(visits.bp)       # households, 走访 visits, coverage, a worker's day
    phone.init_app(app)                     # /day, the web manifest, the service worker
    auth.check_declared(app)
    return app
