"""Generate the patrol units and their day: positions every 30 s, the shift, the track."""
from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import shapely
from scipy.signal import lfilter
from shapely.geometry import LineString, Point

from .coordinates import wgs84_lonlat
from .names import township_short
from .period import PATROL_DAY, TZ
from .reference import is_street
from .roads import ROAD_SPEED_KMH, route
from .world import World

VOLUNTEER_COMMUNITIES = ("金牛社区", "嵩山路社区", "泰山路社区", "昆仑路社区", "金山路社区", "海河社区",
                         "河滨社区", "巴山路社区")
FIX_INTERVAL_S = 30
FOOT_BEAT_M = 1500.0
SPEED_MS = {"foot": (1.0, 1.35), "volunteer": (0.85, 1.25)}
# Hours spent at the base: foot patrols sleep in shifts, volunteer teams do morning and evening rounds.
REST_HOURS = {"car": [(3.0, 5.0)], "foot": [(1.0, 6.0), (12.0, 13.5), (18.0, 19.0)],
              "volunteer": [(0.0, 7.0), (11.5, 14.0), (22.5, 24.0)]}
STOP_S = {"car": (120, 2400), "foot": (300, 2400), "volunteer": (600, 2400)}  # 入户, 路口值守
GPS_MEMORY = 0.95  # GPS error drifts slowly: consecutive fixes share most of it
BAD_FIXES = {1: (2, 4), 2: (2, 5)}  # flag → (fewest, most) per unit: impossible jump, poor accuracy


def build(world: World) -> None:
    """Create 40 patrol units with a 24-hour shift on 2026-10-31 and a fix every 30 s."""
    rng = world.rng("patrols")
    start = datetime(PATROL_DAY.year, PATROL_DAY.month, PATROL_DAY.day, tzinfo=TZ)
    stamps = [start + timedelta(seconds=s) for s in range(0, 86400, FIX_INTERVAL_S)]
    for unit in _units(world, rng):
        world.units.append(unit)
        x, y = _simulate(world, rng, unit)
        _record_day(world, rng, unit, x, y, stamps)
        world.shifts.append({"callsign": unit["callsign"], "starts_at": start,
                             "ends_at": start + timedelta(days=1), "task": "day+night"})


def _units(world: World, rng: np.random.Generator) -> list[dict]:
    """List the units: cars and foot patrols per 街道, cars per town, 守护 teams per community."""
    plan = []
    for t in world.level(2):
        short = township_short(t.name)
        cars, foot = (3, 3) if is_street(t.code) else (2, 0)
        plan += [(f"{short}巡{i:02d}", "car", t.code) for i in range(1, cars + 1)]
        plan += [(f"{short}步{i:02d}", "foot", t.code) for i in range(1, foot + 1)]
    for v in world.level(3):
        if v.name in VOLUNTEER_COMMUNITIES and is_street(v.parent):
            plan.append((f"{v.name.removesuffix('社区')}守护队", "volunteer", v.code))
    devices = rng.choice(10**8, size=len(plan), replace=False)
    return [{"callsign": c, "kind": k, "device_id": f"8611030{int(d):08d}", "home_area_code": home,
             "status": "on_duty"} for (c, k, home), d in zip(plan, devices)]


def _home_nodes(world: World, unit: dict) -> tuple[np.ndarray, int]:
    """Find the road nodes a unit patrols and its base (police station or community centre)."""
    xy = world.graph["xy"]
    area = world.areas[unit["home_area_code"]]
    centre = np.array(area.seed if area.level == 3 else world.place_xy[
        f"poi:{township_short(area.name)}派出所"])
    beat = area.geom_m.buffer(300)
    if unit["kind"] == "foot":
        beat = beat.intersection(Point(centre).buffer(FOOT_BEAT_M))  # a walkable beat round the station
    nodes = np.flatnonzero(shapely.contains_xy(beat, xy[:, 0], xy[:, 1]))
    if len(nodes) < 4:
        nodes = np.argsort(np.hypot(*(xy - centre).T), kind="stable")[:4]
    base = int(nodes[np.argmin(np.hypot(*(xy[nodes] - centre).T))])
    return nodes, base


def _resting_until(kind: str, t: float) -> float | None:
    """Return when the rest period around second `t` of the day ends, or None when on patrol."""
    hour = t / 3600
    for a, b in REST_HOURS[kind]:
        if a <= hour < b:
            return b * 3600
    return None


