"""Four-colour risk (四色预警 蓝黄橙红) per grid: score, floors, hysteresis, overrides, history, alerts.

A grid's computed level comes from a policy (layers/risk_policy.yaml): the recency-weighted score of
its incidents against thresholds, raised by floors such as "an open red-class dispute keeps the grid
at least orange". The stored level then follows the hysteresis the campaign manages by: it goes up
at once; it comes down only after quiet periods and a logged 回访 (follow-up visit), one step at a
time. Every level carries its reasons (which incidents, which rules). An authorised user may
override a level with a reason and an expiry. One row per grid and period in `risk_levels` is the
history; a turn to orange or red is announced to dispatch with NOTIFY in the same transaction.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import areas, audit
from geo.errors import InvalidInput, NotFound
from layers.risk_policy import (
    LEVEL_ZH,
    LEVELS,
    MAX_OVERRIDE_DAYS,
    RANK,
    Policy,
    assess,
    load_policy,
    midnight,
    period_of,
)

from .selection import TZ


# -- update: hysteresis, storage, audit and alerts ----------------------------------------------
@dataclass
class UpdateReport:
    """What one `update` did: the period, levels per colour, changes and alerts sent."""

    period_start: date
    period_end: date
    grids: int = 0
    levels: dict = field(default_factory=lambda: {level: 0 for level in LEVELS})
    changes: list = field(default_factory=list)   # (code, from, to)
    alerts: list = field(default_factory=list)    # NOTIFY payloads sent

    def as_dict(self) -> dict:
        return {"period_start": self.period_start.isoformat(), "period_end": self.period_end.isoformat(),
                "grids": self.grids, "levels": self.levels,
                "changes": [{"code": c, "from": a, "to": b} for c, a, b in self.changes],
                "alerts": len(self.alerts)}


def _grids(session: Session, area: str | None) -> Sequence:
    if area:
        root = areas.area_row(session, area)
        return session.execute(text(
            "SELECT id, code, name, path::text AS path FROM areas WHERE level = 4 "
            "AND path <@ CAST(:p AS ltree) ORDER BY code"), {"p": root["path"]}).all()
    return session.execute(text("SELECT id, code, name, path::text AS path FROM areas WHERE level = 4 "
                                "ORDER BY code")).all()


def effective(row, now: datetime) -> str | None:
    """The level in force of a stored row, if there is one."""
    return None if row is None else in_force(row, now)


def in_force(row, now: datetime) -> str:
    """The level in force: an unexpired override, else the stored level."""
    if row["override_level"] and row["override_until"] and row["override_until"] > now:
        return row["override_level"]
    return row["level"]


def update(session: Session, actor: audit.Actor, *, as_of: datetime | None = None,
           area: str | None = None, policy: Policy | None = None, now: datetime | None = None,
           notify: bool = True, audit_changes: bool = True) -> UpdateReport:
    """Assess every grid (under `area`) as of `as_of` and store the period's level with its reasons."""
    # `now` decides which overrides are in force (the wall clock by default, also the default
    # `as_of`). Nothing is committed here; the caller owns the transaction.
    policy = policy or load_policy()
    now = now or datetime.now(TZ)
    as_of = as_of or now
    start, end = period_of(as_of, policy)
    grids = _grids(session, area)
    ids = [g.id for g in grids]
    report = UpdateReport(start, end, len(grids))
    if not grids:
        return report
    current = assess(session, policy, as_of, ids)
    # The computed level at the close of each of the last N whole periods, for the quiet check.
    past = [(start - timedelta(days=k * policy.period_days),
             assess(session, policy, midnight(start - timedelta(days=(k - 1) * policy.period_days)), ids))
            for k in range(1, policy.quiet_periods + 1)]
    rows = _stored(session, ids, start)
    follow_ups = _follow_ups(session, ids, as_of)
    writes: list[dict] = []
    for g in grids:
        a = current[g.id]
        computed = a.level(policy)
        last, cur = rows["last"].get(g.id), rows["cur"].get(g.id)
        held_since = rows["held_since"].get(g.id)
        # Quiet periods count only whole periods after the one in which the level was reached.
        quiet_levels = [assessed[g.id].level(policy) for p_start, assessed in past
                        if held_since is not None and p_start > held_since]
        level, decision = _decide(policy, last["level"] if last else None, computed, quiet_levels,
                                  held_since, follow_ups.get(g.id))
        reasons = a.reasons(policy) + [decision]
        before = effective(last, now)
        # This period's row keeps its override; a new period's row inherits one still in force.
        source = cur if cur is not None else (
            last if last is not None and last["override_until"] and last["override_until"] > now else None)
        override = {k: source[k] if source else None
                    for k in ("override_level", "override_by", "override_reason", "override_until")}
        writes.append({"a": g.id, "s": start, "e": end, "score": round(a.score, 4), "level": level,
                       "reasons": json.dumps(reasons, ensure_ascii=False), **override})
        after = in_force({"level": level, **override}, now)
        report.levels[after] += 1
        if before is not None and before != after:
            report.changes.append((g.code, before, after))
            if audit_changes:
                audit.record(session, actor, "risk.level", target_type="grid", target_id=g.code,
                             area_code=g.code, details={"from": before, "to": after,
                                                        "score": round(a.score, 2),
                                                        "period": start.isoformat(),
                                                        "why": decision["en"]})
        if notify and before is not None and RANK[after] > RANK[before] and after in ("orange", "red"):
            report.alerts.append(_notify(session, g, before, after, a.score, start, reasons, "update"))
    _store(session, writes)
    audit.record(session, actor, "risk.update", target_type="area", target_id=area or "*",
                 area_code=area, details={"period": start.isoformat(), "as_of": as_of.isoformat(),
                                          "grids": len(grids), "levels": report.levels,
                                          "changes": len(report.changes), "policy": policy.source})
    return report


