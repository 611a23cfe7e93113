"""An incident's fields parsed at the edge: times (with their zone), category, severity, flags
and bounded text — each failure an InvalidInput naming the field and what was expected."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from geo.errors import InvalidInput
from geo.inputs import check_text
from geo.vocabulary import CATEGORIES, CATEGORY_BY_NAME, CATEGORY_ZH, SEVERITY_BY_NAME

DEFAULT_TIMEZONE = "Asia/Shanghai"

MAX_TEXT = {"description": 4000, "subtype": 100, "reporter_name": 100, "reporter_phone": 40,
            "address": 300, "external_id": 100, "source": 60}


def timezone_of(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("timezone", f"timezone must be an IANA name like Asia/Shanghai; got {name!r}") \
            from None


def parse_time(value, field_name: str = "occurred_at", *, fmt: str | None = None,
               tz: str | None = None) -> datetime:
    """Parse an ISO 8601 time (or `fmt`); a time without offset is local time in `tz`."""
    if isinstance(value, datetime):
        moment = value
    else:
        raw = "" if value is None else str(value).strip()
        if not raw:
            raise InvalidInput(field_name, f"{field_name} is required (ISO 8601, e.g. 2026-10-01T08:30:00+08:00)")
        try:
            moment = datetime.strptime(raw, fmt) if fmt else datetime.fromisoformat(
                raw.replace("Z", "+00:00"))
        except ValueError:
            expected = f"format {fmt!r}" if fmt else "ISO 8601, e.g. 2026-10-01T08:30:00+08:00"
            raise InvalidInput(field_name, f"{field_name} must be {expected}; got {raw!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone_of(tz))
    return moment


def bounded_text(data: dict, name: str, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(name, f"{name} is required")
        return None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise InvalidInput(name, f"{name} must be text; got {type(value).__name__}")
    value = check_text(str(value).strip(), name)
    limit = MAX_TEXT.get(name, 1000)
    if len(value) > limit:
        raise InvalidInput(name, f"{name} must be at most {limit} characters; got {len(value)}")
    return value


def parse_category(value) -> str:
    """Accept a category by key (dispute) or Chinese name (矛盾纠纷)."""
    key = str(value).strip().lower() if value is not None else ""
    if key in CATEGORY_BY_NAME:
        return CATEGORY_BY_NAME[key]
    choices = ", ".join(f"{c} ({CATEGORY_ZH[c]})" for c in CATEGORIES)
    if not key:
        raise InvalidInput("category", f"category is required: one of {choices}")
    raise InvalidInput("category", f"category must be one of {choices}; got {value!r}")


def parse_severity(value) -> int:
    """Accept 1–4 (or 一般/较大/重大/特别重大, low/medium/high/critical); default 1."""
    if value is None or value == "":
        return 1
    if isinstance(value, bool):
        raise InvalidInput("severity", f"severity must be 1–4; got {value!r}")
    key = str(value).strip().lower()
    if key in SEVERITY_BY_NAME:
        return SEVERITY_BY_NAME[key]
    try:
        number = float(key)
    except ValueError:
        number = float("nan")
    if number in (1, 2, 3, 4):
        return int(number)
    raise InvalidInput("severity", f"severity must be 1–4 (or 一般/较大/重大/特别重大); got {value!r}")


def parse_bool(value, name: str) -> bool:
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    key = str(value).strip().lower()
    if key in ("1", "true", "yes", "y", "是", "敏感"):
        return True
    if key in ("0", "false", "no", "n", "否"):
        return False
    raise InvalidInput(name, f"{name} must be true or false; got {value!r}")
