"""What a user reaches for on the command line (`hubspot_local.cli:main`): `--version`, `-` for a FILE read from
standard input, `replay --limit` (a summary of a large replay, not a listing of all of it) and `--verbose`."""

import importlib.metadata
import io
import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from hubspot_local.cli import REPLAY_LIST_LIMIT, main

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "events" / "activation.json"
PORTAL = {"contacts": [{"properties": {"email": "ana.garcia@example.com", "phone": "+351 1"}}]}


def run(argv: list[str], capsys, stdin: bytes | None = None, monkeypatch=None) -> tuple[int, str, str]:
    """`main(argv)` with `stdin` as standard input; its exit status, stdout and stderr."""
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    try:
        status = main(argv)
    except SystemExit as stop:  # argparse's own exits (--version, --help)
        status = stop.code
    out, err = capsys.readouterr()
    return status, out, err


def test_version_is_the_installed_packages(capsys):
    status, out, _ = run(["--version"], capsys)
    assert status == 0
    assert out == f"hubspot-destination {importlib.metadata.version('hubspot-destination')}\n"


def test_replay_reads_the_request_from_standard_input(pipeline_env, capsys, monkeypatch):
    status, out, err = run(["replay", "-", "--json"], capsys, SAMPLE.read_bytes(), monkeypatch)
    assert status == 0, err
    result = json.loads(out)
    assert result["profiles"]["written"] == 5
    assert result["ingest"]["body"]["accepted"] == 5


def test_a_request_on_standard_input_that_is_not_json_is_named_so(pipeline_env, capsys, monkeypatch):
    status, _, err = run(["replay", "-"], capsys, b"not json", monkeypatch)
    assert status == 2
    assert err.startswith("hubspot-destination: error: standard input is not JSON")


def test_replay_reads_the_portal_from_standard_input(pipeline_env, capsys, monkeypatch):
    status, out, err = run(
        ["replay", str(SAMPLE), "--json", "--portal", "-"], capsys, json.dumps(PORTAL).encode(), monkeypatch
    )
    assert status == 0, err
    [ana] = [c for c in json.loads(out)["hubspot"]["contacts"] if c["email"] == "ana.garcia@example.com"]
    assert ana["properties"]["phone"] == "+351 1"  # pre-loaded
    assert ana["properties"]["firstname"] == "Ana"  # then written


def test_a_portal_on_standard_input_is_checked_like_a_file(pipeline_env, capsys, monkeypatch):
    status, _, err = run(["replay", str(SAMPLE), "--portal", "-"], capsys, b'{"contact": []}', monkeypatch)
    assert status == 2
    assert err.startswith("hubspot-destination: error: standard input: unknown keys ['contact']")


def test_replay_reads_its_faults_from_standard_input(pipeline_env, capsys, monkeypatch):
    nothing_works = json.dumps({"error_rates": {"503": 1.0}}).encode()
    argv = ["replay", str(SAMPLE), "--json", "--faults", "@-", "--time-limit", "1"]
    status, out, err = run(argv, capsys, nothing_works, monkeypatch)
    assert status == 1, err
    assert json.loads(out)["profiles"]["written"] == 0


def test_the_emulator_reads_its_portal_from_standard_input(tmp_path):
    portal = tmp_path / "portal.json"
    portal.write_text(json.dumps(PORTAL))
    with portal.open() as stdin:
        emulator = subprocess.Popen(
            [sys.executable, "-m", "hubspot_local.cli", "emulator", "--port", "0", "--portal", "-"],
            cwd=ROOT,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    try:
        url = emulator.stdout.readline().split()[3]  # "HubSpot emulator on http://127.0.0.1:PORT (token ...)"
        with urllib.request.urlopen(f"{url}/__emulator/state", timeout=30) as answer:  # noqa: S310 - loopback
            contacts = json.load(answer)["contacts"]
        assert [c["properties"]["phone"] for c in contacts] == ["+351 1"]
    finally:
        emulator.send_signal(signal.SIGINT)
        emulator.communicate(timeout=60)
    assert emulator.returncode == 0


def many_profiles(valid: int, invalid: int) -> bytes:
    """A request of `valid` profiles HubSpot takes and `invalid` ones ingest refuses (an unknown top-level
    domain)."""
    profiles = [
        {"identityMap": {"email": [{"id": f"user{i}@example.com"}]}, "attributes": {"firstname": f"User{i}"}}
        for i in range(valid)
    ]
    profiles += [{"identityMap": {"email": [{"id": f"user{i}@example.con"}]}} for i in range(invalid)]
    return json.dumps({"profiles": profiles}).encode()


@pytest.fixture(scope="module")
def large_request(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("requests") / "large.json"
    path.write_bytes(many_profiles(valid=25, invalid=30))
    return path


def listed(out: str, heading: str, row_start: str) -> tuple[int, list[str]]:
    """The rows of the list under `heading` in a replay summary (rows start with `row_start`) and the
    "... and K more" lines after them."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading)) + 1
    rows, more = 0, []
    for line in lines[start:]:
        if line.startswith(row_start):
            rows += 1
        elif line.startswith("  ... and "):
            more.append(line)
            break
        elif not line.startswith("      "):  # a contact's properties belong to its row
            break
    return rows, more


@pytest.mark.parametrize(("argv", "shown"), [([], REPLAY_LIST_LIMIT), (["--limit", "3"], 3), (["--limit", "0"], 0)])
def test_a_large_replay_lists_at_most_limit_rows_of_each_list_then_says_how_many_more(
    pipeline_env, capsys, large_request, argv, shown
):
    status, out, err = run(["replay", str(large_request), *argv], capsys)
    assert status == 0, err
    assert listed(out, "Ingest:", "  rejected profile #") == (shown, [f"  ... and {30 - shown} more"])
    assert listed(out, "HubSpot contacts (25):", "  #") == (shown, [f"  ... and {25 - shown} more"])
    assert "Profiles: 55 sent, 30 refused at ingest, 25 written" in out  # the counts are whole


def test_a_list_within_the_limit_is_shown_whole(pipeline_env, capsys):
    status, out, _ = run(["replay", str(SAMPLE), "--limit", "5"], capsys)
    assert status == 0
    assert listed(out, "HubSpot contacts (5):", "  #") == (5, [])
    assert "... and" not in out


def test_json_output_is_whole_whatever_the_limit(pipeline_env, capsys, large_request):
    status, out, _ = run(["replay", str(large_request), "--json", "--limit", "1"], capsys)
    assert status == 0
    result = json.loads(out)
    assert len(result["hubspot"]["contacts"]) == 25
    assert len(result["rejected"]) == 30


def test_verbose_shows_the_functions_logs_and_metrics_on_stderr(pipeline_env, capsys):
    def written(argv: list[str]) -> list[dict]:
        status, _, err = run(argv, capsys)
        assert status == 0, err
        return [json.loads(line) for line in err.splitlines() if line.startswith("{")]

    quiet = written(["replay", str(SAMPLE), "--json"])
    verbose = written(["replay", str(SAMPLE), "--json", "--verbose"])
    assert quiet == []
    logs = {(line.get("function_name"), line.get("message")) for line in verbose}
    assert ("IngestFunction", "activation accepted") in logs
    assert ("DeliverFunction", "batch settled") in logs
    metrics = {name for line in verbose for name in line if "_aws" in line}
    assert {"ProfilesAccepted", "ProfilesDelivered"} <= metrics


def test_verbose_is_described_in_the_help(capsys):
    for command in ("replay", "serve"):
        _, out, _ = run([command, "--help"], capsys)
        assert "JSON log lines" in " ".join(out.split())
        assert "metrics" in out
