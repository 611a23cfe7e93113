"""Boundary edits: change sets that keep every level an exact partition, with history and revert.

Each operation — transfer, split, merge, reshape, partition, move — is planned in PostGIS from the
current geometries (every new piece is cut from the same noded boundaries, so neighbours stay
edge to edge), applied in the caller's transaction, checked against the partition invariant of
every affected parent, and recorded as one `boundary_changes` row with a new `area_versions` row
per area it touches. A preview runs the very same code inside a savepoint that is rolled back, so
what the planner sees is what a commit would write.

Areas an operation removes (the halves of a split grid's predecessor, the absorbed side of a
merge) leave `areas` for good — no query elsewhere has to filter them — while their versions stay
in `area_versions` (migration 0003), which is what as-of queries and revert read. A revert is a
new change set that writes the earlier versions back, byte for byte the same WKB.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone

import shapely
from shapely.geometry import shape
from sqlalchemy import text
from sqlalchemy.orm import Session

from . import audit, validation
from .areas import GEOJSON_DIGITS, area_row, parse_bbox, sliver_m2_sql
from .errors import Conflict, InvalidInput, NotFound
from .messages import Message, msg

OPS = ("transfer", "split", "merge", "reshape", "partition", "move")

# Drawn vertices within this many degrees (≈ 10 cm) of an existing edge are snapped onto it, so a
# shape traced along a neighbour's edge in the browser (coordinates rounded to 1e-7°) leaves no sliver.
SNAP_DEGREES = 1e-6
# The invariant every committed change is checked against, in square metres.
GAP_TOLERANCE_M2 = 1e-3
OVERLAP_TOLERANCE_M2 = 1e-6
# A piece smaller than this is a drawing slip, never a grid of its own.
MIN_PIECE_M2 = 1.0
LOCK_MINUTES = 10
OPEN_STATUSES = ("reported", "accepted", "handling", "escalated")


# -- plans -----------------------------------------------------------------------------------
@dataclass
class NewArea:
    """An area a change creates (or, in a revert, brings back with its old id)."""

    key: str
    code: str
    name: str
    level: int
    parent_id: int | None
    geom: bytes
    households: int | None = None
    population: int | None = None
    kind: str | None = None
    urban: bool | None = None
    group_id: int | None = None
    attrs: dict | None = None
    id: int | None = None
    restore_version: int | None = None  # a revert copies this version's geometry (same WKB)


@dataclass
class Plan:
    """What a change does: areas updated in place, created and retired (with their successor)."""

    op: str
    updates: dict[int, dict] = field(default_factory=dict)
    creates: list[NewArea] = field(default_factory=list)
    retires: dict[int, int | str] = field(default_factory=dict)  # id → successor id or create key
    notes: list[str] = field(default_factory=list)
    parents: set[int] = field(default_factory=set)  # whose children must still partition them
    restore_refs: list = field(default_factory=list)  # a revert puts back what the change carried


@dataclass
class Result:
    """A preview or a committed change: one row per area it touches, and what to watch out for."""

    op: str
    preview: bool
    rows: list[dict]
    balance: dict
    problems: list[dict]
    notes: list[str]
    change_id: int | None = None
    reverts_id: int | None = None

    def as_dict(self) -> dict:
        return {"op": self.op, "preview": self.preview, "change_id": self.change_id,
                "reverts_id": self.reverts_id, "rows": self.rows, "balance": self.balance,
                "problems": self.problems, "notes": self.notes}


# -- entry points ----------------------------------------------------------------------------
def apply(session: Session, op: str, *, areas: list[str], geometry=None,
          base_versions: dict | None = None, reason: str | None, actor: audit.Actor,
          preview: bool = False, names: list[str] | None = None) -> Result:
    """Plan, check and apply one edit operation as a change set (or only preview it).

    Raises:
        InvalidInput: a malformed request, or an edit that would break the partition (with why).
        Conflict: `base_versions` are stale; the details say what changed meanwhile.
    """
    if op not in OPS:
        raise InvalidInput("op", f"op must be one of {', '.join(OPS)}; got {op!r}")
    codes = _codes(areas)
    if not preview:
        _require_reason(reason)
    planner = _PLANNERS[op]
    rows = _lock(session, codes)
    _check_versions(session, rows, codes, base_versions, required=not preview)
    plan = planner(session, rows, codes, geometry, names)
    return _execute(session, plan, reason=reason, actor=actor, preview=preview,
                    payload_input={"areas": codes, "geometry": geometry, "names": names})


def revert(session: Session, change_id: int, *, reason: str | None, actor: audit.Actor,
           preview: bool = False) -> Result:
    """Undo a change set as a new change set, restoring every area's earlier geometry exactly.

    Raises:
        Conflict: a later change touched the same areas (revert that first), or it was reverted.
    """
    if not preview:
        _require_reason(reason)
    change = _change_row(session, change_id)
    payload = change["payload"] or {}
    if change["kind"] == "import" or "after" not in payload:
        raise InvalidInput("change", f"change #{change_id} ({change['kind']}) cannot be reverted here")
    done = session.execute(text("SELECT id FROM boundary_changes WHERE reverts_id = :c"),
                           {"c": change_id}).scalar()
    if done:
        raise Conflict(f"change #{change_id} was already reverted by change #{done}",
                       details={"reverted_by": done})
    after = {int(k): v for k, v in payload["after"].items()}
    before = {int(k): v for k, v in payload["before"].items()}
    ids = sorted(set(after) | set(before))
    current = {r["id"]: r for r in session.execute(text(
        "SELECT id, code, version, parent_id FROM areas WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"),
        {"ids": ids}).mappings()}
    # An area is as the change left it when its content matches that version (a revert of a
    # later change may have brought it back under a newer version number).
    same = set(session.execute(text("""
        SELECT a.id FROM areas a
          JOIN area_versions v ON v.area_id = a.id
          JOIN unnest(CAST(:ids AS int[]), CAST(:vs AS int[])) AS x(id, version)
            ON x.id = v.area_id AND x.version = v.version
         WHERE ST_AsBinary(a.geom) = ST_AsBinary(v.geom) AND a.code = v.code
           AND a.parent_id IS NOT DISTINCT FROM v.parent_id"""),
        {"ids": list(after), "vs": list(after.values())}).scalars())
    stale = [i for i in after if i not in same]
    stale += [i for i in payload.get("retired", {}) if int(i) in current]
    if stale:
        later = _later_changes(session, [int(i) for i in stale], change_id)
        raise Conflict(f"change #{change_id} cannot be reverted: "
                       + ("; ".join(f"change #{c['id']} ({c['kind']}, {c['author'] or 'unknown'}) "
                                    f"touched {', '.join(c['codes'])} since" for c in later)
                          or "its areas changed since")
                       + " — revert the later changes first",
                       details={"changes": later})
    plan = Plan("revert")
    versions = {(r["area_id"], r["version"]): r for r in session.execute(text(
        "SELECT area_id, version, code, name, level, parent_id, households, population "
        "FROM area_versions WHERE (area_id, version) IN "
        "(SELECT * FROM unnest(CAST(:ids AS int[]), CAST(:vs AS int[])))"),
        {"ids": list(before), "vs": list(before.values())}).mappings()}
    extras = {int(k): v for k, v in payload.get("retired_rows", {}).items()}
    created = [int(i) for i in payload.get("created", [])]
    for area_id, version in before.items():
        old = versions.get((area_id, version))
        if old is None:
            raise Conflict(f"version {version} of area {area_id} is missing from the history")
        plan.parents.add(old["parent_id"])
        if area_id in current:
            plan.parents.add(current[area_id]["parent_id"])
            plan.updates[area_id] = {"geom_sql": (area_id, version), "households": old["households"],
                                     "population": old["population"], "code": old["code"],
                                     "name": old["name"], "parent_id": old["parent_id"]}
        else:
            extra = extras.get(area_id, {})
            plan.creates.append(NewArea(
                key=f"restore{area_id}", id=area_id, restore_version=version, code=old["code"],
                name=old["name"], level=old["level"], parent_id=old["parent_id"], geom=b"",
                households=old["households"], population=old["population"],
                kind=extra.get("kind"), urban=extra.get("urban"), group_id=extra.get("group_id"),
                attrs=extra.get("attrs")))
    for area_id in created:
        plan.parents.add(current[area_id]["parent_id"])
        plan.retires[area_id] = _successor_by_overlap(session, area_id, before)
    plan.parents.discard(None)
    plan.restore_refs = payload.get("carried", [])
    return _execute(session, plan, reason=reason, actor=actor, preview=preview,
                    reverts=change_id, payload_input={"reverts": change_id})


# -- planning each operation -----------------------------------------------------------------
def _plan_transfer(session, rows, codes, geometry, names) -> Plan:
    if len(codes) != 2:
        raise InvalidInput("areas", "transfer needs two areas: [from, to]")
    src, dst = rows[codes[0]], rows[codes[1]]
    _require_leaf(src, dst)
    _require_siblings(src, dst)
    region = _polygonal(geometry)
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
               {_shared_m('piece', 'bg')} AS shared
          FROM x"""), {"r": region, "a": src["id"], "b": dst["id"], "tol": SNAP_DEGREES}).mappings().one()
    if r["moved"] < MIN_PIECE_M2:
        raise InvalidInput("geometry", f"the drawn region does not overlap {src['code']} "
                                       f"({r['moved']:.1f} m² in common): draw it over the part to move")
    if r["a_m2"] - r["moved"] < MIN_PIECE_M2:
        raise InvalidInput("geometry", f"the region covers all of {src['code']}: merge it into "
                                       f"{dst['code']} instead")
    if r["shared"] <= 0.01:
        raise InvalidInput("geometry", f"the piece to move does not border {dst['code']}: a transfer "
                                       "goes to an adjacent grid")
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
        raise InvalidInput("areas", "split needs exactly one area")
    grid = rows[codes[0]]
    _require_leaf(grid)
    blade = _lines(geometry)
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
        raise InvalidInput("geometry", f"the line does not cut {grid['code']} in two: draw it across "
                                       "the grid, starting and ending outside it")
    small = [p for p in cut if p["m2"] < MIN_PIECE_M2]
    if small:
        raise InvalidInput("geometry", f"the cut leaves a piece of only {small[0]['m2']:.2f} m²: "
                                       "draw the line clear of the grid's edges")
    # Parts of a multi-part grid that the line misses join the cut piece nearest to them.
    groups = [[p] for p in sorted(cut, key=lambda p: (-p["y"], p["x"]))]
    for p in (p for p in pieces if p["uncut"]):
        nearest = min(range(len(groups)), key=lambda i: session.execute(text(
            "SELECT ST_Distance(ST_GeomFromWKB(:a, 4326), ST_GeomFromWKB(:b, 4326))"),
            {"a": p["wkb"], "b": groups[i][0]["wkb"]}).scalar())
        groups[nearest].append(p)
    geoms = [_union_wkb(session, [p["wkb"] for p in g]) for g in groups]
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
        raise InvalidInput("areas", "merge needs at least two areas; the first one keeps its code")
    members = [rows[c] for c in codes]
    _require_leaf(*members)
    _require_siblings(*members)
    ids = [m["id"] for m in members]
    edges = session.execute(text(f"""
        SELECT a.id AS a, b.id AS b FROM areas a JOIN areas b ON a.id < b.id AND a.geom && b.geom
         WHERE a.id = ANY(:ids) AND b.id = ANY(:ids) AND {_shared_m('a.geom', 'b.geom')} > 0.01
    """), {"ids": ids}).all()
    if not _connected(ids, edges):
        raise InvalidInput("areas", "only adjacent grids can be merged: "
                                    f"{', '.join(codes)} do not form one connected block")
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
        raise InvalidInput("areas", "reshape needs exactly one area")
    grid = rows[codes[0]]
    _require_leaf(grid)
    outline = _polygonal(geometry)
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
        raise InvalidInput("geometry", f"the new outline does not overlap {grid['code']}")
    grown = [own["taken"]]
    kept = {}
    for p in pieces:
        if p["id"] == grid["id"] or p["taken_m2"] <= 0:
            continue
        if p["m2"] - p["taken_m2"] < MIN_PIECE_M2:
            raise InvalidInput("geometry", f"the new outline would swallow {siblings[p['id']]['code']} "
                                           "entirely: merge the two grids instead")
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
            SELECT s.id, {_shared_m('ST_GeomFromWKB(:w, 4326)', 's.geom')} AS l
              FROM areas s WHERE s.parent_id = :p AND s.id <> :g AND s.geom && ST_Expand(ST_GeomFromWKB(:w, 4326), 1e-7)
             ORDER BY l DESC, s.id LIMIT 1"""),
            {"w": piece["wkb"], "p": parent, "g": grid["id"]}).mappings().first()
        if best is None or best["l"] <= 0.01:
            raise InvalidInput("geometry", f"the new outline gives up {piece['m2']:.0f} m² near "
                                           f"({piece['x']:.6f}, {piece['y']:.6f}) that borders no other "
                                           "grid: it would become a gap")
        given.setdefault(best["id"], []).append(piece["wkb"])
    if not kept and not given:
        raise InvalidInput("geometry", f"the outline is the same as {grid['code']}'s")
    total = session.execute(text("SELECT ST_Area(geom::geography) FROM areas WHERE id = :g"),
                            {"g": grid["id"]}).scalar_one()
    new_geom = _union_wkb(session, grown)
    # Households and population follow the land: a share of each area moved, by area.
    net_h = net_p = 0
    for sid in sorted(set(kept) | set(given)):
        sib = siblings[sid]
        base = kept.get(sid) or _area_wkb(session, sid)
        geom = _union_wkb(session, [base] + given.get(sid, []))
        share_in = sum(_area(session, w) for w in given.get(sid, [])) / total
        share_out = by_id[sid]["taken_m2"] / by_id[sid]["m2"] if sid in kept else 0.0
        dh = (_portion(grid["households"], share_in) or 0) - (_portion(sib["households"], share_out) or 0)
        dp = (_portion(grid["population"], share_in) or 0) - (_portion(sib["population"], share_out) or 0)
        plan.updates[sid] = {"geom": geom, "households": _plus(sib["households"], dh),
                             "population": _plus(sib["population"], dp)}
        net_h, net_p = net_h + dh, net_p + dp
    plan.updates[grid["id"]] = {"geom": new_geom, "households": _minus(grid["households"], net_h),
                                "population": _minus(grid["population"], net_p)}
    plan.notes.append(msg("{code} goes from {before:.0f} m² to {after:.0f} m²; {neighbours} neighbour(s) follow",
                          code=grid["code"], before=total, after=_area(session, new_geom),
                          neighbours=len(plan.updates) - 1))
    return plan


def _plan_partition(session, rows, codes, geometry, names) -> Plan:
    if len(codes) != 1:
        raise InvalidInput("areas", "partition needs exactly one parent area (a village)")
    parent = rows[codes[0]]
    old = session.execute(text(
        "SELECT a.id, a.code, a.households, a.population, a.kind, a.urban, "
        "EXISTS (SELECT 1 FROM areas c WHERE c.parent_id = a.id) AS has_children "
        "FROM areas a WHERE a.parent_id = :p ORDER BY a.id"), {"p": parent["id"]}).mappings().all()
    if any(o["has_children"] for o in old):
        raise InvalidInput("areas", f"{parent['code']}'s areas have sub-areas of their own; "
                                    "partition the level below first")
    geom = _parse_geojson(geometry)
    if geom.geom_type in ("LineString", "MultiLineString"):
        pieces = [r[0] for r in session.execute(text(
            "SELECT ST_AsBinary(ST_Multi((ST_Dump(ST_Split(a.geom, ST_Snap(ST_GeomFromWKB(:l, 4326), "
            "ST_Boundary(a.geom), :tol)))).geom)) FROM areas a WHERE a.id = :p"),
            {"l": shapely.to_wkb(geom), "p": parent["id"], "tol": SNAP_DEGREES})]
    else:
        pieces = [shapely.to_wkb(p) for p in _polygons(geom)]
    if len(pieces) < 1:
        raise InvalidInput("geometry", "draw at least one piece")
    container = session.execute(text("SELECT ST_AsBinary(geom) FROM areas WHERE id = :p"),
                                {"p": parent["id"]}).scalar_one()
    fitted, report = fit_pieces(session, container, pieces)
    empty = [i + 1 for i, g in enumerate(fitted) if g is None]
    if empty:
        raise InvalidInput("geometry", f"piece(s) {', '.join(map(str, empty))} lie entirely under "
                                       "earlier pieces or outside the area")
    plan = Plan("partition", parents={parent["id"]})
    plan.notes.extend(report)
    order = sorted(range(len(fitted)), key=lambda i: _centroid_key(session, fitted[i]))
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
        plan.retires[o["id"]] = f"new{_best_overlap(session, o['id'], fitted)}"
    plan.notes.append(msg("{code} is divided into {new} new area(s) replacing {old}",
                          code=parent["code"], new=len(fitted), old=len(old)))
    return plan


def _plan_move(session, rows, codes, geometry, names) -> Plan:
    if len(codes) != 2:
        raise InvalidInput("areas", "move needs two areas: [grid, new parent]")
    grid, target = rows[codes[0]], rows[codes[1]]
    _require_leaf(grid)
    if target["level"] != grid["level"] - 1:
        raise InvalidInput("areas", f"{target['code']} is at level {target['level']}; a level-"
                                    f"{grid['level']} area moves to an area at level {grid['level'] - 1}")
    if target["id"] == grid["parent_id"]:
        raise InvalidInput("areas", f"{grid['code']} already belongs to {target['code']}")
    info = session.execute(text(f"""
        SELECT {_shared_m('g.geom', 't.geom')} AS shared,
               (SELECT count(*) FROM areas s WHERE s.parent_id = g.parent_id) AS siblings
          FROM areas g, areas t WHERE g.id = :g AND t.id = :t"""),
        {"g": grid["id"], "t": target["id"]}).mappings().one()
    if info["shared"] <= 0.01:
        raise InvalidInput("areas", f"{grid['code']} does not border {target['code']}: a grid moves "
                                    "to an adjacent area")
    if info["siblings"] < 2:
        raise InvalidInput("areas", f"{grid['code']} is the only area of its parent, which would be "
                                    "left empty")
    old_chain = _ancestors(session, grid["parent_id"])
    new_chain = _ancestors(session, target["id"])
    common = next(a for a in old_chain if a in new_chain)
    plan = Plan("move", parents={common})
    gwkb = _area_wkb(session, grid["id"])
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


_PLANNERS = {"transfer": _plan_transfer, "split": _plan_split, "merge": _plan_merge,
             "reshape": _plan_reshape, "partition": _plan_partition, "move": _plan_move}


# -- fitting pieces into a container ---------------------------------------------------------
def fit_pieces(session: Session, container: bytes | None, pieces: list[bytes],
               labels: list[str] | None = None) -> tuple[list[bytes | None], list[str]]:
    """Make pieces an exact partition of `container`: clip, resolve overlaps, fill gaps.

    Each piece is snapped to the container's edges and clipped to it; where pieces overlap the
    earlier one keeps the overlap; every uncovered sliver joins the piece it shares the longest
    edge with (the nearest one when it touches none). Without a container only overlaps are
    resolved. Returns the fitted WKB (None for a piece left empty) and one line per adjustment.
    """
    labels = labels or [f"piece {i + 1}" for i in range(len(pieces))]
    rows = session.execute(text(f"""
        WITH c AS (SELECT ST_GeomFromWKB(CAST(:c AS bytea), 4326) AS g),
             p AS (SELECT i, ST_GeomFromWKB(w, 4326) AS raw FROM unnest(CAST(:ws AS bytea[]))
                         WITH ORDINALITY u(w, i)),
             clipped AS (
                SELECT i, raw,
                       CASE WHEN c.g IS NULL THEN raw ELSE ST_CollectionExtract(ST_Intersection(
                           ST_Snap(raw, ST_ClipByBox2D(ST_Boundary(c.g), ST_Expand(raw, :tol)), :tol),
                           c.g), 3) END AS g
                  FROM p, c),
             resolved AS (
                SELECT a.i, a.raw, a.g AS clipped,
                       COALESCE(ST_CollectionExtract(ST_Difference(a.g, (
                           SELECT ST_Union(b.g) FROM clipped b WHERE b.i < a.i AND b.g && a.g)), 3),
                           a.g) AS g
                  FROM clipped a),
             edged AS MATERIALIZED (SELECT i, g, ST_Boundary(g) AS edge FROM resolved),
             gaps AS MATERIALIZED (
                SELECT row_number() OVER () AS k, d.geom AS g, ST_Buffer(d.geom, :tol) AS halo
                  FROM c, ST_Dump(ST_CollectionExtract(ST_Difference(c.g,
                           (SELECT ST_Union(g) FROM resolved)), 3)) d
                 WHERE c.g IS NOT NULL),
             owner AS (
                -- Each sliver joins the piece it shares the longest edge with (bbox-filtered),
                -- or the nearest piece when it touches none.
                SELECT gaps.k, gaps.g, COALESCE(
                    (SELECT r.i FROM edged r
                      WHERE NOT ST_IsEmpty(r.g) AND r.g && gaps.halo
                      ORDER BY ST_Length(ST_Intersection(r.edge, gaps.halo)) DESC,
                               ST_Distance(r.g, gaps.g), r.i LIMIT 1),
                    (SELECT r.i FROM edged r WHERE NOT ST_IsEmpty(r.g)
                      ORDER BY ST_Distance(r.g, gaps.g), r.i LIMIT 1)) AS i
                  FROM gaps)
        SELECT r.i,
               ST_AsBinary(ST_Multi(ST_CollectionExtract(ST_Union(
                   ARRAY[r.g] || ARRAY(SELECT o.g FROM owner o WHERE o.i = r.i)), 3))) AS wkb,
               -- Differences of areas, not areas of differences: the pieces are nested, and
               -- this costs nothing where an overlay of two large polygons would.
               greatest({sliver_m2_sql('r.raw')} - {sliver_m2_sql('r.clipped')}, 0) AS outside,
               greatest({sliver_m2_sql('r.clipped')} - {sliver_m2_sql('r.g')}, 0) AS overlap,
               COALESCE((SELECT sum({sliver_m2_sql('o.g')}) FROM owner o WHERE o.i = r.i), 0) AS filled,
               {sliver_m2_sql('r.g')} AS m2
          FROM resolved r ORDER BY r.i"""),
        {"c": container, "ws": list(pieces), "tol": SNAP_DEGREES}).mappings().all()
    out: list[bytes | None] = []
    report = []
    for r, label in zip(rows, labels):
        geom = r["wkb"]
        empty = geom is None or r["m2"] + r["filled"] < MIN_PIECE_M2
        out.append(None if empty else geom)
        bits = []
        if r["outside"] > OVERLAP_TOLERANCE_M2:
            bits.append(f"{r['outside']:.2f} m² outside its parent clipped off")
        if r["overlap"] > OVERLAP_TOLERANCE_M2:
            bits.append(f"{r['overlap']:.2f} m² overlapping an earlier feature removed")
        if r["filled"] > OVERLAP_TOLERANCE_M2:
            bits.append(f"{r['filled']:.2f} m² of uncovered slivers added")
        if bits:
            report.append(f"{label}: " + ", ".join(bits))
    return out, report


# -- executing a plan ------------------------------------------------------------------------
def _execute(session: Session, plan: Plan, *, reason, actor, preview, payload_input,
             reverts: int | None = None) -> Result:
    # A savepoint makes the change all-or-nothing inside the caller's transaction: a refusal
    # leaves nothing behind, and a preview is the very same write, rolled back.
    savepoint = session.begin_nested()
    try:
        result = _write(session, plan, reason=reason, actor=actor, payload_input=payload_input,
                        reverts=reverts, preview=preview)
    except BaseException:
        if savepoint.is_active:
            savepoint.rollback()
        raise
    if preview:
        savepoint.rollback()
    else:
        savepoint.commit()
    return result


def _write(session, plan: Plan, *, reason, actor, payload_input, reverts, preview) -> Result:
    ts = session.execute(text("SELECT clock_timestamp()")).scalar_one()
    touched_before = sorted(set(plan.updates) | set(plan.retires))
    before = _stats(session, touched_before)
    _ensure_baseline(session, touched_before)
    prior_versions = {i: s["version"] for i, s in before.items()}
    balance_before = _children_households(session, plan.parents)
    retired_rows = _retired_rows(session, list(plan.retires))
    change_id = session.execute(text(
        "INSERT INTO boundary_changes (kind, author_id, reason, created_at, reverts_id) "
        "VALUES (:k, :a, :r, :ts, :rev) RETURNING id"),
        {"k": plan.op, "a": actor.user_id, "r": reason or "(preview)", "ts": ts,
         "rev": reverts}).scalar_one()
    keys: dict[str, int] = {}
    for new in plan.creates:
        keys[new.key] = _insert_area(session, new, ts)
    for area_id, upd in plan.updates.items():
        _update_area(session, area_id, upd, ts)
    successors = {rid: (keys[s] if isinstance(s, str) else s) for rid, s in plan.retires.items()}
    _restore_references(session, plan.restore_refs)
    region = _changed_region(session, {i: prior_versions[i] for i in plan.updates}, list(successors))
    carried = _carry_references(session, successors, region)
    changed = sorted(set(plan.updates) | set(keys.values()))
    _close_versions(session, changed + list(successors), ts)
    session.execute(text(
        "DELETE FROM areas WHERE id = ANY(:ids)"), {"ids": list(successors)})
    if region is not None:
        # Incidents get their new current grid (and finest area) by the incidents module's own
        # rule, in this transaction, for every point where an area changed hands.
        from . import incidents

        moved = incidents.assign(session, within_wkt=shapely.to_wkt(
            shapely.from_wkb(region), rounding_precision=-1))
        carried.append({"table": "incidents", "column": "grid_id", "relocated": moved})
    session.execute(text("""
        INSERT INTO area_versions (area_id, version, code, name, level, parent_id, geom, households,
                                   population, valid_from, change_id)
        SELECT id, version, code, name, level, parent_id, geom, households, population, :ts, :c
          FROM areas WHERE id = ANY(:ids)"""), {"ids": changed, "ts": ts, "c": change_id})
    _verify(session, plan.parents | _parents_of(session, changed), changed)
    after = _stats(session, changed)
    rows = _rows(before, after, successors, keys)
    problems = validation.problems_for(session, changed)
    balance = _balance(balance_before, _children_households(session, plan.parents))
    payload = {"op": plan.op, "author": actor.name, "input": payload_input, "notes": plan.notes,
               # so that the history can be read in the reader's language too
               "note_templates": [[n.template, n.values] if isinstance(n, Message) else None
                                  for n in plan.notes],
               "before": {str(i): v for i, v in prior_versions.items()},
               "after": {str(i): after[i]["version"] for i in changed},
               "created": sorted(keys.values()), "retired": {str(k): v for k, v in successors.items()},
               "retired_rows": retired_rows, "carried": carried,
               "codes": sorted({r["code"] for r in rows}), "parents": sorted(plan.parents)}
    session.execute(text("UPDATE boundary_changes SET payload = CAST(:p AS jsonb) WHERE id = :c"),
                    {"p": json.dumps(payload, ensure_ascii=False, default=str), "c": change_id})
    if not preview:
        audit.record(session, actor, f"boundary.{plan.op}", target_type="boundary_change",
                     target_id=change_id, area_code=_first_parent_code(session, plan.parents),
                     details={"reason": reason, "codes": payload["codes"], "reverts": reverts})
    return Result(plan.op, preview, rows, balance, problems, plan.notes,
                  None if preview else change_id, reverts)


def _insert_area(session, new: NewArea, ts) -> int:
    params = {"code": new.code, "name": new.name, "level": new.level, "parent": new.parent_id,
              "geom": new.geom or None, "h": new.households, "p": new.population, "kind": new.kind,
              "urban": new.urban, "group": new.group_id, "ts": ts,
              "attrs": json.dumps(new.attrs, ensure_ascii=False) if new.attrs else None}
    if new.id is not None:
        # A revert brings the area back under its old id, its last geometry copied byte for byte.
        return session.execute(text("""
            INSERT INTO areas (id, code, name, level, parent_id, geom, households, population, kind,
                               urban, group_id, attrs, version, created_at, updated_at)
            SELECT :id, :code, :name, :level, :parent, v.geom, :h, :p, :kind, :urban, :group,
                   CAST(:attrs AS jsonb),
                   (SELECT max(version) + 1 FROM area_versions WHERE area_id = :id), :ts, :ts
              FROM area_versions v WHERE v.area_id = :id AND v.version = :v
            RETURNING id"""), {**params, "id": new.id, "v": new.restore_version}).scalar_one()
    return session.execute(text("""
        INSERT INTO areas (code, name, level, parent_id, geom, households, population, kind, urban,
                           group_id, attrs, version, created_at, updated_at)
        VALUES (:code, :name, :level, :parent, ST_Multi(ST_GeomFromWKB(:geom, 4326)), :h, :p, :kind,
                :urban, :group, CAST(:attrs AS jsonb), 1, :ts, :ts)
        RETURNING id"""), params).scalar_one()


def _update_area(session, area_id: int, upd: dict, ts) -> None:
    sets, params = ["version = version + 1", "updated_at = :ts"], {"id": area_id, "ts": ts}
    if "geom" in upd:
        sets.append("geom = ST_Multi(ST_GeomFromWKB(:geom, 4326))")
        params["geom"] = upd["geom"]
    if "geom_sql" in upd:
        sets.append("geom = (SELECT geom FROM area_versions WHERE area_id = :vid AND version = :vv)")
        params["vid"], params["vv"] = upd["geom_sql"]
    for column in ("households", "population", "code", "name", "parent_id"):
        if column in upd:
            sets.append(f"{column} = :{column}")
            params[column] = upd[column]
    session.execute(text(f"UPDATE areas SET {', '.join(sets)} WHERE id = :id"), params)


def _ensure_baseline(session, ids: list[int]) -> None:
    """Give an area that predates versioning (no version row yet) its current state as history."""
    session.execute(text("""
        INSERT INTO area_versions (area_id, version, code, name, level, parent_id, geom, households,
                                   population, valid_from)
        SELECT a.id, a.version, a.code, a.name, a.level, a.parent_id, a.geom, a.households,
               a.population, a.created_at
          FROM areas a
         WHERE a.id = ANY(:ids)
           AND NOT EXISTS (SELECT 1 FROM area_versions v WHERE v.area_id = a.id AND v.version = a.version)
    """), {"ids": ids})


def _close_versions(session, ids: list[int], ts) -> None:
    session.execute(text("UPDATE area_versions SET valid_to = :ts WHERE area_id = ANY(:ids) "
                         "AND valid_to IS NULL"), {"ids": ids, "ts": ts})


def _retired_rows(session, ids: list[int]) -> dict:
    """What area_versions does not keep of an area about to be retired, for an exact revert."""
    rows = session.execute(text(
        "SELECT id, kind, urban, group_id, attrs FROM areas WHERE id = ANY(:ids)"),
        {"ids": ids}).mappings()
    return {str(r["id"]): {k: r[k] for k in ("kind", "urban", "group_id", "attrs")} for r in rows}


# -- what points at areas: incidents, entities, staff, scopes … ------------------------------
_REFERENCES: dict[str, list[dict]] = {}


def _references(session) -> list[dict]:
    """Every single-column foreign key to areas(id), with its delete rule and whether it has geom.

    Read from the catalogue once per database (the schema changes only with a migration).
    """
    key = session.get_bind().engine.url.render_as_string(hide_password=True)
    if key not in _REFERENCES:
        _REFERENCES[key] = _read_references(session)
    return _REFERENCES[key]


def _read_references(session) -> list[dict]:
    return [dict(r) for r in session.execute(text("""
        SELECT c.conrelid::regclass::text AS tbl, a.attname AS col, c.confdeltype AS on_delete,
               EXISTS (SELECT 1 FROM geometry_columns g
                        WHERE g.f_table_name = c.conrelid::regclass::text
                          AND g.f_geometry_column = 'geom') AS located
          FROM pg_constraint c
          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
         WHERE c.contype = 'f' AND c.confrelid = 'areas'::regclass AND cardinality(c.conkey) = 1
           AND NOT (c.conrelid = 'areas'::regclass)
         ORDER BY 1, 2""")).mappings()]


def _carry_references(session, successors: dict[int, int | None], region: bytes | None) -> list:
    """Point everything that referenced a changed or retired area at the right current area.

    Rows with a location (entities, places) go to the area of the same level that contains them
    — the lowest id on a shared edge, the rule of `areas.finest_at`; staff, scopes and other rows
    of a retired area follow its successor. What a retired area's deletion takes with it is
    recorded, so a revert can put it back. Incidents are placed by `incidents.assign` once the
    retired areas are gone (see `_write`); here they only follow a retired area's successor.
    """
    carried = []
    retired = list(successors)
    for ref in _references(session):
        tbl, col = _ident(ref["tbl"]), _ident(ref["col"])
        if ref["tbl"] == "area_locks":
            continue
        if ref["located"] and region is not None and ref["tbl"] != "incidents":
            # `&&` against the region's envelope lets the GiST index on geom pick the candidates.
            # Only rows whose area changes are written (`IS DISTINCT FROM`), so triggers on
            # those tables fire for real moves only.
            moved = session.execute(text(f"""
                UPDATE {tbl} t SET {col} = n.area
                  FROM (SELECT r.ctid AS tid, COALESCE((
                               SELECT a.id FROM areas a
                                WHERE a.level = old.level AND NOT a.id = ANY(:retired)
                                  AND ST_Intersects(a.geom, CASE WHEN GeometryType(r.geom) = 'POINT'
                                                                 THEN r.geom ELSE ST_PointOnSurface(r.geom) END)
                                ORDER BY a.id LIMIT 1), r.{col}) AS area
                          FROM {tbl} r JOIN areas old ON old.id = r.{col}
                         WHERE r.geom IS NOT NULL AND r.geom && ST_GeomFromWKB(:region, 4326)
                           AND ST_Intersects(r.geom, ST_GeomFromWKB(:region, 4326))) n
                 WHERE t.ctid = n.tid AND t.{col} IS DISTINCT FROM n.area"""),
                {"region": region, "retired": retired}).rowcount
            if moved:
                carried.append({"table": ref["tbl"], "column": ref["col"], "relocated": moved})
        for rid, succ in successors.items():
            snapshot = [r[0] for r in session.execute(text(
                f"SELECT to_jsonb(t) FROM {tbl} t WHERE t.{col} = :r"), {"r": rid})]
            if not snapshot:
                continue
            item = {"table": ref["tbl"], "column": ref["col"], "area": rid, "rows": snapshot}
            if succ is not None and ref["tbl"] in ("area_staff", "user_scopes"):
                # 一长两员 and user scopes follow the area into its successor (no duplicates).
                item["added"] = _copy_rows(session, ref["tbl"], rid, succ)
            if ref["on_delete"] in ("c", "n", "d"):
                item["restore"] = "insert" if ref["on_delete"] == "c" else "update"
            else:
                session.execute(text(f"UPDATE {tbl} SET {col} = :s WHERE {col} = :r"),
                                {"s": succ, "r": rid})
                item["restore"] = "update"
            carried.append(item)
    return carried


def _copy_rows(session, tbl: str, rid: int, succ: int) -> list:
    if tbl == "area_staff":
        return [r[0] for r in session.execute(text("""
            INSERT INTO area_staff (area_id, person_id, role, since)
            SELECT :s, person_id, role, since FROM area_staff WHERE area_id = :r
            ON CONFLICT DO NOTHING RETURNING to_jsonb(area_staff)"""), {"s": succ, "r": rid})]
    return [r[0] for r in session.execute(text("""
        INSERT INTO user_scopes (user_id, area_id) SELECT user_id, :s FROM user_scopes
         WHERE area_id = :r ON CONFLICT DO NOTHING RETURNING to_jsonb(user_scopes)"""),
        {"s": succ, "r": rid})]


def _restore_references(session, carried: list) -> None:
    """Undo what a change carried: remove the copies it made, put back what it took away."""
    for item in carried:
        if "rows" not in item:
            continue
        tbl = item["table"]
        keys = _primary_key(session, tbl)
        for row in item.get("added", []):
            where = " AND ".join(f"t.{_ident(k)} = r.{_ident(k)}" for k in keys)
            session.execute(text(
                f"DELETE FROM {_ident(tbl)} t USING jsonb_populate_record(NULL::{_ident(tbl)}, "
                f"CAST(:row AS jsonb)) r WHERE {where}"), {"row": json.dumps(row, ensure_ascii=False)})
        for row in item["rows"]:
            if item["restore"] == "insert":
                session.execute(text(
                    f"INSERT INTO {_ident(tbl)} SELECT * FROM jsonb_populate_record("
                    f"NULL::{_ident(tbl)}, CAST(:row AS jsonb)) ON CONFLICT DO NOTHING"),
                    {"row": json.dumps(row, ensure_ascii=False)})
            elif keys:
                where = " AND ".join(f"t.{_ident(k)} = r.{_ident(k)}" for k in keys)
                column = _ident(item["column"])
                session.execute(text(
                    f"UPDATE {_ident(tbl)} t SET {column} = r.{column} "
                    f"FROM jsonb_populate_record(NULL::{_ident(tbl)}, CAST(:row AS jsonb)) r "
                    f"WHERE {where}"), {"row": json.dumps(row, ensure_ascii=False)})


def _primary_key(session, tbl: str) -> list[str]:
    return list(session.execute(text("""
        SELECT a.attname FROM pg_index i
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE i.indrelid = CAST(:t AS regclass) AND i.indisprimary ORDER BY a.attnum"""),
        {"t": tbl}).scalars())


def _shared_m(a: str, b: str) -> str:
    """SQL for the length in metres of the edge two polygons share.

    Measured as a's boundary within a millimetre of b, because nodes cut into one side of an
    edge (by a split or a clip) lie on the other side's segment only up to rounding.
    """
    return f"ST_Length(ST_Intersection(ST_Boundary({a}), ST_Buffer({b}, 1e-8))::geography)"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- the invariant ---------------------------------------------------------------------------
def _verify(session, parent_ids: set, changed: list[int]) -> None:
    """Refuse (raise InvalidInput) unless each parent is still exactly covered by its children."""
    parent_ids = sorted(p for p in parent_ids if p is not None)
    bad = session.execute(text(f"""
        SELECT p.code, u.n, {sliver_m2_sql('ST_Difference(p.geom, u.g)')} AS gap,
               {sliver_m2_sql('ST_Difference(u.g, p.geom)')} AS outside
          FROM areas p
          CROSS JOIN LATERAL (SELECT ST_Union(c.geom) AS g, count(*) AS n FROM areas c
                               WHERE c.parent_id = p.id) u
         WHERE p.id = ANY(:ids)"""), {"ids": parent_ids}).mappings().all()
    for b in bad:
        if b["n"] == 0:
            raise InvalidInput("geometry", f"{b['code']} would be left with no sub-areas")
        if b["gap"] > GAP_TOLERANCE_M2:
            raise InvalidInput("geometry", f"the edit would leave a gap of {b['gap']:.3f} m² in "
                                           f"{b['code']}; nothing was saved")
        if b["outside"] > GAP_TOLERANCE_M2:
            raise InvalidInput("geometry", f"the edit would put {b['outside']:.3f} m² outside "
                                           f"{b['code']}; nothing was saved")
    overlaps = session.execute(text(f"""
        SELECT a.code AS a, b.code AS b, {sliver_m2_sql('x.g')} AS m2
          FROM areas a JOIN areas b ON b.parent_id = a.parent_id AND b.id <> a.id AND b.geom && a.geom
          CROSS JOIN LATERAL (SELECT ST_CollectionExtract(ST_Intersection(a.geom, b.geom), 3) AS g) x
         WHERE a.id = ANY(:changed) AND (b.id > a.id OR NOT b.id = ANY(:changed))
           AND {sliver_m2_sql('x.g')} > :tol"""),
        {"changed": changed, "tol": OVERLAP_TOLERANCE_M2}).mappings().first()
    if overlaps:
        raise InvalidInput("geometry", f"the edit would make {overlaps['a']} and {overlaps['b']} "
                                       f"overlap by {overlaps['m2']:.6f} m²; nothing was saved")
    invalid = session.execute(text(
        "SELECT code, ST_IsValidReason(geom) FROM areas WHERE id = ANY(:ids) AND NOT ST_IsValid(geom)"),
        {"ids": changed}).first()
    if invalid:
        raise InvalidInput("geometry", f"the edit would make {invalid[0]}'s outline invalid "
                                       f"({invalid[1]}); nothing was saved")


# -- statistics for the preview --------------------------------------------------------------
def _stats(session, ids: list[int]) -> dict[int, dict]:
    if not ids:
        return {}
    rows = session.execute(text("""
        SELECT a.id, a.code, a.name, a.level, a.version, a.households, a.population, a.urban,
               p.code AS parent_code,
               ST_Area(a.geom::geography) AS area_m2, ST_NumGeometries(a.geom) AS parts,
               (SELECT count(*) FROM entities e WHERE e.area_id = a.id) AS entities,
               (SELECT count(*) FROM incidents i WHERE i.grid_id = a.id
                   AND i.status = ANY(:open)) AS open_incidents,
               (SELECT count(*) FROM area_staff s WHERE s.area_id = a.id) AS staff,
               (SELECT count(*) FROM area_staff s WHERE s.area_id = a.id AND s.role = 'worker') AS workers
          FROM areas a LEFT JOIN areas p ON p.id = a.parent_id WHERE a.id = ANY(:ids)"""),
        {"ids": ids, "open": list(OPEN_STATUSES)}).mappings()
    out = {}
    for r in rows:
        d = dict(r)
        d["area_m2"] = round(d["area_m2"], 2)
        d["households_per_worker"] = (round(d["households"] / d["workers"], 1)
                                      if d["households"] is not None and d["workers"] else None)
        out[d["id"]] = d
    return out


_ROW_FIELDS = ("code", "name", "version", "area_m2", "households", "population", "entities",
               "open_incidents", "staff", "workers", "households_per_worker", "parts")


def _rows(before: dict, after: dict, successors: dict, keys: dict) -> list[dict]:
    rows = []
    created = set(keys.values())
    for area_id in sorted(set(before) | set(after)):
        b, a = before.get(area_id), after.get(area_id)
        status = "retired" if area_id in successors else "created" if area_id in created else "changed"
        row = {"id": area_id, "code": (a or b)["code"], "name": (a or b)["name"], "status": status,
               "level": (a or b)["level"], "parent_code": (a or b)["parent_code"],
               "before": {k: b[k] for k in _ROW_FIELDS} if b else None,
               "after": {k: a[k] for k in _ROW_FIELDS} if a else None}
        if status == "retired" and successors.get(area_id):
            row["successor"] = successors[area_id]
        rows.append(row)
    order = {"retired": 0, "changed": 1, "created": 2}
    return sorted(rows, key=lambda r: (order[r["status"]], r["code"]))


def _children_households(session, parents: set) -> dict[str, list]:
    """Per parent code: (households, urban) of each child, for the workload balance."""
    rows = session.execute(text(
        "SELECT p.code, a.households, a.urban FROM areas a JOIN areas p ON p.id = a.parent_id "
        "WHERE a.parent_id = ANY(:p) ORDER BY p.code, a.id"),
        {"p": sorted(x for x in parents if x is not None)}).all()
    out: dict[str, list] = {}
    for code, households, urban in rows:
        out.setdefault(code, []).append((households, urban))
    return out


def _balance(before: dict, after: dict) -> dict:
    """Workload balance among the children of each affected parent, before and after."""
    out = {}
    for code in sorted(set(before) | set(after)):
        was, now = before.get(code, []), after.get(code, [])
        out[code] = {
            "before": _spread([h for h, _ in was if h is not None]),
            "after": _spread([h for h, _ in now if h is not None]),
            "outside_norms_before": sum(1 for h, u in was if validation.outside_norms(h, u)),
            "outside_norms_after": sum(1 for h, u in now if validation.outside_norms(h, u))}
    return out


def _spread(values: list[int]) -> dict:
    if not values:
        return {"areas": 0}
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return {"areas": len(values), "min": min(values), "max": max(values), "mean": round(mean, 1),
            "cv": round(sd / mean, 3) if mean else None}


# -- history ---------------------------------------------------------------------------------
def history(session: Session, *, area: str | None = None, limit: int = 50) -> list[dict]:
    """The change sets, newest first; with `area`, those that touched it or anything under it."""
    params: dict = {"limit": max(1, min(int(limit), 500))}
    where = "true"
    if area:
        row = area_row(session, area)
        params.update(code=row["code"], path=row["path"])
        # Codes recorded in the payload cover areas retired since; the subtree covers the rest.
        where = """(c.payload -> 'codes' ? :code
                    OR EXISTS (SELECT 1 FROM area_versions v JOIN areas a ON a.id = v.parent_id
                                WHERE v.change_id = c.id AND a.path <@ CAST(:path AS ltree))
                    OR EXISTS (SELECT 1 FROM area_versions v JOIN areas a ON a.id = v.area_id
                                WHERE v.change_id = c.id AND a.path <@ CAST(:path AS ltree)))"""
    rows = session.execute(text(f"""
        SELECT c.id, c.kind, c.reason, c.created_at, c.reverts_id, COALESCE(u.username, c.payload ->> 'author') AS author,
               c.payload -> 'codes' AS codes, c.payload -> 'notes' AS notes,
               c.payload -> 'note_templates' AS note_templates,
               (SELECT r.id FROM boundary_changes r WHERE r.reverts_id = c.id LIMIT 1) AS reverted_by
          FROM boundary_changes c LEFT JOIN users u ON u.id = c.author_id
         WHERE {where}
         ORDER BY c.created_at DESC, c.id DESC LIMIT :limit"""), params).mappings()
    return [_change_dict(r) for r in rows]


def change_detail(session: Session, change_id: int) -> dict:
    """One change set with, per area, the pieces it added and removed (GeoJSON)."""
    row = session.execute(text("""
        SELECT c.id, c.kind, c.reason, c.created_at, c.reverts_id, COALESCE(u.username, c.payload ->> 'author') AS author,
               c.payload -> 'codes' AS codes, c.payload -> 'notes' AS notes,
               c.payload -> 'note_templates' AS note_templates, c.payload,
               (SELECT r.id FROM boundary_changes r WHERE r.reverts_id = c.id LIMIT 1) AS reverted_by
          FROM boundary_changes c LEFT JOIN users u ON u.id = c.author_id WHERE c.id = :c"""),
        {"c": change_id}).mappings().first()
    if row is None:
        raise NotFound(f"no change #{change_id}", field="id")
    out = _change_dict(row)
    payload = row["payload"] or {}
    before = {int(k): v for k, v in payload.get("before", {}).items()}
    after = {int(k): v for k, v in payload.get("after", {}).items()}
    features = []
    for area_id in sorted(set(before) | set(after)):
        features += _diff_features(session, area_id, before.get(area_id), after.get(area_id))
    out["diff"] = {"type": "FeatureCollection", "features": features}
    return out


def _notes(notes: list | None, templates: list | None) -> list:
    """A change's notes as recorded, as Messages again where their templates were recorded too."""
    notes = notes or []
    templates = templates or [None] * len(notes)
    return [Message(t[0], **t[1]) if t else n for n, t in zip(notes, templates)]


