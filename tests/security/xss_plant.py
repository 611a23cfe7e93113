"""What the browser test of planted markup writes and removes: the payloads, where each goes
(area names, a split, a boundary import, reasons, incident texts, a display name, echoed inputs),
and the clean-up that leaves the demo as it was."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import requests
from sqlalchemy import text

from geo import audit, db, users
from geo.boundaries import changes
from geo.policy import Scope

IMG = '<img src=x onerror="window.__xss=1">'
SVG = '"><svg onload=window.__xss=1>'
SCRIPT = "<script>window.__xss=1</script>"
URL = "javascript:window.__xss=1"

TOWNSHIP = "XSS镇" + IMG                       # area names written in the database
VILLAGE = "XSS村" + SVG
GRID = "XSS网格" + SCRIPT
SPLIT_NAMES = ("XSS北格" + URL, "XSS南格" + IMG)  # a split's new grids, named through the API
SPLIT_REASON = "XSS拆分理由" + SVG
IMPORTED = ("XSS导入区" + SVG, "XSS导入镇" + SCRIPT)  # a boundary file's name field
OVERRIDE_REASON = "XSS调整理由" + SCRIPT
STAFF = "XSS网格长" + URL
DESCRIPTION = "XSS描述" + IMG + SVG + SCRIPT + URL
ADDRESS = "XSS地址" + IMG
LIVE_ADDRESS = "XSS实时地址" + SVG
REPORTER = "XSS反映人" + SVG
SUBTYPE = "XSS子类" + URL
DISPLAY_NAME = "XSS显示名" + IMG
CALLSIGN = "XSS呼号" + SCRIPT                  # echoed by the server: "no unit '…'"
PHONE = IMG                                     # echoed by the server: "… got '…'"

PASSWORD = "xss-pass-1234"
EXACT_ROLES = ("admin", "dispatcher", "grid_worker")   # who may read reporters
IMPORT_CODE = "XSSD"

# Records what the policy refused in every document of the page (init scripts run under any CSP).
CSP_PROBE = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push([e.violatedDirective, e.blockedURI, e.sourceFile + ":" + e.lineNumber, e.sample].join(" "));
}, true);
"""

GPX = b"""<?xml version="1.0" encoding="UTF-8"?>
<gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>
<trkpt lat="33.60" lon="114.00"><time>2026-01-01T08:00:00Z</time></trkpt>
<trkpt lat="33.61" lon="114.01"><time>2026-01-01T08:05:00Z</time></trkpt>
</trkseg></trk></gpx>"""


@dataclass
class Planted:
    engine: object
    base: str
    township: str
    village: str
    grid: str
    neighbour: str
    split_codes: list
    bbox: dict                       # code -> [minx, miny, maxx, maxy]
    point: tuple                     # (lon, lat) inside the grid
    incident: int
    users: dict                      # role -> username
    tokens: dict                     # role -> bearer token
    path: str = ""


def _split_target(conn) -> dict:
    """A demo grid that a west–east line through its inner point cuts into exactly two, in a village
    of at least four grids (another grid and its neighbour stay whole)."""
    rows = conn.execute(text("""
        SELECT g.code, g.version, v.code AS village, t.code AS township, ST_XMin(g.geom) AS x0,
               ST_XMax(g.geom) AS x1, ST_Y(ST_PointOnSurface(g.geom)) AS y
          FROM areas g JOIN areas v ON v.id = g.parent_id JOIN areas t ON t.id = v.parent_id
         WHERE g.level = 4 AND g.code LIKE '411103%'
           AND (SELECT count(*) FROM areas o WHERE o.parent_id = v.id) >= 4
         ORDER BY ST_Area(g.geom) DESC LIMIT 20""")).mappings().all()
    for r in rows:
        margin = (r["x1"] - r["x0"]) * 0.15
        line = [[r["x0"] - margin, r["y"]], [r["x1"] + margin, r["y"]]]
        pieces = conn.execute(text(
            "SELECT ST_NumGeometries(ST_Split(geom, ST_SetSRID(ST_MakeLine(ST_MakePoint(:a, :y), "
            "ST_MakePoint(:b, :y)), 4326))) FROM areas WHERE code = :c"),
            {"a": line[0][0], "b": line[1][0], "y": r["y"], "c": r["code"]}).scalar()
        if pieces == 2:
            return {**r, "line": line}
    raise AssertionError("no demo grid splits in two")


