"""Planning each boundary operation in PostGIS: transfer, split, merge, reshape, partition, move.

A planner reads the locked rows and the drawn geometry and returns a `Plan` (areas updated,
created, retired); nothing is written here.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import shapely
from sqlalchemy import text

from geo.boundaries.geometry import (
    area_of_wkb,
    area_wkb,
    best_overlap,
    centroid_key,
    drawn_lines,
    drawn_polygonal,
    parse_geojson,
    polygons_of,
    shared_m_sql,
    union_wkb,
)
from geo.boundaries.partition import (
    MIN_PIECE_M2,
    OVERLAP_TOLERANCE_M2,
    SNAP_DEGREES,
    fit_pieces,
    sliver_m2_sql,
)
from geo.boundaries.plans import NewArea, Plan
from geo.errors import InvalidInput
from geo.messages import joined, msg


# -- planning each operation -----------------------------------------------------------------
def _plan_transfer(session, rows, codes, geometry, names) -> Plan:
    if len(codes) != 2:
        raise InvalidInput("areas", msg("transfer needs two areas: [from, to]"))
    src, dst = rows[codes[0]], rows[codes[1]]
    _require_leaf(src, dst)
    _require_siblings(src, dst)
    region = drawn_polygonal(geometry)
    r = session.execute(text(f"""
        WITH r AS (SELECT ST_Snap(ST_GeomFromWKB(:r, 4326),
                                  ST_Collect(ST_Boundary(a.geom), ST_Boundary(b.geom)), :tol) AS g
                     FROM areas a, areas b WHERE a.id = :a AND b.id = :b),
             x AS (SELECT a.geom AS ag, b.geom AS bg, r.g AS rg,
                          ST_CollectionExtract(ST_Intersection(a.geom, r.g), 3) AS piece
                     FROM areas a, areas b, r WHERE a.id = :a AND b.id = :b)
        SELECT ST_AsBinary(ST_Multi(ST_CollectionExtract(ST_Difference(ag, rg), 3))) AS a_new,
               ST_AsBinary(ST_Multi(ST_CollectionExtract(ST_Union(bg, piece), 3))) AS b_new,
               ST_Area(piece::geography) AS moved, ST_Area(ag::geography) AS a_m2,
               ST_Area(ST_Difference(rg, ag)::geography) AS ignored,
               {shared_m_sql('piece', 'bg')} AS shared
          FROM x"""), {"r": region, "a": src["id"], "b": dst["id"], "tol": SNAP_DEGREES}).mappings().one()
    if r["moved"] < MIN_PIECE_M2:
        raise InvalidInput("geometry", msg("the drawn region does not overlap {code} ({m2:.1f} m² in "
                                           "common): draw it over the part to move",
                                           code=src["code"], m2=r["moved"]))
    if r["a_m2"] - r["moved"] < MIN_PIECE_M2:
        raise InvalidInput("geometry", msg("the region covers all of {code}: merge it into {target} instead",
                                           code=src["code"], target=dst["code"]))
    if r["shared"] <= 0.01:
        raise InvalidInput("geometry", msg("the piece to move does not border {target}: a transfer goes "
                                           "to an adjacent grid", target=dst["code"]))
    plan = Plan("transfer", parents={src["parent_id"]})
    share = r["moved"] / r["a_m2"]
    moved_h, moved_p = _portion(src["households"], share), _portion(src["population"], share)
    plan.updates[src["id"]] = {"geom": r["a_new"], "households": _minus(src["households"], moved_h),
                               "population": _minus(src["population"], moved_p)}
    plan.updates[dst["id"]] = {"geom": r["b_new"], "households": _plus(dst["households"], moved_h),
                               "population": _plus(dst["population"], moved_p)}
    if moved_h:
        plan.notes.append(msg("{m2:.0f} m² move from {source} to {target} (about {households} households)",
                              m2=r["moved"], source=src["code"], target=dst["code"], households=moved_h))
    else:
        plan.notes.append(msg("{m2:.0f} m² move from {source} to {target}",
                              m2=r["moved"], source=src["code"], target=dst["code"]))
    if r["ignored"] >= MIN_PIECE_M2:
        plan.notes.append(msg("{m2:.0f} m² of the drawn region lie outside {source} and are ignored",
                              m2=r["ignored"], source=src["code"]))
    return plan


def _plan_split(session, rows, codes, geometry, names) -> Plan:
    if len(codes) != 1:
        raise InvalidInput("areas", msg("split needs exactly one area"))
    grid = rows[codes[0]]
    _require_leaf(grid)
    blade = drawn_lines(geometry)
    pieces = session.execute(text("""
        WITH a AS MATERIALIZED (SELECT geom FROM areas WHERE id = :a),
             cut AS MATERIALIZED (
                SELECT d.geom AS g, ST_PointOnSurface(d.geom) AS pt
                  FROM a, ST_Dump(ST_Split(a.geom, ST_Snap(ST_GeomFromWKB(:l, 4326),
                                                           ST_Boundary(a.geom), :tol))) d),
             parts AS MATERIALIZED (SELECT p.path[1] AS k, p.geom FROM a, ST_Dump(a.geom) p),
             labelled AS (
                SELECT g, (SELECT k FROM parts WHERE ST_Intersects(parts.geom, cut.pt) LIMIT 1) AS part
                  FROM cut)
        -- A part of a multi-part grid that the line misses comes out of the split whole.
        SELECT ST_AsBinary(ST_Multi(g)) AS wkb, ST_Area(g::geography) AS m2,
               ST_X(ST_Centroid(g)) AS x, ST_Y(ST_Centroid(g)) AS y,
               count(*) OVER (PARTITION BY part) = 1 AS uncut
          FROM labelled"""), {"a": grid["id"], "l": blade, "tol": SNAP_DEGREES}).mappings().all()
    cut = [p for p in pieces if not p["uncut"]]
    if len(cut) < 2:
        raise InvalidInput("geometry", msg("the line does not cut {code} in two: draw it across the grid, "
                                           "starting and ending outside it", code=grid["code"]))
    small = [p for p in cut if p["m2"] < MIN_PIECE_M2]
    if small:
        raise InvalidInput("geometry", msg("the cut leaves a piece of only {m2:.2f} m²: draw the line "
                                           "clear of the grid's edges", m2=small[0]["m2"]))
    # Parts of a multi-part grid that the line misses join the cut piece nearest to them.
    groups = [[p] for p in sorted(cut, key=lambda p: (-p["y"], p["x"]))]
    for p in (p for p in pieces if p["uncut"]):
        nearest = min(range(len(groups)), key=lambda i: session.execute(text(
            "SELECT ST_Distance(ST_GeomFromWKB(:a, 4326), ST_GeomFromWKB(:b, 4326))"),
            {"a": p["wkb"], "b": groups[i][0]["wkb"]}).scalar())
        groups[nearest].append(p)
    geoms = [union_wkb(session, [p["wkb"] for p in g]) for g in groups]
    areas_m2 = [sum(p["m2"] for p in g) for g in groups]
    total = sum(areas_m2)
    shares = [a / total for a in areas_m2]
    plan = Plan("split", parents={grid["parent_id"]})
    new_codes = _next_codes(session, grid["parent_id"], len(groups))
    households = _apportion(grid["households"], shares)
    population = _apportion(grid["population"], shares)
    for i, (code, geom) in enumerate(zip(new_codes, geoms)):
        plan.creates.append(_new_area(session, f"new{i}", code, grid, geom, households[i],
                                      population[i], _name(names, i, session, grid["parent_id"], code)))
    plan.retires[grid["id"]] = f"new{max(range(len(groups)), key=lambda i: areas_m2[i])}"
    plan.notes.append(msg("{code} splits into {codes}", code=grid["code"], codes=", ".join(new_codes)))
    return plan


def _plan_merge(session, rows, codes, geometry, names) -> Plan:
    if len(codes) < 2:
        raise InvalidInput("areas", msg("merge needs at least two areas; the first one keeps its code"))
    members = [rows[c] for c in codes]
    _require_leaf(*members)
    _require_siblings(*members)
    ids = [m["id"] for m in members]
    edges = session.execute(text(f"""
        SELECT a.id AS a, b.id AS b FROM areas a JOIN areas b ON a.id < b.id AND a.geom && b.geom
         WHERE a.id = ANY(:ids) AND b.id = ANY(:ids) AND {shared_m_sql('a.geom', 'b.geom')} > 0.01
    """), {"ids": ids}).all()
    if not _connected(ids, edges):
        raise InvalidInput("areas", msg("only adjacent grids can be merged: {codes} do not form one "
                                        "connected block", codes=", ".join(codes)))
    keep = members[0]
    geom = session.execute(text(
        "SELECT ST_AsBinary(ST_Multi(ST_CollectionExtract(ST_Union(geom), 3))) FROM areas "
        "WHERE id = ANY(:ids)"), {"ids": ids}).scalar_one()
    plan = Plan("merge", parents={keep["parent_id"]})
    plan.updates[keep["id"]] = {"geom": geom, "households": _sum(m["households"] for m in members),
                                "population": _sum(m["population"] for m in members)}
    for m in members[1:]:
        plan.retires[m["id"]] = keep["id"]
    plan.notes.append(msg("{codes} merge into {code}", codes=", ".join(codes[1:]), code=keep["code"]))
    return plan


def _plan_reshape(session, rows, codes, geometry, names) -> Plan:
    if len(codes) != 1:
        raise InvalidInput("areas", msg("reshape needs exactly one area"))
    grid = rows[codes[0]]
    _require_leaf(grid)
    outline = drawn_polygonal(geometry)
    siblings = _siblings(session, grid)
    parent = grid["parent_id"]
    new = session.execute(text("""
        WITH p AS (SELECT geom FROM areas WHERE id = :p),
             s AS (SELECT ST_Collect(ST_Boundary(geom)) AS edges FROM areas WHERE parent_id = :p),
             n AS (SELECT ST_Snap(ST_GeomFromWKB(:n, 4326), ST_Collect(s.edges, ST_Boundary(p.geom)),
                                  :tol) AS g FROM p, s)
        SELECT ST_AsBinary(ST_CollectionExtract(ST_Intersection(n.g, p.geom), 3)) AS clipped,
               ST_Area(ST_Difference(n.g, p.geom)::geography) AS outside
          FROM n, p"""), {"p": parent, "n": outline, "tol": SNAP_DEGREES}).mappings().one()
    plan = Plan("reshape", parents={parent})
    if new["outside"] >= MIN_PIECE_M2:
        plan.notes.append(msg("{m2:.0f} m² of the outline lie outside the parent area and are ignored "
                              "(move the parent's boundary first)", m2=new["outside"]))
    # Slivers are measured with straight edges (sliver_m2_sql): the degenerate strip along an
    # edge the outline was snapped onto is nothing, and that neighbour stays as it is.
    pieces = session.execute(text(f"""
        SELECT s.id,
               ST_AsBinary(ST_CollectionExtract(ST_Intersection(s.geom, n.g), 3)) AS taken,
               ST_AsBinary(ST_CollectionExtract(ST_Difference(s.geom, n.g), 3)) AS kept,
               {sliver_m2_sql('ST_CollectionExtract(ST_Intersection(s.geom, n.g), 3)')} AS taken_m2,
               {sliver_m2_sql('s.geom')} AS m2
          FROM areas s, (SELECT ST_GeomFromWKB(:n, 4326) AS g) n
         WHERE s.parent_id = :p AND s.geom && n.g"""),
        {"n": new["clipped"], "p": parent}).mappings().all()
    by_id = {p["id"]: p for p in pieces}
    own = by_id.get(grid["id"])
    if own is None or own["taken_m2"] < MIN_PIECE_M2:
        raise InvalidInput("geometry", msg("the new outline does not overlap {code}", code=grid["code"]))
    grown = [own["taken"]]
    kept = {}
    for p in pieces:
        if p["id"] == grid["id"] or p["taken_m2"] <= 0:
            continue
        if p["m2"] - p["taken_m2"] < MIN_PIECE_M2:
            raise InvalidInput("geometry", msg("the new outline would swallow {code} entirely: merge the "
                                               "two grids instead", code=siblings[p["id"]]["code"]))
        if p["taken_m2"] < OVERLAP_TOLERANCE_M2:
            continue
        grown.append(p["taken"])
        kept[p["id"]] = p["kept"]
    # What the grid gives up goes to the neighbour it shares the longest edge with.
    lost = session.execute(text(f"""
        SELECT ST_AsBinary(d.geom) AS wkb, {sliver_m2_sql('d.geom')} AS m2,
               ST_X(ST_PointOnSurface(d.geom)) AS x, ST_Y(ST_PointOnSurface(d.geom)) AS y
          FROM ST_Dump(ST_CollectionExtract(ST_Difference(
                   (SELECT geom FROM areas WHERE id = :g), ST_GeomFromWKB(:n, 4326)), 3)) d"""),
        {"g": grid["id"], "n": new["clipped"]}).mappings().all()
    given: dict[int, list[bytes]] = {}
    for piece in lost:
        if piece["m2"] < OVERLAP_TOLERANCE_M2:
            grown.append(piece["wkb"])  # a rounding crumb stays where it is
            continue
        best = session.execute(text(f"""
            SELECT s.id, {shared_m_sql('ST_GeomFromWKB(:w, 4326)', 's.geom')} AS l
              FROM areas s WHERE s.parent_id = :p AND s.id <> :g AND s.geom && ST_Expand(ST_GeomFromWKB(:w, 4326), 1e-7)
             ORDER BY l DESC, s.id LIMIT 1"""),
            {"w": piece["wkb"], "p": parent, "g": grid["id"]}).mappings().first()
        if best is None or best["l"] <= 0.01:
            raise InvalidInput("geometry", msg("the new outline gives up {m2:.0f} m² near ({x:.6f}, "
                                               "{y:.6f}) that borders no other grid: it would become a gap",
                                               m2=piece["m2"], x=piece["x"], y=piece["y"]))
        given.setdefault(best["id"], []).append(piece["wkb"])
    if not kept and not given:
        raise InvalidInput("geometry", msg("the outline is the same as {code}'s", code=grid["code"]))
    total = session.execute(text("SELECT ST_Area(geom::geography) FROM areas WHERE id = :g"),
                            {"g": grid["id"]}).scalar_one()
    new_geom = union_wkb(session, grown)
    # Households and population follow the land: a share of each area moved, by area.
    net_h = net_p = 0
    for sid in sorted(set(kept) | set(given)):
        sib = siblings[sid]
        base = kept.get(sid) or area_wkb(session, sid)
        geom = union_wkb(session, [base] + given.get(sid, []))
        share_in = sum(area_of_wkb(session, w) for w in given.get(sid, [])) / total
        share_out = by_id[sid]["taken_m2"] / by_id[sid]["m2"] if sid in kept else 0.0
        dh = (_portion(grid["households"], share_in) or 0) - (_portion(sib["households"], share_out) or 0)
        dp = (_portion(grid["population"], share_in) or 0) - (_portion(sib["population"], share_out) or 0)
        plan.updates[sid] = {"geom": geom, "households": _plus(sib["households"], dh),
                             "population": _plus(sib["population"], dp)}
        net_h, net_p = net_h + dh, net_p + dp
    plan.updates[grid["id"]] = {"geom": new_geom, "households": _minus(grid["households"], net_h),
                                "population": _minus(grid["population"], net_p)}
    plan.notes.append(msg("{code} goes from {before:.0f} m² to {after:.0f} m²; {neighbours} neighbour(s) follow",
                          code=grid["code"], before=total, after=area_of_wkb(session, new_geom),
                          neighbours=len(plan.updates) - 1))
    return plan


def _plan_partition(session, rows, codes, geometry, names) -> Plan:
    if len(codes) != 1:
        raise InvalidInput("areas", msg("partition needs exactly one parent area (a village)"))
    parent = rows[codes[0]]
    old = session.execute(text(
        "SELECT a.id, a.code, a.households, a.population, a.kind, a.urban, "
        "EXISTS (SELECT 1 FROM areas c WHERE c.parent_id = a.id) AS has_children "
        "FROM areas a WHERE a.parent_id = :p ORDER BY a.id"), {"p": parent["id"]}).mappings().all()
    if any(o["has_children"] for o in old):
        raise InvalidInput("areas", msg("{code}'s areas have sub-areas of their own; partition the "
                                        "level below first", code=parent["code"]))
    geom = parse_geojson(geometry)
    if geom.geom_type in ("LineString", "MultiLineString"):
        pieces = [r[0] for r in session.execute(text(
            "SELECT ST_AsBinary(ST_Multi((ST_Dump(ST_Split(a.geom, ST_Snap(ST_GeomFromWKB(:l, 4326), "
            "ST_Boundary(a.geom), :tol)))).geom)) FROM areas a WHERE a.id = :p"),
            {"l": shapely.to_wkb(geom), "p": parent["id"], "tol": SNAP_DEGREES})]
    else:
        pieces = [shapely.to_wkb(p) for p in polygons_of(geom)]
    if len(pieces) < 1:
        raise InvalidInput("geometry", msg("draw at least one piece"))
    container = session.execute(text("SELECT ST_AsBinary(geom) FROM areas WHERE id = :p"),
                                {"p": parent["id"]}).scalar_one()
    maybe_fitted, report = fit_pieces(session, container, pieces)
    empty = [i + 1 for i, g in enumerate(maybe_fitted) if g is None]
    if empty:
        raise InvalidInput("geometry", msg("piece(s) {pieces} lie entirely under earlier pieces or "
                                           "outside the area", pieces=", ".join(map(str, empty))))
    fitted = [g for g in maybe_fitted if g is not None]
    plan = Plan("partition", parents={parent["id"]})
    plan.notes.extend(report)
    order = sorted(range(len(fitted)), key=lambda i: centroid_key(session, fitted[i]))
    fitted = [fitted[i] for i in order]
    weights = session.execute(text("""
        SELECT n.i, o.id, ST_Area(ST_Intersection(o.geom, ST_GeomFromWKB(n.w, 4326))::geography)
               / NULLIF(ST_Area(o.geom::geography), 0) AS share
          FROM unnest(CAST(:ws AS bytea[])) WITH ORDINALITY n(w, i)
          JOIN areas o ON o.parent_id = :p AND o.geom && ST_GeomFromWKB(n.w, 4326)"""),
        {"ws": fitted, "p": parent["id"]}).all()
    households = _redistribute(old, weights, len(fitted), "households")
    population = _redistribute(old, weights, len(fitted), "population")
    template = dict(old[0]) if old else {"kind": "综合网格", "urban": parent["urban"]}
    template.update(level=parent["level"] + 1, parent_id=parent["id"], group_id=None, attrs=None)
    new_codes = _next_codes(session, parent["id"], len(fitted))
    for i, (code, geom) in enumerate(zip(new_codes, fitted)):
        plan.creates.append(_new_area(session, f"new{i}", code, template, geom, households[i],
                                      population[i], _name(names, i, session, parent["id"], code)))
    for o in old:
        plan.retires[o["id"]] = f"new{best_overlap(session, o['id'], fitted)}"
    plan.notes.append(msg("{code} is divided into {new} new area(s) replacing {old}",
                          code=parent["code"], new=len(fitted), old=len(old)))
    return plan


def _plan_move(session, rows, codes, geometry, names) -> Plan:
    if len(codes) != 2:
        raise InvalidInput("areas", msg("move needs two areas: [grid, new parent]"))
    grid, target = rows[codes[0]], rows[codes[1]]
    _require_leaf(grid)
    if target["level"] != grid["level"] - 1:
        raise InvalidInput("areas", msg("{code} is at level {level}; a level-{own} area moves to an area "
                                        "at level {wanted}", code=target["code"], level=target["level"],
                                        own=grid["level"], wanted=grid["level"] - 1))
    if target["id"] == grid["parent_id"]:
        raise InvalidInput("areas", msg("{code} already belongs to {target}", code=grid["code"],
                                        target=target["code"]))
    info = session.execute(text(f"""
        SELECT {shared_m_sql('g.geom', 't.geom')} AS shared,
               (SELECT count(*) FROM areas s WHERE s.parent_id = g.parent_id) AS siblings
          FROM areas g, areas t WHERE g.id = :g AND t.id = :t"""),
        {"g": grid["id"], "t": target["id"]}).mappings().one()
    if info["shared"] <= 0.01:
        raise InvalidInput("areas", msg("{code} does not border {target}: a grid moves to an adjacent area",
                                        code=grid["code"], target=target["code"]))
    if info["siblings"] < 2:
        raise InvalidInput("areas", msg("{code} is the only area of its parent, which would be left empty",
                                        code=grid["code"]))
    old_chain = _ancestors(session, grid["parent_id"])
    new_chain = _ancestors(session, target["id"])
    common = next(a for a in old_chain if a in new_chain)
    plan = Plan("move", parents={common})
    gwkb = area_wkb(session, grid["id"])
    for ancestor in old_chain[:old_chain.index(common)]:
        plan.updates[ancestor] = _adjust(session, ancestor, gwkb, grid, -1)
        plan.parents.add(ancestor)
    for ancestor in new_chain[:new_chain.index(common)]:
        plan.updates[ancestor] = _adjust(session, ancestor, gwkb, grid, +1)
        plan.parents.add(ancestor)
    update = {"parent_id": target["id"]}
    old_parent_code = session.execute(text("SELECT code FROM areas WHERE id = :p"),
                                      {"p": grid["parent_id"]}).scalar_one()
    if grid["code"].startswith(old_parent_code):  # hierarchical codes follow the new parent
        update["code"] = _next_codes(session, target["id"], 1)[0]
        old_parent_name = session.execute(text("SELECT name FROM areas WHERE id = :p"),
                                          {"p": grid["parent_id"]}).scalar_one()
        if names or grid["name"].startswith(old_parent_name):
            update["name"] = _name(names, 0, session, target["id"], update["code"])
    plan.updates[grid["id"]] = update
    if "code" in update:
        plan.notes.append(msg("{code} moves to {target} as {new_code}", code=grid["code"],
                              target=target["code"], new_code=update["code"]))
    else:
        plan.notes.append(msg("{code} moves to {target}", code=grid["code"], target=target["code"]))
    return plan


PLANNERS = {"transfer": _plan_transfer, "split": _plan_split, "merge": _plan_merge,
             "reshape": _plan_reshape, "partition": _plan_partition, "move": _plan_move}


def _require_leaf(*rows) -> None:
    for r in rows:
        if r["has_children"]:
            raise InvalidInput("areas", msg("{code} has sub-areas of its own: edit those (or "
                                            "partition it) instead", code=r["code"]))


def _require_siblings(*rows) -> None:
    parents = {r["parent_id"] for r in rows}
    if len(parents) != 1 or None in parents:
        raise InvalidInput("areas", msg("{codes} are not in the same parent area: use move first",
                                        codes=joined([r["code"] for r in rows], ", ")))


def _siblings(session, row) -> dict[int, dict]:
    return {r["id"]: dict(r) for r in session.execute(text(
        "SELECT id, code, households, population FROM areas WHERE parent_id = :p"),
        {"p": row["parent_id"]}).mappings()}


def _ancestors(session, area_id: int) -> list[int]:
    path = session.execute(text("SELECT path::text FROM areas WHERE id = :a"), {"a": area_id}).scalar_one()
    return [int(p) for p in reversed(path.split("."))]


def parents_of(session, ids: list[int]) -> set:
    return set(session.execute(text("SELECT DISTINCT parent_id FROM areas WHERE id = ANY(:ids)"),
                               {"ids": ids}).scalars())


def _adjust(session, ancestor: int, gwkb: bytes, grid: dict, sign: int) -> dict:
    row = session.execute(text(f"""
        SELECT ST_AsBinary(ST_Multi(ST_CollectionExtract(
                   {'ST_Union' if sign > 0 else 'ST_Difference'}(geom, ST_GeomFromWKB(:g, 4326)), 3))) AS geom,
               households, population FROM areas WHERE id = :a"""),
        {"a": ancestor, "g": gwkb}).mappings().one()
    adjust = _plus if sign > 0 else _minus
    return {"geom": row["geom"], "households": adjust(row["households"], grid["households"]),
            "population": adjust(row["population"], grid["population"])}


def _next_codes(session, parent_id: int, n: int) -> list[str]:
    """New codes under a parent: its code plus the next unused number, never reusing a retired one."""
    parent = session.execute(text("SELECT code FROM areas WHERE id = :p"), {"p": parent_id}).scalar_one()
    taken = set(session.execute(text(
        "SELECT code FROM areas WHERE code LIKE :pre UNION SELECT code FROM area_versions WHERE code LIKE :pre"),
        {"pre": parent.replace("%", r"\%").replace("_", r"\_") + "%"}).scalars())
    suffixes = [c[len(parent):] for c in taken if c[len(parent):].isdigit()]
    width = max((len(s) for s in suffixes), default=3)
    number = max((int(s) for s in suffixes), default=0)
    out: list[str] = []
    while len(out) < n:
        number += 1
        code = parent + str(number).zfill(width)
        if code not in taken:
            out.append(code)
    return out


def _name(names, i: int, session, parent_id: int, code: str) -> str:
    if names and i < len(names) and isinstance(names[i], str) and names[i].strip():
        return names[i].strip()
    parent = session.execute(text("SELECT code, name FROM areas WHERE id = :p"), {"p": parent_id}).one()
    suffix = code[len(parent.code):] if code.startswith(parent.code) else code
    return f"{parent.name}第{int(suffix)}网格" if suffix.isdigit() else f"{parent.name}{suffix}"


def _new_area(session, key, code, template, geom, households, population, name) -> NewArea:
    return NewArea(key=key, code=code, name=name, level=template["level"],
                   parent_id=template["parent_id"], geom=geom, households=households,
                   population=population, kind=template.get("kind"), urban=template.get("urban"),
                   group_id=template.get("group_id"))


def _connected(ids: list[int], edges) -> bool:
    seen, todo = {ids[0]}, [ids[0]]
    adjacent: dict[int, set[int]] = {}
    for a, b in edges:
        adjacent.setdefault(a, set()).add(b)
        adjacent.setdefault(b, set()).add(a)
    while todo:
        for nxt in adjacent.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen == set(ids)


def _portion(value: int | None, share: float) -> int | None:
    return None if value is None else int(round(value * share))


def _plus(a: int | None, b: int | None) -> int | None:
    return None if a is None else a + (b or 0)


def _minus(a: int | None, b: int | None) -> int | None:
    return None if a is None else max(0, a - (b or 0))


def _sum(values) -> int | None:
    values = list(values)
    return None if all(v is None for v in values) else sum(v or 0 for v in values)


def _apportion(total: int | None, shares: list[float]) -> Sequence[int | None]:
    """Split an integer by shares with the largest-remainder rule, so the parts add up exactly."""
    if total is None:
        return [None] * len(shares)
    raw = [total * s for s in shares]
    out = [int(math.floor(r)) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - out[i], reverse=True)[:total - sum(out)]:
        out[i] += 1
    return out


def _redistribute(old, weights, n: int, column: str) -> Sequence[int | None]:
    """Share the old areas' counts out to new pieces by the fraction of each old area they cover."""
    values = {o["id"]: o[column] for o in old}
    if not old or all(v is None for v in values.values()):
        return [None] * n
    raw = [0.0] * n
    for i, old_id, share in weights:
        raw[int(i) - 1] += (values.get(old_id) or 0) * (share or 0)
    total = sum(v or 0 for v in values.values())
    s = sum(raw)
    return _apportion(total, [r / s for r in raw] if s else [1 / n] * n)
