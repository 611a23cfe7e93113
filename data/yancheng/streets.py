"""Generate the urban street grid over the three 街道 and name its streets."""
from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import LineString, box

from .coordinates import to_metric
from .reference import is_street
from .world import Area, World

URBAN_CORE = (113.968, 33.577, 114.100, 33.634)  # lon/lat box of the street grid
LATTICE_SPACING_M = (800.0, 720.0)  # north–south roads, east–west roads
NS_FILLER_ROADS = ["交通路", "燕山路", "衡山路", "华山路", "黄山路", "庐山路", "天山路", "峨眉山路"]
EW_FILLER_ROADS = ["黄河路", "淞江路", "长江路", "珠江路", "湘江路", "漓江路", "汉江路", "闽江路"]
# Filler roads that should cross a given township (the DOMAIN example 沙北街道黄河路123号).
FILLER_HOME = {"黄河路": "411103001", "淞江路": "411103003", "交通路": "411103001"}


def build_lattice(world: World) -> None:
    """Lay the urban street grid over the three 街道: straight north–south and east–west roads."""
    rng = world.rng("lattice")
    streets = shapely.union_all([t.cell for t in world.level(2) if is_street(t.code)])
    core = to_metric(box(*URBAN_CORE)).intersection(streets)
    world.core = core
    minx, miny, maxx, maxy = core.bounds
    for orient, spacing in (("ns", LATTICE_SPACING_M[0]), ("ew", LATTICE_SPACING_M[1])):
        lo, hi = (minx, maxx) if orient == "ns" else (miny, maxy)
        for pos in np.arange(lo + 0.45 * spacing, hi - 0.3 * spacing, spacing):
            pos = float(pos + rng.uniform(-60, 60))
            full = (LineString([(pos, miny - 10), (pos, maxy + 10)]) if orient == "ns"
                    else LineString([(minx - 10, pos), (maxx + 10, pos)]))
            parts = [p for p in shapely.get_parts(full.intersection(core)) if p.geom_type == "LineString"]
            if parts and max(p.length for p in parts) >= 1000:
                line = max(parts, key=lambda p: p.length)
                world.lattice.append({"orient": orient, "pos": pos, "line": line, "name": None})


def anchor_road_communities(world: World) -> dict[str, np.ndarray]:
    """Name a street after each 嵩山路社区-style community and seed the community on it."""
    rng = world.rng("anchors")
    seeds = {}
    for v in world.level(3):
        t = world.areas[v.parent]
        road = _community_road(v.name) if is_street(t.code) else None
        line = _claim_line(world, road, t) if road else None
        if line is None:
            continue
        part = max(shapely.get_parts(line["line"].intersection(t.cell)), key=lambda p: p.length)
        p = part.interpolate(float(rng.uniform(0.3, 0.7)), normalized=True)
        seeds[v.code] = np.array([p.x, p.y])
    return seeds


def _community_road(name: str) -> str | None:
    """Return the road a community is named after (嵩山路社区 → 嵩山路), or None."""
    base = name.removesuffix("社区")
    return base if base.endswith("路") and name.endswith("社区") else None


def name_filler_roads(world: World) -> None:
    """Name the streets no community claimed (黄河路 and 交通路 through 沙北, 淞江路 through 淞江 …)."""
    for road, home in FILLER_HOME.items():
        _claim_line(world, road, world.areas[home])
    for orient, names in (("ns", NS_FILLER_ROADS), ("ew", EW_FILLER_ROADS)):
        pool = [n for n in names if n not in {ln["name"] for ln in world.lattice}]
        for ln in sorted((ln for ln in world.lattice if ln["orient"] == orient and ln["name"] is None),
                         key=lambda ln: ln["pos"]):
            ln["name"] = pool.pop(0)


def _claim_line(world: World, road: str, township: Area) -> dict | None:
    """Name the free lattice line of the road's orientation running longest through `township`."""
    free = [ln for ln in world.lattice if ln["name"] is None and ln["orient"] == road_orientation(road)]
    if not free:
        return None
    best = max(free, key=lambda ln: ln["line"].intersection(township.cell).length)
    if best["line"].intersection(township.cell).length < 300:
        return None
    best["name"] = road
    return best


def road_orientation(road: str) -> str:
    """Orient a street: mountain-named roads (and 交通路) run north–south, river-named east–west."""
    return "ns" if road.endswith("山路") or road in ("昆仑路", "交通路") else "ew"
