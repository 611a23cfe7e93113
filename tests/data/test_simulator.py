"""The patrol simulator walks the road network: every fix lies on a road, at the unit's speed, with
a heading along the road, crossing junctions onto the next road."""
from __future__ import annotations

import math
import random

import pytest

from data.simulator import SPEEDS, Network, Walker
from geo.patrol import filters

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
        travelled += filters.haversine(last[0], last[1], lon, lat)
        headings.add(round(heading / 90) % 4)
        last = (lon, lat, heading)
    assert 1 in headings                 # went east (90°) …
    assert headings & {0, 2}             # … and then along the north road
    assert travelled < 40 * 5 * 12 * 1.01


def test_speeds_are_realistic_per_kind():
    assert SPEEDS["car"][1] < filters.DEFAULT_LIMITS.max_speed_ms
    assert all(lo < hi for lo, hi in SPEEDS.values())
    assert SPEEDS["foot"][1] < 2.0 and math.isclose(SPEEDS["car"][0], 7.0)


def test_serve_drives_a_simulated_patrol_that_stops_with_the_server(engine, tmp_path):
    """`anwang serve --simulate 2`: two units ping the server and move on the live map; stopping the
    server stops them."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    from sqlalchemy import text

    from tests.conftest import drop_database, fresh_database

    own = fresh_database(engine, "serve")
    with own.begin() as conn:
        conn.execute(text("INSERT INTO areas (code, name, level, geom) VALUES ('SV', '模拟区', 1, "
                          "ST_Multi(ST_MakeEnvelope(113.98, 33.59, 114.01, 33.62, 4326)))"))
        for road in (EAST, NORTH):
            conn.execute(text("INSERT INTO roads (name, geom) VALUES ('路', ST_GeomFromText(:w, 4326))"),
                         {"w": "LINESTRING(" + ", ".join(f"{x} {y}" for x, y in road) + ")"})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, ANWANG_DB_NAME=own.url.database, ANWANG_ACCESS_LOG="0")
    anwang = Path(sys.executable).with_name("anwang")
    log = open(tmp_path / "serve.log", "wb")
    server = subprocess.Popen([str(anwang), "serve", "--port", str(port), "--simulate", "2"], env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def simulators() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except (OSError, ValueError):
                continue
            if b"simulate" in cmdline and url.encode() in cmdline:
                found.append(int(entry.name))
        return found

    seen = "SELECT u.callsign, ST_AsText(l.geom) FROM units u JOIN unit_last_positions l ON l.unit_id = u.id " \
           "WHERE l.ts > now() - interval '1 minute' ORDER BY 1"
    try:
        deadline, first, moved = time.monotonic() + 60, None, None
        while time.monotonic() < deadline and moved is None:
            time.sleep(0.5)
            with own.connect() as conn:
                rows = conn.execute(text(seen)).all()
            if len(rows) == 2 and first is None:
                first = rows
            elif first is not None and all(a[1] != b[1] for a, b in zip(first, rows)):
                moved = rows
        assert first is not None and [r[0] for r in first] == ["SIM-001", "SIM-002"], \
            (tmp_path / "serve.log").read_text()[-2000:]
        assert moved is not None, "the simulated units did not move within a minute"
        assert len(simulators()) == 1
        server.send_signal(signal.SIGTERM)            # the server only, as a service manager would
        server.wait(30)
        assert "simulated patrol: 2 units" in (tmp_path / "serve.log").read_text()
        deadline = time.monotonic() + 10
        while simulators() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert simulators() == []
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
        for pid in simulators():
            os.kill(pid, signal.SIGKILL)
        log.close()
        drop_database(engine, own)