def _decide(policy: Policy, base: str | None, computed: str, quiet_levels: list[str],
            held_since: date | None, follow_up: datetime | None) -> tuple[str, dict]:
    """Apply the hysteresis: up at once, down after quiet periods and a 回访, one step at a time."""
    # `base` is the level held now, `quiet_levels` the computed levels of the whole periods since it
    # was reached (newest first, at most N).
    if base is None:
        return computed, {"rule": "initial", "level": computed, "computed": computed,
                          "zh": f"首次评估为{LEVEL_ZH[computed]}", "en": f"first assessment: {computed}"}
    if RANK[computed] > RANK[base]:
        return computed, {"rule": "upgrade", "from": base, "to": computed, "computed": computed,
                          "zh": f"由{LEVEL_ZH[base]}升为{LEVEL_ZH[computed]}（升级即时生效）",
                          "en": f"raised from {base} to {computed} at once"}
    if computed == base:
        return base, {"rule": "steady", "level": base, "computed": computed,
                      "zh": f"维持{LEVEL_ZH[base]}", "en": f"stays {base}"}
    quiet = 0
    for level in quiet_levels:
        if RANK[level] >= RANK[base]:
            break
        quiet += 1
    visited = follow_up is not None and held_since is not None and \
        follow_up.astimezone(TZ).date() >= held_since
    enough = quiet >= policy.quiet_periods
    if enough and (visited or not policy.require_follow_up):
        to = LEVELS[max(RANK[computed], RANK[base] - policy.downgrade_steps)]
        when = follow_up.astimezone(TZ).date().isoformat() if visited and follow_up else "—"
        return to, {"rule": "downgrade", "from": base, "to": to, "computed": computed,
                    "quiet_periods": quiet, "follow_up": when,
                    "zh": f"由{LEVEL_ZH[base]}降为{LEVEL_ZH[to]}：已连续{quiet}个周期平稳，{when}已回访",
                    "en": f"lowered from {base} to {to}: {quiet} quiet periods and a follow-up visit on {when}"}
    missing_zh, missing_en = [], []
    if not enough:
        missing_zh.append(f"平稳周期{quiet}/{policy.quiet_periods}")
        missing_en.append(f"{quiet} of {policy.quiet_periods} quiet periods")
    if policy.require_follow_up and not visited:
        missing_zh.append("尚未登记回访")
        missing_en.append("no follow-up visit (回访) logged since it was raised")
    return base, {"rule": "hold", "level": base, "computed": computed, "quiet_periods": quiet,
                  "needed": policy.quiet_periods, "follow_up": visited,
                  "zh": f"保持{LEVEL_ZH[base]}（计算等级为{LEVEL_ZH[computed]}；{'，'.join(missing_zh)}）",
                  "en": f"held at {base} (computed {computed}; {', '.join(missing_en)})"}


