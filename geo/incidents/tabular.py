"""Incident files (CSV and XLSX): header recognition, per-row validation, all-or-nothing import.

Headers are recognised in Chinese and English without a mapping (地址/address, 经度/lon, 发生时间/
date …); `mapping` names the column for a field explicitly. Every row goes through the same
validation and location as the API (`incidents.validate` and `incidents.locate`), with the
gazetteer held in memory and the jurisdiction check done for all points in one query. Every
rejected row is reported with its line and reason. Without `skip_bad` one bad row refuses the whole
file and nothing is written; with it the good rows are imported and the bad ones listed. `dry_run`
does all the work inside a savepoint and rolls it back, so its report is exactly what an import
would do.
"""
from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import audit
from geo.errors import AnwangError, InvalidInput
from geo.incidents import fields, geocoding, intake

# Field → header spellings, most specific first; matched after NFKC, lower case, no spaces/_/-.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "external_id": ("externalid", "id", "编号", "事件编号", "案件编号", "工单号", "工单编号", "单号",
                    "序号", "casenumber", "caseid", "incidentid"),
    "occurred_at": ("occurredat", "发生时间", "事发时间", "案发时间", "时间", "日期", "发生日期",
                    "datetime", "date", "time", "occurred", "timestamp"),
    "category": ("category", "类别", "事件类别", "事件类型", "类型", "分类", "案件类别", "primarytype",
                 "type"),
    "subtype": ("subtype", "子类", "细类", "小类", "事件子类", "二级分类"),
    "severity": ("severity", "等级", "严重程度", "级别", "紧急程度", "priority"),
    "lon": ("lon", "lng", "long", "longitude", "经度", "x"),
    "lat": ("lat", "latitude", "纬度", "y"),
    "address": ("address", "地址", "事发地址", "详细地址", "发生地点", "事发地点", "地点", "位置"),
    "description": ("description", "描述", "事件描述", "内容", "事件内容", "简要情况", "情况描述",
                    "诉求内容", "details", "summary"),
    "reporter_name": ("reportername", "reporter", "报告人", "反映人", "上报人", "报警人", "姓名",
                      "联系人"),
    "reporter_phone": ("reporterphone", "phone", "telephone", "电话", "联系电话", "手机", "手机号"),
    "sensitive": ("sensitive", "敏感", "是否敏感"),
    "source": ("source", "来源", "渠道", "来源渠道", "channel"),
}
FIELDS = tuple(FIELD_ALIASES)
# Tried in order when no --time-format is given (ISO 8601 is tried first of all).
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M",
                "%Y-%m-%d", "%Y/%m/%d", "%Y年%m月%d日 %H:%M:%S", "%Y年%m月%d日 %H:%M",
                "%Y年%m月%d日%H时%M分", "%Y年%m月%d日 %H时%M分", "%Y年%m月%d日",
                "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%Y%m%d%H%M%S")
MAX_EXTRA_COLUMNS = 30
MAX_ROWS = 1_000_000


def header_key(name: str) -> str:
    return re.sub(r"[\s_\-./()（）]", "", unicodedata.normalize("NFKC", str(name or "")).lower())


def recognise(headers: list[str], mapping: dict[str, str] | None = None) -> dict[str, str]:
    """Field → column: explicit mapping first, then recognised headers; raise for a bad mapping."""
    out: dict[str, str] = {}
    mapping = mapping or {}
    for fld, column in mapping.items():
        if fld not in FIELD_ALIASES:
            raise InvalidInput("map", f"unknown field {fld!r} in --map; fields: {', '.join(FIELDS)}")
        if column not in headers:
            raise InvalidInput("map", f"--map {fld}={column}: the file has no column {column!r}; "
                                      f"its columns: {', '.join(headers)}")
        out[fld] = column
    keys = {h: header_key(h) for h in headers}
    used = set(out.values())
    for fld, aliases in FIELD_ALIASES.items():
        if fld in out:
            continue
        for alias in aliases:
            hit = next((h for h in headers if keys[h] == alias and h not in used), None)
            if hit:
                out[fld] = hit
                used.add(hit)
                break
    return out


