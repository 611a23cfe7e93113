"""Cut metric polygons into cells: spread seeds, Voronoi cells, Lloyd relaxation, exact coverages."""
from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, box

from .coordinates import as_multi

SNAP_M = 0.001  # boundaries are noded on a 1 mm grid so neighbours share identical vertices


def sample_in(poly, n: int, rng: np.random.Generator) -> np.ndarray:
    """Draw n uniform random points inside a metric polygon, as an (n, 2) array."""
    minx, miny, maxx, maxy = poly.bounds
    shapely.prepare(poly)
    out = np.empty((0, 2))
    while len(out) < n:
        pts = rng.uniform((minx, miny), (maxx, maxy), size=(max(64, 3 * n), 2))
        out = np.vstack([out, pts[shapely.contains_xy(poly, pts[:, 0], pts[:, 1])]])
    return out[:n]


def spread(poly, n: int, rng: np.random.Generator, fixed: np.ndarray | None = None,
           candidates: int = 16) -> np.ndarray:
    """Pick n well-spread points inside `poly` (Mitchell's best candidate), away from `fixed`."""
    chosen = np.empty((0, 2)) if fixed is None else np.asarray(fixed, float).reshape(-1, 2)
    pool = sample_in(poly, n * candidates, rng)
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


def voronoi(parent, seeds: np.ndarray) -> list:
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


def relax(parent, seeds: np.ndarray, fixed: np.ndarray, rounds: int = 2) -> np.ndarray:
    """Move each free seed to its cell's centre (Lloyd relaxation) so the cells come out even."""
    seeds = seeds.copy()
    for _ in range(rounds):
        cells = voronoi(parent, seeds)
        for i, cell in enumerate(cells):
            if fixed[i] or cell.is_empty:
                continue
            c = cell.centroid
            if not cell.contains(c):
                c = cell.point_on_surface()
            seeds[i] = (c.x, c.y)
    return seeds


def assemble(cells: list) -> list[MultiPolygon]:
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
        out.append(as_multi(shapely.coverage_union_all(mine)))
    return out
