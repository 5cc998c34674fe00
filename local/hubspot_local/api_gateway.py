"""A stand-in for the API Gateway REST API in front of IngestFunction: HTTP on loopback, each request handed to
the function as the REST API's Lambda proxy event, the function's answer sent back as HTTP (`serve`).

What it does as API Gateway does (https://docs.aws.amazon.com/apigateway/latest/developerguide/
set-up-lambda-proxy-integrations.html, "Input format" and "Output format"; quotas: .../limits.html):

- the event: `resource`, `path` and `httpMethod`; `headers` with the last value of each header and
  `multiValueHeaders` with all of them, in the order sent (the names as sent); `queryStringParameters` and
  `multiValueQueryStringParameters` the same way, decoded; each of them null when there is none;
  `pathParameters` and `stageVariables` null; the body as text, base64-encoded with `isBase64Encoded` when it
  is not UTF-8 text, null when empty; `requestContext` with a fresh `requestId`, `requestTime`,
  `requestTimeEpoch` (ms), the stage (`prod`, the template's `StageName`) and `identity.sourceIp`;
- the answer: `statusCode`; `headers` merged with `multiValueHeaders` (a value in both is sent once);
  `body`, base64-decoded when `isBase64Encoded`; plus `x-amzn-RequestId`;
- a body over the 10 MB payload quota gets 413 `{"message": "Request Too Long"}` without calling the
  function (before the body is sent, to a client that asks with `Expect: 100-continue`);
- a function that raises, or answers without an integer `statusCode` from 100 to 599 or with a body that
  cannot be read, gets 502 `{"message": "Internal server error"}` (logged);
- one invocation at a time: a single execution environment, so the function's module state is never shared
  by two requests at once.

Where it differs from the deployed stage: every request, whatever its path and method, is handed to the
function, whose own router answers a JSON 404 for a route it does not have (the stage answers a path or
method the template does not declare with API Gateway's 403 `{"message": "Missing Authentication Token"}`);
the stage is not part of the URL (as with `sam local start-api`); every answer closes its connection
(`Connection: close`); HTTP requests the server cannot parse get a JSON error from `http.server` (400, 414,
431, 501).
"""

import base64
import binascii
import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

PAYLOAD_LIMIT_BYTES = 10 * 1024 * 1024  # API Gateway REST payload quota: 10 MB (10,485,760 bytes), not increasable
STAGE = "prod"  # template.yaml: ActivationApi StageName
HOST = "127.0.0.1"  # loopback only: the local webhook's bearer key is printed for anyone to use
ACCOUNT_ID = "123456789012"  # what moto and the local Lambda context use
_READ_PIECE = 64 * 1024  # bytes read at a time from a body that is thrown away
_LINE_MAX = 65_537  # the longest chunk-size or trailer line read (http.server's own request-line limit)
# Set by the server on every answer (its own framing); the function's values for these are dropped.
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})
log = logging.getLogger(__name__)

Invoke = Callable[[dict], object]


@dataclass(frozen=True)
class HttpAnswer:
    """What goes back to the HTTP client: `status`, `headers` as (name, value) pairs (a name may repeat) and
    the `body` bytes."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @classmethod
    def gateway_error(cls, status: int, message: str) -> "HttpAnswer":
        """An answer of API Gateway's own (a gateway response): `{"message": ...}`."""
        body = json.dumps({"message": message}).encode()
        return cls(status, [("Content-Type", "application/json")], body)


REQUEST_TOO_LONG = HttpAnswer.gateway_error(413, "Request Too Long")
INTERNAL_SERVER_ERROR = HttpAnswer.gateway_error(502, "Internal server error")


