"""The grid worker's phone app: the day page, and what makes the site installable and usable without
signal — the web manifest and the service worker.

The service worker is served from the root (`/sw.js`) so that its scope is the whole site. Its first
line names the version of the app shell (a hash of every static file it caches) and the list of
those files, so a changed file makes a new worker that replaces the old caches.
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from flask import Blueprint, Response, current_app, redirect, render_template, url_for

from geo import areas

from . import database
from .auth import ANY_USER, current_user, public, roles, start_url
from .config import project_path
from .pages import map_config
from .vendor import PACKAGES, node_modules

bp = Blueprint("phone", __name__)

# The vendor files a phone page loads (the rest of /vendor is cached when first used).
VENDOR_SHELL = {"leaflet": ("leaflet.js", "leaflet.css", "images/marker-icon.png",
                            "images/marker-icon-2x.png", "images/marker-shadow.png",
                            "images/layers.png", "images/layers-2x.png")}
# The worker's source; the server writes its first lines (the shell's version and files).
SOURCE = project_path("web", "static", "js", "worker", "sw.js")


@functools.lru_cache(maxsize=4)
def _shell(static_folder: str, modules: str) -> tuple[str, tuple[str, ...]]:
    """(version, URLs) of the app shell: every static file and the phone pages' vendor files."""
    digest = hashlib.sha256()
    urls = []
    static = Path(static_folder)
    for path in sorted(p for p in static.rglob("*") if p.is_file() and p.resolve() != SOURCE.resolve()):
        rel = path.relative_to(static).as_posix()
        urls.append(f"/static/{rel}")
        digest.update(rel.encode() + b"\0" + path.read_bytes())
    for package, files in VENDOR_SHELL.items():
        for name in files:
            path = Path(modules) / PACKAGES[package] / name
            if path.is_file():
                urls.append(f"/vendor/{package}/{name}")
                digest.update(name.encode() + b"\0" + path.read_bytes())
    digest.update(SOURCE.read_bytes())
    return digest.hexdigest()[:16], tuple(urls)


def shell() -> tuple[str, tuple[str, ...]]:
    return _shell(current_app.static_folder, str(node_modules()))


@bp.get("/start")
@roles(*ANY_USER)
def start():
    """The installed app's start page: each role's own work."""
    return redirect(start_url(current_user().role))


@bp.get("/day")
@roles("grid_worker")
def day():
    """The grid worker's day: visits due, open matters in their grids, reporting and patrol."""
    grids = areas.leaves(database.session(), current_user().scope)
    return render_template("day.html", grids=grids, map_config=map_config())


@bp.get("/manifest.webmanifest")
@public
def manifest():
    icon = url_for("static", filename="icons/app.svg")
    body = {
        "name": "安网", "short_name": "安网", "lang": "zh-CN",
        "description": "网格员的一天：走访、上报、巡逻 · Anwang for grid workers",
        "id": "/start", "start_url": "/start", "scope": "/", "display": "standalone",
        "orientation": "portrait", "background_color": "#f7fafc", "theme_color": "#1a365d",
        "icons": [{"src": icon, "sizes": "any", "type": "image/svg+xml", "purpose": "any"},
                  {"src": url_for("static", filename="icons/maskable.svg"), "sizes": "any",
                   "type": "image/svg+xml", "purpose": "maskable"}],
    }
    return Response(json.dumps(body, ensure_ascii=False), mimetype="application/manifest+json",
                    headers={"Cache-Control": "no-cache"})


@bp.get("/sw.js")
@public
def service_worker():
    """The service worker, from the root so that it controls every page. Never cached by HTTP (the
    browser must see a new version at once); its own CSP lets it fetch only the app and the
    basemap tile servers."""
    version, urls = shell()
    source = SOURCE.read_text(encoding="utf-8")
    head = f"const VERSION = {json.dumps(version)};\nconst SHELL = {json.dumps(list(urls))};\n"
    tiles = current_app.config["TILE_HOSTS"]
    return Response(head + source, mimetype="text/javascript", headers={
        "Cache-Control": "no-cache",
        "Service-Worker-Allowed": "/",
        "Content-Security-Policy": f"default-src 'none'; script-src 'self'; "
                                   f"connect-src 'self' {tiles}".rstrip(),
    })


def sw_url() -> str:
    """The service worker's address with its version (pages register it from here)."""
    return f"/sw.js?v={shell()[0]}"


def init_app(app) -> None:
    app.register_blueprint(bp)

    @app.context_processor
    def inject_pwa():
        return {"sw_url": sw_url}
