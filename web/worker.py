"""The gunicorn worker `anwang serve` runs: gunicorn's threaded worker, which can also give a
request's socket away, and which answers the OsmAnd port from threads of its own.

A live viewer's request runs in a pool thread like any other; the view answers with a
`web.livefeed.Handover`, which gives the socket to the process's live feed and raises
`HandedOver`. The worker then forgets the connection without closing it, and the thread is free
for the next request. Only HTTP/1.x requests on plain sockets are offered the hand-over (an HTTP/2
stream or a TLS connection cannot be written to around their framing); the others get the
thread-held stream.

Connections accepted on the OsmAnd port are served by a pool of their own, so that nothing on the
main port — slow API requests, thousands of viewers connecting at once — can take the threads its
pings wait in.
"""
from __future__ import annotations

import ssl
import threading
from concurrent import futures

from gunicorn.workers.gthread import ThreadWorker

from . import incidents
from .livefeed import HANDOVER, HandedOver


class LiveWorker(ThreadWorker):
    """gthread, plus socket hand-over for /api/live and a thread pool for the OsmAnd port."""

    osmand_port: int | None = None
    osmand_threads = 32

    @classmethod
    def configured(cls, osmand_port: int | None, osmand_threads: int) -> type:
        """This worker for a server with the OsmAnd port (or none) and its pool's size."""
        return type(cls.__name__, (cls,), {"osmand_port": osmand_port, "osmand_threads": osmand_threads})

    def init_process(self):
        self.local = threading.local()
        self.osmand_pool = (futures.ThreadPoolExecutor(self.osmand_threads, thread_name_prefix="anwang-osmand")
                            if self.osmand_port else None)
        super().init_process()

    def load_wsgi(self):
        super().load_wsgi()
        app = self.wsgi
        threading.Thread(target=incidents.warm, args=(app,), name="anwang-warm", daemon=True).start()

        def offering_handover(environ, start_response):
            if getattr(self.local, "plain", False):
                environ[HANDOVER] = True
            return app(environ, start_response)

        self.wsgi = offering_handover

    def enqueue_req(self, conn):
        server = conn.server
        if self.osmand_pool is not None and isinstance(server, tuple) and server[1] == self.osmand_port:
            fs = self.osmand_pool.submit(self.handle, conn)
            fs.add_done_callback(lambda fut: self.method_queue.defer(self.finish_request, conn, fut))
        else:
            super().enqueue_req(conn)

    def handle_request(self, req, conn):
        # Only here, on the HTTP/1.x path, and only on a plain socket, may the socket be given away.
        self.local.plain = not isinstance(conn.sock, ssl.SSLSocket)
        try:
            return super().handle_request(req, conn)
        except HandedOver:
            conn.handed_over = True
            return False
        finally:
            self.local.plain = False

    def finish_request(self, conn, fs):
        if getattr(conn, "handed_over", False):
            self.nr_conns -= 1       # the live feed owns the socket now: not closed here
            return
        super().finish_request(conn, fs)

    def handle_quit(self, sig, frame):
        if self.osmand_pool is not None:
            self.osmand_pool.shutdown(wait=False)
        super().handle_quit(sig, frame)
