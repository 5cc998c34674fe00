"""`hubspot-destination dead-letters` and `redrive`, run as the console script against a moto server on loopback.

The dead-letter queue is filled as the deliver function fills it (`send_dead_letters`: original body plus
`reason`/`detail` attributes), plus one message as SQS's redrive policy leaves it (no attributes).
"""

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from hubspot_destination.aws.sqs import DeadLetter, send_dead_letters
from hubspot_destination.domain.messages import decode_message, encode_message
from hubspot_destination.domain.profiles import ProfileUpdate
from hubspot_destination.observability import email_hash

CLI = Path(sys.executable).with_name("hubspot-destination")
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _body(email: str, attempt: int = 0) -> str:
    """A dead letter as the deliver function writes it: a one-profile queue message."""
    update = ProfileUpdate(
        email=email, attributes={"firstname": "Ana"}, observed_at=datetime.now(UTC), request_id="r-1"
    )
    return encode_message([update], attempt)


def _profiles(bodies: list[str]) -> list[str]:
    """The profiles of queue message bodies, in a comparable form (attempt counts left out)."""
    return sorted(profile.model_dump_json() for body in bodies for profile in decode_message(body).profiles)


# The second ran out of attempts, and carries a field a newer version of the functions may have added.
INVALID = [_body("ana@example.con"), json.dumps({**json.loads(_body("bo@example.con", attempt=7)), "trace": "t-1"})]
CONFLICT = _body("cy@example.com")
BY_SQS = _body("di@example.com")


