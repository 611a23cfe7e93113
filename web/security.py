"""Response headers that make the browser enforce what the code promises: no script but the app's
own files (a strict Content-Security-Policy: no inline script, no eval, no foreign origin), no
MIME sniffing, no framing by other sites, no referrer leaving the site.

Pages carry their data as `<script type="application/json">` blocks, which a CSP does not treat as
script, and their code as files under /static and /vendor. A document that must run inline script
(the folium review map) sets its own policy listing those scripts' hashes.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask


def tile_hosts(config) -> str:
    """The origins basemap tiles may come from, for img-src: the OSM tile server configured (a
    `{s}` subdomain becomes a wildcard) and Tianditu when a key is set."""
    hosts = []
    url = config.get("OSM_TILE_URL") or ""
    parts = urlsplit(url.replace("{s}", "SUB"))
    if parts.scheme in ("http", "https") and parts.hostname:
        host = parts.netloc.replace("SUB", "*")
        hosts.append(f"{parts.scheme}://{host}")
    if config.get("TIANDITU_KEY"):
        hosts.append("https://*.tianditu.gov.cn")
    return " ".join(hosts)


def policy(config) -> str:
    """The Content-Security-Policy of every page."""
    return ("default-src 'self'; script-src 'self'; style-src 'self'; "
            f"img-src 'self' data: blob: {config['TILE_HOSTS']}".rstrip() + "; "
            "font-src 'self' data:; connect-src 'self'; worker-src 'self'; manifest-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
            "frame-src 'self'")


def init_app(app: Flask) -> None:
    app.config.setdefault("TILE_HOSTS", tile_hosts(app.config))
    csp = policy(app.config)

    @app.after_request
    def harden(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", csp)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "geolocation=(self), camera=(self), microphone=()")
        return response
