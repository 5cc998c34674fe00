"""Every error of every subcommand ends `hubspot-destination` (`hubspot_local.cli:main`, the console script's
entry point) with exactly one line on stderr and exit status 2: never a traceback, never a usage screen; and
leaves the process as it found it (a pipeline that failed to start undoes what it started)."""

import pytest

from hubspot_destination.observability import logger
from hubspot_local import harness
from hubspot_local.cli import main
from hubspot_local.emulator import PRODUCT_SCOPES, HubSpotEmulator

SAMPLE = "events/activation.json"
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


@pytest.fixture
def hubspot():
    """An emulator that knows one token, `right-token`."""
    with HubSpotEmulator(tokens={"right-token": PRODUCT_SCOPES}) as emulator:
        yield emulator


def exit_status(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as stop:  # argparse exits on its own
        return stop.code


ERRORS = {
    "missing file": ["replay", "does-not-exist.json"],
    "file not JSON": ["replay", "README.md"],
    "missing argument": ["replay"],
    "unknown option": ["replay", SAMPLE, "--colour"],
    "bad number": ["replay", SAMPLE, "--time-limit", "soon"],
    "time limit not positive": ["replay", SAMPLE, "--time-limit", "0"],
    "time limit not a number": ["replay", SAMPLE, "--time-limit", "nan"],
    "time limit infinite": ["replay", SAMPLE, "--time-limit", "inf"],
    "faults not JSON": ["replay", SAMPLE, "--faults", "not json"],
    "faults unknown status": ["replay", SAMPLE, "--faults", '{"error_rates": {"418": 0.5}}'],
    "faults file missing": ["replay", SAMPLE, "--faults", "@does-not-exist.json"],
    "portal not JSON": ["replay", SAMPLE, "--portal", "README.md"],
    "not a URL": ["replay", SAMPLE, "--hubspot-url", "api.hubapi.com"],
    "URL port out of range": ["replay", SAMPLE, "--hubspot-url", "http://127.0.0.1:99999"],
    "URL port zero": ["replay", SAMPLE, "--hubspot-url", "http://127.0.0.1:0"],
    "URL port not a number": ["replay", SAMPLE, "--hubspot-url", "http://127.0.0.1:x"],
    "URL port empty": ["serve", "--hubspot-url", "http://127.0.0.1:"],
    "URL bracket unclosed": ["replay", SAMPLE, "--hubspot-url", "http://[::1"],
    "URL with a password": ["replay", SAMPLE, "--hubspot-url", "http://user:s3cret-pw@127.0.0.1:1"],
    "verify URL with a password": ["verify", "--hubspot-url", "https://s3cret-pw@api.hubapi.com"],
    "unreachable HubSpot": ["replay", SAMPLE, "--hubspot-url", UNREACHABLE],
    "no token for a real portal": ["replay", SAMPLE, "--hubspot-url", "{hubspot}"],
    "refused token": ["replay", SAMPLE, "--hubspot-url", "{hubspot}"],
    "unknown command": ["deliver"],
    "emulator faults": ["emulator", "--faults", "{"],
    "replay limit": ["replay", SAMPLE, "--limit", "-1"],
    "two FILEs on standard input": ["replay", "-", "--portal", "-"],
    "serve port out of range": ["serve", "--port", "65536"],
    "emulator port out of range": ["emulator", "--port", "99999"],
    "redrive reason unknown": ["redrive", "--dlq-url", "x", "--queue-url", "y", "--reason", "BOGUS"],
    "serve port in use": ["serve", "--port", "{hubspot_port}"],
    "serve portal not JSON": ["serve", "--portal", "README.md"],
    "serve not a URL": ["serve", "--hubspot-url", "api.hubapi.com"],
    "serve unreachable HubSpot": ["serve", "--hubspot-url", UNREACHABLE],
    "bench profiles": ["bench", "--profiles", "0"],
    "bench tier": ["bench", "--tier", "platinum"],
    "bench profiles too many": ["bench", "--profiles", "99999999999999999999"],
    "bench latency negative": ["bench", "--latency-ms", "-5"],
    "bench latency too long": ["bench", "--latency-ms", "70000"],
    "bench latency not a number": ["bench", "--latency-ms", "nan"],
    "chaos profiles": ["chaos", "--profiles", "0"],
    "dead letters unreachable": ["dead-letters", "--dlq-url", f"{UNREACHABLE}/q", "--endpoint-url", UNREACHABLE],
    "dead letters limit": ["dead-letters", "--dlq-url", "q", "--limit", "0"],
    "redrive without a queue": ["redrive", "--dlq-url", "q"],
}
TOKENS = {"refused token": "wrong-token", "unreachable HubSpot": "any-token", "serve unreachable HubSpot": "any-token"}


@pytest.mark.parametrize(("case", "argv"), ERRORS.items(), ids=ERRORS.keys())
def test_every_error_is_one_line_on_stderr_and_exit_status_2(pipeline_env, monkeypatch, capsys, hubspot, case, argv):
    monkeypatch.delenv("HUBSPOT_ACCESS_TOKEN", raising=False)
    if case in TOKENS:
        monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKENS[case])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")  # dead-letters reaches for an endpoint, not for AWS
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    log_stream = logger.registered_handler.stream
    port = hubspot.base_url.rsplit(":", 1)[1]
    status = exit_status([arg.replace("{hubspot}", hubspot.base_url).replace("{hubspot_port}", port) for arg in argv])
    out, err = capsys.readouterr()
    assert logger.registered_handler.stream is log_stream
    assert harness._active == []  # moto is no longer serialised, so no longer patched either
    assert status == 2, (out, err)
    assert len(err.splitlines()) == 1, err
    assert err.startswith("hubspot-destination"), err
    assert "Traceback" not in err
    assert "right-token" not in err  # no token in an error
    assert "wrong-token" not in err
    assert "s3cret-pw" not in err  # nor a password given in a URL
    assert out == ""


URL_ERRORS = [case for case, argv in ERRORS.items() if case.startswith(("URL ", "not a URL", "serve not a URL"))]


@pytest.mark.parametrize("case", URL_ERRORS)
def test_a_malformed_hubspot_url_is_named_as_the_option(pipeline_env, capsys, case):
    assert exit_status(ERRORS[case]) == 2
    assert "--hubspot-url" in capsys.readouterr().err
