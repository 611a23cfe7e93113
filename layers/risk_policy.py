"""The four-colour policy (layers/risk_policy.yaml) and the level it computes for a grid at one
moment: the recency-weighted score of its incidents against thresholds, raised by floors such as
"an open red-class dispute keeps the grid at least orange", each with its reasons.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

import yaml
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import InvalidInput
from geo.vocabulary import CATEGORIES, RESOLVED_STATUSES, RISK_COLOUR_ZH, RISK_COLOURS

from .selection import TZ

LEVELS = RISK_COLOURS
RANK = {level: i for i, level in enumerate(LEVELS)}
LEVEL_ZH = RISK_COLOUR_ZH
POLICY_FILE = Path(__file__).with_name("risk_policy.yaml")
PERIOD_ANCHOR = date(2000, 1, 3)  # a Monday: weekly periods start on Mondays
MAX_OVERRIDE_DAYS = 90
TOP_INCIDENTS = 5


@dataclass(frozen=True)
class Floor:
    """A rule keeping a grid at least at `level` while matching incidents exist."""

    id: str
    level: str
    categories: tuple[str, ...]
    min_severity: int
    open: bool
    within_days: float | None
    zh: str
    en: str


@dataclass(frozen=True)
class Policy:
    """The four-colour policy: weights, recency, thresholds, floors and hysteresis."""

    period_days: int
    window_days: float
    half_life_days: float
    open_factor: float
    weights: dict
    severity: dict
    thresholds: dict
    floors: tuple[Floor, ...]
    quiet_periods: int
    require_follow_up: bool
    downgrade_steps: int
    source: str = ""


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and check a policy file (the packaged default when `path` is None)."""
    path = Path(path) if path else POLICY_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput("policy", f"policy file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise InvalidInput("policy", f"policy file {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidInput("policy", f"policy file {path} must be a mapping")
    try:
        weights = {c: float(raw["weights"][c]) for c in CATEGORIES}
        severity = {int(k): float(v) for k, v in raw["severity"].items()}
        thresholds = {k: float(raw["thresholds"][k]) for k in ("yellow", "orange", "red")}
        hyst = raw.get("hysteresis") or {}
        floors = tuple(_floor(f) for f in raw.get("floors") or [])
        policy = Policy(int(raw.get("period_days", 7)), float(raw["window_days"]),
                        float(raw["half_life_days"]), float(raw.get("open_factor", 1.0)), weights,
                        severity, thresholds, floors, int(hyst.get("quiet_periods", 2)),
                        bool(hyst.get("require_follow_up", True)), int(hyst.get("downgrade_steps", 1)),
                        str(path))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput("policy", f"policy file {path} is incomplete or malformed: {exc!r}") from None
    if not thresholds["yellow"] <= thresholds["orange"] <= thresholds["red"]:
        raise InvalidInput("policy", "thresholds must rise: yellow ≤ orange ≤ red")
    if set(severity) != {1, 2, 3, 4} or policy.period_days < 1 or policy.half_life_days <= 0:
        raise InvalidInput("policy", "severity needs factors for 1–4; period and half-life must be positive")
    return policy


def _floor(raw: dict) -> Floor:
    cats = tuple(raw.get("categories") or CATEGORIES)
    if raw["level"] not in LEVELS or not set(cats) <= set(CATEGORIES):
        raise ValueError(f"floor {raw.get('id')}: unknown level or category")
    return Floor(str(raw["id"]), raw["level"], cats, int(raw.get("min_severity", 1)),
                 bool(raw.get("open", False)), raw.get("within_days"), str(raw.get("zh", raw["id"])),
                 str(raw.get("en", raw["id"])))


def period_of(moment: datetime, policy: Policy) -> tuple[date, date]:
    """The period (first and last local day) containing `moment`."""
    day = moment.astimezone(TZ).date()
    start = PERIOD_ANCHOR + timedelta(days=((day - PERIOD_ANCHOR).days // policy.period_days)
                                      * policy.period_days)
    return start, start + timedelta(days=policy.period_days - 1)


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), TZ)


def level_for(score: float, policy: Policy) -> str:
    """Map a score to a colour by the policy's thresholds."""
    for level in ("red", "orange", "yellow"):
        if score >= policy.thresholds[level]:
            return level
    return "blue"


def higher(a: str, b: str) -> str:
    """Return the higher of two colours."""
    return a if RANK[a] >= RANK[b] else b


# -- assessment: the computed level at one moment ----------------------------------------------
@dataclass
class Assessment:
    """What the policy says about one grid at one moment, before hysteresis."""

    grid_id: int
    score: float = 0.0
    count: int = 0
    contributions: list = field(default_factory=list)   # (weight, incident dict)
    floors: list = field(default_factory=list)           # (Floor, [incident ids])

    def score_level(self, policy: Policy) -> str:
        return level_for(self.score, policy)

    def level(self, policy: Policy) -> str:
        level = self.score_level(policy)
        for floor, _ in self.floors:
            level = higher(level, floor.level)
        return level

    def reasons(self, policy: Policy) -> list[dict]:
        """The score and floor reasons, each with the incidents behind it (in zh and en)."""
        t = policy.thresholds
        top = sorted(self.contributions, key=lambda c: -c[0])[:TOP_INCIDENTS]
        lvl = self.score_level(policy)
        out = [{
            "rule": "score", "level": lvl, "score": round(self.score, 2), "count": self.count,
            "thresholds": t,
            "incidents": [{**inc, "weight": round(w, 2)} for w, inc in top],
            "zh": f"近{policy.window_days:g}天{self.count}起事件加权得分{self.score:.1f}"
                  f"（黄≥{t['yellow']:g}、橙≥{t['orange']:g}、红≥{t['red']:g}），对应{LEVEL_ZH[lvl]}",
            "en": f"{self.count} incidents in the last {policy.window_days:g} days score "
                  f"{self.score:.1f} (yellow ≥ {t['yellow']:g}, orange ≥ {t['orange']:g}, "
                  f"red ≥ {t['red']:g}): {lvl}"}]
        for floor, ids in self.floors:
            shown = "、".join(f"#{i}" for i in ids[:TOP_INCIDENTS])
            out.append({"rule": "floor", "id": floor.id, "level": floor.level, "incidents": ids,
                        "zh": f"{floor.zh}（{shown}）",
                        "en": f"{floor.en} (#{', #'.join(map(str, ids[:TOP_INCIDENTS]))})"})
        return out


def assess(session: Session, policy: Policy, as_of: datetime, grid_ids: list[int]) -> dict[int, Assessment]:
    """Score every grid's incidents that occurred before `as_of` and apply the floors."""
    result = {g: Assessment(g) for g in grid_ids}
    if not grid_ids:
        return result
    window_start = as_of - timedelta(days=policy.window_days)
    # incidents_grid_idx (grid_id, occurred_at) serves the grid filter and the time bound.
    rows = session.execute(text("""
        SELECT i.id, i.grid_id, i.category, i.severity, i.status, i.occurred_at,
               COALESCE(i.resolved_at, i.closed_at) AS done_at
          FROM incidents i
         WHERE i.grid_id = ANY(:grids) AND i.occurred_at < :as_of
           AND (i.occurred_at >= :window_start
                OR COALESCE(i.resolved_at, i.closed_at) >= :as_of
                OR (COALESCE(i.resolved_at, i.closed_at) IS NULL AND NOT (i.status = ANY(:done))))
         ORDER BY i.id"""),
        {"grids": list(grid_ids), "as_of": as_of, "window_start": window_start,
         "done": list(RESOLVED_STATUSES)}).mappings().all()
    decay = math.log(2) / policy.half_life_days
    floor_hits: dict[tuple[int, str], list[int]] = {}
    for r in rows:
        a = result[r["grid_id"]]
        done_at = r["done_at"]
        is_open = (done_at is None and r["status"] not in RESOLVED_STATUSES) or \
            (done_at is not None and done_at >= as_of)
        age = (as_of - r["occurred_at"]).total_seconds() / 86400.0
        if r["occurred_at"] >= window_start:
            weight = policy.weights[r["category"]] * policy.severity[int(r["severity"])] * \
                math.exp(-decay * age) * (policy.open_factor if is_open else 1.0)
            a.score += weight
            a.count += 1
            a.contributions.append((weight, {
                "id": r["id"], "category": r["category"], "severity": int(r["severity"]),
                "open": is_open, "occurred_at": r["occurred_at"].astimezone(TZ).isoformat()}))
        for floor in policy.floors:
            if (r["category"] in floor.categories and r["severity"] >= floor.min_severity
                    and (is_open or not floor.open)
                    and (floor.within_days is None or age <= floor.within_days)):
                floor_hits.setdefault((r["grid_id"], floor.id), []).append(r["id"])
    by_id = {f.id: f for f in policy.floors}
    for (grid_id, floor_id), ids in floor_hits.items():
        result[grid_id].floors.append((by_id[floor_id], ids))
    for a in result.values():
        a.floors.sort(key=lambda f: -RANK[f[0].level])
    return result
