"""The GT06 and H02 ports end to end: real TCP connections on 127.0.0.1 to the tracker server, its
answers read back, and what it stored read from the database.

The tracker server commits on its own connections, so these tests use committed units and remove
them afterwards. Frames are built from the GT06 layout with `gt06.encode` and recent times; the H02
messages follow the V1 layout of H02ProtocolDecoderTest (traccar/traccar) with recent times.
"""
from __future__ import annotations

import socket
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from geo.patrol import gt06
from geo.patrol.filters import FLAG_INVALID
from tests.web.patrol_common import cleanup, committed_unit

IMEI, H02_ID = "864717003283581", "4210051415"
CALLSIGNS = ["TRK-GT06", "TRK-H02"]


def login(imei: str, serial: int) -> bytes:
    return gt06.encode(0x01, bytes.fromhex("0" + imei), serial)


def location(ts: datetime, lon: float, lat: float, kmh: int, course: int, serial: int,
             positioned: bool = True, protocol: int = 0x12) -> bytes:
    t = ts.astimezone(timezone.utc)
    status = course | (0x1000 if positioned else 0) | (0 if lat < 0 else 0x0400) | (0x0800 if lon < 0 else 0)
    gps = bytes([t.year - 2000, t.month, t.day, t.hour, t.minute, t.second, 0xC9]) \
        + round(abs(lat) * 1800000).to_bytes(4, "big") + round(abs(lon) * 1800000).to_bytes(4, "big") \
        + bytes([kmh]) + status.to_bytes(2, "big")
    cell = bytes.fromhex("01CC00287D001F71")            # MCC 460, MNC 0, LAC, cell id
    return gt06.encode(protocol, gps + cell, serial)


def h02_v1(device: str, ts: datetime, lat: str, lon: str, knots: str, course: str, valid: str = "A") -> bytes:
    t = ts.astimezone(timezone.utc)
    return (f"*HQ,{device},V1,{t:%H%M%S},{valid},{lat},N,{lon},E,{knots},{course},{t:%d%m%y},FFFFFBFF#"
            .encode())


def read(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def closed(conn: socket.socket) -> bool:
    """Whether the server closed the connection (within a few seconds)."""
    conn.settimeout(5)
    try:
        return conn.recv(1) == b""
    except (TimeoutError, ConnectionResetError):
        return False


def stored(engine, callsign):
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT p.ts, ST_X(p.geom) AS lon, ST_Y(p.geom) AS lat, p.speed, p.heading, p.flags FROM positions p "
            "JOIN units u ON u.id = p.unit_id WHERE u.callsign = :c ORDER BY p.ts"), {"c": callsign}).mappings().all()


def events(engine, callsign):
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT e.kind, e.details, e.battery, u.heard_kind FROM unit_events e JOIN units u ON u.id = e.unit_id "
            "WHERE u.callsign = :c ORDER BY e.received_at, e.kind"), {"c": callsign}).mappings().all()


