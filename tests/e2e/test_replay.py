"""`hubspot-destination replay` on the sample events, as a user runs it (the console script, a subprocess)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hubspot_destination.domain.audiences import audience_property_name

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).with_name("hubspot-destination")
HIGH_VALUE = "0b7a6c1e-3f2d-4e59-9a61-5c4d3b2a1f00"
CART = "9e8d7c6b-5a49-4382-b1f0-e2d3c4b5a697"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("event", ["events/activation.json", "events/apigw-activation.json"])
def test_replay_json_prints_the_contract_object(event):
    done = run("replay", event, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == {"ingest", "delivery", "dead_letters", "hubspot"}
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
    assert "5 profile(s) accepted, 1 rejected" in out
    assert "rejected profile #4: INVALID_EMAIL" in out
    assert "ben.okafor@example.org" in out
    assert "High Value Customers" in out


def test_replay_from_a_preloaded_portal_updates_the_existing_contact(tmp_path):
    portal = tmp_path / "portal.json"
    portal.write_text(
        json.dumps({"contacts": [{"properties": {"email": "ana.garcia@example.com", "phone": "+351 1"}}]})
    )
    done = run("replay", "events/activation.json", "--json", "--portal", str(portal))
    assert done.returncode == 0, done.stderr
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


def test_replay_with_injected_faults_still_writes_every_contact():
    faults = json.dumps({"seed": 4, "error_rates": {"503": 0.3}, "reset_rate": 0.1})
    done = run("replay", "events/activation.json", "--json", "--faults", faults)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert len(result["hubspot"]["contacts"]) == 5
    assert result["dead_letters"] == []


@pytest.mark.parametrize("faults", ['{"error_rates": {"418": 0.5}}', "not json", "@does-not-exist.json"])
def test_bad_fault_configurations_get_a_clear_error(faults):
    done = run("replay", "events/activation.json", "--faults", faults)
    assert done.returncode == 2
    assert "error" in done.stderr
    assert "Traceback" not in done.stderr
