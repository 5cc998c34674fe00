"""The emulator's HTTP server: authentication, rate limits, fault injection, routing, admin endpoints.

Every HubSpot request goes through, in order: route match (404/405), bearer token (401, hubspot-api.md §4),
scopes (403, §4), rate limits (429, §3), injected faults, JSON body (400, §1.7), then the endpoint. Every
answer is JSON, unexpected exceptions included (a 500 with the error envelope), except the hostile answers
fault injection is asked for (``faults.py``, ``hostile.py``): bodies replaced, headers poisoned, answers
dripped.

Admin endpoints live under ``/__emulator/``, a prefix HubSpot never uses; they need no token and are
never counted or faulted: ``GET /__emulator/state``, ``GET``/``POST /__emulator/faults``,
``POST /__emulator/reset``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import ValidationError

from . import routes
from .errors import ApiError, error_body
from .faults import BodyFault, Drip, FaultConfig, FaultInjector, header_values
from .hostile import Payload, rechunk
from .inflight import InFlight
from .portal import Portal, check_portal_shape
from .ratelimit import TIERS, RateLimiter, rate_limit_body, search_limit_body
from .request import Request

logger = logging.getLogger(__name__)

# source: hubspot-api.md §4 "Scopes the client needs" (the product's private app)
PRODUCT_SCOPES = frozenset(
    {
        "crm.objects.contacts.read",
        "crm.objects.contacts.write",
        "crm.schemas.contacts.read",
        "crm.schemas.contacts.write",
    }
)
DEFAULT_TOKEN = "local-dev-token"  # noqa: S105 - the documented local token, not a secret
ADMIN_PREFIX = "/__emulator/"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _unauthenticated() -> ApiError:
    # source: §4 401 body for a missing, unknown or garbage token (also used for revoked tokens: UNCONFIRMED)
    return ApiError.of(
        401,
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
        "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        "INVALID_AUTHENTICATION",
    )


def _missing_scopes(required: tuple[str, ...]) -> ApiError:
    # source: §4 403 MISSING_SCOPES body (objects guide example)
    return ApiError.of(
        403,
        "This app hasn't been granted all required scopes to make this call. "
        "Read more about required scopes here: https://developers.hubspot.com/scopes.",
        "MISSING_SCOPES",
        errors=[
            {
                "message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": list(required)},
            }
        ],
        links={"scopes": "https://developers.hubspot.com/scopes"},
    )


@dataclass
class Answer:
    """What the handler sends: status, JSON ``body`` (or the raw ``payload`` replacing it) and headers.

    ``reset`` closes without answering; ``delay`` holds the answer (seconds); ``drip`` trickles its body;
    ``chunked`` frames the body with ``Transfer-Encoding: chunked``; ``header_overrides`` replace headers by
    name (case-insensitive): a value, a list of values (the header repeated), or None (left out).
    """

    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    reset: bool = False
    payload: Payload | None = None
    chunked: bool = False
    drip: Drip | None = None
    header_overrides: dict[str, str | list[str] | None] = field(default_factory=dict)


class HubSpotEmulator:
    """A HubSpot CRM (contacts and contact properties) on loopback HTTP, faithful to hubspot-api.md.

    ``tokens`` maps bearer tokens to their scopes (default: ``local-dev-token`` with ``PRODUCT_SCOPES``).
    ``portal`` pre-loads properties, groups and contacts (``load_portal`` format). ``tier`` sizes the rate
    limits (§3.1); ``burst_limit``/``daily_limit`` override the tier's numbers. ``clock`` drives the rate
    limit windows (inject a fake to test them without sleeping). ``faults`` configures fault injection.
    """

    def __init__(
        self,
        tokens: dict[str, frozenset[str]] | None = None,
        portal: dict[str, Any] | None = None,
        tier: str = "professional",
        enforce_rate_limits: bool = True,
        clock: Callable[[], float] = time.monotonic,
        faults: FaultConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        portal_id: int = 12345678,
        *,
        burst_limit: int | None = None,
        daily_limit: int | None = None,
    ) -> None:
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}; expected one of {sorted(TIERS)}")
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"the emulator only listens on loopback (its admin API has no auth), not {host!r}")
        if portal is not None:
            check_portal_shape(portal)
        self.tokens = {t: frozenset(s) for t, s in (tokens or {DEFAULT_TOKEN: PRODUCT_SCOPES}).items()}
        self.portal_id = portal_id
        self.enforce_rate_limits = enforce_rate_limits
        self.clock = clock
        self.host, self.port = host, port
        self._initial_portal = copy.deepcopy(portal or {})
        self._initial_faults = faults or FaultConfig()
        self._burst, self._daily = burst_limit or TIERS[tier][0], daily_limit or TIERS[tier][1]
        self._log_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    @property
    def burst_limit(self) -> int:
        """Requests per 10-s window per token, the tier's or the one given (hubspot-api.md §3.1)."""
        return self._burst

    # ---- lifecycle ----

    def reset(self) -> None:
        """Back to the state at construction: portal, rate-limit counters, faults and request log."""
        portal = Portal(self.portal_id)
        portal.preload(copy.deepcopy(self._initial_portal))
        self.portal = portal
        self.faults = FaultInjector(self._initial_faults)
        self.rate_limiter = RateLimiter(
            self._burst, self._daily, self.clock, self._initial_faults.other_integration_per_window
        )
        self.in_flight = InFlight()
        with self._log_lock:
            self.requests: list[dict[str, Any]] = []

    def set_faults(self, config: FaultConfig) -> None:
        """Replace the fault configuration (reseeding its random generator)."""
        self.faults.configure(config)
        self.rate_limiter.other_integration_per_window = config.other_integration_per_window

    def start(self) -> str:
        """Serve on loopback in a daemon thread; returns the base URL, e.g. ``http://127.0.0.1:PORT``."""
        if self._server is not None:
            return self.base_url
        self._server = _Server((self.host, self.port), _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="hubspot-emulator", daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving and close every open connection."""
        if self._server is None:
            return
        self._server.stopping.set()
        self._server.shutdown()
        self._server.close_all()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        host, port = self._server.server_address[:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}"

    def __enter__(self) -> HubSpotEmulator:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def snapshot(self) -> dict[str, Any]:
        """Contacts (all properties and per-property update times), custom properties and groups, the
        request log (method, path, status, inputs count, X-HubSpot-RateLimit-Remaining, ``at``: the clock's
        reading when it was handled, in seconds) and ``in_flight`` (``InFlight.snapshot``)."""
        state = self.portal.snapshot()
        with self._log_lock:
            state["requests"] = [dict(r) for r in self.requests]
        state["in_flight"] = self.in_flight.snapshot()
        return state

    # ---- request handling ----

    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> Answer:
        """Answer one HTTP request (called on the server's threads)."""
        url = urlsplit(target)
        req = Request(method, url.path, parse_qs(url.query, keep_blank_values=True), raw)
        if url.path.startswith(ADMIN_PREFIX):
            return self._admin(req)
        answer = Answer(0)
        try:
            self._serve(req, target, headers, answer)
        except ApiError as exc:
            answer.status, answer.body = exc.status, exc.body
            answer.headers.update(exc.headers)
        self._log(req, answer)
        return answer

    def _serve(self, req: Request, target: str, headers: dict[str, str], answer: Answer) -> None:
        route, params = routes.match(req.method, req.path)
        token = self._authenticate(headers.get("authorization", ""))
        if not self.tokens[token] & set(route.scopes):
            raise _missing_scopes(route.scopes)
        answer.header_overrides = self.faults.draw_headers(req.path)  # before counting: 429s get them too
        self._count(route, token, answer)
        draw = self.faults.draw(req.path)
        fault, answer.drip = draw.fault, draw.drip
        answer.delay = draw.delay + self.faults.draw_latency(req.input_count())
        if isinstance(fault, BodyFault):
            if fault.processed:
                # HubSpot handled the request, then its answer (error or not) was mangled on the way.
                with contextlib.suppress(ApiError):
                    self._process(route, req, params, answer)
            answer.status, answer.body, answer.payload = fault.status, None, fault.payload
            answer.chunked = fault.chunked
            return
        if fault is not None:
            if fault.kind == "reset":
                answer.reset = True
                return
            body = rate_limit_body("TEN_SECONDLY_ROLLING") if fault.kind == "rate_limit" else fault.body()
            raise ApiError(429 if fault.kind == "rate_limit" else fault.status, body, fault.headers(target))
        self._process(route, req, params, answer)

    def _process(self, route: routes.Route, req: Request, params: dict[str, str], answer: Answer) -> None:
        req.parse_body()
        answer.status, answer.body = route.handler(self.portal, req, **params)

    def _authenticate(self, header: str) -> str:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or token not in self.tokens or self.faults.revoked(token):
            raise _unauthenticated()
        return token

    def _count(self, route: routes.Route, token: str, answer: Answer) -> None:
        if not self.enforce_rate_limits:
            return
        if route.search:
            # source: §1.9/§3.2 search: 5/s per portal, no X-HubSpot-RateLimit-* headers
            if not self.rate_limiter.count_search():
                raise ApiError(429, search_limit_body())
            return
        decision = self.rate_limiter.count(token)
        answer.headers.update(decision.headers)
        if decision.policy is not None:
            raise ApiError(429, rate_limit_body(decision.policy), decision.headers)

    def _log(self, req: Request, answer: Answer) -> None:
        remaining = answer.headers.get("X-HubSpot-RateLimit-Remaining")
        entry = {
            "method": req.method,
            "path": req.path,
            "status": None if answer.reset else answer.status,
            "inputs": req.input_count(),
            "rateLimitRemaining": None if remaining is None else int(remaining),
            "at": self.clock(),
        }
        with self._log_lock:
            self.requests.append(entry)

    def _admin(self, req: Request) -> Answer:
        try:
            req.parse_body()
            if (req.method, req.path) == ("GET", "/__emulator/state"):
                return Answer(200, self.snapshot())
            if (req.method, req.path) == ("GET", "/__emulator/faults"):
                return Answer(200, self.faults.config.model_dump())
            if (req.method, req.path) == ("POST", "/__emulator/faults"):
                config = FaultConfig.model_validate(req.body or {})
                self.set_faults(config)
                return Answer(200, config.model_dump())
            if (req.method, req.path) == ("POST", "/__emulator/reset"):
                self.reset()
                return Answer(200, {"status": "reset"})
            return Answer(404, error_body(f"No admin endpoint {req.method} {req.path}", "OBJECT_NOT_FOUND"))
        except ApiError as exc:
            return Answer(exc.status, exc.body)
        except ValidationError as exc:
            return Answer(400, error_body(f"Invalid fault configuration: {exc}", "VALIDATION_ERROR"))


class _Server(ThreadingHTTPServer):
    """A threading HTTP server that remembers its open connections so ``stop`` can close them."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], emulator: HubSpotEmulator):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self.stopping = threading.Event()  # set by HubSpotEmulator.stop, before the connections are closed
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        with self._connections_lock:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("connection error from %s", client_address, exc_info=True)


def _overridden(headers: list[tuple[str, str]], overrides: dict[str, str | list[str] | None]) -> list[tuple[str, str]]:
    """``headers`` with every header named in ``overrides`` (case-insensitively) replaced by its values."""
    names = {name.lower() for name in overrides}
    kept = [(name, value) for name, value in headers if name.lower() not in names]
    for name, value in overrides.items():
        kept += [(name, v) for v in header_values(value)]
    return kept


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive (as HubSpot, and as urllib3 pools expect); JSON in, JSON out."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _Server

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def _dispatch(self) -> None:
        emulator = self.server.emulator
        ticket = None
        try:
            try:
                raw = self._read_body()
                if not self.path.startswith(ADMIN_PREFIX):
                    ticket = emulator.in_flight.enter(self.path, raw)
                headers = {k.lower(): v for k, v in self.headers.items()}
                answer = emulator.handle(self.command, self.path, headers, raw)
            except Exception:  # an emulator bug must still answer JSON, never an HTML 500
                logger.exception("emulator error on %s %s", self.command, self.path)
                answer = Answer(500, error_body("Internal error in the HubSpot emulator", "INTERNAL_ERROR"))
            if answer.reset:
                self._reset_connection()
            elif answer.delay and not self._hold(answer.delay):
                self.close_connection = True
            else:
                self._send(answer)
        finally:
            if ticket is not None:  # the answer is out (or the connection closed)
                emulator.in_flight.leave(ticket)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers, up to the blank line
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, answer: Answer) -> None:
        payload = answer.payload or Payload.of(json.dumps(answer.body if answer.body is not None else {}).encode())
        chunked = answer.chunked or (answer.drip is not None and answer.drip.chunked)
        headers = [
            ("Content-Type", "application/json;charset=utf-8"),
            ("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(payload.length)),
        ]
        if payload.encoding:
            headers.append(("Content-Encoding", payload.encoding))
        if answer.body and "correlationId" in answer.body:
            # source: §1.8 the correlationId also appears in X-HubSpot-Correlation-Id
            headers.append(("X-HubSpot-Correlation-Id", answer.body["correlationId"]))
        headers += answer.headers.items()
        self.send_response(answer.status)
        for name, value in _overridden(headers, answer.header_overrides):
            self.send_header(name, value)
        self.end_headers()
        self._stream(payload, chunked, answer.drip)

    def _stream(self, payload: Payload, chunked: bool, drip: Drip | None) -> None:
        """Write the body, dripped if asked; stops when the client hangs up or the emulator stops."""
        pieces = payload.chunks() if drip is None else rechunk(payload.chunks(), drip.chunk_bytes)
        try:
            for index, piece in enumerate(pieces):
                if index and drip is not None and not self._hold(drip.interval_seconds):
                    self.close_connection = True
                    return
                self.wfile.write(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client went away (or the emulator stopped) in the middle of a long body
            self.close_connection = True

    def _hold(self, seconds: float) -> bool:
        """Wait ``seconds`` before answering on; False as soon as the client hangs up or the emulator stops.

        Both show as the socket turning readable at end of file (``stop`` shuts every connection down).
        Bytes the client sends meanwhile (a pipelined request) are left for later; then only ``stop`` ends
        the wait early.
        """
        deadline = time.monotonic() + seconds
        poller = select.poll()
        poller.register(self.connection, select.POLLIN)
        if not poller.poll(seconds * 1000):
            return True
        try:
            if not self.connection.recv(1, socket.MSG_PEEK):
                return False
        except OSError:
            return False
        return not self.server.stopping.wait(deadline - time.monotonic())

    def _reset_connection(self) -> None:
        """Close with a TCP RST (SO_LINGER 0) and no answer: the client sees a connection reset."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def finish(self) -> None:
        # The connection may have been reset on purpose, or the client went away.
        with contextlib.suppress(OSError, ValueError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)
