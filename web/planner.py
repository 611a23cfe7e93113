"""Planning over HTTP: boundary change sets (preview, commit, history, diff, revert), problems,
import and export, soft locks, and the /planner page. Views parse, call geo/ with the caller's
scope (geo.policy: an edit is authorised on every area it touches), commit."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path, PurePath

from flask import Blueprint, Response, current_app, render_template, request

from geo import limits
from geo.boundaries import changes, export, history, ingest, ingest_report, locks, plans, validation
from geo.errors import Forbidden, ImportRefused, InvalidInput, NotFound
from geo.messages import joined, msg

from . import database, jobs
from .auth import ANY_USER, actor, current_user, require_scope, roles
from .pages import map_config
from .responses import flag, geojson_response, int_arg, json_body, json_response, optional_json_body

bp = Blueprint("planner", __name__)
PLANNERS = ("admin", "planner")
VIEWERS = ("admin", "planner", "analyst")
IMPORT_SUFFIXES = (".geojson", ".json", ".gpkg", ".zip", ".csv", ".xlsx")
# The report's ways through, worded as this endpoint's form fields (`skip_bad=1`), the file as
# the upload field `file`.
API_HINTS = ingest_report.Hints({"path": "file"}, joiner="=", on="=1", quote=False)


def _scope_of_change(codes: list[str]) -> None:
    """A change may be read or reverted only by a scope holding every area it names.

    An area a change retired exists only in its history; it is covered by the current areas
    named with it (a split grid by its successors), and on its own only an administrator acts.
    """
    s = database.session()
    scope = current_user().scope
    current = history.current_codes(s, codes)
    for code in current:
        require_scope(code, "areas")
    if current or scope.everywhere:
        return
    if not history.known_codes(s, codes):
        raise NotFound(msg("no area with code {code!r}", code=codes[0]), field="areas")
    raise Forbidden(msg("{codes} no longer exist; only an administrator may act on them",
                        codes=joined(codes, ", ")), field="areas")


# -- the page --------------------------------------------------------------------------------
@bp.get("/planner")
@roles(*PLANNERS)
def page():
    return render_template("planner.html", map_config=map_config(), norms=validation.NORMS)


# -- change sets -----------------------------------------------------------------------------
@bp.post("/api/changes")
@roles(*PLANNERS)
def change_create():
    config = current_app.config
    # Bounded before the body is parsed: a preview cuts and measures every vertex in PostGIS.
    limits.check_bytes(request.content_length, config["MAX_CHANGE_BYTES"], "geometry")
    body = json_body()
    limits.check_geojson(body.get("geometry"), config["MAX_VERTICES"])
    s = database.session()
    preview = flag(body.get("preview"))
    result = changes.apply(s, body.get("op"), areas=body.get("areas"), geometry=body.get("geometry"),
                           base_versions=body.get("base_versions"), reason=body.get("reason"),
                           actor=actor(), scope=current_user().scope, preview=preview,
                           names=body.get("names"))
    if not preview:
        s.commit()
    return json_response(result.as_dict(), 200 if preview else 201)


@bp.get("/api/changes")
@roles(*VIEWERS)
def change_list():
    area = request.args.get("area") or None
    if area:
        require_scope(area)
    elif not current_user().everywhere:
        raise InvalidInput("area", msg("area is required: the code of an area in your scope"))
    limit = int_arg("limit", 50, 1, 1000)
    return json_response({"changes": history.change_list(database.session(), area=area, limit=limit)})


@bp.get("/api/changes/<int:change_id>")
@roles(*VIEWERS)
def change_detail(change_id: int):
    detail = history.change_detail(database.session(), change_id)
    _scope_of_change(detail["codes"])
    return json_response(detail)


@bp.post("/api/changes/<int:change_id>/revert")
@roles(*PLANNERS)
def change_revert(change_id: int):
    body = optional_json_body()
    s = database.session()
    _scope_of_change(history.change_detail(s, change_id)["codes"])
    preview = flag(body.get("preview"))
    result = changes.revert(s, change_id, reason=body.get("reason"), actor=actor(),
                            scope=current_user().scope, preview=preview)
    if not preview:
        s.commit()
    return json_response(result.as_dict(), 200 if preview else 201)


# -- areas: problems, versions, diff ---------------------------------------------------------
@bp.get("/api/areas/<code>/problems")
@roles(*VIEWERS)
def area_problems(code: str):
    require_scope(code)
    found = validation.problems(database.session(), code)
    collection = validation.as_geojson(found)
    collection["errors"] = sum(1 for p in found if p.get("severity") == "error")
    collection["warnings"] = len(found) - collection["errors"]
    return geojson_response(collection)


@bp.get("/api/areas/<code>/versions")
@roles(*VIEWERS)
def area_versions(code: str):
    require_scope(code)
    return json_response({"code": code, "versions": history.versions(database.session(), code)})


@bp.get("/api/areas/<code>/diff")
@roles(*VIEWERS)
def area_diff(code: str):
    require_scope(code)
    versions = []
    for name in ("from", "to"):
        raw = request.args.get(name, "")
        if not raw.isdigit():
            raise InvalidInput(name, msg("{field} must be a version number; got {got}", field=name,
                                         got=repr(raw)))
        versions.append(int(raw))
    return geojson_response(history.diff(database.session(), code, *versions))


# -- soft locks ------------------------------------------------------------------------------
@bp.get("/api/locks")
@roles(*VIEWERS)
def lock_list():
    return json_response({"locks": locks.held(database.session(), current_user().scope,
                                              request.args.get("parent") or None)})


@bp.post("/api/areas/<code>/lock")
@roles(*PLANNERS)
def lock_take(code: str):
    require_scope(code)
    s = database.session()
    lock = locks.acquire_lock(s, code, actor())
    s.commit()
    return json_response(lock)


@bp.delete("/api/areas/<code>/lock")
@roles(*PLANNERS)
def lock_release(code: str):
    """Release one's own lock, or with `?override=1` (administrators) someone else's."""
    require_scope(code)
    s = database.session()
    released = locks.release_lock(s, code, actor(), override=flag(request.args.get("override")))
    s.commit()
    return json_response({"released": code, "lock": released})


# -- import and export -----------------------------------------------------------------------
@bp.post("/api/areas/import")
@roles(*PLANNERS)
def area_import():
    """Multipart upload (field `file`) with the same options as `anwang areas import`; a file of
    more than IMPORT_INLINE_FEATURES features is imported as a background job (202)."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise InvalidInput("file", msg("upload the boundary file as multipart field 'file' "
                                       "(GeoJSON, GeoPackage, zipped Shapefile, CSV or XLSX)"))
    # The upload's own name is what the report calls the file; it is stored under a safe one.
    shown = PurePath(upload.filename.replace("\\", "/")).name or "upload"
    if not shown.lower().endswith(IMPORT_SUFFIXES):
        raise InvalidInput("file", msg("expected {suffixes}; got {got}", suffixes=", ".join(IMPORT_SUFFIXES),
                                       got=repr(shown)))
    form, config = request.form, current_app.config
    options = dict(
        level=form.get("level"), parent=form.get("parent") or None,
        parent_field=form.get("parent_field") or None,
        parent_by_location=flag(form.get("parent_by_location")),
        code_field=form.get("code_field") or None, name_field=form.get("name_field") or None,
        crs=form.get("crs") or None, repair=flag(form.get("repair")),
        dry_run=flag(form.get("dry_run")), merge_duplicates=flag(form.get("merge_duplicates")),
        skip_bad=flag(form.get("skip_bad")), fit=flag(form.get("fit")),
        code_prefix=form.get("code_prefix") or "", layer=form.get("layer") or None,
        name=shown, hints=API_HINTS, actor=actor(), scope=current_user().scope,
        max_vertices=config["MAX_VERTICES"])
    workdir: Path | None = Path(tempfile.mkdtemp(prefix="anwang-import-"))
    try:
        path = workdir / ("upload" + PurePath(shown).suffix.lower())
        upload.save(path)
        if path.suffix == ".zip":
            path = _unzip_shapefile(path)
        features = _feature_count(path)
        limits.check_features(features, config["MAX_IMPORT_FEATURES"])
        if features > config["IMPORT_INLINE_FEATURES"]:
            job = jobs.start("areas.import", options["parent"], _import_job(path, workdir, options))
            workdir = None      # the job's now: it removes the file when done
            return json_response(job, 202, headers={"Location": job["url"]})
        s = database.session()
        report = ingest.load(s, path, **options)
        body = _import_body(report)
        if not report.dry_run:
            s.commit()
        return json_response(body, 200 if report.dry_run else 201)
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


