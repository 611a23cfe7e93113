"""The tracker ports: GT06 (binary) and H02 (text) devices over TCP, beside the app.

One event loop thread holds every connection; each connection reads what arrives, cuts it into
frames (a frame may arrive in pieces, several may arrive together), decodes them and hands their
fixes and reports to the same group commit as the OsmAnd port (quality filters, live events). A GT06
frame is acknowledged only once the commit holding it is done, so an acknowledgement still means
stored and the device may drop it from its memory. A device is its unit's device id (the IMEI): an
unknown one is logged and its connection closed; noise and broken frames are skipped without
touching other connections.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import datetime, timezone

from geo.patrol import groupcommit, gt06, h02
from geo.patrol.events import Heard
from geo.patrol.filters import DEFAULT_LIMITS, Limits
from geo.patrol.writer import WAIT_S, GroupCommit

log = logging.getLogger(__name__)
READ_SIZE = 4096
IDLE_S = 600.0             # trackers send a heartbeat every few minutes; silence this long is a dead link
MAX_BUFFER = 16384         # bytes kept, or skipped before a first frame, before a connection is given up
UNKNOWN_LOG_S = 600.0      # an unknown device that keeps calling is logged this often


class TrackerServer:
    """Listen for GT06 and H02 trackers on their ports and store what they report."""

    def __init__(self, conninfo: str, host: str = "127.0.0.1", gt06_port: int | None = None,
                 h02_port: int | None = None, limits: Limits = DEFAULT_LIMITS):
        self.conninfo, self.host, self.limits = conninfo, host, limits
        self.wanted = {"gt06": gt06_port, "h02": h02_port}
        self.ports: dict[str, int] = {}
        self.writer: GroupCommit | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.servers: list = []
        self.unknown: dict[str, float] = {}

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> dict[str, int]:
        """Bind the ports and serve them from a thread; return the ports bound (0 picks a free one)."""
        self.writer = GroupCommit(self.conninfo, limits=self.limits)
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self._listen())
            except BaseException as exc:  # noqa: BLE001 — reported to the thread that started it
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="anwang-trackers", daemon=True)
        self.thread.start()
        ready.wait(30)
        if failure:
            self.writer.close()
            raise failure[0]
        return dict(self.ports)

    async def _listen(self) -> None:
        handlers = {"gt06": self._gt06, "h02": self._h02}
        for name, port in self.wanted.items():
            if port is None:
                continue
            server = await asyncio.start_server(handlers[name], self.host, port)
            self.servers.append(server)
            self.ports[name] = server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        """Close the ports and every connection, then the writer once what it holds is stored."""
        if self.loop is not None and self.thread is not None and self.thread.is_alive():
            async def shut() -> None:
                for server in self.servers:
                    server.close()
                    if hasattr(server, "close_clients"):
                        server.close_clients()
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

            asyncio.run_coroutine_threadsafe(shut(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    # -- storing -------------------------------------------------------------------------------
    async def _store(self, ping: groupcommit.Ping):
        """Hand a ping to the group commit; its outcome once committed (an exception if it failed)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def settle(waiting) -> None:
            if future.done():
                return
            if waiting.error is not None:
                future.set_exception(waiting.error)
            else:
                future.set_result(waiting.outcome)

        self.writer.submit(ping, lambda waiting: loop.call_soon_threadsafe(settle, waiting))
        return await asyncio.wait_for(future, WAIT_S)

    def _known(self, device: str, outcome, peer) -> bool:
        """Whether the ping's device is a unit; an unknown one is logged, not too often."""
        if outcome != groupcommit.UNKNOWN_DEVICE:
            return True
        last = self.unknown.get(device)
        if last is None or time.monotonic() - last > UNKNOWN_LOG_S:
            self.unknown[device] = time.monotonic()
            log.warning("tracker %s at %s is no unit's device id; closing (add it with "
                        "`anwang units add … --device-id %s`)", device, peer, device)
        return False

    @staticmethod
    def _count(state: dict, frames: int, skipped: int) -> None:
        """Keep count of a connection's frames and noise: one that never frames anything is closed."""
        state["frames"] = state.get("frames", 0) + frames
        state["noise"] = state.get("noise", 0) + skipped

    async def _connection(self, reader, writer, handle) -> None:
        """Read, cut and handle until the device hangs up, goes silent or is given up."""
        peer = writer.get_extra_info("peername")
        state: dict = {"peer": peer}
        buffer = b""
        try:
            while True:
                chunk = await asyncio.wait_for(reader.read(READ_SIZE), IDLE_S)
                if not chunk:
                    break
                buffer, replies, keep_open = await handle(state, buffer + chunk)
                if replies:
                    writer.write(replies)
                    await writer.drain()
                if not keep_open or len(buffer) > MAX_BUFFER or \
                        (not state.get("frames") and state.get("noise", 0) > MAX_BUFFER):
                    break
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:  # noqa: BLE001 — one connection's failure must not touch the others
            log.exception("tracker connection from %s failed", peer)
        finally:
            writer.close()

    # -- GT06 ----------------------------------------------------------------------------------
    async def _gt06(self, reader, writer) -> None:
        await self._connection(reader, writer, self._gt06_read)

    def _gt06_work(self, state: dict, frames: list, received: datetime) -> list:
        """What each frame asks for: (frame, the ping to store or None, the reply to send at once)."""
        work: list = []
        for frame in frames:
            try:
                message = gt06.decode(frame, state.get("zone") or timezone.utc, received)
            except gt06.Malformed as exc:
                log.info("GT06 %s: protocol 0x%02x frame skipped: %s", state["peer"], frame.protocol, exc)
                work.append((frame, None, gt06.ack(frame.protocol, frame.serial)
                             if frame.protocol in gt06.ACKNOWLEDGED and state.get("imei") else b""))
                continue
            if message.imei is not None:
                state["imei"], state["zone"] = message.imei, message.zone
                details = {"protocol": "gt06", "peer": str(state["peer"][0]) if state["peer"] else None}
                login = Heard(received, "login", None, details, received=received)
                work.append((frame, groupcommit.Ping(message.imei, [], heard=login), b""))
            elif not state.get("imei"):
                continue                           # nothing counts before the device says who it is
            elif frame.protocol == gt06.TIME_REQUEST:
                work.append((frame, None, gt06.time_reply(frame.serial, received)))
            elif message.fix is not None or message.heard is not None:
                fixes = [message.fix] if message.fix is not None else []
                work.append((frame, groupcommit.Ping(state["imei"], fixes, heard=message.heard), b""))
            elif frame.protocol in gt06.ACKNOWLEDGED:
                work.append((frame, None, gt06.ack(frame.protocol, frame.serial)))
        return work

    async def _gt06_read(self, state: dict, data: bytes) -> tuple[bytes, bytes, bool]:
        frames, rest, skipped = gt06.split(data)
        self._count(state, len(frames), skipped)
        if skipped:
            log.info("GT06 %s: skipped %d bytes that were no frame", state["peer"], skipped)
        received = datetime.now(timezone.utc)
        work = self._gt06_work(state, frames, received)
        # Every ping of this read goes to the writer at once (one group commit), answered in order.
        pending = [(frame, asyncio.ensure_future(self._store(ping)) if ping else None, reply)
                   for frame, ping, reply in work]
        replies, keep_open = [], True
        for frame, stored, reply in pending:
            if stored is None:
                replies.append(reply)
                continue
            try:
                outcome = await stored
            except Exception:  # noqa: BLE001 — not stored: no acknowledgement, the device sends it again
                log.warning("GT06 %s: protocol 0x%02x frame not stored", state["peer"], frame.protocol)
                continue
            if not self._known(state["imei"], outcome, state["peer"]):
                keep_open = False
                break
            if frame.protocol in gt06.ACKNOWLEDGED:
                replies.append(gt06.ack(frame.protocol, frame.serial))
        for _, stored, _ in pending:
            if stored is not None and not stored.done():
                stored.cancel()
        return rest, b"".join(replies), keep_open

    # -- H02 -----------------------------------------------------------------------------------
    async def _h02(self, reader, writer) -> None:
        await self._connection(reader, writer, self._h02_read)

    async def _h02_read(self, state: dict, data: bytes) -> tuple[bytes, bytes, bool]:
        messages, rest, skipped = h02.split(data)
        self._count(state, len(messages), skipped)
        if skipped > 2 * len(messages):            # more than the line ends between messages
            log.info("H02 %s: skipped %d bytes that were no message", state["peer"], skipped)
        received = datetime.now(timezone.utc)
        pings = []
        for text in messages:
            try:
                message = h02.decode(text, received)
            except h02.Malformed as exc:
                log.info("H02 %s: message skipped: %s", state["peer"], exc)
                continue
            device = message.device or state.get("device")
            if not device:
                continue
            state["device"] = device
            fixes = [message.fix] if message.fix is not None else []
            pings.append(groupcommit.Ping(device, fixes, heard=message.heard))
        stored = [asyncio.ensure_future(self._store(p)) for p in pings]
        for ping, future in zip(pings, stored):
            try:
                outcome = await future
            except Exception:  # noqa: BLE001 — H02 has no acknowledgement: nothing more to do
                log.warning("H02 %s: a message of %s was not stored", state["peer"], ping.device)
                continue
            if not self._known(ping.device, outcome, state["peer"]):
                for f in stored:
                    f.cancel()
                return rest, b"", False
        return rest, b"", True
