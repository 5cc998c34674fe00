"""HubSpot's contact search (`POST /crm/v3/objects/contacts/search`, hubspot-api.md §1.9): one page at a time,
through the client's paced requests. Only the operator tools (`verify`) search; delivery never does.
"""

import time
from collections.abc import Mapping, Sequence
from typing import Any

from hubspot_destination.hubspot.answers import parse
from hubspot_destination.hubspot.client import HubSpotClient
from hubspot_destination.hubspot.errors import HubSpotMalformedAnswer, HubSpotRateLimited
from hubspot_destination.hubspot.models import SearchAnswer
from hubspot_destination.limits import HUBSPOT_SEARCH_PAGE_MAX

# A SECONDLY 429 of the search API is sent again after 1 s times the attempt, as HubSpot's Node SDK does (§3.4).
_SECONDLY_RETRIES = 3
_SECONDLY_WAIT_S = 1.0


def search_contacts(
    client: HubSpotClient,
    filters: Sequence[Mapping[str, str]],
    *,
    properties: Sequence[str] = (),
    limit: int = HUBSPOT_SEARCH_PAGE_MAX,
    after: str | None = None,
) -> SearchAnswer:
    """One page of the contacts matching all `filters`, read through `client`
    (`POST /crm/v3/objects/contacts/search`, hubspot-api.md §1.9).

    Args:
        filters: `{"propertyName", "operator", "value"}` items, AND-ed (one filter group).
        properties: the properties each result carries (HubSpot's defaults when empty).
        limit: results per page, 1 to 200; `SearchAnswer.total` counts every page.
        after: the cursor of the page to read (`SearchAnswer.next_after` of the page before); None: the first.

    Search has a limit of its own, 5 requests per second, without rate-limit headers: pace below it. A
    `SECONDLY` 429 is waited out and sent again, up to 3 times (1 s, 2 s, 3 s).

    Raises:
        ValueError: `limit` out of range. HubSpotMalformedAnswer: not a search answer, or more results
            than `limit`. HubSpotRateLimited: still refused after the retries, or another limit.
            Otherwise as `HubSpotClient.request`.
    """
    if not 1 <= limit <= HUBSPOT_SEARCH_PAGE_MAX:
        raise ValueError(f"search takes a limit of 1 to {HUBSPOT_SEARCH_PAGE_MAX}, got {limit}")
    body: dict[str, Any] = {"filterGroups": [{"filters": [dict(f) for f in filters]}], "limit": limit}
    if properties:
        body["properties"] = list(properties)
    if after is not None:
        body["after"] = after
    status, answer = _search(client, body)
    page = parse(SearchAnswer, status, answer)
    if len(page.results) > limit:
        raise HubSpotMalformedAnswer(status, message=f"SearchAnswer: {len(page.results)} results, {limit} asked")
    return page


def _search(client: HubSpotClient, body: dict[str, Any]) -> tuple[int, object]:
    """Send a search, waiting out up to `_SECONDLY_RETRIES` SECONDLY 429s; raises as `search_contacts`."""
    attempt = 0
    while True:
        try:
            return client.request("POST", "/crm/v3/objects/contacts/search", body)
        except HubSpotRateLimited as error:
            attempt += 1
            if not error.secondly or attempt > _SECONDLY_RETRIES:
                raise
            time.sleep(_SECONDLY_WAIT_S * attempt)
