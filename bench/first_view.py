"""The first view of every page at city-to-province scale: N copies of 郾城区 beside it, against the
plain county, measured in one run with the system Chromium (network closed).

1. A fresh database in the embedded cluster with the 郾城区 demo (`anwang demo`: areas, incidents,
   units, the four-colour risk). The app runs as `anwang serve` does (gunicorn) on 127.0.0.1.
2. Baseline (the county alone): each page — `/`, `/dispatch`, `/planner`, `/review`, `/public` —
   opened in a new browser context (empty HTTP cache, signed in beforehand) by two readers: an
   admin (scope everywhere) and a reader scoped to one township (商桥镇; an analyst, or the
   dispatcher or planner those pages are for). Per view: the bytes transferred (response bodies
   as sent, compressed, until the page is ready) and the time from navigation to the page saying it
   is ready (the `data-*` state each page sets when its layers are drawn; /review: its framed map
   document loaded). Each view is taken twice: `first` right after the server starts (its tile
   cache and the database's buffers as they are), `again` in another new context.
3. `anwang demo --scale N` (timed), the server restarted, the same views again.

Printed: per page and reader the figures at 0 and N and their ratio, and the goals of issue 11
(first view ≤ 1.5 MB, ready ≤ 1.5 s at N = 100). Bounded: every wait has a timeout, the server is
stopped and the database dropped at the end (--keep leaves it).
Usage: python bench/first_view.py [--scale N] [--keep]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import databases  # noqa: E402
from positions import Server  # noqa: E402

BENCH_DB = "anwang_bench_first_view"
TOWNSHIP = "411103102"  # 商桥镇
PASSWORD = "bench-first-view-1"
GOAL_BYTES = 1.5e6
GOAL_SECONDS = 1.5
READY_TIMEOUT_MS = 60_000

# What each page sets once its first view is drawn (its layers loaded); a page that sets
# data-ready="1" is ready then. /review frames its map in a sandboxed document of its own
# (/review/map), read through that frame.
READY = {
    "/": "b.shownLevel && b.riskGrids !== undefined && b.incidentsLoaded !== undefined",
    "/dispatch": "b.unitsLoaded",
    "/planner": "b.ready",
    "/review": "/review/map",
    "/public": "b.publicLoaded",
}
FRAME_READY = ("document.readyState === 'complete'"
               " && !!document.querySelector('.leaflet-overlay-pane canvas, .leaflet-overlay-pane path')")
PAGES = list(READY)
# The township reader of each page: a role that page is for.
TOWNSHIP_ROLE = {"/": "analyst", "/dispatch": "dispatcher", "/planner": "planner", "/review": "analyst",
                 "/public": "analyst"}


def anwang(*args: str) -> tuple[float, str]:
    """Run the command on the bench database; its seconds and output."""
    env = dict(os.environ, ANWANG_DB_NAME=BENCH_DB)
    t0 = time.perf_counter()
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "anwang"), *args], env=env, capture_output=True,
                          text=True, timeout=3600)
    if done.returncode:
        raise RuntimeError(f"anwang {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - t0, done.stdout


def make_users(url: str) -> dict[str, str]:
    """The admin and one township reader per role; name → role."""
    from geo import audit, db, users

    engine = db.make_engine(url)
    made = {"bench_admin": "admin"}
    with db.session_scope(engine) as s:
        users.add_user(s, audit.Actor("bench"), "bench_admin", "admin", password=PASSWORD, replace=True)
        for role in sorted(set(TOWNSHIP_ROLE.values())):
            users.add_user(s, audit.Actor("bench"), f"bench_{role}", role, password=PASSWORD,
                           scopes=[TOWNSHIP], replace=True)
            made[f"bench_{role}"] = role
    engine.dispose()
    return made


def reader(page: str, who: str) -> str:
    return "bench_admin" if who == "admin" else f"bench_{TOWNSHIP_ROLE[page]}"


class Browser:
    """Chromium with every request off the machine refused and counted."""

    def __init__(self):
        from playwright.sync_api import sync_playwright

        self.pw = sync_playwright().start()
        self.browser = self.pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        self.sessions: dict[tuple[str, str], dict] = {}
        self.external: list[str] = []

    def close(self) -> None:
        self.browser.close()
        self.pw.stop()

    def context(self, base: str, state: dict | None = None):
        ctx = self.browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN",
                                       service_workers="block", storage_state=state)

        def gate(route):
            if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
                route.continue_()
            else:
                self.external.append(route.request.url)
                route.abort("internetdisconnected")

        ctx.route("**/*", gate)
        return ctx

    def signed_in(self, base: str, username: str) -> dict:
        """The cookies of a signed-in session of `username` (signed in once per server)."""
        from tests.browser import login

        key = (base, username)
        if key not in self.sessions:
            ctx = self.context(base)
            login(ctx.new_page(), base, username, PASSWORD)
            self.sessions[key] = ctx.storage_state()
            ctx.close()
        return self.sessions[key]

    def view(self, base: str, path: str, username: str) -> dict:
        """Open `path` in a new context (empty cache); bytes received and seconds until ready."""
        from tests.browser import wait_for

        ctx = self.context(base, self.signed_in(base, username))
        finished: list = []
        ctx.on("requestfinished", lambda r: finished.append(r))
        page = ctx.new_page()
        t0 = time.perf_counter()
        page.goto(base + path, wait_until="commit", timeout=READY_TIMEOUT_MS)
        try:
            if READY[path].startswith("/"):
                frame_ready(page, READY[path])
            else:
                wait_for(page, f"(() => {{ const b = document.body ? document.body.dataset : {{}};"
                               f" return b.ready === '1' || ({READY[path]}); }})()",
                         timeout=READY_TIMEOUT_MS, polling=20)
            seconds = time.perf_counter() - t0
        except TimeoutError:
            seconds = float("nan")
        # What the browser received for the first view: every response finished by the time the
        # page was ready (what is still in flight then is counted once it lands, within 2 s).
        page.wait_for_timeout(2000 if seconds == seconds else 0)
        received = sum(max(r.sizes()["responseBodySize"], 0) for r in list(finished))
        out = {"bytes": received, "seconds": seconds, "requests": len(finished), "url": page.url}
        ctx.close()
        return out


def frame_ready(page, path: str) -> None:
    """Wait until the page's frame of `path` has loaded and drawn its map."""
    deadline = time.monotonic() + READY_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        for frame in page.frames:
            if urlsplit(frame.url).path == path:
                try:
                    if frame.evaluate(FRAME_READY):
                        return
                except Exception:  # noqa: BLE001 — the frame is navigating; look again
                    pass
        page.wait_for_timeout(20)
    raise TimeoutError(f"the frame {path} did not draw its map in {READY_TIMEOUT_MS} ms")


