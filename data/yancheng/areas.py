"""Generate the areas: the real district, townships and villages tiled by Voronoi cells, then grids."""
from __future__ import annotations

import math

import numpy as np
import shapely
from shapely.geometry import Point

from .coordinates import as_multi, metric_xy, to_metric, to_wgs84
from .names import short_name, township_short, zh_number
from .reference import DISTRICT_CODE, DISTRICT_NAME, is_street, read_divisions, read_outline
from .streets import anchor_road_communities, build_lattice, name_filler_roads
from .tiling import assemble, relax, spread, voronoi
from .world import Area, World, apportion

SHANGQIAO = "411103102"
SHANGQIAO_GRIDS = 97  # the article: 97 third-level grids (villager groups)
OTHER_RURAL_GRIDS = 290  # rural grids outside 商桥镇, shared by area
URBAN_GRID_HOUSEHOLDS = (310, 490)  # 300–500 per urban grid
RURAL_GRID_HOUSEHOLDS = (210, 350)  # about 300: one natural village / villager group
PERSONS_PER_HOUSEHOLD = (2.8, 3.3)

# Synthetic township seats (lon, lat). The three 街道 form the urban core in the south-east, on
# the north bank of the 沙河 facing 漯河's centre (≈ 114.02E 33.58N); the towns ring them.
TOWNSHIP_SEATS = {
    "411103001": (114.045, 33.597), "411103002": (114.000, 33.603), "411103003": (114.072, 33.622),
    "411103101": (114.035, 33.660), "411103102": (113.810, 33.690), "411103103": (113.845, 33.625),
    "411103104": (113.890, 33.725), "411103105": (113.942, 33.637), "411103106": (113.975, 33.715),
    "411103107": (114.060, 33.715),
}
DIRECTIONS = {"东": (1.0, 0.0), "西": (-1.0, 0.0), "南": (0.0, -1.0), "北": (0.0, 1.0)}


def build(world: World) -> None:
    """Tile the real outline: townships, villages and grids, each an exact partition of its parent."""
    outline_m = to_metric(read_outline())
    world.areas[DISTRICT_CODE] = Area(DISTRICT_CODE, DISTRICT_NAME, 1, None, "区", False,
                                      DISTRICT_NAME, cell=outline_m)
    _add_divisions(world, read_divisions())
    townships = world.level(2)
    seeds = np.array([metric_xy(*TOWNSHIP_SEATS[t.code]) for t in townships], float)
    for t, s, cell in zip(townships, seeds, voronoi(outline_m, seeds)):
        t.seed, t.cell = (float(s[0]), float(s[1])), cell
    build_lattice(world)
    anchored = anchor_road_communities(world)
    name_filler_roads(world)
    for t in townships:
        villages = [world.areas[c] for c in t.children]
        vseeds, fixed = _village_seeds(world, t, villages, anchored)
        vseeds = relax(t.cell, vseeds, fixed)
        for v, s, cell in zip(villages, vseeds, voronoi(t.cell, vseeds)):
            v.seed, v.cell = (float(s[0]), float(s[1])), cell
    _add_grids(world)
    _finalise_geometry(world)
    _number_grids(world)
    _count_households(world)


def _add_divisions(world: World, rows: list[dict]) -> None:
    """Create the real townships and villages from the division list."""
    for r in rows:
        if r["level"] == "township":
            world.areas[r["code"]] = Area(r["code"], r["name"], 2, DISTRICT_CODE,
                                          "街道" if r["name"].endswith("街道") else "镇",
                                          r["name"].endswith("街道"), r["name"])
    for r in rows:
        if r["level"] == "village":
            resident = r["name"].endswith("居民委员会")
            world.areas[r["code"]] = Area(r["code"], short_name(r["name"]), 3, r["parent_code"],
                                          "社区" if resident else "村", resident, r["name"],
                                          attrs={"official_name": r["name"]})
    for a in sorted(world.areas.values(), key=lambda a: a.code):
        if a.parent:
            world.areas[a.parent].children.append(a.code)