def _feature_count(path: Path) -> int:
    """How many features the file holds, read from its header (0 when unreadable: load says why)."""
    import pyogrio

    try:
        return int(pyogrio.read_info(path)["features"])
    except Exception:  # noqa: BLE001 — an unreadable file is refused by ingest.load with its reason
        return 0


def _import_body(report) -> dict:
    """The import's answer; ImportRefused (422, the report in `details`) when it was refused."""
    body = report.as_dict()
    if report.refused:
        raise ImportRefused(report.summary(), field="file", details=body)
    return body


def _import_job(path: Path, workdir: Path, options: dict):
    """The work of a background import: ingest.load with its progress, then the file removed."""
    def work(session, progress) -> dict:
        try:
            return _import_body(ingest.load(session, path, progress=progress, **options))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return work


def _unzip_shapefile(path: Path) -> Path:
    import zipfile

    if not zipfile.is_zipfile(path):
        raise InvalidInput("file", msg("a .zip upload must be a zip archive holding one Shapefile "
                                       "(.shp, .shx, .dbf, .prj)"))
    with zipfile.ZipFile(path) as zf:
        members = [m for m in zf.namelist() if not m.endswith("/") and ".." not in m
                   and not m.startswith("/")]
        shp = [m for m in members if m.lower().endswith(".shp")]
        if len(shp) != 1:
            raise InvalidInput("file", msg("a zipped Shapefile must hold exactly one .shp; found {count}",
                                           count=len(shp)))
        target = path.parent / "unzipped"
        for m in members:
            zf.extract(m, target)
    return target / shp[0]