def _stored(session: Session, ids: list[int], start: date) -> dict:
    """Per grid: the newest row up to this period, this period's row, and since when its level holds."""
    last = {r["area_id"]: r for r in session.execute(text("""
        SELECT DISTINCT ON (r.area_id) r.area_id, r.period_start, r.level, r.score, r.override_level,
               r.override_by, r.override_reason, r.override_until
          FROM risk_levels r
         WHERE r.area_id = ANY(:ids) AND r.period_start <= :start
         ORDER BY r.area_id, r.period_start DESC"""), {"ids": ids, "start": start}).mappings()}
    cur = {a: r for a, r in last.items() if r["period_start"] == start}
    # The level has held since the first period after the last one stored at another level.
    held: dict[int, Any] = dict(session.execute(text("""
        WITH last AS (
            SELECT DISTINCT ON (area_id) area_id, level FROM risk_levels
             WHERE area_id = ANY(:ids) AND period_start <= :start ORDER BY area_id, period_start DESC),
        other AS (
            SELECT l.area_id, max(r.period_start) AS changed
              FROM last l JOIN risk_levels r ON r.area_id = l.area_id
             WHERE r.period_start <= :start AND r.level <> l.level GROUP BY l.area_id)
        SELECT l.area_id, min(r.period_start)
          FROM last l JOIN risk_levels r ON r.area_id = l.area_id
          LEFT JOIN other o ON o.area_id = l.area_id
         WHERE r.period_start <= :start AND (o.changed IS NULL OR r.period_start > o.changed)
         GROUP BY l.area_id"""), {"ids": ids, "start": start}).all())
    return {"last": last, "cur": cur, "held_since": held}


def _follow_ups(session: Session, ids: list[int], as_of: datetime) -> dict[int, datetime]:
    """Find the latest 回访 (follow-up visit) per grid before `as_of`."""
    # A 回访 is a logged visit of kind follow_up about a matter of the grid (geo/visits). Closing a
    # matter is not one: a grid comes down only after someone went back and saw how it stands.
    return dict(session.execute(text("""
        SELECT i.grid_id, max(v.occurred_at)
          FROM visits v JOIN incidents i ON i.id = v.incident_id
         WHERE v.kind = 'follow_up' AND i.grid_id = ANY(:ids) AND v.occurred_at < :as_of
         GROUP BY i.grid_id"""), {"ids": ids, "as_of": as_of}).all())


def _store(session: Session, writes: list[dict]) -> None:
    """Upsert the period rows in one batch; an existing row keeps its override."""
    session.execute(text("""
        INSERT INTO risk_levels (area_id, period_start, period_end, score, level, reasons,
                                 override_level, override_by, override_reason, override_until, computed_at)
        VALUES (:a, :s, :e, :score, :level, CAST(:reasons AS jsonb), :override_level, :override_by,
                :override_reason, :override_until, now())
        ON CONFLICT (area_id, period_start) DO UPDATE
           SET period_end = EXCLUDED.period_end, score = EXCLUDED.score, level = EXCLUDED.level,
               reasons = EXCLUDED.reasons, computed_at = now()"""), writes)


def _notify(session: Session, grid, before: str, after: str, score: float, start: date,
            reasons: list, source: str) -> dict:
    """Tell dispatch a grid turned orange or red: a live event, sent only if the transaction commits."""
    payload = {"type": "risk", "code": grid.code, "name": grid.name, "level": after,
               "previous": before, "score": round(score, 2), "period_start": start.isoformat(),
               "source": source, "reasons": [r["zh"] for r in reasons if r.get("rule") != "steady"][:3]}
    # live_publish logs the event for Last-Event-ID resumes and NOTIFYs the stream's listeners,
    # scoped by the grid's path so viewers see only alerts inside their area.
    session.execute(text("SELECT live_publish('risk', (SELECT path FROM areas WHERE id = :id), "
                         "CAST(:payload AS jsonb))"),
                    {"id": grid.id, "payload": json.dumps(payload, ensure_ascii=False)})
    return payload


def backfill(session: Session, actor: audit.Actor, periods: int, *, as_of: datetime | None = None,
             area: str | None = None, policy: Policy | None = None, now: datetime | None = None) -> list[UpdateReport]:
    """Build the history: assess the `periods` whole periods before `as_of`, then `as_of` itself."""
    # Only the last step may alert dispatch: history is not news.
    policy = policy or load_policy()
    now = now or datetime.now(TZ)
    as_of = as_of or now
    start, _ = period_of(as_of, policy)
    reports = []
    for k in range(periods, 0, -1):
        # The last instant of a past period: its state at the moment it closed.
        moment = midnight(start - timedelta(days=(k - 1) * policy.period_days)) - timedelta(seconds=1)
        reports.append(update(session, actor, as_of=moment, area=area, policy=policy, now=now,
                              notify=False, audit_changes=False))
    reports.append(update(session, actor, as_of=as_of, area=area, policy=policy, now=now))
    return reports


