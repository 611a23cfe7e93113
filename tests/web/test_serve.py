"""`anwang serve`: two servers on one machine each answer on their port and each has a gunicorn
control socket of its own under var/."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from geo import settings
from web.cli.server import control_socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
            return r.status == 200 and json.load(r)["database"] == "ok"
    except OSError:
        return False


def test_two_servers_answer_with_a_control_socket_each(engine):
    from gunicorn.ctl.client import ControlClient

    ports = [free_port(), free_port()]
    env = {**os.environ, "ANWANG_ACCESS_LOG": "0"}
    servers = [subprocess.Popen([sys.executable, "-c", "from web.cli import main; main()", "serve",
                                 "--port", str(port), "--workers", "1", "--threads", "2"],
                                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
               for port in ports]
    try:
        deadline = time.monotonic() + 120
        while not all(healthy(p) for p in ports):
            assert all(s.poll() is None for s in servers), [s.stdout.read().decode() for s in servers]
            assert time.monotonic() < deadline, "the servers did not answer /api/health"
            time.sleep(0.5)
        sockets = [control_socket(p) for p in ports]
        assert sockets[0] != sockets[1] and all(s.parent == settings.var_dir() for s in sockets)
        for port, path in zip(ports, sockets, strict=True):
            with ControlClient(str(path), timeout=10) as ctl:
                listeners = ctl.send_command("show listeners")["listeners"]
            assert [entry["address"] for entry in listeners] == [f"http://127.0.0.1:{port}"]
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
        for server in servers:
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            server.stdout.close()
    assert not any(control_socket(p).exists() for p in ports)       # each took its own away
