"""Fixtures for the HubSpot emulator tests: emulators on loopback and a small urllib3 caller."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import urllib3

from hubspot_local.emulator import DEFAULT_TOKEN, HubSpotEmulator


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


class Caller:
    """Calls the emulator over real HTTP: ``hubspot("POST", "/crm/v3/...", {...}, token=...)``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = urllib3.PoolManager(retries=False, timeout=5)

    def __call__(
        self, method: str, path: str, body: Any = None, *, token: str | None = DEFAULT_TOKEN, raw: bytes | None = None
    ) -> Reply:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        answer = self.http.request(method, self.base_url + path, body=data, headers=headers)
        return Reply(answer.status, json.loads(answer.data) if answer.data else None, dict(answer.headers))


@pytest.fixture
def start_emulator() -> Iterator[Any]:
    """Factory: ``emu, hubspot = start_emulator(**HubSpotEmulator kwargs)``; stopped after the test."""
    started: list[tuple[HubSpotEmulator, Caller]] = []

    def start(**kwargs: Any) -> tuple[HubSpotEmulator, Caller]:
        emulator = HubSpotEmulator(**kwargs)
        started.append((emulator, Caller(emulator.start())))
        return started[-1]

    yield start
    for emulator, caller in started:
        caller.http.clear()
        emulator.stop()


@pytest.fixture
def emulator_and_caller(start_emulator: Any) -> tuple[HubSpotEmulator, Caller]:
    return start_emulator()


@pytest.fixture
def emulator(emulator_and_caller: tuple[HubSpotEmulator, Caller]) -> HubSpotEmulator:
    """A default emulator: token ``local-dev-token`` with the product's scopes, professional tier."""
    return emulator_and_caller[0]


@pytest.fixture
def hubspot(emulator_and_caller: tuple[HubSpotEmulator, Caller]) -> Caller:
    """A caller bound to the default emulator."""
    return emulator_and_caller[1]
