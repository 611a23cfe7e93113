"""Generate the gazetteer: streets and door numbers, 小区 and buildings, POIs, village groups."""
from __future__ import annotations

import math

import numpy as np
import shapely
from shapely.geometry import LineString, Point, box

from .areas import SHANGQIAO, TOWNSHIP_SEATS
from .coordinates import metric_xy, to_wgs84
from .names import township_short
from .reference import DISTRICT_CODE, DISTRICT_NAME, is_street
from .streets import road_orientation
from .tiling import sample_in
from .world import Area, World

DOOR_SPACING_M = 40.0
DOOR_OFFSET_M = 14.0

# POIs: (name, township code, where), where is ("seat", dx, dy) metres from the township seat,
# ("village", name, dx, dy) from a village's centre, ("crossing", road, road) at a street corner, or
# ("rural", township) at the rural grid nearest the seat.
POIS = [
    ("漯河市中医院", "411103002", ("village", "金牛社区", 140.0, -60.0)),
    ("中医医院家属院", "411103002", ("village", "金牛社区", -90.0, 70.0)),
    ("龙塔农贸市场", "411103002", ("crossing", "海河路", "太行山路")),
    ("郾城汽车站", "411103001", ("crossing", "黄河路", "交通路")),
    ("郾城区人民医院", "411103001", ("crossing", "黄河路", "嵩山路")),
    ("郾城区实验小学", "411103001", ("crossing", "海河路", "泰山路")),
    ("郾城区第一高级中学", "411103002", ("crossing", "陵园路", "巴山路")),
    ("淞江工业园", "411103003", ("rural", "411103003")),
    ("商桥物流园", SHANGQIAO, ("seat", 2600.0, -400.0)),
    ("孟庙镇旧村改造片区", "411103101", ("seat", -1500.0, 900.0)),
]
DEDICATED = ("漯河市中医院", "郾城区人民医院", "郾城区实验小学", "郾城区第一高级中学", "淞江工业园",
             "商桥物流园", "郾城汽车站")


def build(world: World) -> None:
    """Build the offline geocoder's gazetteer, every entry inside the finest area that holds it."""
    _add_road_places(world)
    _add_compounds(world, world.rng("compounds"))
    _add_pois(world)
    _add_groups(world)
    for place, geom in zip(world.places, to_wgs84(np.array([p["geom"] for p in world.places]))):
        place["geom"] = geom


def _add_place(world: World, key: str, name: str, kind: str, geom_m, area_code: str,
               address: str, parent_key: str | None = None, attrs: dict | None = None) -> dict:
    """Add one gazetteer entry (metric geometry) and index it by grid for later steps."""
    place = {"key": key, "name": name, "kind": kind, "area_code": area_code,
             "parent_key": parent_key, "geom": geom_m, "address": address,
             "attrs": attrs or {}}  # metric until build() converts them all at once
    world.places.append(place)
    if geom_m.geom_type == "Point":
        world.place_xy[key] = (geom_m.x, geom_m.y)
        if len(area_code) == 15:
            world.by_grid.setdefault(area_code, {}).setdefault(kind, []).append(place)
    return place


def _finest_area(world: World, geom_m) -> Area:
    """Find the deepest area covering `geom_m` (grid, village, township or the district)."""
    tree, grids = world.grid_tree()
    hits = sorted((grids[i] for i in tree.query(geom_m, predicate="intersects")), key=lambda g: g.code)
    for g in hits:
        if g.geom_m.covers(geom_m):
            return g
    for prefix_len in (12, 9):  # then the village, then the township
        for code in sorted({g.code[:prefix_len] for g in hits}):
            if world.areas[code].geom_m.covers(geom_m):
                return world.areas[code]
    return world.areas[DISTRICT_CODE]


def address_prefix(world: World, area: Area) -> str:
    """Start an address in `area`: 郾城区 and the township's name."""
    parts = [DISTRICT_NAME]
    if area.level >= 2:
        parts.append(world.areas[area.code[:9]].name)
    return "".join(parts)


def _add_road_places(world: World) -> None:
    """Add every street and its door numbers."""
    for ln in sorted(world.lattice, key=lambda ln: ln["name"]):
        line = ln["line"]
        area = _finest_area(world, line)
        _add_place(world, f"road:{ln['name']}", ln["name"], "road", line, area.code,
                   f"{address_prefix(world, area)}{ln['name']}", attrs={"orientation": ln["orient"]})
        (x0, y0), (x1, y1) = line.coords[0], line.coords[-1]
        if (ln["orient"] == "ew" and x1 > x0) or (ln["orient"] == "ns" and y1 < y0):
            line = LineString(line.coords[::-1])  # east→west and south→north numbering
        _add_doors(world, ln["name"], line)


