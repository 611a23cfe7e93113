"""A new incident into the dispatcher's queue: how long from a grid worker's POST /api/incidents
until the incident is listed in the queue of /dispatch in Chromium. Goal: ≤ 2 s.

The baseline, measured in the same run on the same incidents, is the live event itself: the time
until a plain HTTP client holding /api/live (as the same dispatcher) receives the incident's event.
The queue's figure is said as a ratio to it (what the page adds: EventSource, decoding, the queue
drawn) and to the POST's own round trip. Every time is on the one clock of this machine: the page
records when each queue item appears (Date.now(), by a MutationObserver), the clients read
time.time().

The app runs as `anwang serve` on 127.0.0.1 against the 郾城区 demo in a fresh database (kept and
reused with --keep); the page is the system Chromium with every request off the machine refused.
Bounded: 20 incidents (5 with --quick), one every 1.5 s. Usage: python bench/dispatch_queue.py [--quick] [--keep]
"""
from __future__ import annotations

import argparse
import http.client
import json
import shutil
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import databases  # noqa: E402
from positions import Server  # noqa: E402

BENCH_DB = "anwang_bench_queue"
DISTRICT = "411103"
DISPATCHER, WORKER, PASSWORD = "bench_queue_dispatcher", "bench_queue_worker", "bench-pass-123"
GOAL_S = 2.0
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Every queue item the page draws, with the time it first appeared.
OBSERVE = """() => {
    window.benchSeen = {};
    const list = document.getElementById("queue-list");
    const note = () => list.querySelectorAll("li[data-incident]").forEach((li) => {
        if (!(li.dataset.incident in window.benchSeen)) { window.benchSeen[li.dataset.incident] = Date.now(); }
    });
    note();
    new MutationObserver(note).observe(list, {childList: true, subtree: true});
}"""


def prepare(keep: bool):
    """The demo database (reused when kept from an earlier run), the dispatcher, and a grid worker of
    one demo grid with an API token: (engine, token, grid point)."""
    from sqlalchemy import text

    from data import load
    from geo import audit, db, users
    from geo.cluster import Cluster

    engine = None
    if keep:
        cluster = Cluster.default()
        cluster.start()
        url = cluster.url(BENCH_DB)
        try:
            engine = db.make_engine(url)
            with db.session_scope(engine) as s:
                if not load.is_loaded(s):
                    raise LookupError
            db.migrate(engine)       # kept by an earlier version, perhaps
            databases.step("reusing the kept demo database")
        except Exception:  # noqa: BLE001 — no database yet, or no demo in it: build it
            if engine is not None:
                engine.dispose()
            engine = None
    if engine is None:
        engine = databases.with_demo(BENCH_DB)
    with db.session_scope(engine) as s:
        grid, lon, lat = s.execute(text("""
            SELECT code, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM areas
             WHERE level = 4 AND code LIKE :d ORDER BY code LIMIT 1"""), {"d": DISTRICT + "%"}).one()
        actor = audit.Actor("bench")
        users.add_user(s, actor, DISPATCHER, "dispatcher", password=PASSWORD, scopes=[DISTRICT], replace=True)
        users.add_user(s, actor, WORKER, "grid_worker", password=PASSWORD, scopes=[grid], replace=True)
        token = users.create_token(s, actor, WORKER, "bench queue")
    return engine, token, (lon, lat)


def login(port: int) -> str:
    """The dispatcher's session cookie header, through the real login form."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/login")
    r = conn.getresponse()
    page = r.read().decode()
    cookie = r.getheader("Set-Cookie").split(";")[0]
    csrf = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    conn.request("POST", "/login", body=f"username={DISPATCHER}&password={PASSWORD}&csrf_token={csrf}",
                 headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse()
    r.read()
    assert r.status == 302, r.status
    return r.getheader("Set-Cookie").split(";")[0]


class Listener(threading.Thread):
    """A plain HTTP client on /api/live: when each incident's event arrived (time.time())."""

    def __init__(self, port: int, cookie: str, seconds: int):
        super().__init__(daemon=True)
        self.port, self.cookie, self.seconds = port, cookie, seconds
        self.arrived: dict[int, float] = {}
        self.ready = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.seconds + 30)
        conn.request("GET", f"/api/live?max_seconds={self.seconds}",
                     headers={"Cookie": self.cookie, "Accept": "text/event-stream"})
        resp = conn.getresponse()
        assert resp.status == 200, resp.status
        self.ready.set()
        buf, event = b"", None
        while True:
            chunk = resp.read1(65536)
            if not chunk:
                break
            now = time.time()
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line.startswith(b"event: "):
                    event = line[7:].strip().decode()
                elif line.startswith(b"data: ") and event == "incident":
                    self.arrived.setdefault(int(json.loads(line[6:])["id"]), now)
                elif not line.strip():
                    event = None


