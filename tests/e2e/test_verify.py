"""`hubspot-destination verify` (`hubspot_local.cli:main`) against the emulator over loopback, after the local
pipeline delivered a request file: the audiences counted with the search API, each contact compared with what
the file implies, differences planted by editing the emulator's contacts through its API."""

import io
import json
import threading
import time
from pathlib import Path

import pytest

from hubspot_destination.domain.audiences import audience_property_name
from hubspot_destination.hubspot.client import HubSpotClient
from hubspot_destination.hubspot.search import search_contacts
from hubspot_local import cli
from hubspot_local.cli import main
from hubspot_local.emulator import DEFAULT_TOKEN, FaultConfig, HubSpotEmulator
from hubspot_local.pipeline import LocalPipeline
from tests.helpers import assert_all_accounted_for

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "events" / "activation.json"
HIGH_VALUE = audience_property_name("0b7a6c1e-3f2d-4e59-9a61-5c4d3b2a1f00")
CART = audience_property_name("9e8d7c6b-5a49-4382-b1f0-e2d3c4b5a697")
SEARCH = "/crm/v3/objects/contacts/search"
# What events/activation.json leaves in each audience (its profile #4 has an invalid email and is refused).
SAMPLE_AUDIENCES = [
    {"label": "Cart Abandoners 7d", "name": CART, "realized": 1, "existing": 0, "exited": 3},
    {"label": "High Value Customers", "name": HIGH_VALUE, "realized": 2, "existing": 1, "exited": 0},
]


@pytest.fixture
def hubspot(pipeline_env):
    with HubSpotEmulator() as emulator:
        yield emulator


def deliver(emulator: HubSpotEmulator, body: bytes) -> None:
    """Run `body` through the local pipeline into `emulator`, every profile accounted for."""
    with LocalPipeline(emulator=emulator, handler_output=io.StringIO()) as pipeline:
        assert pipeline.ingest(body)["status"] == 202
        pipeline.drain()
        assert_all_accounted_for(pipeline)


def verify(capsys, emulator: HubSpotEmulator, *args: str) -> tuple[int, str, str]:
    """`verify --hubspot-url <emulator> ARGS`: exit status, stdout, stderr."""
    capsys.readouterr()
    try:
        status = main(["verify", "--hubspot-url", emulator.base_url, *args])
    except SystemExit as stop:  # argparse exits on its own
        status = stop.code
    out, err = capsys.readouterr()
    return status, out, err


def edit(emulator: HubSpotEmulator, email: str, **properties: str) -> None:
    """Change a contact as someone in HubSpot would (batch/upsert by email)."""
    client = HubSpotClient(lambda refresh=False: DEFAULT_TOKEN, base_url=emulator.base_url)
    client.batch_upsert_contacts([{"id": email, "idProperty": "email", "properties": properties}])


def profile(email: str, attributes: dict, memberships: dict | None = None) -> dict:
    return {
        "identityMap": {"email": [{"id": email}]},
        "attributes": attributes,
        "segmentMembership": {"ups": memberships or {}},
    }


def test_after_a_replay_json_counts_each_audience_and_finds_no_difference(hubspot, capsys):
    deliver(hubspot, SAMPLE.read_bytes())
    status, out, err = verify(capsys, hubspot, "--input", str(SAMPLE), "--json")
    assert (status, err) == (0, "")
    assert json.loads(out) == {
        "audiences": SAMPLE_AUDIENCES,
        "differences": [],
        "not_written": [],
        "input": {"profiles": 6, "refused": 1, "contacts": 5},
    }


def test_without_input_only_the_audiences_are_counted(hubspot, capsys):
    deliver(hubspot, SAMPLE.read_bytes())
    status, out, _ = verify(capsys, hubspot, "--json")
    assert status == 0
    assert json.loads(out) == {"audiences": SAMPLE_AUDIENCES, "differences": [], "not_written": [], "input": None}
    searches = [r for r in hubspot.snapshot()["requests"] if r["path"] == SEARCH]
    assert len(searches) == 6  # one per audience and status
    assert not any(r["path"].endswith("batch/read") for r in hubspot.snapshot()["requests"])


