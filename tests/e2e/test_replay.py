"""`hubspot-destination replay` on the sample events, as a user runs it (the console script, a subprocess)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hubspot_destination.domain.audiences import audience_property_name
from tests.conftest import SAMPLE_EMAILS
from tests.helpers import assert_replay_accounted_for

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).with_name("hubspot-destination")
HIGH_VALUE = "0b7a6c1e-3f2d-4e59-9a61-5c4d3b2a1f00"
CART = "9e8d7c6b-5a49-4382-b1f0-e2d3c4b5a697"
NOTHING_WORKS = json.dumps({"error_rates": {"503": 1.0}})


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("event", ["events/activation.json", "events/apigw-activation.json"])
def test_replay_json_prints_the_contract_object(event):
    done = run("replay", event, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert_replay_accounted_for(result)
    assert set(result) == {
        "ingest",
        "delivery",
        "profiles",
        "rejected",
        "normalised_emails",
        "dropped_attributes",
        "dead_letters",
        "still_queued",
        "lost",
        "hubspot",
    }
    assert result["profiles"] == {
        "sent": 6,
        "refused": 1,
        "accepted": 5,
        "written": 5,
        "dead_lettered": 0,
        "still_queued": 0,
        "lost": 0,
    }
    assert result["ingest"]["status"] == 202
    assert result["ingest"]["body"]["accepted"] == 5
    [rejected] = result["ingest"]["body"]["rejected"]
    assert (rejected["index"], rejected["reason"]) == (4, "INVALID_EMAIL")
    assert result["delivery"]["invocations"] >= 1
    assert result["delivery"]["hubspot_requests"] >= 4  # properties, group, 2 audience properties, upsert
    assert result["dead_letters"] == []
    contacts = {c["email"]: c for c in result["hubspot"]["contacts"]}
    assert len(contacts) == 5
    ana = contacts["ana.garcia@example.com"]["properties"]
    assert (ana["firstname"], ana["lastname"], ana["address"], ana["city"], ana["country"]) == (
        "Ana",
        "Garcia",
        "12 Harbour Road",
        "Lisbon",
        "Portugal",
    )
    assert ana[audience_property_name(HIGH_VALUE)] == "realized"
    assert ana[audience_property_name(CART)] == "exited"
    labels = {p["name"]: p["label"] for p in result["hubspot"]["properties"]}
    assert labels[audience_property_name(HIGH_VALUE)] == "High Value Customers"
    assert labels[audience_property_name(CART)] == "Cart Abandoners 7d"


def test_replay_summary_shows_contacts_audiences_and_the_rejected_profile():
    done = run("replay", "events/activation.json")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Profiles: 6 sent, 1 refused at ingest, 5 written, 0 dead-lettered, 0 still queued, 0 lost" in out
    assert "OK: every accepted profile was written." in out
    assert "5 profile(s) accepted, 1 rejected" in out
    assert 'rejected profile #4 ("eve.martin@example.con"): INVALID_EMAIL' in out
    assert 'email normalised: "  BEN.OKAFOR@Example.org " -> ben.okafor@example.org' in out
    assert "ben.okafor@example.org" in out
    assert "High Value Customers" in out


def test_replay_from_a_preloaded_portal_updates_the_existing_contact(tmp_path):
    portal = tmp_path / "portal.json"
    portal.write_text(
        json.dumps({"contacts": [{"properties": {"email": "ana.garcia@example.com", "phone": "+351 1"}}]})
    )
    done = run("replay", "events/activation.json", "--json", "--portal", str(portal))
    assert done.returncode == 0, done.stderr
    assert_replay_accounted_for(json.loads(done.stdout))
    contacts = [c for c in json.loads(done.stdout)["hubspot"]["contacts"] if c["email"] == "ana.garcia@example.com"]
    assert len(contacts) == 1
    assert contacts[0]["properties"]["phone"] == "+351 1"
    assert contacts[0]["properties"]["firstname"] == "Ana"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("replay", "does-not-exist.json"), "does-not-exist.json"),
        (("replay", "README.md"), "is not JSON"),
    ],
)
def test_bad_input_files_get_a_clear_error(args, message):
    done = run(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_replay_exit_status_is_1_when_ingest_refuses_the_request(tmp_path):
    body = tmp_path / "empty.json"
    body.write_text('{"profiles": []}')
    done = run("replay", str(body), "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout)["ingest"]["status"] == 422


def test_replay_exits_1_and_lists_what_is_still_queued_when_nothing_can_be_written():
    done = run("replay", "events/activation.json", "--json", "--faults", NOTHING_WORKS, "--time-limit", "2")
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert result["profiles"]["written"] == 0
    assert result["profiles"]["still_queued"] == 5
    assert {waiting["email"] for waiting in result["still_queued"]} == SAMPLE_EMAILS
    assert all(waiting["attempt"] >= 1 for waiting in result["still_queued"])


def test_a_bounded_replay_says_while_it_waits_and_after_what_is_still_queued():
    done = run("replay", "events/activation.json", "--faults", NOTHING_WORKS, "--time-limit", "6")
    assert done.returncode == 1, done.stderr
    assert "still on the queue:" in done.stderr  # a progress line while it waits
    assert "Still queued when delivery stopped (5):" in done.stdout
    assert "0 written" in done.stdout
    assert "NOT OK: not every accepted profile was written." in done.stdout


def test_contacts_the_portal_already_held_do_not_count_as_written(tmp_path):
    portal = tmp_path / "portal.json"
    portal.write_text(json.dumps({"contacts": [{"properties": {"email": email}} for email in SAMPLE_EMAILS]}))
    done = run(
        "replay",
        "events/activation.json",
        "--json",
        "--portal",
        str(portal),
        "--faults",
        NOTHING_WORKS,
        "--time-limit",
        "2",
    )
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert len(result["hubspot"]["contacts"]) == 5
    assert result["profiles"]["written"] == 0


def test_replay_shows_dropped_attributes_normalised_emails_and_refused_emails(tmp_path):
    profiles = [
        {
            "identityMap": {"Email": [{"id": " Ada@Example.COM "}]},
            "attributes": {
                "firstname": "Ada",
                "favoriteColor": "blue",  # no such property
                "createdate": "2020-01-01",  # read-only
                "lifecyclestage": "not-a-stage",  # not one of its options
            },
        },
        {"identityMap": {"email": [{"id": "Grace@Example.con"}]}, "attributes": {"firstname": "Grace"}},
    ]
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"profiles": profiles}))
    done = run("replay", str(body), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert_replay_accounted_for(result)
    assert result["normalised_emails"] == [{"given": " Ada@Example.COM ", "email": "ada@example.com"}]
    [refused] = result["rejected"]
    assert (refused["index"], refused["reason"], refused["emails"]) == (1, "INVALID_EMAIL", ["Grace@Example.con"])
    dropped = {(d["email"], d["property"], d["code"]) for d in result["dropped_attributes"]}
    assert dropped == {
        ("ada@example.com", "favoriteColor", "PROPERTY_DOESNT_EXIST"),
        ("ada@example.com", "createdate", "READ_ONLY_VALUE"),
        ("ada@example.com", "lifecyclestage", "INVALID_OPTION"),
    }
    text = run("replay", str(body)).stdout
    assert "ada@example.com: favoriteColor (PROPERTY_DOESNT_EXIST)" in text
    assert 'email normalised: " Ada@Example.COM " -> ada@example.com' in text
    assert 'rejected profile #1 ("Grace@Example.con"): INVALID_EMAIL' in text


def test_replay_with_injected_faults_still_writes_every_contact():
    faults = json.dumps({"seed": 4, "error_rates": {"503": 0.3}, "reset_rate": 0.1})
    done = run("replay", "events/activation.json", "--json", "--faults", faults)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert_replay_accounted_for(result)
    assert len(result["hubspot"]["contacts"]) == 5
    assert result["dead_letters"] == []


@pytest.mark.parametrize("faults", ['{"error_rates": {"418": 0.5}}', "not json", "@does-not-exist.json"])
def test_bad_fault_configurations_get_a_clear_error(faults):
    done = run("replay", "events/activation.json", "--faults", faults)
    assert done.returncode == 2
    assert "error" in done.stderr
    assert "Traceback" not in done.stderr


ADA = {"identityMap": {"email": [{"id": "ada@example.com"}]}}
DEEP = "[" * 100_000 + "]" * 100_000  # past Python's JSON reader, within what ingest reads around


@pytest.mark.parametrize(
    ("text", "written", "refused"),
    [
        ('{"profiles": [' + json.dumps(ADA) + '], "x": ' + DEEP + "}", 1, 0),  # deep outside the profiles
        ('{"profiles": [' + json.dumps(ADA) + ', {"x": ' + DEEP + "}]}", 1, 1),  # deep inside one profile
        ('{"profiles": [{"identityMap": {"email": [{"id": "b@example.com"}]}, "n": ' + "9" * 5000 + "}]}", 0, 1),
    ],
    ids=["deep-outside", "deep-profile", "huge-integer"],
)
def test_replay_sends_what_the_webhook_reads_profile_by_profile(tmp_path, text, written, refused):
    # Such bodies are the webhook's to judge, profile by profile; the tool must not give up on them first.
    body = tmp_path / "body.json"
    body.write_text(text)
    done = run("replay", str(body), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert_replay_accounted_for(result)
    assert (result["profiles"]["written"], result["profiles"]["refused"]) == (written, refused)
