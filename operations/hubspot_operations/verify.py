"""`hubspot-destination verify`: what landed in a HubSpot portal, read back and checked against a request file.

Audiences: every property of the audience property group (`aep_audiences` unless told otherwise), with the
number of contacts holding each status, counted by the search API: the `total` of an `EQ` filter on the
property (hubspot-api.md §1.9), so one request per audience and status whatever the audience's size. Search
shows a write after "a few moments" (up to about 30 s, §1.9), so counts read right after a delivery may lag.

With a request file (`--input`), what it implies, by the product's own rules, not a copy of them: the ingest
rules (`ingest/split.py`: a refused profile implies nothing, the email keying each contact is
`domain/identity.contact_email`), the merge of one contact's profiles (`domain/contacts.coalesce`: each
attribute from the last profile carrying it, each audience's status from the membership with the newest
`lastQualificationTime`), and the properties delivery writes (`deliver/steps.build_properties`: values coerced
by the portal's live property types, `domain/coercion.py`). What delivery drops (an unknown, read-only or
audience property, a value its property cannot hold) is listed as not written, not as a difference. The
contacts are read back with `batch/read` (100 a request) and each property compared: absent and `""` are the
same, and both sides go through the same coercion, so a date HubSpot answers as `2025-03-04` equals the epoch
ms delivery wrote. The deployment's defaults are assumed: `NULL_CLEARS`, `STRICT_PROPERTIES` off, `NUMBER_*`
unset. The file alone is the reference: a later activation's values show as differences.

Requests are paced to at most 4 in any 1.5 s (search allows 5 a second; pacing.py's window is the second plus
0.5 s of margin for arrival times); a `SECONDLY` 429 is still waited out by the client.
"""

import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ValidationError

from hubspot_destination.deliver.policy import DeliveryPolicy
from hubspot_destination.deliver.steps import build_properties
from hubspot_destination.domain.audiences import STATUSES, audience_property_name
from hubspot_destination.domain.coercion import CoercionError, coerce
from hubspot_destination.domain.contacts import coalesce
from hubspot_destination.domain.messages import decode_message
from hubspot_destination.hubspot.client import HubSpotClient
from hubspot_destination.hubspot.contacts import EMAIL_PROPERTY
from hubspot_destination.hubspot.errors import HubSpotError, HubSpotMalformedAnswer
from hubspot_destination.hubspot.models import Property
from hubspot_destination.hubspot.pacing import Pacer
from hubspot_destination.hubspot.properties import AudienceResolution
from hubspot_destination.hubspot.search import search_contacts
from hubspot_destination.ingest.body import parse_json
from hubspot_destination.ingest.models import ActivationRequest
from hubspot_destination.ingest.split import split_profiles, validation_detail
from hubspot_destination.limits import HUBSPOT_BATCH_INPUTS, HUBSPOT_SEARCHES_PER_SECOND, SQS_MAX_MESSAGE_BYTES
from hubspot_destination.settings import DeliverSettings
from hubspot_operations.request_file import request_body

AUDIENCE_GROUP = DeliverSettings.model_fields["audience_property_group"].default
Progress = Callable[[str], None]


@dataclass(frozen=True)
class AudienceCount:
    """An audience property: its `label`, internal `name`, and how many contacts hold each status."""

    label: str
    name: str
    realized: int
    existing: int
    exited: int


@dataclass(frozen=True)
class Difference:
    """A property a contact does not hold as the file implies. `expected`: the value delivery writes (None:
    absent, what `""` leaves); `found`: what HubSpot answered (None: absent). A contact the portal lacks is one
    difference, on `email`, with `found` None."""

    email: str
    property: str
    expected: str | None
    found: str | None


@dataclass(frozen=True)
class NotWritten:
    """An attribute delivery leaves out, with the code it logs (`PROPERTY_DOESNT_EXIST`, `READ_ONLY_VALUE`,
    `AUDIENCE_PROPERTY`, `INVALID_OPTION`, ...)."""

    email: str
    property: str
    code: str


@dataclass(frozen=True)
class Expected:
    """What a request file implies: `contacts` maps each email to `{property: value as delivery writes it}`
    (`""` for a cleared value; `email` itself included); `profiles` and `refused` count the file's profiles
    and those the ingest rules refuse."""

    contacts: dict[str, dict[str, str]]
    not_written: list[NotWritten]
    profiles: int
    refused: int


