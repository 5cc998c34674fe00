"""The HubSpot client's search (`POST /crm/v3/objects/contacts/search`, hubspot-api.md §1.9) against the
emulator over loopback: paging with `after`, the search API's own 5-per-second limit (a `SECONDLY` 429 is waited
out, a bounded number of times), and answers that are not HubSpot's."""

import threading
import time

import pytest

from hubspot_destination.hubspot.client import HubSpotClient
from hubspot_destination.hubspot.errors import HubSpotMalformedAnswer, HubSpotRateLimited
from hubspot_destination.hubspot.search import search_contacts
from hubspot_local.emulator import DEFAULT_TOKEN, FaultConfig

SEARCH = "/crm/v3/objects/contacts/search"
LISBON = [{"propertyName": "city", "operator": "EQ", "value": "Lisbon"}]
PORTAL = {
    "contacts": [{"properties": {"email": f"c{i}@example.com", "city": "Lisbon"}} for i in range(450)]
    + [{"properties": {"email": f"p{i}@example.com", "city": "Porto"}} for i in range(7)]
}


def client(emulator) -> HubSpotClient:
    return HubSpotClient(lambda refresh=False: DEFAULT_TOKEN, base_url=emulator.base_url)


def searches(emulator) -> list[int | None]:
    """The status of each search the emulator answered, in order."""
    return [r["status"] for r in emulator.snapshot()["requests"] if r["path"] == SEARCH]


def test_pages_follow_after_until_the_last_one_and_each_contact_comes_once(start_emulator):
    emulator, _ = start_emulator(portal=PORTAL)
    hubspot, pages, after = client(emulator), [], None
    while True:
        page = search_contacts(hubspot, LISBON, properties=["email"], limit=200, after=after)
        pages.append(page)
        after = page.next_after
        if after is None:
            break
    assert [len(page.results) for page in pages] == [200, 200, 50]
    assert {page.total for page in pages} == {450}
    emails = [record.properties["email"] for page in pages for record in page.results]
    assert sorted(emails) == sorted(f"c{i}@example.com" for i in range(450))


def test_limit_is_one_to_two_hundred_and_nothing_is_sent_otherwise(start_emulator):
    emulator, _ = start_emulator()
    for limit in (0, 201):
        with pytest.raises(ValueError, match="limit of 1 to 200"):
            search_contacts(client(emulator), LISBON, limit=limit)
    assert searches(emulator) == []


def test_a_secondly_429_is_waited_out_and_the_search_sent_again(start_emulator):
    now = [0.0]  # the emulator's clock stands still until the test moves it: no race with real time
    emulator, hubspot = start_emulator(portal=PORTAL, clock=lambda: now[0])
    for _ in range(5):  # the second's five searches, used up
        assert hubspot("POST", SEARCH, {"filterGroups": [{"filters": LISBON}], "limit": 1}).status == 200

    def next_second_after_the_429() -> None:
        while 429 not in searches(emulator):
            time.sleep(0.01)
        now[0] = 2.0

    opener = threading.Thread(target=next_second_after_the_429, daemon=True)
    opener.start()
    page = search_contacts(client(emulator), LISBON, limit=1)
    opener.join()
    assert page.total == 450
    assert searches(emulator)[:6] == [200] * 5 + [429]
    assert searches(emulator)[-1] == 200


def test_a_secondly_429_that_persists_is_raised_after_three_retries(start_emulator):
    emulator, hubspot = start_emulator(clock=lambda: 0.0)
    for _ in range(5):
        hubspot("POST", SEARCH, {"limit": 1})
    with pytest.raises(HubSpotRateLimited) as refused:
        search_contacts(client(emulator), LISBON, limit=1)
    assert refused.value.secondly
    assert searches(emulator)[5:] == [429] * 4


def test_another_429_is_not_search_s_and_is_raised_at_once(start_emulator):
    emulator, _ = start_emulator(faults=FaultConfig(burst_429_rate=1.0, burst_429_length=1))
    with pytest.raises(HubSpotRateLimited) as refused:
        search_contacts(client(emulator), LISBON, limit=1)
    assert (refused.value.policy_name, refused.value.secondly) == ("TEN_SECONDLY_ROLLING", False)
    assert searches(emulator) == [429]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"total": "many", "results": []}', "SearchAnswer: total"),
        ('{"total": 2, "results": [{"id": "1"}, {"id": "2"}]}', "2 results, 1 asked"),
        ('{"results": []}', "SearchAnswer: total"),
        ("[]", "SearchAnswer"),
        ("not json", "not UTF-8 JSON"),
    ],
)
def test_an_answer_that_is_not_a_search_answer_is_malformed(start_emulator, text, problem):
    faults = FaultConfig(malformed={"rate": 1.0, "paths": ["search"], "bodies": [{"text": text}]})
    emulator, _ = start_emulator(faults=faults)
    with pytest.raises(HubSpotMalformedAnswer, match=problem):
        search_contacts(client(emulator), LISBON, limit=1)
