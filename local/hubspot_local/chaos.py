"""`hubspot-destination chaos`: the whole local pipeline under faults, then the portal checked against the input.

Input: seeded profiles, several updates per contact spread over several requests, each with attribute values
and audience statuses whose `lastQualificationTime`s are not in arrival order; some emails written in
another case or with spaces around them; a few invalid emails and memberships (which ingest must refuse);
a few attribute values HubSpot cannot hold (which delivery must drop, writing the rest of the contact), each
later superseded by a valid value for the same field, so that the expected state does not depend on batching.

Faults, all at once: the emulator's 5xx, 423, 477, connection resets, slow answers (past the client's
timeout, after the write), 429 bursts, a second integration using part of the budget, and a token rotation
(the secret is updated to a second token once about a third of the upserts were sent; the old token, still
cached by the functions, is revoked after a few more requests); the event source mapping's dying
invocations, duplicated and reordered deliveries (`MappingChaos`); two concurrent deliver execution
environments, the function timeout enforced at AWS calls.

Expected state (`expected_state`): per contact, each attribute's value from the last accepted profile that
carries it (arrival order: request order, then index; `""` clears), and per audience the status with the
newest `lastQualificationTime`. `compare` counts what the portal lost, got wrong and duplicated.
"""

import json
import os
import random
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import boto3

from hubspot_destination.domain.audiences import audience_property_name
from hubspot_local.bench import MAX_CONCURRENCY
from hubspot_local.emulator import PRODUCT_SCOPES, FaultConfig, HubSpotEmulator
from hubspot_local.emulator.faults import FaultInjector
from hubspot_local.emulator.ratelimit import TIERS
from hubspot_local.event_source_mapping import EventSourceMapping, MappingChaos, queue_depth
from hubspot_local.harness import environment, feed_and_drain, load_deliver_environments, thread_safe_moto
from hubspot_local.pipeline import DEPLOYED, EMULATOR_TOKEN, LocalPipeline

TIER = "addon"  # the largest budget keeps the run short; the limits are still enforced in real time
PROFILES_PER_REQUEST = 500
UPDATES_PER_CONTACT = 3  # on average
ROTATED_TOKEN = "local-dev-token-rotated"  # noqa: S105 - an emulator token, not a secret
OLD_TOKEN_REQUESTS = 10  # requests the old token still makes after the rotation before it is revoked
AUDIENCES = ("chaos-churn-risk", "chaos-loyal", "chaos-vip")  # sorted; no names: the id is the label
STATUSES = ("realized", "existing", "exited")
ATTRIBUTES = ("firstname", "city", "zip", "phone", "lifecyclestage", "loyalty_points", "member_since")
UNTOUCHED = ("lastname", "company")  # sent only as {}, null or {"value": null}: never written
# Custom properties the portal starts with (the rest are HubSpot's defaults).
PORTAL = {
    "properties": [
        {"name": "loyalty_points", "label": "Loyalty points", "type": "number", "fieldType": "number"},
        {"name": "member_since", "label": "Member since", "type": "date", "fieldType": "date"},
    ]
}
# Production's function timeout (60 s) < contact lease (90 s) < visibility timeout (360 s), compressed in
# the same order so that a run takes minutes: a dead invocation's batch comes back once its leases expired.
FUNCTION_TIMEOUT_S = 40
ENVIRONMENT = {
    "HUBSPOT_REQUESTS_PER_10S": str(TIERS[TIER][0]),
    "MAX_CONCURRENCY": str(MAX_CONCURRENCY),
    "HUBSPOT_TIMEOUT_SECONDS": "1",  # below the emulator's slow answers, so some time out after the write
    "THROTTLE_REQUEUE_SECONDS": "2",  # a 429 that cannot be waited out comes back soon
    "CONTACT_LEASE_SECONDS": "45",
}
KILL_RATE = 0.1
MAPPING_CHAOS = {
    "duplicate_rate": 0.03,
    "hold_rate": 0.25,
    "redelivery_delay_s": 3,
    "kill_visibility_s": 50,
}
_DROP = object()  # an invalid value: delivery leaves the field untouched
_CLEARED = None  # `""` clears the field: it must be absent from the portal


