"""What the emulator is handling at once, from a request's arrival to its answer's last byte.

A client that keeps several requests in flight must never send one contact in two `batch/upsert`s at once:
HubSpot applies them in an order nobody chose, so the older values may land last. The emulator counts the
times it saw that (`contacts_in_two_upserts`), and the most requests and upserts it handled at once.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from typing import Any

UPSERT_SUFFIX = "/batch/upsert"


def _upsert_ids(path: str, raw: bytes) -> list[str]:
    """The lower-cased `id`s of a `batch/upsert` body (none for other requests or an unreadable body)."""
    if not path.split("?")[0].endswith(UPSERT_SUFFIX):
        return []
    try:
        inputs = json.loads(raw).get("inputs")
    except (ValueError, AttributeError):
        return []
    if not isinstance(inputs, list):
        return []
    return [item["id"].lower() for item in inputs if isinstance(item, dict) and isinstance(item.get("id"), str)]


class InFlight:
    """Counts requests between `enter` and `leave` (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tickets = itertools.count()
        self._open: dict[int, list[str]] = {}  # ticket -> the upsert ids it carries
        self._ids: Counter[str] = Counter()  # ids of the upserts in flight
        self.most_requests = 0
        self.most_upserts = 0
        self.contacts_in_two_upserts = 0

    def enter(self, path: str, raw: bytes) -> int:
        """Count a request as arrived; returns the ticket to `leave` with."""
        ids = _upsert_ids(path, raw)
        with self._lock:
            ticket = next(self._tickets)
            contacts = list(set(ids))
            self._open[ticket] = contacts
            self.most_requests = max(self.most_requests, len(self._open))
            if ids:
                self.contacts_in_two_upserts += sum(1 for contact in contacts if self._ids[contact])
                self._ids.update(contacts)
                self.most_upserts = max(self.most_upserts, sum(1 for open_ids in self._open.values() if open_ids))
            return ticket

    def leave(self, ticket: int) -> None:
        """Count the request's answer as sent (or its connection as closed)."""
        with self._lock:
            for contact in self._open.pop(ticket, []):
                self._ids[contact] -= 1
                if not self._ids[contact]:
                    del self._ids[contact]

    def snapshot(self) -> dict[str, Any]:
        """`{"most_requests", "most_upserts", "contacts_in_two_upserts"}` so far."""
        with self._lock:
            return {
                "most_requests": self.most_requests,
                "most_upserts": self.most_upserts,
                "contacts_in_two_upserts": self.contacts_in_two_upserts,
            }