def post_incident(port: int, token: str, lon: float, lat: float, n: int) -> tuple[int, float, float]:
    """One grid worker's report: (incident id, epoch time sent, round trip in s)."""
    body = json.dumps({"category": "矛盾纠纷", "subtype": "邻里纠纷", "severity": 2,
                       "occurred_at": datetime.now(timezone.utc).isoformat(), "lon": lon, "lat": lat,
                       "address": f"郾城区基准测试路 {n} 号", "description": "队列基准测试"})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    sent = time.time()
    conn.request("POST", "/api/incidents", body=body.encode(), headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    r = conn.getresponse()
    answer = r.read()
    took = time.time() - sent
    assert r.status == 201, (r.status, answer[:300])
    return int(json.loads(answer)["id"]), sent, took


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 incidents instead of 20")
    ap.add_argument("--keep", action="store_true", help="keep the demo database (and reuse a kept one)")
    args = ap.parse_args()
    count = 5 if args.quick else 20
    print(f"queue bench: {count} incidents posted by a grid worker, each timed into the dispatcher's queue "
          f"on /dispatch in Chromium (goal ≤ {GOAL_S:g} s)", flush=True)
    server = None
    engine = None
    try:
        engine, token, (lon, lat) = prepare(args.keep)
        databases.step("starting `anwang serve`")
        server = Server(BENCH_DB, threads=32)
        cookie = login(server.port)
        listener = Listener(server.port, cookie, seconds=int(count * 1.5 + 120))
        listener.start()
        listener.ready.wait(30)

        from playwright.sync_api import sync_playwright

        databases.step("opening /dispatch in Chromium (the network off the machine closed)")
        base = f"http://127.0.0.1:{server.port}"
        refused: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            context = browser.new_context(viewport={"width": 1600, "height": 1000}, locale="zh-CN",
                                          service_workers="block")
            host = urlsplit(base).hostname
            context.route("**/*", lambda route: route.continue_() if urlsplit(route.request.url).hostname == host
                          else (refused.append(route.request.url), route.abort("internetdisconnected")))
            page = context.new_page()
            page.goto(f"{base}/login")
            page.fill("input[name=username]", DISPATCHER)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(lambda url: "/login" not in url)
            page.goto(f"{base}/dispatch", timeout=120000)
            deadline = time.monotonic() + 120
            ready = "document.body.dataset.unitsLoaded === '1' && document.body.dataset.live === 'open'"
            while not page.evaluate(ready):
                if time.monotonic() > deadline:
                    raise TimeoutError("/dispatch did not load its units and open the live stream in 120 s")
                page.wait_for_timeout(100)
            queued = page.evaluate("anwangTest.dispatch.queue().length")
            print(f"      the queue holds {queued} open matters before the bench", flush=True)
            page.evaluate(OBSERVE)

            databases.step(f"posting {count} incidents, one every 1.5 s")
            rows = []
            for n in range(1, count + 1):
                incident, sent, took = post_incident(server.port, token, lon, lat, n)
                deadline = time.monotonic() + 10
                seen = None
                while seen is None and time.monotonic() < deadline:
                    seen = page.evaluate("id => window.benchSeen[id]", str(incident))
                    if seen is None:
                        page.wait_for_timeout(20)
                live = listener.arrived.get(incident)
                if seen is None or live is None:
                    raise RuntimeError(f"incident {incident}: in the queue {seen is not None}, "
                                       f"on the live stream {live is not None} after 10 s")
                rows.append((took, live - sent, seen / 1000 - sent))
                print(f"      #{n:<3} POST {took * 1000:6.0f} ms   live event {(live - sent) * 1000:6.0f} ms   "
                      f"in the queue {(seen / 1000 - sent) * 1000:6.0f} ms", flush=True)
                time.sleep(max(0.0, 1.5 - (time.time() - sent)))
            browser.close()
    finally:
        if server:
            server.stop()
        if engine is not None:
            engine.dispose()
        if not args.keep:
            databases.drop(BENCH_DB)

    post_s, live_s, queue_s = ([r[i] for r in rows] for i in range(3))
    print("")
    print("summary")
    for label, values in (("POST /api/incidents round trip", post_s),
                          ("live event at a plain client (baseline)", live_s),
                          ("listed in the queue on /dispatch", queue_s)):
        print(f"  {label:<42} p50 {pct(values, 50) * 1000:6.0f} ms   p95 {pct(values, 95) * 1000:6.0f} ms   "
              f"max {max(values) * 1000:6.0f} ms")
    print(f"  queue ÷ live event (baseline)              p50 {pct(queue_s, 50) / pct(live_s, 50):6.2f} ×   "
          f"p95 {pct(queue_s, 95) / pct(live_s, 95):6.2f} ×")
    print(f"  queue ÷ POST round trip                    p50 {pct(queue_s, 50) / pct(post_s, 50):6.2f} ×")
    worst = max(queue_s)
    print(f"  slowest into the queue                     {worst:6.2f} s = {worst / GOAL_S:.2f} × the goal of "
          f"{GOAL_S:g} s ({'met' if worst <= GOAL_S else 'NOT met'})")
    print(f"  requests off the machine refused           {len(refused)}")


if __name__ == "__main__":
    main()