def fault_config(seed: int) -> FaultConfig:
    """The emulator's faults for a run (rates per request; statuses are retried by the client, then by SQS)."""
    return FaultConfig(
        seed=seed,
        error_rates={500: 0.02, 502: 0.01, 503: 0.01, 504: 0.01, 423: 0.02, 477: 0.005},
        reset_rate=0.02,
        burst_429_rate=0.01,
        burst_429_length=3,
        slow_rate=0.03,
        slow_seconds=1.5,
        other_integration_per_window=50,
    )


class TokenRotation(FaultInjector):
    """The emulator's fault injection, plus the revocation of a rotated-out token: after `retire(token, n)`
    the token answers 401 once it has made `n` more requests."""

    def __init__(self, config: FaultConfig) -> None:
        super().__init__(config)
        self._retiring: dict[str, int] = {}
        self._retiring_lock = threading.Lock()

    def retire(self, token: str, requests_left: int) -> None:
        """Revoke `token` after `requests_left` more requests."""
        with self._retiring_lock:
            self._retiring[token] = requests_left

    def revoked(self, token: str) -> bool:
        """See `FaultInjector.revoked`; a retired token is revoked once its requests are used up."""
        with self._retiring_lock:
            left = self._retiring.get(token)
            if left is not None:
                self._retiring[token] = left - 1
                return left <= 0
        return super().revoked(token)


@dataclass
class ProfileMeaning:
    """What one generated profile must do: `email` (normalised; None when ingest must refuse it),
    `attributes` (`{name: stored value}`, `_CLEARED` or `_DROP`) and `audiences`
    (`{audience id: (lastQualificationTime, status)}`)."""

    email: str | None
    attributes: dict[str, object] = field(default_factory=dict)
    audiences: dict[str, tuple[datetime, str]] = field(default_factory=dict)


def _tracked() -> dict[str, None]:
    names = [*ATTRIBUTES, *UNTOUCHED, *(audience_property_name(audience_id) for audience_id in AUDIENCES)]
    return dict.fromkeys(names)


@dataclass
class ExpectedContact:
    """A contact's expected portal values: `{property name: value, or None for absent}` for every property the
    input touches or must leave untouched, and the newest `lastQualificationTime` per audience id."""

    properties: dict[str, str | None] = field(default_factory=_tracked)
    audience_times: dict[str, datetime] = field(default_factory=dict)


def _iso(moment: datetime, style: int) -> str:
    """`lastQualificationTime` in one of the offset styles AEP writes."""
    if style == 0:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == 1:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    return moment.isoformat()