def _bbox(conn, code: str) -> list:
    """An area's [minx, miny, maxx, maxy]."""
    return list(conn.execute(text("SELECT ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) "
                                  "FROM areas WHERE code = :c"), {"c": code}).one())


def _api(base: str, token: str, method: str, path: str, **kwargs):
    """Call the API as a script does (bearer token); the decoded answer of a 200 or 201."""
    r = requests.request(method, f"{base}{path}", headers={"Authorization": f"Bearer {token}"},
                         timeout=60, **kwargs)
    assert r.status_code in (200, 201), (path, r.status_code, r.text)
    return r.json()


def _box(x: float, y: float, size: float = 0.02) -> dict:
    """A square polygon with its south-west corner at (x, y)."""
    ring = [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]
    return {"type": "Polygon", "coordinates": [ring]}


def _plant(engine, base: str, split: dict, names: dict, made: dict) -> Planted:
    """Write every payload where a page will read it; `names` and `made` record what to undo."""
    actor = audit.Actor("test")
    with engine.connect() as conn:
        grid, lon, lat = conn.execute(text("""
            SELECT g.code, ST_X(ST_PointOnSurface(g.geom)), ST_Y(ST_PointOnSurface(g.geom))
              FROM areas g JOIN areas v ON v.id = g.parent_id
             WHERE v.code = :v AND g.level = 4 AND g.code <> :s ORDER BY g.code LIMIT 1"""),
            {"v": split["village"], "s": split["code"]}).one()
        neighbour = conn.execute(text("""
            SELECT o.code FROM areas g JOIN areas o ON o.parent_id = g.parent_id
             WHERE g.code = :g AND o.code NOT IN (:g, :s) AND ST_Intersects(o.geom, g.geom)
             ORDER BY o.code LIMIT 1"""), {"g": grid, "s": split["code"]}).scalar()
    assert neighbour, "the chosen grid has no neighbour to merge with"
    with db.session_scope(engine) as s:
        for code, name in ((split["township"], TOWNSHIP), (split["village"], VILLAGE), (grid, GRID)):
            names[code] = s.execute(text("SELECT name FROM areas WHERE code = :c"), {"c": code}).scalar()
            s.execute(text("UPDATE areas SET name = :n WHERE code = :c"), {"n": name, "c": code})
        made["person"] = s.execute(text("INSERT INTO people (name, phone) VALUES (:n, '0395-1234567') "
                                        "RETURNING id"), {"n": STAFF}).scalar()
        s.execute(text("INSERT INTO area_staff (area_id, person_id, role) "
                       "SELECT id, :p, 'leader' FROM areas WHERE code = :c"), {"p": made["person"], "c": grid})
        scopes = {"admin": None, "dispatcher": "411103", "planner": "411103", "analyst": "411103",
                  "grid_worker": grid}
        accounts = {}
        for role, scope in scopes.items():
            accounts[role] = f"xss_{role}"
            users.add_user(s, actor, accounts[role], role, password=PASSWORD,
                           scopes=[scope] if scope else None, display_name=DISPLAY_NAME, replace=True)
        tokens = {role: users.create_token(s, actor, accounts[role]) for role in ("admin", "analyst")}
    made["users"] = list(accounts.values())
    admin = tokens["admin"]

    # A split whose new grids are named by the request, with a reason.
    change = _api(base, admin, "POST", "/api/changes", json={
        "op": "split", "areas": [split["code"]], "reason": SPLIT_REASON, "names": list(SPLIT_NAMES),
        "geometry": {"type": "MultiLineString", "coordinates": [split["line"]]},
        "base_versions": {split["code"]: split["version"]}})
    made["change"] = change["change_id"]
    # An incident in the grid, an hour old: on the dashboard's layer and in dispatch's last 24 h.
    now = datetime.now(timezone.utc)
    incident = _api(base, admin, "POST", "/api/incidents", json={
        "category": "dispute", "subtype": SUBTYPE, "severity": 2, "description": DESCRIPTION,
        "address": ADDRESS, "reporter": {"name": REPORTER, "phone": "0395-7654321"},
        "occurred_at": (now - timedelta(hours=1)).isoformat(), "lon": lon, "lat": lat, "crs": "wgs84"})
    # The grid set red by hand (so dispatch lists it as unpatrolled) with a reason.
    _api(base, tokens["analyst"], "POST", f"/api/risk/{grid}/override", json={
        "level": "red", "reason": OVERRIDE_REASON, "until": (now + timedelta(days=1)).isoformat()})
    # A new jurisdiction from a boundary file, its names in the file's name field.
    for level, code, name, parent in ((1, IMPORT_CODE, IMPORTED[0], None),
                                      (2, IMPORT_CODE + "01", IMPORTED[1], IMPORT_CODE)):
        feature = {"type": "Feature", "geometry": _box(115.5, 34.5),
                   "properties": {"code": code, "name": name}}
        made["imported"] = True
        _api(base, admin, "POST", "/api/areas/import",
             files={"file": ("xss.geojson", json.dumps({"type": "FeatureCollection", "features": [feature]}))},
             data={"level": str(level), "code_field": "code", "name_field": "name",
                   **({"parent": parent} if parent else {})})

    with engine.connect() as conn:
        split_codes = [r[0] for r in conn.execute(text(
            "SELECT code FROM areas WHERE name = ANY(:n) ORDER BY code"), {"n": list(SPLIT_NAMES)})]
        boxes = {code: _bbox(conn, code) for code in
                 [split["township"], split["village"], grid, IMPORT_CODE + "01", *split_codes]}
        path = conn.execute(text("SELECT path::text FROM areas WHERE code = :c"), {"c": grid}).scalar()
    assert len(split_codes) == 2
    return Planted(engine=engine, base=base, township=split["township"], village=split["village"], grid=grid,
                   neighbour=neighbour, split_codes=split_codes, bbox=boxes, point=(lon, lat),
                   incident=incident["id"], users=accounts, tokens=tokens, path=path)


