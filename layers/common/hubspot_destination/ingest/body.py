"""The request body: the bytes the sender sent, read strictly as UTF-8 JSON (RFC 8259).

No NaN or Infinity (HubSpot cannot store them), and no other encoding (UTF-16 and UTF-32 are refused, not
auto-detected). A profile Python cannot read (nested past the recursion limit, an integer of more than 4,300
digits) is read around: the rest of the body is parsed and that profile becomes an `Unreadable` placeholder,
refused alone at its index.
"""

import base64
import binascii
import json
import re
from dataclasses import dataclass


def raw_request_body(body: str | None, is_base64_encoded: bool) -> bytes:
    """The bytes the sender sent: API Gateway's `body`, base64-decoded when it says so.

    Raises:
        ValueError: a body marked base64 that is not, or text that cannot be encoded (a lone surrogate).
    """
    if not body:
        return b""
    if not is_base64_encoded:
        try:
            return body.encode()
        except UnicodeEncodeError:
            raise ValueError("the body is not valid text (it holds a lone surrogate)") from None
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error:
        raise ValueError("the body is marked base64-encoded but is not valid base64") from None


class BodyEncodingError(ValueError):
    """The body is not UTF-8 text; `str(error)` says why and is safe to return to the sender."""


class _NotJson(ValueError):
    """A token that Python reads but JSON does not have (NaN, Infinity)."""


def _refuse_constant(name: str) -> float:
    raise _NotJson(f"{name} is not JSON")


@dataclass(frozen=True)
class Unreadable:
    """Stands in the parsed body for a value Python's JSON reader cannot read although it may be valid JSON;
    `reason` says why. Only profiles and other members of the top level's members are replaced so."""

    reason: str


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
# Runs of brackets, and strings (whose brackets do not count): what `_skip` walks to find where a value ends.
_STRUCTURE = re.compile(r'[\[{]+|[\]}]+|"[^"\\]*(?:\\.[^"\\]*)*"')
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
# Levels read member by member when the body cannot be read whole: the top-level object, then its members
# (`profiles`, `audiences`), so each profile and each `audiences` entry is read, or refused, on its own.
_LEVELS = 2


def _utf8_text(raw_body: bytes) -> str:
    """The body as text: strictly UTF-8 (RFC 8259 §8.1), a leading UTF-8 byte order mark ignored (§8.1 allows it).

    Raises:
        BodyEncodingError: bytes that are not UTF-8, or NUL bytes (what UTF-16 and UTF-32 JSON is full of;
            JSON text never holds one).
    """
    if b"\x00" in raw_body:
        raise BodyEncodingError("the body holds NUL bytes, as UTF-16 or UTF-32 text does: send JSON encoded as UTF-8")
    try:
        return raw_body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BodyEncodingError(f"the body is not UTF-8 (byte {error.start}): send JSON encoded as UTF-8") from None


def parse_json(raw_body: bytes) -> object:
    """Parse a request body as strict JSON (RFC 8259: UTF-8, no NaN or Infinity, which HubSpot cannot store).

    A profile (or an entry of `audiences`, or any member of a top-level member) that Python cannot read, nested
    deeper than its recursion limit (about 1,000 levels) or an integer of more than 4,300 digits, is returned
    as an `Unreadable` in its place, so it alone is refused.

    Raises:
        BodyEncodingError: not UTF-8 (see `_utf8_text`).
        ValueError: not JSON (`json.JSONDecodeError`, with its position), or NaN or Infinity.
    """
    text = _utf8_text(raw_body)
    try:
        return _DECODER.decode(text)
    except (RecursionError, ValueError) as error:
        if _unreadable_reason(error) is None:
            raise
    value, end = _read(text, 0, _LEVELS)
    end = _after_whitespace(text, end)
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


def _unreadable_reason(error: Exception) -> str | None:
    """Why Python's JSON reader stopped on text that may be valid JSON; None for text that is not JSON."""
    if isinstance(error, RecursionError):
        return "nested too deeply to read"
    if isinstance(error, json.JSONDecodeError | _NotJson):
        return None
    return "an integer of more than 4,300 digits"  # the one other ValueError of the reader: int()'s digit limit


def _read(text: str, pos: int, levels: int) -> tuple[object, int]:
    """The JSON value at `pos` (after whitespace) and the position after it; an object or array is read
    member by member `levels` deep, and below that a value Python cannot read becomes `Unreadable`.

    Raises:
        ValueError: not JSON, as `parse_json`.
    """
    pos = _after_whitespace(text, pos)
    if levels and text.startswith(("{", "["), pos):
        return _read_members(text, pos, levels - 1)
    try:
        return _DECODER.raw_decode(text, pos)
    except (RecursionError, ValueError) as error:
        reason = _unreadable_reason(error)
        if reason is None:
            raise
        return Unreadable(reason), _skip(text, pos)


def _read_members(text: str, pos: int, levels: int) -> tuple[object, int]:
    """The object or array that opens at `pos`, each member read by `_read` with `levels`."""
    is_object = text[pos] == "{"
    closer = "}" if is_object else "]"
    pos = _after_whitespace(text, pos + 1)
    if text.startswith(closer, pos):
        return ({} if is_object else []), pos + 1
    members: list[tuple[str | None, object]] = []
    while True:
        key = None
        if is_object:
            key, pos = _read_key(text, pos)
        value, pos = _read(text, pos, levels)
        members.append((key, value))
        pos = _after_whitespace(text, pos)
        if text.startswith(closer, pos):
            return (dict(members) if is_object else [value for _, value in members]), pos + 1
        if not text.startswith(",", pos):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
        pos = _after_whitespace(text, pos + 1)


def _read_key(text: str, pos: int) -> tuple[str, int]:
    """The object key at `pos` and the position after its `:`."""
    if not text.startswith('"', pos):
        raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, pos)
    key, pos = _DECODER.raw_decode(text, pos)
    pos = _after_whitespace(text, pos)
    if not text.startswith(":", pos):
        raise json.JSONDecodeError("Expecting ':' delimiter", text, pos)
    return key, pos + 1


def _after_whitespace(text: str, pos: int) -> int:
    """The position of the first character at or after `pos` that is not JSON whitespace (RFC 8259 §2)."""
    while pos < len(text) and text[pos] in " \t\n\r":
        pos += 1
    return pos


def _skip(text: str, pos: int) -> int:
    """The position after the value at `pos`, found without reading it: past a number, or past an array or
    object by counting its brackets (those in strings aside). Its inside is not checked: it is refused anyway.

    Raises:
        json.JSONDecodeError: the brackets never close.
    """
    if not text.startswith(("[", "{"), pos):  # only an integer fails to read without nesting
        number = _NUMBER.match(text, pos)
        if number is None:
            raise json.JSONDecodeError("Expecting value", text, pos)
        return number.end()
    depth = 0
    for match in _STRUCTURE.finditer(text, pos):
        run = match.group()
        if run[0] in "[{":
            depth += len(run)
        elif run[0] != '"':
            if len(run) >= depth:
                return match.start() + depth
            depth -= len(run)
    raise json.JSONDecodeError("Unterminated array or object", text, pos)