def test_the_readable_report_after_a_replay(hubspot, capsys):
    deliver(hubspot, SAMPLE.read_bytes())
    status, out, err = verify(capsys, hubspot, "--input", str(SAMPLE))
    assert (status, err) == (0, "")  # stderr is not a terminal here: no progress display
    assert f"  High Value Customers ({HIGH_VALUE}): realized 2, existing 1, exited 0" in out
    assert f"  Cart Abandoners 7d ({CART}): realized 1, existing 0, exited 3" in out
    assert "Contacts checked: 5, from 6 profile(s) (1 refused by the ingest rules)" in out
    assert out.rstrip().endswith("OK: every contact holds what the file implies.")


def test_each_planted_difference_is_listed_and_the_exit_status_is_1(hubspot, capsys, tmp_path):
    deliver(hubspot, SAMPLE.read_bytes())
    edit(hubspot, "ana.garcia@example.com", city="Porto")  # a value changed
    edit(hubspot, "ben.okafor@example.org", firstname="")  # a value removed
    edit(hubspot, "dara.obrien@example.ie", **{HIGH_VALUE: "exited"})  # an audience status changed
    body = json.loads(SAMPLE.read_text())
    body["profiles"].append(profile("gus.never.sent@example.com", {"firstname": "Gus"}))  # a contact not there
    planted = tmp_path / "planted.json"
    planted.write_text(json.dumps(body))

    status, out, _ = verify(capsys, hubspot, "--input", str(planted), "--json")
    assert status == 1
    report = json.loads(out)
    assert report["differences"] == [
        {"email": "ana.garcia@example.com", "property": "city", "expected": "Lisbon", "found": "Porto"},
        {"email": "ben.okafor@example.org", "property": "firstname", "expected": "Ben", "found": None},
        {"email": "dara.obrien@example.ie", "property": HIGH_VALUE, "expected": "existing", "found": "exited"},
        {
            "email": "gus.never.sent@example.com",
            "property": "email",
            "expected": "gus.never.sent@example.com",
            "found": None,
        },
    ]
    high_value = next(a for a in report["audiences"] if a["name"] == HIGH_VALUE)
    assert (high_value["existing"], high_value["exited"]) == (0, 1)

    status, out, _ = verify(capsys, hubspot, "--input", str(planted))
    assert status == 1
    assert "  ana.garcia@example.com: city is 'Porto', expected 'Lisbon'" in out
    assert "  ben.okafor@example.org: firstname is absent, expected 'Ben'" in out
    assert f"  dara.obrien@example.ie: {HIGH_VALUE} is 'exited', expected 'existing'" in out
    assert "  gus.never.sent@example.com: no such contact" in out
    assert out.rstrip().endswith("NOT OK: 4 difference(s).")


def test_what_delivery_leaves_out_is_listed_as_not_written_and_is_no_difference(hubspot, capsys, tmp_path):
    attributes = {
        "firstname": "Ada",
        "favoriteColor": "blue",  # no such property
        "createdate": "2020-01-01",  # read-only
        "lifecyclestage": "not-a-stage",  # not one of its options
        HIGH_VALUE: "realized",  # an audience property: memberships only write it
        "email": "someone.else@example.com",  # the identity owns the email: ignored
    }
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"profiles": [profile("ada@example.com", attributes)]}))
    deliver(hubspot, body.read_bytes())
    status, out, _ = verify(capsys, hubspot, "--input", str(body), "--json")
    report = json.loads(out)
    assert (status, report["differences"]) == (0, [])
    assert report["not_written"] == [
        {"email": "ada@example.com", "property": HIGH_VALUE, "code": "AUDIENCE_PROPERTY"},
        {"email": "ada@example.com", "property": "createdate", "code": "READ_ONLY_VALUE"},
        {"email": "ada@example.com", "property": "favoriteColor", "code": "PROPERTY_DOESNT_EXIST"},
        {"email": "ada@example.com", "property": "lifecyclestage", "code": "INVALID_OPTION"},
    ]
    text = verify(capsys, hubspot, "--input", str(body))[1]
    assert "  ada@example.com: favoriteColor (PROPERTY_DOESNT_EXIST)" in text


PORTAL = {
    "properties": [
        {"name": "loyalty_points", "label": "Loyalty points", "type": "number", "fieldType": "number"},
        {"name": "member_since", "label": "Member since", "type": "date", "fieldType": "date"},
        {"name": "last_seen", "label": "Last seen", "type": "datetime", "fieldType": "date"},
    ],
    "contacts": [{"properties": {"email": "ada@example.com", "phone": "+351 1"}}],
}


