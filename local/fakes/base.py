"""The harness every fake vendor server plugs into: a threaded HTTP server on 127.0.0.1 that routes
requests, records them for assertions, and injects faults on demand.

Written on the standard library's ThreadingHTTPServer: a fake must speak real HTTP over a socket so
the production clients talk to it unchanged, and nothing heavier is needed for that.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from local.fakes.openapi import SpecValidator, Violation, record


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

# A response with this status is not sent: the connection is closed instead (a reset).
CONNECTION_RESET = 0


@dataclass
class FaultProfile:
    """Random faults on a share of requests (seeded, so a run can be repeated).

    Shares are of all requests whose path matches `paths`; `slow_seconds` delays a `slow_rate` share
    (set it above the client's read timeout to produce timeouts); every `token_expiry_every`-th
    request expires every issued token first (if the fake has `expire_tokens`).
    """

    error_rate: float = 0.0
    throttle_rate: float = 0.0
    reset_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 0.0
    token_expiry_every: int = 0
    paths: str = ""
    seed: int = 0


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
    """Subclasses register routes with `self.route(method, regex, handler)`.

    A fake with a `spec` (its vendor's OpenAPI documents, local/fakes/openapi.py) checks every request
    against it before anything else, except paths under `unchecked_prefixes` (calls the documents do
    not describe, which the fake checks itself and reports through `refuse_violations`): a request
    the documents refuse is recorded in `violations` and answered with `spec_refusal`, as the vendor
    answers a malformed request.
    """

    spec: SpecValidator | None = None
    unchecked_prefixes: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.violations: list[Violation] = []
        self._routes: list[tuple[str, re.Pattern[str], Route]] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._profile: FaultProfile | None = None
        self._random = random.Random(0)
        self.injected: dict[str, int] = {}

    # ------------------------------------------------------------------ faults
    def set_fault_profile(self, profile: FaultProfile | None) -> None:
        with self._lock:
            self._profile = profile
            self._random = random.Random(profile.seed if profile else 0)

    def throttle_response(self) -> Response:
        """The vendor's own "slow down" answer; fakes of vendors that throttle differently override it."""
        return Response(429, {"error": "rate limited"}, {"Retry-After": "1"})

    def server_error_response(self) -> Response:
        return Response(503, {"error": "service unavailable"})

    def spec_refusal(self, request: Request, violations: list[Violation]) -> Response:
        """The vendor's answer to a request its documents refuse; fakes override it."""
        return Response(400, {"errors": [str(v) for v in violations]})

    def refuse_violations(self, request: Request, violations: list[Violation]) -> Response | None:
        """Record `violations` (this fake's list and the process-wide one the tests fail on) and answer
        them as the vendor would; None when there are none."""
        if not violations:
            return None
        with self._lock:
            self.violations.extend(violations)
        record(violations)
        return self.spec_refusal(request, violations)

    def check_spec(self, request: Request) -> Response | None:
        if self.spec is None or request.path.startswith(self.unchecked_prefixes):
            return None
        problems = self.spec.check(
            request.method, request.path, request.query, request.header("content-type"), request.body
        )
        return self.refuse_violations(request, problems)

    def _random_fault(self, request: Request) -> tuple[bool, Response | float | None]:
        """(expire tokens first?, a fault response, a delay in seconds, or None); lock held by the caller."""
        profile = self._profile
        if profile is None or not re.search(profile.paths, request.path):
            return False, None
        expire = bool(profile.token_expiry_every) and len(self.requests) % profile.token_expiry_every == 0
        if expire:
            self.injected["token_expiry"] = self.injected.get("token_expiry", 0) + 1
        return expire, self._draw_fault(profile)

    def _draw_fault(self, profile: FaultProfile) -> Response | float | None:
        draw = self._random.random()
        for kind, share in (
            ("error", profile.error_rate),
            ("throttle", profile.throttle_rate),
            ("reset", profile.reset_rate),
            ("slow", profile.slow_rate),
        ):
            if draw < share:
                self.injected[kind] = self.injected.get(kind, 0) + 1
                if kind == "error":
                    return self.server_error_response()
                if kind == "throttle":
                    return self.throttle_response()
                if kind == "reset":
                    return Response(CONNECTION_RESET)
                return profile.slow_seconds
            draw -= share
        return None

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
            # Reply at once: with Nagle on, each response waits ~40 ms for the client's delayed ACK.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                response = fake.dispatch(request)
                if response.status == CONNECTION_RESET:
                    self.close_connection = True
                    return
                if isinstance(response.body, bytes):  # already encoded (e.g. a SOAP answer)
                    payload = response.body
                else:
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

        # A deep accept queue: concurrent invocations must not stall on the default backlog of 5.
        ThreadingHTTPServer.request_queue_size = 128
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

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ serving
    def dispatch(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(request)
        # Checked first: a request the documents refuse is recorded even when a fault answers it.
        refused = self.check_spec(request)
        if refused is not None:
            return refused
        with self._lock:
            for fault in self._faults:
                if fault.matches(request):
                    fault.count -= 1
                    return Response(fault.response.status, fault.response.body, dict(fault.response.headers))
            expire, injected = self._random_fault(request)
        expire_tokens = getattr(self, "expire_tokens", None)
        if expire and callable(expire_tokens):
            expire_tokens()
        if isinstance(injected, Response):
            return injected
        if isinstance(injected, float) and injected > 0:
            time.sleep(injected)  # a slow vendor (the client's timeout decides whether it waits)
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                return handler(request, match)
        return Response(404, {"error": f"no route for {request.method} {request.path}"})

    def operation(self, request: Request) -> str:
        """The API operation a recorded request called: by default the name of the route handler that
        serves it (`_add_accounts` -> "add_accounts"); fakes whose routes serve several operations
        override it. Benches count calls per operation with it."""
        for method, pattern, handler in self._routes:
            if method == request.method and pattern.match(request.path):
                return getattr(handler, "__name__", "unknown").lstrip("_")
        return "unrouted"

    def duplicate_entities(self) -> list[str]:
        """Keys of vendor entities (leads, attendees, lists) created more than once; fakes override it."""
        return []

    def requests_to(self, path_pattern: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if re.search(path_pattern, r.path)]