def wait_for(check, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.fixture()
def server(engine):
    from web.trackers import TrackerServer

    committed_unit(engine, CALLSIGNS[0], IMEI, area=None)
    committed_unit(engine, CALLSIGNS[1], H02_ID, area=None)
    url = engine.url.render_as_string(hide_password=False).replace("postgresql+psycopg://", "postgresql://")
    trackers = TrackerServer(url, "127.0.0.1", gt06_port=0, h02_port=0)
    trackers.ports = trackers.start()
    yield trackers
    trackers.stop()
    for c in CALLSIGNS:
        cleanup(engine, c)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM live_events WHERE payload->>'callsign' = ANY(:c)"), {"c": CALLSIGNS})


def connect(port: int) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    return conn


def test_gt06_login_locations_and_heartbeat_are_acknowledged_once_stored(server, engine):
    t0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=2)
    with connect(server.ports["gt06"]) as conn:
        frame = login(IMEI, 1)
        conn.sendall(frame[:5])                       # a login arriving in two pieces
        time.sleep(0.1)
        conn.sendall(frame[5:])
        assert read(conn, 10) == bytes.fromhex("787805010001D9DC0D0A")   # the protocol description's answer
        # Two locations, a status and a location without a fix in one write.
        burst = (location(t0, 114.0172, 33.5658, 36, 90, 2) + location(t0 + timedelta(seconds=10), 114.0176, 33.5659, 40, 95, 3,
                                                                       protocol=0x22)
                 + gt06.encode(0x13, bytes([0x46, 0x05, 0x04, 0x00, 0x02]), 4)
                 + location(t0 + timedelta(seconds=20), 114.0176, 33.5659, 0, 0, 5, positioned=False))
        conn.sendall(burst)
        assert read(conn, 40) == gt06.ack(0x12, 2) + gt06.ack(0x22, 3) + gt06.ack(0x13, 4) + gt06.ack(0x12, 5)
        # What was acknowledged is stored: a replay changes nothing and is acknowledged again.
        conn.sendall(location(t0, 114.0172, 33.5658, 36, 90, 6))
        assert read(conn, 10) == gt06.ack(0x12, 6)
    rows = stored(engine, "TRK-GT06")
    assert [(r["ts"], r["flags"]) for r in rows] == [(t0, 0), (t0 + timedelta(seconds=10), 0),
                                                     (t0 + timedelta(seconds=20), FLAG_INVALID)]
    first = rows[0]
    assert (first["lon"], first["lat"], first["speed"], first["heading"]) == \
        (pytest.approx(114.0172, abs=1e-6), pytest.approx(33.5658, abs=1e-6), pytest.approx(10.0), 90)
    got = events(engine, "TRK-GT06")
    assert [e["kind"] for e in got] == ["login", "heartbeat"] and got[-1]["heard_kind"] == "heartbeat"
    assert got[1]["battery"] == pytest.approx(83.3) and got[1]["details"]["charging"] is True
    with engine.connect() as conn:
        last = conn.execute(text("SELECT l.ts FROM unit_last_positions l JOIN units u ON u.id = l.unit_id "
                                 "WHERE u.callsign = 'TRK-GT06'")).scalar()
    assert last == t0 + timedelta(seconds=10)         # a fix the device marks as none never moves the unit
    assert wait_for(lambda: _live(engine, "TRK-GT06") >= 4)


def _live(engine, callsign) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM live_events WHERE payload->>'callsign' = :c"),
                            {"c": callsign}).scalar()


def test_gt06_unknown_devices_and_broken_frames_leave_other_connections_alone(server, engine):
    t0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=1)
    with connect(server.ports["gt06"]) as good, connect(server.ports["gt06"]) as stranger, \
            connect(server.ports["gt06"]) as noisy:
        good.sendall(login(IMEI, 1))
        assert read(good, 10) == gt06.ack(0x01, 1)
        stranger.sendall(login("358899051025323", 1))     # no unit has this IMEI: no answer, closed
        assert closed(stranger)
        # Noise, a frame with a broken CRC and a location before any login: none is stored or answered.
        broken = bytearray(location(t0, 114.0, 33.6, 0, 0, 2))
        broken[12] ^= 0xFF
        noisy.sendall(b"\x00\x01GET / HTTP/1.0\r\n\r\n" + bytes(broken) + location(t0, 114.0, 33.6, 0, 0, 3))
        # The logged-in device goes on as if nothing happened, its frame split across reads.
        frame = location(t0, 114.0172, 33.5658, 20, 45, 2)
        good.sendall(frame[:17])
        time.sleep(0.1)
        good.sendall(frame[17:])
        assert read(good, 10) == gt06.ack(0x12, 2)
        noisy.settimeout(0.5)
        with pytest.raises(socket.timeout):
            noisy.recv(1)
        with connect(server.ports["gt06"]) as junk:    # nothing but noise, and plenty of it: given up
            junk.sendall(b"\x00" * 20000)
            assert closed(junk)
        good.sendall(gt06.encode(0x13, bytes([0x00, 0x06, 0x04, 0x00, 0x02]), 3))
        assert read(good, 10) == gt06.ack(0x13, 3)
    assert [r["ts"] for r in stored(engine, "TRK-GT06")] == [t0]