@bp.get("/api/areas/export")
@roles(*ANY_USER)
def area_export():
    args = request.args
    parent = args.get("parent") or None
    if parent:
        require_scope(parent)
    elif not current_user().everywhere:
        raise InvalidInput("parent", msg("parent is required: the code of an area in your scope"))
    content, filename, mime = export.export_bytes(database.read_session(), level=args.get("level"),
                                                  parent=parent, fmt=args.get("format", "geojson"))
    return Response(content, mimetype=mime,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})



def openapi_paths(geojson: dict, param, errors) -> dict:
    """The planner's part of /api/openapi.json."""
    code = {"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}
    change = {"name": "change_id", "in": "path", "required": True, "schema": {"type": "integer"}}
    body = {"content": {"application/json": {"schema": {"type": "object", "required": ["op", "areas"],
            "properties": {
                "op": {"enum": list(plans.OPS)},
                "areas": {"type": "array", "items": {"type": "string"},
                          "description": "transfer [from, to]; split/reshape [grid]; merge [keep, …]; "
                                         "partition [village]; move [grid, new parent]"},
                "geometry": {"type": "object", "description": "GeoJSON drawn region, line(s) or pieces"},
                "base_versions": {"type": "object", "description": "{code: version} as seen; stale → 409"},
                "reason": {"type": "string"}, "preview": {"type": "boolean"},
                "names": {"type": "array", "items": {"type": "string"}}}}}}}
    json_ok = {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}
    return {
        "/api/changes": {
            "post": {"summary": "Preview or commit a boundary change set (transfer, split, merge, "
                                "reshape, partition, move)", "requestBody": body,
                     "responses": {"200": json_ok, "201": json_ok,
                                   **errors(400, 401, 403, 404, 409, 413, 422)}},
            "get": {"summary": "Change sets touching an area, newest first",
                    "parameters": [param("area", "area code (required unless admin)"),
                                   param("limit", "at most this many (50)")],
                    "responses": {"200": json_ok, **errors(400, 401, 403)}}},
        "/api/changes/{change_id}": {"get": {
            "summary": "One change set with its diff (added/removed pieces as GeoJSON)",
            "parameters": [change], "responses": {"200": json_ok, **errors(401, 403, 404)}}},
        "/api/changes/{change_id}/revert": {"post": {
            "summary": "Revert a change set as a new one (same WKB restored)", "parameters": [change],
            "responses": {"201": json_ok, **errors(400, 401, 403, 404, 409)}}},
        "/api/areas/{code}/problems": {"get": {
            "summary": "Partition errors and workload / contiguity warnings as GeoJSON features",
            "parameters": [code], "responses": {"200": {"description": "FeatureCollection",
                                                        "content": geojson}, **errors(401, 403, 404)}}},
        "/api/areas/{code}/versions": {"get": {"summary": "Every version of an area",
                                               "parameters": [code],
                                               "responses": {"200": json_ok, **errors(401, 404)}}},
        "/api/areas/{code}/diff": {"get": {
            "summary": "Pieces added and removed between two versions",
            "parameters": [code, param("from", "version", True), param("to", "version", True)],
            "responses": {"200": {"description": "FeatureCollection", "content": geojson},
                          **errors(400, 401, 404)}}},
        "/api/areas/{code}/lock": {
            "post": {"summary": "Take or refresh the soft lock (says who holds it)", "parameters": [code],
                     "responses": {"200": json_ok, **errors(401, 403, 404)}},
            "delete": {"summary": "Release one's own soft lock; someone else's is 403 naming the "
                                  "holder, unless an administrator overrides it (audited)",
                       "parameters": [code, param("override", "1: release someone else's lock "
                                                              "(administrators)")],
                       "responses": {"200": json_ok, **errors(401, 403, 404)}}},
        "/api/locks": {"get": {"summary": "Soft locks in force", "parameters": [param("parent", "area code")],
                               "responses": {"200": json_ok, **errors(401, 404)}}},
        "/api/areas/import": {"post": {
            "summary": "Import a boundary file (multipart: file, level, parent, parent_field, "
                       "parent_by_location, code_field, name_field, crs, code_prefix, layer, repair, "
                       "merge_duplicates, fit, skip_bad, dry_run); a refusal names these fields",
            "responses": {"200": json_ok, "201": json_ok,
                          "202": {"description": "a large file: imported as a background job "
                                                 "({job, url, status}; follow it at /api/jobs/{id})"},
                          "422": {"description": "refused, with the report; or a geometry over "
                                                 "ANWANG_MAX_VERTICES"},
                          **errors(400, 401, 403, 413)}}},
        "/api/areas/export": {"get": {
            "summary": "Export areas as geojson, gpkg (1.2), shp (zipped), csv or xlsx, with every "
                       "attribute the import reads back",
            "parameters": [param("level", "level"), param("parent", "area code"),
                           param("format", "geojson | gpkg | shp | csv | xlsx")],
            "responses": {"200": {"description": "the file"}, **errors(400, 401, 403, 404)}}},
    }
