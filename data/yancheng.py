"""Generate the deterministic 郾城区 demo: areas, staff, 三零 subjects, gazetteer, roads, incidents, patrols.

Real: the district outline (DataV, GCJ-02, converted to WGS84) and the 10 townships and 198
villages/communities with their statistical codes and official names. Everything below the district
outline is synthetic; data/README.md lists what and how. Geometries are shapely objects in WGS84
lon/lat; metric work is done in CGCS2000 / 3-degree Gauss-Kruger CM 114E (EPSG:4547).

`generate(seed)` is pure (no database, no clock, no network) and byte-for-byte repeatable: every step
draws from its own generator seeded with (seed, step), so changing one step leaves the others alone.
"""
from __future__ import annotations

import bisect
import csv
import itertools
import json
import math
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from pyproj import Transformer
from scipy.signal import lfilter
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra, minimum_spanning_tree
from scipy.spatial import Delaunay
from shapely.geometry import LineString, MultiPolygon, Point, box

from geo import crs
from geo.errors import SetupError

DEMO_VERSION = "2"
SEED = 411103
DISTRICT_CODE = "411103"
DISTRICT_NAME = "郾城区"
METRIC_EPSG = 4547
SNAP_M = 0.001  # boundaries are noded on a 1 mm grid so neighbours share identical vertices
TZ = ZoneInfo("Asia/Shanghai")
PERIOD_START = datetime(2025, 11, 1, tzinfo=TZ)
PERIOD_END = datetime(2026, 10, 31, 23, 59, tzinfo=TZ)
PATROL_DAY = date(2026, 10, 31)
BOUNDARY_TIME = datetime(2025, 10, 1, tzinfo=TZ)  # the import predates every demo incident
OUTLINE_FILE = "411103_yancheng_outline_gcj02.geojson"
DIVISIONS_FILE = "411103_divisions.csv"
NAMES_FILE = Path(__file__).with_name("yancheng_names.json")
REFERENCE_DIR = Path(__file__).with_name("reference")

SHANGQIAO = "411103102"
SHANGQIAO_GRIDS = 97  # the article: 97 third-level grids (villager groups)
OTHER_RURAL_GRIDS = 290  # rural grids outside 商桥镇, shared by area
URBAN_GRID_HOUSEHOLDS = (310, 490)  # 300–500 per urban grid
RURAL_GRID_HOUSEHOLDS = (210, 350)  # about 300: one natural village / villager group
PERSONS_PER_HOUSEHOLD = (2.8, 3.3)
SUBJECT_VILLAGES = 183  # the article counts 183 村(社区); the 2022 list has 198
COMPLIANT_VILLAGES = 166  # 166 / 183 = 90.71 %
ENTERPRISES = 7022
COMPLIANT_ENTERPRISES = 6861  # 6861 / 7022 = 97.7 %
INCIDENTS = 20_000

# Synthetic township seats (lon, lat). The three 街道 form the urban core in the south-east, on
# the north bank of the 沙河 facing 漯河's centre (≈ 114.02E 33.58N); the towns ring them.
TOWNSHIP_SEATS = {
    "411103001": (114.045, 33.597), "411103002": (114.000, 33.603), "411103003": (114.072, 33.622),
    "411103101": (114.035, 33.660), "411103102": (113.810, 33.690), "411103103": (113.845, 33.625),
    "411103104": (113.890, 33.725), "411103105": (113.942, 33.637), "411103106": (113.975, 33.715),
    "411103107": (114.060, 33.715),
}
URBAN_CORE = (113.968, 33.577, 114.100, 33.634)  # lon/lat box of the street grid
LATTICE_SPACING_M = (800.0, 720.0)  # north–south roads, east–west roads
NS_FILLER_ROADS = ["交通路", "燕山路", "衡山路", "华山路", "黄山路", "庐山路", "天山路", "峨眉山路"]
EW_FILLER_ROADS = ["黄河路", "淞江路", "长江路", "珠江路", "湘江路", "漓江路", "汉江路", "闽江路"]
# Filler roads that should cross a given township (the DOMAIN example 沙北街道黄河路123号).
FILLER_HOME = {"黄河路": "411103001", "淞江路": "411103003", "交通路": "411103001"}
DOOR_SPACING_M = 40.0
DOOR_OFFSET_M = 14.0
DIRECTIONS = {"东": (1.0, 0.0), "西": (-1.0, 0.0), "南": (0.0, -1.0), "北": (0.0, 1.0)}
ZH_DIGITS = "零一二三四五六七八九"


@dataclass
class Demo:
    """The generated demo: plain lists of dicts, geometries as shapely objects in WGS84 lon/lat."""

    seed: int
    areas: list[dict] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)
    people: list[dict] = field(default_factory=list)
    staff: list[dict] = field(default_factory=list)
    departments: list[dict] = field(default_factory=list)
    entities: list[dict] = field(default_factory=list)
    places: list[dict] = field(default_factory=list)
    roads: list[dict] = field(default_factory=list)
    incidents: list[dict] = field(default_factory=list)
    hotspots: list[dict] = field(default_factory=list)
    units: list[dict] = field(default_factory=list)
    positions: list[dict] = field(default_factory=list)
    shifts: list[dict] = field(default_factory=list)
    tracks: list[dict] = field(default_factory=list)
    version: str = DEMO_VERSION

    def counts(self) -> dict[str, int]:
        """Return the number of records of every kind."""
        names = ("areas", "groups", "people", "staff", "departments", "entities", "places", "roads",
                 "incidents", "hotspots", "units", "positions", "shifts", "tracks")
        return {name: len(getattr(self, name)) for name in names}


def generate(seed: int = SEED) -> Demo:
    """Generate the whole demo for `seed`; the same seed always gives the same data."""
    world = _World(seed, _names())
    _build_areas(world)
    _build_places(world)
    _mark_dedicated_grids(world)
    _build_staff(world)
    _build_entities(world)
    _build_roads(world)
    _build_incidents(world)
    _build_patrols(world)
    return world.demo()


# -- coordinates --------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _transformer(source: int, target: int) -> Transformer:
    return Transformer.from_crs(source, target, always_xy=True)


def to_metric(geom):
    """Project WGS84 geometries (one or an array) to EPSG:4547 metres."""
    t = _transformer(4326, METRIC_EPSG)
    return shapely.transform(geom, lambda c: np.column_stack(t.transform(c[:, 0], c[:, 1])))


def to_wgs84(geom):
    """Unproject EPSG:4547 geometries (one or an array) to WGS84 lon/lat."""
    t = _transformer(METRIC_EPSG, 4326)
    return shapely.transform(geom, lambda c: np.column_stack(t.transform(c[:, 0], c[:, 1])))


def _lonlat(x, y) -> tuple[np.ndarray, np.ndarray]:
    return _transformer(METRIC_EPSG, 4326).transform(np.asarray(x, float), np.asarray(y, float))


