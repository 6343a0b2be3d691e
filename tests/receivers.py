"""Real receivers on 127.0.0.1 for delivery tests: an HTTP endpoint and an SMTP server.

    with HTTPReceiver() as rx:
        ...  # POST to rx.url
        rx.fail = True       # answer 500 from now on
        rx.stop(); rx.start()  # down, then back on the same port
        rx.posts             # [{"path": ..., "json": {...}}, ...] in arrival order
"""
from __future__ import annotations

import json
import socket
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


class HTTPReceiver:
    """Records every POST it receives; can fail (500) or go down and come back on its port."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.fail = False
        self.failed = 0  # POSTs answered with 500
        self.port = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        rx = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with rx._lock:
                    if rx.fail:
                        rx.failed += 1
                        code = 500
                    else:
                        try:
                            body: Any = json.loads(raw)
                        except ValueError:
                            body = None
                        rx.posts.append({"path": self.path, "json": body, "raw": raw})
                        code = 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass  # keep test output quiet

        return Handler

    def start(self) -> "HTTPReceiver":
        """Start serving (on the same port as before, if it ran already)."""
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.05})
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port: connections are refused until start()."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join()
            self._server = self._thread = None

    def messages(self) -> list[dict[str, Any]]:
        """The JSON bodies received, in order."""
        with self._lock:
            return [p["json"] for p in self.posts]

    def __enter__(self) -> "HTTPReceiver":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Recorder:
    """aiosmtpd handler: keep each message, or refuse it with a 5xx while told to."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse = False
        self.refused = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.refuse:
            self.refused += 1
            return "554 Transaction failed: told to refuse"
        msg = message_from_bytes(envelope.original_content or envelope.content,
                                 policy=policy.default)
        self.messages.append(msg)  # type: ignore[arg-type]
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


def _free_port() -> int:
    # aiosmtpd's Controller needs a concrete port to connect its readiness probe to.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SMTPReceiver:
    """A real aiosmtpd server on 127.0.0.1 (no TLS, no auth) that records messages."""

    def __init__(self) -> None:
        self.handler = _Recorder()
        self.port = _free_port()
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[EmailMessage]:
        return self.handler.messages

    @property
    def refuse(self) -> bool:
        return self.handler.refuse

    @refuse.setter
    def refuse(self, value: bool) -> None:
        self.handler.refuse = value

    def __enter__(self) -> "SMTPReceiver":
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