def _add_doors(world: World, road: str, line: LineString) -> None:
    """Number doors every 40 m, odd on the right facing increasing numbers, skipping crossings."""
    crossings = [line.project(other["line"].intersection(line)) for other in world.lattice
                 if other["orient"] != road_orientation(road) and other["line"].intersects(line)]
    (x0, y0), (x1, y1) = line.coords[0], line.coords[-1]
    ux, uy = (x1 - x0) / line.length, (y1 - y0) / line.length
    stations = np.arange(DOOR_SPACING_M / 2, line.length - DOOR_SPACING_M / 2, DOOR_SPACING_M)
    stations = [s for s in stations if all(abs(s - c) > 25 for c in crossings)]
    xs, ys, numbers = [], [], []
    for k, s in enumerate(stations, start=1):
        for side, number in ((-1, 2 * k - 1), (1, 2 * k)):
            xs.append(x0 + ux * s - side * uy * DOOR_OFFSET_M)
            ys.append(y0 + uy * s + side * ux * DOOR_OFFSET_M)
            numbers.append(number)
    for x, y, n, grid in zip(xs, ys, numbers, world.grid_at(xs, ys)):
        if grid is None:
            continue
        address = f"{address_prefix(world, grid)}{road}{n}号"
        _add_place(world, f"door:{road}:{n}", f"{n}号", "door", Point(x, y), grid.code, address,
                   parent_key=f"road:{road}", attrs={"number": n, "road": road})


def _compound_names(world: World, rng: np.random.Generator):
    """Yield 小区 names (阳光花园, 锦绣家园 …) in a seeded order."""
    first, second = world.names["compound_first"], world.names["compound_second"]
    combos = [a + b for a in first for b in second]
    order = rng.permutation(len(combos))
    for i in order:
        yield combos[int(i)]


def _add_compounds(world: World, rng: np.random.Generator) -> None:
    """Place one to three 小区 per urban grid, clear of the streets, with numbered buildings."""
    roads = shapely.union_all([ln["line"] for ln in world.lattice]).buffer(22)
    names = _compound_names(world, rng)
    doors = [p for p in world.places if p["kind"] == "door"]
    door_tree = shapely.STRtree([p["geom"] for p in doors])  # still metric here
    for g in sorted((g for g in world.grids if g.urban), key=lambda g: g.code):
        room = g.geom_m.buffer(-15).difference(roads)
        taken = []
        for _ in range(int(rng.integers(1, 4))):
            rect = _fit_rectangle(room, taken, rng)
            if rect is None:
                break
            taken.append(rect)
            name = world.unique(next(names), [township_short(world.township_of(g.code).name)])
            _add_compound(world, g, rect, name, doors, door_tree, rng)


def _fit_rectangle(room, taken: list, rng: np.random.Generator):
    """Fit a random 小区 footprint inside `room`, apart from the ones already placed."""
    if room.is_empty or room.area < 5000:
        return None
    for size in ((120, 240, 100, 200), (60, 90, 60, 90)):
        for c in sample_in(room, 25, rng):
            w, h = rng.uniform(size[0], size[1]), rng.uniform(size[2], size[3])
            rect = box(c[0] - w / 2, c[1] - h / 2, c[0] + w / 2, c[1] + h / 2)
            if room.contains(rect) and not any(rect.distance(t) < 15 for t in taken):
                return rect
    return None


def _add_compound(world, g, rect, name, doors, door_tree, rng) -> None:
    """Add a 小区 addressed by its gate (the nearest door number) and its buildings 1号楼, 2号楼 …"""
    centre = rect.centroid
    gate = door_tree.nearest(centre)
    if gate is not None and doors[gate]["geom"].distance(centre) <= 250:
        address, parent = doors[gate]["address"] + name, doors[gate]["key"]
    else:
        village = world.village_of(g.code)
        address, parent = f"{address_prefix(world, g)}{village.name}{name}", None
    key = f"compound:{name}"
    _add_place(world, key, name, "compound", rect, g.code, address, parent_key=parent)
    minx, miny, maxx, maxy = rect.bounds
    count = int(rng.integers(4, 17))
    cols = max(1, round(math.sqrt(count * (maxx - minx) / (maxy - miny))))
    rows = math.ceil(count / cols)
    for n in range(1, count + 1):
        r, c = divmod(n - 1, cols)
        x = minx + (c + 0.5) * (maxx - minx) / cols
        y = maxy - (r + 0.5) * (maxy - miny) / rows  # 1号楼 in the north-west corner
        _add_place(world, f"{key}:{n}", f"{n}号楼", "building", Point(x, y), g.code,
                   f"{address}{n}号楼", parent_key=key, attrs={"number": n})


