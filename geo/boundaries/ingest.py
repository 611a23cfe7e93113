"""Boundary files in: GeoJSON, GeoPackage, Shapefile (and CSV with WKT) via pyogrio.

`load` is the one import used by the command line, the API and the planner page. Real files are
messy, so it never guesses silently: it checks everything first (`ingest_checks`, `ingest_crs`)
and returns a `Report` that names every bad feature (invalid ring, duplicate or missing code,
unknown parent, coordinates that do not match the CRS tag or look like swapped lat/lon, pieces
that do not partition their parent) together with the option that offers a way through
(`repair`, `merge_duplicates`, `skip_bad`, `fit`, `crs`, `code_prefix`). Only a report without
errors is written — as one 'import' change set with a version row per area — and `dry_run`
writes nothing at all.

Geometry is stored as MultiPolygon in EPSG:4326 with exterior rings counter-clockwise (RFC 7946).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import audit
from geo.areas import area_row, parse_level
from geo.boundaries.ingest_checks import (
    check_codes,
    check_geometry,
    check_partition,
    dissolve_duplicates,
    resolve_parents,
)
from geo.boundaries.ingest_crs import source_crs, to_wgs84
from geo.boundaries.ingest_report import Feature, Issue, Report
from geo.errors import Forbidden, InvalidInput
from geo.incidents import assignment
from geo.policy import Scope

CODE_FIELDS = ("code", "CODE", "Code", "id", "ID")
NAME_FIELDS = ("name", "NAME", "Name")


# -- import ----------------------------------------------------------------------------------
def load(session: Session, path, *, level, parent: str | None = None,
         parent_field: str | None = None, code_field: str | None = None,
         name_field: str | None = None, crs: str | None = None, repair: bool = False,
         dry_run: bool = False, merge_duplicates: bool = False, skip_bad: bool = False,
         fit: bool = False, code_prefix: str = "", layer: str | None = None,
         actor: audit.Actor, scope: Scope) -> Report:
    """Check a boundary file and, when nothing is wrong (or `skip_bad`), import it as areas.

    Returns the Report; it is `refused` (and nothing was written) when errors remain.

    Raises:
        InvalidInput: the arguments themselves are wrong (no such field, bad level, unreadable file).
        Forbidden: the parent, or a feature's parent, lies outside `scope`; a new jurisdiction
            (level 1, or parents from a field with no root) needs an unscoped administrator.
    """
    path = Path(path)
    level = parse_level(level)
    if level is None:
        raise InvalidInput("level", "level is required (1 district … 4 grid)")
    report = Report(path=str(path), level=level, dry_run=dry_run)
    parent_row = _parent_row(session, parent, level, parent_field)
    if parent_row is not None:
        scope.area(session, parent_row["code"], "parent")
    elif not scope.everywhere:
        raise Forbidden("only an administrator without area limits may import areas without a "
                        "parent in scope", field="parent")
    meta, wkbs, fields = _read(path, layer)
    report.features = len(wkbs)
    code_field = _choose_field(code_field, fields, CODE_FIELDS, "code_field", required=True)
    name_field = _choose_field(name_field, fields, NAME_FIELDS, "name_field", required=False)
    if parent_field and parent_field not in fields:
        raise InvalidInput("parent_field", f"no field {parent_field!r}; the file has {', '.join(fields)}")
    features = [Feature(i + 1, _code(fields[code_field][i], code_prefix),
                         _text(fields[name_field][i]) if name_field else None,
                         _code(fields[parent_field][i], "") if parent_field else None,
                         {k: _jsonable(v[i]) for k, v in fields.items()}, wkbs[i])
                for i in range(len(wkbs))]
    _swapped_fields(report, features, code_field, name_field)

    source = source_crs(report, meta, crs, features)
    if report.errors:  # a CRS that does not match the coordinates poisons every feature
        return report
    to_wgs84(report, source, features)
    check_geometry(session, report, features, repair)
    check_codes(session, report, features, merge_duplicates)
    resolve_parents(session, report, features, parent_row, parent_field, level, code_prefix)
    if skip_bad:
        for f in features:
            if f.bad:
                report.skipped.extend(e for e in report.errors if e.feature == f.index)
        report.errors = [e for e in report.errors if e.feature is None]
    keep = [f for f in features if not f.bad]
    scope.require_ids(session, {f.parent_id for f in keep if f.parent_id is not None}, "parent")
    if merge_duplicates:
        keep = dissolve_duplicates(session, report, keep)
    if report.errors:
        # Refused already; still say how the pieces fit their parents, so one run shows it all.
        check_partition(session, report, [f for f in features if not f.geom_bad and (
            level == 1 or f.parent_id is not None)], level, fit=False)
        return report
    check_partition(session, report, keep, level, fit)
    if report.errors:
        return report
    report.created = [f.code for f in keep if f.code is not None]
    if dry_run or not keep:
        return report
    report.change_id = _write(session, report, keep, level, path, actor)
    return report


def _parent_row(session, parent, level, parent_field):
    if level == 1 and parent:
        raise InvalidInput("parent", "level 1 areas are roots of a jurisdiction: no --parent")
    if level > 1 and not parent and not parent_field:
        raise InvalidInput("parent", f"level {level} areas need a parent: --parent CODE, or "
                                     "--parent-field FIELD naming each feature's parent code")
    if not parent:
        return None
    row = area_row(session, parent, "parent")
    if parent_field is None and row["level"] != level - 1:
        raise InvalidInput("parent", f"{parent} is at level {row['level']}; level-{level} areas "
                                     f"need a parent at level {level - 1}")
    return row


def _read(path: Path, layer: str | None):
    """Read every feature: (metadata, WKB list, {field: values}); CSV reads a `wkt` column."""
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError

    if not path.exists():
        raise InvalidInput("path", f"no file {path}")
    options = {}
    if path.suffix.lower() == ".csv":
        options = {"GEOM_POSSIBLE_NAMES": "wkt", "KEEP_GEOM_COLUMNS": "NO"}
    try:
        meta, _, geometry, values = pyogrio.raw.read(path, layer=layer, **options)
    except (DataSourceError, DataLayerError, OSError) as exc:
        raise InvalidInput("path", f"cannot read {path.name} as GeoJSON, GeoPackage, Shapefile or "
                                   f"CSV: {exc}") from None
    names = [str(n) for n in meta["fields"]]
    return meta, list(geometry), {n: list(v) for n, v in zip(names, values)}


def _choose_field(given, fields, defaults, arg, *, required):
    if given:
        if given not in fields:
            raise InvalidInput(arg, f"no field {given!r}; the file has {', '.join(fields) or 'none'}")
        return given
    found = next((f for f in defaults if f in fields), None)
    if found is None and required:
        raise InvalidInput(arg, f"say which field holds the codes (--code-field); the file has "
                                f"{', '.join(fields) or 'no fields'}")
    return found


def _code(value, prefix: str) -> str | None:
    text_value = _text(value)
    return None if text_value is None else prefix + text_value


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        if float(value).is_integer():
            value = int(value)
    out = str(value).strip()
    return out or None


def _jsonable(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bytes):
        return value.hex()
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def _swapped_fields(report, features, code_field, name_field) -> None:
    if not name_field:
        return
    codes = [f.code for f in features if f.code]
    names = [f.name for f in features if f.name]
    if codes and names and all(re.fullmatch(r"[A-Za-z .'-]+", c) for c in codes) \
            and all(re.fullmatch(r"\d+", n) for n in names):
        report.warnings.append(Issue(
            "swapped_fields", f"the code field {code_field!r} holds words ({codes[0]!r}) while the "
            f"name field {name_field!r} holds numbers ({names[0]!r}): are the two fields swapped?",
            fix=f"--code-field {name_field} --name-field {code_field}"))


def _write(session, report, features, level, path, actor) -> int:
    change_id = session.execute(text(
        "INSERT INTO boundary_changes (kind, author_id, reason, created_at, payload) "
        "VALUES ('import', :a, :r, clock_timestamp(), CAST(:p AS jsonb)) RETURNING id"),
        {"a": actor.user_id, "r": f"import {path.name}",
         "p": json.dumps({"op": "import", "file": path.name, "level": level,
                          "codes": [f.code for f in features][:1000],
                          "repaired": len(report.repaired), "merged": len(report.merged),
                          "skipped": len(report.skipped)}, ensure_ascii=False)}).scalar_one()
    ids = [session.execute(text("""
        INSERT INTO areas (code, name, level, parent_id, geom, attrs, created_at, updated_at)
        VALUES (:code, :name, :level, :parent, ST_ForcePolygonCCW(ST_Multi(ST_GeomFromWKB(:g, 4326))),
                CAST(:attrs AS jsonb), clock_timestamp(), clock_timestamp())
        RETURNING id"""), {"code": f.code, "name": f.name or f.code, "level": level,
                           "parent": f.parent_id, "g": f.wkb,
                           "attrs": json.dumps({"source": f.props, "file": path.name},
                                               ensure_ascii=False)}).scalar_one()
           for f in features]
    session.execute(text("""
        INSERT INTO area_versions (area_id, version, code, name, level, parent_id, geom, households,
                                   population, valid_from, change_id)
        SELECT id, version, code, name, level, parent_id, geom, households, population, created_at, :c
          FROM areas WHERE id = ANY(:ids)"""), {"ids": ids, "c": change_id})
    # Incidents already recorded there now have a finer area, by the assignment rule itself.
    envelope = session.execute(text(
        "SELECT ST_AsText(ST_Envelope(ST_Extent(geom)::geometry)) FROM areas WHERE id = ANY(:ids)"),
        {"ids": ids}).scalar()
    if envelope:
        assignment.assign(session, within_wkt=envelope)
    audit.record(session, actor, "areas.import", target_type="boundary_change", target_id=change_id,
                 details={"file": path.name, "level": level, "count": len(ids),
                          "repaired": len(report.repaired), "merged": len(report.merged),
                          "skipped": len(report.skipped)})
    return change_id