@dataclass
class Aws:
    endpoint: str
    sqs: object
    queue_url: str
    dlq_url: str

    def run(self, *args: str) -> subprocess.CompletedProcess:
        """The console script with `--endpoint-url` of the moto server; stdout and stderr as text."""
        return subprocess.run(
            [str(CLI), *args, "--endpoint-url", self.endpoint], capture_output=True, text=True, timeout=60, check=False
        )

    def drain(self, queue_url: str) -> list[dict]:
        """Receive (and so hide) every message on a queue, with its message attributes."""
        messages: list[dict] = []
        while answer := self.sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=300
        ).get("Messages"):
            messages.extend(answer)
        return messages


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Aws:
    """Fresh queues on the moto server, the DLQ holding 2 INVALID_EMAIL, 1 PROPERTY_CONFLICT, 1 SQS-redriven."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name=REGION)
    suffix = request.node.name.replace("[", "-").replace("]", "")[:60]
    dlq_url = sqs.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"]
    queue_url = sqs.create_queue(QueueName=f"queue-{suffix}")["QueueUrl"]
    letters = [DeadLetter(body, "INVALID_EMAIL", "top-level domain .con does not exist") for body in INVALID]
    letters.append(DeadLetter(CONFLICT, "PROPERTY_CONFLICT", "aud_x is a number property"))
    send_dead_letters(sqs, dlq_url, letters, max_batch_bytes=1_048_576)
    sqs.send_message(QueueUrl=dlq_url, MessageBody=BY_SQS)
    return Aws(moto_endpoint, sqs, queue_url, dlq_url)


def _listing(aws: Aws, *extra: str) -> dict:
    done = aws.run("dead-letters", "--dlq-url", aws.dlq_url, "--json", *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_listing_does_not_consume_and_counts_by_reason(aws: Aws) -> None:
    first = _listing(aws)
    second = _listing(aws)

    assert first["by_reason"] == {"INVALID_EMAIL": 2, "PROPERTY_CONFLICT": 1, "REDRIVEN_BY_SQS": 1}
    assert second["by_reason"] == first["by_reason"]
    ids = sorted(letter["message_id"] for letter in first["dead_letters"])
    assert sorted(letter["message_id"] for letter in second["dead_letters"]) == ids
    assert len(aws.drain(aws.dlq_url)) == 4  # still all there, and visible


def test_json_shape_hashes_emails_by_default(aws: Aws) -> None:
    listing = _listing(aws)

    assert set(listing) == {"dead_letters", "by_reason"}
    rows = {row["reason"]: row for row in listing["dead_letters"]}
    conflict = rows["PROPERTY_CONFLICT"]
    assert set(conflict) == {"message_id", "sent_at", "receive_count", "reason", "detail", "email_sha256"}
    assert conflict["email_sha256"] == email_hash("cy@example.com")
    assert conflict["detail"] == "aud_x is a number property"
    assert conflict["receive_count"] >= 1
    assert conflict["sent_at"].endswith("+00:00")
    assert rows["REDRIVEN_BY_SQS"]["detail"] == ""
    done = aws.run("dead-letters", "--dlq-url", aws.dlq_url)
    assert done.returncode == 0, done.stderr
    assert "@" not in done.stdout + done.stderr  # no raw email anywhere by default
    assert f"sha256:{email_hash('cy@example.com')}" in done.stdout
    assert "By reason: INVALID_EMAIL 2" in done.stdout


def test_show_emails_and_limit(aws: Aws) -> None:
    listing = _listing(aws, "--show-emails")
    assert {row["email"] for row in listing["dead_letters"]} == {
        "ana@example.con",
        "bo@example.con",
        "cy@example.com",
        "di@example.com",
    }
    assert len(_listing(aws, "--limit", "2")["dead_letters"]) == 2
    assert len(_listing(aws)["dead_letters"]) == 4


def test_redrive_by_reason_moves_only_those_with_attempts_reset_and_without_attributes(aws: Aws) -> None:
    done = aws.run("redrive", "--dlq-url", aws.dlq_url, "--queue-url", aws.queue_url, "--reason", "INVALID_EMAIL")
    assert done.returncode == 0, done.stderr
    assert "Moved 2 dead letter(s)" in done.stdout

    arrived = [m["Body"] for m in aws.drain(aws.queue_url)]
    assert _profiles(arrived) == _profiles(INVALID)  # the profiles unchanged
    assert [decode_message(body).attempt for body in arrived] == [0, 0]  # a fresh series of retries
    assert [json.loads(body).get("trace") for body in arrived if "bo@" in body] == ["t-1"]  # nothing else changed
    assert all("MessageAttributes" not in m for m in arrived)
    assert _listing(aws)["by_reason"] == {"PROPERTY_CONFLICT": 1, "REDRIVEN_BY_SQS": 1}


def test_full_redrive_empties_the_dead_letter_queue(aws: Aws) -> None:
    done = aws.run("redrive", "--dlq-url", aws.dlq_url, "--queue-url", aws.queue_url, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "moved": 4,
        "by_reason": {"INVALID_EMAIL": 2, "PROPERTY_CONFLICT": 1, "REDRIVEN_BY_SQS": 1},
        "dry_run": False,
    }
    assert _profiles([m["Body"] for m in aws.drain(aws.queue_url)]) == _profiles([*INVALID, CONFLICT, BY_SQS])
    assert aws.drain(aws.dlq_url) == []


def test_dry_run_moves_nothing(aws: Aws) -> None:
    done = aws.run("redrive", "--dlq-url", aws.dlq_url, "--queue-url", aws.queue_url, "--reason", "REDRIVEN_BY_SQS")
    assert done.returncode == 0, done.stderr
    dry = aws.run("redrive", "--dlq-url", aws.dlq_url, "--queue-url", aws.queue_url, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "Would move 3 dead letter(s)" in dry.stdout
    assert [m["Body"] for m in aws.drain(aws.queue_url)] == [BY_SQS]
    assert len(aws.drain(aws.dlq_url)) == 3


def test_stack_name_reads_the_queue_urls_from_the_stack_outputs(aws: Aws) -> None:
    cloudformation = boto3.client("cloudformation", endpoint_url=aws.endpoint, region_name=REGION)
    template = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}, "DeadLetters": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"QueueUrl": {"Value": {"Ref": "Queue"}}, "DeadLetterQueueUrl": {"Value": {"Ref": "DeadLetters"}}},
    }
    cloudformation.create_stack(StackName="activation", TemplateBody=json.dumps(template))
    outputs = cloudformation.describe_stacks(StackName="activation")["Stacks"][0]["Outputs"]
    urls = {output["OutputKey"]: output["OutputValue"] for output in outputs}
    send_dead_letters(aws.sqs, urls["DeadLetterQueueUrl"], [DeadLetter(CONFLICT, "INVALID_VALUE", "x")], 1_048_576)

    listing = aws.run("dead-letters", "--stack-name", "activation", "--json")
    assert listing.returncode == 0, listing.stderr
    assert json.loads(listing.stdout)["by_reason"] == {"INVALID_VALUE": 1}
    moved = aws.run("redrive", "--stack-name", "activation")
    assert moved.returncode == 0, moved.stderr
    assert [m["Body"] for m in aws.drain(urls["QueueUrl"])] == [CONFLICT]


def test_stack_without_the_outputs_is_a_clear_error(aws: Aws) -> None:
    cloudformation = boto3.client("cloudformation", endpoint_url=aws.endpoint, region_name=REGION)
    template = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}}
    cloudformation.create_stack(StackName="other", TemplateBody=json.dumps(template))

    done = aws.run("dead-letters", "--stack-name", "other")
    assert done.returncode == 2
    assert "no output(s) QueueUrl, DeadLetterQueueUrl" in done.stderr
    missing = aws.run("redrive", "--stack-name", "no-such-stack")
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    assert "Traceback" not in done.stderr + missing.stderr


@pytest.mark.parametrize("command", ["dead-letters", "redrive"])
def test_unknown_queue_is_a_clear_error(aws: Aws, command: str) -> None:
    unknown = aws.dlq_url.rsplit("/", 1)[0] + "/no-such-queue"
    extra = ["--queue-url", aws.queue_url] if command == "redrive" else []
    done = aws.run(command, "--dlq-url", unknown, *extra)

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "hubspot-destination: error:" in done.stderr
    assert "NonExistentQueue" in done.stderr or "does not exist" in done.stderr


def test_unknown_source_queue_loses_nothing(aws: Aws) -> None:
    unknown = aws.queue_url.rsplit("/", 1)[0] + "/no-such-queue"
    done = aws.run("redrive", "--dlq-url", aws.dlq_url, "--queue-url", unknown)

    assert done.returncode == 2
    assert "0 message(s) moved before the error" in done.stderr
    assert _listing(aws)["by_reason"] == {"INVALID_EMAIL": 2, "PROPERTY_CONFLICT": 1, "REDRIVEN_BY_SQS": 1}


def test_unreachable_endpoint_is_a_clear_error(aws: Aws) -> None:
    done = subprocess.run(
        [str(CLI), "dead-letters", "--dlq-url", aws.dlq_url, "--endpoint-url", f"http://127.0.0.1:{_free_port()}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "Could not connect to the endpoint URL" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_credentials_is_a_clear_error(aws: Aws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    done = aws.run("dead-letters", "--dlq-url", aws.dlq_url)

    assert done.returncode == 2
    assert "Unable to locate credentials" in done.stderr
    assert "Traceback" not in done.stderr


def test_dlq_url_without_queue_url_is_a_usage_error(aws: Aws) -> None:
    done = aws.run("redrive", "--dlq-url", aws.dlq_url)

    assert done.returncode == 2
    assert "--dlq-url needs --queue-url" in done.stderr
    assert len(aws.drain(aws.dlq_url)) == 4


def test_a_dead_letter_listing_never_sends_control_characters_to_the_terminal(aws: Aws) -> None:
    """A dead letter's reason and detail are anyone's text: the text listing shows them escaped."""
    letter = DeadLetter(_body("ed@example.com"), "INVALID_VALUE\x1b[31m", "red \x1b[31m\u2028 detail")
    send_dead_letters(aws.sqs, aws.dlq_url, [letter], max_batch_bytes=1_048_576)
    done = aws.run("dead-letters", "--dlq-url", aws.dlq_url)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout
    assert "\u2028" not in done.stdout
    assert "\\x1b[31m" in done.stdout