def _multi(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return grouped


def _last(grouped: dict[str, list[str]]) -> dict[str, str] | None:
    return {name: values[-1] for name, values in grouped.items()} or None


def rest_proxy_event(
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    *,
    source_ip: str = HOST,
    domain_name: str = HOST,
    now: float | None = None,
) -> dict:
    """The REST API's Lambda proxy event for one HTTP request.

    Args:
        method: the HTTP method (`POST`).
        target: the request target, path and query string (`/v1/activations?x=1`).
        headers: the request's headers as (name, value) pairs, a name repeated for each of its values.
        body: the raw body; `b""` for none.
        source_ip: the client's address (`requestContext.identity.sourceIp`).
        domain_name: the host the request was sent to (`requestContext.domainName`).
        now: the request's arrival, seconds since the epoch (default: now).

    Returns:
        The event (the module doc lists its fields).
    """
    now = time.time() if now is None else now
    url = urlsplit(target)
    path = url.path or "/"
    all_headers = _multi(headers)
    query = _multi(parse_qsl(url.query, keep_blank_values=True))
    user_agent = next((values[-1] for name, values in all_headers.items() if name.lower() == "user-agent"), None)
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode("ascii"), True
    request_id = str(uuid.uuid4())
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": _last(all_headers),
        "multiValueHeaders": all_headers or None,
        "queryStringParameters": _last(query),
        "multiValueQueryStringParameters": query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": "local",
            "resourceId": "local",
            "resourcePath": path,
            "httpMethod": method,
            "path": f"/{STAGE}{path}",
            "stage": STAGE,
            "protocol": "HTTP/1.1",
            "domainName": domain_name,
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "identity": {"sourceIp": source_ip, "userAgent": user_agent},
        },
        "body": text if body else None,
        "isBase64Encoded": encoded,
    }


def http_answer(response: object, request_id: str) -> HttpAnswer:
    """The HTTP answer API Gateway makes of a proxy function's response (`INTERNAL_SERVER_ERROR` for one it
    cannot read: see the module doc)."""
    try:
        if not isinstance(response, dict):
            raise TypeError(f"the response is a {type(response).__name__}, not an object")
        status = response["statusCode"]
        if type(status) is not int or not 100 <= status <= 599:
            raise TypeError(f"statusCode {status!r} is not an HTTP status")
        merged = {name: [str(value)] for name, value in (response.get("headers") or {}).items()}
        for name, values in (response.get("multiValueHeaders") or {}).items():
            single = [value for value in merged.get(name, []) if value not in map(str, values)]
            merged[name] = single + [str(value) for value in values]
        body = response.get("body") or ""
        raw = base64.b64decode(body, validate=True) if response.get("isBase64Encoded") else body.encode()
    except (KeyError, TypeError, AttributeError, ValueError, binascii.Error):
        log.exception("the function's response is not a proxy integration response")
        return INTERNAL_SERVER_ERROR
    headers = [(name, value) for name, values in merged.items() for value in values]
    kept = [(name, value) for name, value in headers if name.lower() not in _FRAMING_HEADERS]
    return HttpAnswer(status, [*kept, ("x-amzn-RequestId", request_id)], raw)


class ApiGateway:
    """The stage on loopback HTTP (`127.0.0.1`), handing each request to `invoke` (module doc); use as a
    context manager, or `start` and `stop`.

    Args:
        invoke: called with each request's proxy event, one call at a time; returns the function's response
            (`{"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}`).
        port: the port to listen on; 0 for a free one.
    """

    def __init__(self, invoke: Invoke, port: int = 0):
        self._invoke = invoke
        self._port = port
        self._lock = threading.Lock()  # one invocation at a time
        self._closed = False
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.requests = 0  # requests handed to the function

    def start(self) -> str:
        """Listen and serve in a background thread.

        Returns:
            The base URL, `http://127.0.0.1:PORT` (routes are below it: `/v1/activations`).

        Raises:
            OSError: the port cannot be bound (in use, say).
        """
        try:
            self._server = _Server((HOST, self._port), _Handler, self)
        except OSError as error:
            raise OSError(f"cannot listen on {HOST}:{self._port}: {error.strerror or error}") from None
        self._closed = False
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="api-gateway", daemon=True
        )
        self._thread.start()
        return self.base_url

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the API Gateway stand-in is not started")
        return f"http://{HOST}:{self._server.server_port}"

    def stop(self) -> None:
        """Stop accepting requests, let the invocation under way end, and close the port. A request that
        arrives on an open connection afterwards is not handed to the function: its connection is closed."""
        if self._server is None:
            return
        self._server.shutdown()
        with self._lock:
            self._closed = True
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> "ApiGateway":
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def answer(self, event: dict) -> HttpAnswer | None:
        """Hand one event to the function and make its HTTP answer; None once stopped."""
        with self._lock:
            if self._closed:
                return None
            self.requests += 1
            try:
                response = self._invoke(event)
            except Exception:  # a function error: API Gateway answers 502, whatever it was
                log.exception("the function raised")
                return INTERNAL_SERVER_ERROR
        return http_answer(response, event["requestContext"]["requestId"])


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a client that keeps a request open never holds the process

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], gateway: ApiGateway):
        self.gateway = gateway
        super().__init__(address, handler)