@dataclass(frozen=True)
class Report:
    """What `verify` prints: the audiences, and with a request file (`expected`) the differences and the
    attributes not written."""

    audiences: list[AudienceCount]
    differences: list[Difference]
    expected: Expected | None = None

    @property
    def ok(self) -> bool:
        """No contact differs from what the file implies (always true without a file)."""
        return not self.differences

    def as_dict(self) -> dict:
        """The `--json` object: `{"audiences": [{"label", "name", "realized", "existing", "exited"}],
        "differences": [{"email", "property", "expected", "found"}], "not_written": [{"email", "property",
        "code"}], "input": {"profiles", "refused", "contacts"} or null}`."""
        expected = self.expected
        return {
            "audiences": [asdict(audience) for audience in self.audiences],
            "differences": [asdict(difference) for difference in self.differences],
            "not_written": [asdict(item) for item in expected.not_written] if expected else [],
            "input": None
            if expected is None
            else {"profiles": expected.profiles, "refused": expected.refused, "contacts": len(expected.contacts)},
        }

    def text(self, base_url: str, group: str) -> str:
        """The readable report."""
        lines = [f"Audiences in the property group {group!r} at {base_url} ({len(self.audiences)}):"]
        for audience in self.audiences:
            counts = ", ".join(f"{status} {getattr(audience, status)}" for status in STATUSES)
            lines.append(f"  {audience.label} ({audience.name}): {counts}")
        expected = self.expected
        if expected is None:
            return "\n".join(lines)
        lines.append(
            f"\nContacts checked: {len(expected.contacts)}, from {expected.profiles} profile(s) "
            f"({expected.refused} refused by the ingest rules)"
        )
        lines.append(f"Not written by delivery ({len(expected.not_written)}):")
        lines += [f"  {item.email}: {item.property} ({item.code})" for item in expected.not_written]
        lines.append(f"Differences ({len(self.differences)}):")
        for difference in self.differences:
            if difference.property == EMAIL_PROPERTY and difference.found is None:
                lines.append(f"  {difference.email}: no such contact")
            else:
                lines.append(
                    f"  {difference.email}: {difference.property} is {_shown(difference.found)}, "
                    f"expected {_shown(difference.expected)}"
                )
        lines.append(
            "OK: every contact holds what the file implies."
            if self.ok
            else f"NOT OK: {len(self.differences)} difference(s)."
        )
        return "\n".join(lines)


def _shown(value: str | None) -> str:
    return "absent" if value is None else repr(value)


def read_input(source: str) -> bytes:
    """The request body of `--input`: a file (a body or an API Gateway proxy event, as `replay` reads), or
    standard input for `-`.

    Raises:
        OSError: the file cannot be read. ValueError: it is not JSON.
    """
    raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    return request_body(raw, "standard input" if source == "-" else source)[0]


def expected_contacts(raw_body: bytes, catalog: Mapping[str, Property], group: str = AUDIENCE_GROUP) -> Expected:
    """What a request body implies for each contact (module doc), given the portal's properties by name.

    Raises:
        ValueError: the body is not UTF-8 JSON, or not a profile export (one line, as ingest would answer).
    """
    try:
        request = ActivationRequest.model_validate(parse_json(raw_body))
    except ValidationError as error:
        raise ValueError(f"the input is not a profile export: {validation_detail(error, 'body')}") from None
    except ValueError as error:
        raise ValueError(f"the input is not UTF-8 JSON: {error}") from None
    split = split_profiles(
        request,
        request_id="verify",
        received_at=datetime.now(UTC),
        max_message_bytes=SQS_MAX_MESSAGE_BYTES,
        max_profiles_per_message=len(request.profiles),  # how they are packed changes nothing here
    )
    updates = [profile for body in split.bodies for profile in decode_message(body).profiles]
    policy = DeliveryPolicy(audience_group=group)
    contacts: dict[str, dict[str, str]] = {}
    not_written: list[NotWritten] = []
    for email, change in sorted(coalesce((str(i), update) for i, update in enumerate(updates)).items()):
        # The identity keys the contact and owns its email: delivery ignores a mapped `email` attribute.
        change = change.without(attributes=[EMAIL_PROPERTY])
        names = {audience_id: audience_property_name(audience_id) for audience_id in change.audiences}
        built = build_properties(change, catalog, AudienceResolution(names=names), policy)
        contacts[email] = built.properties
        not_written += sorted(
            (NotWritten(email, item.name, item.code) for item in built.dropped), key=lambda item: item.property
        )
    return Expected(contacts, not_written, profiles=len(request.profiles), refused=len(split.rejected))


def _held(value: str | None, prop: Property | None) -> str | None:
    """A value as compared: None when absent (`""` included), else rendered by its property's coercion rule
    (the value itself when it has none, or when the rule refuses it)."""
    if not value:
        return None
    if prop is None:
        return value
    try:
        return coerce(value, prop)
    except CoercionError:
        return value