def read(path: str | Path) -> tuple[list[str], Iterator[tuple[int, dict]]]:
    """Headers and (line, row) pairs of a CSV (UTF-8 with or without BOM, or GB18030) or XLSX file."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput("path", f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(path)
    if suffix in (".csv", ".txt", ".tsv"):
        return _read_csv(path)
    raise InvalidInput("path", f"expected a .csv or .xlsx file; got {path.name!r}")


def _read_csv(path: Path):
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            content = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise InvalidInput("path", f"{path.name}: not UTF-8 or GB18030 text")
    sample = content[:4096]
    delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    try:
        headers = [h.strip() for h in next(reader)]
    except StopIteration:
        raise InvalidInput("path", f"{path.name} is empty") from None

    def rows():
        line = reader.line_num
        for values in reader:
            start, line = line + 1, reader.line_num
            if not any(v.strip() for v in values):
                continue
            yield start, {h: (values[i] if i < len(values) else "") for i, h in enumerate(headers)}

    return headers, rows()


def _read_xlsx(path: Path):
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several kinds for a damaged file
        raise InvalidInput("path", f"{path.name}: not a readable XLSX workbook ({exc.__class__.__name__})") \
            from None
    sheet = book.worksheets[0]
    it = sheet.iter_rows(values_only=True)
    try:
        first = next(it)
    except StopIteration:
        raise InvalidInput("path", f"{path.name}: the first sheet is empty") from None
    headers = [str(h).strip() if h is not None else f"column{i + 1}" for i, h in enumerate(first)]

    def rows():
        for n, values in enumerate(it, start=2):
            if not any(v not in (None, "") for v in values):
                continue
            yield n, {h: values[i] if i < len(values) else None for i, h in enumerate(headers)}
        book.close()

    return headers, rows()


@dataclass
class Report:
    """What an import did (or, dry, would do)."""

    path: str
    rows: int = 0
    imported: int = 0
    rejected: list[dict] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    outside_jurisdiction: int = 0
    geocode_levels: dict[str, int] = field(default_factory=dict)
    warnings: list[dict] = field(default_factory=list)
    dry_run: bool = False
    written: bool = False
    ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"path": self.path, "rows": self.rows, "imported": self.imported,
                "rejected": self.rejected, "columns": self.columns,
                "ignored_columns": self.ignored_columns,
                "outside_jurisdiction": self.outside_jurisdiction,
                "geocode_levels": self.geocode_levels, "warnings": self.warnings,
                "dry_run": self.dry_run, "written": self.written}


def _cell(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip() or None


def _time(value, fmt: str | None, tz: str | None) -> datetime:
    if isinstance(value, datetime):
        return fields.parse_time(value, tz=tz)
    raw = _cell(value)
    if fmt or raw is None:
        return fields.parse_time(raw, fmt=fmt, tz=tz)
    try:
        return fields.parse_time(raw, tz=tz)
    except InvalidInput:
        pass
    for candidate in TIME_FORMATS:
        try:
            return fields.parse_time(raw, fmt=candidate, tz=tz)
        except InvalidInput:
            continue
    raise InvalidInput("occurred_at", f"occurred_at {raw!r} is no known date/time; "
                                      "give --time-format, e.g. '%Y-%m-%d %H:%M'")


def import_file(session: Session, actor: audit.Actor, path: str | Path, *,
                mapping: dict[str, str] | None = None, category: str | None = None,
                crs: str | None = None, time_format: str | None = None, tz: str | None = None,
                source: str | None = None, skip_bad: bool = False,
                dry_run: bool = False) -> Report:
    """Import incidents from a CSV or XLSX file (see the module docstring); return the report."""
    path = Path(path)
    if category is not None:
        category = fields.parse_category(category)
    if crs is not None:
        from geo import areas as areas_mod
        areas_mod.parse_point(0, 0, crs)  # an unknown crs is refused before any row is read
    fields.timezone_of(tz)
    headers, rows = read(path)
    columns = recognise(headers, mapping)
    _require_columns(columns, headers, category)
    report = Report(path=str(path), columns=columns, dry_run=dry_run,
                    ignored_columns=[h for h in headers if h not in columns.values()])
    source = source or f"import:{path.name}"
    options = {"category": category, "crs": crs, "source": source, "time_format": time_format, "tz": tz}
    cleaned = _clean_rows(rows, columns, report, options)
    prepared = _prepare(session, cleaned, columns, report, path.name)
    if report.rejected and not skip_bad:
        return report  # refused: nothing written
    savepoint = session.begin_nested() if dry_run else None
    try:
        _write(session, actor, prepared, report, path.name, source)
    finally:
        if savepoint is not None:
            savepoint.rollback()
    report.written = not dry_run and report.imported > 0
    return report


def _require_columns(columns: dict[str, str], headers: list[str], category: str | None) -> None:
    if "occurred_at" not in columns:
        raise InvalidInput("map", f"no column for occurred_at (发生时间/date); columns: {', '.join(headers)}"
                                  " — use --map occurred_at=COLUMN")
    if not ({"lon", "lat"} <= set(columns) or "address" in columns):
        raise InvalidInput("map", "no location columns: need lon and lat (经度/纬度) or address (地址); "
                                  f"columns: {', '.join(headers)} — use --map lon=COLUMN lat=COLUMN")
    if "category" not in columns and category is None:
        raise InvalidInput("map", "no category column (类别/category): give --category for the whole file")


def _clean_rows(rows, columns: dict[str, str], report: Report,
                options: dict[str, Any]) -> list[tuple[int, dict, dict]]:
    """Validate each row on its own; a bad row becomes a rejection naming its line and field."""
    category = options["category"]
    cleaned: list[tuple[int, dict, dict]] = []
    seen: dict[str, int] = {}
    now = datetime.now().astimezone()
    for line, row in rows:
        report.rows += 1
        if report.rows > MAX_ROWS:
            raise InvalidInput("path", f"more than {MAX_ROWS:,} rows: split the file")
        values: dict[str, Any] = {f: _cell(row.get(c)) for f, c in columns.items() if f != "occurred_at"}
        if category is not None:
            # The file's own categories are foreign (Chicago's Primary Type): they become the subtype.
            if values.get("category") and not values.get("subtype"):
                values["subtype"] = values["category"]
            values["category"] = category
        values["crs"] = options["crs"]
        values["source"] = values.get("source") or options["source"]
        try:
            values["occurred_at"] = _time(row.get(columns["occurred_at"]), options["time_format"], options["tz"])
            clean = intake.validate(values, now=now, tz=options["tz"])
            key = clean["external_id"]
            if key is not None:
                if key in seen:
                    raise InvalidInput("external_id", f"external_id {key!r} repeats line {seen[key]}")
                seen[key] = line
        except AnwangError as exc:
            report.rejected.append({"line": line, "field": exc.field, "reason": exc.message})
            continue
        extra = {h: _cell(row.get(h)) for h in report.ignored_columns[:MAX_EXTRA_COLUMNS]}
        cleaned.append((line, clean, {k: v[:200] for k, v in extra.items() if v}))
    return cleaned


def _prepare(session: Session, cleaned: list[tuple[int, dict, dict]], columns: dict[str, str],
             report: Report, file_name: str) -> list[intake.Prepared]:
    """Locate the clean rows (one containment query for all points); refuse rows imported before."""
    existing = _existing(session, [(c["source"], c["external_id"]) for _, c, _ in cleaned])
    gazetteer = geocoding.gazetteer(session) if "address" in columns else None
    points = [(c["lon"], c["lat"]) for _, c, _ in cleaned if c["lon"] is not None]
    inside = iter(intake.contains(session, points))
    prepared: list[intake.Prepared] = []
    for line, clean, extra in cleaned:
        answer = next(inside) if clean["lon"] is not None else None
        key = (clean["source"], clean["external_id"])
        try:
            if key in existing:
                raise InvalidInput("external_id", f"external_id {clean['external_id']!r} was already "
                                                  f"imported as incident {existing[key]}")
            p = intake.locate(session, clean, gazetteer=gazetteer, inside=answer)
        except AnwangError as exc:
            report.rejected.append({"line": line, "field": exc.field, "reason": exc.message})
            continue
        p.attrs = {**p.attrs, "import": {"file": file_name, "line": line}, **({"row": extra} if extra else {})}
        report.warnings.extend({"line": line, "warning": w} for w in p.warnings)
        prepared.append(p)
    report.rejected.sort(key=lambda r: r["line"])
    for p in prepared:
        report.geocode_levels[p.geocode_level] = report.geocode_levels.get(p.geocode_level, 0) + 1
        report.outside_jurisdiction += p.outside
    return prepared


def _write(session: Session, actor: audit.Actor, prepared: list[intake.Prepared], report: Report,
           file_name: str, source: str) -> None:
    ids = intake.insert(session, actor, prepared, note=f"imported from {file_name}", audit_each=False)
    report.imported = len(ids)
    report.ids = ids
    report.outside_jurisdiction = session.execute(text(
        "SELECT count(*) FROM incidents WHERE id = ANY(:ids) AND outside_jurisdiction"),
        {"ids": ids}).scalar_one() if ids else 0
    audit.record(session, actor, "incidents.import", target_type="file", target_id=file_name,
                 details={"rows": report.rows, "imported": report.imported,
                          "rejected": len(report.rejected), "source": source,
                          "first_id": ids[0] if ids else None, "last_id": ids[-1] if ids else None})


def _existing(session: Session, keys: list[tuple[str | None, str | None]]) -> dict:
    pairs = [(s, e) for s, e in keys if e is not None]
    if not pairs:
        return {}
    rows = session.execute(text("""
        SELECT i.source, i.external_id, i.id FROM incidents i
          JOIN unnest(CAST(:sources AS text[]), CAST(:ids AS text[])) AS k(source, external_id)
            ON i.external_id = k.external_id AND i.source IS NOT DISTINCT FROM k.source"""),
        {"sources": [s for s, _ in pairs], "ids": [e for _, e in pairs]}).all()
    return {(r.source, r.external_id): r.id for r in rows}


def parse_mapping(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Read --map FIELD=COLUMN options."""
    out = {}
    for item in items or ():
        fld, sep, column = item.partition("=")
        if not sep or not fld.strip() or not column.strip():
            raise InvalidInput("map", f"--map expects FIELD=COLUMN; got {item!r}")
        out[fld.strip()] = column.strip()
    return out
