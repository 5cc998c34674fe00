"""Authentication of the sender: a bearer key or an HMAC signature over the raw body.

Two accepted forms (README, "Authenticating the sender"), each checked in constant time
against up to two active secrets so keys rotate without downtime:

- `Authorization: Bearer <key>`: what AEP's Destination SDK can send to a partner endpoint.
- `X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`: for generic
  webhook senders; several `v1=` values are allowed and the timestamp must be within the tolerance
  (300 s by default) to stop replays.

A header value that cannot be encoded (a lone surrogate such as "\\ud800") is an authentication failure.
"""

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, ValidationError

# An empty or short key would let anyone in (`Bearer ` + a space, or an HMAC with an empty secret).
Secret = Annotated[str, StringConstraints(strip_whitespace=True, min_length=16)]


class SenderCredentials(BaseModel):
    """The webhook secret's JSON: `{"bearerTokens": [...], "signingSecrets": [...]}`, at most two each, each at
    least 16 characters."""

    bearerTokens: list[Secret] = Field(default_factory=list, max_length=2)
    signingSecrets: list[Secret] = Field(default_factory=list, max_length=2)

    @classmethod
    def from_secret(cls, secret: str) -> "SenderCredentials":
        """Parse the secret's JSON.

        Raises:
            MalformedSecret: it is not of that shape (what is wrong is not said: it would quote the secret).
        """
        try:
            return cls.model_validate_json(secret)
        except ValidationError as error:
            raise MalformedSecret(f"the webhook secret is malformed ({error.error_count()} problems)") from None


class MalformedSecret(Exception):
    """The webhook secret in Secrets Manager is not `{"bearerTokens": [...], "signingSecrets": [...]}`."""


class AuthenticationError(Exception):
    """The request is not from a known sender; `str(error)` is safe to return to the caller."""


@dataclass(frozen=True)
class Sender:
    """What `authenticate` verified: the `scheme`, and for a signature the time it signed, `signed_at` (UTC,
    whole seconds, within the tolerance of now); None for a bearer key, which carries no time."""

    scheme: Literal["bearer", "signature"]
    signed_at: datetime | None = None


def sign(secret: str, timestamp: int, raw_body: bytes) -> str:
    """Return the `X-Signature` header value for a body: `t=<timestamp>,v1=<hex digest>`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw_body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header `name` (lower-case; API Gateway keeps the sender's case, HTTP ignores it), or None.

    Raises:
        AuthenticationError: the value is not text UTF-8 can encode (a lone surrogate).
    """
    for key, value in headers.items():
        if key.lower() == name:
            try:
                value.encode()
            except UnicodeEncodeError:
                raise AuthenticationError(f"the {name} header is not valid text") from None
            return value
    return None


def _matches_any(candidate: str, secrets: Sequence[str]) -> bool:
    # Compare with every secret, without stopping early, so timing reveals nothing.
    results = [hmac.compare_digest(candidate.encode(), secret.encode()) for secret in secrets]
    return any(results)


def authenticate(
    headers: Mapping[str, str],
    raw_body: bytes,
    credentials: SenderCredentials,
    now: float,
    tolerance_seconds: int = 300,
) -> Sender:
    """Check the request's credentials and return what was verified: the scheme and, for a signature, its time.

    Args:
        headers: request headers, any case.
        raw_body: the exact bytes received (base64-decoded when API Gateway marked the body so).
        credentials: the active secrets.
        now: the current time in Unix seconds.
        tolerance_seconds: how far the signature's timestamp may be from `now`, in seconds.

    Raises:
        AuthenticationError: no credentials, a wrong key or signature, a stale timestamp, or a header value
            that cannot be encoded.
    """
    scheme, _, key = (_header(headers, "authorization") or "").strip().partition(" ")
    if scheme.lower() == "bearer":
        if key.strip() and _matches_any(key.strip(), credentials.bearerTokens):
            return Sender("bearer")
        raise AuthenticationError("the bearer key is not valid")

    signature = _header(headers, "x-signature")
    if signature is None:
        raise AuthenticationError("missing credentials: send 'Authorization: Bearer <key>' or 'X-Signature'")
    timestamp_text, candidates = None, []
    for part in signature.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp_text = value
        elif key == "v1":
            candidates.append(value)
    if not timestamp_text or not re.fullmatch(r"[0-9]{1,12}", timestamp_text) or not candidates:
        raise AuthenticationError("malformed X-Signature: expected 't=<unix seconds>,v1=<hex>'")
    timestamp = int(timestamp_text)
    if abs(now - timestamp) > tolerance_seconds:
        raise AuthenticationError(f"stale X-Signature: its timestamp is more than {tolerance_seconds} s from now")
    expected = [sign(secret, timestamp, raw_body).split("v1=", 1)[1] for secret in credentials.signingSecrets]
    if any(_matches_any(candidate, expected) for candidate in candidates):
        return Sender("signature", signed_at=datetime.fromtimestamp(timestamp, tz=UTC))
    raise AuthenticationError("the X-Signature does not match the body")
