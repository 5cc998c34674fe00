"""Fault injection in the HubSpot emulator (issue 3): seedable, settable per run and over HTTP."""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
import urllib3
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from hubspot_local.emulator import FaultConfig

UPSERT = "/crm/v3/objects/contacts/batch/upsert"
PROPERTIES = "/crm/v3/properties/contacts"
ONE_INPUT = {"inputs": [{"idProperty": "email", "id": "ada@example.com", "properties": {"email": "ada@example.com"}}]}
MIXED = FaultConfig(seed=7, error_rates={423: 0.1, 500: 0.1, 502: 0.1, 503: 0.1, 504: 0.1})


def set_faults(emulator, config: dict) -> urllib3.BaseHTTPResponse:
    return urllib3.request("POST", emulator.base_url + "/__emulator/faults", json=config)


def test_error_statuses_follow_the_seed(start_emulator):
    emulator, hubspot = start_emulator(faults=MIXED, enforce_rate_limits=False)
    first = [hubspot("GET", PROPERTIES).status for _ in range(40)]
    assert set(first) == {200, 423, 500, 502, 503, 504}
    set_faults(emulator, MIXED.model_dump())  # same seed again: the same sequence
    assert [hubspot("GET", PROPERTIES).status for _ in range(40)] == first
    set_faults(emulator, MIXED.model_dump() | {"seed": 8})
    assert [hubspot("GET", PROPERTIES).status for _ in range(40)] != first


def test_faulted_requests_answer_json_and_write_nothing(start_emulator):
    emulator, hubspot = start_emulator(faults=FaultConfig(error_rates={503: 1.0}))
    reply = hubspot("POST", UPSERT, ONE_INPUT)
    assert reply.status == 503
    assert reply.body["status"] == "error"
    state = emulator.snapshot()
    assert state["contacts"] == []
    assert state["requests"][0]["inputs"] == 1


def test_477_carries_retry_after(start_emulator):
    _, hubspot = start_emulator(faults=FaultConfig(error_rates={477: 1.0}))
    reply = hubspot("GET", PROPERTIES)
    assert reply.status == 477
    assert reply.headers["Retry-After"] == "2"


def test_connection_reset_closes_without_an_answer(start_emulator):
    emulator, _ = start_emulator(faults=FaultConfig(reset_rate=1.0))
    http = urllib3.PoolManager(retries=False, timeout=2)
    headers = {"Authorization": "Bearer local-dev-token"}
    with pytest.raises(ProtocolError):
        http.request("POST", emulator.base_url + UPSERT, json=ONE_INPUT, headers=headers)
    state = emulator.snapshot()
    assert state["contacts"] == []
    assert state["requests"][0]["status"] is None


def test_slow_answer_passes_the_client_timeout_after_the_write(start_emulator):
    emulator, _ = start_emulator(faults=FaultConfig(slow_rate=1.0, slow_seconds=0.5))
    http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=1, read=0.1))
    headers = {"Authorization": "Bearer local-dev-token"}
    with pytest.raises(ReadTimeoutError):
        http.request("POST", emulator.base_url + UPSERT, json=ONE_INPUT, headers=headers)
    assert [c["properties"]["email"] for c in emulator.snapshot()["contacts"]] == ["ada@example.com"]


def new_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """Threads started since ``before`` was taken: the emulator's handler threads of the test's requests."""
    return [t for t in threading.enumerate() if t not in before]


def hold_a_slow_answer(emulator) -> tuple[socket.socket, list[threading.Thread]]:
    """A raw request the emulator holds the answer of: the client socket and the handler threads, once the
    emulator logged the request (it logs before holding)."""
    before = set(threading.enumerate())
    url = urlsplit(emulator.base_url)
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    sock.sendall(f"GET {PROPERTIES} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer local-dev-token\r\n\r\n".encode())
    deadline = time.monotonic() + 10
    while not emulator.snapshot()["requests"]:
        assert time.monotonic() < deadline, "the emulator never got the request"
        time.sleep(0.01)
    threads = new_threads(before)
    assert threads
    return sock, threads


def test_a_slow_answer_ends_when_the_client_hangs_up(start_emulator):
    emulator, _ = start_emulator(faults=FaultConfig(slow_rate=1.0, slow_seconds=600))
    sock, threads = hold_a_slow_answer(emulator)
    sock.close()
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()


def test_a_slow_answer_ends_when_the_emulator_stops(start_emulator):
    emulator, _ = start_emulator(faults=FaultConfig(slow_rate=1.0, slow_seconds=600))
    sock, threads = hold_a_slow_answer(emulator)
    emulator.stop()
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()
    with sock:
        assert sock.recv(4096) == b""  # closed without an answer


def test_429_bursts_come_in_runs(start_emulator):
    config = FaultConfig(seed=1, burst_429_rate=0.2, burst_429_length=3)
    _, hubspot = start_emulator(faults=config, enforce_rate_limits=False)
    replies = [hubspot("GET", PROPERTIES) for _ in range(30)]
    statuses = [r.status for r in replies]
    assert 429 in statuses
    start = statuses.index(429)
    assert statuses[start : start + 3] == [429, 429, 429]
    assert replies[start].body["policyName"] == "TEN_SECONDLY_ROLLING"


def test_token_is_revoked_after_n_requests(start_emulator):
    _, hubspot = start_emulator(faults=FaultConfig(revoke_token_after=2))
    statuses = [hubspot("GET", PROPERTIES).status for _ in range(4)]
    assert statuses == [200, 200, 401, 401]


def test_faults_are_set_over_the_admin_endpoint(emulator, hubspot):
    answer = set_faults(emulator, {"seed": 3, "error_rates": {"500": 1.0}})
    assert answer.status == 200
    assert answer.json()["error_rates"] == {"500": 1.0}
    assert hubspot("GET", PROPERTIES).status == 500
    assert set_faults(emulator, {}).status == 200
    assert hubspot("GET", PROPERTIES).status == 200


@pytest.mark.parametrize(
    "config",
    [{"error_rates": {"404": 0.5}}, {"error_rates": {"500": 0.7}, "reset_rate": 0.5}, {"slow_rate": 2}, {"x": 1}],
)
def test_invalid_fault_configurations_are_refused(emulator, config):
    answer = set_faults(emulator, config)
    assert answer.status == 400
    assert answer.json()["status"] == "error"
