"""Generate 商桥镇's 东/南/西/中 first-level grids and the 一长两员 staff of every grid."""
from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np

from .areas import SHANGQIAO, TOWNSHIP_SEATS
from .coordinates import metric_xy
from .world import World

ZONES = (("G1", "东", "东部一级网格"), ("G2", "南", "南部一级网格"), ("G3", "西", "西部一级网格"),
         ("G4", "中", "中部一级网格"))
CENTRAL_VILLAGES = 5
STAFF_ROLES = (("leader", 0.75, 0.85), ("worker", 0.5, 0.6), ("supervisor", 0.6, 0.45))


def build(world: World) -> None:
    """Staff every grid with 一长两员: a grid leader, a grid worker and a supervisor (synthetic)."""
    _build_groups(world)
    rng = world.rng("staff")
    for g in sorted(world.grids, key=lambda g: g.code):
        for role, male_share, party_share in STAFF_ROLES:
            gender = "M" if rng.random() < male_share else "F"
            n = len(world.people) + 1
            person = {"key": f"P{n:05d}", "name": world.person_name(rng, gender),
                      "phone": f"1990000{n:04d}", "gender": gender,
                      "party_member": bool(rng.random() < party_share)}
            since = date(2021, 1, 1) + timedelta(days=int(rng.integers(0, 1600)))
            world.people.append(person)
            world.staff.append({"grid_code": g.code, "role": role, "person_key": person["key"],
                                "name": person["name"], "phone": person["phone"],
                                "gender": gender, "party_member": person["party_member"],
                                "since": since})
            world.staff_by_grid.setdefault(g.code, {})[role] = world.staff[-1]


def _build_groups(world: World) -> None:
    """Group 商桥镇's 21 villages into the article's 东/南/西/中 first-level grids by position."""
    rng = world.rng("groups")
    town = world.areas[SHANGQIAO]
    seat = np.array(metric_xy(*TOWNSHIP_SEATS[SHANGQIAO]), float)
    villages = [world.areas[c] for c in town.children]
    centre = {v.code: np.array(v.geom_m.centroid.coords[0]) - seat for v in villages}
    by_distance = sorted(villages, key=lambda v: (float(np.hypot(*centre[v.code])), v.code))
    zone_of = {v.code: "中" for v in by_distance[:CENTRAL_VILLAGES]}
    for v in by_distance[CENTRAL_VILLAGES:]:
        dx, dy = centre[v.code]
        angle = math.degrees(math.atan2(dy, dx))
        zone_of[v.code] = "南" if -135 < angle < -45 else ("东" if dx >= 0 else "西")
    for suffix, zone, name in ZONES:
        code = f"{SHANGQIAO}{suffix}"
        members = sorted(c for c, z in zone_of.items() if z == zone)
        for c in members:
            world.areas[c].group_code = code
        world.groups.append({"code": code, "name": name, "parent_code": SHANGQIAO,
                             "leader": world.person_name(rng, "M" if rng.random() < 0.8 else "F"),
                             "village_codes": members})
