"""Generate the patrol road network: the street grid, village and county roads, shortest routes."""
from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra, minimum_spanning_tree
from scipy.spatial import Delaunay
from shapely.geometry import LineString, Point

from .areas import TOWNSHIP_SEATS
from .coordinates import metric_xy, to_wgs84
from .names import township_short
from .reference import DISTRICT_CODE
from .world import World

ROAD_SPEED_KMH = {"urban": (18, 40), "county": (35, 45), "township": (25, 40), "village": (15, 30)}
MAX_LINK_M = 6000.0


def build(world: World) -> None:
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
        p = np.array(metric_xy(*TOWNSHIP_SEATS[t.code]), float)
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
    for geom, (_a, _b, name, cls) in zip(world.graph["lines"], world.graph["edges"]):
        world.roads.append({"name": name, "road_class": cls, "geom": to_wgs84(geom)})


def _lattice_graph(world: World):
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
    for k, (a, b, _, _cls) in enumerate(edges):
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


def route(graph: dict, a: int, b: int) -> list[tuple[np.ndarray, str]]:
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
