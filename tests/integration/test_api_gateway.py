"""The API Gateway stand-in over real HTTP on loopback: each request reaches the function as the REST API's proxy
event, the function's response comes back as API Gateway makes it; bodies over the payload quota, function
errors and requests `http.server` cannot parse get API Gateway-style JSON answers. Last, the real ingest
handler behind it, with the whole local pipeline."""

import base64
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import urllib3

from hubspot_destination.ingest.body import raw_request_body
from hubspot_local.api_gateway import PAYLOAD_LIMIT_BYTES, ApiGateway
from tests.conftest import SAMPLE_EMAILS
from tests.helpers import assert_all_accounted_for

OK = {"statusCode": 200, "multiValueHeaders": {"Content-Type": ["application/json"]}, "body": "{}"}


class Function:
    """A function behind the gateway that keeps every event and answers `respond(event)` (OK by default)."""

    def __init__(self, respond: Callable[[dict], object] = lambda event: OK):
        self.events: list[dict] = []
        self._respond = respond

    def __call__(self, event: dict) -> object:
        self.events.append(event)
        return self._respond(event)


@pytest.fixture
def http() -> Iterator[urllib3.PoolManager]:
    pool = urllib3.PoolManager(retries=False, timeout=30)
    yield pool
    pool.clear()


@pytest.fixture
def function() -> Function:
    return Function()


@pytest.fixture
def gateway(function) -> Iterator[ApiGateway]:
    with ApiGateway(function) as running:
        yield running


