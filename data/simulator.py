"""A patrol simulator: N units driving and walking along the demo roads, reporting fixes over HTTP
exactly like real devices (the JSON batch API with a device token, or the OsmAnd query string of
Traccar Client), for demos and benchmarks. Every run stops by itself after `duration` seconds.
"""
from __future__ import annotations

import math
import random
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import text

from geo import audit
from geo.patrol import filters, osmand, units

SPEEDS = {"car": (7.0, 14.0), "foot": (1.1, 1.6), "volunteer": (1.0, 1.5)}   # m/s
M_PER_DEG_LAT = 111320.0


@dataclass
class Road:
    coords: list            # [(lon, lat), …]
    lengths: list           # metres of each piece
    total: float


class Network:
    """Roads joined at shared end points (to ~1 m), for a random walk that stays on the roads."""

    def __init__(self, lines: list[list[tuple[float, float]]]):
        self.roads: list[Road] = []
        self.ends: dict = defaultdict(list)    # node key -> [(road index, at_start)]
        for coords in lines:
            if len(coords) < 2:
                continue
            lengths = [filters.haversine(*a, *b) for a, b in zip(coords, coords[1:])]
            total = sum(lengths)
            if total < 1:
                continue
            i = len(self.roads)
            self.roads.append(Road(coords, lengths, total))
            self.ends[self._key(coords[0])].append((i, True))
            self.ends[self._key(coords[-1])].append((i, False))

    @staticmethod
    def _key(pt):
        return (round(pt[0], 5), round(pt[1], 5))

    def next_road(self, rng: random.Random, node, came_from: int | None):
        options = [o for o in self.ends.get(self._key(node), []) if o[0] != came_from]
        if not options:
            options = self.ends.get(self._key(node), [])
        return rng.choice(options) if options else None


@dataclass
class Walker:
    callsign: str
    kind: str
    device_id: str
    token: str
    road: int
    forward: bool
    offset: float                     # metres along the road in the travel direction
    speed: float
    rng: random.Random
    sent: int = 0
    errors: int = 0
    last_error: str | None = None
    history: list = field(default_factory=list)

    def step(self, net: Network, seconds: float):
        """Advance along the network; return (lon, lat, heading)."""
        travel = self.speed * seconds * self.rng.uniform(0.8, 1.2)
        while True:
            road = net.roads[self.road]
            if self.offset + travel <= road.total:
                self.offset += travel
                break
            travel -= road.total - self.offset
            end = road.coords[-1] if self.forward else road.coords[0]
            nxt = net.next_road(self.rng, end, self.road)
            if nxt is None:
                self.forward = not self.forward
                self.offset = 0.0
                continue
            self.road, at_start = nxt
            self.forward = at_start
            self.offset = 0.0
        return self.position(net)

    def position(self, net: Network):
        road = net.roads[self.road]
        coords = road.coords if self.forward else road.coords[::-1]
        lengths = road.lengths if self.forward else road.lengths[::-1]
        left = self.offset
        for (a, b), piece in zip(zip(coords, coords[1:]), lengths):
            if left <= piece or piece == 0:
                f = left / piece if piece else 0.0
                lon = a[0] + (b[0] - a[0]) * f
                lat = a[1] + (b[1] - a[1]) * f
                dx = (b[0] - a[0]) * math.cos(math.radians(lat))
                heading = (math.degrees(math.atan2(dx, b[1] - a[1])) + 360) % 360
                return lon, lat, heading
            left -= piece
        lon, lat = coords[-1]
        return lon, lat, 0.0


def load_network(session, area: str | None = None) -> Network:
    rows = session.execute(text(
        "SELECT ST_AsText(r.geom) FROM roads r WHERE CAST(:a AS text) IS NULL OR EXISTS "
        "(SELECT 1 FROM areas a WHERE a.code = :a AND ST_Intersects(a.geom, r.geom))"), {"a": area}).scalars()
    lines = []
    for wkt in rows:
        body = wkt[wkt.index("(") + 1: wkt.rindex(")")]
        lines.append([tuple(float(v) for v in p.split()) for p in body.split(",")])
    return Network(lines)


def prepare_units(session, count: int, prefix: str = "SIM", area: str | None = None,
                  kinds=("car", "car", "foot", "volunteer")) -> list[tuple[str, str, str, str]]:
    """Create (or reuse) the simulated units, give each a fresh device token, put them on duty."""
    out = []
    actor = audit.Actor(name="simulator")
    if area is None:   # home the units in the district, so scoped dispatchers see them
        area = session.execute(text("SELECT code FROM areas WHERE level = 1 ORDER BY code LIMIT 1")).scalar()
    for i in range(1, count + 1):
        callsign = f"{prefix}-{i:03d}" if count < 1000 else f"{prefix}-{i:04d}"
        kind = kinds[(i - 1) % len(kinds)]
        device = f"{prefix.lower()}-{i:04d}"
        exists = session.execute(text("SELECT kind, device_id FROM units WHERE callsign = :c"),
                                 {"c": callsign}).first()
        if exists is None:
            _, token = units.add_unit(session, actor, callsign, kind, device, area, status="on_duty")
        else:
            kind, device = exists.kind, exists.device_id
            token = units.rotate_token(session, actor, callsign)
            session.execute(text(
                "UPDATE units u SET status = 'on_duty', "
                "home_area_id = coalesce(u.home_area_id, a.id), district_code = coalesce(u.district_code, a.code) "
                "FROM (SELECT (SELECT id FROM areas WHERE code = :a) AS id, "
                "             (SELECT d.code FROM areas d, areas x WHERE x.code = :a AND d.level = 1 "
                "               AND x.path <@ d.path LIMIT 1) AS code) a "
                "WHERE u.callsign = :c"), {"c": callsign, "a": area})
        out.append((callsign, kind, device, token))
    return out