def _add_pois(world: World) -> None:
    """Add township offices, police stations, health centres and the named sites in POIS."""
    for t in world.level(2):
        seat = np.array(metric_xy(*TOWNSHIP_SEATS[t.code]), float)
        office = "办事处" if is_street(t.code) else "人民政府"
        _add_poi(world, t.name + office, Point(seat))
        _add_poi(world, township_short(t.name) + "派出所", Point(seat + (320.0, -180.0)))
        if not is_street(t.code):
            _add_poi(world, t.name + "卫生院", Point(seat + (-260.0, 210.0)))
    for name, code, where in POIS:
        _add_poi(world, name, _poi_point(world, code, where))


def _poi_point(world: World, code: str, where: tuple) -> Point:
    """Locate a POI from its POIS entry, always inside its township."""
    t = world.areas[code]
    if where[0] == "seat":
        p = Point(np.array(metric_xy(*TOWNSHIP_SEATS[code])) + where[1:])
    elif where[0] == "village":
        v = next(world.areas[c] for c in t.children if world.areas[c].name == where[1])
        p = Point(v.seed[0] + where[2], v.seed[1] + where[3])
        if not v.geom_m.contains(p):
            p = v.geom_m.point_on_surface()
    elif where[0] == "crossing":
        lines = {ln["name"]: ln["line"] for ln in world.lattice}
        cross = lines[where[1]].intersection(lines[where[2]])
        p = Point(cross.x + 45.0, cross.y + 45.0) if cross.geom_type == "Point" else Point()
        if p.is_empty or not t.geom_m.contains(p):
            p = _nearest_crossing(world, t)
    else:
        seat = Point(metric_xy(*TOWNSHIP_SEATS[code]))
        rural = [g for g in world.grids if g.code.startswith(code) and not g.urban]
        g = min(rural, key=lambda g: (g.geom_m.centroid.distance(seat), g.code))
        p = Point(g.seed) if g.geom_m.contains(Point(g.seed)) else g.geom_m.point_on_surface()
    return p if t.geom_m.contains(p) else t.geom_m.point_on_surface()


def _nearest_crossing(world: World, t: Area) -> Point:
    """Find the street corner in township `t` nearest its seat (a fallback site for a POI)."""
    seat = Point(metric_xy(*TOWNSHIP_SEATS[t.code]))
    corners = [a["line"].intersection(b["line"]) for a in world.lattice if a["orient"] == "ns"
               for b in world.lattice if b["orient"] == "ew" and a["line"].intersects(b["line"])]
    inside = [Point(c.x + 45.0, c.y + 45.0) for c in corners if t.geom_m.contains(c)]
    return min(inside, key=lambda c: (c.distance(seat), c.x)) if inside else t.geom_m.point_on_surface()


def _add_poi(world: World, name: str, p: Point) -> None:
    """Add a named site, addressed by township and village (郾城区龙塔街道金牛社区中医医院家属院)."""
    grid = world.grid_at([p.x], [p.y])[0]
    t = world.township_of(grid.code)
    v = world.village_of(grid.code)
    address = f"{DISTRICT_NAME}{name}" if name.startswith(t.name) else \
        f"{DISTRICT_NAME}{t.name}{v.name}{name}"
    _add_place(world, f"poi:{name}", name, "poi", p, grid.code, address)


def _add_groups(world: World) -> None:
    """Add one 组 (villager group / natural village) per rural grid, at the grid's seed point."""
    for g in sorted((g for g in world.grids if not g.urban), key=lambda g: g.code):
        v = world.village_of(g.code)
        p = Point(g.seed)
        if not g.geom_m.contains(p):
            p = g.geom_m.point_on_surface()
        group = g.attrs["group"]
        _add_place(world, f"group:{g.code}", f"{v.name}{group}", "group", p, g.code,
                   f"{address_prefix(world, g)}{v.name}{group}",
                   attrs={"village_code": v.code, "group": group})


def mark_dedicated_grids(world: World) -> None:
    """Make the grids round a hospital, school, station or industrial park 专属网格."""
    for place in world.places:
        if place["kind"] == "poi" and place["name"] in DEDICATED:
            g = world.areas[place["area_code"]]
            g.kind = "专属网格"
            g.attrs["dedicated_to"] = place["name"]
