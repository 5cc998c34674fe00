"""Several `batch/upsert` calls in flight per invocation (HubSpotContacts, `HUBSPOT_UPSERTS_IN_FLIGHT`): the
bound holds, no contact is ever in two calls at once, and the calls share the client's pacing (a rolling-window
allowance: they go at once up to it), so the emulator, which counts the rolling window itself, never refuses
one, not even when two clients burst at once. The emulator's answer time is on, so calls overlap as they do
against HubSpot."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from hubspot_destination.domain.deadline import Deadline
from hubspot_destination.hubspot.client import HubSpotClient
from hubspot_destination.hubspot.contacts import ContactInput, HubSpotContacts, Refused, Written
from hubspot_local.emulator import PRODUCT_SCOPES, FaultConfig, HubSpotEmulator
from hubspot_local.pipeline import EMULATOR_TOKEN

UPSERT = "/crm/v3/objects/contacts/batch/upsert"


def inputs(count: int) -> list[ContactInput]:
    emails = [f"user{i}@example.com" for i in range(count)]
    return [ContactInput(email, {"email": email, "firstname": f"User {i}"}) for i, email in enumerate(emails)]


def writer(hubspot: HubSpotEmulator, requests_per_10s: int, in_flight: int = 8, share: int = 1) -> HubSpotContacts:
    client = HubSpotClient(
        lambda refresh=False: EMULATOR_TOKEN,
        hubspot.base_url,
        requests_per_10s=requests_per_10s,
        share=share,
        in_flight=in_flight,
    )
    return HubSpotContacts(client, in_flight=in_flight)


def emulator(latency_ms: float, **kwargs) -> HubSpotEmulator:
    faults = FaultConfig(seed=1, latency={"median_ms": latency_ms, "sigma": 0})
    return HubSpotEmulator(tokens={EMULATOR_TOKEN: PRODUCT_SCOPES}, faults=faults, **kwargs)


def test_calls_in_flight_stay_within_the_bound_and_never_carry_one_contact_twice():
    with emulator(latency_ms=1000, tier="addon") as hubspot:
        outcomes = writer(hubspot, requests_per_10s=250).upsert(inputs(1000), Deadline.after(60))
        state = hubspot.snapshot()
    assert set(outcomes.values()) == {Written()}
    assert len(outcomes) == len(state["contacts"]) == 1000
    upserts = [r for r in state["requests"] if r["path"] == UPSERT]
    assert [r["status"] for r in upserts] == [200] * 10
    # Each answer takes 1 s and the 10 calls are within the allowance (238 per window): they overlap, up to
    # the bound.
    assert 1 < state["in_flight"]["most_upserts"] <= 8
    assert state["in_flight"]["contacts_in_two_upserts"] == 0


def test_calls_in_flight_share_the_pacing_and_stay_under_the_burst_limit():
    # 8 calls against a limit of 6 per 10 s: 8 threads sending at once would be refused from the 7th call. The
    # allowance is 5 (one kept in reserve): 5 go at once, the other 3 once the first have left the window.
    with emulator(latency_ms=1000, burst_limit=6) as hubspot:
        outcomes = writer(hubspot, requests_per_10s=6).upsert(inputs(800), Deadline.after(60))
        state = hubspot.snapshot()
    assert set(outcomes.values()) == {Written()}
    assert [r["status"] for r in state["requests"]] == [200] * 8
    assert state["in_flight"]["contacts_in_two_upserts"] == 0


def test_two_clients_sharing_the_burst_limit_each_burst_their_allowance_without_a_429():
    # Free (100 per 10 s), two clients of share 2 (two deliver environments, one token): each may send
    # (100 - 5) // 2 = 47 requests in any window, all at once, as fast as its 8 calls in flight allow.
    calls = 50
    with emulator(latency_ms=500, tier="free") as hubspot:
        writers = [writer(hubspot, requests_per_10s=100, share=2) for _ in range(2)]
        everyone = inputs(2 * calls * 100)
        batches = [everyone[: calls * 100], everyone[calls * 100 :]]  # distinct contacts: one invocation each
        with ThreadPoolExecutor(max_workers=2) as pool:
            done = list(pool.map(lambda contacts, batch: contacts.upsert(batch, Deadline.after(60)), writers, batches))
        state = hubspot.snapshot()
    assert [set(outcomes.values()) for outcomes in done] == [{Written()}, {Written()}]
    upserts = [r for r in state["requests"] if r["path"] == UPSERT]
    assert [r["status"] for r in upserts] == [200] * 2 * calls  # not a single 429
    # The clients burst at once: more calls in flight than one client's bound, where an even spacing (one call
    # per 0.2 s per client, each answered in 0.5 s) kept about 3 in flight each.
    assert state["in_flight"]["most_upserts"] > 8
    # And the window never held more than the two allowances: the reserve (5) and the rounding (1) stayed free.
    assert min(r["rateLimitRemaining"] for r in upserts) >= 100 - 2 * 47
    assert state["in_flight"]["contacts_in_two_upserts"] == 0


def test_an_email_given_twice_is_refused_before_anything_is_sent():
    twice = [*inputs(150), ContactInput("user3@example.com", {"email": "user3@example.com"})]
    with emulator(latency_ms=10) as hubspot:
        with pytest.raises(ValueError, match="unique emails"):
            writer(hubspot, requests_per_10s=190).upsert(twice, Deadline.after(60))
        assert hubspot.snapshot()["requests"] == []


def test_a_call_refused_whole_is_bisected_on_its_own_while_the_others_are_in_flight():
    batch = inputs(300)
    spoiled = ContactInput(batch[150].email, {"email": batch[150].email, "FirstName": "Mixed case"})
    batch[150] = spoiled  # HubSpot refuses the whole call carrying it (400 "Invalid input JSON")
    with emulator(latency_ms=300, tier="addon") as hubspot:
        outcomes = writer(hubspot, requests_per_10s=250).upsert(batch, Deadline.after(60))
        state = hubspot.snapshot()
    assert isinstance(outcomes.pop(spoiled.email), Refused)
    assert set(outcomes.values()) == {Written()}
    assert len(state["contacts"]) == 299
    statuses = [r["status"] for r in state["requests"] if r["path"] == UPSERT]
    assert statuses.count(400) >= 2  # the call, then each half that still held the bad input
    assert state["in_flight"]["contacts_in_two_upserts"] == 0
