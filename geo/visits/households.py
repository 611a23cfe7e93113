"""The household registry (户) of each grid: listing through the policy layer, and import from
CSV/XLSX files with Chinese headers.

A household's head, phone and ID number identify a person. The roles that act in a grid (admin,
dispatcher, grid worker — `Audience.exact`) see them; every other reader sees the surname only, the
phone's first three digits and the ID number's region code (its first six digits), and neither the
address nor the point.
"""
from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import areas as areas_mod
from geo import audit
from geo.errors import AnwangError, InvalidInput, NotFound
from geo.incidents import tabular
from geo.policy import Audience, parse_code

# Column → header spellings (after NFKC, lower case, without spaces, _ and -).
HEADERS: dict[str, tuple[str, ...]] = {
    "grid": ("网格编码", "网格代码", "网格", "grid", "gridcode"),
    "number": ("户号", "户编号", "门牌户号", "number", "householdnumber"),
    "head_name": ("户主姓名", "户主", "姓名", "headname", "name"),
    "phone": ("联系电话", "电话", "手机", "手机号", "phone"),
    "id_number": ("身份证号", "身份证号码", "公民身份号码", "idnumber", "id"),
    "members": ("人口数", "家庭人口", "人数", "户内人口", "members"),
    "address": ("地址", "住址", "家庭住址", "address"),
    "lon": ("经度", "lon", "lng", "longitude"),
    "lat": ("纬度", "lat", "latitude"),
    "notes": ("备注", "notes"),
}
ID_NUMBER = re.compile(r"[0-9]{17}[0-9Xx]")
PHONE = re.compile(r"[0-9+\-() ]{3,40}")
MAX_LIST = 5000


def _identity_sql(audience: Audience, alias: str = "h") -> str:
    """The identity columns as this audience may see them."""
    if audience.exact:
        return f"{alias}.head_name, {alias}.phone, {alias}.id_number, {alias}.address"
    return (f"left({alias}.head_name, 1) || '某' AS head_name, "
            f"CASE WHEN {alias}.phone IS NOT NULL THEN left({alias}.phone, 3) || '********' END AS phone, "
            f"CASE WHEN {alias}.id_number IS NOT NULL THEN left({alias}.id_number, 6) || '************' "
            f"END AS id_number, NULL::text AS address")


def listing(session: Session, grid_code, audience: Audience, month: tuple | None = None) -> dict:
    """The households of one grid in the audience's scope, with when each was last visited (and
    whether in `month`, a local [start, end) pair, when given), identity as the audience may see it."""
    grid = audience.scope.area(session, grid_code, field="grid")
    if grid["level"] < 4:
        raise InvalidInput("grid", f"grid must be the code of a grid (level 4 or 5); "
                                   f"{grid['code']} is level {grid['level']}")
    params: dict = {"g": grid["id"], "limit": MAX_LIST,
                    "start": month[0] if month else None, "end": month[1] if month else None}
    rows = session.execute(text(f"""
        SELECT h.id, h.number, {_identity_sql(audience)}, h.members,
               ST_X(h.geom) AS lon, ST_Y(h.geom) AS lat, v.last_visit, v.in_month
          FROM households h
          LEFT JOIN LATERAL (
                SELECT max(occurred_at) AS last_visit,
                       count(*) FILTER (WHERE occurred_at >= CAST(:start AS timestamptz)
                                          AND occurred_at < CAST(:end AS timestamptz)) AS in_month
                  FROM visits WHERE household_id = h.id) v ON true
         WHERE h.grid_id = :g
         ORDER BY h.number LIMIT :limit"""), params).mappings().all()
    total = session.execute(text("SELECT count(*) FROM households WHERE grid_id = :g"),
                            {"g": grid["id"]}).scalar_one()
    return {"grid": {"code": grid["code"], "name": grid["name"]}, "total": total,
            "identity": "exact" if audience.exact else "generalised",
            "households": [{**dict(r), "lon": _round(r["lon"]) if audience.exact else None,
                            "lat": _round(r["lat"]) if audience.exact else None,
                            "last_visit": r["last_visit"].isoformat() if r["last_visit"] else None,
                            "visited_this_month": bool(r["in_month"]) if month else None}
                           for r in rows]}


def _round(value):
    return None if value is None else round(float(value), 7)


