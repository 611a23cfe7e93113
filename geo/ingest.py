"""Boundary files in and out: GeoJSON, GeoPackage, Shapefile (and CSV with WKT) via pyogrio.

`load` is the one import used by the command line, the API and the planner page. Real files are
messy, so it never guesses silently: it checks everything first and returns a `Report` that
names every bad feature (invalid ring, duplicate or missing code, unknown parent, coordinates
that do not match the CRS tag or look like swapped lat/lon, pieces that do not partition their
parent) together with the option that offers a way through (`repair`, `merge_duplicates`,
`skip_bad`, `fit`, `crs`, `code_prefix`). Only a report without errors is written — as one
'import' change set with a version row per area — and `dry_run` writes nothing at all.

Geometry is stored as MultiPolygon in EPSG:4326 with exterior rings counter-clockwise (RFC 7946);
`export` writes coordinates at full precision, so import → export → import gives the same WKB.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
import tempfile
import zipfile
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from . import audit
from . import crs as crs_mod
from .areas import (GAP_TOLERANCE_M2, OVERLAP_TOLERANCE_M2, area_row, parse_level, sliver_m2_sql,
                    subtree_filter)
from .edits import fit_pieces
from .errors import InvalidInput
from .models import LEVELS

FORMATS = {"geojson": ("GeoJSON", ".geojson", "application/geo+json"),
           "gpkg": ("GPKG", ".gpkg", "application/geopackage+sqlite3"),
           "shp": ("ESRI Shapefile", ".shp", "application/zip"),
           "csv": ("CSV", ".csv", "text/csv")}
CODE_FIELDS = ("code", "CODE", "Code", "id", "ID")
NAME_FIELDS = ("name", "NAME", "Name")
# A coordinate further than this outside a CRS's published area of use does not belong to it.
AREA_OF_USE_MARGIN = 1.0


@dataclass
class Issue:
    """One thing wrong (or worth knowing) about the file, a feature of it, or a parent area."""

    kind: str
    message: str
    feature: int | None = None  # 1-based, in file order
    code: str | None = None
    fix: str | None = None      # the option that offers a way through


@dataclass
class Report:
    """What an import found and did; `refused` when it wrote nothing because of errors."""

    path: str
    level: int
    source_crs: str | None = None
    features: int = 0
    dry_run: bool = False
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    skipped: list[Issue] = field(default_factory=list)
    repaired: list[dict] = field(default_factory=list)
    merged: list[dict] = field(default_factory=list)
    fitted: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    change_id: int | None = None

    @property
    def refused(self) -> bool:
        return bool(self.errors)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["refused"] = self.refused
        out["level_name"] = LEVELS.get(self.level)
        return out

    def summary(self) -> str:
        if self.refused:
            fixes = sorted({e.fix for e in self.errors if e.fix})
            return (f"refused: {len(self.errors)} problem(s) in {self.path}, nothing written"
                    + (f"; a way through: {', '.join(fixes)}" if fixes else ""))
        verb = "would import" if self.dry_run else "imported"
        return (f"{verb} {len(self.created)} area(s) at level {self.level} "
                f"({LEVELS.get(self.level)}) from {self.features} feature(s)"
                + (f", {len(self.skipped)} skipped" if self.skipped else "")
                + (f" — change #{self.change_id}" if self.change_id else ""))

    def lines(self) -> list[str]:
        """The report as plain lines for the command line."""
        out = [f"{Path(self.path).name}: {self.features} feature(s), CRS {self.source_crs}"]
        for title, issues in (("error", self.errors), ("skipped", self.skipped),
                              ("note", self.warnings)):
            for i in issues:
                where = f"feature {i.feature}" if i.feature else ""
                where += f" [{i.code}]" if i.code else ""
                hint = f"  (way through: {i.fix})" if i.fix else ""
                out.append(f"  {title:<7} {i.kind:<20} {where + ': ' if where else ''}{i.message}{hint}")
        for r in self.repaired:
            out.append(f"  repaired feature {r['feature']} [{r['code']}]: {r['before_m2']:.2f} m² → "
                       f"{r['after_m2']:.2f} m² ({r['change_m2']:+.3g} m², {r['change_pct']:+.3g} %): {r['reason']}")
        for m in self.merged:
            out.append(f"  merged features {', '.join(map(str, m['features']))} into one area "
                       f"{m['code']}")
        out.extend(f"  fitted {line}" for line in self.fitted)
        out.append(self.summary())
        return out


@dataclass
class _Feature:
    index: int            # 1-based
    code: str | None
    name: str | None
    parent_ref: str | None
    props: dict
    wkb: bytes | None
    parent_id: int | None = None
    bad: bool = False
    geom_bad: bool = False  # its geometry cannot be used at all (not only its code)


# -- import ----------------------------------------------------------------------------------
def load(session: Session, path, *, level, parent: str | None = None,
         parent_field: str | None = None, code_field: str | None = None,
         name_field: str | None = None, crs: str | None = None, repair: bool = False,
         dry_run: bool = False, merge_duplicates: bool = False, skip_bad: bool = False,
         fit: bool = False, code_prefix: str = "", layer: str | None = None,
         actor: audit.Actor) -> Report:
    """Check a boundary file and, when nothing is wrong (or `skip_bad`), import it as areas.

    Returns the Report; it is `refused` (and nothing was written) when errors remain.

    Raises:
        InvalidInput: the arguments themselves are wrong (no such field, bad level, unreadable file).
    """
    path = Path(path)
    level = parse_level(level)
    if level is None:
        raise InvalidInput("level", "level is required (1 district … 4 grid)")
    report = Report(path=str(path), level=level, dry_run=dry_run)
    parent_row = _parent_row(session, parent, level, parent_field)
    meta, wkbs, fields = _read(path, layer)
    report.features = len(wkbs)
    code_field = _choose_field(code_field, fields, CODE_FIELDS, "code_field", required=True)
    name_field = _choose_field(name_field, fields, NAME_FIELDS, "name_field", required=False)
    if parent_field and parent_field not in fields:
        raise InvalidInput("parent_field", f"no field {parent_field!r}; the file has {', '.join(fields)}")
    features = [_Feature(i + 1, _code(fields[code_field][i], code_prefix),
                         _text(fields[name_field][i]) if name_field else None,
                         _code(fields[parent_field][i], "") if parent_field else None,
                         {k: _jsonable(v[i]) for k, v in fields.items()}, wkbs[i])
                for i in range(len(wkbs))]
    _swapped_fields(report, features, code_field, name_field)

    source = _source_crs(report, meta, crs, features)
    if report.errors:  # a CRS that does not match the coordinates poisons every feature
        return report
    _to_wgs84(report, source, features)
    _check_geometry(session, report, features, repair)
    _check_codes(session, report, features, merge_duplicates)
    _resolve_parents(session, report, features, parent_row, parent_field, level, code_prefix)
    if skip_bad:
        for f in features:
            if f.bad:
                report.skipped.extend(e for e in report.errors if e.feature == f.index)
        report.errors = [e for e in report.errors if e.feature is None]
    keep = [f for f in features if not f.bad]
    if merge_duplicates:
        keep = _merge_duplicates(session, report, keep)
    if report.errors:
        # Refused already; still say how the pieces fit their parents, so one run shows it all.
        _check_partition(session, report, [f for f in features if not f.geom_bad and (
            level == 1 or f.parent_id is not None)], level, fit=False)
        return report
    _check_partition(session, report, keep, level, fit)
    if report.errors:
        return report
    report.created = [f.code for f in keep]
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
    row = area_row(session, parent)
    if parent_field is None and row["level"] != level - 1:
        raise InvalidInput("parent", f"{parent} is at level {row['level']}; level-{level} areas "
                                     f"need a parent at level {level - 1}")
    return row


def _read(path: Path, layer: str | None):
    """Read every feature: (metadata, WKB list, {field: values}); CSV reads a `wkt` column."""
    import pyogrio
    from pyogrio.errors import DataSourceError, DataLayerError

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


# -- coordinates -----------------------------------------------------------------------------
def _source_crs(report, meta, given, features):
    """The CRS to read the coordinates in: `given`, else the file's tag; checked against them."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    geoms = [shapely.from_wkb(f.wkb) for f in features if f.wkb is not None]
    bounds = shapely.total_bounds(geoms) if geoms else None
    if given:
        name = given.strip()
        try:
            system = crs_mod.normalise_crs(name)
            if system in (crs_mod.GCJ02, crs_mod.BD09):
                report.source_crs = system
                if bounds is not None and crs_mod.out_of_china((bounds[0] + bounds[2]) / 2,
                                                               (bounds[1] + bounds[3]) / 2):
                    report.errors.append(Issue(
                        "crs_mismatch", f"{system.upper()} is only used inside China, but the "
                        f"coordinates lie at {_box(bounds)}"))
                return system
            name = "EPSG:4326" if system == crs_mod.WGS84 else "EPSG:4490"
        except ValueError:
            pass
        try:
            source = CRS.from_user_input(name)
        except CRSError:
            raise InvalidInput("crs", f"crs must be wgs84, cgcs2000, gcj02, bd09 or EPSG:n; "
                                      f"got {given!r}") from None
        report.source_crs = source.to_string()
    else:
        tag = meta.get("crs")
        if not tag:
            report.source_crs = "EPSG:4326"
            report.warnings.append(Issue("no_crs", "the file has no CRS tag: reading it as WGS84 "
                                         "lon/lat", fix="--crs EPSG:n (or gcj02, bd09)"))
            source = CRS.from_epsg(4326)
        else:
            source = CRS.from_user_input(tag)
            report.source_crs = source.to_string()
    _check_area_of_use(report, source, bounds, given is None)
    return source


