"""Boundary change sets that keep every level an exact partition, with history and revert.

Each operation — transfer, split, merge, reshape, partition, move — is planned in PostGIS from the
current geometries (`operations`: every new piece is cut from the same noded boundaries, so
neighbours stay edge to edge), applied in the caller's transaction, checked against the partition
invariant of every affected parent (`partition.verify`), authorised on every area it touches before
and after (the caller's `Scope`), and recorded as one `boundary_changes` row with a new
`area_versions` row per area it touches. A preview runs the very same code inside a savepoint that
is rolled back, so what the planner sees is what a commit would write.

Areas an operation removes (the halves of a split grid's predecessor, the absorbed side of a
merge) leave `areas` for good — no query elsewhere has to filter them — while their versions stay
in `area_versions` (migration 0003), which is what as-of queries and revert read. A revert is a
new change set that writes the earlier versions back, byte for byte the same WKB.
"""
from __future__ import annotations

import json

import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import audit
from geo.boundaries import validation
from geo.boundaries.geometry import changed_region, successor_by_overlap
from geo.boundaries.impact import (
    area_stats,
    children_households,
    result_rows,
    workload_balance,
)
from geo.boundaries.operations import PLANNERS, parents_of
from geo.boundaries.partition import verify
from geo.boundaries.plans import KIND_NAMES, OPS, NewArea, Plan, Result
from geo.boundaries.references import carry_references, restore_references
from geo.errors import Conflict, InvalidInput, NotFound
from geo.inputs import MAX_REASON, text_value
from geo.messages import Message, joined, msg
from geo.policy import Scope, parse_code


# -- entry points ----------------------------------------------------------------------------
def apply(session: Session, op: str, *, areas: list[str], geometry=None,
          base_versions: dict | None = None, reason: str | None, actor: audit.Actor,
          scope: Scope, preview: bool = False, names: list[str] | None = None) -> Result:
    """Plan, check and apply one edit operation as a change set (or only preview it).

    Raises:
        InvalidInput: a malformed request, or an edit that would break the partition (with why).
        NotFound: an area code that does not exist (exactly as written).
        Forbidden: the edit names or touches, before or after, an area outside `scope`.
        Conflict: `base_versions` are stale; the details say what changed meanwhile.
    """
    if op not in OPS:
        raise InvalidInput("op", msg("op must be one of {ops}; got {got}", ops=", ".join(OPS), got=repr(op)))
    codes = _codes(areas)
    if not preview:
        _require_reason(reason)
    planner = PLANNERS[op]
    rows = _lock(session, codes)
    # The areas it names first (nothing of an area outside the scope is planned or told), then
    # every area it touches, before and after, when it is written.
    scope.require_ids(session, [r["id"] for r in rows.values()])
    _check_versions(session, rows, codes, base_versions, required=not preview)
    plan = planner(session, rows, codes, geometry, names)
    return _execute(session, plan, reason=reason, actor=actor, scope=scope, preview=preview,
                    payload_input={"areas": codes, "geometry": geometry, "names": names})