class _TooLarge(Exception):
    """The body is over the payload quota (and has been read, so the answer can be sent)."""


class _Truncated(Exception):
    """The client closed the connection before sending the whole body."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.1"  # no HTTP/0.9: an unparseable request line still gets a status line
    timeout = 60  # seconds a client may pause while sending a request (each read)
    server: _Server

    def do_GET(self) -> None:
        try:
            body = self._read_body()
        except _TooLarge:
            self._send(REQUEST_TOO_LONG)
            return
        except _Truncated:
            self.close_connection = True
            return
        except ValueError as error:
            self.send_error(400, str(error))
            return
        event = rest_proxy_event(
            self.command,
            self.path,
            self.headers.items(),
            body,
            source_ip=self.client_address[0],
            domain_name=f"{HOST}:{self.server.server_port}",
        )
        answer = self.server.gateway.answer(event)
        if answer is None:
            self.close_connection = True
            return
        self._send(answer)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def handle_expect_100(self) -> bool:
        """A body announced over the quota is refused before the client sends it."""
        with contextlib.suppress(ValueError):
            if self._content_length() > PAYLOAD_LIMIT_BYTES:
                self._send(REQUEST_TOO_LONG)
                return False
        return super().handle_expect_100()

    def _content_length(self) -> int:
        value = self.headers.get("Content-Length", "0").strip()
        if not (value.isascii() and value.isdigit()):
            raise ValueError(f"Content-Length {value!r} is not a number of bytes")
        return int(value)

    def _read_body(self) -> bytes:
        """The request body, `Content-Length` bytes or chunked.

        Raises:
            _TooLarge: over `PAYLOAD_LIMIT_BYTES` (the rest of it read and thrown away).
            _Truncated: the client stopped sending before the end.
            ValueError: the framing is not HTTP's.
        """
        if self.headers.get("Transfer-Encoding", "").strip().lower() == "chunked":
            return self._read_chunked()
        length = self._content_length()
        if length > PAYLOAD_LIMIT_BYTES:
            self._discard(length)
            raise _TooLarge
        body = self.rfile.read(length)
        if len(body) < length:
            raise _Truncated
        return body

    def _read_chunked(self) -> bytes:
        kept = bytearray()
        total = 0
        while True:
            line = self.rfile.readline(_LINE_MAX)
            if not line:
                raise _Truncated
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise ValueError("malformed chunk size in a chunked body") from None
            if size == 0:
                break
            total += size
            if total > PAYLOAD_LIMIT_BYTES:
                self._discard(size)
            else:
                piece = self.rfile.read(size)
                if len(piece) < size:
                    raise _Truncated
                kept += piece
            self.rfile.readline(_LINE_MAX)  # the CRLF after the chunk
        while self.rfile.readline(_LINE_MAX).strip():  # trailers, up to the blank line
            pass
        if total > PAYLOAD_LIMIT_BYTES:
            raise _TooLarge
        return bytes(kept)

    def _discard(self, length: int) -> None:
        """Read `length` bytes of body and throw them away (so the client, still sending, reads the answer)."""
        while length > 0:
            piece = self.rfile.read(min(length, _READ_PIECE))
            if not piece:
                raise _Truncated
            length -= len(piece)

    def _send(self, answer: HttpAnswer) -> None:
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """`http.server`'s own errors (a request it cannot parse), as JSON like every other answer."""
        self.close_connection = True
        answer = HttpAnswer.gateway_error(code, message or self.responses.get(code, ("Error",))[0])
        with contextlib.suppress(OSError):
            self._send(answer)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)
