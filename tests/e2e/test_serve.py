"""`hubspot-destination serve` as a user runs it: a subprocess serving the webhook on loopback, driven over real
HTTP with urllib3, stopped with SIGINT or SIGTERM."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import urllib3

from hubspot_local.emulator import PRODUCT_SCOPES, HubSpotEmulator
from tests.conftest import SAMPLE_EMAILS

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = (ROOT / "events" / "activation.json").read_bytes()
QUEUE_REPORT = re.compile(r"left on the queue: (\d+) message\(s\): (\d+) visible, (\d+) delayed, (\d+) in flight")
WAIT_S = 90  # the longest a step may take on a busy machine before the test gives up


@contextmanager
def served(*args: str, env: dict | None = None) -> Iterator[tuple[subprocess.Popen, dict]]:
    """`serve` in a subprocess and the JSON line it printed; the process is always ended (SIGINT, then kill)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "hubspot_local.cli", "serve", "--port", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        line = process.stdout.readline()
        assert line, f"serve printed nothing: {process.communicate(timeout=WAIT_S)}"
        yield process, json.loads(line)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=WAIT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stdout.close()
        process.stderr.close()


def stop(process: subprocess.Popen, signum: int) -> tuple[int, str, str]:
    """Send `signum`; the exit status, and what is left of stdout and stderr."""
    process.send_signal(signum)
    out, err = process.communicate(timeout=WAIT_S)
    return process.returncode, out, err


@pytest.fixture
def http() -> Iterator[urllib3.PoolManager]:
    pool = urllib3.PoolManager(retries=False, timeout=30)
    yield pool
    pool.clear()


def post(http: urllib3.PoolManager, url: str, token: str, body: bytes = SAMPLE) -> urllib3.BaseHTTPResponse:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    return http.request("POST", url, body=body, headers=headers)


def contacts_when_written(http: urllib3.PoolManager, hubspot_url: str, emails: set[str]) -> dict[str, dict]:
    """Poll the emulator's state until it holds a contact for every one of `emails`; its contacts by email."""
    deadline = time.monotonic() + WAIT_S
    while True:
        state = json.loads(http.request("GET", f"{hubspot_url}/__emulator/state").data)
        contacts = {c["properties"].get("email"): c["properties"] for c in state["contacts"]}
        if emails <= set(contacts) or time.monotonic() > deadline:
            return contacts
        time.sleep(0.5)


def test_serve_answers_as_the_deployed_webhook_delivers_to_hubspot_and_stops_on_sigint(http):
    with served() as (process, started):
        assert set(started) == {"api_url", "bearer_token", "hubspot_url", "hubspot_token"}
        assert started["api_url"].startswith("http://127.0.0.1:")
        assert started["hubspot_token"] == "local-dev-token"
        activations = f"{started['api_url']}/v1/activations"

        accepted = post(http, activations, started["bearer_token"])
        assert accepted.status == 202, accepted.data
        body = json.loads(accepted.data)
        assert body["accepted"] == 5
        assert [(r["index"], r["reason"]) for r in body["rejected"]] == [(4, "INVALID_EMAIL")]
        assert accepted.headers["x-amzn-RequestId"] == body["requestId"]

        refused = post(http, activations, "not-the-key")
        assert (refused.status, json.loads(refused.data)["error"]) == (401, "UNAUTHORIZED")
        unknown = http.request("GET", f"{started['api_url']}/v1/no-such-route")
        assert unknown.status == 404
        assert unknown.headers["Content-Type"] == "application/json"
        assert json.loads(unknown.data)["error"] == "NOT_FOUND"

        contacts = contacts_when_written(http, started["hubspot_url"], SAMPLE_EMAILS)
        assert set(contacts) >= SAMPLE_EMAILS
        assert contacts["ana.garcia@example.com"]["city"] == "Lisbon"

        status, out, err = stop(process, signal.SIGINT)
    assert status == 0, err
    assert out == ""  # the JSON line was the only output
    assert "Profiles: 12 sent, 7 refused at ingest, 5 written, 0 dead-lettered, 0 still queued, 0 lost" in err
    assert "OK: every accepted profile was written." in err
    assert QUEUE_REPORT.search(err).groups() == ("0", "0", "0", "0")
    assert "Traceback" not in err
    assert started["bearer_token"] not in err


def test_serve_stopped_before_it_could_deliver_reports_what_is_still_queued_and_exits_1(http):
    with served() as (process, started):
        # The served emulator's admin endpoint: every HubSpot request fails from now on.
        faults = http.request("POST", f"{started['hubspot_url']}/__emulator/faults", json={"error_rates": {"503": 1.0}})
        assert faults.status == 200, faults.data
        assert post(http, f"{started['api_url']}/v1/activations", started["bearer_token"]).status == 202
        status, _, err = stop(process, signal.SIGINT)
    assert status == 1, err
    assert "0 written, 0 dead-lettered, 5 still queued, 0 lost" in err
    assert "NOT OK: not every accepted profile was written." in err
    messages, *states = map(int, QUEUE_REPORT.search(err).groups())
    assert messages == sum(states) >= 1
    assert "Traceback" not in err


def test_serve_writes_to_the_portal_at_hubspot_url_with_its_token_and_stops_on_sigterm(http):
    token = "a-real-portal-token-0123456789"
    with (
        HubSpotEmulator(tokens={token: PRODUCT_SCOPES}) as portal,
        served("--hubspot-url", portal.base_url, env={"HUBSPOT_ACCESS_TOKEN": token}) as (process, started),
    ):
        assert started["hubspot_url"] == portal.base_url
        assert started["hubspot_token"] is None  # a real portal's token is the caller's own
        assert post(http, f"{started['api_url']}/v1/activations", started["bearer_token"]).status == 202
        assert set(contacts_when_written(http, portal.base_url, SAMPLE_EMAILS)) >= SAMPLE_EMAILS
        status, _, err = stop(process, signal.SIGTERM)
    assert status == 0, err
    assert "6 sent, 1 refused at ingest, 5 written, 0 dead-lettered, 0 still queued, 0 lost" in err
    assert token not in err
    assert "Traceback" not in err