def _clean(engine, names: dict, made: dict) -> None:
    """Put the shared demo back exactly as it was."""
    with db.session_scope(engine) as s:
        if made.get("change"):
            changes.revert(s, made["change"], reason="test cleanup", actor=audit.Actor("test"),
                           scope=Scope.all())
        s.execute(text("DELETE FROM area_locks"))
        uids = [r[0] for r in s.execute(text("SELECT id FROM users WHERE username = ANY(:u)"),
                                         {"u": made.get("users", [])})]
        s.execute(text("DELETE FROM incidents WHERE created_by = ANY(:u)"), {"u": uids})
        s.execute(text("DELETE FROM risk_levels WHERE override_by = ANY(:u) OR area_id IN "
                       "(SELECT id FROM areas WHERE code = ANY(:c))"), {"u": uids, "c": list(names)})
        if made.get("person"):
            s.execute(text("DELETE FROM people WHERE id = :p"), {"p": made["person"]})
        if made.get("imported"):
            ids = [r[0] for r in s.execute(text("SELECT id FROM areas WHERE code LIKE :c ORDER BY level DESC"),
                                            {"c": IMPORT_CODE + "%"})]
            change_ids = [r[0] for r in s.execute(text(
                "SELECT DISTINCT change_id FROM area_versions WHERE area_id = ANY(:a)"), {"a": ids})]
            s.execute(text("DELETE FROM area_versions WHERE area_id = ANY(:a)"), {"a": ids})
            s.execute(text("DELETE FROM boundary_changes WHERE id = ANY(:c)"), {"c": change_ids})
            for area_id in ids:   # children first
                s.execute(text("DELETE FROM areas WHERE id = :a"), {"a": area_id})
        for code, name in names.items():
            s.execute(text("UPDATE areas SET name = :n WHERE code = :c"), {"n": name, "c": code})
        s.execute(text("DELETE FROM live_events WHERE payload::text LIKE '%\\_\\_xss%' "
                       "OR payload_exact::text LIKE '%\\_\\_xss%'"))
        s.execute(text("DELETE FROM users WHERE id = ANY(:u)"), {"u": uids})
