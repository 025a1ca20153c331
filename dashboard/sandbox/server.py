"""The sandbox on a real socket: the standard library's threaded HTTP server, no framework.

One thread per connection, so a request left hanging by a fault never blocks the others, and
``stop()`` never waits for one: it closes every open connection and returns.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .core import Sandbox, SandboxRequest, SandboxResponse

logger = logging.getLogger("dashboard.sandbox")

# How long a hanging request is held at most, when nothing lets it go sooner.
HANG_SECONDS = 60.0
# How long an idle keep-alive connection stays open.
IDLE_SECONDS = 30.0


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # Never join handler threads on close: one may be holding a hanging request.
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: SandboxServer) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-answer (a timeout, a stopped test) is not news.
        logger.debug("Sandbox connection from %s ended badly", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_SECONDS
    # Buffered: the status line, headers and body leave in one write when the stdlib flushes
    # after each request. Unbuffered (the stdlib's default), headers and body went out as two
    # small segments, and Nagle held the second until the client's delayed ACK: ~40 ms a
    # request on loopback.
    wbufsize = -1
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # A body larger than the write buffer still leaves in several writes: never hold one
        # back waiting for an ACK.
        if self.connection.family in (socket.AF_INET, socket.AF_INET6):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # The trailer section ends with an empty line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        owner = self.server.owner
        url = urlsplit(self.path)
        request = SandboxRequest(
            method=self.command,
            path=unquote(url.path),
            query=parse_qs(url.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self._read_body(),
        )
        answer = owner.sandbox.handle(request)
        if answer.delay > 0 and owner.stopping.wait(answer.delay):
            self.close_connection = True
            return
        if answer.hang:
            owner.hold(answer)
            # Let go without a word: the client sees the connection close (if it is still
            # waiting at all).
            self.close_connection = True
            return
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)
        logger.info("%s %s -> %s", self.command, url.path, answer.status)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve


class SandboxServer:
    """Serve a :class:`Sandbox` on ``host:port`` (0 picks a free port) from a daemon thread, and
    run the simulated reps every ``dial_interval`` seconds (0: never)."""

    def __init__(
        self,
        sandbox: Sandbox,
        host: str = "127.0.0.1",
        port: int = 0,
        dial_interval: float | None = 0.0,
        hang_seconds: float = HANG_SECONDS,
    ) -> None:
        self.sandbox = sandbox
        self.host = host
        self.port = port
        # None or 0: the simulated reps do not dial on their own.
        self.dial_interval = dial_interval or 0.0
        self.hang_seconds = hang_seconds
        self.stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("The sandbox server is not started.")
        host, port = self._httpd.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else str(host)
        return f"http://{shown}:{port}"

    def start(self) -> SandboxServer:
        self._httpd = _HTTPServer((self.host, self.port), self)
        self.port = self._httpd.server_address[1]
        serving = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="allo-sandbox-http",
            daemon=True,
        )
        serving.start()
        self._threads.append(serving)
        if self.dial_interval > 0:
            dialer = threading.Thread(target=self._dial, name="allo-sandbox-dialer", daemon=True)
            dialer.start()
            self._threads.append(dialer)
        return self

    def stop(self) -> None:
        self.stopping.set()
        httpd = self._httpd
        if httpd is None:
            return
        httpd.shutdown()
        with httpd.connections_lock:
            open_connections = list(httpd.connections)
        for connection in open_connections:
            # Already closed by the client: nothing to do.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=2)
        self._threads.clear()
        self._httpd = None

    def hold(self, answer: SandboxResponse) -> None:
        """Wait, without answering, until the fault is lifted, the server stops, or time's up."""
        deadline = time.monotonic() + self.hang_seconds
        release = answer.release or threading.Event()
        while time.monotonic() < deadline and not self.stopping.is_set():
            if release.wait(0.05):
                return

    def _dial(self) -> None:
        while not self.stopping.wait(self.dial_interval):
            try:
                self.sandbox.dial_step()
            except Exception:
                logger.exception("The simulated reps failed to dial")

    def __enter__(self) -> SandboxServer:
        return self if self._httpd is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