def wait_for(url: str, timeout: float) -> bool:
    """Wait until the app at `url` answers its health check; False after `timeout` seconds."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url.rstrip("/") + "/api/health", timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.25)
    return False


class Simulator:
    def __init__(self, url: str, units, network: Network, interval: float, protocol: str = "api",
                 seed: int = 7, workers: int = 8):
        if not network.roads:
            raise ValueError("no roads to drive on: load the demo first (`anwang demo`)")
        self.url = url.rstrip("/")
        self.net = network
        self.interval = interval
        self.protocol = protocol
        self.workers = workers
        self.local = threading.local()
        rng = random.Random(seed)
        self.walkers = []
        for callsign, kind, device, token in units:
            lo, hi = SPEEDS.get(kind, SPEEDS["foot"])
            road = rng.randrange(len(network.roads))
            self.walkers.append(Walker(callsign, kind, device, token, road, rng.random() < 0.5,
                                       rng.uniform(0, network.roads[road].total), rng.uniform(lo, hi),
                                       random.Random(rng.random())))

    def _session(self):
        import requests

        if not hasattr(self.local, "s"):
            self.local.s = requests.Session()
        return self.local.s

    def ping(self, w: Walker, when: datetime, noise: bool = True):
        lon, lat, heading = w.step(self.net, self.interval)
        accuracy = w.rng.uniform(3, 12)
        if noise:
            jitter = accuracy / 3
            lat += w.rng.gauss(0, jitter) / M_PER_DEG_LAT
            lon += w.rng.gauss(0, jitter) / (M_PER_DEG_LAT * math.cos(math.radians(lat)))
        speed = w.speed * w.rng.uniform(0.8, 1.2)
        try:
            if self.protocol == "osmand":
                r = self._session().post(self.url + "/osmand", params={
                    "id": w.device_id, "timestamp": int(when.timestamp()), "lat": f"{lat:.7f}",
                    "lon": f"{lon:.7f}", "speed": f"{speed / osmand.KNOTS:.2f}", "bearing": f"{heading:.1f}",
                    "altitude": "60.0", "accuracy": f"{accuracy:.1f}", "batt": "80.0"}, timeout=10)
            else:
                r = self._session().post(self.url + "/api/positions", json={"positions": [{
                    "ts": when.isoformat(), "lon": round(lon, 7), "lat": round(lat, 7), "speed": round(speed, 2),
                    "heading": round(heading, 1), "accuracy": round(accuracy, 1), "battery": 80}]},
                    headers={"Authorization": f"Bearer {w.token}"}, timeout=10)
            if r.status_code >= 300:
                w.errors += 1
                w.last_error = f"{r.status_code} {r.text[:200]}"
            else:
                w.sent += 1
        except Exception as exc:  # noqa: BLE001 — count and keep going
            w.errors += 1
            w.last_error = str(exc)

    def run(self, duration: float, report=None, report_every: float = 10.0) -> dict:
        """Ping every unit every `interval` seconds (spread over the interval) until `duration`."""
        started = time.monotonic()
        deadline = started + duration if duration > 0 else float("inf")
        last_report = started
        rounds = 0
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            while time.monotonic() < deadline:
                round_start = time.monotonic()
                n = len(self.walkers)
                futures = []
                for i, w in enumerate(self.walkers):
                    due = round_start + self.interval * i / n
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    if time.monotonic() >= deadline:
                        break
                    futures.append(pool.submit(self.ping, w, datetime.now(timezone.utc)))
                for f in futures:
                    f.result()
                rounds += 1
                if report and time.monotonic() - last_report >= report_every:
                    last_report = time.monotonic()
                    report(self.stats(started))
                rest = round_start + self.interval - time.monotonic()
                if rest > 0 and time.monotonic() + rest < deadline:
                    time.sleep(rest)
        return self.stats(started) | {"rounds": rounds}

    def stats(self, started: float) -> dict:
        sent = sum(w.sent for w in self.walkers)
        errors = sum(w.errors for w in self.walkers)
        elapsed = time.monotonic() - started
        last = next((w.last_error for w in self.walkers if w.last_error), None)
        return {"units": len(self.walkers), "sent": sent, "errors": errors, "elapsed_s": round(elapsed, 1),
                "rate_per_s": round(sent / elapsed, 1) if elapsed else 0.0, "last_error": last}
