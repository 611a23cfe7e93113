"""The plain registry of map layers: LAYERS = {name: Layer}, what each is, where it is served, who sees it.

Pages and the API find layers here instead of hard-coding them; a new layer is one entry.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from geo.policy import Audience
from geo.vocabulary import ROLES

from . import heat, hotspots, public, risk, selection


@dataclass(frozen=True)
class Layer:
    """One map layer: its name, titles, the kind of data, the API path, and how to build it."""

    name: str
    title_zh: str
    title_en: str
    kind: str                 # geojson | heat
    endpoint: str
    roles: tuple[str, ...]    # who may read it; ("public",) for everyone
    build: Callable[..., Any]

    def describe(self) -> dict:
        return {"name": self.name, "title": {"zh": self.title_zh, "en": self.title_en},
                "kind": self.kind, "endpoint": self.endpoint, "roles": list(self.roles)}


def _heat(session: Session, area: str, audience: Audience, **kw) -> dict:
    return heat.heat_points(heat.surface(session, selection.Selection(area, audience=audience), **kw))


def _hotspots(session: Session, area: str, audience: Audience, **kw) -> dict:
    return hotspots.hexagons(session, selection.Selection(area, audience=audience), **kw)


def _emerging(session: Session, area: str, audience: Audience, **kw) -> dict:
    return hotspots.emerging(session, selection.Selection(area, audience=audience), **kw)


def _risk(session: Session, area: str, audience: Audience, **kw) -> dict:
    audience.scope.area(session, area)
    return risk.features(session, area, **kw)


def _public(session: Session, area: str | None, audience: Audience, **kw) -> dict:
    return public.stats(session, **kw)


ANY = ROLES
LAYERS: dict[str, Layer] = {layer.name: layer for layer in (
    Layer("risk", "四色风险", "Four-colour risk", "geojson", "/api/risk", ANY, _risk),
    Layer("heat", "热力图", "Heat map", "heat", "/api/heat", ("analyst", "dispatcher"), _heat),
    Layer("hotspots", "热点（Gi*）", "Hot spots (Gi*)", "geojson", "/api/hotspots", ("analyst",), _hotspots),
    Layer("emerging", "新兴热点", "Emerging hot spots", "geojson", "/api/hotspots/emerging", ("analyst",),
          _emerging),
    Layer("public", "平安地图", "Public safety map", "geojson", "/api/public/stats", ("public",), _public),
)}