# -- reading: current levels as GeoJSON, history, overrides -----------------------------------
def features(session: Session, area: str | None = None, *, now: datetime | None = None,
             policy: Policy | None = None) -> dict:
    """Return every grid's level (under `area`) at `now` as GeoJSON: level, score, reasons, override."""
    # The level is the newest stored period starting on or before `now` (a past moment shows the
    # history); a grid never assessed gets its computed level, marked `"stored": false`, so every
    # grid always has a colour and an explanation.
    now = now or datetime.now(TZ)
    policy = policy or load_policy()
    params: dict = {"digits": 6, "day": now.astimezone(TZ).date()}
    scope = "g.level = 4"
    if area:
        params["p"] = areas.area_row(session, area)["path"]
        scope += " AND g.path <@ CAST(:p AS ltree)"
    rows = session.execute(text(f"""
        SELECT g.id, g.code, g.name, v.code AS village_code, v.name AS village_name,
               ST_AsGeoJSON(g.geom, :digits) AS geometry, r.period_start, r.period_end, r.score,
               r.level, r.reasons, r.override_level, r.override_reason, r.override_until,
               u.username AS override_by, r.computed_at
          FROM areas g
          LEFT JOIN areas v ON v.id = g.parent_id
          LEFT JOIN LATERAL (SELECT * FROM risk_levels x WHERE x.area_id = g.id AND x.period_start <= :day
                              ORDER BY x.period_start DESC LIMIT 1) r ON true
          LEFT JOIN users u ON u.id = r.override_by
         WHERE {scope} ORDER BY g.code"""), params).mappings().all()
    missing = [r["id"] for r in rows if r["level"] is None]
    fresh = assess(session, policy, now, missing) if missing else {}
    current_start, _ = period_of(now, policy)
    feats = []
    for r in rows:
        props = {"code": r["code"], "name": r["name"], "village_code": r["village_code"],
                 "village_name": r["village_name"]}
        if r["level"] is None:
            a = fresh[r["id"]]
            level = a.level(policy)
            props.update(level=level, computed_level=level, score=round(a.score, 2),
                         reasons=a.reasons(policy), override=None, stored=False, period_start=None,
                         period_end=None, stale=False)
        else:
            level = in_force(r, now)
            reasons = list(r["reasons"] or [])
            override = None
            if r["override_level"] and r["override_until"] and r["override_until"] > now:
                override = {"level": r["override_level"], "reason": r["override_reason"],
                            "by": r["override_by"], "until": r["override_until"].isoformat()}
                reasons.append(_override_reason(override))
            props.update(level=level, computed_level=r["level"], score=round(r["score"], 2),
                         reasons=reasons, override=override, stored=True,
                         period_start=r["period_start"].isoformat(), period_end=r["period_end"].isoformat(),
                         stale=r["period_start"] < current_start,
                         computed_at=r["computed_at"].isoformat())
        props["level_zh"] = LEVEL_ZH[props["level"]]
        feats.append({"type": "Feature", "id": r["code"], "geometry": json.loads(r["geometry"]),
                      "properties": props})
    counts = {level: sum(1 for f in feats if f["properties"]["level"] == level) for level in LEVELS}
    return {"type": "FeatureCollection", "features": feats,
            "summary": {"grids": len(feats), "levels": counts, "as_of": now.isoformat()}}


def _override_reason(o: dict) -> dict:
    until = o["until"][:16].replace("T", " ")
    return {"rule": "override", "level": o["level"], "by": o["by"], "until": o["until"],
            "zh": f"人工调整为{LEVEL_ZH[o['level']]}（{o['by'] or '系统'}：{o['reason']}；有效至{until}）",
            "en": f"set to {o['level']} by {o['by'] or 'system'}: {o['reason']} (until {until})"}


def history(session: Session, code: str) -> list[dict]:
    """Every stored period of one grid, newest first."""
    row = _grid(session, code)
    rows = session.execute(text("""
        SELECT r.period_start, r.period_end, r.score, r.level, r.reasons, r.override_level,
               r.override_reason, r.override_until, u.username AS override_by, r.computed_at
          FROM risk_levels r LEFT JOIN users u ON u.id = r.override_by
         WHERE r.area_id = :id ORDER BY r.period_start DESC"""), {"id": row["id"]}).mappings().all()
    return [{"period_start": r["period_start"].isoformat(), "period_end": r["period_end"].isoformat(),
             "score": round(r["score"], 2), "level": r["level"], "reasons": r["reasons"] or [],
             "override": None if not r["override_level"] else {
                 "level": r["override_level"], "reason": r["override_reason"], "by": r["override_by"],
                 "until": r["override_until"].isoformat()},
             "computed_at": r["computed_at"].isoformat()} for r in rows]


