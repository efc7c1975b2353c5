"""A programmable HTTP reverse proxy that injects network faults between a client and a server (stdlib only).

    proxy = FaultProxy("http://127.0.0.1:8080/fhir/R4")
    base = proxy.start()                      # http://127.0.0.1:<port>/fhir/R4, same path as the upstream
    proxy.schedule(["500", "lost_response"])  # one fault per incoming request, then "ok" for the rest
    ...
    proxy.requests                            # every request: method, path, fault, status sent (None: no answer)
    proxy.stop(); proxy.start()               # down-time (connection refused), then up again on the same port

Faults:
    "ok"             forward the request and return the upstream response
    "500", "503"...  any 3-digit status: answered by the proxy with an OperationOutcome, not forwarded
                     ("429" carries `Retry-After: 0`)
    "timeout"        read the request, never answer: the connection is held until `hold_seconds` have passed
                     (longer than any client timeout in the tests) or the proxy stops, then closed
    "reset"          read the request, then close the socket abruptly (TCP RST), not forwarded
    "lost_response"  forward the request, let the server commit it, then reset the connection instead of
                     answering: the client never learns that its write succeeded (the case that makes duplicates)
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import struct
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

FAULTS = ("ok", "timeout", "reset", "lost_response")  # plus any 3-digit HTTP status
# Hop-by-hop headers, or ones that no longer hold once the proxy has read the whole body.
_DROPPED_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "te"}


@dataclass(frozen=True)
class ProxiedRequest:
    method: str
    path: str
    fault: str
    status: int | None  # the status the client received; None when it got no answer
    body: bytes


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # rebinding the same port right after stop()

    def __init__(self, address: tuple[str, int], proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(address, _Handler)

    def process_request(self, request: socket.socket, client_address: object) -> None:
        self.proxy._track(request)
        super().process_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real clients use it: a fault must also work mid-connection
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass  # the records are the log

    def do_GET(self) -> None:
        self._proxy()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def _proxy(self) -> None:
        proxy = self.server.proxy
        body = self._read_body()
        fault = proxy._next_fault()
        status: int | None = None
        try:
            if fault == "ok":
                status = self._answer(*proxy._forward(self.command, self.path, self.headers, body))
            elif fault.isdigit() and len(fault) == 3:
                status = self._answer(*_fault_response(int(fault)))
            elif fault == "timeout":
                proxy._stopping.wait(proxy.hold_seconds)
                self._reset()
            elif fault == "reset":
                self._reset()
            elif fault == "lost_response":
                proxy._forward(self.command, self.path, self.headers, body)
                self._reset()
            else:
                raise ValueError(f"unknown fault {fault!r}")
        finally:
            proxy._record(ProxiedRequest(self.command, self.path, fault, status, body))

    def _read_body(self) -> bytes:
        if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after each chunk
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailer fields, up to the blank line
        return b"".join(chunks)

    def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> int:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _DROPPED_HEADERS:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return status

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN: the client sees a reset connection.
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def finish(self) -> None:
        with contextlib.suppress(OSError):  # the socket may have been reset or closed by stop()
            super().finish()


def _fault_response(status: int) -> tuple[int, list[tuple[str, str]], bytes]:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "transient", "diagnostics": f"fault injected by the proxy: {status}"}],
    }
    headers = [("Content-Type", "application/fhir+json")]
    if status == 429:
        headers.append(("Retry-After", "0"))
    return status, headers, json.dumps(outcome).encode()


class FaultProxy:
    def __init__(self, upstream_base: str, *, hold_seconds: float = 30.0) -> None:
        upstream = urlsplit(upstream_base)
        self.upstream_host = upstream.hostname or "127.0.0.1"
        self.upstream_port = upstream.port or 80
        self.base_path = upstream.path.rstrip("/")
        self.hold_seconds = hold_seconds
        self.port = 0  # chosen by the first start(), kept by the next ones
        self._lock = threading.Lock()
        self._faults: deque[str] = deque()
        self._records: list[ProxiedRequest] = []
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base_path}"

    def start(self) -> str:
        """Listens (on the port of the previous start, if any) and returns the proxy's base URL."""
        if self._server is not None:
            return self.base_url
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", self.port), self)
        self.port = self._server.server_address[1]
        # A short poll interval: stop() waits for the serving loop to notice, and tests stop proxies often.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stops listening and drops every open connection: new connections are refused until start()."""
        if self._server is None:
            return
        self._stopping.set()  # releases held "timeout" connections
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections, self._connections = self._connections, set()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def schedule(self, faults: list[str] | tuple[str, ...]) -> None:
        """Appends faults, consumed one per incoming request; once they run out, requests are forwarded."""
        for fault in faults:
            if fault not in FAULTS and not (fault.isdigit() and len(fault) == 3):
                raise ValueError(f"unknown fault {fault!r}: one of {FAULTS} or an HTTP status")
        with self._lock:
            self._faults.extend(faults)

    @property
    def pending(self) -> int:
        """Scheduled faults not yet consumed."""
        with self._lock:
            return len(self._faults)

    @property
    def requests(self) -> list[ProxiedRequest]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        """Forgets the recorded requests and the faults not yet consumed."""
        with self._lock:
            self._faults.clear()
            self._records.clear()

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_fault(self) -> str:
        with self._lock:
            return self._faults.popleft() if self._faults else "ok"

    def _record(self, request: ProxiedRequest) -> None:
        with self._lock:
            self._records.append(request)

    def _track(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections = {c for c in self._connections if c.fileno() != -1}
            self._connections.add(conn)

    def _forward(
        self, method: str, path: str, headers: http.client.HTTPMessage, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            forwarded = {k: v for k, v in headers.items() if k.lower() not in _DROPPED_HEADERS | {"host"}}
            conn.request(method, path, body=body or None, headers=forwarded)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()
