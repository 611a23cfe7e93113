"""`anwang serve`: the app under gunicorn, optionally with the OsmAnd port, the GT06 and H02 tracker
ports and a simulated patrol; `anwang trackers`: the tracker ports on their own.

The worker is web/worker.py's: gunicorn's threaded worker, whose live viewers are handed to an
event loop (they hold no thread) and whose OsmAnd port has threads of its own.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from geo import settings
from web.cli.common import friendly, ready_engine


# -- serve -----------------------------------------------------------------------------------
@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--threads", default=None, type=int,
              help="Threads per worker for the API and pages (default ANWANG_THREADS or 128); live-map "
                   "viewers hold none: an event loop in each worker owns their sockets.")
@click.option("--workers", default=None, type=int,
              help="Worker processes (default ANWANG_WORKERS or 1); each has its own live listener and "
                   "OsmAnd writer, so one worker groups the most pings per commit.")
@click.option("--osmand-port", default=None, type=int,
              help="Also listen here for the OsmAnd protocol (Traccar Client's server URL), any path.")
@click.option("--gt06-port", default=None, type=int,
              help="Also listen here for GT06 trackers (binary, TCP); default ANWANG_GT06_PORT.")
@click.option("--h02-port", default=None, type=int,
              help="Also listen here for H02 trackers (text, TCP); default ANWANG_H02_PORT.")
@click.option("--osmand-threads", default=None, type=int,
              help="Threads answering the OsmAnd port, apart from the API's (default ANWANG_OSMAND_THREADS "
                   "or 32).")
@click.option("--simulate", default=0, show_default=True, type=click.IntRange(0, 5000), metavar="N",
              help="Also drive N simulated units (SIM-001 …) along the roads, pinging this server every "
                   "5 s, so that the live map moves; they stop with the server.")
@friendly
def serve(host, port, threads, workers, osmand_port, osmand_threads, gt06_port, h02_port, simulate):
    """Start the database if needed and serve the app with gunicorn."""
    import os

    from gunicorn.app.base import BaseApplication

    ready_engine()
    threads = threads or int(settings.number("ANWANG_THREADS"))
    workers = workers or int(settings.number("ANWANG_WORKERS"))
    osmand_threads = osmand_threads or int(settings.number("ANWANG_OSMAND_THREADS"))
    access_log = settings.flag("ANWANG_ACCESS_LOG")
    from web import create_app
    from web.worker import LiveWorker

    app = create_app({"OSMAND_PORT": osmand_port} if osmand_port else None)
    osmand_port = app.config["OSMAND_PORT"]
    control = control_socket(port)
    worker_class = LiveWorker.configured(osmand_port, osmand_threads)
    _raise_file_limit()

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", [f"{host}:{port}"] + ([f"{host}:{osmand_port}"] if osmand_port else []))
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", worker_class)
            self.cfg.set("threads", threads)
            self.cfg.set("timeout", 120)
            self.cfg.set("accesslog", "-" if access_log else None)
            if "control_socket" in self.cfg.settings:
                self.cfg.set("control_socket", str(control))

        def load(self):
            return app

    click.echo(f"serving on http://{host}:{port}  (Ctrl-C to stop)")
    if osmand_port:
        click.echo(f"OsmAnd / Traccar Client server URL: http://{host}:{osmand_port}")
    click.echo(f"control socket: {control}  (gunicornc -s {control})")
    gt06_port, h02_port = tracker_ports(gt06_port, h02_port)
    children = [_start_trackers(host, gt06_port, h02_port)] if gt06_port or h02_port else []
    children += [_start_simulator(host, port, simulate)] if simulate else []
    parent = os.getpid()
    try:
        Server().run()
    finally:
        # Gunicorn's workers leave through here too; only the server that started them stops them.
        if os.getpid() == parent:
            for child in children:
                child.terminate()
            for child in children:
                try:
                    child.wait(10)
                except subprocess.TimeoutExpired:
                    child.kill()


def tracker_ports(gt06_port: int | None, h02_port: int | None) -> tuple[int | None, int | None]:
    """The tracker ports asked for, else the settings' (ANWANG_GT06_PORT, ANWANG_H02_PORT)."""
    def setting(name: str) -> int | None:
        raw = settings.value(name)
        try:
            return int(raw) if raw else None
        except ValueError:
            raise click.BadParameter(f"{name} must be a port number; got {raw!r}") from None

    return (gt06_port if gt06_port is not None else setting("ANWANG_GT06_PORT"),
            h02_port if h02_port is not None else setting("ANWANG_H02_PORT"))


def _die_with_parent() -> None:
    import ctypes
    import signal

    # PR_SET_PDEATHSIG: the kernel stops the child even if the server is killed outright.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def _start_trackers(host: str, gt06_port: int | None, h02_port: int | None) -> subprocess.Popen:
    """`anwang trackers` beside the app, in a child process that ends with it (its log on stderr)."""
    ports = [*(["--gt06-port", str(gt06_port)] if gt06_port else []),
             *(["--h02-port", str(h02_port)] if h02_port else [])]
    return subprocess.Popen([sys.executable, "-c", "from web.cli import main; main()", "trackers",
                             "--host", host, *ports], stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)


@click.command("trackers")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--gt06-port", default=None, type=int, help="GT06 port (default ANWANG_GT06_PORT).")
@click.option("--h02-port", default=None, type=int, help="H02 port (default ANWANG_H02_PORT).")
@friendly
def trackers(host, gt06_port, h02_port):
    """Listen for GT06 and H02 trackers and store what they report, until stopped."""
    import logging
    import signal
    import threading

    from geo import db
    from geo.patrol.filters import Limits
    from web.trackers import TrackerServer

    gt06_port, h02_port = tracker_ports(gt06_port, h02_port)
    if not gt06_port and not h02_port:
        raise click.UsageError("give --gt06-port, --h02-port or both (or ANWANG_GT06_PORT, ANWANG_H02_PORT)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [trackers] %(levelname)s %(message)s")
    ready_engine()
    conninfo = db.engine_url().replace("postgresql+psycopg://", "postgresql://", 1)
    limits = Limits(settings.number("ANWANG_MAX_SPEED_MS"), settings.number("ANWANG_POOR_ACCURACY_M"))
    server = TrackerServer(conninfo, host, gt06_port, h02_port, limits)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    ports = server.start()
    for name, bound in ports.items():
        click.echo(f"{name.upper()} trackers: {host}:{bound}", err=True)
    while not stop.wait(1):
        pass
    server.stop()


def control_socket(port: int) -> Path:
    """This server's gunicorn control socket: one per port under var/, so that two servers on one
    machine never share (and take over) the default one in the user's home."""
    folder = settings.var_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"gunicorn-{port}.sock"


def _raise_file_limit() -> None:
    """Let the server open as many files as the system allows it: each live viewer is a socket."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass          # as many as we were given, then


def _start_simulator(host: str, port: int, count: int) -> subprocess.Popen:
    """`anwang simulate patrol` against this server in a child process that ends with it."""
    target = "127.0.0.1" if host in ("", "0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    log_path = settings.var_dir() / "simulator.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)

    with open(log_path, "ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-c", "from web.cli import main; main()", "simulate", "patrol",
             "--units", str(count), "--interval", "5", "--duration", "0", "--wait",
             "--url", f"http://{target}:{port}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    click.echo(f"simulated patrol: {count} units pinging every 5 s (log: {log_path})")
    return child
