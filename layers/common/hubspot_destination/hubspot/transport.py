"""One HTTP exchange with HubSpot on urllib3, bounded in time and size whatever the server does.

- **Deadline**: every attempt ends by its deadline (monotonic seconds). Timeouts bound each socket operation
  only, so a server sending one byte every few seconds would never trip them; a watchdog timer shuts the
  connection's socket down at the deadline, which ends a blocked read at once.
- **Size**: at most `MAX_ANSWER_BYTES` are read; a larger `Content-Length` is refused before reading.
- **No decompression**: the client asks for `identity` and never inflates a body (a gzip bomb stays 0.5 MB);
  an answer with another `Content-Encoding` is refused.
- **No redirects**: a 3xx is returned as it is, never followed, so the body (emails) and the token never go to
  another host.
"""

import contextlib
import socket
import threading
import time
from dataclasses import dataclass

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error

# The largest answer read, in bytes: a portal's property list is the largest answer the product asks for
# (about 1 KB per property, a few thousand properties at most).
MAX_ANSWER_BYTES = 8 * 1024 * 1024
_CHUNK_BYTES = 64 * 1024


class _Attempt:
    """The socket of the exchange in progress on this thread, so that the watchdog can shut it down."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.expired = False

    def watch(self, sock: socket.socket | None) -> None:
        with self.lock:
            self.sock = sock
            expired = self.expired
        if expired:
            self.expire()

    def expire(self) -> None:
        with self.lock:
            self.expired = True
            sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)  # a blocked recv returns at once


_current = threading.local()


class _Watched:
    """Hands the connection's socket to the attempt in progress once the request is sent."""

    sock: socket.socket | None

    def getresponse(self, *args, **kwargs):
        attempt = getattr(_current, "attempt", None)
        if attempt is not None:
            attempt.watch(self.sock)
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


@dataclass(frozen=True)
class Answer:
    """What came back: the status, the headers (case-insensitive) and at most `MAX_ANSWER_BYTES` of body."""

    status: int
    headers: urllib3.HTTPHeaderDict
    body: bytes


class AnswerRefused(Exception):
    """The answer was read far enough to know it cannot be HubSpot's: too large, or encoded."""

    def __init__(self, status: int, headers: urllib3.HTTPHeaderDict, reason: str):
        super().__init__(reason)
        self.status, self.headers = status, headers


class ExchangeFailed(Exception):
    """No complete answer: the connection failed, a timeout fired, or the deadline passed."""


class Transport:
    """A urllib3 pool whose exchanges end by a deadline, read bounded bodies and never follow redirects.

    Args:
        connect_s: the connect timeout per attempt, in seconds.
        read_s: the read timeout per socket read, in seconds (an attempt also ends by its deadline).
        connections: exchanges that may run at once (threads); the pool keeps that many connections open
            to the host (at least 4), so none is opened and dropped for each request.
    """

    def __init__(self, connect_s: float, read_s: float, connections: int = 1):
        self._connect_s, self._read_s = connect_s, read_s
        self._pool = urllib3.PoolManager(maxsize=max(4, connections), retries=False)
        self._pool.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def exchange(self, method: str, url: str, body: bytes | None, headers: dict[str, str], deadline: float) -> Answer:
        """Send one request and read its answer by `deadline` (monotonic seconds).

        Raises:
            ExchangeFailed: no complete answer by the deadline, or the connection failed.
            AnswerRefused: a body over `MAX_ANSWER_BYTES`, or a `Content-Encoding` other than identity.
        """
        left = deadline - time.monotonic()
        if left <= 0:
            raise ExchangeFailed("the deadline passed before the request was sent")
        attempt = _Attempt()
        watchdog = threading.Timer(left, attempt.expire)
        watchdog.daemon = True
        _current.attempt = attempt
        watchdog.start()
        response = None
        try:
            response = self._pool.request(
                method,
                url,
                body=body,
                headers={**headers, "Accept-Encoding": "identity"},
                timeout=urllib3.Timeout(connect=min(self._connect_s, left), read=min(self._read_s, left)),
                retries=False,
                redirect=False,
                preload_content=False,
                decode_content=False,
            )
            return Answer(response.status, response.headers, self._read(response))
        except Urllib3Error as error:
            # The kind of failure only: urllib3's text quotes its pool's internals.
            cause = "the deadline passed" if attempt.expired else f"no complete answer ({type(error).__name__})"
            raise ExchangeFailed(cause) from error
        except OSError as error:  # a socket shut down by the watchdog mid-read
            raise ExchangeFailed("the deadline passed" if attempt.expired else str(error)) from error
        finally:
            watchdog.cancel()
            _current.attempt = None
            if response is not None:
                response.release_conn()

    @staticmethod
    def _read(response: urllib3.BaseHTTPResponse) -> bytes:
        headers = response.headers
        encoding = (headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding != "identity":
            response.close()
            raise AnswerRefused(response.status, headers, f"the answer is {encoding}-encoded; identity was asked for")
        length = (headers.get("Content-Length") or "").strip()
        if length.isdigit() and int(length) > MAX_ANSWER_BYTES:
            response.close()
            raise AnswerRefused(response.status, headers, f"an answer of {length} bytes; at most {MAX_ANSWER_BYTES}")
        chunks, size = [], 0
        while chunk := response.read(_CHUNK_BYTES, decode_content=False):
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                response.close()
                raise AnswerRefused(response.status, headers, f"an answer of more than {MAX_ANSWER_BYTES} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