def _change_dict(r) -> dict:
    return {"id": r["id"], "kind": r["kind"], "reason": r["reason"],
            "created_at": r["created_at"].isoformat(), "author": r["author"],
            "codes": r["codes"] or [], "notes": _notes(r["notes"], r["note_templates"]),
            "reverts_id": r["reverts_id"],
            "reverted_by": r["reverted_by"]}


def versions(session: Session, code: str) -> list[dict]:
    """Every version of the area with this code (current or retired), oldest first."""
    rows = session.execute(text("""
        SELECT v.area_id, v.version, v.code, v.name, v.valid_from, v.valid_to, v.change_id,
               c.kind, c.reason, COALESCE(u.username, c.payload ->> 'author') AS author, ST_Area(v.geom::geography) AS area_m2
          FROM area_versions v LEFT JOIN boundary_changes c ON c.id = v.change_id
          LEFT JOIN users u ON u.id = c.author_id
         WHERE v.area_id IN (SELECT area_id FROM area_versions WHERE code = :c
                             UNION SELECT id FROM areas WHERE code = :c)
         ORDER BY v.area_id, v.version"""), {"c": code}).mappings().all()
    if not rows:
        area_row(session, code)  # NotFound when the code never existed
    return [{**dict(r), "valid_from": r["valid_from"].isoformat(),
             "valid_to": r["valid_to"] and r["valid_to"].isoformat(),
             "area_m2": round(r["area_m2"] or 0, 2)} for r in rows]


