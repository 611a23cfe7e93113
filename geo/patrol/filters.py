"""Quality filters of position fixes (Traccar's FilterHandler is the model): a fix reached at an
impossible speed or reported with a poor accuracy is stored but flagged, and kept out of tracks
and coverage.

- bit 1 (FLAG_JUMP): reaching the fix from the previous clean fix needs a speed above the limit
  (default 55 m/s ≈ 200 km/h);
- bit 2 (FLAG_ACCURACY): the device reports an accuracy radius above the limit (default 100 m);
- bit 4 (FLAG_INVALID): the device itself says it has no fix (GT06 "not positioned", H02 `V`,
  OsmAnd `valid=false`): its coordinates are often the last ones it had, so it is stored but is
  neither judged for jumps nor an anchor.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from geo.patrol.fixes import Fix

FLAG_JUMP = 1
FLAG_ACCURACY = 2
FLAG_INVALID = 4
EARTH_RADIUS = 6371008.8


@dataclass(frozen=True)
class Limits:
    """The filters' thresholds (settings ANWANG_MAX_SPEED_MS and ANWANG_POOR_ACCURACY_M)."""

    max_speed_ms: float = 55.0        # ≈ 200 km/h: faster is an impossible jump
    poor_accuracy_m: float = 100.0    # a vaguer fix is kept out of tracks


DEFAULT_LIMITS = Limits()


def haversine(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres (mean Earth radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS * math.asin(min(1.0, math.sqrt(a)))


# -- quality flags ---------------------------------------------------------------------------
@dataclass
class FlagState:
    """What judging the next fix needs: the last clean fix (the anchor), the newest fix of any quality,
    and how many jump-flagged fixes in a row, ending at the newest, agree with each other."""

    anchor: tuple | None = None        # (ts, lon, lat)
    seen: tuple | None = None          # (ts, lon, lat)
    chain: int = 0


def _one_per_second(fixes: list[Fix]) -> list[Fix]:
    """The fixes in time order, the first of each timestamp only, their flags reset to the device's own."""
    out: list[Fix] = []
    taken: set = set()
    for f in sorted(fixes, key=lambda f: f.ts):
        if f.ts in taken:
            continue
        taken.add(f.ts)
        f.flags &= FLAG_INVALID       # the device's own word stays; the rest is judged again here
        out.append(f)
    return out


def flag_fixes(fixes: list[Fix], prev: tuple[datetime, float, float] | None,
               speed_limit: float = DEFAULT_LIMITS.max_speed_ms,
               accuracy_limit: float = DEFAULT_LIMITS.poor_accuracy_m,
               state: FlagState | None = None) -> list[Fix]:
    """Sort by time, drop repeated timestamps, and set the jump and accuracy flags.

    `prev` is the unit's clean fix just before the first of these (ts, lon, lat), if any. A fix is a
    jump when reaching it from the last clean fix needs more than the speed limit. Three jumps in a
    row that agree with each other — within one batch or across single pings, through `state` —
    mean the anchor was wrong (or the unit was carried): the fix becomes clean and the new anchor
    (and the chain's earlier fixes in this batch are taken back as clean). `state`, when given, is
    updated to follow the fixes.
    """
    state = state if state is not None else FlagState(anchor=prev)
    if prev is not None:
        state.anchor = prev
    out = _one_per_second(fixes)

    def speed(a, f) -> float:
        dist = haversine(a[1], a[2], f.lon, f.lat)
        # A fix in the same second is judged over one second; GPS noise below 50 m never is a jump.
        return 0.0 if dist <= 50 else dist / max((f.ts - a[0]).total_seconds(), 1.0)

    members: list[Fix] = []            # this batch's fixes in the current chain
    for f in out:
        if f.flags & FLAG_INVALID:
            continue
        in_order = state.seen is None or f.ts > state.seen[0]
        if f.accuracy is not None and f.accuracy > accuracy_limit:
            f.flags |= FLAG_ACCURACY
        if state.anchor is not None and speed(state.anchor, f) > speed_limit:
            f.flags |= FLAG_JUMP
        if in_order:
            if f.flags & FLAG_JUMP:
                if state.chain and state.seen is not None and speed(state.seen, f) <= speed_limit:
                    state.chain += 1
                    members.append(f)
                else:
                    state.chain, members = 1, [f]
                if state.chain >= 3:
                    for c in members:
                        c.flags &= ~FLAG_JUMP
                    good = [c for c in members if c.flags == 0]
                    if good:
                        state.anchor = (good[-1].ts, good[-1].lon, good[-1].lat)
                    state.chain, members = 0, []
            else:
                state.chain, members = 0, []
                if f.flags == 0:
                    state.anchor = (f.ts, f.lon, f.lat)
            state.seen = (f.ts, f.lon, f.lat)
    return out
