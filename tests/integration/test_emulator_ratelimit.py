"""Rate limits of the HubSpot emulator (hubspot-api.md §3), driven by an injected clock: no sleeping."""

from __future__ import annotations

import pytest

from hubspot_local.emulator import DEFAULT_TOKEN, FaultConfig

PROPERTIES = "/crm/v3/properties/contacts"
SEARCH = "/crm/v3/objects/contacts/search"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def spend(hubspot, count: int, token: str = DEFAULT_TOKEN) -> list:
    return [hubspot("GET", PROPERTIES, token=token) for _ in range(count)]


@pytest.mark.parametrize(
    ("tier", "burst", "daily"),
    [
        ("free", 100, 250_000),
        ("starter", 100, 250_000),
        ("professional", 190, 625_000),
        ("enterprise", 190, 1_000_000),
        ("addon", 250, 2_000_000),
    ],
)
def test_headers_on_every_counted_response_sized_by_tier(start_emulator, clock, tier, burst, daily):
    _, hubspot = start_emulator(tier=tier, clock=clock)
    first, second = spend(hubspot, 2)
    assert first.headers["X-HubSpot-RateLimit-Max"] == str(burst)
    assert first.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert first.headers["X-HubSpot-RateLimit-Daily"] == str(daily)
    assert first.headers["X-HubSpot-RateLimit-Remaining"] == str(burst - 1)
    assert second.headers["X-HubSpot-RateLimit-Remaining"] == str(burst - 2)
    assert second.headers["X-HubSpot-RateLimit-Daily-Remaining"] == str(daily - 2)


def test_headers_also_on_counted_error_answers(start_emulator, clock):
    _, hubspot = start_emulator(clock=clock)
    reply = hubspot("POST", "/crm/v3/objects/contacts/batch/upsert", raw=b"{")
    assert reply.status == 400
    assert reply.headers["X-HubSpot-RateLimit-Remaining"] == "189"


def test_ten_second_rolling_window_429_and_recovery(start_emulator, clock):
    _, hubspot = start_emulator(tier="free", clock=clock)
    spend(hubspot, 60)
    clock.advance(5)
    assert all(r.status == 200 for r in spend(hubspot, 40))
    refused = hubspot("GET", PROPERTIES)
    assert refused.status == 429
    assert refused.body["message"] == "You have reached your ten_secondly_rolling limit."
    assert refused.body["errorType"] == "RATE_LIMIT"
    assert refused.body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert refused.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    clock.advance(5.001)  # the first 60 leave the window, the 40 later ones stay
    assert hubspot("GET", PROPERTIES).headers["X-HubSpot-RateLimit-Remaining"] == "59"


def test_window_is_per_token_and_daily_budget_is_per_portal(start_emulator, clock):
    tokens = {"app-a": frozenset({"crm.schemas.contacts.read"}), "app-b": frozenset({"crm.schemas.contacts.read"})}
    _, hubspot = start_emulator(tier="free", clock=clock, tokens=tokens)
    spend(hubspot, 100, token="app-a")
    assert hubspot("GET", PROPERTIES, token="app-a").status == 429
    other = hubspot("GET", PROPERTIES, token="app-b")
    assert other.status == 200
    assert other.headers["X-HubSpot-RateLimit-Remaining"] == "99"
    assert other.headers["X-HubSpot-RateLimit-Daily-Remaining"] == str(250_000 - 101)


def test_daily_limit_429_and_reset_the_next_day(start_emulator, clock):
    _, hubspot = start_emulator(clock=clock, daily_limit=3)
    assert [r.status for r in spend(hubspot, 3)] == [200, 200, 200]
    refused = hubspot("GET", PROPERTIES)
    assert refused.status == 429
    assert refused.body["policyName"] == "DAILY"
    assert refused.body["message"] == "You have reached your daily limit."
    clock.advance(86_400)
    assert hubspot("GET", PROPERTIES).status == 200


def test_rate_limits_can_be_switched_off(start_emulator, clock):
    _, hubspot = start_emulator(clock=clock, burst_limit=1, enforce_rate_limits=False)
    replies = spend(hubspot, 3)
    assert [r.status for r in replies] == [200, 200, 200]
    assert "X-HubSpot-RateLimit-Max" not in replies[0].headers


def test_search_has_its_own_5_per_second_limit_without_headers(start_emulator, clock):
    _, hubspot = start_emulator(clock=clock, burst_limit=2)
    replies = [hubspot("POST", SEARCH, {}) for _ in range(6)]
    assert [r.status for r in replies] == [200] * 5 + [429]
    assert replies[5].body["message"] == "You have reached your secondly limit."
    assert not any(h.startswith("X-HubSpot-RateLimit") for h in replies[0].headers)
    clock.advance(1)
    assert hubspot("POST", SEARCH, {}).status == 200
    assert hubspot("GET", PROPERTIES).headers["X-HubSpot-RateLimit-Remaining"] == "1"


def test_other_integration_consumes_part_of_the_window_and_day(start_emulator, clock):
    faults = FaultConfig(other_integration_per_window=150)
    _, hubspot = start_emulator(tier="professional", clock=clock, faults=faults)
    replies = spend(hubspot, 41)
    assert replies[0].headers["X-HubSpot-RateLimit-Remaining"] == "39"
    assert replies[0].headers["X-HubSpot-RateLimit-Daily-Remaining"] == str(625_000 - 151)
    assert [r.status for r in replies] == [200] * 40 + [429]