def diff(session: Session, code: str, from_version: int, to_version: int) -> dict:
    """The pieces added and removed between two versions of one area, as a FeatureCollection."""
    area_id = session.execute(text(
        "SELECT area_id FROM area_versions WHERE code = :c ORDER BY valid_from DESC LIMIT 1"),
        {"c": code}).scalar()
    if area_id is None:
        area_id = area_row(session, code)["id"]
    return {"type": "FeatureCollection",
            "features": _diff_features(session, area_id, from_version, to_version, strict=True)}


def _diff_features(session, area_id: int, v1: int | None, v2: int | None, strict=False) -> list:
    rows = session.execute(text("""
        WITH a AS (SELECT geom, code FROM area_versions WHERE area_id = :id AND version = :v1),
             b AS (SELECT geom, code FROM area_versions WHERE area_id = :id AND version = :v2)
        SELECT 'added' AS kind, (SELECT code FROM b) AS code,
               ST_AsGeoJSON(ST_CollectionExtract(ST_Difference((SELECT geom FROM b),
                   COALESCE((SELECT geom FROM a), 'SRID=4326;GEOMETRYCOLLECTION EMPTY'::geometry)), 3), :d) AS gj,
               ST_Area(ST_Difference((SELECT geom FROM b),
                   COALESCE((SELECT geom FROM a), 'SRID=4326;GEOMETRYCOLLECTION EMPTY'::geometry))::geography) AS m2
        UNION ALL
        SELECT 'removed', (SELECT code FROM a),
               ST_AsGeoJSON(ST_CollectionExtract(ST_Difference((SELECT geom FROM a),
                   COALESCE((SELECT geom FROM b), 'SRID=4326;GEOMETRYCOLLECTION EMPTY'::geometry)), 3), :d),
               ST_Area(ST_Difference((SELECT geom FROM a),
                   COALESCE((SELECT geom FROM b), 'SRID=4326;GEOMETRYCOLLECTION EMPTY'::geometry))::geography)"""),
        {"id": area_id, "v1": v1, "v2": v2, "d": GEOJSON_DIGITS}).mappings().all()
    if strict:
        found = session.execute(text(
            "SELECT array_agg(version) FROM area_versions WHERE area_id = :id AND version IN (:a, :b)"),
            {"id": area_id, "a": v1, "b": v2}).scalar() or []
        missing = [v for v in (v1, v2) if v not in found]
        if missing:
            raise NotFound(f"no version {missing[0]} of this area", field="version")
    return [{"type": "Feature", "geometry": json.loads(r["gj"]),
             "properties": {"kind": r["kind"], "code": r["code"], "area_id": area_id,
                            "area_m2": round(r["m2"], 2), "from_version": v1, "to_version": v2}}
            for r in rows if r["gj"] and r["m2"] and r["m2"] > OVERLAP_TOLERANCE_M2]