class _Generator:
    """Seeded profiles and their meanings."""

    def __init__(self, seed: int, contacts: int):
        self.rng = random.Random(seed)
        self.emails = [f"chaos{i}{'+aep' if i % 7 == 0 else ''}@example.com" for i in range(contacts)]
        self._times: set[tuple[str, str, datetime]] = set()

    def attribute(self, name: str, invalid: bool) -> tuple[object, object]:
        """`(value sent, expected stored value)` for one attribute."""
        rng = self.rng
        if name == "loyalty_points":
            if invalid:
                return rng.choice(["12abc", "1,204", "NaN"]), _DROP
            number = rng.randrange(100_000)
            return rng.choice([(number, str(number)), (str(number), str(number)), (f"{number}.5", f"{number}.5")])
        if name == "member_since":
            if invalid:
                return rng.choice(["2024-13-40", "yesterday"]), _DROP
            day = datetime(2015, 1, 1, tzinfo=UTC).date() + timedelta(days=rng.randrange(3650))
            return day.isoformat(), day.isoformat()
        if name == "lifecyclestage":
            return rng.choice([("lead", "lead"), ("Marketing Qualified Lead", "marketingqualifiedlead")])
        if name == "city" and rng.random() < 0.1:
            return "", _CLEARED
        text = {
            "firstname": lambda: f"Name{rng.randrange(10_000)}",
            "city": lambda: rng.choice(["Lisbon", "Porto", "Leeds", "Zürich", "São Paulo"]),
            "zip": lambda: f"0{rng.randrange(1000, 9999)}",
            "phone": lambda: f"+1415555{rng.randrange(1000, 9999)}",
        }[name]()
        return text, text

    def _qualification_time(self, email: str, audience_id: str) -> datetime:
        """A time no other update of this contact and audience has (no ties to break)."""
        while True:
            moment = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=self.rng.randrange(10_000_000))
            if (email, audience_id, moment) not in self._times:
                self._times.add((email, audience_id, moment))
                return moment

    def profile(self) -> tuple[dict, ProfileMeaning]:
        """One profile as AEP sends it, and its meaning."""
        rng = self.rng
        email = rng.choice(self.emails)
        shown = rng.choice([email, email.upper(), f"  {email} "])
        namespace = rng.choice(["email", "Email"])
        if rng.random() < 0.01:
            bad = rng.choice([email.replace(".com", ".comtttt"), email.replace("@", "")])
            return {"identityMap": {namespace: [{"id": bad}]}}, ProfileMeaning(email=None)
        meaning = ProfileMeaning(email=email)
        attributes: dict[str, object] = {}
        for name in rng.sample(ATTRIBUTES, 3):
            sent, stored = self.attribute(name, invalid=rng.random() < 0.05)
            attributes[name] = rng.choice([sent, {"value": sent}])
            meaning.attributes[name] = stored
        attributes[rng.choice(UNTOUCHED)] = rng.choice([{}, None, {"value": None}])
        memberships = {}
        for audience_id in rng.sample(AUDIENCES, rng.randint(1, 3)):
            moment = self._qualification_time(email, audience_id)
            status = rng.choice(STATUSES)
            memberships[audience_id] = {"status": status, "lastQualificationTime": _iso(moment, rng.randrange(3))}
            meaning.audiences[audience_id] = (moment, status)
        if rng.random() < 0.005:
            memberships[rng.choice(AUDIENCES)] = {"status": "qualified", "lastQualificationTime": "soon"}
            meaning = ProfileMeaning(email=None)
        profile = {
            "identityMap": {namespace: [{"id": shown}]},
            "attributes": attributes,
            "segmentMembership": {"ups": memberships},
        }
        return profile, meaning