def household_row(session: Session, value, audience: Audience, field: str = "household_id") -> dict:
    """A household the audience may act on (its grid in their scope), or NotFound/Forbidden."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidInput(field, f"{field} must be a household id (a whole number); got {value!r}")
    try:
        key = int(value)
    except ValueError:
        raise InvalidInput(field, f"{field} must be a household id (a whole number); got {value!r}") \
            from None
    row = session.execute(text("""
        SELECT h.id, h.number, h.grid_id, g.code AS grid_code, ST_X(h.geom) AS lon, ST_Y(h.geom) AS lat
          FROM households h JOIN areas g ON g.id = h.grid_id WHERE h.id = :id"""),
        {"id": key}).mappings().first()
    if row is None:
        raise NotFound(f"no household {key}", field=field)
    audience.scope.area(session, row["grid_code"], field=field)
    return dict(row)


# -- import ----------------------------------------------------------------------------------------
@dataclass
class ImportReport:
    """What an import did: rows written (new or updated) and the rows refused, with their reasons."""

    inserted: int = 0
    updated: int = 0
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # line, field, message


def _key(header: str) -> str:
    return re.sub(r"[\s_\-]", "", unicodedata.normalize("NFKC", header)).lower()


def _columns(headers: list[str]) -> dict[str, str]:
    keyed = {_key(h): h for h in headers}
    found = {}
    for column, spellings in HEADERS.items():
        for spelling in spellings:
            if _key(spelling) in keyed:
                found[column] = keyed[_key(spelling)]
                break
    missing = [c for c in ("grid", "number") if c not in found]
    if missing:
        wanted = "; ".join(f"{c}: {' / '.join(HEADERS[c][:2])}" for c in missing)
        raise InvalidInput("headers", f"the file needs the columns {wanted}; it has {', '.join(headers)}")
    return found


def _clean(line: int, raw: dict, columns: dict[str, str]) -> dict:
    """One row as household fields, or InvalidInput naming the column."""
    def get(column: str) -> str | None:
        value = raw.get(columns[column]) if column in columns else None
        value = "" if value is None else str(value).strip()
        return value or None

    row: dict[str, Any] = {"grid": parse_code(get("grid"), "grid"), "number": get("number"),
           "head_name": get("head_name"), "phone": get("phone"), "id_number": get("id_number"),
           "address": get("address"), "notes": get("notes"), "lon": None, "lat": None}
    if row["number"] is None:
        raise InvalidInput("number", "户号 (household number) is empty")
    if row["id_number"] and not ID_NUMBER.fullmatch(row["id_number"]):
        raise InvalidInput("id_number", f"身份证号 must be 18 characters (17 digits and a digit or X); "
                                        f"got {row['id_number']!r}")
    if row["phone"] and not PHONE.fullmatch(row["phone"]):
        raise InvalidInput("phone", f"联系电话 must be digits; got {row['phone']!r}")
    members = get("members")
    try:
        row["members"] = int(float(members)) if members else 1
    except ValueError:
        raise InvalidInput("members", f"人口数 must be a whole number; got {members!r}") from None
    if not 1 <= row["members"] <= 99:
        raise InvalidInput("members", f"人口数 must be from 1 to 99; got {members!r}")
    if get("lon") or get("lat"):
        row["lon"], row["lat"], _ = areas_mod.parse_point(get("lon"), get("lat"), "wgs84")
    return row


def import_file(session: Session, actor: audit.Actor, path: str | Path, audience: Audience) -> ImportReport:
    """Import households from a CSV or XLSX file, all or nothing: a household is new or, with the
    same grid and number, updated. Every refused row is reported; with any, nothing is written."""
    headers, rows = tabular.read(path)
    columns = _columns(headers)
    report = ImportReport()
    clean: list[dict] = []
    grids: dict[str, int] = {}
    for line, raw in rows:
        try:
            row = _clean(line, raw, columns)
            if row["grid"] not in grids:
                area = audience.scope.area(session, row["grid"], field="grid")
                if area["level"] < 4:
                    raise InvalidInput("grid", f"{area['code']} is not a grid (level {area['level']})")
                grids[row["grid"]] = area["id"]
            clean.append({**row, "grid_id": grids[row["grid"]], "line": line})
        except InvalidInput as exc:
            report.errors.append((line, exc.field or "", exc.message))
        except AnwangError as exc:  # the grid is unknown or outside the scope
            report.errors.append((line, exc.field or "grid", exc.message))
    if report.errors or not clean:
        if not clean and not report.errors:
            report.errors.append((1, "path", "the file has no households"))
        return report
    written = session.execute(text("""
        INSERT INTO households (grid_id, number, head_name, phone, id_number, members, address, geom,
                                notes)
        SELECT r.grid_id, r.number, r.head_name, r.phone, r.id_number, r.members, r.address,
               CASE WHEN r.lon IS NOT NULL THEN ST_SetSRID(ST_MakePoint(r.lon, r.lat), 4326) END,
               r.notes
          FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(grid_id int, number text, head_name text,
               phone text, id_number text, members smallint, address text, lon float8, lat float8,
               notes text)
        ON CONFLICT (grid_id, number) DO UPDATE
           SET head_name = EXCLUDED.head_name, phone = EXCLUDED.phone, id_number = EXCLUDED.id_number,
               members = EXCLUDED.members, address = EXCLUDED.address,
               geom = COALESCE(EXCLUDED.geom, households.geom), notes = EXCLUDED.notes
        RETURNING (xmax = 0) AS inserted"""),
        {"rows": json.dumps(clean, ensure_ascii=False)}).scalars().all()
    report.inserted = sum(1 for w in written if w)
    report.updated = len(written) - report.inserted
    audit.record(session, actor, "households.import", target_type="households", target_id=str(path),
                 details={"inserted": report.inserted, "updated": report.updated,
                          "grids": sorted(grids)})
    return report