def parse_as_of(value) -> datetime:
    """Parse an ISO date (end of that day, UTC) or date-time for as-of queries."""
    raw = str(value).strip()
    if "T" in raw and " " in raw:  # a '+' of the UTC offset that arrived unescaped in a URL
        raw = raw.replace(" ", "+")
    try:
        if len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), time.max, tzinfo=timezone.utc)
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput("as_of", f"as_of must be an ISO date or date-time (2026-01-31 or "
                                    f"2026-01-31T12:00:00+08:00); got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def features_as_of(session: Session, when: datetime, *, level: int | None = None,
                   parent: str | None = None, bbox=None) -> str:
    """Areas as they were at `when`, as a GeoJSON FeatureCollection (text), like areas.features."""
    params: dict = {"t": when, "digits": GEOJSON_DIGITS}
    where = ["true"]
    if level is not None:
        where.append("s.level = :level")
        params["level"] = level
    if bbox:
        bbox = parse_bbox(bbox) if isinstance(bbox, str) else bbox
        where.append("s.geom && ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326)")
        params.update(minx=bbox[0], miny=bbox[1], maxx=bbox[2], maxy=bbox[3])
    tree = ""
    if parent:
        params["parent"] = parent
        tree = """, tree AS (
            SELECT area_id FROM snap WHERE code = :parent
            UNION ALL SELECT s.area_id FROM snap s JOIN tree t ON s.parent_id = t.area_id)"""
        where.append("s.area_id IN (SELECT area_id FROM tree) AND s.code <> :parent")
    sql = f"""
        WITH RECURSIVE snap AS (
            SELECT v.area_id, v.version, v.code, v.name, v.level, v.parent_id, v.geom, v.households,
                   v.population
              FROM area_versions v
             WHERE v.valid_from <= :t AND (v.valid_to IS NULL OR v.valid_to > :t)
            UNION ALL
            -- Areas that have never been versioned existed as they are since they were created.
            SELECT a.id, a.version, a.code, a.name, a.level, a.parent_id, a.geom, a.households,
                   a.population
              FROM areas a
             WHERE a.created_at <= :t AND NOT EXISTS (SELECT 1 FROM area_versions v WHERE v.area_id = a.id)
        ){tree}
        SELECT json_build_object('type', 'FeatureCollection', 'as_of', CAST(:t AS timestamptz),
                                 'features', COALESCE(json_agg(f ORDER BY code), '[]'::json))::text
          FROM (SELECT json_build_object(
                    'type', 'Feature', 'id', s.code,
                    'geometry', ST_AsGeoJSON(s.geom, :digits)::json,
                    'properties', json_build_object('code', s.code, 'name', s.name, 'level', s.level,
                        'parent_code', p.code, 'households', s.households,
                        'population', s.population, 'version', s.version)) AS f, s.code
                  FROM snap s LEFT JOIN snap p ON p.area_id = s.parent_id
                 WHERE {' AND '.join(where)}) x"""
    if parent and not session.execute(text(
            "SELECT 1 FROM area_versions WHERE code = :c UNION SELECT 1 FROM areas WHERE code = :c"),
            {"c": parent}).first():
        raise NotFound(f"no area with code {parent!r}", field="parent")
    return session.execute(text(sql), params).scalar_one()


