"""The HubSpot client's pacing rule (no network: only the spacing arithmetic)."""

from hubspot_destination.hubspot.client import HubSpotClient, RateLimit


def client(share=2, limit=190):
    return HubSpotClient(lambda refresh=False: "t", requests_per_10s=limit, share=share)


def test_without_headers_each_client_takes_its_share_of_the_tier():
    assert client(share=2, limit=190)._spacing_s(now=100.0) == 10.0 * 2 / 190


def test_a_full_window_paces_close_to_the_tier_share_keeping_a_reserve():
    paced = client()
    paced.last_rate_limit = RateLimit(max=190, remaining=190, interval_ms=10_000)
    tier_share = 10.0 * 2 / 190
    assert tier_share < paced._spacing_s(now=100.0) < 1.1 * tier_share


def test_recent_sends_count_as_budget_that_rolls_out_of_the_window():
    paced = client()
    paced.last_rate_limit = RateLimit(max=190, remaining=100, interval_ms=10_000)
    alone = paced._spacing_s(now=100.0)
    paced._sent_at.extend(99.0 - i * 0.1 for i in range(45))  # 45 sends in the last 10 s
    assert paced._spacing_s(now=100.0) < alone
    paced._sent_at.clear()
    paced._sent_at.extend([80.0, 85.0])  # older than the window: forgotten
    assert paced._spacing_s(now=100.0) == alone


def test_another_integration_using_the_budget_slows_this_client():
    paced = client()
    paced.last_rate_limit = RateLimit(max=190, remaining=20, interval_ms=10_000)
    assert paced._spacing_s(now=100.0) > 10.0 * 2 / 190
    paced.last_rate_limit = RateLimit(max=190, remaining=0, interval_ms=10_000)
    assert paced._spacing_s(now=100.0) == 10.0 * 2 / 1  # nothing left: one request per share of the window