def test_the_expected_values_follow_the_products_rules_and_compare_as_hubspot_holds_them(
    pipeline_env, capsys, tmp_path
):
    """Email normalisation, the last profile's value per attribute, `""` clearing, the newest status by
    lastQualificationTime whatever the file order, and values compared as their property type reads them."""
    audience = "a-1"
    newer = {audience: {"status": "realized", "lastQualificationTime": "2025-03-04T10:00:00Z"}}
    older = {audience: {"status": "exited", "lastQualificationTime": "2025-03-01T10:00:00+0000"}}
    profiles = [
        profile(
            " Ada@Example.COM ",
            {
                "city": "Lisbon",
                "loyalty_points": "0120.50",
                "member_since": "2024-03-05T23:30:00-02:00",  # the 6th in UTC
                "last_seen": "2025-03-04T10:15:22.5+00:00",
            },
            newer,
        ),
        profile("ada@example.com", {"city": "Porto", "phone": ""}, older),
    ]
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"profiles": profiles}))
    with HubSpotEmulator(portal=PORTAL) as emulator:
        deliver(emulator, body.read_bytes())
        status, out, _ = verify(capsys, emulator, "--input", str(body), "--json")
        assert (status, json.loads(out)["differences"]) == (0, [])

        edit(emulator, "ada@example.com", loyalty_points="120.500", last_seen="1741083322500")  # the same values
        edit(emulator, "ada@example.com", member_since="2024-03-05", phone="+351 2", city="Lisbon")
        edit(emulator, "ada@example.com", **{audience_property_name(audience): "exited"})
        status, out, _ = verify(capsys, emulator, "--input", str(body), "--json")
    assert status == 1
    assert json.loads(out)["differences"] == [
        {
            "email": "ada@example.com",
            "property": audience_property_name(audience),
            "expected": "realized",
            "found": "exited",
        },
        {"email": "ada@example.com", "property": "city", "expected": "Porto", "found": "Lisbon"},
        {"email": "ada@example.com", "property": "member_since", "expected": "1709683200000", "found": "2024-03-05"},
        {"email": "ada@example.com", "property": "phone", "expected": None, "found": "+351 2"},
    ]


def audience_portal(statuses: dict[str, int]) -> dict:
    """A portal whose one audience property holds `statuses` ({status: how many contacts})."""
    name = audience_property_name("big")
    options = [{"label": s.capitalize(), "value": s} for s in ("realized", "existing", "exited")]
    return {
        "groups": [{"name": "aep_audiences", "label": "AEP audiences"}],
        "properties": [
            {
                "name": name,
                "label": "Big audience",
                "type": "enumeration",
                "fieldType": "select",
                "groupName": "aep_audiences",
                "options": options,
            }
        ],
        "contacts": [
            {"properties": {"email": f"{status}{i}@example.com", name: status}}
            for status, count in statuses.items()
            for i in range(count)
        ],
    }


def test_counts_are_the_search_total_beyond_one_page(pipeline_env, capsys):
    with HubSpotEmulator(portal=audience_portal({"realized": 250, "existing": 3, "exited": 201})) as emulator:
        status, out, _ = verify(capsys, emulator, "--json")
        searches = [r for r in emulator.snapshot()["requests"] if r["path"] == SEARCH]
    assert status == 0
    [counted] = json.loads(out)["audiences"]
    assert (counted["realized"], counted["existing"], counted["exited"]) == (250, 3, 201)
    assert len(searches) == 3


def test_a_secondly_429_is_waited_out(pipeline_env, capsys):
    now = [0.0]  # the emulator's clock stands still until the test moves it: no race with real time
    with HubSpotEmulator(portal=audience_portal({"realized": 2}), clock=lambda: now[0]) as emulator:
        client = HubSpotClient(lambda refresh=False: DEFAULT_TOKEN, base_url=emulator.base_url)
        for _ in range(5):  # search's five requests of this second, used up
            search_contacts(client, [], limit=1)

        def next_second_after_the_429() -> None:
            while not any(r["status"] == 429 for r in emulator.snapshot()["requests"]):
                time.sleep(0.01)
            now[0] = 2.0

        opener = threading.Thread(target=next_second_after_the_429, daemon=True)
        opener.start()
        status, out, err = verify(capsys, emulator, "--json")
        opener.join()
    assert (status, err) == (0, "")
    [counted] = json.loads(out)["audiences"]
    assert (counted["realized"], counted["existing"], counted["exited"]) == (2, 0, 0)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"total": "many", "results": []}', "SearchAnswer: total"),
        ('{"total": 1, "results": [{"id": "1"}, {"id": "2"}]}', "SearchAnswer"),
        ("<html>Bad gateway</html>", "not UTF-8 JSON"),
    ],
)
def test_a_malformed_search_answer_is_a_one_line_error(pipeline_env, capsys, text, problem):
    faults = FaultConfig(malformed={"rate": 1.0, "paths": ["search"], "bodies": [{"text": text}]})
    with HubSpotEmulator(portal=audience_portal({"realized": 1}), faults=faults) as emulator:
        url = emulator.base_url
        status, out, err = verify(capsys, emulator, "--json")
    assert (status, out) == (2, "")
    assert err.count("\n") == 1
    assert err.startswith(f"hubspot-destination: error: HubSpot at {url} answered what HubSpot does not:")
    assert problem in err