# -- soft locks ------------------------------------------------------------------------------
def acquire_lock(session: Session, code: str, actor: audit.Actor, minutes: int = LOCK_MINUTES) -> dict:
    """Take or refresh the soft lock on an area; if someone else holds it, say who (no error)."""
    area = area_row(session, code)
    session.execute(text("DELETE FROM area_locks WHERE expires_at < now()"))
    row = session.execute(text("""
        INSERT INTO area_locks (area_id, user_id, username, acquired_at, expires_at)
        VALUES (:a, :u, :n, now(), now() + make_interval(mins => :m))
        ON CONFLICT (area_id) DO UPDATE SET expires_at = EXCLUDED.expires_at
         WHERE area_locks.username = EXCLUDED.username
        RETURNING username"""), {"a": area["id"], "u": actor.user_id, "n": actor.name,
                                 "m": minutes}).first()
    lock = _lock_of(session, area["id"])
    lock["mine"] = row is not None
    return lock


def release_lock(session: Session, code: str, actor: audit.Actor) -> None:
    """Give up one's own soft lock on an area (others' locks are left alone)."""
    area = area_row(session, code)
    session.execute(text("DELETE FROM area_locks WHERE area_id = :a AND username = :n"),
                    {"a": area["id"], "n": actor.name})


def locks(session: Session, parent: str | None = None) -> list[dict]:
    """The soft locks in force (under `parent` if given)."""
    params, where = {}, "l.expires_at > now()"
    if parent:
        params["p"] = area_row(session, parent)["path"]
        where += " AND a.path <@ CAST(:p AS ltree)"
    rows = session.execute(text(f"""
        SELECT a.code, a.name, l.username, l.acquired_at, l.expires_at FROM area_locks l
          JOIN areas a ON a.id = l.area_id WHERE {where} ORDER BY a.code"""), params).mappings()
    return [_lock_dict(r) for r in rows]


