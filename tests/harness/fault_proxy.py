"""A small threaded HTTP proxy in front of the harness's Label Studio that fails on purpose and counts.

On a seeded share of requests (``fault_rate``) it answers 502 without forwarding, resets the connection
before forwarding, or forwards and then resets (Label Studio did the work, the client never hears of
it: the case that makes non-idempotent retries dangerous). With ``fault_rate=0`` it is a counting
proxy: ``forwarded["PATCH"]`` is how many PATCH requests reached Label Studio.

``inject`` scripts Label Studio misbehaving on chosen requests: a slow answer (``slow_seconds``), a
200 whose JSON is cut in half, a 200 HTML error page (a misconfigured reverse proxy), or a revoked
token (the request goes on with a wrong token, so the real Label Studio answers 401).
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import httpx

FAULTS = ("502", "reset_before", "reset_after")
SCRIPTED = ("slow", "truncated", "html200", "revoked")
HTML_ERROR_PAGE = (
    b"<html><head><title>Service Unavailable</title></head><body><h1>Please wait</h1></body></html>"
)
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


class FaultProxy:
    def __init__(self, target: str, *, fault_rate: float = 0.0, seed: int = 0) -> None:
        self.target = target.rstrip("/")
        self.fault_rate = fault_rate
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()  # every request received, by method
        self.forwarded: Counter[str] = Counter()  # requests that reached Label Studio, by method
        self.faults: Counter[str] = Counter()  # faults injected, by kind
        self._http = httpx.Client(timeout=120.0)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self.slow_seconds = 10.0
        self._script: list[list[Any]] = []  # [fault, "METHOD /path" prefix, matches to let through, times]
        self.revoked = False  # set by the first "revoked" fault: from then on every request is refused

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.forwarded.clear()
            self.faults.clear()

    def inject(self, fault: str, match: str = "", *, after: int = 0, times: int = 1) -> None:
        """Give ``fault`` to ``times`` requests matching ``match`` ("GET /api/tasks"), after ``after`` of them."""
        assert fault in SCRIPTED, fault
        with self._lock:
            self._script.append([fault, match, after, times])

    def _scripted(self, request: str) -> str | None:
        for entry in self._script:
            fault, match, after, times = entry
            if request.startswith(match):
                if after:
                    entry[2] = after - 1
                    return None
                entry[3] = times - 1
                if entry[3] == 0:
                    self._script.remove(entry)
                return str(fault)
        return None

    def _decide(self, method: str, path: str = "") -> str | None:
        with self._lock:
            self.requests[method] += 1
            scripted = self._scripted(f"{method} {path}")
            if scripted == "revoked":
                self.revoked = True
            if scripted is not None or self.revoked:
                fault = scripted or "revoked"
                self.faults[fault] += 1
                return fault
            if self._rng.random() >= self.fault_rate:
                return None
            fault = self._rng.choice(FAULTS)
            self.faults[fault] += 1
            return fault

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        with self._lock:
            self.forwarded[method] += 1
        return self._http.request(method, self.target + path, headers=headers, content=body)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _reset(self) -> None:
                # SO_LINGER 0: close() sends a TCP RST instead of a clean FIN.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy._decide(self.command, self.path)
                if fault == "502":
                    payload = b'{"detail": "bad gateway (fault proxy)"}'
                    self._answer(502, {"Content-Type": "application/json"}, payload)
                    return
                if fault == "reset_before":
                    self._reset()
                    return
                if fault == "html200":
                    self._answer(200, {"Content-Type": "text/html"}, HTML_ERROR_PAGE)
                    return
                if fault == "slow":
                    time.sleep(proxy.slow_seconds)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                headers["Accept-Encoding"] = "identity"
                if fault == "revoked":
                    headers["Authorization"] = "Token revoked-by-the-fault-proxy"
                response = proxy._forward(self.command, self.path, headers, body)
                if fault == "reset_after":
                    self._reset()
                    return
                content = response.content
                if fault == "truncated":
                    content = content[: len(content) // 2]
                self._answer(response.status_code, response.headers, content)

            def _answer(self, status: int, headers: Mapping[str, str], content: bytes) -> None:
                self.send_response_only(status)  # LS's own Date and Server headers follow
                for key, value in headers.items():
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(content)
                self.close_connection = True

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        return Handler
