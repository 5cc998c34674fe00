"""Fault injection in the HubSpot emulator (issue 3): seedable, settable per run and over HTTP."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import urllib3
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from hubspot_local.emulator import FaultConfig
from hubspot_local.emulator.faults import FaultInjector, Latency
from hubspot_local.emulator.hostile import MALFORMED_BODIES

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


def test_latency_holds_the_answer_after_the_write(start_emulator):
    emulator, _ = start_emulator(faults=FaultConfig(latency={"median_ms": 2000, "sigma": 0}))
    http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=1, read=0.2))
    headers = {"Authorization": "Bearer local-dev-token"}
    with pytest.raises(ReadTimeoutError):  # 1 input: 0.3 + 0.7/100 of the 2-s median, well past 0.2 s
        http.request("POST", emulator.base_url + UPSERT, json=ONE_INPUT, headers=headers)
    assert [c["properties"]["email"] for c in emulator.snapshot()["contacts"]] == ["ada@example.com"]


def test_latency_is_lognormal_around_its_median_scaled_by_inputs_and_follows_its_own_seed():
    latency = {"median_ms": 400, "sigma": 0.5}
    injector = FaultInjector(FaultConfig(seed=3, latency=latency))
    draws = sorted(injector.draw_latency(100) for _ in range(4001))
    assert 0.38 < draws[2000] < 0.42  # the median of a 100-input batch
    assert draws[-41] > 2.5 * draws[2000]  # a long tail: p99 about 3.2 x the median
    fixed = FaultInjector(FaultConfig(seed=3, latency=latency | {"sigma": 0}))
    assert (fixed.draw_latency(None), fixed.draw_latency(50)) == (pytest.approx(0.12), pytest.approx(0.26))
    first, second = (FaultInjector(FaultConfig(seed=3, latency=latency)) for _ in range(2))
    assert [first.draw_latency(100) for _ in range(5)] == [second.draw_latency(100) for _ in range(5)]
    # Its own generator: the faults of a seed are the same with or without it.
    plain, timed = FaultInjector(MIXED), FaultInjector(MIXED.model_copy(update={"latency": Latency(**latency)}))
    for _ in range(50):
        timed.draw_latency(100)
    assert [plain.draw(UPSERT).fault for _ in range(50)] == [timed.draw(UPSERT).fault for _ in range(50)]


def test_in_flight_counts_contacts_sent_in_two_upserts_at_once(start_emulator):
    emulator, hubspot = start_emulator(faults=FaultConfig(latency={"median_ms": 1500, "sigma": 0}))
    other = {"inputs": [{"idProperty": "email", "id": "bob@example.com", "properties": {}}]}
    bodies = [ONE_INPUT, ONE_INPUT, other]
    threads = [threading.Thread(target=hubspot, args=("POST", UPSERT, body)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    hubspot("GET", PROPERTIES)
    # Each answer is held about 0.5 s after its write; the three were sent at once.
    assert emulator.snapshot()["in_flight"] == {"most_requests": 3, "most_upserts": 3, "contacts_in_two_upserts": 1}


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


# ---- hostile answers: test faults, not HubSpot's behaviour (docs/emulator.md "Hostile answers") ----

RATE_LIMIT_HEADERS = [
    "X-HubSpot-RateLimit-Max",
    "X-HubSpot-RateLimit-Remaining",
    "X-HubSpot-RateLimit-Interval-Milliseconds",
    "X-HubSpot-RateLimit-Daily",
    "X-HubSpot-RateLimit-Daily-Remaining",
]
AUTH = {"Authorization": "Bearer local-dev-token", "Content-Type": "application/json"}
ONE_INPUT_BYTES = json.dumps(ONE_INPUT).encode()
PADDED_PREFIX = b'{"status":"COMPLETE","results":[]'


@pytest.fixture
def wire() -> Iterator[Callable[..., tuple[http.client.HTTPResponse, http.client.HTTPConnection]]]:
    """``wire(emulator, method, path, body=None, headers=None)``: one request with http.client (no redirects
    followed, nothing decompressed), returning ``(response, connection)``; connections close after the test."""
    connections: list[http.client.HTTPConnection] = []

    def request(emulator, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        url = urlsplit(emulator.base_url)
        connections.append(http.client.HTTPConnection(url.hostname, url.port, timeout=10))
        connections[-1].request(method, path, body=body, headers={**AUTH, **(headers or {})})
        return connections[-1].getresponse(), connections[-1]

    yield request
    for connection in connections:
        connection.close()


def written_emails(emulator) -> list[str]:
    return [c["properties"]["email"] for c in emulator.snapshot()["contacts"]]


def new_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """Threads started since ``before`` was taken: the emulator's handler threads of the test's requests."""
    return [t for t in threading.enumerate() if t not in before]


def read_head(answer) -> list[bytes]:
    """The status line and header lines of an answer read from a socket file, up to the blank line."""
    head = []
    while (line := answer.readline()) != b"\r\n":
        assert line, "the connection closed before the end of the headers"
        head.append(line)
    return head


def wait_for_requests(emulator, count: int) -> None:
    """Until the emulator has logged ``count`` requests (it logs before it holds or streams an answer)."""
    deadline = time.monotonic() + 10
    while len(emulator.snapshot()["requests"]) < count:
        assert time.monotonic() < deadline, "the emulator never got the request"
        time.sleep(0.01)


class Recorder:
    """A second HTTP server on loopback that records what reaches it, e.g. a redirected request: ``url`` is
    its base URL; ``requests`` holds one ``{"method", "path", "headers", "body"}`` per request (headers
    lower-cased); every request gets 200 ``{}``."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                recorder.requests.append({"method": self.command, "path": self.path, "headers": headers, "body": body})
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_PUT = do_PATCH = do_POST

            def log_message(self, *_args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """A ``Recorder`` on loopback, closed after the test."""
    running = Recorder()
    yield running
    running.close()


@pytest.mark.parametrize("value", ["999999999999", "0", "-1", "abc", "1.5", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_header_overrides_send_the_exact_values_on_success_answers(start_emulator, value, wire):
    headers = dict.fromkeys([*RATE_LIMIT_HEADERS, "Retry-After"], value)
    emulator, _ = start_emulator(faults=FaultConfig(header_overrides={"rate": 1.0, "headers": headers}))
    response, _ = wire(emulator, "POST", UPSERT, ONE_INPUT_BYTES)
    assert response.status == 200
    json.loads(response.read())  # the answer itself is untouched
    for name in headers:
        assert response.headers.get_all(name) == [value]
    assert written_emails(emulator) == ["ada@example.com"]
    assert emulator.snapshot()["requests"][0]["rateLimitRemaining"] == 189  # the log keeps the real count


def test_header_overrides_repeat_and_leave_out_headers(start_emulator, wire):
    headers = {
        "X-HubSpot-RateLimit-Remaining": ["100", "-5"],
        "Retry-After": ["1", "Wed, 21 Oct 2015 07:28:00 GMT"],
        "X-HubSpot-RateLimit-Max": None,
        "x-hubspot-ratelimit-daily": "0",  # names match case-insensitively
    }
    emulator, _ = start_emulator(faults=FaultConfig(header_overrides={"rate": 1.0, "headers": headers}))
    response, _ = wire(emulator, "GET", PROPERTIES)
    response.read()
    assert response.headers.get_all("X-HubSpot-RateLimit-Remaining") == ["100", "-5"]
    assert response.headers.get_all("Retry-After") == ["1", "Wed, 21 Oct 2015 07:28:00 GMT"]
    assert response.headers.get_all("X-HubSpot-RateLimit-Max") is None
    assert response.headers.get_all("X-HubSpot-RateLimit-Daily") == ["0"]
    assert response.headers.get_all("X-HubSpot-RateLimit-Interval-Milliseconds") == ["10000"]


@pytest.mark.parametrize("limit", ["injected burst", "rate limiter"])
def test_header_overrides_reach_429s(start_emulator, limit, wire):
    poisoned = {"rate": 1.0, "headers": {"Retry-After": "-3", "X-HubSpot-RateLimit-Remaining": "abc"}}
    if limit == "injected burst":
        emulator, _ = start_emulator(faults=FaultConfig(burst_429_rate=1.0, header_overrides=poisoned))
    else:
        emulator, _ = start_emulator(burst_limit=1, faults=FaultConfig(header_overrides=poisoned))
        wire(emulator, "GET", PROPERTIES)[0].read()
    response, _ = wire(emulator, "GET", PROPERTIES)
    assert response.status == 429
    assert json.loads(response.read())["policyName"] == "TEN_SECONDLY_ROLLING"
    assert response.headers.get_all("Retry-After") == ["-3"]
    assert response.headers.get_all("X-HubSpot-RateLimit-Remaining") == ["abc"]


def test_header_overrides_follow_the_rate_the_seed_and_the_paths(start_emulator, wire):
    config = FaultConfig(seed=4, header_overrides={"rate": 0.5, "paths": ["batch/read"], "headers": {"X-A": "1"}})
    emulator, _ = start_emulator(faults=config, enforce_rate_limits=False)
    read = json.dumps({"inputs": [{"id": "1"}]}).encode()

    def poisoned() -> list[tuple[bool, bool]]:
        pattern = []
        for _ in range(20):
            listed, _ = wire(emulator, "GET", PROPERTIES)
            listed.read()
            batch, _ = wire(emulator, "POST", "/crm/v3/objects/contacts/batch/read", read)
            batch.read()
            pattern.append((listed.getheader("X-A") is not None, batch.getheader("X-A") is not None))
        return pattern

    first = poisoned()
    assert not any(listed for listed, _ in first)
    assert {batch for _, batch in first} == {True, False}
    set_faults(emulator, config.model_dump())  # the same seed again: the same answers are poisoned
    assert poisoned() == first


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_point_at_another_host_and_write_nothing(start_emulator, recorder, status, wire):
    redirect = {"rate": 1.0, "to": recorder.url + "/", "status": status, "paths": ["batch/upsert"]}
    emulator, _ = start_emulator(faults=FaultConfig(redirect=redirect))
    response, _ = wire(emulator, "POST", UPSERT + "?idProperty=email", ONE_INPUT_BYTES)
    assert response.status == status
    assert response.getheader("Location") == recorder.url + UPSERT + "?idProperty=email"
    response.read()
    assert written_emails(emulator) == []
    assert recorder.requests == []  # the emulator only points there
    listed, _ = wire(emulator, "GET", PROPERTIES)
    assert listed.status == 200  # other paths are not redirected


def test_a_client_that_follows_the_redirect_sends_the_body_elsewhere(start_emulator, recorder):
    emulator, _ = start_emulator(faults=FaultConfig(redirect={"rate": 1.0, "to": recorder.url}))
    following = urllib3.PoolManager(retries=urllib3.Retry(total=1, redirect=1), timeout=5)
    answer = following.request("POST", emulator.base_url + UPSERT, body=ONE_INPUT_BYTES, headers=AUTH)
    assert answer.status == 200
    assert [(r["method"], r["path"], r["body"]) for r in recorder.requests] == [("POST", UPSERT, ONE_INPUT_BYTES)]
    assert written_emails(emulator) == []


def test_drip_sends_the_body_a_few_bytes_at_a_time_in_chunked_framing(start_emulator):
    path = PROPERTIES + "/email"
    emulator, hubspot = start_emulator()
    expected = hubspot("GET", path).body
    emulator.set_faults(FaultConfig(drip={"rate": 1.0, "interval_seconds": 0.005, "chunk_bytes": 7, "chunked": True}))
    url = urlsplit(emulator.base_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock, sock.makefile("rb") as answer:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH['Authorization']}\r\n\r\n".encode())
        head = read_head(answer)
        assert b"Transfer-Encoding: chunked\r\n" in head
        assert not any(line.lower().startswith(b"content-length") for line in head)
        sizes, body = [], b""
        while size := int(answer.readline(), 16):
            sizes.append(size)
            body += answer.read(size)
            assert answer.readline() == b"\r\n"
    assert set(sizes[:-1]) == {7}
    assert 1 <= sizes[-1] <= 7
    assert json.loads(body) == expected


def test_drip_under_content_length_sends_the_whole_body_piece_by_piece(start_emulator):
    drip = {"rate": 1.0, "interval_seconds": 0.02, "chunk_bytes": 64, "paths": ["batch/upsert"]}
    emulator, _ = start_emulator(faults=FaultConfig(drip=drip))
    http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=5))
    started = time.monotonic()
    answer = http.request("POST", emulator.base_url + UPSERT, body=ONE_INPUT_BYTES, headers=AUTH)
    elapsed = time.monotonic() - started
    assert answer.status == 200
    assert int(answer.headers["Content-Length"]) == len(answer.data) > 64
    pieces = -(-len(answer.data) // 64)
    assert elapsed >= (pieces - 1) * 0.02  # a lower bound only: a busy machine makes it longer, never shorter
    assert answer.json()["results"][0]["properties"]["email"] == "ada@example.com"
    assert written_emails(emulator) == ["ada@example.com"]


HELD = {
    "drip": FaultConfig(drip={"rate": 1.0, "interval_seconds": 600, "chunk_bytes": 5}),
    "slow": FaultConfig(slow_rate=1.0, slow_seconds=600),
}


def hold_an_answer(emulator) -> tuple[socket.socket, list[threading.Thread]]:
    """A raw request whose answer the emulator holds (dripped or slow): the client socket and the handler
    threads, once the emulator logged the request and sent what it sends at once."""
    before = set(threading.enumerate())
    url = urlsplit(emulator.base_url)
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    sock.sendall(f"GET {PROPERTIES} HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH['Authorization']}\r\n\r\n".encode())
    wait_for_requests(emulator, 1)
    if emulator.faults.config.drip is not None:
        with sock.makefile("rb") as answer:
            assert read_head(answer)[0].startswith(b"HTTP/1.1 200")
            assert len(answer.read(5)) == 5  # the first piece; the next one is 600 s away
    threads = new_threads(before)
    assert threads
    return sock, threads


@pytest.mark.parametrize("held", HELD)
def test_held_answers_end_when_the_client_hangs_up(start_emulator, held):
    emulator, _ = start_emulator(faults=HELD[held])
    sock, threads = hold_an_answer(emulator)
    sock.close()
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()


@pytest.mark.parametrize("held", HELD)
def test_held_answers_end_when_the_emulator_stops(start_emulator, held):
    emulator, _ = start_emulator(faults=HELD[held])
    sock, threads = hold_an_answer(emulator)
    emulator.stop()
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()
    with sock:
        assert sock.recv(4096) == b""  # closed, the rest of the answer never sent


def test_huge_body_is_streamed_with_the_length_of_the_whole(start_emulator, wire):
    emulator, _ = start_emulator(faults=FaultConfig(huge_body={"rate": 1.0, "paths": ["batch/upsert"]}))
    before = set(threading.enumerate())
    response, connection = wire(emulator, "POST", UPSERT, ONE_INPUT_BYTES)
    assert response.status == 200
    assert response.getheader("Content-Length") == "200000000"
    start = response.read(1 << 20)
    assert start.startswith(PADDED_PREFIX)
    assert start[len(PADDED_PREFIX) :] == b" " * (len(start) - len(PADDED_PREFIX))
    assert written_emails(emulator) == ["ada@example.com"]  # processed, then the answer replaced
    connection.close()
    for thread in new_threads(before):
        thread.join(timeout=10)
        assert not thread.is_alive()


def test_huge_body_in_chunked_framing_is_the_size_asked_for(start_emulator, wire):
    size = 3 * (1 << 20) + 5
    emulator, _ = start_emulator(faults=FaultConfig(huge_body={"rate": 1.0, "size_bytes": size, "chunked": True}))
    response, _ = wire(emulator, "GET", PROPERTIES)
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.getheader("Content-Length") is None
    body = response.read()
    assert len(body) == size
    assert json.loads(body) == {"status": "COMPLETE", "results": []}


def test_gzip_bomb_is_sent_unasked_and_inflates_to_its_size(start_emulator, wire):
    emulator, _ = start_emulator(faults=FaultConfig(gzip_bomb={"rate": 1.0, "processed": False}))
    response, _ = wire(emulator, "POST", UPSERT, ONE_INPUT_BYTES, {"Accept-Encoding": "identity"})
    assert response.status == 200
    assert response.getheader("Content-Encoding") == "gzip"
    compressed = response.read()
    assert int(response.getheader("Content-Length")) == len(compressed) < 600_000
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # a gzip member, inflated 4 MiB at a time
    start = inflater.decompress(compressed, 64)
    inflated, rest = len(start), inflater.unconsumed_tail
    while rest:
        inflated += len(inflater.decompress(rest, 1 << 22))
        rest = inflater.unconsumed_tail
    assert inflater.eof  # a complete gzip member, its CRC and length checked
    assert inflated == 500_000_000
    assert start.startswith(PADDED_PREFIX)
    assert written_emails(emulator) == []  # not processed


def _not_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return True
    return False


MALFORMED_EXPECTED = {
    "empty_list": (200, lambda body: json.loads(body) == []),
    "results_null": (200, lambda body: json.loads(body)["results"] is None),
    "results_string": (200, lambda body: json.loads(body)["results"] == "x"),
    "errors_strings": (207, lambda body: json.loads(body)["errors"] == ["boom"]),
    "properties_string": (200, lambda body: isinstance(json.loads(body)["results"][0]["properties"], str)),
    "trace_id_not_list": (207, lambda body: json.loads(body)["errors"][0]["context"]["objectWriteTraceId"] == "0"),
    "unknown_trace_id": (200, lambda body: json.loads(body)["results"][0]["objectWriteTraceId"] == "never-sent"),
    "result_without_id": (200, lambda body: "id" not in json.loads(body)["results"][0]),
    "not_json": (200, lambda body: body.startswith(b"<html>") and _not_json(body)),
    "empty": (200, lambda body: body == b""),
    "invalid_utf8": (200, lambda body: b"\xff" in body and _not_json(body)),
}


def test_the_malformed_catalogue_is_the_documented_one():
    assert set(MALFORMED_BODIES) == set(MALFORMED_EXPECTED)


@pytest.mark.parametrize("name", MALFORMED_EXPECTED)
def test_malformed_bodies_are_sent_as_json_after_the_write(start_emulator, name, wire):
    emulator, _ = start_emulator(faults=FaultConfig(malformed={"rate": 1.0, "bodies": [name]}))
    response, _ = wire(emulator, "POST", UPSERT, ONE_INPUT_BYTES)
    status, check = MALFORMED_EXPECTED[name]
    body = response.read()
    assert response.status == status
    assert response.getheader("Content-Type") == "application/json;charset=utf-8"
    assert response.getheader("Content-Length") == str(len(body))
    assert check(body)
    assert written_emails(emulator) == ["ada@example.com"]
    assert emulator.snapshot()["requests"][0]["status"] == status


def test_malformed_bodies_of_ones_own_come_in_turn_and_may_skip_the_write(start_emulator, wire):
    bodies = [{"status": 207, "text": '{"results": [{"id": "1"}]}'}, {"base64": "AP8K"}, "empty"]
    malformed = {"rate": 1.0, "paths": ["batch/upsert"], "bodies": bodies, "processed": False}
    emulator, _ = start_emulator(faults=FaultConfig(malformed=malformed))
    answers = []
    for _ in range(4):
        response, _ = wire(emulator, "POST", UPSERT, ONE_INPUT_BYTES)
        answers.append((response.status, response.read()))
    assert answers == [(207, b'{"results": [{"id": "1"}]}'), (200, b"\x00\xff\n"), (200, b""), answers[0]]
    assert written_emails(emulator) == []
    listed, _ = wire(emulator, "GET", PROPERTIES)
    assert listed.status == 200
    assert json.loads(listed.read())["results"]


def test_hostile_kinds_follow_the_rates_and_the_seed(start_emulator, wire):
    config = FaultConfig(
        seed=1,
        redirect={"rate": 0.2, "to": "http://127.0.0.1:9"},
        huge_body={"rate": 0.1, "size_bytes": 100},
        gzip_bomb={"rate": 0.1, "inflated_bytes": 100},
        malformed={"rate": 0.2, "bodies": ["empty_list"]},
    )
    emulator, _ = start_emulator(faults=config, enforce_rate_limits=False)

    def kinds() -> list[str]:
        seen = []
        for _ in range(40):
            response, _ = wire(emulator, "GET", PROPERTIES)
            body = response.read()
            if response.status == 307:
                seen.append("redirect")
            elif response.getheader("Content-Encoding") == "gzip":
                seen.append("gzip_bomb")
            else:
                seen.append({b"[]": "malformed", PADDED_PREFIX + b" " * 66 + b"}": "huge_body"}.get(body, "none"))
        return seen

    first = kinds()
    assert set(first) == {"none", "redirect", "huge_body", "gzip_bomb", "malformed"}
    set_faults(emulator, config.model_dump())
    assert kinds() == first


def test_hostile_configurations_round_trip_over_the_admin_endpoint(emulator):
    config = {
        "seed": 1,
        "header_overrides": {"rate": 0.5, "paths": ["batch/upsert"], "headers": {"Retry-After": ["1", "2"], "X": None}},
        "redirect": {"rate": 0.1, "to": "https://example.com:8443"},
        "malformed": {"rate": 0.1, "bodies": ["empty", {"status": 207, "text": "{}"}]},
        "drip": {"rate": 0.5, "interval_seconds": 1.5},
    }
    answer = set_faults(emulator, config)
    assert answer.status == 200
    current = urllib3.request("GET", emulator.base_url + "/__emulator/faults").json()
    assert current["malformed"]["bodies"] == ["empty", {"status": 207, "text": "{}", "base64": None}]
    assert current["drip"] == {"rate": 0.5, "paths": [], "interval_seconds": 1.5, "chunk_bytes": 1, "chunked": False}
    assert set_faults(emulator, current).json() == current


@pytest.mark.parametrize(
    "config",
    [
        {"redirect": {"rate": 0.6, "to": "http://127.0.0.1:9"}, "malformed": {"rate": 0.5}},
        {"redirect": {"rate": 1.0, "to": "ftp://127.0.0.1"}},
        {"redirect": {"rate": 1.0, "to": "http://127.0.0.1:9", "status": 303}},
        {"header_overrides": {"rate": 1.0, "headers": {"Retry-After": "1\r\nX-Injected: 1"}}},
        {"header_overrides": {"rate": 1.0, "headers": {"Bad Name": "1"}}},
        {"header_overrides": {"rate": 1.0, "headers": {"Retry-After": []}}},
        {"malformed": {"rate": 1.0, "bodies": ["no_such_body"]}},
        {"malformed": {"rate": 1.0, "bodies": [{"text": "{}", "base64": "e30="}]}},
        {"malformed": {"rate": 1.0, "bodies": [{"base64": "not base64!"}]}},
        {"huge_body": {"rate": 1.0, "size_bytes": 10}},
        {"drip": {"rate": 1.0, "interval_seconds": 0}},
        {"gzip_bomb": {"inflated_bytes": 1000}},
    ],
)
def test_invalid_hostile_configurations_are_refused(emulator, config):
    answer = set_faults(emulator, config)
    assert answer.status == 400
    assert answer.json()["category"] == "VALIDATION_ERROR"