def _grid(session: Session, code: str):
    row = areas.area_row(session, code)
    if row["level"] != 4:
        raise InvalidInput("code", f"risk levels are kept per grid (level 4); {code} is level {row['level']}")
    return row


def parse_override(body: dict, now: datetime) -> tuple[str, str, datetime]:
    """Check an override request: level, reason and an expiry within MAX_OVERRIDE_DAYS."""
    level = str(body.get("level") or "").strip().lower()
    if level not in LEVELS:
        raise InvalidInput("level", f"level must be one of {', '.join(LEVELS)}; got {body.get('level')!r}")
    reason = str(body.get("reason") or "").strip()
    if not 2 <= len(reason) <= 500:
        raise InvalidInput("reason", "reason is required (2–500 characters): say why the level is set by hand")
    raw_until = body.get("until")
    if not raw_until:
        raise InvalidInput("until", "until is required: when the override expires (ISO date-time)")
    try:
        until = datetime.fromisoformat(str(raw_until).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput("until", f"until must be an ISO date or date-time; got {raw_until!r}") from None
    if until.tzinfo is None:
        until = until.replace(tzinfo=TZ)
    if not now < until <= now + timedelta(days=MAX_OVERRIDE_DAYS):
        raise InvalidInput("until", f"until must be in the future and within {MAX_OVERRIDE_DAYS} days; "
                                    f"got {raw_until!r}")
    return level, reason, until


def set_override(session: Session, actor: audit.Actor, code: str, body: dict, *,
                 now: datetime | None = None, policy: Policy | None = None) -> dict:
    """Set a grid's level by hand (with a reason and an expiry) on the current period's row."""
    now = now or datetime.now(TZ)
    policy = policy or load_policy()
    grid = _grid(session, code)
    level, reason, until = parse_override(body, now)
    start, _ = period_of(now, policy)
    before_row = _current_row(session, grid["id"], start)
    if before_row is None:
        update(session, actor, as_of=now, area=code, policy=policy, now=now)
        before_row = _current_row(session, grid["id"], start)
    before = in_force(before_row, now)
    row = session.execute(text("""
        UPDATE risk_levels SET override_level = :l, override_reason = :r, override_until = :u,
               override_by = :by
         WHERE area_id = :a AND period_start = :s
        RETURNING level, score, reasons, override_level, override_until"""),
        {"l": level, "r": reason, "u": until, "by": actor.user_id, "a": grid["id"],
         "s": start}).mappings().one()
    after = in_force(row, now)
    audit.record(session, actor, "risk.override", target_type="grid", target_id=code, area_code=code,
                 details={"from": before, "to": after, "reason": reason, "until": until.isoformat()})
    if RANK[after] > RANK[before] and after in ("orange", "red"):
        g = session.execute(text("SELECT id, code, name, path::text AS path FROM areas WHERE id = :id"),
                            {"id": grid["id"]}).one()
        _notify(session, g, before, after, row["score"], start,
                [_override_reason({"level": level, "by": actor.name, "reason": reason,
                                   "until": until.isoformat()})], "override")
    return {"code": code, "level": after, "previous": before, "computed_level": row["level"],
            "override": {"level": level, "reason": reason, "until": until.isoformat(), "by": actor.name}}


def clear_override(session: Session, actor: audit.Actor, code: str, *, now: datetime | None = None,
                   policy: Policy | None = None) -> dict:
    """Lift a grid's override before it expires."""
    now = now or datetime.now(TZ)
    policy = policy or load_policy()
    grid = _grid(session, code)
    start, _ = period_of(now, policy)
    row = _current_row(session, grid["id"], start)
    if row is None or not row["override_level"]:
        raise NotFound(f"grid {code} has no override in the current period", field="code")
    before = effective(row, now)
    session.execute(text("UPDATE risk_levels SET override_level = NULL, override_reason = NULL, "
                         "override_until = NULL, override_by = NULL "
                         "WHERE area_id = :a AND period_start = :s"), {"a": grid["id"], "s": start})
    audit.record(session, actor, "risk.override.clear", target_type="grid", target_id=code,
                 area_code=code, details={"from": before, "to": row["level"]})
    return {"code": code, "level": row["level"], "previous": before}


def _current_row(session: Session, area_id: int, start: date):
    return session.execute(text(
        "SELECT level, score, override_level, override_until FROM risk_levels "
        "WHERE area_id = :a AND period_start = :s"), {"a": area_id, "s": start}).mappings().first()