def measure(browser: Browser, base: str, label: str) -> dict:
    """Every page, both readers, first and again: {(page, who, try): figures}."""
    out = {}
    for path in PAGES:
        for who in ("admin", "township"):
            for attempt in ("first", "again"):
                figures = browser.view(base, path, reader(path, who))
                out[(path, who, attempt)] = figures
                print(f"      {label:>6} {path:<10} {who:<9} {attempt:<6} {figures['bytes'] / 1e6:7.2f} MB "
                      f"{figures['seconds']:6.2f} s  {figures['requests']:>3} requests", flush=True)
    return out


def mb(n: float) -> str:
    return f"{n / 1e6:.2f}"


def main() -> None:  # noqa: C901 — one linear script
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=100, help="copies of the county (default 100)")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()

    url = databases.fresh(BENCH_DB)
    server = None
    browser = Browser()
    try:
        databases.step("loading the 郾城区 demo (anwang demo)")
        demo_s, _ = anwang("demo")
        make_users(url)
        databases.step(f"baseline: the county alone ({demo_s:.0f} s to load)")
        server = Server(BENCH_DB, threads=16)
        base = f"http://127.0.0.1:{server.port}"
        baseline = measure(browser, base, "N=0")
        server.stop()
        server = None
        databases.step(f"anwang demo --scale {args.scale}")
        scale_s, scale_out = anwang("demo", "--scale", str(args.scale))
        print("\n".join("      " + line for line in scale_out.splitlines() if line.startswith("  ")
                        and "demo-" not in line), flush=True)
        server = Server(BENCH_DB, threads=16)
        base = f"http://127.0.0.1:{server.port}"
        scaled = measure(browser, base, f"N={args.scale}")
    finally:
        if server:
            server.stop()
        browser.close()
        if not args.keep:
            databases.drop(BENCH_DB)

    n = args.scale
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"\nfirst view: 郾城区 and {n} copies (≈ {540 * (n + 1):,} grids, ≈ {20_000 * (n + 1):,} incidents) "
          f"against the county alone, one run; load average {load} on {os.cpu_count()} CPUs")
    print(f"anwang demo --scale {n}: {scale_s:.0f} s ({scale_s / 60:.1f} min); the demo itself {demo_s:.0f} s")
    print(f"{'page':<10} {'reader':<9} {'view':<6} {'MB at 0':>8} {'MB at N':>8} {'ratio':>6} "
          f"{'s at 0':>7} {'s at N':>7} {'ratio':>6}  goals (≤ {GOAL_BYTES / 1e6:g} MB, ≤ {GOAL_SECONDS:g} s at N)")
    for path in PAGES:
        for who in ("admin", "township"):
            for attempt in ("first", "again"):
                b, s = baseline[(path, who, attempt)], scaled[(path, who, attempt)]
                bytes_ok = "ok" if s["bytes"] <= GOAL_BYTES else "OVER"
                time_ok = "ok" if s["seconds"] <= GOAL_SECONDS else ("NOT READY" if s["seconds"] != s["seconds"]
                                                                    else "OVER")
                print(f"{path:<10} {who:<9} {attempt:<6} {mb(b['bytes']):>8} {mb(s['bytes']):>8} "
                      f"{s['bytes'] / max(b['bytes'], 1):>6.2f} {b['seconds']:>7.2f} {s['seconds']:>7.2f} "
                      f"{s['seconds'] / b['seconds']:>6.2f}  bytes {bytes_ok}, time {time_ok}")
    print(f"requests refused off the machine: {len(browser.external)}"
          + (f" (first: {browser.external[0]})" if browser.external else ""))


if __name__ == "__main__":
    main()
