"""What both API doubles share: a threaded HTTP/1.1 server on 127.0.0.1 that writes JSON answers."""

from __future__ import annotations

import json
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol


class Double(Protocol):
    url: str


class JsonHandler(BaseHTTPRequestHandler):
    """Keep-alive like the real servers; subclasses read the request and call :meth:`answer`."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

    def read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else None

    def lower_headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def answer(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        """JSON for dicts and lists, plain text for strings (as API servers answer unknown paths)."""
        text = isinstance(payload, str)
        data = payload.encode() if text else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8" if text else "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    failures: list[str]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that time out or drop keep-alive sockets are part of the tests; anything else is a
        bug in a double, which the client would only see as a dropped connection (and retry)."""
        kind = sys.exc_info()[0]
        if kind is not None and not issubclass(kind, (ConnectionError, TimeoutError)):
            self.failures.append(traceback.format_exc())


class LocalServer:
    """Serves ``double`` with ``handler`` on a free port of 127.0.0.1; sets ``double.url``."""

    def __init__(self, double: Double, handler: type[JsonHandler]) -> None:
        bound = type("Handler", (handler,), {"double": double})
        self.httpd = _Server(("127.0.0.1", 0), bound)
        self.httpd.failures = []
        double.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.httpd.failures:
            raise AssertionError("the double raised while answering:\n" + "\n".join(self.httpd.failures))