@pytest.mark.parametrize(
    ("args", "token", "message"),
    [
        (["--input", "does-not-exist.json"], None, "does-not-exist.json"),
        (["--input", "README.md"], None, "README.md is not JSON"),
        (["--input", "events/sqs-deliver.json"], None, "the input is not a profile export: profiles: Field required"),
        (["--hubspot-url", "api.hubapi.com"], None, "is not an http(s) URL"),
        (["--hubspot-url", "http://127.0.0.1:9"], None, "could not be reached"),
        (["--hubspot-url", "https://portal.example.com"], None, "set HUBSPOT_ACCESS_TOKEN"),
        ([], "wrong-token", "refused a request: HubSpot 401"),
        ([], "read-nothing-token", "refused a request: HubSpot 403"),
    ],
)
def test_every_error_is_one_line_on_stderr_with_exit_status_2(pipeline_env, monkeypatch, capsys, args, token, message):
    monkeypatch.chdir(ROOT)
    if token:
        monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", token)
    with HubSpotEmulator(
        tokens={DEFAULT_TOKEN: {"crm.objects.contacts.read"}, "read-nothing-token": set()}
    ) as emulator:
        status, out, err = verify(capsys, emulator, *args)  # a later --hubspot-url wins over the emulator's
    assert (status, out) == (2, "")
    assert err.count("\n") == 1, err
    assert err.startswith("hubspot-destination: error: ")
    assert message in err
    assert "wrong-token" not in err


def test_the_input_may_come_from_stdin_or_an_api_gateway_event(hubspot, capsys, monkeypatch):
    deliver(hubspot, SAMPLE.read_bytes())
    from_file = verify(capsys, hubspot, "--input", str(SAMPLE), "--json")
    from_event = verify(capsys, hubspot, "--input", str(ROOT / "events" / "apigw-activation.json"), "--json")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(SAMPLE.read_bytes())))
    from_stdin = verify(capsys, hubspot, "--input", "-", "--json")
    assert from_file[0] == from_event[0] == from_stdin[0] == 0
    assert json.loads(from_file[1]) == json.loads(from_event[1]) == json.loads(from_stdin[1])


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_shown_on_a_terminal_and_cleared_but_never_with_json(hubspot, capsys, monkeypatch):
    deliver(hubspot, SAMPLE.read_bytes())
    for args, shown in ((["--input", str(SAMPLE)], True), (["--input", str(SAMPLE), "--json"], False)):
        terminal = Terminal()
        monkeypatch.setattr("sys.stderr", terminal)
        assert main(["verify", "--hubspot-url", hubspot.base_url, *args]) == 0
        display = terminal.getvalue()
        assert ("hubspot-destination verify: counting audience 2 of 2" in display) is shown
        assert ("hubspot-destination verify: reading contacts 1-5 of 5" in display) is shown
        assert display.endswith("\r\x1b[K") is shown


def test_by_default_it_reads_the_emulator_as_the_emulator_command_starts_it(hubspot, capsys, monkeypatch):
    assert cli.build_parser().parse_args(["emulator"]).port == cli.EMULATOR_PORT
    assert cli.build_parser().parse_args(["emulator"]).token == DEFAULT_TOKEN
    deliver(hubspot, SAMPLE.read_bytes())
    monkeypatch.setattr(cli, "EMULATOR_PORT", int(hubspot.base_url.rsplit(":", 1)[1]))
    assert main(["verify", "--json"]) == 0  # no URL, no HUBSPOT_ACCESS_TOKEN
    assert json.loads(capsys.readouterr().out)["audiences"] == SAMPLE_AUDIENCES
