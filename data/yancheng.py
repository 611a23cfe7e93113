"""Generate the deterministic 郾城区 demo: areas, staff, 三零 subjects, gazetteer, roads, incidents, patrols.

Real: the district outline (DataV, GCJ-02, converted to WGS84) and the 10 townships and 198
villages/communities with their statistical codes and official names. Everything below the district
outline is synthetic; data/README.md lists what and how. Geometries are shapely objects in WGS84
lon/lat; metric work is done in CGCS2000 / 3-degree Gauss-Kruger CM 114E (EPSG:4547).

`generate(seed)` is pure (no database, no clock, no network) and byte-for-byte repeatable: every step
draws from its own generator seeded with (seed, step), so changing one step leaves the others alone.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from pyproj import Transformer
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra, minimum_spanning_tree
from scipy.spatial import Delaunay
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from geo import crs, settings

DEMO_VERSION = "1"
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
    "411103001": (114.045, 33.597), "411103002": (114.000, 33.603), "411103003": (114.080, 33.625),
    "411103101": (114.035, 33.660), "411103102": (113.810, 33.690), "411103103": (113.845, 33.625),
    "411103104": (113.890, 33.725), "411103105": (113.930, 33.645), "411103106": (113.975, 33.715),
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
CITY_CENTRE = (114.02, 33.58)
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
def read_outline() -> MultiPolygon:
    """Read the real district outline and convert it from GCJ-02 to WGS84."""
    path = settings.realdata_dir() / "yancheng" / OUTLINE_FILE
    feature = json.loads(path.read_text(encoding="utf-8"))["features"][0]
    gcj = shapely.geometry.shape(feature["geometry"])
    return _as_multi(shapely.make_valid(crs.transform_geometry(gcj, "gcj02")))


def read_divisions() -> list[dict]:
    """Read the real township and village codes and official names (2022 statistical list)."""
    path = settings.realdata_dir() / "yancheng" / DIVISIONS_FILE
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
        self._grid_tree = None
        self._used_names: set[str] = set()

    def rng(self, step: str) -> np.random.Generator:
        """A generator for one step, independent of every other step's draws."""
        return np.random.default_rng([self.seed, int.from_bytes(step.encode("utf-8")[:16], "big") % 2**63])

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
        """The grid containing each metric point (the lowest code on a shared edge), or None."""
        tree, grids = self.grid_tree()
        pts = shapely.points(np.asarray(x, float), np.asarray(y, float))
        found: list[_Area | None] = [None] * len(pts)
        for p, g in zip(*tree.query(pts, predicate="intersects")):
            if found[p] is None or grids[g].code < found[p].code:
                found[p] = grids[g]
        return found

    def person_name(self, rng: np.random.Generator, gender: str) -> str:
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
    """n uniform random points inside a metric polygon, as an (n, 2) array."""
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
    return list(shapely.intersection(np.array(cells.geoms), parent))


def _relax(parent, seeds: np.ndarray, fixed: np.ndarray, rounds: int = 2) -> np.ndarray:
    """Lloyd relaxation of the free seeds: move each to its cell's centre, for even cells."""
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