def generate(profiles: int, seed: int) -> tuple[list[list[dict]], list[list[ProfileMeaning]]]:
    """Seeded requests (`PROFILES_PER_REQUEST` profiles each) and the meaning of every profile.

    About `UPDATES_PER_CONTACT` profiles per contact. A contact's last value for a field is never an
    invalid one (it is replaced by a valid value), so what the portal must end with does not depend on
    which updates share a batch.
    """
    generator = _Generator(seed, max(1, profiles // UPDATES_PER_CONTACT))
    pairs = [generator.profile() for _ in range(profiles)]
    last: dict[tuple[str, str], int] = {}
    for index, (_, meaning) in enumerate(pairs):
        for name in meaning.attributes:
            last[(meaning.email, name)] = index
    for (_, name), index in last.items():
        profile, meaning = pairs[index]
        if meaning.attributes[name] is _DROP:
            sent, stored = generator.attribute(name, invalid=False)
            profile["attributes"][name], meaning.attributes[name] = sent, stored
    requests = [pairs[start : start + PROFILES_PER_REQUEST] for start in range(0, profiles, PROFILES_PER_REQUEST)]
    return [[p for p, _ in chunk] for chunk in requests], [[m for _, m in chunk] for chunk in requests]


def expected_state(meanings: list[list[ProfileMeaning]]) -> dict[str, ExpectedContact]:
    """The portal the input must produce: `{email: ExpectedContact}` (see the module doc)."""
    expected: dict[str, ExpectedContact] = {}
    for meaning in (m for request in meanings for m in request):
        if meaning.email is None:
            continue
        contact = expected.setdefault(meaning.email, ExpectedContact())
        for name, stored in meaning.attributes.items():
            if stored is not _DROP:
                contact.properties[name] = stored
        for audience_id, (moment, status) in meaning.audiences.items():
            if moment > contact.audience_times.get(audience_id, datetime.min.replace(tzinfo=UTC)):
                contact.audience_times[audience_id] = moment
                contact.properties[audience_property_name(audience_id)] = status
    return expected


@dataclass
class Findings:
    """`lost`: expected contacts missing, plus expected values missing on present contacts; `wrong`: values
    that differ (a value present that should be absent included), plus contacts that should not exist;
    `duplicates`: emails held by more than one contact; `examples`: up to 10 of them, for a reader."""

    lost: int = 0
    wrong: int = 0
    duplicates: int = 0
    examples: list[str] = field(default_factory=list)

    def _note(self, text: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(text)


def compare(expected: dict[str, ExpectedContact], contacts: list[dict]) -> Findings:
    """Compare the portal's contacts (`[{"properties": {...}}]`, as the emulator's snapshot holds them) with
    the expected state."""
    findings = Findings()
    by_email: dict[str, list[dict]] = {}
    for contact in contacts:
        by_email.setdefault(str(contact["properties"].get("email", "")).lower(), []).append(contact["properties"])
    for email, held in by_email.items():
        if len(held) > 1:
            findings.duplicates += 1
            findings._note(f"{email}: {len(held)} contacts")
        if email not in expected:
            findings.wrong += 1
            findings._note(f"{email}: not expected in the portal")
    for email, contact in expected.items():
        if email not in by_email:
            findings.lost += 1
            findings._note(f"{email}: contact missing")
            continue
        actual = by_email[email][0]
        for name, value in contact.properties.items():
            if value is not None and name not in actual:
                findings.lost += 1
                findings._note(f"{email}: {name} missing (expected {value!r})")
            elif actual.get(name) != value:
                findings.wrong += 1
                findings._note(f"{email}: {name} is {actual.get(name)!r}, expected {value!r}")
    return findings


@dataclass
class ChaosResult:
    """What `chaos` prints.

    `profiles`, `seed`, `seconds` (wall time); `accepted` and `rejected_at_ingest` (by reason) as ingest
    answered, and `rejections_unexpected` (refusals that differ from the input's invalid profiles, either
    way); `contacts_expected`, `contacts_in_portal`; `lost`, `wrong`, `duplicates` and `examples` (see
    `Findings`); `dead_letters` by reason (every accepted profile is valid, so any is unexpected);
    `left_on_queue` (messages never settled); `faults`: what the emulator answered (`http_<status>`,
    `resets`) and what the mapping did (`killed_invocations`, timed-out ones included,
    `duplicated_records`, `held_batches`, `invocation_errors`); `longest_invocation_s`, to compare with the
    function timeout (`FUNCTION_TIMEOUT_S`).
    """

    profiles: int
    seed: int
    seconds: float
    accepted: int
    rejected_at_ingest: dict[str, int]
    rejections_unexpected: int
    contacts_expected: int
    contacts_in_portal: int
    lost: int
    wrong: int
    duplicates: int
    dead_letters: dict[str, int]
    left_on_queue: int
    faults: dict[str, int]
    longest_invocation_s: float
    examples: list[str]

    @property
    def ok(self) -> bool:
        """Nothing lost, wrong, duplicated, dead-lettered, refused unexpectedly or left on the queue."""
        return not (
            self.lost
            or self.wrong
            or self.duplicates
            or self.dead_letters
            or self.rejections_unexpected
            or self.left_on_queue
        )

    def as_dict(self) -> dict:
        """The `--json` object (with `ok`)."""
        return {**asdict(self), "ok": self.ok}


def run_chaos(profiles: int = 10_000, seed: int = 1, *, kill_rate: float = KILL_RATE) -> ChaosResult:
    """Run the pipeline under chaos on seeded input and compare the portal with the expected state.

    `kill_rate`: the share of deliver invocations that die (`MappingChaos.kill_rate`); each death costs
    `kill_visibility_s` of waiting, so small test runs pass 0.

    Raises:
        ValueError: fewer than one profile.
    """
    if profiles < 1:
        raise ValueError("--profiles must be at least 1")
    requests, meanings = generate(profiles, seed)
    expected = expected_state(meanings)
    refused_indices = [{i for i, m in enumerate(chunk) if m.email is None} for chunk in meanings]
    accepted = 0
    rejected: Counter[str] = Counter()
    unexpected_rejections = 0
    started = time.monotonic()
    tokens = {EMULATOR_TOKEN: PRODUCT_SCOPES, ROTATED_TOKEN: PRODUCT_SCOPES}
    with (
        open(os.devnull, "w") as output,
        thread_safe_moto(),
        environment(**ENVIRONMENT),
        HubSpotEmulator(tokens=tokens, tier=TIER, portal=PORTAL, faults=fault_config(seed)) as emulator,
        LocalPipeline(emulator=emulator, handler_output=output) as pipeline,
    ):
        faults = emulator.faults = TokenRotation(emulator.faults.config)
        handlers = [module.lambda_handler for module in load_deliver_environments(MAX_CONCURRENCY, output)]
        mapping = EventSourceMapping(
            pipeline.sqs,
            pipeline.queue_url,
            handlers,
            DEPLOYED.batch_size,
            FUNCTION_TIMEOUT_S,
            max_invocations=20 * (profiles // DEPLOYED.batch_size + 10),
            max_wait_s=3 * MAPPING_CHAOS["kill_visibility_s"],
            chaos=MappingChaos(seed=seed, kill_rate=kill_rate, **MAPPING_CHAOS),
        )

        rotate_after = max(3, profiles // (3 * 100))  # HubSpot requests: about a third of the upserts

        def rotate_token_when_due() -> bool:
            """Rotate once HubSpot has had `rotate_after` requests (or delivery is over); True once rotated."""
            if len(emulator.requests) < rotate_after and queue_depth(pipeline.sqs, pipeline.queue_url).total:
                return False
            boto3.client("secretsmanager").put_secret_value(
                SecretId=os.environ["HUBSPOT_TOKEN_SECRET_ID"], SecretString=ROTATED_TOKEN
            )
            faults.retire(EMULATOR_TOKEN, OLD_TOKEN_REQUESTS)
            return True

        def feed() -> None:
            nonlocal accepted, unexpected_rejections
            rotated, last_ms = False, 0
            for chunk, refused in zip(requests, refused_indices, strict=True):
                while int(time.time() * 1000) <= last_ms:  # arrival order is the request time, in ms
                    time.sleep(0.001)
                last_ms = int(time.time() * 1000)
                answer = pipeline.ingest(json.dumps({"profiles": chunk}).encode())
                if answer["status"] != 202:
                    raise RuntimeError(f"ingest refused a chaos request: {answer}")
                accepted += answer["body"]["accepted"]
                got = {r["index"] for r in answer["body"]["rejected"]}
                rejected.update(r["reason"] for r in answer["body"]["rejected"])
                unexpected_rejections += len(got ^ refused)
                rotated = rotated or rotate_token_when_due()
            while not rotated:
                time.sleep(0.2)
                rotated = rotate_token_when_due()

        stats = feed_and_drain(mapping, feed, output)
        snapshot = emulator.snapshot()
        letters = Counter(letter["reason"] for letter in pipeline.dead_letters())
    findings = compare(expected, snapshot["contacts"])
    statuses = Counter(r["status"] for r in snapshot["requests"])
    seen = {f"http_{status}": n for status, n in sorted(statuses.items(), key=str) if status and status >= 300}
    return ChaosResult(
        profiles=profiles,
        seed=seed,
        seconds=round(time.monotonic() - started, 1),
        accepted=accepted,
        rejected_at_ingest=dict(rejected),
        rejections_unexpected=unexpected_rejections,
        contacts_expected=len(expected),
        contacts_in_portal=len(snapshot["contacts"]),
        lost=findings.lost,
        wrong=findings.wrong,
        duplicates=findings.duplicates,
        dead_letters=dict(letters),
        left_on_queue=stats.left_on_queue.total,
        faults={
            **seen,
            "resets": statuses.get(None, 0),
            "killed_invocations": stats.killed,
            "duplicated_records": stats.duplicated,
            "held_batches": stats.held,
            "invocation_errors": stats.errors,
        },
        longest_invocation_s=round(stats.longest_invocation_s, 1),
        examples=findings.examples,
    )