def count_audiences(
    client: HubSpotClient, catalog: Mapping[str, Property], group: str, progress: Progress | None = None
) -> list[AudienceCount]:
    """The properties of `group`, by label, each with its contacts per status (3 searches each)."""
    audiences = sorted((p for p in catalog.values() if p.groupName == group), key=lambda p: (p.label, p.name))
    counts = []
    for index, prop in enumerate(audiences, start=1):
        if progress:
            progress(f"counting audience {index} of {len(audiences)}")
        totals = {
            status: search_contacts(
                client, [{"propertyName": prop.name, "operator": "EQ", "value": status}], properties=["email"], limit=1
            ).total
            for status in STATUSES
        }
        counts.append(AudienceCount(label=prop.label, name=prop.name, **totals))
    return counts


def differences(
    client: HubSpotClient, expected: Expected, catalog: Mapping[str, Property], progress: Progress | None = None
) -> list[Difference]:
    """Read the expected contacts back (`batch/read` by email) and list where they differ, by email and
    property. A property the portal lacks is not asked for: its values are absent."""
    emails = list(expected.contacts)
    found: list[Difference] = []
    for start in range(0, len(emails), HUBSPOT_BATCH_INPUTS):
        if progress:
            progress(f"reading contacts {start + 1}-{min(len(emails), start + HUBSPOT_BATCH_INPUTS)} of {len(emails)}")
        chunk = emails[start : start + HUBSPOT_BATCH_INPUTS]
        names = sorted({name for email in chunk for name in expected.contacts[email] if name in catalog})
        records = client.batch_read_contacts_by_email(chunk, names)
        held = {str(record.properties.get(EMAIL_PROPERTY) or "").lower(): record.properties for record in records}
        for email in chunk:
            if email not in held:
                found.append(Difference(email, EMAIL_PROPERTY, email, None))
                continue
            for name, value in sorted(expected.contacts[email].items()):
                prop, actual = catalog.get(name), held[email].get(name)
                if _held(value, prop) != _held(actual, prop):
                    found.append(Difference(email, name, value or None, actual or None))
    return found


def checked_url(base_url: str) -> str:
    """`base_url`, when it is an http(s) URL with a host, a port from 1 to 65535 if it names one, and no user
    or password (the token goes in HUBSPOT_ACCESS_TOKEN, never in a URL, and the URL is quoted in messages).

    Raises:
        ValueError: one line saying what is wrong; a URL carrying credentials is not quoted back.
    """
    try:
        url = urlsplit(base_url)
    except ValueError as error:  # not quoted: unparsed, it may carry a password
        raise ValueError(f"--hubspot-url is not a URL ({error}; e.g. https://api.hubapi.com)") from None
    if url.username is not None or url.password is not None:
        raise ValueError("--hubspot-url must not carry a user or password: the token goes in HUBSPOT_ACCESS_TOKEN")
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"--hubspot-url {base_url!r} is not an http(s) URL (e.g. https://api.hubapi.com)")
    try:
        port = url.port  # urllib raises on a port out of range or not a number
    except ValueError:
        port = 0
    if port == 0 or (port is None and url.netloc.endswith(":")):
        raise ValueError(f"--hubspot-url {base_url!r}: its port must be 1 to 65535")
    return base_url


def verify(
    base_url: str,
    token: str,
    *,
    group: str = AUDIENCE_GROUP,
    raw_body: bytes | None = None,
    progress: Progress | None = None,
) -> Report:
    """Count the audiences of the portal at `base_url` and, given a request body, compare its contacts.

    Args:
        token: a private-app token with `crm.objects.contacts.read` (never shown).
        raw_body: a request body (`read_input`); None: audiences only.
        progress: told what is being read, before each step (for a display on stderr).

    Raises:
        ValueError: not an http(s) URL; the body is not a profile export; HubSpot could not be reached,
            refused a request or answered what HubSpot does not (one line, naming `base_url`).
    """
    checked_url(base_url)
    # Search's limit is a 1-s window (5 requests): at most 4 in any 1.5 s (one below, the pacer's reserve).
    pacer = Pacer(HUBSPOT_SEARCHES_PER_SECOND, interval_s=1.0)
    client = HubSpotClient(lambda refresh=False: token, base_url=base_url, pacer=pacer)
    try:
        if progress:
            progress("reading the contact properties")
        catalog = {prop.name: prop for prop in client.list_properties()}
        expected = None if raw_body is None else expected_contacts(raw_body, catalog, group)
        audiences = count_audiences(client, catalog, group, progress)
        found = [] if expected is None else differences(client, expected, catalog, progress)
    except HubSpotMalformedAnswer as error:
        raise ValueError(f"HubSpot at {base_url} answered what HubSpot does not: {error.message}") from None
    except HubSpotError as error:
        if error.status is None:  # no answer: connection refused, DNS, timeout
            raise ValueError(f"HubSpot at {base_url} could not be reached: {error.message}") from None
        raise ValueError(f"HubSpot at {base_url} refused a request: {error}") from None
    return Report(audiences, found, expected)
