"""The harness every fake vendor server plugs into: a threaded HTTP server on 127.0.0.1 that routes
requests, records them for assertions, and injects faults on demand.

Written on the standard library's ThreadingHTTPServer: a fake must speak real HTTP over a socket so
the production clients talk to it unchanged, and nothing heavier is needed for that.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Route = Callable[[Request, re.Match[str]], Response]


@dataclass
class Fault:
    """Answer the next `count` matching requests with `response` instead of the real behaviour."""

    path_pattern: str
    response: Response
    count: int
    body_contains: bytes = b""

    def matches(self, request: Request) -> bool:
        return (
            self.count > 0
            and re.search(self.path_pattern, request.path) is not None
            and self.body_contains in request.body
        )


class FakeServer:
    """Subclasses register routes with `self.route(method, regex, handler)`."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Route]] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ set-up
    def route(self, method: str, pattern: str, handler: Route) -> None:
        self._routes.append((method, re.compile(f"^{pattern}$"), handler))

    def fail_next(
        self,
        path_pattern: str,
        count: int,
        status: int,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        body_contains: bytes = b"",
    ) -> None:
        """The next `count` requests to `path_pattern` (whose body holds `body_contains`) get `status`."""
        fault = Fault(path_pattern, Response(status, body, headers or {}), count, body_contains)
        with self._lock:
            self._faults.append(fault)

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                response = fake.dispatch(request)
                payload = b"" if response.body is None else json.dumps(response.body).encode()
                self.send_response(response.status)
                self.send_header("Content-Type", response.headers.pop("Content-Type", "application/json"))
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read their own records
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self.base_url

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ serving
    def dispatch(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(request)
            for fault in self._faults:
                if fault.matches(request):
                    fault.count -= 1
                    return Response(fault.response.status, fault.response.body, dict(fault.response.headers))
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                return handler(request, match)
        return Response(404, {"error": f"no route for {request.method} {request.path}"})

    def requests_to(self, path_pattern: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if re.search(path_pattern, r.path)]