def revert(session: Session, change_id: int, *, reason: str | None, actor: audit.Actor,
           scope: Scope, preview: bool = False) -> Result:
    """Undo a change set as a new change set, restoring every area's earlier geometry exactly.

    Raises:
        Conflict: a later change touched the same areas (revert that first), or it was reverted.
    """
    if not preview:
        _require_reason(reason)
    change = _change_row(session, change_id)
    payload = change["payload"] or {}
    if change["kind"] == "import" or "after" not in payload:
        raise InvalidInput("change", msg("change #{id} ({kind}) cannot be reverted here", id=change_id,
                                         kind=_kind(change["kind"])))
    done = session.execute(text("SELECT id FROM boundary_changes WHERE reverts_id = :c"),
                           {"c": change_id}).scalar()
    if done:
        raise Conflict(msg("change #{id} was already reverted by change #{done}", id=change_id, done=done),
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
        said: Message = joined([msg("change #{id} ({kind}, {author}) touched {codes} since", id=c["id"],
                           kind=_kind(c["kind"]), author=c["author"] or msg("someone"),
                           codes=joined(c["codes"], ", ")) for c in later])
        if not later:
            said = msg("its areas changed since")
        raise Conflict(msg("change #{id} cannot be reverted: {said} — revert the later changes first",
                           id=change_id, said=said), details={"changes": later})
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
            raise Conflict(msg("version {version} of area {area} is missing from the history",
                               version=version, area=area_id))
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
        plan.retires[area_id] = successor_by_overlap(session, area_id, before)
    plan.parents.discard(None)
    plan.restore_refs = payload.get("carried", [])
    return _execute(session, plan, reason=reason, actor=actor, scope=scope, preview=preview,
                    reverts=change_id, payload_input={"reverts": change_id})


# -- executing a plan ------------------------------------------------------------------------
def _execute(session: Session, plan: Plan, *, reason, actor, scope: Scope, preview, payload_input,
             reverts: int | None = None) -> Result:
    reason = text_value(reason, "reason", max_length=MAX_REASON)
    # A savepoint makes the change all-or-nothing inside the caller's transaction: a refusal
    # leaves nothing behind, and a preview is the very same write, rolled back.
    savepoint = session.begin_nested()
    try:
        result = _write(session, plan, reason=reason, actor=actor, scope=scope,
                        payload_input=payload_input,
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


def _write(session, plan: Plan, *, reason, actor, scope: Scope, payload_input, reverts,
           preview) -> Result:
    ts = session.execute(text("SELECT clock_timestamp()")).scalar_one()
    touched_before = sorted(set(plan.updates) | set(plan.retires))
    # Authorised on every area the edit touches, not only those it names: before …
    scope.require_ids(session, touched_before)
    before = area_stats(session, touched_before)
    _ensure_baseline(session, touched_before)
    prior_versions = {i: s["version"] for i, s in before.items()}
    balance_before = children_households(session, plan.parents)
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
    restore_references(session, plan.restore_refs)
    region = changed_region(session, {i: prior_versions[i] for i in plan.updates}, list(successors))
    carried = carry_references(session, successors, region)
    changed = sorted(set(plan.updates) | set(keys.values()))
    # … and after (a moved grid under its new parent, the areas a change creates).
    scope.require_ids(session, changed)
    _close_versions(session, changed + list(successors), ts)
    session.execute(text(
        "DELETE FROM areas WHERE id = ANY(:ids)"), {"ids": list(successors)})
    if region is not None:
        # Incidents get their new current grid (and finest area) by the incidents module's own
        # rule, in this transaction, for every point where an area changed hands.
        from geo.incidents import assignment

        moved = assignment.assign(session, within_wkt=shapely.to_wkt(
            shapely.from_wkb(region), rounding_precision=-1))
        carried.append({"table": "incidents", "column": "grid_id", "relocated": moved})
    session.execute(text("""
        INSERT INTO area_versions (area_id, version, code, name, level, parent_id, geom, households,
                                   population, valid_from, change_id)
        SELECT id, version, code, name, level, parent_id, geom, households, population, :ts, :c
          FROM areas WHERE id = ANY(:ids)"""), {"ids": changed, "ts": ts, "c": change_id})
    verify(session, plan.parents | parents_of(session, changed), changed)
    after = area_stats(session, changed)
    rows = result_rows(before, after, successors, keys)
    # Each changed or new area's outline after the edit, so a preview can be drawn on the map.
    outlines = dict(session.execute(text(
        "SELECT id, ST_AsGeoJSON(geom, 6) FROM areas WHERE id = ANY(:ids)"), {"ids": changed}).all())
    for row in rows:
        if row["id"] in outlines:
            row["geometry"] = json.loads(outlines[row["id"]])
    problems = validation.problems_for(session, changed)
    balance = workload_balance(balance_before, children_households(session, plan.parents))
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


# -- helpers ---------------------------------------------------------------------------------
def _codes(areas) -> list[str]:
    """The codes a change names, exactly as written (never trimmed: a code with a stray space is
    not a code, and must not slip past the scope check that looks codes up)."""
    if not isinstance(areas, (list, tuple)) or not areas:
        raise InvalidInput("areas", msg("areas must be a list of area codes; got {got}", got=repr(areas)))
    codes = [parse_code(c, "areas") for c in areas]
    if len(set(codes)) != len(codes):
        raise InvalidInput("areas", msg("an area is named twice in {codes}", codes=joined(codes, ", ")))
    return codes


def _require_reason(reason) -> None:
    if not isinstance(reason, str) or len(reason.strip()) < 2:
        raise InvalidInput("reason", msg("a reason is required: say why the boundary changes"))


def _lock(session, codes: list[str]) -> dict[str, dict]:
    """Lock the named areas, their parents and siblings (in id order, so writers never deadlock)."""
    rows = {r["code"]: dict(r) for r in session.execute(text("""
        SELECT a.id, a.code, a.name, a.level, a.parent_id, a.version, a.households, a.population,
               a.kind, a.urban, a.group_id,
               EXISTS (SELECT 1 FROM areas c WHERE c.parent_id = a.id) AS has_children
          FROM areas a WHERE a.code = ANY(:codes)"""), {"codes": codes}).mappings()}
    missing = [c for c in codes if c not in rows]
    if missing:
        raise NotFound(msg("no area with code {code!r}", code=missing[0]), field="areas")
    parents = {r["parent_id"] for r in rows.values() if r["parent_id"]} | {r["id"] for r in rows.values()}
    session.execute(text(
        "SELECT id FROM areas WHERE id = ANY(:p) OR parent_id = ANY(:p) ORDER BY id FOR UPDATE"),
        {"p": list(parents)}).all()
    # Re-read after the lock: a writer we waited for may have changed them.
    fresh = {r["id"]: r["version"] for r in session.execute(text(
        "SELECT id, version FROM areas WHERE code = ANY(:codes)"), {"codes": codes}).mappings()}
    for r in rows.values():
        if r["id"] not in fresh:
            raise Conflict(msg("area {code} was removed meanwhile", code=r["code"]), details={"code": r["code"]})
        r["version"] = fresh[r["id"]]
    return rows


def _check_versions(session, rows, codes, base_versions, *, required: bool) -> None:
    if base_versions is None or base_versions == {}:
        if required:
            raise InvalidInput("base_versions", msg("base_versions is required: {{code: version}} for "
                                                    "every area in `areas`, as you saw them"))
        return
    if not isinstance(base_versions, dict):
        raise InvalidInput("base_versions", msg("base_versions must be an object {{code: version}}; "
                                                "got {got}", got=repr(base_versions)))
    missing = [c for c in codes if c not in base_versions]
    if missing and required:
        raise InvalidInput("base_versions", msg("base_versions lacks {codes}", codes=joined(missing, ", ")))
    stale = []
    current = {r["code"]: r for r in session.execute(text(
        "SELECT id, code, version FROM areas WHERE code = ANY(:c)"),
        {"c": list(base_versions)}).mappings()}
    for code, seen in base_versions.items():
        try:
            seen = int(seen)
        except (TypeError, ValueError):
            raise InvalidInput("base_versions", msg("version of {code} must be an integer; got {got}",
                                                    code=code, got=repr(seen))) from None
        now = current.get(code)
        if now is None or now["version"] != seen:
            stale.append((code, seen, now))
    if stale:
        details = []
        for code, seen, now in stale:
            changes = session.execute(text("""
                SELECT DISTINCT c.id, c.kind, c.reason, c.created_at,
                       COALESCE(u.username, c.payload ->> 'author') AS author
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
        said = joined(joined([
            msg("{code} is now version {current} (you had {yours})", code=d["code"],
                current=d["current_version"], yours=d["your_version"]) if d["current_version"]
            else msg("{code} no longer exists (you had version {yours})", code=d["code"],
                     yours=d["your_version"]),
            *(msg("changed by {author} in change #{id} ({kind}: {reason})",
                  author=c["author"] or msg("someone"), id=c["id"], kind=_kind(c["kind"]),
                  reason=c["reason"]) for c in d["changes"][-2:])], ", ") for d in details)
        raise Conflict(msg("the boundaries changed since you loaded them: {said}. Reload and redo "
                           "the edit.", said=said), field="base_versions", details={"stale": details})


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


def _kind(kind: str):
    """A kind of change by name (a kind this version does not know, as it is written)."""
    return KIND_NAMES.get(kind, kind)


def _change_row(session, change_id) -> dict:
    try:
        change_id = int(change_id)
    except (TypeError, ValueError):
        raise InvalidInput("id", msg("a change id is a whole number; got {got}", got=repr(change_id))) from None
    row = session.execute(text("SELECT id, kind, payload FROM boundary_changes WHERE id = :c FOR UPDATE"),
                          {"c": change_id}).mappings().first()
    if row is None:
        raise NotFound(msg("no change #{id}", id=change_id), field="id")
    return row


def _first_parent_code(session, parents: set) -> str | None:
    ids = sorted(p for p in parents if p is not None)
    if not ids:
        return None
    return session.execute(text("SELECT code FROM areas WHERE id = :p"), {"p": ids[0]}).scalar()