def _lock_of(session, area_id: int) -> dict:
    r = session.execute(text("""
        SELECT a.code, a.name, l.username, l.acquired_at, l.expires_at FROM area_locks l
          JOIN areas a ON a.id = l.area_id WHERE l.area_id = :a"""), {"a": area_id}).mappings().one()
    return _lock_dict(r)


def _lock_dict(r) -> dict:
    return {"code": r["code"], "name": r["name"], "username": r["username"],
            "acquired_at": r["acquired_at"].isoformat(), "expires_at": r["expires_at"].isoformat()}


# -- helpers ---------------------------------------------------------------------------------
def _codes(areas) -> list[str]:
    if not isinstance(areas, (list, tuple)) or not areas or not all(
            isinstance(c, str) and c.strip() for c in areas):
        raise InvalidInput("areas", f"areas must be a list of area codes; got {areas!r}")
    codes = [c.strip() for c in areas]
    if len(set(codes)) != len(codes):
        raise InvalidInput("areas", f"an area is named twice in {codes}")
    return codes


def _require_reason(reason) -> None:
    if not isinstance(reason, str) or len(reason.strip()) < 2:
        raise InvalidInput("reason", "a reason is required: say why the boundary changes")


def _lock(session, codes: list[str]) -> dict[str, dict]:
    """Lock the named areas, their parents and siblings (in id order, so writers never deadlock)."""
    rows = {r["code"]: dict(r) for r in session.execute(text("""
        SELECT a.id, a.code, a.name, a.level, a.parent_id, a.version, a.households, a.population,
               a.kind, a.urban, a.group_id,
               EXISTS (SELECT 1 FROM areas c WHERE c.parent_id = a.id) AS has_children
          FROM areas a WHERE a.code = ANY(:codes)"""), {"codes": codes}).mappings()}
    missing = [c for c in codes if c not in rows]
    if missing:
        raise NotFound(f"no area with code {missing[0]!r}", field="areas")
    parents = {r["parent_id"] for r in rows.values() if r["parent_id"]} | {r["id"] for r in rows.values()}
    session.execute(text(
        "SELECT id FROM areas WHERE id = ANY(:p) OR parent_id = ANY(:p) ORDER BY id FOR UPDATE"),
        {"p": list(parents)}).all()
    # Re-read after the lock: a writer we waited for may have changed them.
    fresh = {r["id"]: r["version"] for r in session.execute(text(
        "SELECT id, version FROM areas WHERE code = ANY(:codes)"), {"codes": codes}).mappings()}
    for r in rows.values():
        if r["id"] not in fresh:
            raise Conflict(f"area {r['code']} was removed meanwhile", details={"code": r["code"]})
        r["version"] = fresh[r["id"]]
    return rows


