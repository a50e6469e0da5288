"""An HTTP proxy on 127.0.0.1 in front of the real Infisical server that misbehaves on request: it
holds a request (so a token ages past its TTL), loses an answer after the server acted on the
request, answers 429 itself, or goes down (every connection dropped) after some requests.
Everything else passes through unchanged; every exchange is logged."""

from __future__ import annotations

import http.client
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "te", "trailer", "upgrade"}


@dataclass
class Rule:
    """What the next ``times`` requests matching ``method`` and ``path`` (a regex) get."""

    method: str
    path: str
    action: Literal["hold", "hold-answer", "lose-answer", "answer"]
    times: int = 1
    seconds: float = 0.0  # hold: how long before forwarding; hold-answer: after the server answered
    status: int = 429  # answer: the status, with a Retry-After of one second
    used: int = 0


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    status: int | None  # what the server answered (None: not forwarded)
    message: str  # the server's message, for error answers
    fault: str  # "" or the rule's action


@dataclass
class FaultProxy:
    upstream: str
    rules: list[Rule] = field(default_factory=list)
    log: list[Exchange] = field(default_factory=list)
    url: str = ""
    down_after: tuple[str, str, int] | None = None  # (method, path, n): an outage after n such requests
    down: bool = False  # every request: the connection drops, nothing reaches the server
    _arrived: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def _match(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.used < rule.times and rule.method == method and re.search(rule.path, path):
                    rule.used += 1
                    return rule
        return None

    def going_down(self, method: str, path: str) -> bool:
        """Whether this request meets the outage: once ``down``, or when it is a request past the
        first n of ``down_after`` (decided as it arrives: requests sent together split cleanly)."""
        with self._lock:
            if self.down_after and method == self.down_after[0] and re.search(self.down_after[1], path):
                self._arrived += 1
                self.down = self.down or self._arrived > self.down_after[2]
            return self.down

    def count(self, method: str, path: str) -> int:
        return sum(1 for e in self.log if e.method == method and re.search(path, e.path))


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    target = urlsplit(proxy.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if proxy.going_down(self.command, self.path):
                proxy.log.append(Exchange(self.command, self.path, None, "", "down"))
                self.close_connection = True
                return
            rule = proxy._match(self.command, self.path)
            if rule is not None and rule.action == "answer":
                payload = b'{"statusCode":429,"message":"Rate limit exceeded","error":"TooManyRequests"}'
                self.send_response(rule.status)
                self.send_header("Retry-After", "1")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                proxy.log.append(Exchange(self.command, self.path, None, "", "answer"))
                return
            if rule is not None and rule.action == "hold":
                time.sleep(rule.seconds)
            conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port or 80, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
            conn.request(self.command, self.path, body=body or None, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            message = ""
            if answer.status >= 400:
                found = re.search(rb'"message"\s*:\s*"([^"]*)"', data)
                message = found[1].decode() if found else ""
            proxy.log.append(Exchange(self.command, self.path, answer.status, message, rule.action if rule else ""))
            if rule is not None and rule.action == "hold-answer":
                time.sleep(rule.seconds)
            if rule is not None and rule.action == "lose-answer":
                self.close_connection = True  # the server acted; the caller hears nothing
                return
            try:
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in HOP_BY_HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the caller went away while the answer was held (a killed `up`)
            finally:
                conn.close()

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream.rstrip("/"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