def _check_area_of_use(report, source, bounds, tagged: bool) -> None:
    """Refuse coordinates that fall outside where the CRS is used (a wrong tag, swapped axes)."""
    use = source.area_of_use
    if bounds is None or use is None:
        return
    if source.is_geographic:
        lon = (bounds[0] + bounds[2]) / 2
        lat = (bounds[1] + bounds[3]) / 2
        if abs(lat) > 90 and abs(lon) <= 90:
            return  # swapped axes: reported per feature
    else:
        from pyproj import Transformer

        to_geo = Transformer.from_crs(source, source.geodetic_crs, always_xy=True)
        lon, lat = to_geo.transform((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2)
    m = AREA_OF_USE_MARGIN
    if use.west - m <= lon <= use.east + m and use.south - m <= lat <= use.north + m:
        return
    what = "the file's CRS tag" if tagged else "the CRS given"
    hint = ""
    if source.is_geographic and -180 <= lon <= 180 and -90 <= lat <= 90:
        hint = (f"; the coordinates read as WGS84 lon/lat would be at ({lon:.2f}, {lat:.2f}) — if "
                "that is right, say so with --crs wgs84")
    report.errors.append(Issue(
        "crs_mismatch",
        f"{what} is {source.to_string()} ({source.name}), used in {use.name} "
        f"({use.west:.2f}…{use.east:.2f}°E, {use.south:.2f}…{use.north:.2f}°N), but the "
        f"coordinates lie around ({lon:.2f}, {lat:.2f}), far outside it: the tag does not match "
        f"the coordinates, and they are never shifted silently{hint}",
        fix="--crs"))


def _to_wgs84(report, source, features) -> None:
    """Reproject every feature to WGS84 and flag coordinates that look like swapped lat/lon."""
    from pyproj import CRS, Transformer

    if isinstance(source, str):  # GCJ-02 / BD-09: exact iterative inverse, vertex by vertex
        for f in features:
            if f.wkb is not None:
                f.wkb = shapely.to_wkb(crs_mod.transform_geometry(shapely.from_wkb(f.wkb), source))
        source = CRS.from_epsg(4326)
    transformer = None
    if not source.equals(CRS.from_epsg(4326), ignore_axis_order=True) and \
            not source.equals(CRS.from_epsg(4490), ignore_axis_order=True):
        transformer = Transformer.from_crs(source, 4326, always_xy=True)
    centres = []
    for f in features:
        if f.wkb is None:
            continue
        g = shapely.from_wkb(f.wkb)
        if transformer is not None:
            g = shapely.transform(g, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))
            f.wkb = shapely.to_wkb(g)
        if not g.is_empty:
            centres.append(shapely.get_coordinates(g.centroid)[0])
    if not centres:
        return
    median = np.median(np.array(centres), axis=0)
    for f in features:
        if f.wkb is None:
            continue
        g = shapely.from_wkb(f.wkb)
        if g.is_empty:
            continue
        x0, y0, x1, y1 = g.bounds
        out_of_range = not (-180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        far = math.hypot(cx - median[0], cy - median[1]) > 5
        swapped_near = math.hypot(cy - median[0], cx - median[1]) < 5
        if out_of_range or (far and swapped_near):
            swapped = -90 <= x0 <= x1 <= 90 and -180 <= y0 <= y1 <= 180
            msg = (f"coordinates around ({cx:.4f}, {cy:.4f}) "
                   + ("look like lat, lon swapped (a latitude beyond ±90, or the swap lands beside "
                      "the other features): GeoJSON is lon, lat" if swapped
                      else "are outside ±180/±90 degrees"))
            _bad(report, f, "swapped_coordinates" if swapped else "out_of_range", msg,
                 fix="fix the file (lon, lat order), or --skip-bad")


def _box(bounds) -> str:
    return f"{bounds[0]:.2f}…{bounds[2]:.2f}, {bounds[1]:.2f}…{bounds[3]:.2f}"


# -- features --------------------------------------------------------------------------------
GEOMETRY_PROBLEMS = ("no_geometry", "not_polygon", "invalid_geometry", "swapped_coordinates",
                     "out_of_range")


def _bad(report, f: _Feature, kind: str, message: str, fix: str | None = None) -> None:
    f.bad = True
    f.geom_bad = f.geom_bad or kind in GEOMETRY_PROBLEMS
    report.errors.append(Issue(kind, message, feature=f.index, code=f.code, fix=fix))


def _check_geometry(session, report, features, repair: bool) -> None:
    """Polygons only; invalid rings refused or, with `repair`, made valid (GEOS MakeValid).

    Validity and repair run in GEOS through shapely — the engine behind ST_MakeValid — because
    PostGIS refuses even to parse some invalid rings (fewer than four points) that GEOS reads.
    """
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    for f in features:
        if f.bad:
            continue
        g = None if f.wkb is None else shapely.from_wkb(f.wkb)
        if g is None or g.is_empty:
            _bad(report, f, "no_geometry", "the feature has no geometry", fix="--skip-bad")
            continue
        if g.geom_type not in ("Polygon", "MultiPolygon"):
            _bad(report, f, "not_polygon", f"a {g.geom_type}, not a polygon", fix="--skip-bad")
            continue
        if not g.is_valid:
            reason = shapely.is_valid_reason(g)
            if not repair:
                _bad(report, f, "invalid_geometry", f"invalid ring: {reason}",
                     fix="--repair (ST_MakeValid, the area change is reported)")
                continue
            fixed = _polygonal(shapely.make_valid(g))
            before = abs(geod.geometry_area_perimeter(g)[0])
            after = abs(geod.geometry_area_perimeter(fixed)[0])
            g = fixed
            report.repaired.append({
                "feature": f.index, "code": f.code, "reason": reason, "before_m2": before,
                "after_m2": after, "change_m2": after - before,
                "change_pct": 100 * (after - before) / before if before else 0.0})
        f.wkb = shapely.to_wkb(_polygonal(g))


def _polygonal(g):
    """The polygons of a geometry as one MultiPolygon (what MakeValid returns may hold lines)."""
    parts = []
    for part in getattr(g, "geoms", [g]):
        parts.extend(p for p in getattr(part, "geoms", [part]) if p.geom_type == "Polygon")
    return shapely.MultiPolygon(parts)


def _check_codes(session, report, features, merge_duplicates: bool) -> None:
    for f in features:
        if f.code is None:
            _bad(report, f, "missing_code", "the code field is empty", fix="--skip-bad")
        elif len(f.code) > 32:
            _bad(report, f, "bad_code", f"code {f.code!r} is longer than 32 characters")
    groups = defaultdict(list)
    for f in features:
        if f.code is not None:
            groups[f.code].append(f)
    if not merge_duplicates:
        for code, group in groups.items():
            if len(group) > 1:
                for f in group:
                    _bad(report, f, "duplicate_code",
                         f"code {code} is used by {len(group)} features "
                         f"({', '.join(str(g.index) for g in group)})",
                         fix="--merge-duplicates (dissolve them into one area)")
    existing = dict(session.execute(text(
        "SELECT code, name FROM areas WHERE code = ANY(:c)"), {"c": list(groups)}).all())
    for f in features:
        if f.code in existing:
            _bad(report, f, "code_exists", f"code {f.code} already exists ({existing[f.code]})",
                 fix="--code-prefix PREFIX")


def _resolve_parents(session, report, features, parent_row, parent_field, level, prefix) -> None:
    """Find each feature's parent; a zero-padded reference ('01' for '1') is matched and noted."""
    if level == 1:
        return
    if parent_field is None:
        for f in features:
            f.parent_id = parent_row["id"]
        return
    scope, params = "level = :lvl", {"lvl": level - 1}
    if parent_row is not None:
        scope += " AND path <@ CAST(:path AS ltree)"
        params["path"] = parent_row["path"]
    candidates = session.execute(text(f"SELECT id, code FROM areas WHERE {scope}"), params).all()
    exact = {code: id_ for id_, code in candidates}
    loose = defaultdict(list)
    for id_, code in candidates:
        loose[_loose(code, prefix)].append((id_, code))
    noted = set()
    for f in features:
        if f.bad:
            continue
        ref = f.parent_ref
        if ref is None:
            _bad(report, f, "missing_parent", "the parent field is empty", fix="--skip-bad")
            continue
        for attempt in (ref, prefix + ref):
            if attempt in exact:
                f.parent_id = exact[attempt]
                break
        else:
            matches = loose.get(_loose(ref, prefix), [])
            if len(matches) == 1:
                f.parent_id, code = matches[0]
                if (ref, code) not in noted:
                    noted.add((ref, code))
                    report.warnings.append(Issue(
                        "parent_normalised", f"parent reference {ref!r} read as {code!r} "
                        "(leading zeros / prefix ignored)", code=code))
            elif len(matches) > 1:
                _bad(report, f, "ambiguous_parent",
                     f"parent {ref!r} matches {', '.join(c for _, c in matches)}",
                     fix="--parent ROOT to say under which jurisdiction")
            else:
                _bad(report, f, "missing_parent",
                     f"no level-{level - 1} area with code {ref!r}"
                     + (f" under {parent_row['code']}" if parent_row else ""),
                     fix="import the parents first, or --skip-bad")


def _loose(code: str, prefix: str) -> str:
    if prefix and code.startswith(prefix):
        code = code[len(prefix):]
    return code.strip().upper().lstrip("0") or "0"


def _merge_duplicates(session, report, features):
    groups = defaultdict(list)
    for f in features:
        groups[f.code].append(f)
    out = []
    for code, group in groups.items():
        first = group[0]
        if len(group) > 1:
            parents = {g.parent_id for g in group}
            if len(parents) > 1:
                for g in group:
                    _bad(report, g, "duplicate_code", f"code {code} is used by features with "
                                                      "different parents: they cannot be merged")
                continue
            first.wkb = session.execute(text(
                "SELECT ST_AsBinary(ST_Multi(ST_CollectionExtract(ST_Union(ST_GeomFromWKB(w, 4326)), 3))) "
                "FROM unnest(CAST(:ws AS bytea[])) w"), {"ws": [g.wkb for g in group]}).scalar_one()
            report.merged.append({"code": code, "features": [g.index for g in group]})
        out.append(first)
    return out


def _check_partition(session, report, features, level: int, fit: bool) -> None:
    """Children must partition their parent exactly; roots must not overlap other roots."""
    by_parent = defaultdict(list)
    for f in features:
        by_parent[f.parent_id].append(f)
    for parent_id, group in sorted(by_parent.items(), key=lambda kv: kv[0] or 0):
        if parent_id is None:
            container, name = None, "the other top-level areas"
            taken = session.execute(text(
                "SELECT ST_AsBinary(ST_Union(geom)) FROM areas WHERE parent_id IS NULL "
                "AND geom && ST_GeomFromWKB(:b, 4326)"),
                {"b": shapely.to_wkb(shapely.box(*shapely.total_bounds(
                    [shapely.from_wkb(f.wkb) for f in group])))}).scalar()
        else:
            row = session.execute(text(
                "SELECT p.code, ST_AsBinary(p.geom) AS geom, "
                "(SELECT ST_AsBinary(ST_Union(c.geom)) FROM areas c WHERE c.parent_id = p.id) AS taken "
                "FROM areas p WHERE p.id = :p"), {"p": parent_id}).mappings().one()
            name, container, taken = row["code"], row["geom"], row["taken"]
            if taken is not None:  # existing children stay; the new ones fill what is left
                container = session.execute(text(
                    "SELECT ST_AsBinary(ST_CollectionExtract(ST_Difference(ST_GeomFromWKB(:a, 4326), "
                    "ST_GeomFromWKB(:b, 4326)), 3))"), {"a": container, "b": taken}).scalar_one()
        if not fit:
            problems = _misfit(session, container, taken if parent_id is None else None,
                               [f.wkb for f in group])
            for message in problems:
                report.errors.append(Issue("misfit", f"under {name}: {message}",
                                           code=None if parent_id is None else name,
                                           fix="--fit (clip to the parent, give slivers to the "
                                               "neighbour with the longest shared edge)"))
            continue
        if parent_id is None and taken is not None:
            # Roots are clipped off the roots that are already there, then fitted among themselves.
            for f in group:
                f.wkb = session.execute(text(
                    "SELECT ST_AsBinary(ST_Multi(ST_CollectionExtract(ST_Difference("
                    "ST_GeomFromWKB(:a, 4326), ST_GeomFromWKB(:b, 4326)), 3)))"),
                    {"a": f.wkb, "b": taken}).scalar_one()
        fitted, lines = fit_pieces(session, container, [f.wkb for f in group],
                                   labels=[f"feature {f.index} [{f.code}]" for f in group])
        report.fitted.extend(lines)
        for f, geom in zip(group, fitted):
            if geom is None:
                report.errors.append(Issue("misfit", "nothing is left of it inside its parent",
                                           feature=f.index, code=f.code, fix="--skip-bad"))
            f.wkb = geom


def _misfit(session, container, others, wkbs) -> list[str]:
    m2 = sliver_m2_sql
    row = session.execute(text(f"""
        WITH n AS (SELECT i, ST_GeomFromWKB(w, 4326) AS g
                     FROM unnest(CAST(:ws AS bytea[])) WITH ORDINALITY u(w, i)),
             u AS (SELECT ST_Union(g) AS g FROM n),
             c AS (SELECT ST_GeomFromWKB(CAST(:c AS bytea), 4326) AS g,
                          ST_GeomFromWKB(CAST(:o AS bytea), 4326) AS o)
        SELECT CASE WHEN c.g IS NULL THEN 0 ELSE {m2('ST_Difference(u.g, c.g)')} END AS outside,
               CASE WHEN c.g IS NULL THEN 0 ELSE {m2('ST_Difference(c.g, u.g)')} END AS gap,
               CASE WHEN c.o IS NULL THEN 0 ELSE {m2('ST_Intersection(u.g, c.o)')} END AS others,
               (SELECT COALESCE(sum({m2('ST_CollectionExtract(ST_Intersection(a.g, b.g), 3)')}), 0)
                  FROM n a JOIN n b ON a.i < b.i AND a.g && b.g) AS overlap
          FROM u, c"""), {"ws": wkbs, "c": container, "o": others}).mappings().one()
    out = []
    if row["outside"] > GAP_TOLERANCE_M2:
        out.append(f"{row['outside']:.1f} m² lie outside the parent")
    if row["gap"] > GAP_TOLERANCE_M2:
        out.append(f"{row['gap']:.1f} m² of the parent are covered by no feature (gaps)")
    if row["overlap"] > OVERLAP_TOLERANCE_M2:
        out.append(f"features overlap each other by {row['overlap']:.2f} m²")
    if row["others"] > OVERLAP_TOLERANCE_M2:
        out.append(f"{row['others']:.1f} m² overlap areas already there")
    return out


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
    # Incidents already recorded there now have a finer grid: the lowest id wins on an edge.
    session.execute(text("""
        UPDATE incidents i SET grid_id = (
            SELECT a.id FROM areas a WHERE ST_Intersects(a.geom, i.geom) ORDER BY a.level DESC, a.id LIMIT 1)
          FROM areas n
         WHERE n.id = ANY(:ids) AND i.geom && n.geom AND ST_Intersects(i.geom, n.geom)"""),
        {"ids": ids})
    audit.record(session, actor, "areas.import", target_type="boundary_change", target_id=change_id,
                 details={"file": path.name, "level": level, "count": len(ids),
                          "repaired": len(report.repaired), "merged": len(report.merged),
                          "skipped": len(report.skipped)})
    return change_id


# -- export ----------------------------------------------------------------------------------
def rows(session: Session, *, level=None, parent: str | None = None) -> list[dict]:
    """The areas to export (level, subtree), geometry as WKB, in code order."""
    where, params = subtree_filter(session, parse_level(level), parent)
    return [dict(r) for r in session.execute(text(f"""
        SELECT a.code, a.name, a.level, p.code AS parent, a.kind, a.households, a.population,
               a.urban, a.version, ST_AsBinary(a.geom) AS wkb
          FROM areas a LEFT JOIN areas p ON p.id = a.parent_id
         WHERE {' AND '.join(where)} ORDER BY a.code"""), params).mappings()]


EXPORT_FIELDS = ("code", "name", "level", "parent", "kind", "households", "population", "urban",
                 "version")


def export(session: Session, path, *, level=None, parent: str | None = None,
           fmt: str | None = None) -> int:
    """Write areas to `path` as geojson, gpkg, shp or csv (from the suffix unless `fmt`); return the count."""
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt == "json":
        fmt = "geojson"
    if fmt not in FORMATS:
        raise InvalidInput("format", f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    found = rows(session, level=level, parent=parent)
    if fmt == "geojson":
        path.write_text(_geojson(found), encoding="utf-8")
    elif fmt == "csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow([*EXPORT_FIELDS, "wkt"])
            for r in found:
                writer.writerow([_csv_value(r[k]) for k in EXPORT_FIELDS] + [_wkt(r["wkb"])])
    else:
        import pyogrio

        driver = FORMATS[fmt][0]
        if fmt == "shp" and path.suffix.lower() != ".shp":
            path = path.with_suffix(".shp")
        values = [np.array([r[k] for r in found], dtype=object) for k in EXPORT_FIELDS]
        for i, k in enumerate(EXPORT_FIELDS):
            if k in ("level", "households", "population", "version"):
                values[i] = np.array([-1 if v is None else v for v in values[i]], dtype=np.int64)
            elif k == "urban":
                values[i] = np.array(["" if v is None else ("1" if v else "0") for v in values[i]],
                                     dtype=object)
            else:
                values[i] = np.array(["" if v is None else str(v) for v in values[i]], dtype=object)
        pyogrio.raw.write(path, np.array([bytes(r["wkb"]) for r in found], dtype=object), values,
                          list(EXPORT_FIELDS), driver=driver, crs="EPSG:4326",
                          geometry_type="MultiPolygon", encoding="UTF-8")
    return len(found)


def export_bytes(session: Session, *, level=None, parent: str | None = None,
                 fmt: str = "geojson") -> tuple[bytes, str, str]:
    """The export as one download: (content, file name, MIME type); a Shapefile comes zipped."""
    fmt = (fmt or "geojson").lower()
    if fmt not in FORMATS:
        raise InvalidInput("format", f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    stem = f"areas-{parent or 'all'}-level{parse_level(level) or 'all'}"
    _, suffix, mime = FORMATS[fmt]
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / (stem + suffix)
        export(session, target, level=level, parent=parent, fmt=fmt)
        if fmt != "shp":
            return target.read_bytes(), target.name, mime
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for part in sorted(Path(tmp).iterdir()):
                zf.write(part, part.name)
        return buffer.getvalue(), stem + ".zip", mime


def _geojson(found: list[dict]) -> str:
    # Python writes each float as the shortest text that reads back to the same double, so the
    # file carries the exact stored coordinates (GDAL's writer would round them).
    features = []
    for r in found:
        geom = shapely.geometry.mapping(shapely.from_wkb(bytes(r["wkb"])))
        features.append({"type": "Feature", "id": r["code"], "geometry": geom,
                         "properties": {k: r[k] for k in EXPORT_FIELDS}})
    return json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False)


def _csv_value(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    return "" if value is None else value


def _wkt(wkb) -> str:
    """WKT at full precision (each coordinate as its shortest round-trip text)."""
    geom = shapely.from_wkb(bytes(wkb))

    def ring(coords):
        return "(" + ", ".join(f"{x!r} {y!r}" for x, y in coords) + ")"

    polygons = getattr(geom, "geoms", [geom])
    return "MULTIPOLYGON (" + ", ".join(
        "(" + ", ".join(ring(r.coords) for r in [p.exterior, *p.interiors]) + ")"
        for p in polygons) + ")"
