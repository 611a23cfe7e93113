"""The patrol simulator walks the road network: every fix lies on a road, at the unit's speed, with
a heading along the road, crossing junctions onto the next road."""
from __future__ import annotations

import math
import random

import pytest

from geo import patrol
from web.simulator import SPEEDS, Network, Walker

# Two roads meeting at (114.0, 33.6): one running east, one running north from the junction.
EAST = [(113.99, 33.6), (114.0, 33.6)]
NORTH = [(114.0, 33.6), (114.0, 33.61)]


def on_road(lon, lat):
    return (abs(lat - 33.6) < 1e-9 and 113.99 - 1e-9 <= lon <= 114.0 + 1e-9) or \
           (abs(lon - 114.0) < 1e-9 and 33.6 - 1e-9 <= lat <= 33.61 + 1e-9)


def test_a_car_drives_along_the_roads_and_turns_at_the_junction():
    net = Network([EAST, NORTH])
    assert len(net.roads) == 2 and net.roads[0].total == pytest.approx(927, rel=0.01)
    car = Walker("SIM-1", "car", "sim-1", "tok", road=0, forward=True, offset=0.0, speed=10.0,
                 rng=random.Random(1))
    last = car.position(net)
    travelled = 0.0
    headings = set()
    for _ in range(40):                 # 40 fixes 5 s apart at ~10 m/s
        lon, lat, heading = car.step(net, 5.0)
        assert on_road(lon, lat)
        travelled += patrol.haversine(last[0], last[1], lon, lat)
        headings.add(round(heading / 90) % 4)
        last = (lon, lat, heading)
    assert 1 in headings                 # went east (90°) …
    assert headings & {0, 2}             # … and then along the north road
    assert travelled < 40 * 5 * 12 * 1.01


def test_speeds_are_realistic_per_kind():
    assert SPEEDS["car"][1] < patrol.max_speed()
    assert all(lo < hi for lo, hi in SPEEDS.values())
    assert SPEEDS["foot"][1] < 2.0 and math.isclose(SPEEDS["car"][0], 7.0)
