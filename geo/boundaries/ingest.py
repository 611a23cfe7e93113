"""Boundary files in: GeoJSON, GeoPackage, Shapefile, CSV (WKT) via pyogrio, XLSX via openpyxl.

`load` is the one import used by the command line, the API and the planner page. Real files are
messy, so it never guesses silently: it checks everything first (`ingest_checks`, `ingest_crs`,
`ingest_parents`) and returns a `Report` that names every bad feature (invalid ring, duplicate or
missing code, unknown parent, coordinates that do not match the CRS tag or look like swapped
lat/lon, pieces that do not partition their parent) together with the ways through — the options
that take them (`repair`, `merge_duplicates`, `skip_bad`, `fit`, `crs`, `code_prefix`,
`parent_field`, `parent_by_location`), each as a program can follow it and worded as the caller
spells its options (`Hints`). Only a report without errors is written — as one 'import' change set
with a version row per area — and `dry_run` writes nothing at all.

What an export writes comes back as itself (`fields`): kind, households, population, urban, the
一长两员 posts (as many unnamed people as the file counts), the parent's code and the version go
into the areas' own columns; every property of the file is also kept in `attrs.source`.

Geometry is stored as MultiPolygon in EPSG:4326, outer rings counter-clockwise (RFC 7946).
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import audit, limits
from geo.areas import area_row, parse_level
from geo.boundaries import fields as attributes
from geo.boundaries.ingest_checks import (
    check_codes,
    check_geometry,
    check_partition,
    dissolve_duplicates,
)
from geo.boundaries.ingest_crs import source_crs, to_wgs84
from geo.boundaries.ingest_parents import locate_parents, resolve_parents
from geo.boundaries.ingest_read import read
from geo.boundaries.ingest_report import Feature, Hints, Report
from geo.errors import Forbidden, InvalidInput
from geo.incidents import assignment
from geo.messages import joined, msg
from geo.policy import Scope
from geo.vocabulary import STAFF_ROLE_NAMES


# -- import ----------------------------------------------------------------------------------
def load(session: Session, path, *, level, parent: str | None = None,
         parent_field: str | None = None, parent_by_location: bool = False,
         code_field: str | None = None, name_field: str | None = None, crs: str | None = None,
         repair: bool = False, dry_run: bool = False, merge_duplicates: bool = False,
         skip_bad: bool = False, fit: bool = False, code_prefix: str = "", layer: str | None = None,
         name: str | None = None, hints: Hints | None = None, actor: audit.Actor,
         scope: Scope, max_vertices: int | None = None,
         progress: Callable[[str, int, int], None] | None = None) -> Report:
    """Check a boundary file and, when nothing is wrong (or `skip_bad`), import it as areas.

    `name` is what the file is called in the report (an upload's own name; default the path);
    `hints` how the caller spells the options the report suggests. Returns the Report; it is
    `refused` (and nothing was written) when errors remain.

    `max_vertices` refuses a file with a larger geometry (TooComplex) before any check;
    `progress(stage, step, steps)` is told as each stage begins (a background import's progress).

    Raises:
        InvalidInput: the arguments themselves are wrong (no such field, bad level, unreadable
            file); `details["ways"]` lists the options that would do, as the report's ways do.
        Forbidden: the parent, or a feature's parent, lies outside `scope`; a new jurisdiction
            (level 1, or parents from a field with no root) needs an unscoped administrator.
    """
    path = Path(path)
    hints = hints or Hints()
    level = parse_level(level)
    if level is None:
        raise InvalidInput("level", msg("level is required (1 district … 4 grid)"))
    report = Report(path=name or str(path), level=level, dry_run=dry_run, hints=hints)
    if parent is None and not scope.everywhere:
        raise Forbidden(msg("only an administrator without area limits may import areas without a "
                            "parent in scope"), field="parent")
    step = _stepper(progress)
    step("read")
    meta, wkbs, fields = read(path, layer, Path(report.path).name, hints.field("path"))
    if max_vertices is not None:
        limits.check_wkbs(wkbs, max_vertices)
    report.features = len(wkbs)
    if level > 1 and not parent and not parent_field and not parent_by_location:
        parent_field = attributes.find(fields, "parent")  # as every export writes it
    parent_row = _parent_row(session, hints, parent, level, parent_field, parent_by_location)
    if parent_row is not None:
        scope.area(session, parent_row["code"], "parent")
    code_field = _choose_field(hints, code_field, fields, "code", "code_field", required=True)
    name_field = _choose_field(hints, name_field, fields, "name", "name_field", required=False)
    if parent_field and attributes.values(fields, parent_field) is None:
        raise InvalidInput("parent_field", _no_field(parent_field, fields),
                           details={"ways": [{"parent_field": f} for f in fields]})
    features = _features(report, fields, wkbs, code_field, name_field, parent_field, code_prefix)
    features = _this_level(report, fields, features, level)
    _swapped_fields(report, features, code_field, name_field)

    source = source_crs(report, meta, crs, features)
    if report.errors:  # a CRS that does not match the coordinates poisons every feature
        return report
    to_wgs84(report, source, features)
    step("geometry")
    check_geometry(session, report, features, repair)
    step("codes")
    check_codes(session, report, features, merge_duplicates)
    if parent_field or not parent_by_location:
        resolve_parents(session, report, features, parent_row, parent_field, level, code_prefix,
                        then_locate=parent_by_location)
    if parent_by_location:  # every feature, or those whose parent field names no area
        locate_parents(session, report, features, parent_row, level)
    keep = [f for f in features if not f.bad]
    if merge_duplicates:
        keep = dissolve_duplicates(session, report, keep)
    if skip_bad:
        _skip(report, features)
    scope.require_ids(session, {f.parent_id for f in keep if f.parent_id is not None}, "parent")
    if report.errors:
        # Refused already; still say how the pieces fit their parents (fitted, when asked), so
        # one run shows it all and never suggests what was already asked for.
        check_partition(session, report, [f for f in keep if not f.geom_bad and (
            level == 1 or f.parent_id is not None)], level, fit, skip_bad)
        return report
    step("partition")
    check_partition(session, report, keep, level, fit, skip_bad)
    keep = [f for f in keep if not f.bad]
    if report.errors:
        return report
    report.created = [f.code for f in keep if f.code is not None]
    if dry_run or not keep:
        return report
    step("write")
    report.change_id = _write(session, report, keep, level, actor)
    return report


STAGES = ("read", "geometry", "codes", "partition", "write")


def _stepper(progress):
    """Tell `progress` of each stage as it begins: (stage, its number from 1, how many there are)."""
    if progress is None:
        return lambda stage: None
    return lambda stage: progress(stage, STAGES.index(stage) + 1, len(STAGES))


def _skip(report: Report, features: list[Feature]) -> None:
    """Move the bad features' errors to `skipped`; what is wrong with the file itself stays."""
    bad = {f.index for f in features if f.bad}
    report.skipped.extend(e for e in report.errors if e.feature in bad)
    report.errors = [e for e in report.errors if e.feature not in bad]


def _parent_row(session, hints: Hints, parent, level, parent_field, by_location):
    if level == 1 and (parent or by_location):
        said = "parent" if parent else "parent_by_location"
        raise InvalidInput(said, msg("level 1 areas are roots of a jurisdiction: no {option}",
                                     option=hints.option(said, None if parent else True)))
    if level > 1 and not parent and not parent_field and not by_location:
        ways: list[dict] = [{"parent": None}, {"parent_field": None}, {"parent_by_location": True}]
        raise InvalidInput("parent", msg("level {level} areas need a parent: {a} (the parent of every "
                                         "feature), {b} (the field holding each feature's parent code), "
                                         "or {c} (the level-{above} area each overlaps most)",
                                         level=level, a=hints.way(ways[0]), b=hints.way(ways[1]),
                                         c=hints.way(ways[2]), above=level - 1), details={"ways": ways})
    if not parent:
        return None
    row = area_row(session, parent, "parent")
    if parent_field is None and not by_location and row["level"] != level - 1:
        raise InvalidInput("parent", msg("{code} is at level {level}; level-{own} areas need a parent "
                                         "at level {wanted}", code=parent, level=row["level"], own=level,
                                         wanted=level - 1),
                           details={"ways": [{"level": row["level"] + 1}]})
    return row


def _no_field(given: str, fields) -> str:
    return msg("no field {given}; the file has {fields}", given=repr(given),
               fields=joined(fields, ", ") if fields else msg("no fields"))


def _choose_field(hints: Hints, given, fields, column, arg, *, required):
    if given:
        if attributes.values(fields, given) is None:
            raise InvalidInput(arg, _no_field(given, fields),
                               details={"ways": [{arg: f} for f in fields]})
        return given
    found = attributes.find(fields, column)
    if found is None and required:
        raise InvalidInput(arg, msg("say which field holds the codes ({option}); the file has {fields}",
                                    option=hints.option(arg, None),
                                    fields=joined(fields, ", ") if fields else msg("no fields")),
                           details={"ways": [{arg: f} for f in fields]})
    return found


def _features(report, fields, wkbs, code_field, name_field, parent_field, prefix) -> list[Feature]:
    codes = attributes.values(fields, code_field)
    assert codes is not None  # _choose_field found it
    names = attributes.values(fields, name_field) if name_field else None
    parents = attributes.values(fields, parent_field) if parent_field else None
    known = {c: attributes.find(fields, c) for c in (*_COLUMNS, *attributes.STAFF)}
    out = []
    for i, wkb in enumerate(wkbs):
        code = attributes.text(codes[i])
        f = Feature(i + 1, None if code is None else prefix + code,
                    attributes.text(names[i]) if names else None,
                    attributes.text(parents[i]) if parents else None,
                    {k: _jsonable(v[i]) for k, v in fields.items()}, wkb)
        for column, field in known.items():
            if field is not None:
                _column(report, f, column, field, fields[field][i])
        out.append(f)
    return out


# The columns an import fills from the file besides code, name and parent, and how each is read.
_COLUMNS = {"kind": attributes.text, "households": attributes.count,
            "population": attributes.count, "urban": attributes.flag,
            "version": attributes.count}
_EXPECTED = {"count": "a whole number ≥ 0", "flag": "1/0, true/false or 是/否"}


def _column(report, f: Feature, column: str, field: str, raw) -> None:
    reader = _COLUMNS.get(column, attributes.count)
    try:
        value = reader(raw)
    except ValueError:
        report.warn("bad_value", f"{field} {attributes.text(raw)!r} is not "
                                 f"{_EXPECTED[reader.__name__]}: left empty",
                    feature=f.index, code=f.code)
        return
    if value is None or (column == "version" and isinstance(value, int) and value < 1):
        return
    if column in attributes.STAFF:
        f.staff[attributes.STAFF[column]] = value
    else:
        f.columns[column] = value


def _this_level(report, fields, features, level) -> list[Feature]:
    """Features of this level only, when the file says each one's level (a whole export)."""
    field = attributes.find(fields, "level")
    if field is None:
        return features
    levels = [attributes.level_of(v) for v in fields[field]]
    if None in levels:  # not levels as ours are numbered (DataV's 'district', …): only kept
        return features
    other = sorted({lv for lv in levels if lv is not None and lv != level})
    if not other:
        return features
    if level not in levels:
        report.error("other_level", msg("no feature is at level {level}: the file's field {field!r} holds "
                                        "level(s) {levels}", level=level, field=field,
                                        levels=joined(map(str, other), ", ")),
                     ways=[{"level": lv} for lv in other])
        return []
    kept = [f for f, lv in zip(features, levels) if lv == level]
    report.warn("other_level", msg("{count} feature(s) at level(s) {levels} left out (field {field!r}): "
                                   "import them on their own", count=len(features) - len(kept),
                                   levels=joined(map(str, other), ", "), field=field),
                ways=[{"level": lv} for lv in other])
    return kept


def _jsonable(value):
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def _swapped_fields(report, features, code_field, name_field) -> None:
    if not name_field:
        return
    codes = [f.code for f in features if f.code]
    names = [f.name for f in features if f.name]
    if codes and names and all(re.fullmatch(r"[A-Za-z .'-]+", c) for c in codes) \
            and all(re.fullmatch(r"\d+", n) for n in names):
        report.warn("swapped_fields", msg("the code field {code_field!r} holds words ({code!r}) while the "
                                          "name field {name_field!r} holds numbers ({name!r}): are the two "
                                          "fields swapped?", code_field=code_field, code=codes[0],
                                          name_field=name_field, name=names[0]),
                    ways=[{"code_field": name_field, "name_field": code_field}])


def _write(session, report, features, level, actor) -> int:
    name = Path(report.path).name
    change_id = session.execute(text(
        "INSERT INTO boundary_changes (kind, author_id, reason, created_at, payload) "
        "VALUES ('import', :a, :r, clock_timestamp(), CAST(:p AS jsonb)) RETURNING id"),
        {"a": actor.user_id, "r": f"import {name}",
         "p": json.dumps({"op": "import", "file": name, "level": level,
                          "codes": [f.code for f in features][:1000],
                          "repaired": len(report.repaired), "merged": len(report.merged),
                          "skipped": len(report.skipped)}, ensure_ascii=False)}).scalar_one()
    ids = [session.execute(text("""
        INSERT INTO areas (code, name, level, parent_id, geom, kind, households, population, urban,
                           version, attrs, created_at, updated_at)
        VALUES (:code, :name, :level, :parent, ST_Multi(ST_GeomFromWKB(:g, 4326)), :kind, :households,
                :population, :urban, COALESCE(:version, 1), CAST(:attrs AS jsonb), clock_timestamp(),
                clock_timestamp())
        RETURNING id"""), {"code": f.code, "name": f.name or f.code, "level": level,
                           "parent": f.parent_id, "g": f.wkb,
                           **{c: f.columns.get(c) for c in _COLUMNS},
                           "attrs": json.dumps({"source": f.props, "file": name},
                                               ensure_ascii=False)}).scalar_one()
           for f in features]
    session.execute(text("""
        INSERT INTO area_versions (area_id, version, code, name, level, parent_id, geom, households,
                                   population, valid_from, change_id)
        SELECT id, version, code, name, level, parent_id, geom, households, population, created_at, :c
          FROM areas WHERE id = ANY(:ids)"""), {"ids": ids, "c": change_id})
    _staff(session, ids, features, name)
    # Incidents already recorded there now have a finer area, by the assignment rule itself.
    envelope = session.execute(text(
        "SELECT ST_AsText(ST_Envelope(ST_Extent(geom)::geometry)) FROM areas WHERE id = ANY(:ids)"),
        {"ids": ids}).scalar()
    if envelope:
        assignment.assign(session, within_wkt=envelope)
    audit.record(session, actor, "areas.import", target_type="boundary_change", target_id=change_id,
                 details={"file": name, "level": level, "count": len(ids),
                          "repaired": len(report.repaired), "merged": len(report.merged),
                          "skipped": len(report.skipped)})
    return change_id


def _staff(session, ids: list[int], features: list[Feature], file: str) -> None:
    """The 一长两员 posts a file counts: one person each, unnamed until someone fills the name in."""
    posts = [(area_id, role) for area_id, f in zip(ids, features)
             for role, n in f.staff.items() for _ in range(n)]
    if not posts:
        return
    people = session.execute(text(
        "SELECT nextval(pg_get_serial_sequence('people', 'id')) FROM generate_series(1, :n)"),
        {"n": len(posts)}).scalars().all()
    session.execute(text(
        "INSERT INTO people (id, name, notes) SELECT * FROM unnest(CAST(:ids AS int[]), "
        "CAST(:names AS text[]), CAST(:notes AS text[]))"),
        {"ids": people, "names": [f"{STAFF_ROLE_NAMES[role][0]}（未具名）" for _, role in posts],
         "notes": [f"导入自 {file}：文件只给人数，未给姓名"] * len(posts)})
    session.execute(text(
        "INSERT INTO area_staff (area_id, person_id, role) SELECT * FROM unnest("
        "CAST(:areas AS int[]), CAST(:people AS int[]), CAST(:roles AS text[]))"),
        {"areas": [a for a, _ in posts], "people": people, "roles": [r for _, r in posts]})