def _xy(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    return _transformer(4326, METRIC_EPSG).transform(np.asarray(lon, float), np.asarray(lat, float))


def _as_multi(geom) -> MultiPolygon:
    """Return the polygonal part of `geom` as a MultiPolygon."""
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    polys = [p for g in parts for p in shapely.get_parts(g)]
    return MultiPolygon(polys)


# -- real inputs --------------------------------------------------------------------------------
def realdata_file(name: str) -> Path:
    """Path of a real reference file kept in data/reference (sources in data/SOURCES.md)."""
    path = REFERENCE_DIR / name
    if not path.is_file():
        raise SetupError(f"real data file {path} is missing from the repository (see data/SOURCES.md)")
    return path


def read_outline() -> MultiPolygon:
    """Read the real district outline and convert it from GCJ-02 to WGS84."""
    path = realdata_file(OUTLINE_FILE)
    feature = json.loads(path.read_text(encoding="utf-8"))["features"][0]
    gcj = shapely.geometry.shape(feature["geometry"])
    return _as_multi(shapely.make_valid(crs.transform_geometry(gcj, "gcj02")))


def read_divisions() -> list[dict]:
    """Read the real township and village codes and official names (2022 statistical list)."""
    path = realdata_file(DIVISIONS_FILE)
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = [{k.strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(f)]
    return [r for r in rows if r["code"].startswith(DISTRICT_CODE)]


def short_name(official: str) -> str:
    """Shorten an official committee name: 金牛社区居民委员会 → 金牛社区, 商南村民委员会 → 商南村."""
    if official.endswith("社区居民委员会"):
        return official.removesuffix("居民委员会")
    if official.endswith("居民委员会"):
        return official.removesuffix("居民委员会") + "社区"
    if official.endswith("村村民委员会"):
        return official.removesuffix("村民委员会")
    if official.endswith("村民委员会"):
        return official.removesuffix("村民委员会") + "村"
    return official


def township_short(name: str) -> str:
    """沙北街道 → 沙北, 商桥镇 → 商桥."""
    return name.removesuffix("街道").removesuffix("镇").removesuffix("乡")


def zh_number(n: int) -> str:
    """Write 1–99 in Chinese numerals (三, 十二, 二十一)."""
    tens, ones = divmod(n, 10)
    if tens == 0:
        return ZH_DIGITS[ones]
    head = "" if tens == 1 else ZH_DIGITS[tens]
    return head + "十" + (ZH_DIGITS[ones] if ones else "")


@lru_cache(maxsize=1)
def _names() -> dict:
    return json.loads(NAMES_FILE.read_text(encoding="utf-8"))


# -- the generation state ------------------------------------------------------------------------
@dataclass
class _Area:
    """An area while it is being generated (metric working geometry alongside the WGS84 one)."""

    code: str
    name: str
    level: int
    parent: str | None
    kind: str
    urban: bool
    official: str
    seed: tuple[float, float] | None = None  # metric
    cell: object = None  # metric polygon before the final noding
    geom_m: object = None  # final, metric
    geom: object = None  # final, WGS84
    households: int = 0
    population: int = 0
    children: list[str] = field(default_factory=list)
    group_code: str | None = None
    attrs: dict = field(default_factory=dict)


class _World:
    """Everything generated so far, with the look-ups later steps need."""

    def __init__(self, seed: int, names: dict):
        self.seed = seed
        self.names = names
        self.areas: dict[str, _Area] = {}
        self.lattice: list[dict] = []
        self.groups: list[dict] = []
        self.people: list[dict] = []
        self.staff: list[dict] = []
        self.departments: list[dict] = []
        self.entities: list[dict] = []
        self.places: list[dict] = []
        self.roads: list[dict] = []
        self.incidents: list[dict] = []
        self.hotspots: list[dict] = []
        self.units: list[dict] = []
        self.positions: list[dict] = []
        self.shifts: list[dict] = []
        self.tracks: list[dict] = []
        self.graph: dict = {}
        self.staff_by_grid: dict[str, dict[str, dict]] = {}
        self.core = None  # the urban street grid's extent (metric)
        self.place_xy: dict[str, tuple[float, float]] = {}
        self.by_grid: dict[str, dict[str, list[dict]]] = {}
        self._grid_tree = None
        self._used_names: set[str] = set()

    def rng(self, step: str) -> np.random.Generator:
        """Return a generator for one step, independent of every other step's draws."""
        return np.random.default_rng([self.seed, zlib.crc32(step.encode("utf-8"))])

    def level(self, level: int) -> list[_Area]:
        return [a for a in self.areas.values() if a.level == level]

    def township_of(self, code: str) -> _Area:
        return self.areas[code[:9]]

    def village_of(self, code: str) -> _Area:
        return self.areas[code[:12]]

    @property
    def grids(self) -> list[_Area]:
        return self.level(4)

    def grid_tree(self):
        if self._grid_tree is None:
            grids = self.grids
            self._grid_tree = (shapely.STRtree([g.geom_m for g in grids]), grids)
        return self._grid_tree

    def grid_at(self, x: np.ndarray, y: np.ndarray) -> list[_Area | None]:
        """Find the grid holding each metric point (the lowest code on a shared edge), or None."""
        tree, grids = self.grid_tree()
        pts = shapely.points(np.asarray(x, float), np.asarray(y, float))
        found: list[_Area | None] = [None] * len(pts)
        for p, g in zip(*tree.query(pts, predicate="intersects")):
            if found[p] is None or grids[g].code < found[p].code:
                found[p] = grids[g]
        return found

    def person_name(self, rng: np.random.Generator, gender: str) -> str:
        """Invent a two- or three-character Chinese name."""
        surnames = self.names["surnames"]
        given = self.names["given_male" if gender == "M" else "given_female"]
        name = surnames[int(rng.integers(len(surnames)))]
        for _ in range(1 if rng.random() < 0.3 else 2):
            name += given[int(rng.integers(len(given)))]
        return name

    def unique(self, candidate: str, fallback_prefixes: list[str]) -> str | None:
        """Reserve a name, trying prefixed variants when taken; None when all are taken."""
        for name in [candidate] + [p + candidate for p in fallback_prefixes]:
            if name not in self._used_names:
                self._used_names.add(name)
                return name
        return None

    def demo(self) -> Demo:
        return Demo(seed=self.seed, areas=[_area_record(a) for a in self._ordered_areas()],
                    groups=self.groups, people=self.people, staff=self.staff,
                    departments=self.departments, entities=self.entities, places=self.places,
                    roads=self.roads, incidents=self.incidents, hotspots=self.hotspots,
                    units=self.units, positions=self.positions, shifts=self.shifts,
                    tracks=self.tracks)

    def _ordered_areas(self) -> list[_Area]:
        return sorted(self.areas.values(), key=lambda a: (a.level, a.code))


def _area_record(a: _Area) -> dict:
    return {"code": a.code, "name": a.name, "level": a.level, "parent_code": a.parent,
            "kind": a.kind, "geom": a.geom, "households": a.households,
            "population": a.population, "urban": a.urban, "group_code": a.group_code,
            "attrs": dict(a.attrs)}


# -- tiling ------------------------------------------------------------------------------------
def _sample_in(poly, n: int, rng: np.random.Generator) -> np.ndarray:
    """Draw n uniform random points inside a metric polygon, as an (n, 2) array."""
    minx, miny, maxx, maxy = poly.bounds
    shapely.prepare(poly)
    out = np.empty((0, 2))
    while len(out) < n:
        pts = rng.uniform((minx, miny), (maxx, maxy), size=(max(64, 3 * n), 2))
        out = np.vstack([out, pts[shapely.contains_xy(poly, pts[:, 0], pts[:, 1])]])
    return out[:n]


def _spread(poly, n: int, rng: np.random.Generator, fixed: np.ndarray | None = None,
            candidates: int = 16) -> np.ndarray:
    """Pick n well-spread points inside `poly` (Mitchell's best candidate), away from `fixed`."""
    chosen = np.empty((0, 2)) if fixed is None else np.asarray(fixed, float).reshape(-1, 2)
    pool = _sample_in(poly, n * candidates, rng)
    picked = []
    for i in range(n):
        cand = pool[i * candidates:(i + 1) * candidates]
        if len(chosen):
            d = np.min(np.hypot(cand[:, None, 0] - chosen[None, :, 0],
                                cand[:, None, 1] - chosen[None, :, 1]), axis=1)
            best = cand[int(np.argmax(d))]
        else:
            best = cand[0]
        picked.append(best)
        chosen = np.vstack([chosen, best])
    return np.array(picked).reshape(-1, 2)


def _voronoi(parent, seeds: np.ndarray) -> list:
    """Cut a metric polygon into one Voronoi cell per seed, in seed order."""
    if len(seeds) == 1:
        return [parent]
    minx, miny, maxx, maxy = parent.bounds
    pad = max(maxx - minx, maxy - miny)
    frame = box(minx - pad, miny - pad, maxx + pad, maxy + pad)
    cells = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=frame, ordered=True)
    return _merge_detached(list(shapely.intersection(np.array(cells.geoms), parent)))


def _merge_detached(cells: list) -> list:
    """Hand each detached piece of a cell to the neighbour sharing most of its edge."""
    cells = list(cells)
    for i in range(len(cells)):
        parts = sorted(shapely.get_parts(cells[i]), key=lambda p: -p.area)
        if len(parts) < 2:
            continue
        keep = [parts[0]]
        for piece in parts[1:]:
            edge = piece.boundary
            shared = [(edge.intersection(c.boundary).length, j) for j, c in enumerate(cells) if j != i]
            length, j = max(shared) if shared else (0.0, -1)
            if length > 0:
                cells[j] = shapely.union(cells[j], piece)
            else:
                keep.append(piece)
        cells[i] = shapely.union_all(keep)
    return cells


def _relax(parent, seeds: np.ndarray, fixed: np.ndarray, rounds: int = 2) -> np.ndarray:
    """Move each free seed to its cell's centre (Lloyd relaxation) so the cells come out even."""
    seeds = seeds.copy()
    for _ in range(rounds):
        cells = _voronoi(parent, seeds)
        for i, cell in enumerate(cells):
            if fixed[i] or cell.is_empty:
                continue
            c = cell.centroid
            if not cell.contains(c):
                c = cell.point_on_surface()
            seeds[i] = (c.x, c.y)
    return seeds


def _apportion(total: int, weights, minimum: int) -> list[int]:
    """Split `total` in proportion to `weights`, each at least `minimum` (largest remainder)."""
    w = np.asarray(weights, float)
    rest = total - minimum * len(w)
    quota = rest * w / w.sum()
    counts = np.floor(quota).astype(int)
    order = sorted(range(len(w)), key=lambda i: (-(quota[i] - counts[i]), i))
    for i in order[:rest - int(counts.sum())]:
        counts[i] += 1
    return [int(c) + minimum for c in counts]


def _assemble(cells: list) -> list[MultiPolygon]:
    """Rebuild metric cells as an exact coverage: node all edges on a 1 mm grid, polygonize, regroup.

    Cells cut separately differ by floating-point noise along shared edges; after noding, every
    face belongs to exactly one cell and neighbours share the very same vertices.
    """
    lines = shapely.unary_union(shapely.boundary(np.array(cells)), grid_size=SNAP_M)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(lines)))
    tree = shapely.STRtree(cells)
    owner = np.full(len(faces), -1)
    inner, cell = tree.query(shapely.point_on_surface(faces), predicate="within")
    for f, c in zip(inner, cell):
        if owner[f] < 0 or c < owner[f]:
            owner[f] = c
    for f in np.flatnonzero(owner < 0):
        hits = tree.query(faces[f], predicate="intersects")
        if len(hits) == 0 or faces[f].area > 1.0:
            continue  # a real hole of the outline, not noding noise
        shared = [shapely.intersection(faces[f], cells[c]).area for c in hits]
        owner[f] = hits[int(np.argmax(shared))]
    out = []
    for i in range(len(cells)):
        mine = faces[owner == i]
        out.append(_as_multi(shapely.coverage_union_all(mine)))
    return out


# -- areas: district → township → village → grid ------------------------------------------------
def _build_areas(world: _World) -> None:
    """Tile the real outline: townships, villages and grids, each an exact partition of its parent."""
    outline_m = to_metric(read_outline())
    world.areas[DISTRICT_CODE] = _Area(DISTRICT_CODE, DISTRICT_NAME, 1, None, "区", False,
                                       DISTRICT_NAME, cell=outline_m)
    _add_divisions(world, read_divisions())
    townships = world.level(2)
    seeds = np.array([_xy(*TOWNSHIP_SEATS[t.code]) for t in townships], float)
    for t, s, cell in zip(townships, seeds, _voronoi(outline_m, seeds)):
        t.seed, t.cell = (float(s[0]), float(s[1])), cell
    _build_lattice(world)
    anchored = _anchor_road_communities(world)
    _name_filler_roads(world)
    for t in townships:
        villages = [world.areas[c] for c in t.children]
        vseeds, fixed = _village_seeds(world, t, villages, anchored)
        vseeds = _relax(t.cell, vseeds, fixed)
        for v, s, cell in zip(villages, vseeds, _voronoi(t.cell, vseeds)):
            v.seed, v.cell = (float(s[0]), float(s[1])), cell
    _add_grids(world)
    _finalise_geometry(world)
    _number_grids(world)
    _count_households(world)


def _add_divisions(world: _World, rows: list[dict]) -> None:
    """Create the real townships and villages from the division list."""
    for r in rows:
        if r["level"] == "township":
            world.areas[r["code"]] = _Area(r["code"], r["name"], 2, DISTRICT_CODE,
                                           "街道" if r["name"].endswith("街道") else "镇",
                                           r["name"].endswith("街道"), r["name"])
    for r in rows:
        if r["level"] == "village":
            resident = r["name"].endswith("居民委员会")
            world.areas[r["code"]] = _Area(r["code"], short_name(r["name"]), 3, r["parent_code"],
                                           "社区" if resident else "村", resident, r["name"],
                                           attrs={"official_name": r["name"]})
    for a in sorted(world.areas.values(), key=lambda a: a.code):
        if a.parent:
            world.areas[a.parent].children.append(a.code)


def _is_street(code: str) -> bool:
    """Tell a 街道 (sub-district) by its township code: 001–099."""
    return int(code[6:9]) < 100


def _build_lattice(world: _World) -> None:
    """Lay the urban street grid over the three 街道: straight north–south and east–west roads."""
    rng = world.rng("lattice")
    streets = shapely.union_all([t.cell for t in world.level(2) if _is_street(t.code)])
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


def _road_orientation(road: str) -> str:
    """Orient a street: mountain-named roads (and 交通路) run north–south, river-named east–west."""
    return "ns" if road.endswith("山路") or road in ("昆仑路", "交通路") else "ew"


def _claim_line(world: _World, road: str, township: _Area) -> dict | None:
    """Name the free lattice line of the road's orientation running longest through `township`."""
    free = [ln for ln in world.lattice if ln["name"] is None and ln["orient"] == _road_orientation(road)]
    if not free:
        return None
    best = max(free, key=lambda ln: ln["line"].intersection(township.cell).length)
    if best["line"].intersection(township.cell).length < 300:
        return None
    best["name"] = road
    return best