def _check_versions(session, rows, codes, base_versions, *, required: bool) -> None:
    if base_versions is None or base_versions == {}:
        if required:
            raise InvalidInput("base_versions", "base_versions is required: {code: version} for "
                                                "every area in `areas`, as you saw them")
        return
    if not isinstance(base_versions, dict):
        raise InvalidInput("base_versions", f"base_versions must be an object {{code: version}}; "
                                            f"got {base_versions!r}")
    missing = [c for c in codes if c not in base_versions]
    if missing and required:
        raise InvalidInput("base_versions", f"base_versions lacks {', '.join(missing)}")
    stale = []
    current = {r["code"]: r for r in session.execute(text(
        "SELECT id, code, version FROM areas WHERE code = ANY(:c)"),
        {"c": list(base_versions)}).mappings()}
    for code, seen in base_versions.items():
        try:
            seen = int(seen)
        except (TypeError, ValueError):
            raise InvalidInput("base_versions", f"version of {code} must be an integer; got {seen!r}") from None
        now = current.get(code)
        if now is None or now["version"] != seen:
            stale.append((code, seen, now))
    if stale:
        details = []
        for code, seen, now in stale:
            changes = session.execute(text("""
                SELECT DISTINCT c.id, c.kind, c.reason, c.created_at, COALESCE(u.username, c.payload ->> 'author') AS author
                  FROM area_versions v JOIN boundary_changes c ON c.id = v.change_id
                  LEFT JOIN users u ON u.id = c.author_id
                 WHERE v.code = :code AND v.version > :seen ORDER BY c.id"""),
                {"code": code, "seen": seen}).mappings()
            retired = session.execute(text("""
                SELECT c.id, c.kind, c.reason, c.created_at, COALESCE(u.username, c.payload ->> 'author') AS author
                  FROM boundary_changes c LEFT JOIN users u ON u.id = c.author_id
                 WHERE c.payload -> 'codes' ? :code ORDER BY c.id DESC LIMIT 1"""),
                {"code": code}).mappings().all() if now is None else []
            details.append({"code": code, "your_version": seen,
                            "current_version": now and now["version"],
                            "changes": [{**dict(c), "created_at": c["created_at"].isoformat()}
                                        for c in list(changes) + list(retired)]})
        said = "; ".join(
            f"{d['code']} is now " + (f"version {d['current_version']}" if d["current_version"]
                                      else "gone") + f" (you had {d['your_version']})"
            + "".join(f", changed by {c['author'] or 'someone'} in change #{c['id']} ({c['kind']}: "
                      f"{c['reason']})" for c in d["changes"][-2:])
            for d in details)
        raise Conflict(f"the boundaries changed since you loaded them: {said}. Reload and redo "
                       "the edit.", field="base_versions", details={"stale": details})


def _later_changes(session, area_ids: list[int], after_id: int) -> list[dict]:
    rows = session.execute(text("""
        SELECT c.id, c.kind, c.reason, c.created_at, COALESCE(u.username, c.payload ->> 'author') AS author,
               array_agg(DISTINCT v.code) AS codes
          FROM area_versions v JOIN boundary_changes c ON c.id = v.change_id
          LEFT JOIN users u ON u.id = c.author_id
         WHERE v.area_id = ANY(:ids) AND c.id > :after
         GROUP BY c.id, c.kind, c.reason, c.created_at, u.username ORDER BY c.id"""),
        {"ids": area_ids, "after": after_id}).mappings()
    return [{**dict(r), "created_at": r["created_at"].isoformat()} for r in rows]


