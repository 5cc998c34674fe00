"""The request files the tools read (`replay FILE`, `verify --input FILE`): an AEP request body, or an API
Gateway proxy event carrying one (as `events/apigw-activation.json`)."""

import base64
import json


def request_body(raw: bytes, source: str) -> tuple[bytes, dict | None]:
    """The request body in `raw`, the bytes of a request file named `source` (for messages).

    Returns:
        `(raw body, proxy event or None)`: a proxy event's body is taken out (base64-decoded when it says so).

    Raises:
        ValueError: the file is not JSON.
    """
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"{source} is not JSON: {error}") from None
    except (RecursionError, UnicodeDecodeError, ValueError):
        # JSON Python cannot read whole (too deep, a huge integer) or not UTF-8: not an event, so a body that
        # the webhook judges as it would any sender's (profile by profile, or 400 for the encoding).
        return raw, None
    if isinstance(document, dict) and "httpMethod" in document and "requestContext" in document:
        body = document.get("body") or ""
        raw_body = base64.b64decode(body) if document.get("isBase64Encoded") else body.encode()
        return raw_body, document
    return raw, None