def _simulate(world: World, rng: np.random.Generator, unit: dict) -> tuple[np.ndarray, np.ndarray]:
    """Drive or walk between random nodes of the home area, with stops and rests; sample every 30 s."""
    graph, kind = world.graph, unit["kind"]
    nodes, base = _home_nodes(world, unit)
    times, points = [0.0], [graph["xy"][base]]
    here, t = base, 0.0
    while t < 86400:
        rest_end = _resting_until(kind, t)
        target = base if rest_end is not None else int(nodes[rng.integers(len(nodes))])
        if rest_end is not None and here == base:
            t = rest_end
            times.append(t)
            points.append(points[-1])
            continue
        if target == here:
            continue
        pace = rng.random()
        for point, cls in route(graph, here, target):
            low, high = SPEED_MS.get(kind) or [v / 3.6 for v in ROAD_SPEED_KMH[cls]]
            t += max(float(np.hypot(*(point - points[-1]))) / (low + pace * (high - low)), 1e-3)
            times.append(t)
            points.append(point)
        here = target
        low, high = STOP_S[kind]
        t += float(np.clip(rng.exponential((low + high) / 3), low, high))
        times.append(t)
        points.append(points[-1])
    pts = np.array(points)
    stamps = np.arange(0, 86400, FIX_INTERVAL_S, dtype=float)
    return np.interp(stamps, times, pts[:, 0]), np.interp(stamps, times, pts[:, 1])


def _drift(rng: np.random.Generator, n: int) -> np.ndarray:
    """Draw unit-variance noise that wanders like a GPS error (first-order autoregressive)."""
    return lfilter([math.sqrt(1 - GPS_MEMORY ** 2)], [1.0, -GPS_MEMORY], rng.normal(0, 1, n))


def _plant_bad_fixes(rng: np.random.Generator, ox: np.ndarray, oy: np.ndarray,
                     accuracy: np.ndarray) -> np.ndarray:
    """Spoil a few fixes in place (impossible jumps, poor accuracy) and return their flags."""
    flags = np.zeros(len(ox), dtype=int)
    picks = rng.choice(np.arange(20, len(ox) - 20), size=sum(b for _, b in BAD_FIXES.values()),
                       replace=False)
    used = 0
    for flag, (low, high) in BAD_FIXES.items():
        count = int(rng.integers(low, high + 1))
        idx = picks[used:used + count]
        used += count
        flags[idx] = flag
        if flag == 1:
            angle, dist = rng.uniform(0, 2 * math.pi, count), rng.uniform(5000, 30000, count)
            ox[idx] += np.sin(angle) * dist
            oy[idx] += np.cos(angle) * dist
        else:
            accuracy[idx] = rng.uniform(120, 800, count)
            ox[idx] += rng.normal(0, 1, count) * accuracy[idx] / 2
            oy[idx] += rng.normal(0, 1, count) * accuracy[idx] / 2
    return flags


def _record_day(world, rng, unit: dict, x: np.ndarray, y: np.ndarray, stamps: list[datetime]) -> None:
    """Observe the true path like a phone GPS would, plant a few bad fixes, derive the track."""
    n = len(x)
    step = np.hypot(np.diff(x), np.diff(y))
    speed = np.append(step, step[-1]) / FIX_INTERVAL_S
    heading = np.degrees(np.arctan2(np.diff(x), np.diff(y))) % 360
    heading = np.append(heading, heading[-1])
    moving = speed > 0.3
    last = np.maximum.accumulate(np.where(moving, np.arange(n), 0))
    heading = heading[last]  # a parked unit keeps its last heading
    accuracy = np.clip(rng.lognormal(math.log(8.0), 0.35, n), 3, 30)
    ox = x + _drift(rng, n) * accuracy / 2
    oy = y + _drift(rng, n) * accuracy / 2
    flags = _plant_bad_fixes(rng, ox, oy, accuracy)
    reported = np.clip(speed + rng.normal(0, 0.25, n), 0, None)
    lon, lat = wgs84_lonlat(ox, oy)
    lon, lat = np.round(lon, 7), np.round(lat, 7)
    for i in range(n):
        world.positions.append({"callsign": unit["callsign"], "ts": stamps[i], "lon": float(lon[i]),
                                "lat": float(lat[i]), "speed": round(float(reported[i]), 2),
                                "heading": round(float(heading[i]), 1),
                                "accuracy": round(float(accuracy[i]), 1), "flags": int(flags[i])})
    clean = flags == 0
    length = float(np.hypot(np.diff(ox[clean]), np.diff(oy[clean])).sum())
    world.tracks.append({
        "callsign": unit["callsign"], "starts_at": stamps[0],
        "ends_at": stamps[-1], "geom": LineString(np.column_stack([lon[clean], lat[clean]])),
        "length_m": round(length, 1), "points": int(clean.sum()), "source": "demo",
        "stats": {"moving_share": round(float(moving.mean()), 3),
                  "max_speed_ms": round(float(speed.max()), 2),
                  "impossible_jumps": int((flags == 1).sum()), "poor_accuracy": int((flags == 2).sum())}})