def test_h02_messages_are_stored_without_an_answer(server, engine):
    t0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=3)
    with connect(server.ports["h02"]) as conn, connect(server.ports["h02"]) as stranger:
        two = h02_v1(H02_ID, t0, "3333.9480", "11401.0320", "10.00", "090") + b"\r\n" + \
            h02_v1(H02_ID, t0 + timedelta(seconds=10), "3333.9500", "11401.0400", "12.00", "095")
        third = h02_v1(H02_ID, t0 + timedelta(seconds=20), "3333.9500", "11401.0400", "0.00", "0", valid="V")
        conn.sendall(two + third[:20])
        time.sleep(0.1)
        conn.sendall(third[20:] + f"*HQ,{H02_ID},XT,1,100#".encode())
        stranger.sendall(h02_v1("9999999999", t0, "3333.9480", "11401.0320", "10.00", "090"))
        assert closed(stranger)
        assert wait_for(lambda: len(stored(engine, "TRK-H02")) == 3 and len(events(engine, "TRK-H02")) == 1)
        conn.settimeout(0.3)
        with pytest.raises(socket.timeout):           # V1 needs no answer, and none is sent
            conn.recv(1)
    rows = stored(engine, "TRK-H02")
    assert [(r["ts"], r["flags"]) for r in rows] == [(t0, 0), (t0 + timedelta(seconds=10), 0),
                                                     (t0 + timedelta(seconds=20), FLAG_INVALID)]
    assert (rows[0]["lat"], rows[0]["lon"]) == (pytest.approx(33 + 33.948 / 60), pytest.approx(114 + 1.032 / 60))
    assert (rows[0]["speed"], rows[0]["heading"]) == (pytest.approx(10 * 0.514444), 90)
    assert [e["kind"] for e in events(engine, "TRK-H02")] == ["heartbeat"]


def test_serve_runs_the_tracker_ports_and_stops_them_with_it(engine, tmp_path):
    """`anwang serve --gt06-port N --h02-port M`: the ports answer beside the app, and stopping the
    server stops them."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import drop_database, fresh_database

    own = fresh_database(engine, "trackers")
    with own.begin() as conn:
        conn.execute(text("INSERT INTO units (callsign, kind, device_id, token_hash, status) "
                          "VALUES ('TRK-1', 'car', :d, 'x', 'on_duty')"), {"d": IMEI})
    ports = []
    for _ in range(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    env = dict(os.environ, ANWANG_DB_NAME=own.url.database, ANWANG_ACCESS_LOG="0")
    anwang = Path(sys.executable).with_name("anwang")
    log = open(tmp_path / "serve.log", "wb")
    server = subprocess.Popen([str(anwang), "serve", "--port", str(ports[0]), "--gt06-port", str(ports[1]),
                               "--h02-port", str(ports[2])], env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)

    def listening(port) -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    def trackers() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except (OSError, ValueError):
                continue
            if b"trackers" in cmdline and str(ports[1]).encode() in cmdline:
                found.append(int(entry.name))
        return found

    try:
        assert wait_for(lambda: listening(ports[1]) and listening(ports[2]), 60), \
            (tmp_path / "serve.log").read_text()[-2000:]
        t0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=30)
        with connect(ports[1]) as conn:
            conn.sendall(login(IMEI, 7) + location(t0, 114.0172, 33.5658, 18, 180, 8))
            assert read(conn, 20) == gt06.ack(0x01, 7) + gt06.ack(0x12, 8)
        with own.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM positions")).scalar() == 1
        assert len(trackers()) == 1
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        assert wait_for(lambda: not trackers() and not listening(ports[1]), 10)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
        for pid in trackers():
            os.kill(pid, signal.SIGKILL)
        log.close()
        drop_database(engine, own)