def raw_exchange(gateway: ApiGateway, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `request` as is on a new connection; the answer's status, headers (lower-cased) and body."""
    host, port = gateway.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body


def test_the_event_carries_the_request_as_api_gateway_sends_it(gateway, function, http):
    headers = urllib3.HTTPHeaderDict({"User-Agent": "probe/1.0"})
    headers.add("X-Repeated", "one")
    headers.add("X-Repeated", "two")
    before = time.time()
    answer = http.request("GET", f"{gateway.base_url}/v1/things?a=1&a=2&empty=&b=x%20y", headers=headers)
    after = time.time()
    assert answer.status == 200
    [event] = function.events
    assert (event["resource"], event["path"], event["httpMethod"]) == ("/v1/things", "/v1/things", "GET")
    assert event["headers"]["X-Repeated"] == "two"
    assert event["multiValueHeaders"]["X-Repeated"] == ["one", "two"]
    assert event["headers"]["User-Agent"] == "probe/1.0"
    assert event["queryStringParameters"] == {"a": "2", "empty": "", "b": "x y"}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "empty": [""], "b": ["x y"]}
    assert (event["pathParameters"], event["stageVariables"], event["body"]) == (None, None, None)
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert (context["stage"], context["path"], context["resourcePath"]) == ("prod", "/prod/v1/things", "/v1/things")
    assert context["httpMethod"] == "GET"
    assert str(uuid.UUID(context["requestId"])) == context["requestId"]
    assert int(before * 1000) <= context["requestTimeEpoch"] <= int(after * 1000) + 1
    assert context["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "probe/1.0"}
    assert answer.headers["x-amzn-RequestId"] == context["requestId"]


def test_a_request_without_a_query_string_has_null_parameters(gateway, function, http):
    http.request("GET", f"{gateway.base_url}/v1/activations")
    [event] = function.events
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None


def test_every_request_gets_a_request_id_of_its_own(gateway, function, http):
    for _ in range(3):
        http.request("POST", f"{gateway.base_url}/v1/activations", body=b"{}")
    assert len({event["requestContext"]["requestId"] for event in function.events}) == 3


BODIES = {
    "UTF-8 JSON": '{"city": "São Paulo"}'.encode(),
    "UTF-8 with a byte order mark": b"\xef\xbb\xbf{}",
    "Latin-1": '{"city": "São Paulo"}'.encode("latin-1"),
    "UTF-16": "{}".encode("utf-16"),
    "binary": bytes(range(256)),
}


@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
def test_bodies_reach_the_function_as_text_or_else_base64(gateway, function, http, body):
    http.request("POST", f"{gateway.base_url}/v1/activations", body=body)
    [event] = function.events
    try:
        body.decode("utf-8")
        text = True
    except UnicodeDecodeError:
        text = False
    assert event["isBase64Encoded"] is not text
    assert raw_request_body(event["body"], event["isBase64Encoded"]) == body


def test_a_chunked_body_reaches_the_function_whole(gateway, function, http):
    pieces = [b'{"profiles": ', b"[", b"]}"]
    http.request("POST", f"{gateway.base_url}/v1/activations", body=iter(pieces), chunked=True)
    [event] = function.events
    assert event["body"] == '{"profiles": []}'


def test_the_answer_is_the_functions_response_as_api_gateway_makes_it(http):
    payload = bytes(range(256))
    function = Function(
        lambda event: {
            "statusCode": 207,
            "headers": {"X-Single": "s", "X-Both": "a", "Content-Length": "1"},
            "multiValueHeaders": {"X-Multi": ["m1", "m2"], "X-Both": ["a", "b"]},
            "body": base64.b64encode(payload).decode(),
            "isBase64Encoded": True,
        }
    )
    with ApiGateway(function) as gateway:
        answer = http.request("GET", f"{gateway.base_url}/v1/anything")
    assert answer.status == 207
    assert answer.data == payload
    assert answer.headers.getlist("X-Single") == ["s"]
    assert answer.headers.getlist("X-Multi") == ["m1", "m2"]
    assert answer.headers.getlist("X-Both") == ["a", "b"]
    assert answer.headers.getlist("Content-Length") == [str(len(payload))]  # the function's is not sent


def test_a_head_request_gets_the_headers_without_the_body(gateway, http):
    answer = http.request("HEAD", f"{gateway.base_url}/v1/activations")
    assert answer.status == 200
    assert answer.headers["Content-Length"] == "2"
    assert answer.data == b""


def raising(event: dict) -> object:
    raise RuntimeError("a bug")


FUNCTION_FAULTS = {
    "raises": raising,
    "answers nothing": lambda event: None,
    "answers a list": lambda event: [],
    "no statusCode": lambda event: {"body": "{}"},
    "statusCode as text": lambda event: {"statusCode": "200", "body": "{}"},
    "statusCode out of range": lambda event: {"statusCode": 700, "body": "{}"},
    "headers not an object": lambda event: {"statusCode": 200, "headers": ["X-A"], "body": "{}"},
    "body not text": lambda event: {"statusCode": 200, "body": {"a": 1}},
    "body not base64": lambda event: {"statusCode": 200, "body": "not base64!", "isBase64Encoded": True},
}


@pytest.mark.parametrize("respond", FUNCTION_FAULTS.values(), ids=FUNCTION_FAULTS.keys())
def test_a_function_error_or_unreadable_response_is_api_gateways_502(http, respond):
    with ApiGateway(Function(respond)) as gateway:
        answer = http.request("POST", f"{gateway.base_url}/v1/activations", body=b"{}")
    assert answer.status == 502
    assert json.loads(answer.data) == {"message": "Internal server error"}
    assert answer.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("size", [PAYLOAD_LIMIT_BYTES, PAYLOAD_LIMIT_BYTES + 1], ids=["at the quota", "over it"])
def test_a_body_over_the_payload_quota_gets_413_without_reaching_the_function(gateway, function, http, chunked, size):
    body = b"x" * size
    sent = iter([body[: size // 2], body[size // 2 :]]) if chunked else body
    answer = http.request("POST", f"{gateway.base_url}/v1/activations", body=sent, chunked=chunked)
    if size <= PAYLOAD_LIMIT_BYTES:
        assert answer.status == 200
        assert len(function.events[0]["body"]) == size
    else:
        assert answer.status == 413
        assert json.loads(answer.data) == {"message": "Request Too Long"}
        assert function.events == []


def test_a_body_announced_over_the_quota_is_refused_before_it_is_sent(gateway, function):
    status, _, body = raw_exchange(
        gateway,
        b"POST /v1/activations HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        + f"Content-Length: {PAYLOAD_LIMIT_BYTES + 1}\r\n\r\n".encode(),
    )
    assert (status, json.loads(body)) == (413, {"message": "Request Too Long"})
    assert function.events == []


MALFORMED_REQUESTS = {
    "unknown method": (b"BREW /v1/activations HTTP/1.1\r\nHost: x\r\n\r\n", 501),
    "Content-Length not a number": (b"POST /v1/activations HTTP/1.1\r\nHost: x\r\nContent-Length: 1_0\r\n\r\n", 400),
    "chunk size not hex": (
        b"POST /v1/activations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        400,
    ),
    "request line not HTTP": (b"hello\r\n\r\n", 400),
    "HTTP version not a number": (b"GET /v1/activations HTTP/1.x\r\n\r\n", 400),
    "HTTP/2 as text": (b"GET /v1/activations HTTP/2.0\r\n\r\n", 505),
    "a header line over 64 KiB": (b"GET /v1/activations HTTP/1.1\r\nX-Long: " + b"x" * 70_000 + b"\r\n\r\n", 431),
}


@pytest.mark.parametrize(("request_bytes", "status"), MALFORMED_REQUESTS.values(), ids=MALFORMED_REQUESTS.keys())
def test_a_request_http_cannot_parse_gets_a_json_error_and_never_reaches_the_function(
    gateway, function, request_bytes, status
):
    answered, headers, body = raw_exchange(gateway, request_bytes)
    assert answered == status
    assert headers["content-type"] == "application/json"
    assert set(json.loads(body)) == {"message"}
    assert function.events == []


def test_the_function_is_invoked_one_request_at_a_time(http):
    together = threading.Barrier(2, timeout=2)  # passes only if two invocations run at once
    alone: list[bool] = []

    def respond(event: dict) -> dict:
        try:
            together.wait()
            alone.append(False)
        except threading.BrokenBarrierError:
            alone.append(True)
        return OK

    with ApiGateway(Function(respond)) as gateway:
        senders = [
            threading.Thread(target=http.request, args=("POST", f"{gateway.base_url}/v1/activations")) for _ in range(2)
        ]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
    assert alone == [True, True]


def test_a_stopped_gateway_closes_its_port(function, http):
    gateway = ApiGateway(function)
    url = gateway.start()
    assert http.request("GET", f"{url}/v1/activations").status == 200
    gateway.stop()
    with pytest.raises(urllib3.exceptions.NewConnectionError):
        http.request("GET", f"{url}/v1/activations")


def test_the_ingest_handler_answers_behind_it_and_every_profile_is_accounted_for(pipeline, activation_body, http):
    pipeline.set_sender_credentials(bearer_tokens=["the-right-key-0123456789"], signing_secrets=[])
    with ApiGateway(pipeline.invoke_ingest) as gateway:
        url = f"{gateway.base_url}/v1/activations"

        def post(body: bytes, key: str = "the-right-key-0123456789", path: str = "/v1/activations"):
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
            answer = http.request("POST", f"{gateway.base_url}{path}", body=body, headers=headers)
            return answer.status, json.loads(answer.data)

        status, accepted = post(activation_body)
        assert (status, accepted["accepted"]) == (202, 5)
        assert post(activation_body, key="a-wrong-key")[1]["error"] == "UNAUTHORIZED"
        assert post('{"profiles": ["São"]}'.encode("latin-1"))[1]["error"] == "INVALID_ENCODING"
        status, unknown = post(activation_body, path="/v1/unknown")
        assert (status, unknown["error"]) == (404, "NOT_FOUND")
        answer = http.request("GET", url)
        assert (answer.status, json.loads(answer.data)["error"]) == (404, "NOT_FOUND")
    pipeline.drain()
    accounting = assert_all_accounted_for(pipeline)
    assert set(accounting.written) == SAMPLE_EMAILS


def test_a_restarted_gateway_takes_requests_again(function, http):
    gateway = ApiGateway(function)
    gateway.start()
    gateway.stop()
    with gateway:
        assert http.request("GET", f"{gateway.base_url}/v1/activations").status == 200
    assert len(function.events) == 1
