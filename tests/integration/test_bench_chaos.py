"""`bench` and `chaos` at small scale: the figures they report, the mapping's chaos, and chaos's own check
(it finds nothing wrong on a clean run and does find what is planted in a portal)."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from hubspot_destination.domain.audiences import audience_property_name
from hubspot_local import chaos
from hubspot_local.bench import BenchResult, run_bench
from hubspot_local.chaos import ChaosResult, ProfileMeaning, compare, expected_state, generate, run_chaos
from hubspot_local.cli import main
from hubspot_local.event_source_mapping import EventSourceMapping, MappingChaos
from hubspot_local.harness import thread_safe_moto
from hubspot_local.stand_ins import process_cpu_s

CLI = Path(sys.executable).with_name("hubspot-destination")
LOYAL = audience_property_name("chaos-loyal")


FIGURES = set(BenchResult.__dataclass_fields__) - {"timeline", "processes"}


def test_bench_reports_its_figures_and_delivers_every_profile(pipeline_env):
    bench = run_bench(profiles=300, tier="addon", latency_ms=50)
    result = bench.as_dict()
    assert bench.all_settled
    assert (result["contacts_written"], result["dead_letters"], result["still_queued"], result["lost"]) == (
        300,
        0,
        0,
        0,
    )
    assert set(result) == FIGURES
    assert (result["profiles"], result["tier"], result["hubspot_latency_ms"]) == (300, "addon", 50)
    assert 50 <= result["contacts_per_request"] <= 100
    assert result["hubspot_requests"] >= 3
    assert 0 < result["limit_utilization"] <= 1
    assert 0 < result["ingest_ms_p50"] <= result["ingest_ms_p99"]
    assert 0 <= result["ingest_sqs_ms_p50"] <= result["ingest_sqs_ms_p99"] <= result["ingest_ms_p99"]
    assert result["ingest_cpu_ms_per_contact"] > 0
    assert result["deliver_cpu_ms_per_contact"] > 0
    assert result["cpu_ms_per_contact"] == pytest.approx(
        result["ingest_cpu_ms_per_contact"] + result["deliver_cpu_ms_per_contact"], abs=0.002
    )
    assert result["deliver_busy_s"] > 0
    # The stand-ins are processes of their own: their CPU is theirs (DynamoDB is moto's server here).
    assert result["moto_server_cpu_s"] > 0
    assert result["dynalite_cpu_s"] is None
    assert result["bench_process_cpu_s"] > 0
    # Every contact is read once (1 RRU) and written twice, items under 1 KB: leased in a transaction (2 WRU)
    # and released (1 WRU), as moto counts them in process (test_bench_processes.py), in the deliver workers.
    assert (result["dynamodb_read_units"], result["dynamodb_write_units"]) == (300, 900)
    assert result["sqs_requests"] >= 1 + result["deliver_invocations"]  # ingest's sends, the mapping's receives
    assert result["cost_per_million_usd"] >= 0.125 + 3 * 0.625
    assert len(bench.timeline) == result["hubspot_requests"]
    assert bench.timeline[0][0] == 0.0
    # Each function's execution environment was a process of its own, and none of the run's processes is left.
    deliver, ingest = bench.processes["deliver"], bench.processes["ingest"]
    assert len(set(deliver)) == len(deliver) >= 2
    assert len(ingest) == 1
    assert bench.processes["bench"] == [os.getpid()]
    others = deliver + ingest + bench.processes["moto_server"]
    assert os.getpid() not in others
    assert len(set(others)) == len(others)
    assert not [pid for pid in others if process_cpu_s(pid) is not None]


def test_bench_command_compares_with_the_peer_in_one_json_object(pipeline_env):
    done = subprocess.run(
        [str(CLI), "bench", "--profiles", "100", "--tier", "addon", "--dynamodb", "moto", "--compare", "--json"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == FIGURES | {"peer"}
    assert set(result["peer"]) == FIGURES
    for figures in (result, result["peer"]):
        assert (figures["profiles"], figures["contacts_written"], figures["lost"]) == (100, 100, 0)
    assert result["throttled_requests"] == 0
    assert done.stderr == ""  # --json: no progress lines


def test_chaos_finds_nothing_lost_or_wrong_on_a_seed(pipeline_env):
    result = run_chaos(profiles=300, seed=7, kill_rate=0)  # deaths: see the mapping test below
    assert result.ok, result.as_dict()
    assert set(result.as_dict()) == {*ChaosResult.__dataclass_fields__, "ok"}
    assert result.accepted + sum(result.rejected_at_ingest.values()) == 300
    assert result.rejected_at_ingest.get("INVALID_EMAIL", 0) >= 1
    assert result.contacts_in_portal == result.contacts_expected > 0


def test_chaos_command_exits_1_when_anything_is_lost_or_wrong(monkeypatch, capsys):
    _, meanings = generate(20, seed=1)
    expected = expected_state(meanings)
    findings = compare(expected, [])  # an empty portal: everything lost
    failed = ChaosResult(
        profiles=20,
        seed=1,
        seconds=1.0,
        accepted=20,
        rejected_at_ingest={},
        rejections_unexpected=0,
        contacts_expected=len(expected),
        contacts_in_portal=0,
        lost=findings.lost,
        wrong=0,
        duplicates=0,
        dead_letters={},
        left_on_queue=0,
        faults={},
        longest_invocation_s=0.0,
        examples=findings.examples,
    )
    monkeypatch.setattr(chaos, "run_chaos", lambda profiles, seed: failed)
    assert main(["chaos", "--profiles", "20", "--json"]) == 1
    printed = json.loads(capsys.readouterr().out)
    assert (printed["ok"], printed["lost"]) == (False, findings.lost)


def _portal_of(expected) -> list[dict]:
    """The portal a perfect run leaves: one contact per expected email, the expected values set."""
    return [
        {"properties": {"email": email, **{k: v for k, v in contact.properties.items() if v is not None}}}
        for email, contact in expected.items()
    ]


def test_compare_finds_what_is_planted_in_the_portal():
    _, meanings = generate(200, seed=5)
    expected = expected_state(meanings)
    portal = _portal_of(expected)
    assert compare(expected, portal).__dict__ == {"lost": 0, "wrong": 0, "duplicates": 0, "examples": []}

    first, second, third = (contact["properties"] for contact in portal[:3])
    del portal[3]  # a contact missing
    set_value = next(name for name in first if name != "email")
    del first[set_value]  # a value missing
    second[LOYAL] = "exited" if second.get(LOYAL) != "exited" else "realized"  # a stale audience status
    third["lastname"] = "Written"  # a field the input never set
    portal.append({"properties": dict(second)})  # the same email twice
    portal.append({"properties": {"email": "stranger@example.com"}})  # a contact nobody sent
    findings = compare(expected, portal)
    assert (findings.lost, findings.duplicates) == (2, 1)
    assert findings.wrong == 3  # the status, the field never set, the stranger
    assert len(findings.examples) == 6


def test_expected_state_takes_the_newest_qualification_and_the_last_arrived_value():
    early, late = datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC)
    meanings = [
        [ProfileMeaning("a@example.com", {"city": "Leeds", "zip": "02134"}, {"chaos-loyal": (late, "exited")})],
        [ProfileMeaning(None, {"city": "Nowhere"})],  # refused at ingest
        [ProfileMeaning("a@example.com", {"city": None}, {"chaos-loyal": (early, "realized")})],
    ]
    contact = expected_state(meanings)["a@example.com"].properties
    assert (contact["city"], contact["zip"], contact[LOYAL], contact["lastname"]) == (None, "02134", "exited", None)


def test_mapping_chaos_kills_duplicates_and_holds_yet_every_message_is_processed():
    """A doomed invocation dies at one of its AWS calls (after some records were handled) and its batch
    comes back; duplicated and held batches are delivered again or late; nothing is left behind."""
    with mock_aws(), thread_safe_moto():
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName="chaos")["QueueUrl"]
        audit_url = sqs.create_queue(QueueName="audit")["QueueUrl"]
        for number in range(60):
            sqs.send_message(QueueUrl=queue_url, MessageBody=str(number))
        handled: list[str] = []

        def handler(event, _context):
            for record in event["Records"]:
                sqs.send_message(QueueUrl=audit_url, MessageBody=record["body"])  # an AWS call per record
                handled.append(record["body"])
            return {"batchItemFailures": []}

        chaos = MappingChaos(seed=4, kill_rate=0.4, duplicate_rate=0.2, hold_rate=0.3, redelivery_delay_s=0)
        stats = EventSourceMapping(sqs, queue_url, handler, batch_size=10, max_wait_s=5, chaos=chaos).drain()
        assert stats.killed > 0
        assert stats.duplicated > 0
        assert stats.held > 0
        assert set(handled) == {str(number) for number in range(60)}
        assert len(handled) > 60  # killed batches (partly handled) and duplicates came back
        left = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        assert (left["ApproximateNumberOfMessages"], left["ApproximateNumberOfMessagesNotVisible"]) == ("0", "0")
