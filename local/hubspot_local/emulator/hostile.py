"""Hostile answer bodies for fault injection: what a broken proxy, a man in the middle or a faulty peer sends.

None of this is HubSpot's documented behaviour (docs/emulator.md, "Hostile answers"). A ``Payload`` is the
bytes of one answer body, produced lazily so that a 200 MB body is never held in memory.
"""

from __future__ import annotations

import functools
import json
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

# The padded answer: HubSpot's batch shape with no results, then spaces (JSON whitespace), then "}".
_PAD_PREFIX = b'{"status":"COMPLETE","results":[]'
_PAD_SUFFIX = b"}"
MIN_PADDED_BYTES = len(_PAD_PREFIX) + len(_PAD_SUFFIX)
_BLOCK = 1 << 20  # bytes of padding per chunk (1 MiB), and per deflate block of the gzip bomb
_SPACES = b" " * _BLOCK
# A gzip member header (RFC 1952): magic, deflate, no flags, no mtime, no extra flags, unknown OS.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


@dataclass(frozen=True)
class Payload:
    """An answer body: ``length`` bytes, yielded by ``chunks()`` as non-empty ``bytes``; ``encoding`` is its
    ``Content-Encoding`` (e.g. ``gzip``), None for identity."""

    length: int
    chunks: Callable[[], Iterator[bytes]]
    encoding: str | None = None

    @classmethod
    def of(cls, data: bytes, encoding: str | None = None) -> Payload:
        return cls(len(data), lambda: iter((data,) if data else ()), encoding)


def _padding(size: int) -> tuple[int, bytes]:
    """How ``size`` bytes of padded answer split: full 1-MiB blocks of spaces, then the last bytes."""
    blocks, rest = divmod(size - MIN_PADDED_BYTES, _BLOCK)
    return blocks, b" " * rest + _PAD_SUFFIX


def padded_json(size: int) -> Payload:
    """A ``size``-byte JSON answer (``size >= MIN_PADDED_BYTES``): ``{"status":"COMPLETE","results":[]``,
    spaces, ``}``. Streamed 1 MiB at a time, never built in memory."""
    blocks, last = _padding(size)

    def chunks() -> Iterator[bytes]:
        yield _PAD_PREFIX
        for _ in range(blocks):
            yield _SPACES
        yield last

    return Payload(size, chunks)


@functools.lru_cache(maxsize=4)
def _gzip_bomb(size: int) -> bytes:
    # Each 1-MiB block of spaces is deflated after a full flush, which resets the compressor: the block
    # compresses to the same bytes every time, so it is compressed once and repeated (about 1,000:1).
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = deflate.compress(_PAD_PREFIX) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(_SPACES) + deflate.flush(zlib.Z_FULL_FLUSH)
    blocks, last = _padding(size)
    tail = deflate.compress(last) + deflate.flush()
    crc = zlib.crc32(_PAD_PREFIX)
    for _ in range(blocks):
        crc = zlib.crc32(_SPACES, crc)
    crc = zlib.crc32(last, crc)
    return _GZIP_HEADER + head + block * blocks + tail + struct.pack("<II", crc, size & 0xFFFFFFFF)


def gzip_bomb(size: int) -> Payload:
    """``padded_json(size)`` as one gzip member (``Content-Encoding: gzip``): about ``size / 1000`` bytes on
    the wire that inflate to ``size`` bytes (500 MB from about 0.5 MB)."""
    return Payload.of(_gzip_bomb(size), "gzip")


def rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """The same bytes as ``chunks``, in pieces of ``size`` bytes (the last one may be shorter)."""
    pending = b""
    for chunk in chunks:
        data = pending + chunk
        whole = len(data) - len(data) % size
        for start in range(0, whole, size):
            yield data[start : start + size]
        pending = data[whole:]
    if pending:
        yield pending


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


_TIMES = {"startedAt": "2025-01-01T00:00:00.000Z", "completedAt": "2025-01-01T00:00:00.100Z"}
_RESULT = {
    "id": "1001",
    "properties": {"email": "ada@example.com", "hs_object_id": "1001"},
    "createdAt": "2025-01-01T00:00:00.000Z",
    "updatedAt": "2025-01-01T00:00:00.000Z",
    "archived": False,
    "new": False,
}
_NO_ID = {k: v for k, v in _RESULT.items() if k != "id"}
_TRACE_ID_NOT_LIST = {
    "status": "error",
    "category": "VALIDATION_ERROR",
    "message": "Property values were not valid",
    "context": {"objectWriteTraceId": "0"},
    "errors": [],
    "links": {},
}

# name -> (status, body bytes). Each is sent with Content-Type: application/json;charset=utf-8.
MALFORMED_BODIES: dict[str, tuple[int, bytes]] = {
    "empty_list": (200, b"[]"),
    "results_null": (200, _json({"status": "COMPLETE", "results": None, **_TIMES})),
    "results_string": (200, _json({"status": "COMPLETE", "results": "x", **_TIMES})),
    "errors_strings": (207, _json({"status": "COMPLETE", "results": [], "numErrors": 1, "errors": ["boom"], **_TIMES})),
    "properties_string": (
        200,
        _json({"status": "COMPLETE", "results": [{**_RESULT, "properties": "email=ada@example.com"}], **_TIMES}),
    ),
    "trace_id_not_list": (
        207,
        _json({"status": "COMPLETE", "results": [], "numErrors": 1, "errors": [_TRACE_ID_NOT_LIST], **_TIMES}),
    ),
    "unknown_trace_id": (
        200,
        _json({"status": "COMPLETE", "results": [{**_RESULT, "objectWriteTraceId": "never-sent"}], **_TIMES}),
    ),
    "result_without_id": (200, _json({"status": "COMPLETE", "results": [_NO_ID], **_TIMES})),
    "not_json": (200, b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    "empty": (200, b""),
    "invalid_utf8": (200, b'{"status":"COMPLETE","results":[{"id":"\xff\xfe"}]}'),
}