def _change_row(session, change_id) -> dict:
    try:
        change_id = int(change_id)
    except (TypeError, ValueError):
        raise InvalidInput("id", f"a change id is an integer; got {change_id!r}") from None
    row = session.execute(text("SELECT id, kind, payload FROM boundary_changes WHERE id = :c FOR UPDATE"),
                          {"c": change_id}).mappings().first()
    if row is None:
        raise NotFound(f"no change #{change_id}", field="id")
    return row


def _require_leaf(*rows) -> None:
    for r in rows:
        if r["has_children"]:
            raise InvalidInput("areas", f"{r['code']} has sub-areas of its own: edit those (or "
                                        "partition it) instead")


def _require_siblings(*rows) -> None:
    parents = {r["parent_id"] for r in rows}
    if len(parents) != 1 or None in parents:
        raise InvalidInput("areas", f"{', '.join(r['code'] for r in rows)} are not in the same "
                                    "parent area: use move first")


def _siblings(session, row) -> dict[int, dict]:
    return {r["id"]: dict(r) for r in session.execute(text(
        "SELECT id, code, households, population FROM areas WHERE parent_id = :p"),
        {"p": row["parent_id"]}).mappings()}


def _ancestors(session, area_id: int) -> list[int]:
    path = session.execute(text("SELECT path::text FROM areas WHERE id = :a"), {"a": area_id}).scalar_one()
    return [int(p) for p in reversed(path.split("."))]


def _parents_of(session, ids: list[int]) -> set:
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


def _parse_geojson(geometry):
    if geometry is None:
        raise InvalidInput("geometry", "a drawn geometry (GeoJSON) is required for this operation")
    if isinstance(geometry, str):
        try:
            geometry = json.loads(geometry)
        except ValueError:
            raise InvalidInput("geometry", "geometry must be GeoJSON") from None
    if not isinstance(geometry, dict) or "type" not in geometry:
        raise InvalidInput("geometry", f"geometry must be a GeoJSON object; got {geometry!r:.80}")
    try:
        if geometry["type"] == "FeatureCollection":
            geom = shapely.GeometryCollection([shape(f["geometry"]) for f in geometry["features"]])
        elif geometry["type"] == "Feature":
            geom = shape(geometry["geometry"])
        else:
            geom = shape(geometry)
    except Exception as exc:  # shapely raises several types for malformed GeoJSON
        raise InvalidInput("geometry", f"geometry is not valid GeoJSON: {exc}") from None
    if geom.is_empty:
        raise InvalidInput("geometry", "the drawn geometry is empty")
    xs, ys = shapely.get_coordinates(geom).T
    if (abs(xs) > 180).any() or (abs(ys) > 90).any():
        hint = " — are lon and lat swapped?" if (abs(ys) <= 180).all() and (abs(xs) <= 90).all() else ""
        raise InvalidInput("geometry", f"coordinates must be lon, lat in degrees{hint}")
    return geom


def _polygons(geom) -> list:
    parts = [g for g in getattr(geom, "geoms", [geom])]
    flat = []
    for g in parts:
        flat.extend(getattr(g, "geoms", [g]))
    polys = [g for g in flat if g.geom_type == "Polygon"]
    if not polys or len(polys) != len(flat):
        raise InvalidInput("geometry", f"expected polygons; got {geom.geom_type}")
    for p in polys:
        if not p.is_valid:
            raise InvalidInput("geometry", f"the drawn polygon is not valid: "
                                           f"{shapely.is_valid_reason(p)} — it must not cross itself")
    return polys


def _polygonal(geometry) -> bytes:
    polys = _polygons(_parse_geojson(geometry))
    merged = shapely.union_all(polys)
    return shapely.to_wkb(merged)


def _lines(geometry) -> bytes:
    geom = _parse_geojson(geometry)
    flat = []
    for g in getattr(geom, "geoms", [geom]):
        flat.extend(getattr(g, "geoms", [g]))
    if not flat or any(g.geom_type != "LineString" for g in flat):
        raise InvalidInput("geometry", f"split needs a line (or lines); got {geom.geom_type}")
    return shapely.to_wkb(shapely.MultiLineString(flat))


def _union_wkb(session, wkbs: list[bytes]) -> bytes:
    if len(wkbs) == 1:
        return session.execute(text("SELECT ST_AsBinary(ST_Multi(ST_GeomFromWKB(:w, 4326)))"),
                               {"w": wkbs[0]}).scalar_one()
    return session.execute(text(
        "SELECT ST_AsBinary(ST_Multi(ST_CollectionExtract(ST_Union(ST_GeomFromWKB(w, 4326)), 3))) "
        "FROM unnest(CAST(:ws AS bytea[])) w"), {"ws": wkbs}).scalar_one()


def _area(session, wkb: bytes) -> float:
    return session.execute(text("SELECT ST_Area(ST_GeomFromWKB(:w, 4326)::geography)"),
                           {"w": wkb}).scalar_one() or 0.0


def _area_wkb(session, area_id: int) -> bytes:
    return session.execute(text("SELECT ST_AsBinary(geom) FROM areas WHERE id = :a"),
                           {"a": area_id}).scalar_one()


def _changed_region(session, prior: dict[int, int], retired: list[int]) -> bytes | None:
    """Where anything changed hands: each updated area's old and new outline told apart, and every
    retired area whole. Rows located elsewhere keep their area, so only these need a look."""
    return session.execute(text("""
        SELECT ST_AsBinary(ST_Union(g)) FROM (
            SELECT ST_SymDifference(v.geom, a.geom) AS g
              FROM areas a
              JOIN area_versions v ON v.area_id = a.id
              JOIN unnest(CAST(:ids AS int[]), CAST(:vs AS int[])) AS p(id, version)
                ON p.id = a.id AND p.version = v.version
             WHERE ST_AsBinary(v.geom) <> ST_AsBinary(a.geom)
            UNION ALL
            SELECT geom FROM areas WHERE id = ANY(:retired)) x"""),
        {"ids": list(prior), "vs": list(prior.values()), "retired": retired}).scalar()


def _centroid_key(session, wkb: bytes) -> tuple:
    x, y = session.execute(text("SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_PointOnSurface("
                                "ST_GeomFromWKB(:w, 4326)) c) s"), {"w": wkb}).one()
    return (-round(y, 3), x)  # north → south in bands of ~100 m, then west → east


def _best_overlap(session, area_id: int, wkbs: list[bytes]) -> int:
    return session.execute(text("""
        SELECT n.i - 1 FROM unnest(CAST(:ws AS bytea[])) WITH ORDINALITY n(w, i), areas a
         WHERE a.id = :a
         ORDER BY ST_Area(ST_Intersection(a.geom, ST_GeomFromWKB(n.w, 4326))) DESC, n.i LIMIT 1"""),
        {"ws": wkbs, "a": area_id}).scalar_one()


def _successor_by_overlap(session, area_id: int, restored: dict[int, int]) -> int | None:
    """Of the areas a revert restores ({id: version}), the one covering most of `area_id`."""
    return session.execute(text("""
        SELECT v.area_id
          FROM areas a, area_versions v
          JOIN unnest(CAST(:ids AS int[]), CAST(:vs AS int[])) AS r(id, version)
            ON r.id = v.area_id AND r.version = v.version
         WHERE a.id = :a AND v.geom && a.geom
         ORDER BY ST_Area(ST_Intersection(v.geom, a.geom)) DESC, v.area_id LIMIT 1"""),
        {"a": area_id, "ids": list(restored), "vs": list(restored.values())}).scalar()


def _next_codes(session, parent_id: int, n: int) -> list[str]:
    """New codes under a parent: its code plus the next unused number, never reusing a retired one."""
    parent = session.execute(text("SELECT code FROM areas WHERE id = :p"), {"p": parent_id}).scalar_one()
    taken = set(session.execute(text(
        "SELECT code FROM areas WHERE code LIKE :pre UNION SELECT code FROM area_versions WHERE code LIKE :pre"),
        {"pre": parent.replace("%", r"\%").replace("_", r"\_") + "%"}).scalars())
    suffixes = [c[len(parent):] for c in taken if c[len(parent):].isdigit()]
    width = max((len(s) for s in suffixes), default=3)
    number = max((int(s) for s in suffixes), default=0)
    out = []
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
    adjacent = {}
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


def _apportion(total: int | None, shares: list[float]) -> list[int | None]:
    """Split an integer by shares with the largest-remainder rule, so the parts add up exactly."""
    if total is None:
        return [None] * len(shares)
    raw = [total * s for s in shares]
    out = [int(math.floor(r)) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - out[i], reverse=True)[:total - sum(out)]:
        out[i] += 1
    return out


def _redistribute(old, weights, n: int, column: str) -> list[int | None]:
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


def _first_parent_code(session, parents: set) -> str | None:
    ids = sorted(p for p in parents if p is not None)
    if not ids:
        return None
    return session.execute(text("SELECT code FROM areas WHERE id = :p"), {"p": ids[0]}).scalar()