def _village_seeds(world: World, t: Area, villages: list[Area],
                   anchored: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Seed a township's villages; also return which seeds stay put during relaxation."""
    rng = world.rng(f"villages-{t.code}")
    seat = np.array(metric_xy(*TOWNSHIP_SEATS[t.code]), float)
    fixed = {v.code: anchored[v.code] for v in villages if v.code in anchored}
    for v in villages:
        if v.name == township_short(t.name) + "村":  # the village at the township seat
            fixed[v.code] = seat + (150.0, 0.0)
    held = set(fixed) | _place_direction_clusters(t, villages, seat, rng, fixed)
    near_seat = t.cell.intersection(Point(seat).buffer(2500))
    rural_part = t.cell.difference(world.core.buffer(200)) if is_street(t.code) else t.cell
    for region, members in (
            (near_seat, [v for v in villages if v.urban and not is_street(t.code)]),
            (rural_part if not rural_part.is_empty else t.cell, [v for v in villages if not v.urban]),
            (t.cell, [v for v in villages if v.urban])):
        todo = [v for v in members if v.code not in fixed]
        if todo:
            taken = np.array(list(fixed.values())) if fixed else None
            for v, p in zip(todo, spread(region, len(todo), rng, taken)):
                fixed[v.code] = p
    seeds = np.array([fixed[v.code] for v in villages], float)
    return seeds, np.array([v.code in held for v in villages])


def _place_direction_clusters(t, villages, seat, rng, fixed) -> set[str]:
    """Put 商东/商西/商南-style villages east/west/south of a common centre; return their codes."""
    clusters: dict[str, list[tuple[Area, str]]] = {}
    placed: set[str] = set()
    for v in villages:
        if v.code in fixed:
            continue
        base = v.name.removesuffix("社区").removesuffix("村")
        for ch in DIRECTIONS:
            if len(base) >= 2 and (base.startswith(ch) or base.endswith(ch)):
                key = base[1:] if base.startswith(ch) else base[:-1]
                clusters.setdefault(key, []).append((v, ch))
                break
    for key in sorted(clusters):
        members = clusters[key]
        if len(members) < 2:
            continue
        if key == "街" or key[0] == t.name[0]:
            centre = seat
        else:
            taken = np.array(list(fixed.values())) if fixed else None
            centre = spread(t.cell.buffer(-1500) if not t.cell.buffer(-1500).is_empty else t.cell,
                            1, rng, taken)[0]
        for v, ch in members:
            dx, dy = DIRECTIONS[ch]
            for reach in (1200.0, 500.0, 60.0):
                p = centre + (dx * reach, dy * reach)
                if t.cell.contains(Point(p)):
                    break
            fixed[v.code] = p
            placed.add(v.code)
    return placed


def _add_grids(world: World) -> None:
    """Create each village's grids: count from households norms, cells from relaxed seeds."""
    rng = world.rng("grids")
    counts = _grid_counts(world)
    for v in world.level(3):
        n = counts[v.code]
        if n == 1:
            seeds, cells = np.array([v.seed]), [v.cell]
        else:
            seeds = spread(v.cell, n, rng)
            seeds = relax(v.cell, seeds, np.zeros(n, bool), rounds=3)
            cells = voronoi(v.cell, seeds)
        for i, (s, cell) in enumerate(zip(seeds, cells)):
            low, high = URBAN_GRID_HOUSEHOLDS if v.urban else RURAL_GRID_HOUSEHOLDS
            g = Area(f"{v.code}#{i:03d}", "", 4, v.code, "综合网格", v.urban, "",
                     seed=(float(s[0]), float(s[1])), cell=cell,
                     households=int(rng.integers(low, high + 1)))
            world.areas[g.code] = g


def _grid_counts(world: World) -> dict[str, int]:
    """Count grids per village: 2–5 per urban community, rural grids shared out by area."""
    rng = world.rng("grid-counts")
    counts = {v.code: int(rng.integers(2, 6)) for v in world.level(3) if v.urban}
    shangqiao = [v for v in world.level(3) if v.parent == SHANGQIAO]
    others = [v for v in world.level(3) if not v.urban and v.parent != SHANGQIAO]
    counts.update(zip([v.code for v in shangqiao],
                      apportion(SHANGQIAO_GRIDS, [v.cell.area for v in shangqiao], 2)))
    counts.update(zip([v.code for v in others],
                      apportion(OTHER_RURAL_GRIDS, [v.cell.area for v in others], 1)))
    return counts


def _finalise_geometry(world: World) -> None:
    """Make the grids an exact coverage, then build every parent as the union of its children."""
    grids = sorted(world.grids, key=lambda g: g.code)
    for g, geom in zip(grids, assemble([g.cell for g in grids])):
        g.geom_m = geom
    for g, geom in zip(grids, to_wgs84(np.array([g.geom_m for g in grids]))):
        g.geom = as_multi(geom)
        g.geom_m = to_metric(g.geom)  # later steps measure what is stored, not the noded original
    for level in (3, 2, 1):
        for a in world.level(level):
            kids = [world.areas[c] for c in a.children] if level < 3 else \
                [g for g in grids if g.parent == a.code]
            a.geom = as_multi(shapely.coverage_union_all([k.geom for k in kids]))
            a.geom_m = to_metric(a.geom)
    for a in world.areas.values():
        a.cell = None
        if a.seed and not a.geom_m.contains(Point(a.seed)):
            p = a.geom_m.point_on_surface()  # the seed fell in a piece handed to a neighbour
            a.seed = (p.x, p.y)


def _number_grids(world: World) -> None:
    """Give grids their codes: village code + 3 digits, numbered west→east, north→south."""
    renamed: dict[str, Area] = {}
    for v in world.level(3):
        grids = [a for a in world.areas.values() if a.level == 4 and a.parent == v.code]
        band = math.sqrt(v.geom_m.area / len(grids))
        top = v.geom_m.bounds[3]
        def order(g, top=top, band=band):
            c = g.geom_m.centroid
            return (int((top - c.y) // band), c.x, g.code)
        for k, g in enumerate(sorted(grids, key=order), start=1):
            g.code = f"{v.code}{k:03d}"
            g.attrs["number"] = k
            if v.urban:
                g.name = f"{v.name}第{k}网格"
            else:
                g.name = f"{v.name}{zh_number(k)}组网格"
                g.attrs["group"] = f"{zh_number(k)}组"
            renamed[g.code] = g
        v.children = sorted(g.code for g in grids)
    world.renumber({c: a for c, a in world.areas.items() if a.level < 4} | dict(sorted(renamed.items())))


def _count_households(world: World) -> None:
    """Give grids their population and let every parent sum its children."""
    rng = world.rng("population")
    for g in sorted(world.grids, key=lambda g: g.code):
        g.population = int(round(g.households * rng.uniform(*PERSONS_PER_HOUSEHOLD)))
    for level in (3, 2, 1):
        for a in world.level(level):
            kids = [world.areas[c] for c in a.children]
            a.households = sum(k.households for k in kids)
            a.population = sum(k.population for k in kids)
