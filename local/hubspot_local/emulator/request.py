"""A parsed HubSpot API request, as the endpoint handlers see it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .errors import invalid_json


@dataclass
class Request:
    """Method, path, query and the JSON body (``None`` when the request had no body)."""

    method: str
    path: str
    query: dict[str, list[str]] = field(default_factory=dict)
    raw: bytes = b""
    body: Any = None

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def params(self, name: str) -> list[str]:
        """Every comma-separated value of a repeatable query parameter (``?properties=a,b&properties=c``)."""
        return [v for value in self.query.get(name, []) for v in value.split(",") if v]

    def parse_body(self) -> None:
        """Decode the JSON body; a syntax error is HubSpot's "Invalid input JSON" 400 (hubspot-api.md §1.7)."""
        if not self.raw.strip():
            return
        try:
            self.body = json.loads(self.raw)
        except UnicodeDecodeError as exc:
            raise invalid_json(1, 1, f"Invalid UTF-8: {exc.reason}") from exc
        except json.JSONDecodeError as exc:
            raise invalid_json(exc.lineno, exc.colno, exc.msg) from exc

    def position_of(self, text: str) -> tuple[int, int]:
        """Line and column (1-based) of ``text`` in the raw body, for "Invalid input JSON" messages."""
        raw = self.raw.decode("utf-8", "replace")
        index = max(raw.find(text), 0)
        line = raw.count("\n", 0, index) + 1
        return line, index - (raw.rfind("\n", 0, index) + 1) + 1

    def input_count(self) -> int | None:
        """The number of ``inputs`` of a batch request (for the request log), even if it was refused early."""
        body = self.body
        if body is None:
            try:
                body = json.loads(self.raw) if self.raw.strip() else None
            except ValueError:
                return None
        inputs = body.get("inputs") if isinstance(body, dict) else None
        return len(inputs) if isinstance(inputs, list) else None
