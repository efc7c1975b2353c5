"""Real local servers for the alert tests: a small SMTP server and an HTTP webhook receiver (stdlib only).

Both run in a thread on 127.0.0.1 with an ephemeral port, keep every byte they receive, and can be told to
fail: the SMTP server answers DATA with a given code for the next N messages, the webhook answers the next
N requests (or every request) with a given status.
"""

from __future__ import annotations

import base64
import json
import socketserver
import threading
from collections import deque
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# --- SMTP --------------------------------------------------------------------------------------------------


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_to: list[str]
    data: bytes  # the raw message as received (after dot-unstuffing)
    authenticated_as: str | None

    @property
    def message(self) -> Message:
        return message_from_bytes(self.data)


class _SmtpHandler(socketserver.StreamRequestHandler):
    server: SmtpTestServer

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        state: dict[str, Any] = {"from": None, "rcpt": [], "user": None}
        self.server.connections += 1
        self.reply("220 clinic-test-smtp ESMTP")
        while True:
            raw = self.rfile.readline(65536)
            if not raw:
                return
            self.server.raw_commands.append(raw)
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                self.wfile.write(b"250-clinic-test-smtp\r\n250-8BITMIME\r\n")
                self.reply("250 AUTH PLAIN" if self.server.credentials else "250 SIZE 10485760")
            elif verb == "HELO":
                self.reply("250 clinic-test-smtp")
            elif verb == "AUTH":
                mechanism, _, initial = arg.partition(" ")
                parts = base64.b64decode(initial).split(b"\0") if mechanism.upper() == "PLAIN" and initial else []
                if len(parts) == 3 and (parts[1].decode(), parts[2].decode()) == self.server.credentials:
                    state["user"] = parts[1].decode()
                    self.reply("235 2.7.0 Authentication successful")
                else:
                    self.reply("535 5.7.8 Authentication credentials invalid")
            elif verb == "MAIL":
                if self.server.credentials and not state["user"]:
                    self.reply("530 5.7.0 Authentication required")
                    continue
                state["from"], state["rcpt"] = arg.partition(":")[2].strip().strip("<>").split(" ")[0], []
                self.reply("250 OK")
            elif verb == "RCPT":
                state["rcpt"].append(arg.partition(":")[2].strip().strip("<>"))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                lines = []
                while True:
                    chunk = self.rfile.readline(1 << 20)
                    if chunk in (b".\r\n", b".\n", b""):
                        break
                    lines.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                code = self.server.next_data_reply()
                if code is None:
                    mail = ReceivedMail(state["from"], list(state["rcpt"]), b"".join(lines), state["user"])
                    self.server.received.append(mail)
                    self.reply("250 OK queued")
                else:
                    self.server.rejected += 1
                    self.reply(f"{code} test failure")
            elif verb == "RSET":
                state["from"], state["rcpt"] = None, []
                self.reply("250 OK")
            elif verb == "NOOP":
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("502 Command not implemented")


class SmtpTestServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _SmtpHandler)
        self.credentials = credentials
        self.received: list[ReceivedMail] = []
        self.raw_commands: list[bytes] = []
        self.connections = 0
        self.rejected = 0
        self._fail: deque[int] = deque()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def fail_next(self, code: int, times: int = 1) -> None:
        self._fail.extend([code] * times)

    def next_data_reply(self) -> int | None:
        with self._lock:
            return self._fail.popleft() if self._fail else None

    def all_bytes(self) -> bytes:
        return b"".join(self.raw_commands) + b"".join(m.data for m in self.received)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


# --- webhook -----------------------------------------------------------------------------------------------


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """`statuses`: answers for the next requests (then `default_status`); `status_for(ref)` per alert."""

    default_status: int = 200
    statuses: deque[int] = field(default_factory=deque)
    received: list[ReceivedRequest] = field(default_factory=list)
    failing_refs: dict[str, deque[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        receiver = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    receiver.received.append(ReceivedRequest(self.path, dict(self.headers.items()), body))
                    ref = self.headers.get("Idempotency-Key", "")
                    per_ref = receiver.failing_refs.get(ref)
                    if per_ref:
                        status = per_ref.popleft()
                    elif receiver.statuses:
                        status = receiver.statuses.popleft()
                    else:
                        status = receiver.default_status
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/safety"

    def all_bytes(self) -> bytes:
        return b"".join(r.path.encode() + json.dumps(r.headers).encode() + r.body for r in self.received)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
