"""Hold the generation state every step reads and extends, with each step's own random generator."""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import shapely


@dataclass
class Area:
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

    def record(self) -> dict:
        """Return the area as the plain dict a Demo holds."""
        return {"code": self.code, "name": self.name, "level": self.level, "parent_code": self.parent,
                "kind": self.kind, "geom": self.geom, "households": self.households,
                "population": self.population, "urban": self.urban, "group_code": self.group_code,
                "attrs": dict(self.attrs)}


class World:
    """Everything generated so far, with the look-ups later steps need."""

    def __init__(self, seed: int, names: dict):
        self.seed = seed
        self.names = names
        self.areas: dict[str, Area] = {}
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
        self.households: list[dict] = []
        self.visits: list[dict] = []
        self.visit_plans: list[dict] = []
        self.meetings: list[dict] = []
        self.logbook: list[dict] = []
        self.graph: dict = {}
        self.staff_by_grid: dict[str, dict[str, dict]] = {}
        self.core = None  # the urban street grid's extent (metric)
        self.place_xy: dict[str, tuple[float, float]] = {}
        self.by_grid: dict[str, dict[str, list[dict]]] = {}
        self._grid_tree = None
        self._used_names: set[str] = set()

    def renumber(self, areas: dict[str, Area]) -> None:
        """Replace the areas once the grids have their final codes, and drop the stale grid index."""
        self.areas = areas
        self._grid_tree = None

    def rng(self, step: str) -> np.random.Generator:
        """Return a generator for one step, independent of every other step's draws."""
        return np.random.default_rng([self.seed, zlib.crc32(step.encode("utf-8"))])

    def level(self, level: int) -> list[Area]:
        """Return the areas of one level: 1 district, 2 township, 3 village, 4 grid."""
        return [a for a in self.areas.values() if a.level == level]

    def township_of(self, code: str) -> Area:
        """Return the township an area code lies in."""
        return self.areas[code[:9]]

    def village_of(self, code: str) -> Area:
        """Return the village a grid code lies in."""
        return self.areas[code[:12]]

    @property
    def grids(self) -> list[Area]:
        """Return every grid."""
        return self.level(4)

    def grid_tree(self):
        """Return an STRtree of the grids' metric geometries and the grids in its order."""
        if self._grid_tree is None:
            grids = self.grids
            self._grid_tree = (shapely.STRtree([g.geom_m for g in grids]), grids)
        return self._grid_tree

    def grid_at(self, x: np.ndarray, y: np.ndarray) -> list[Area | None]:
        """Find the grid holding each metric point (the lowest code on a shared edge), or None."""
        tree, grids = self.grid_tree()
        pts = shapely.points(np.asarray(x, float), np.asarray(y, float))
        found: list[Area | None] = [None] * len(pts)
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


def apportion(total: int, weights, minimum: int) -> list[int]:
    """Split `total` in proportion to `weights`, each at least `minimum` (largest remainder)."""
    w = np.asarray(weights, float)
    rest = total - minimum * len(w)
    quota = rest * w / w.sum()
    counts = np.floor(quota).astype(int)
    order = sorted(range(len(w)), key=lambda i: (-(quota[i] - counts[i]), i))
    for i in order[:rest - int(counts.sum())]:
        counts[i] += 1
    return [int(c) + minimum for c in counts]