def _name_filler_roads(world: _World) -> None:
    """Name the streets no community claimed (黄河路 and 交通路 through 沙北, 淞江路 through 淞江 …)."""
    for road, home in FILLER_HOME.items():
        _claim_line(world, road, world.areas[home])
    for orient, names in (("ns", NS_FILLER_ROADS), ("ew", EW_FILLER_ROADS)):
        pool = [n for n in names if n not in {ln["name"] for ln in world.lattice}]
        for ln in sorted((ln for ln in world.lattice if ln["orient"] == orient and ln["name"] is None),
                         key=lambda ln: ln["pos"]):
            ln["name"] = pool.pop(0)


def _village_seeds(world: _World, t: _Area, villages: list[_Area],
                   anchored: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Seed a township's villages; also return which seeds stay put during relaxation."""
    rng = world.rng(f"villages-{t.code}")
    seat = np.array(_xy(*TOWNSHIP_SEATS[t.code]), float)
    fixed = {v.code: anchored[v.code] for v in villages if v.code in anchored}
    for v in villages:
        if v.name == township_short(t.name) + "村":  # the village at the township seat
            fixed[v.code] = seat + (150.0, 0.0)
    held = set(fixed) | _place_direction_clusters(t, villages, seat, rng, fixed)
    near_seat = t.cell.intersection(Point(seat).buffer(2500))
    rural_part = t.cell.difference(world.core.buffer(200)) if _is_street(t.code) else t.cell
    for region, members in (
            (near_seat, [v for v in villages if v.urban and not _is_street(t.code)]),
            (rural_part if not rural_part.is_empty else t.cell, [v for v in villages if not v.urban]),
            (t.cell, [v for v in villages if v.urban])):
        todo = [v for v in members if v.code not in fixed]
        if todo:
            taken = np.array(list(fixed.values())) if fixed else None
            for v, p in zip(todo, _spread(region, len(todo), rng, taken)):
                fixed[v.code] = p
    seeds = np.array([fixed[v.code] for v in villages], float)
    return seeds, np.array([v.code in held for v in villages])


def _community_road(name: str) -> str | None:
    """Return the road a community is named after (嵩山路社区 → 嵩山路), or None."""
    base = name.removesuffix("社区")
    return base if base.endswith("路") and name.endswith("社区") else None


def _anchor_road_communities(world: _World) -> dict[str, np.ndarray]:
    """Name a street after each 嵩山路社区-style community and seed the community on it."""
    rng = world.rng("anchors")
    seeds = {}
    for v in world.level(3):
        t = world.areas[v.parent]
        road = _community_road(v.name) if _is_street(t.code) else None
        line = _claim_line(world, road, t) if road else None
        if line is None:
            continue
        part = max(shapely.get_parts(line["line"].intersection(t.cell)), key=lambda p: p.length)
        p = part.interpolate(float(rng.uniform(0.3, 0.7)), normalized=True)
        seeds[v.code] = np.array([p.x, p.y])
    return seeds


def _place_direction_clusters(t, villages, seat, rng, fixed) -> set[str]:
    """Put 商东/商西/商南-style villages east/west/south of a common centre; return their codes."""
    clusters: dict[str, list[tuple[_Area, str]]] = {}
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
            centre = _spread(t.cell.buffer(-1500) if not t.cell.buffer(-1500).is_empty else t.cell,
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


def _add_grids(world: _World) -> None:
    """Create each village's grids: count from households norms, cells from relaxed seeds."""
    rng = world.rng("grids")
    counts = _grid_counts(world)
    for v in world.level(3):
        n = counts[v.code]
        if n == 1:
            seeds, cells = np.array([v.seed]), [v.cell]
        else:
            seeds = _spread(v.cell, n, rng)
            seeds = _relax(v.cell, seeds, np.zeros(n, bool), rounds=3)
            cells = _voronoi(v.cell, seeds)
        for i, (s, cell) in enumerate(zip(seeds, cells)):
            low, high = URBAN_GRID_HOUSEHOLDS if v.urban else RURAL_GRID_HOUSEHOLDS
            g = _Area(f"{v.code}#{i:03d}", "", 4, v.code, "综合网格", v.urban, "",
                      seed=(float(s[0]), float(s[1])), cell=cell,
                      households=int(rng.integers(low, high + 1)))
            world.areas[g.code] = g


def _grid_counts(world: _World) -> dict[str, int]:
    """Count grids per village: 2–5 per urban community, rural grids shared out by area."""
    rng = world.rng("grid-counts")
    counts = {v.code: int(rng.integers(2, 6)) for v in world.level(3) if v.urban}
    shangqiao = [v for v in world.level(3) if v.parent == SHANGQIAO]
    others = [v for v in world.level(3) if not v.urban and v.parent != SHANGQIAO]
    counts.update(zip([v.code for v in shangqiao],
                      _apportion(SHANGQIAO_GRIDS, [v.cell.area for v in shangqiao], 2)))
    counts.update(zip([v.code for v in others],
                      _apportion(OTHER_RURAL_GRIDS, [v.cell.area for v in others], 1)))
    return counts


def _finalise_geometry(world: _World) -> None:
    """Make the grids an exact coverage, then build every parent as the union of its children."""
    grids = sorted(world.grids, key=lambda g: g.code)
    for g, geom in zip(grids, _assemble([g.cell for g in grids])):
        g.geom_m = geom
    for g, geom in zip(grids, to_wgs84(np.array([g.geom_m for g in grids]))):
        g.geom = _as_multi(geom)
        g.geom_m = to_metric(g.geom)  # later steps measure what is stored, not the noded original
    for level in (3, 2, 1):
        for a in world.level(level):
            kids = [world.areas[c] for c in a.children] if level < 3 else \
                [g for g in grids if g.parent == a.code]
            a.geom = _as_multi(shapely.coverage_union_all([k.geom for k in kids]))
            a.geom_m = to_metric(a.geom)
    for a in world.areas.values():
        a.cell = None
        if a.seed and not a.geom_m.contains(Point(a.seed)):
            p = a.geom_m.point_on_surface()  # the seed fell in a piece handed to a neighbour
            a.seed = (p.x, p.y)


def _number_grids(world: _World) -> None:
    """Give grids their codes: village code + 3 digits, numbered west→east, north→south."""
    renamed: dict[str, _Area] = {}
    for v in world.level(3):
        grids = [a for a in world.areas.values() if a.level == 4 and a.parent == v.code]
        band = math.sqrt(v.geom_m.area / len(grids))
        top = v.geom_m.bounds[3]
        def order(g):
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
    world.areas = {c: a for c, a in world.areas.items() if a.level < 4} | dict(sorted(renamed.items()))
    world._grid_tree = None


def _count_households(world: _World) -> None:
    """Give grids their population and let every parent sum its children."""
    rng = world.rng("population")
    for g in sorted(world.grids, key=lambda g: g.code):
        g.population = int(round(g.households * rng.uniform(*PERSONS_PER_HOUSEHOLD)))
    for level in (3, 2, 1):
        for a in world.level(level):
            kids = [world.areas[c] for c in a.children]
            a.households = sum(k.households for k in kids)
            a.population = sum(k.population for k in kids)


# -- gazetteer: roads, door numbers, 小区 and buildings, POIs, village groups ------------------------
def _build_places(world: _World) -> None:
    """Build the offline geocoder's gazetteer, every entry inside the finest area that holds it."""
    _add_road_places(world)
    _add_compounds(world, world.rng("compounds"))
    _add_pois(world)
    _add_groups(world)
    for place, geom in zip(world.places, to_wgs84(np.array([p["geom"] for p in world.places]))):
        place["geom"] = geom


def _add_place(world: _World, key: str, name: str, kind: str, geom_m, area_code: str,
               address: str, parent_key: str | None = None, attrs: dict | None = None) -> dict:
    """Add one gazetteer entry (metric geometry) and index it by grid for later steps."""
    place = {"key": key, "name": name, "kind": kind, "area_code": area_code,
             "parent_key": parent_key, "geom": geom_m, "address": address,
             "attrs": attrs or {}}  # metric until _build_places converts them all at once
    world.places.append(place)
    if geom_m.geom_type == "Point":
        world.place_xy[key] = (geom_m.x, geom_m.y)
        if len(area_code) == 15:
            world.by_grid.setdefault(area_code, {}).setdefault(kind, []).append(place)
    return place


def _finest_area(world: _World, geom_m) -> _Area:
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


def _prefix(world: _World, area: _Area) -> str:
    """Start an address in `area`: 郾城区 and the township's name."""
    parts = [DISTRICT_NAME]
    if area.level >= 2:
        parts.append(world.areas[area.code[:9]].name)
    return "".join(parts)


def _add_road_places(world: _World) -> None:
    """Add every street and its door numbers."""
    for ln in sorted(world.lattice, key=lambda ln: ln["name"]):
        line = ln["line"]
        area = _finest_area(world, line)
        _add_place(world, f"road:{ln['name']}", ln["name"], "road", line, area.code,
                   f"{_prefix(world, area)}{ln['name']}", attrs={"orientation": ln["orient"]})
        (x0, y0), (x1, y1) = line.coords[0], line.coords[-1]
        if (ln["orient"] == "ew" and x1 > x0) or (ln["orient"] == "ns" and y1 < y0):
            line = LineString(line.coords[::-1])  # east→west and south→north numbering
        _add_doors(world, ln["name"], line)


def _add_doors(world: _World, road: str, line: LineString) -> None:
    """Number doors every 40 m, odd on the right facing increasing numbers, skipping crossings."""
    crossings = [line.project(other["line"].intersection(line)) for other in world.lattice
                 if other["orient"] != _road_orientation(road) and other["line"].intersects(line)]
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
        address = f"{_prefix(world, grid)}{road}{n}号"
        _add_place(world, f"door:{road}:{n}", f"{n}号", "door", Point(x, y), grid.code, address,
                   parent_key=f"road:{road}", attrs={"number": n, "road": road})


def _compound_names(world: _World, rng: np.random.Generator):
    """Yield 小区 names (阳光花园, 锦绣家园 …) in a seeded order."""
    first, second = world.names["compound_first"], world.names["compound_second"]
    combos = [a + b for a in first for b in second]
    order = rng.permutation(len(combos))
    for i in order:
        yield combos[int(i)]


def _add_compounds(world: _World, rng: np.random.Generator) -> None:
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
        for c in _sample_in(room, 25, rng):
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
        address, parent = f"{_prefix(world, g)}{village.name}{name}", None
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


def _add_pois(world: _World) -> None:
    """Add township offices, police stations, health centres and the named sites in POIS."""
    for t in world.level(2):
        seat = np.array(_xy(*TOWNSHIP_SEATS[t.code]), float)
        office = "办事处" if _is_street(t.code) else "人民政府"
        _add_poi(world, t.name + office, Point(seat))
        _add_poi(world, township_short(t.name) + "派出所", Point(seat + (320.0, -180.0)))
        if not _is_street(t.code):
            _add_poi(world, t.name + "卫生院", Point(seat + (-260.0, 210.0)))
    for name, code, where in POIS:
        _add_poi(world, name, _poi_point(world, code, where))


def _poi_point(world: _World, code: str, where: tuple) -> Point:
    """Locate a POI from its POIS entry, always inside its township."""
    t = world.areas[code]
    if where[0] == "seat":
        p = Point(np.array(_xy(*TOWNSHIP_SEATS[code])) + where[1:])
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
        seat = Point(_xy(*TOWNSHIP_SEATS[code]))
        rural = [g for g in world.grids if g.code.startswith(code) and not g.urban]
        g = min(rural, key=lambda g: (g.geom_m.centroid.distance(seat), g.code))
        p = Point(g.seed) if g.geom_m.contains(Point(g.seed)) else g.geom_m.point_on_surface()
    return p if t.geom_m.contains(p) else t.geom_m.point_on_surface()


def _nearest_crossing(world: _World, t: _Area) -> Point:
    """Find the street corner in township `t` nearest its seat (a fallback site for a POI)."""
    seat = Point(_xy(*TOWNSHIP_SEATS[t.code]))
    corners = [a["line"].intersection(b["line"]) for a in world.lattice if a["orient"] == "ns"
               for b in world.lattice if b["orient"] == "ew" and a["line"].intersects(b["line"])]
    inside = [Point(c.x + 45.0, c.y + 45.0) for c in corners if t.geom_m.contains(c)]
    return min(inside, key=lambda c: (c.distance(seat), c.x)) if inside else t.geom_m.point_on_surface()


def _add_poi(world: _World, name: str, p: Point) -> None:
    """Add a named site, addressed by township and village (郾城区龙塔街道金牛社区中医医院家属院)."""
    grid = world.grid_at([p.x], [p.y])[0]
    t = world.township_of(grid.code)
    v = world.village_of(grid.code)
    address = f"{DISTRICT_NAME}{name}" if name.startswith(t.name) else \
        f"{DISTRICT_NAME}{t.name}{v.name}{name}"
    _add_place(world, f"poi:{name}", name, "poi", p, grid.code, address)


def _add_groups(world: _World) -> None:
    """Add one 组 (villager group / natural village) per rural grid, at the grid's seed point."""
    for g in sorted((g for g in world.grids if not g.urban), key=lambda g: g.code):
        v = world.village_of(g.code)
        p = Point(g.seed)
        if not g.geom_m.contains(p):
            p = g.geom_m.point_on_surface()
        group = g.attrs["group"]
        _add_place(world, f"group:{g.code}", f"{v.name}{group}", "group", p, g.code,
                   f"{_prefix(world, g)}{v.name}{group}", attrs={"village_code": v.code, "group": group})


def _mark_dedicated_grids(world: _World) -> None:
    """Make the grids round a hospital, school, station or industrial park 专属网格."""
    for place in world.places:
        if place["kind"] == "poi" and place["name"] in DEDICATED:
            g = world.areas[place["area_code"]]
            g.kind = "专属网格"
            g.attrs["dedicated_to"] = place["name"]


# -- 商桥镇's first-level grids and 一长两员 -------------------------------------------------------------
ZONES = (("G1", "东", "东部一级网格"), ("G2", "南", "南部一级网格"), ("G3", "西", "西部一级网格"),
         ("G4", "中", "中部一级网格"))
CENTRAL_VILLAGES = 5


def _build_groups(world: _World) -> None:
    """Group 商桥镇's 21 villages into the article's 东/南/西/中 first-level grids by position."""
    rng = world.rng("groups")
    town = world.areas[SHANGQIAO]
    seat = np.array(_xy(*TOWNSHIP_SEATS[SHANGQIAO]), float)
    villages = [world.areas[c] for c in town.children]
    centre = {v.code: np.array(v.geom_m.centroid.coords[0]) - seat for v in villages}
    by_distance = sorted(villages, key=lambda v: (float(np.hypot(*centre[v.code])), v.code))
    zone_of = {v.code: "中" for v in by_distance[:CENTRAL_VILLAGES]}
    for v in by_distance[CENTRAL_VILLAGES:]:
        dx, dy = centre[v.code]
        angle = math.degrees(math.atan2(dy, dx))
        zone_of[v.code] = "南" if -135 < angle < -45 else ("东" if dx >= 0 else "西")
    for suffix, zone, name in ZONES:
        code = f"{SHANGQIAO}{suffix}"
        members = sorted(c for c, z in zone_of.items() if z == zone)
        for c in members:
            world.areas[c].group_code = code
        world.groups.append({"code": code, "name": name, "parent_code": SHANGQIAO,
                             "leader": world.person_name(rng, "M" if rng.random() < 0.8 else "F"),
                             "village_codes": members})


STAFF_ROLES = (("leader", 0.75, 0.85), ("worker", 0.5, 0.6), ("supervisor", 0.6, 0.45))


def _build_staff(world: _World) -> None:
    """Staff every grid with 一长两员: a grid leader, a grid worker and a supervisor (synthetic)."""
    _build_groups(world)
    rng = world.rng("staff")
    for g in sorted(world.grids, key=lambda g: g.code):
        for role, male_share, party_share in STAFF_ROLES:
            gender = "M" if rng.random() < male_share else "F"
            n = len(world.people) + 1
            person = {"key": f"P{n:05d}", "name": world.person_name(rng, gender),
                      "phone": f"1990000{n:04d}", "gender": gender,
                      "party_member": bool(rng.random() < party_share)}
            since = date(2021, 1, 1) + timedelta(days=int(rng.integers(0, 1600)))
            world.people.append(person)
            world.staff.append({"grid_code": g.code, "role": role, "person_key": person["key"],
                                "name": person["name"], "phone": person["phone"],
                                "gender": gender, "party_member": person["party_member"],
                                "since": since})
            world.staff_by_grid.setdefault(g.code, {})[role] = world.staff[-1]


# -- 三零 creation subjects -----------------------------------------------------------------------------
DEPARTMENTS = [
    ("JYJ", "郾城区教育局"), ("WJW", "郾城区卫生健康委员会"), ("MZJ", "郾城区民政局"),
    ("YJJ", "郾城区应急管理局"), ("SCJGJ", "郾城区市场监督管理局"), ("ZJJ", "郾城区住房和城乡建设局"),
    ("JTYSJ", "郾城区交通运输局"), ("NYNCJ", "郾城区农业农村局"), ("SWJ", "郾城区商务局"),
    ("WGLJ", "郾城区文化广电和旅游局"), ("GAFJ", "漯河市公安局郾城分局"),
    ("RSJ", "郾城区人力资源和社会保障局"), ("GXJ", "郾城区工业和信息化局"),
    ("STHJ", "漯河市生态环境局郾城分局"), ("SLJ", "郾城区水利局"), ("CGJ", "郾城区城市管理局"),
    ("ZRZY", "漯河市自然资源和规划局郾城分局"), ("SFJ", "郾城区司法局"),
    ("XFJY", "郾城区消防救援大队"), ("SWU", "国家税务总局漯河市郾城区税务局"),
]
# (department, name pattern, weight in urban grids, weight in rural grids)
ENTERPRISE_TYPES = [
    ("SCJGJ", "{t}超市", 10, 6), ("SCJGJ", "{t}餐饮店", 10, 3), ("SCJGJ", "{t}商贸有限公司", 8, 3),
    ("SCJGJ", "{t}便利店", 6, 4), ("YJJ", "{t}加油站", 1, 2), ("YJJ", "漯河市{t}化工有限公司", 0.5, 1),
    ("YJJ", "{t}烟花爆竹经营部", 0.3, 1), ("ZJJ", "{t}建筑工程有限公司", 3, 1.5),
    ("ZJJ", "{t}物业服务有限公司", 4, 0), ("JTYSJ", "{t}物流有限公司", 2, 2),
    ("JTYSJ", "{t}汽车维修中心", 2, 1.5), ("NYNCJ", "{v}{t}种植专业合作社", 0, 5),
    ("NYNCJ", "{t}养殖场", 0, 3), ("NYNCJ", "{v}{t}农机专业合作社", 0, 1), ("SWJ", "{t}酒店", 2, 0.5),
    ("SWJ", "{t}再生资源回收站", 1, 1), ("WGLJ", "{t}网吧", 1.5, 0.3), ("WGLJ", "{t}歌舞厅", 0.8, 0.1),
    ("GAFJ", "{t}宾馆", 2, 0.5), ("GAFJ", "{t}开锁服务部", 0.5, 0.1),
    ("RSJ", "{t}人力资源服务有限公司", 1, 0.2), ("RSJ", "{t}职业培训学校", 0.5, 0.1),
    ("GXJ", "漯河市{t}食品有限公司", 1.5, 2), ("GXJ", "{t}机械制造有限公司", 1, 1.5),
    ("GXJ", "{t}电子科技有限公司", 1, 0.3), ("STHJ", "{t}环保科技有限公司", 0.5, 0.5),
    ("STHJ", "{t}污水处理有限公司", 0.2, 0.3), ("SLJ", "{t}供水有限公司", 0.2, 0.5),
    ("CGJ", "{t}停车场", 1.5, 0), ("CGJ", "{t}广告有限公司", 1, 0), ("ZRZY", "{t}砂石料场", 0, 0.5),
    ("ZRZY", "{t}建材有限公司", 0.5, 1), ("SFJ", "{t}律师事务所", 0.8, 0), ("XFJY", "{t}商场", 1.5, 0.3),
    ("XFJY", "{t}家具城", 0.8, 0.3), ("SWU", "{t}财务咨询有限公司", 1, 0.1),
]
# Institutions, one per village (rural or urban) or per township: (department, pattern, scope, share)
INSTITUTION_TYPES = [
    ("WJW", "{v}卫生室", "rural", 1.0), ("WJW", "{v}卫生服务站", "urban", 1.0),
    ("JYJ", "{b}小学", "rural", 0.7), ("JYJ", "{b}幼儿园", "urban", 0.6),
    ("MZJ", "{v}日间照料中心", "urban", 0.5), ("JYJ", "{T}中心小学", "township", 1.0),
    ("JYJ", "{T}第一初级中学", "township", 1.0), ("SFJ", "{T}司法所", "township", 1.0),
    ("NYNCJ", "{T}农业服务中心", "township", 1.0), ("MZJ", "{T}敬老院", "town", 1.0),
    ("SLJ", "{T}水利站", "town", 1.0),
]


def _build_entities(world: _World) -> None:
    """Create the 183 village subjects and 7,022 enterprises/institutions, compliance exact."""
    rng = world.rng("entities")
    world.departments = [{"code": f"{DISTRICT_CODE}-{c}", "name": n} for c, n in DEPARTMENTS]
    _add_village_subjects(world, rng)
    firms = _institutions(world, rng)
    _add_enterprises(world, rng, ENTERPRISES - len(firms), firms)
    bad = set(rng.choice(len(firms), ENTERPRISES - COMPLIANT_ENTERPRISES, replace=False).tolist())
    for i, e in enumerate(firms):
        e["compliant"] = i not in bad
    world.entities.extend(firms)
    xy = np.array([e["geom"] for e in world.entities])  # metric (x, y) until now
    for e, geom in zip(world.entities, to_wgs84(shapely.points(xy))):
        e["geom"] = geom


def _add_village_subjects(world: _World, rng: np.random.Generator) -> None:
    """Take 183 of the 198 as subjects, leaving out the 15 with the fewest households."""
    villages = sorted(world.level(3), key=lambda v: (v.households, v.code))
    subjects = sorted(villages[len(villages) - SUBJECT_VILLAGES:], key=lambda v: v.code)
    bad = set(rng.choice(len(subjects), SUBJECT_VILLAGES - COMPLIANT_VILLAGES, replace=False).tolist())
    for i, v in enumerate(subjects):
        v.attrs["sanling_subject"] = True
        world.entities.append({
            "name": v.name, "kind": "village", "area_code": v.code, "department_code": None,
            "geom": v.seed, "address": f"{_prefix(world, v)}{v.name}",
            "compliant": i not in bad, "attrs": {"official_name": v.official}})


def _institutions(world: _World, rng: np.random.Generator) -> list[dict]:
    """Create the institutions: one of each kind per village or township (some kinds not everywhere)."""
    out = []
    for dept, pattern, scope, share in INSTITUTION_TYPES:
        if scope in ("township", "town"):
            hosts = [t for t in world.level(2) if scope == "township" or not _is_street(t.code)]
        else:
            hosts = [v for v in world.level(3) if v.urban == (scope == "urban")]
        for host in hosts:
            if rng.random() >= share:
                continue
            name = pattern.format(v=host.name, b=host.name.removesuffix("村"), T=host.name)
            if world.unique(name, []) is None:
                continue
            grid = _host_grid(world, host)
            out.append(_entity(world, rng, name, "institution", dept, grid))
    return out


def _host_grid(world: _World, host: _Area) -> _Area:
    """Find the grid at a township's seat or a village's centre."""
    x, y = _xy(*TOWNSHIP_SEATS[host.code]) if host.level == 2 else host.seed
    grid = world.grid_at([x], [y])[0]
    return grid or world.areas[sorted(c for c in world.areas if c.startswith(host.code) and len(c) == 15)[0]]


def _add_enterprises(world: _World, rng: np.random.Generator, n: int, out: list[dict]) -> None:
    """Spread enterprises over grids by households, two and a half times denser in town."""
    grids = sorted(world.grids, key=lambda g: g.code)
    weights = [g.households * (2.5 if g.urban else 1.0) for g in grids]
    first, second = world.names["trade_first"], world.names["trade_second"]
    for g, count in zip(grids, _apportion(n, weights, 0)):
        types = [t for t in ENTERPRISE_TYPES if (t[2] if g.urban else t[3]) > 0]
        w = np.array([t[2] if g.urban else t[3] for t in types], float)
        v = world.village_of(g.code)
        prefixes = [township_short(world.township_of(g.code).name), v.name]
        for _ in range(count):
            dept, pattern = types[int(rng.choice(len(types), p=w / w.sum()))][:2]
            name = None
            while name is None:
                trade = first[int(rng.integers(len(first)))] + second[int(rng.integers(len(second)))]
                name = world.unique(pattern.format(t=trade, v=v.name), prefixes)
            out.append(_entity(world, rng, name, "enterprise", dept, g))


def _entity(world, rng, name: str, kind: str, dept: str, grid: _Area) -> dict:
    """Create one enterprise or institution at a gazetteer place of its grid."""
    place, (x, y) = _spot_in_grid(world, rng, grid)
    address = place["address"] if place else _prefix(world, grid) + world.village_of(grid.code).name
    return {"name": name, "kind": kind, "area_code": grid.code,
            "department_code": f"{DISTRICT_CODE}-{dept}", "geom": (x, y), "address": address,
            "compliant": True, "attrs": {"place_key": place["key"] if place else None}}


def _spot_in_grid(world: _World, rng: np.random.Generator, grid: _Area,
                  kinds: tuple[str, ...] = ("door", "building", "group")):
    """Pick a gazetteer place in the grid and a point a few metres from it, still inside."""
    places = world.by_grid.get(grid.code, {})
    pool = [p for k in kinds for p in places.get(k, [])]
    if not pool:
        p = grid.geom_m.point_on_surface()
        return None, (p.x, p.y)
    place = pool[int(rng.integers(len(pool)))]
    x0, y0 = world.place_xy[place["key"]]
    spread = 120.0 if place["kind"] == "group" else 6.0
    x, y = x0 + rng.normal(0, spread), y0 + rng.normal(0, spread)
    if not grid.geom_m.contains(Point(x, y)):
        x, y = x0, y0
    return place, (x, y)


# -- the patrol road network ---------------------------------------------------------------------
ROAD_SPEED_KMH = {"urban": (18, 40), "county": (35, 45), "township": (25, 40), "village": (15, 30)}
MAX_LINK_M = 6000.0


def _build_roads(world: _World) -> None:
    """Connect the street grid, township seats and village centres into one road network.

    Streets form the lattice; village roads are the minimum spanning tree of a Delaunay graph of
    the centres plus some of its short extra edges (loops), county roads join the seats.
    """
    rng = world.rng("roads")
    nodes, labels, edges = _lattice_graph(world)
    lattice = set(range(len(nodes)))
    inner = world.core.buffer(-100)
    district = world.areas[DISTRICT_CODE].geom_m.buffer(150)
    for v in sorted(world.level(3), key=lambda v: v.code):
        if not world.core.buffer(100).contains(Point(v.seed)):
            labels.append(v.name)
            nodes.append(v.seed)
    seats: dict[int, str] = {}
    for t in world.level(2):
        p = np.array(_xy(*TOWNSHIP_SEATS[t.code]), float)
        if world.core.buffer(100).contains(Point(p)):
            lat = np.array([nodes[i] for i in sorted(lattice)])
            seats[int(np.argmin(np.hypot(*(lat - p).T)))] = township_short(t.name)
        else:
            seats[len(nodes)] = township_short(t.name)
            labels.append(township_short(t.name))
            nodes.append((float(p[0]), float(p[1])))
    xy = np.array(nodes, float)
    lattice_edges = len(edges)
    for a, b in _spanning_links(xy, edges, _link_candidates(xy, lattice, inner, district), rng):
        if a in lattice or b in lattice:  # a street running on into the countryside
            edges.append((a, b, labels[a] if a in lattice else labels[b], "township"))
        elif a in seats or b in seats:
            edges.append((a, b, f"{labels[a]}—{labels[b]}路", "township"))
        else:
            edges.append((a, b, f"{labels[a]}—{labels[b]}村道", "village"))
    for a, b in _seat_links(xy, sorted(seats), district):
        edges.append((a, b, f"{seats[a]}—{seats[b]}公路", "county"))
    edges = _connect(xy, edges, labels)
    world.graph = _graph(xy, edges, rng, lattice_edges)
    world.graph["seats"] = seats
    for geom, (a, b, name, cls) in zip(world.graph["lines"], world.graph["edges"]):
        world.roads.append({"name": name, "road_class": cls, "geom": to_wgs84(geom)})


def _lattice_graph(world: _World):
    """Turn the street grid into nodes (crossings, ends) and edges (the blocks between them)."""
    index: dict[tuple[float, float], int] = {}
    nodes, labels, edges = [], [], []

    def node(p, label):
        key = (round(p[0], 3), round(p[1], 3))
        if key not in index:
            index[key] = len(nodes)
            nodes.append((float(p[0]), float(p[1])))
            labels.append(label)
        return index[key]

    for ln in sorted(world.lattice, key=lambda ln: (ln["orient"], ln["pos"])):
        line = ln["line"]
        stops = [line.coords[0], line.coords[-1]]
        for other in world.lattice:
            if other["orient"] != ln["orient"] and other["line"].intersects(line):
                c = other["line"].intersection(line)
                stops.append((c.x, c.y))
        stops.sort(key=lambda p: line.project(Point(p)))
        ids = [node(p, ln["name"]) for p in stops]
        edges += [(a, b, ln["name"], "urban") for a, b in zip(ids, ids[1:]) if a != b]
    return nodes, labels, edges


def _link_candidates(xy: np.ndarray, lattice: set[int], outside, district) -> list[tuple[int, int]]:
    """List the Delaunay edges that leave the street grid alone and stay inside the district."""
    tri = Delaunay(xy)
    pairs = set()
    for simplex in tri.simplices:
        for i in range(3):
            a, b = sorted((int(simplex[i]), int(simplex[(i + 1) % 3])))
            pairs.add((a, b))
    out = []
    for a, b in sorted(pairs):
        if a in lattice and b in lattice:
            continue
        seg = LineString([xy[a], xy[b]])
        if seg.length <= MAX_LINK_M and district.contains(seg) and not seg.intersects(outside):
            out.append((a, b))
    return out


def _spanning_links(xy, edges, candidates, rng) -> list[tuple[int, int]]:
    """Choose the minimum spanning tree over the candidates (streets free), plus short loops."""
    n = len(xy)
    rows = [a for a, b, *_ in edges] + [a for a, b in candidates]
    cols = [b for a, b, *_ in edges] + [b for a, b in candidates]
    weights = [1e-3] * len(edges) + [float(np.hypot(*(xy[a] - xy[b]))) for a, b in candidates]
    tree = minimum_spanning_tree(coo_matrix((weights, (rows, cols)), shape=(n, n)).tocsr()).tocoo()
    in_tree = {tuple(sorted((int(a), int(b)))) for a, b in zip(tree.row, tree.col)}
    chosen = [pair for pair in candidates if pair in in_tree]
    for pair in candidates:
        if pair not in in_tree and np.hypot(*(xy[pair[0]] - xy[pair[1]])) < 3500 and rng.random() < 0.3:
            chosen.append(pair)
    return chosen


def _seat_links(xy: np.ndarray, seats: list[int], district) -> list[tuple[int, int]]:
    """Join the township seats by county roads: their spanning tree, inside the district."""
    sub = xy[seats]
    d = np.hypot(sub[:, None, 0] - sub[None, :, 0], sub[:, None, 1] - sub[None, :, 1])
    for i in range(len(seats)):
        for j in range(len(seats)):
            if i != j and not district.contains(LineString([sub[i], sub[j]])):
                d[i, j] = 0.0  # no edge
    tree = minimum_spanning_tree(d).tocoo()
    return sorted((seats[int(min(a, b))], seats[int(max(a, b))]) for a, b in zip(tree.row, tree.col))


def _connect(xy: np.ndarray, edges: list, labels: list[str]) -> list:
    """Join any piece left apart by the shortest link to the rest (the network must be one)."""
    n = len(xy)
    while True:
        rows = [a for a, b, *_ in edges]
        cols = [b for a, b, *_ in edges]
        graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
        count, comp = connected_components(graph, directed=False)
        if count == 1:
            return edges
        main = np.bincount(comp).argmax()
        inside, other = np.flatnonzero(comp == main), np.flatnonzero(comp != main)
        d = np.hypot(xy[other, None, 0] - xy[None, inside, 0], xy[other, None, 1] - xy[None, inside, 1])
        i, j = np.unravel_index(np.argmin(d), d.shape)
        a, b = sorted((int(other[i]), int(inside[j])))
        edges.append((a, b, f"{labels[a]}—{labels[b]}村道", "village"))


def _graph(xy: np.ndarray, edges: list, rng: np.random.Generator, lattice_edges: int) -> dict:
    """Build edge geometries (rural roads bend gently) and all-pairs shortest paths for routing."""
    lines = []
    for k, (a, b, _, cls) in enumerate(edges):
        p, q = xy[a], xy[b]
        if k < lattice_edges:
            lines.append(LineString([p, q]))
            continue
        length = float(np.hypot(*(q - p)))
        normal = np.array([-(q - p)[1], (q - p)[0]]) / max(length, 1e-9)
        mid = (p + q) / 2 + normal * rng.normal(0, 0.04 * length)
        lines.append(LineString([p, mid, q]))
    n = len(xy)
    lengths = [ln.length for ln in lines]
    matrix = coo_matrix((lengths + lengths, ([a for a, *_ in edges] + [b for _, b, *_ in edges],
                                             [b for _, b, *_ in edges] + [a for a, *_ in edges])),
                        shape=(n, n)).tocsr()
    _, pred = dijkstra(matrix, directed=True, return_predecessors=True)
    lookup = {}
    for k, (a, b, *_) in enumerate(edges):
        lookup.setdefault((a, b), k)
        lookup.setdefault((b, a), k)
    return {"xy": xy, "edges": edges, "lines": lines, "pred": pred, "lookup": lookup}


def _route(graph: dict, a: int, b: int) -> list[tuple[np.ndarray, str]]:
    """Return the vertices from node a to node b on the shortest path, with each leg's class."""
    path = [b]
    while path[-1] != a:
        prev = graph["pred"][a, path[-1]]
        if prev < 0:
            return []
        path.append(int(prev))
    path.reverse()
    legs = []
    for u, v in zip(path, path[1:]):
        k = graph["lookup"][(u, v)]
        coords = np.asarray(graph["lines"][k].coords)
        if graph["edges"][k][0] != u:
            coords = coords[::-1]
        legs += [(c, graph["edges"][k][3]) for c in coords[1:]]
    return legs


# -- incidents -------------------------------------------------------------------------------------
CATEGORY_SHARE = {"dispute": 0.30, "hazard": 0.24, "accident": 0.18, "criminal": 0.18, "petition": 0.10}
# subtype: (weight in town, weight in the countryside, short descriptions)
SUBTYPES = {
    "petition": {
        "征地拆迁": (1, 3, ["反映征地补偿款发放问题", "对拆迁安置方案有异议"]),
        "问题楼盘办证": (3, 0, ["购房多年未办理房产证", "反映楼盘逾期交房"]),
        "社保待遇": (2, 2, ["咨询养老保险待遇核定", "反映低保资格认定问题"]),
        "涉法涉诉": (1, 1, ["对判决执行进度不满", "反映案件久拖未决"]),
        "村务公开": (0, 2, ["要求公开村集体收支", "反映村务监督问题"]),
        "环境污染投诉": (2, 1, ["反映工厂夜间噪声扰民", "反映企业排放异味"]),
    },
    "accident": {
        "交通事故": (6, 5, ["两车刮擦无人员受伤", "电动车与行人相撞一人轻伤", "货车与三轮车相撞"]),
        "火灾": (1, 1, ["居民楼电动车起火已扑灭", "秸秆焚烧引发火情"]),
        "生产安全事故": (1, 1, ["车间工人操作不慎受伤", "工地高处坠物"]),
        "燃气事故": (1, 0, ["餐馆燃气泄漏已处置", "居民家中燃气软管老化漏气"]),
        "溺水": (0, 1, ["坑塘边儿童落水获救"]),
        "触电": (0, 1, ["农户私拉电线触电受伤"]),
    },
    "criminal": {
        "盗窃": (5, 4, ["电动车被盗", "店铺夜间被撬", "农机具被盗"]),
        "电信诈骗": (4, 2, ["冒充客服诈骗", "刷单返利诈骗"]),
        "故意伤害": (1, 1, ["酒后斗殴致一人受伤"]),
        "寻衅滋事": (1, 1, ["在饭店无故滋事"]),
        "抢夺": (1, 0, ["路边手机被抢"]),
        "赌博": (0, 1, ["聚众赌博被举报"]),
    },
    "dispute": {
        "邻里纠纷": (4, 4, ["邻里因噪声发生争执", "邻里因排水问题发生矛盾"]),
        "婚姻家庭纠纷": (2, 3, ["夫妻因家庭琐事争吵", "赡养老人问题发生矛盾"]),
        "物业纠纷": (3, 0, ["业主与物业因收费发生争执", "小区停车位纠纷"]),
        "消费纠纷": (2, 0, ["顾客与商户因退货发生争执"]),
        "土地承包纠纷": (0, 3, ["承包地边界争议", "土地流转费用争议"]),
        "宅基地纠纷": (0, 3, ["宅基地界址争议", "建房占用通道引发矛盾"]),
        "劳资纠纷": (2, 1, ["工人讨要拖欠工资", "工伤赔偿争议"]),
        "债务纠纷": (1, 1, ["民间借贷到期未还"]),
    },
    "hazard": {
        "消防隐患": (4, 2, ["楼道堆放杂物", "消防通道被占用"]),
        "电动车违规充电": (3, 1, ["电动车入户充电", "私拉飞线充电"]),
        "燃气隐患": (2, 1, ["餐馆燃气管道老化", "液化气瓶存放不当"]),
        "危房": (1, 2, ["独居老人住房墙体开裂"]),
        "道路隐患": (2, 2, ["路口缺少警示标志", "路面塌陷"]),
        "水利设施隐患": (0, 2, ["沟渠护坡坍塌", "坑塘缺少防护栏"]),
        "食品安全隐患": (1, 1, ["无证经营小作坊"]),
    },
}
HOURLY = {  # relative frequency by hour of day
    "accident": [1, 1, 1, 1, 1, 2, 4, 8, 9, 6, 5, 5, 5, 5, 5, 5, 6, 9, 9, 6, 4, 3, 2, 1],
    "criminal": [4, 4, 4, 3, 2, 2, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5, 6, 6, 6, 6, 5, 5],
    "dispute": [1, 1, 1, 1, 1, 1, 2, 4, 6, 8, 8, 7, 6, 6, 7, 7, 7, 7, 7, 7, 5, 3, 2, 1],
    "hazard": [0, 0, 0, 0, 0, 1, 2, 4, 8, 10, 10, 8, 5, 6, 8, 9, 8, 6, 3, 2, 1, 1, 0, 0],
    "petition": [0, 0, 0, 0, 0, 0, 1, 3, 9, 10, 10, 6, 2, 4, 9, 9, 8, 5, 1, 0, 0, 0, 0, 0],
}
SEVERITY = {"dispute": [.55, .30, .12, .03], "hazard": [.45, .35, .15, .05],
            "accident": [.50, .30, .15, .05], "criminal": [.35, .35, .22, .08],
            "petition": [.40, .35, .20, .05]}
# (median, log-sigma) in hours: occurrence → report, report → acceptance, acceptance → resolution;
# resolution → close is the follow-up visit (回访). Caps keep the tail plausible.
REPORT_DELAY_H = {"accident": (0.2, 0.6), "criminal": (0.7, 1.0), "dispute": (6, 1.0),
                  "hazard": (12, 1.0), "petition": (72, 0.8)}
ACCEPT_DELAY_H = {"accident": (0.15, 0.5), "criminal": (0.3, 0.6), "dispute": (0.5, 0.8),
                  "hazard": (2, 0.8), "petition": (24, 0.6)}
RESOLVE_H = {"accident": (10, 1.0, 20 * 24), "criminal": (200, 1.2, 180 * 24),
             "dispute": (30, 1.0, 30 * 24), "hazard": (72, 0.9, 60 * 24),
             "petition": (300, 0.6, 60 * 24)}
FOLLOW_UP_H = (72, 0.5, 15 * 24)
RESOLUTION_LEVELS = {  # 组 / 村 / 镇 / 区: most disputes end in the village (小事不出村)
    "dispute": [.52, .33, .12, .03], "hazard": [.15, .40, .35, .10], "petition": [0, .15, .55, .30],
    "accident": [0, 0, .35, .65], "criminal": [0, 0, .70, .30]}
SOURCES = {
    "petition": {"信访窗口": .55, "12345热线": .30, "微信小程序": .15},
    "accident": {"110接警": .70, "12345热线": .10, "网格员上报": .20},
    "criminal": {"110接警": .80, "网格员上报": .10, "微信小程序": .10},
    "dispute": {"网格员上报": .55, "12345热线": .20, "微信小程序": .15, "110接警": .10},
    "hazard": {"网格员上报": .65, "12345热线": .20, "微信小程序": .15},
}
SENSITIVE = {"petition": .12, "criminal": .05, "dispute": .015, "hazard": .005, "accident": .005}
DISPUTE_UNRESOLVED = 0.03  # the article: resolution rate above 96 %
ESCALATED_SHARE = {"petition": 0.02, "criminal": 0.01}
HOTSPOTS = [
    {"name": "龙塔农贸市场", "kind": "persistent", "poi": "龙塔农贸市场", "radius_m": 350, "count": 600,
     "category_mix": {"criminal": .35, "dispute": .35, "hazard": .20, "accident": .10},
     "subtypes": {"criminal": "盗窃", "dispute": "消费纠纷", "hazard": "消防隐患"}},
    {"name": "郾城汽车站周边", "kind": "persistent", "poi": "郾城汽车站", "radius_m": 400, "count": 550,
     "category_mix": {"criminal": .45, "dispute": .25, "accident": .20, "hazard": .10},
     "subtypes": {"criminal": "盗窃", "accident": "交通事故"}},
    {"name": "淞江工业园", "kind": "persistent", "poi": "淞江工业园", "radius_m": 700, "count": 500,
     "category_mix": {"hazard": .40, "accident": .30, "dispute": .30},
     "subtypes": {"dispute": "劳资纠纷", "accident": "生产安全事故"}},
    {"name": "商桥物流园", "kind": "emerging", "poi": "商桥物流园", "radius_m": 900, "count": 550,
     "category_mix": {"accident": .35, "dispute": .35, "petition": .15, "hazard": .15},
     "subtypes": {"accident": "交通事故", "petition": "征地拆迁", "hazard": "道路隐患"}},
    {"name": "孟庙镇旧村改造片区", "kind": "fading", "poi": "孟庙镇旧村改造片区", "radius_m": 800,
     "count": 800, "category_mix": {"petition": .45, "dispute": .45, "criminal": .10},
     "subtypes": {"petition": "征地拆迁", "dispute": "宅基地纠纷"}},
]
MONTHLY = {
    "persistent": [1.0] * 12,
    "emerging": [0.15] * 8 + [1.5, 3.5, 6.0, 8.0],
    # Still hot in the last month but steadily weaker: Esri's "diminishing hot spot".
    "fading": [6.0, 5.7, 5.4, 5.1, 4.8, 4.5, 4.2, 3.9, 3.6, 3.3, 3.0, 2.7],
}


@lru_cache(maxsize=1)
def _months() -> tuple[tuple[datetime, int], ...]:
    """Return the 12 months of the period as (first instant, number of days)."""
    y, m0 = PERIOD_START.year, PERIOD_START.month - 1
    starts = [datetime(y + (m0 + m) // 12, (m0 + m) % 12 + 1, 1, tzinfo=TZ) for m in range(13)]
    return tuple((a, (b - a).days) for a, b in zip(starts, starts[1:]))


class _Draw:
    """One incident's random numbers, drawn in bulk: uniforms `u` and standard normals `z`."""

    def __init__(self, u: list[float], z: list[float]):
        self.u, self.z = u, z

    def choose(self, i: int, options: dict[str, float]) -> str:
        """Pick a key of `options` with probability proportional to its weight, using u[i]."""
        keys = list(options)
        bounds = list(itertools.accumulate(options.values()))
        return keys[min(bisect.bisect(bounds, self.u[i] * bounds[-1]), len(keys) - 1)]

    def lognormal_h(self, i: int, median: float, sigma: float, cap: float | None = None) -> timedelta:
        """Return a log-normal duration in hours with this median, using z[i], capped."""
        hours = median * math.exp(sigma * self.z[i])
        return timedelta(hours=min(hours, cap) if cap else hours)


def _build_incidents(world: _World) -> None:
    """Create 20,000 incidents over the 12 months to 2026-10-31, with planted hot spots."""
    rng = world.rng("incidents")
    drafts = []
    for spot in HOTSPOTS:
        drafts += _hotspot_drafts(world, rng, spot)
    drafts += _background_drafts(world, rng, INCIDENTS - len(drafts))
    grids, lon, lat = _incident_points(world, rng, drafts)
    u, z = rng.random((len(drafts), 12)).tolist(), rng.normal(size=(len(drafts), 4)).tolist()
    records = [_incident(world, rng, d, g, x, y, _Draw(ui, zi))
               for d, g, x, y, ui, zi in zip(drafts, grids, lon.tolist(), lat.tolist(), u, z)]
    for r, p in zip(records, shapely.points(lon, lat)):
        r["geom"] = p
    _settle_disputes(records, rng)
    records.sort(key=lambda r: (r["reported_at"], r["occurred_at"], r["lon"], r["lat"]))
    serial: dict[int, int] = {}
    for r in records:
        year = r["reported_at"].year
        serial[year] = serial.get(year, 0) + 1
        r["external_id"] = f"YC-{year}-{serial[year]:06d}"
    world.incidents = records


def _hotspot_drafts(world: _World, rng: np.random.Generator, spot: dict) -> list[dict]:
    """Draft a hot spot's incidents at gazetteer places weighted by distance from its centre."""
    cx, cy = world.place_xy[f"poi:{spot['poi']}"]
    keys = [k for k in world.place_xy if k.split(":")[0] in ("door", "building", "group", "poi")]
    xy = np.array([world.place_xy[k] for k in keys])
    d = np.hypot(xy[:, 0] - cx, xy[:, 1] - cy)
    near = np.flatnonzero(d <= spot["radius_m"])
    weights = np.exp(-0.5 * (d[near] / (spot["radius_m"] / 2)) ** 2)
    by_key = {p["key"]: p for p in world.places}
    lon, lat = _lonlat(cx, cy)
    world.hotspots.append({"name": spot["name"], "kind": spot["kind"], "lon": round(float(lon), 7),
                           "lat": round(float(lat), 7), "radius_m": spot["radius_m"],
                           "category_mix": dict(spot["category_mix"])})
    cats = list(spot["category_mix"])
    mix = np.array([spot["category_mix"][c] for c in cats])
    drafts = []
    for month, n in enumerate(_apportion(spot["count"], MONTHLY[spot["kind"]], 0)):
        picks = near[rng.choice(len(near), size=n, p=weights / weights.sum())]
        for c, k in zip(rng.choice(len(cats), size=n, p=mix / mix.sum()), picks):
            cat = cats[int(c)]
            drafts.append({"month": month, "category": cat, "place": by_key[keys[int(k)]],
                           "subtype": spot["subtypes"].get(cat), "hotspot": spot["name"]})
    return drafts


def _background_drafts(world: _World, rng: np.random.Generator, n: int) -> list[dict]:
    """Draft incidents in proportion to population (more per head in town), mildly seasonal."""
    grids = sorted(world.grids, key=lambda g: g.code)
    w = np.array([g.population * (1.3 if g.urban else 1.0) for g in grids], float)
    pools = [_incident_places(world, g) for g in grids]
    w[[not pool for pool in pools]] = 0.0
    seasonal = [1 + 0.12 * math.cos(2 * math.pi * (m - 8) / 12) for m in range(12)]
    cats = list(CATEGORY_SHARE)
    share = np.array([CATEGORY_SHARE[c] for c in cats])
    drafts = []
    for month, count in enumerate(_apportion(n, seasonal, 0)):
        picks = rng.choice(len(grids), size=count, p=w / w.sum())
        kinds = rng.choice(len(cats), size=count, p=share)
        for gi, c, r in zip(picks.tolist(), kinds.tolist(), rng.random(count).tolist()):
            pool = pools[gi]
            drafts.append({"month": month, "category": cats[c], "place": pool[int(r * len(pool))],
                           "subtype": None, "hotspot": None})
    return drafts


def _incident_places(world: _World, g: _Area) -> list[dict]:
    """List where a grid's incidents are addressed: doors and buildings in town, else groups."""
    places = world.by_grid.get(g.code, {})
    pool = [p for k in (("door", "building") if g.urban else ("group",)) for p in places.get(k, [])]
    return pool or [p for k in sorted(places) for p in places[k]]


def _incident_points(world: _World, rng: np.random.Generator, drafts: list[dict]):
    """Put each incident a few metres from its gazetteer place, inside that place's grid."""
    spread = np.array([{"group": 90.0, "poi": 40.0}.get(d["place"]["kind"], 6.0) for d in drafts])
    base = np.array([world.place_xy[d["place"]["key"]] for d in drafts])
    xy = base + rng.normal(0, 1, base.shape) * spread[:, None]
    found = world.grid_at(xy[:, 0], xy[:, 1])
    grids = []
    for i, (d, g) in enumerate(zip(drafts, found)):
        if g is None or g.code != d["place"]["area_code"]:
            xy[i] = base[i]
            g = world.areas[d["place"]["area_code"]]
        grids.append(g)
    lon, lat = _lonlat(xy[:, 0], xy[:, 1])
    return grids, np.round(lon, 7), np.round(lat, 7)


def _incident(world: _World, rng: np.random.Generator, draft: dict, grid: _Area, lon: float,
              lat: float, draw: _Draw) -> dict:
    """Turn a draft (month, category, place) into a full incident record."""
    cat, place = draft["category"], draft["place"]
    subtypes = SUBTYPES[cat]
    subtype = draft["subtype"] or draw.choose(0, {k: v[0 if grid.urban else 1] for k, v in subtypes.items()})
    severity = int(draw.choose(1, dict(zip("1234", SEVERITY[cat]))))
    times = _timeline(draw, cat, draft["month"], severity)
    source = draw.choose(5, SOURCES[cat])
    reporter = _reporter(world, rng, grid, source)
    status, level = _status(draw, cat, severity, times)
    texts = subtypes[subtype][2]
    return {
        "external_id": None, "category": cat, "subtype": subtype, "severity": severity,
        "status": status, **times, "resolution_level": level,
        "address": _address_text(rng, place, place["address"]), "lon": lon, "lat": lat,
        "geom": None, "grid_code": grid.code, "source": source,
        "sensitive": draw.u[6] < SENSITIVE[cat], "reporter_name": reporter[0],
        "reporter_phone": reporter[1], "description": texts[int(draw.u[7] * len(texts))],
        "attrs": {"place_key": place["key"], "address_canonical": place["address"],
                  "hotspot": draft["hotspot"]},
    }


def _timeline(draw: _Draw, cat: str, month: int, severity: int) -> dict:
    """Draw occurrence, report, acceptance, resolution and close times (before the cut-off)."""
    start, days = _months()[month]
    hour = int(draw.choose(2, {str(h): w for h, w in enumerate(HOURLY[cat])}))
    occurred = start + timedelta(days=int(draw.u[3] * days), hours=hour, seconds=int(draw.u[4] * 3600))
    reported = occurred + draw.lognormal_h(0, *REPORT_DELAY_H[cat])
    if reported > PERIOD_END:
        shift = reported - PERIOD_END + timedelta(minutes=1 + int(draw.u[11] * 120))
        occurred, reported = occurred - shift, reported - shift
    accepted = reported + draw.lognormal_h(1, *ACCEPT_DELAY_H[cat])
    median, sigma, cap = RESOLVE_H[cat]
    resolved = accepted + draw.lognormal_h(2, median * (1 + 0.4 * (severity - 1)), sigma, cap)
    closed = resolved + draw.lognormal_h(3, *FOLLOW_UP_H)
    return {"occurred_at": _second(occurred), "reported_at": _second(reported),
            "accepted_at": _second(accepted), "resolved_at": _second(resolved),
            "closed_at": _second(closed)}


def _second(t: datetime) -> datetime:
    return t.replace(microsecond=0)


def _status(draw: _Draw, cat: str, severity: int, times: dict) -> tuple[str, str | None]:
    """Settle the state at the end of the period: recent matters open, older ones closed."""
    level = _resolution_level(draw, cat, severity)
    if draw.u[8] < ESCALATED_SHARE.get(cat, 0.0) and times["accepted_at"] <= PERIOD_END:
        times["resolved_at"] = times["closed_at"] = None
        return "escalated", None
    if times["accepted_at"] > PERIOD_END:
        times["accepted_at"] = times["resolved_at"] = times["closed_at"] = None
        return "reported", None
    if times["resolved_at"] > PERIOD_END:
        times["resolved_at"] = times["closed_at"] = None
        recent = PERIOD_END - times["accepted_at"] < timedelta(hours=2)
        return ("accepted" if recent else "handling"), None
    if times["closed_at"] > PERIOD_END:
        times["closed_at"] = None
        visited = PERIOD_END - times["resolved_at"] > timedelta(days=2)
        return ("followed_up" if visited else "resolved"), level
    return "closed", level


def _resolution_level(draw: _Draw, cat: str, severity: int) -> str:
    """Choose where a matter was settled: 组, 村, 镇 or 区."""
    levels = ("group", "village", "township", "district")
    i = levels.index(draw.choose(9, dict(zip(levels, RESOLUTION_LEVELS[cat]))))
    if severity >= 3 and i < 3 and draw.u[10] < 0.5:
        i += 1  # serious matters go one level up
    return levels[i]


def _settle_disputes(records: list[dict], rng: np.random.Generator) -> None:
    """Escalate just enough old disputes that 3 % stay unresolved (the article: > 96 % resolved)."""
    disputes = [r for r in records if r["category"] == "dispute"]
    open_now = [r for r in disputes if r["status"] not in ("resolved", "followed_up", "closed")]
    missing = round(DISPUTE_UNRESOLVED * len(disputes)) - len(open_now)
    done = [r for r in disputes if r["status"] == "closed"]
    for i in sorted(rng.choice(len(done), size=max(0, missing), replace=False).tolist()):
        r = done[i]
        r.update(status="escalated", resolved_at=None, closed_at=None, resolution_level=None)
        r["attrs"]["escalated_to"] = "district"


def _reporter(world: _World, rng: np.random.Generator, grid: _Area, source: str) -> tuple[str, str]:
    """Name the reporter: the grid worker for their own reports, else an invented caller."""
    if source == "网格员上报":
        worker = world.staff_by_grid[grid.code]["worker"]
        return worker["name"], worker["phone"]
    name = world.person_name(rng, "M" if rng.random() < 0.55 else "F")
    return name, f"19900{int(rng.integers(10000, 1000000)):06d}"


FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def _address_text(rng: np.random.Generator, place: dict | None, canonical: str) -> str:
    """Write the address as a caller or grid worker would: mostly clean, sometimes informal."""
    text = canonical
    if place and place["kind"] == "building" and rng.random() < 0.5:
        text += f"{int(rng.integers(1, 5))}单元{int(rng.integers(1, 19))}0{int(rng.integers(1, 5))}室"
    r = rng.random()
    if r < 0.06:
        text = text.removeprefix(DISTRICT_NAME)
    elif r < 0.10:
        text = "河南省漯河市" + text
    elif r < 0.14:
        text = text.translate(FULLWIDTH)
    elif r < 0.18 and place and place["kind"] == "building":
        n = place["attrs"]["number"]
        text = text.replace(f"{n}号楼", f"{zh_number(n)}号楼" if rng.random() < 0.5 else f"{n}栋", 1)
    elif r < 0.22 and place and place["kind"] == "group":
        text = text.replace("组", "村民小组") if rng.random() < 0.5 else text.replace("组", "队")
    return text


# -- patrol units, one day of positions, shifts and tracks -------------------------------------------
VOLUNTEER_COMMUNITIES = ("金牛社区", "嵩山路社区", "泰山路社区", "昆仑路社区", "金山路社区", "海河社区",
                         "河滨社区", "巴山路社区")
FIX_INTERVAL_S = 30
FOOT_BEAT_M = 1500.0
SPEED_MS = {"foot": (1.0, 1.35), "volunteer": (0.85, 1.25)}
# Hours spent at the base: foot patrols sleep in shifts, volunteer teams do morning and evening rounds.
REST_HOURS = {"car": [(3.0, 5.0)], "foot": [(1.0, 6.0), (12.0, 13.5), (18.0, 19.0)],
              "volunteer": [(0.0, 7.0), (11.5, 14.0), (22.5, 24.0)]}
STOP_S = {"car": (120, 2400), "foot": (300, 2400), "volunteer": (600, 2400)}  # 入户, 路口值守
GPS_MEMORY = 0.95  # GPS error drifts slowly: consecutive fixes share most of it
BAD_FIXES = {1: (2, 4), 2: (2, 5)}  # flag → (fewest, most) per unit: impossible jump, poor accuracy


def _build_patrols(world: _World) -> None:
    """Create 40 patrol units with a 24-hour shift on 2026-10-31 and a fix every 30 s."""
    rng = world.rng("patrols")
    start = datetime(PATROL_DAY.year, PATROL_DAY.month, PATROL_DAY.day, tzinfo=TZ)
    stamps = [start + timedelta(seconds=s) for s in range(0, 86400, FIX_INTERVAL_S)]
    for unit in _units(world, rng):
        world.units.append(unit)
        x, y = _simulate(world, rng, unit)
        _record_day(world, rng, unit, x, y, stamps)
        world.shifts.append({"callsign": unit["callsign"], "starts_at": start,
                             "ends_at": start + timedelta(days=1), "task": "day+night"})


def _units(world: _World, rng: np.random.Generator) -> list[dict]:
    """List the units: cars and foot patrols per 街道, cars per town, 守护 teams per community."""
    plan = []
    for t in world.level(2):
        short = township_short(t.name)
        cars, foot = (3, 3) if _is_street(t.code) else (2, 0)
        plan += [(f"{short}巡{i:02d}", "car", t.code) for i in range(1, cars + 1)]
        plan += [(f"{short}步{i:02d}", "foot", t.code) for i in range(1, foot + 1)]
    for v in world.level(3):
        if v.name in VOLUNTEER_COMMUNITIES and _is_street(v.parent):
            plan.append((f"{v.name.removesuffix('社区')}守护队", "volunteer", v.code))
    devices = rng.choice(10**8, size=len(plan), replace=False)
    return [{"callsign": c, "kind": k, "device_id": f"8611030{int(d):08d}", "home_area_code": home,
             "status": "on_duty"} for (c, k, home), d in zip(plan, devices)]


def _home_nodes(world: _World, unit: dict) -> tuple[np.ndarray, int]:
    """Find the road nodes a unit patrols and its base (police station or community centre)."""
    xy = world.graph["xy"]
    area = world.areas[unit["home_area_code"]]
    centre = np.array(area.seed if area.level == 3 else world.place_xy[
        f"poi:{township_short(area.name)}派出所"])
    beat = area.geom_m.buffer(300)
    if unit["kind"] == "foot":
        beat = beat.intersection(Point(centre).buffer(FOOT_BEAT_M))  # a walkable beat round the station
    nodes = np.flatnonzero(shapely.contains_xy(beat, xy[:, 0], xy[:, 1]))
    if len(nodes) < 4:
        nodes = np.argsort(np.hypot(*(xy - centre).T), kind="stable")[:4]
    base = int(nodes[np.argmin(np.hypot(*(xy[nodes] - centre).T))])
    return nodes, base


def _resting_until(kind: str, t: float) -> float | None:
    """Return when the rest period around second `t` of the day ends, or None when on patrol."""
    hour = t / 3600
    for a, b in REST_HOURS[kind]:
        if a <= hour < b:
            return b * 3600
    return None


def _simulate(world: _World, rng: np.random.Generator, unit: dict) -> tuple[np.ndarray, np.ndarray]:
    """Drive or walk between random nodes of the home area, with stops and rests; sample every 30 s."""
    graph, kind = world.graph, unit["kind"]
    nodes, base = _home_nodes(world, unit)
    times, points = [0.0], [graph["xy"][base]]
    here, t = base, 0.0
    while t < 86400:
        rest_end = _resting_until(kind, t)
        target = base if rest_end is not None else int(nodes[rng.integers(len(nodes))])
        if rest_end is not None and here == base:
            t = rest_end
            times.append(t)
            points.append(points[-1])
            continue
        if target == here:
            continue
        pace = rng.random()
        for point, cls in _route(graph, here, target):
            low, high = SPEED_MS.get(kind) or [v / 3.6 for v in ROAD_SPEED_KMH[cls]]
            t += max(float(np.hypot(*(point - points[-1]))) / (low + pace * (high - low)), 1e-3)
            times.append(t)
            points.append(point)
        here = target
        low, high = STOP_S[kind]
        t += float(np.clip(rng.exponential((low + high) / 3), low, high))
        times.append(t)
        points.append(points[-1])
    pts = np.array(points)
    stamps = np.arange(0, 86400, FIX_INTERVAL_S, dtype=float)
    return np.interp(stamps, times, pts[:, 0]), np.interp(stamps, times, pts[:, 1])


def _drift(rng: np.random.Generator, n: int) -> np.ndarray:
    """Draw unit-variance noise that wanders like a GPS error (first-order autoregressive)."""
    return lfilter([math.sqrt(1 - GPS_MEMORY ** 2)], [1.0, -GPS_MEMORY], rng.normal(0, 1, n))


def _plant_bad_fixes(rng: np.random.Generator, ox: np.ndarray, oy: np.ndarray,
                     accuracy: np.ndarray) -> np.ndarray:
    """Spoil a few fixes in place (impossible jumps, poor accuracy) and return their flags."""
    flags = np.zeros(len(ox), dtype=int)
    picks = rng.choice(np.arange(20, len(ox) - 20), size=sum(b for _, b in BAD_FIXES.values()),
                       replace=False)
    used = 0
    for flag, (low, high) in BAD_FIXES.items():
        count = int(rng.integers(low, high + 1))
        idx = picks[used:used + count]
        used += count
        flags[idx] = flag
        if flag == 1:
            angle, dist = rng.uniform(0, 2 * math.pi, count), rng.uniform(5000, 30000, count)
            ox[idx] += np.sin(angle) * dist
            oy[idx] += np.cos(angle) * dist
        else:
            accuracy[idx] = rng.uniform(120, 800, count)
            ox[idx] += rng.normal(0, 1, count) * accuracy[idx] / 2
            oy[idx] += rng.normal(0, 1, count) * accuracy[idx] / 2
    return flags


def _record_day(world, rng, unit: dict, x: np.ndarray, y: np.ndarray, stamps: list[datetime]) -> None:
    """Observe the true path like a phone GPS would, plant a few bad fixes, derive the track."""
    n = len(x)
    step = np.hypot(np.diff(x), np.diff(y))
    speed = np.append(step, step[-1]) / FIX_INTERVAL_S
    heading = np.degrees(np.arctan2(np.diff(x), np.diff(y))) % 360
    heading = np.append(heading, heading[-1])
    moving = speed > 0.3
    last = np.maximum.accumulate(np.where(moving, np.arange(n), 0))
    heading = heading[last]  # a parked unit keeps its last heading
    accuracy = np.clip(rng.lognormal(math.log(8.0), 0.35, n), 3, 30)
    ox = x + _drift(rng, n) * accuracy / 2
    oy = y + _drift(rng, n) * accuracy / 2
    flags = _plant_bad_fixes(rng, ox, oy, accuracy)
    reported = np.clip(speed + rng.normal(0, 0.25, n), 0, None)
    lon, lat = _lonlat(ox, oy)
    lon, lat = np.round(lon, 7), np.round(lat, 7)
    for i in range(n):
        world.positions.append({"callsign": unit["callsign"], "ts": stamps[i], "lon": float(lon[i]),
                                "lat": float(lat[i]), "speed": round(float(reported[i]), 2),
                                "heading": round(float(heading[i]), 1),
                                "accuracy": round(float(accuracy[i]), 1), "flags": int(flags[i])})
    clean = flags == 0
    length = float(np.hypot(np.diff(ox[clean]), np.diff(oy[clean])).sum())
    world.tracks.append({
        "callsign": unit["callsign"], "starts_at": stamps[0],
        "ends_at": stamps[-1], "geom": LineString(np.column_stack([lon[clean], lat[clean]])),
        "length_m": round(length, 1), "points": int(clean.sum()), "source": "demo",
        "stats": {"moving_share": round(float(moving.mean()), 3),
                  "max_speed_ms": round(float(speed.max()), 2),
                  "impossible_jumps": int((flags == 1).sum()), "poor_accuracy": int((flags == 2).sum())}})
