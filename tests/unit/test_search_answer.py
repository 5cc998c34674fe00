"""The search API's answer as the adapter reads it (hubspot-api.md §1.9), and which 429 is search's own (§3.3)."""

import pytest
from pydantic import ValidationError

from hubspot_destination.hubspot.errors import SECONDLY_LIMIT_MESSAGE, HubSpotRateLimited
from hubspot_destination.hubspot.models import ErrorEnvelope, SearchAnswer

RESULT = {"id": "1001", "properties": {"email": "ana@example.com"}}


def test_a_page_gives_the_total_its_results_and_the_cursor_of_the_next_page():
    page = SearchAnswer.model_validate({"total": 450, "results": [RESULT], "paging": {"next": {"after": "1"}}})
    assert (page.total, [r.id for r in page.results], page.next_after) == (450, ["1001"], "1")


@pytest.mark.parametrize("paging", [{}, {"paging": {}}, {"paging": {"next": None}}])
def test_the_last_page_has_no_cursor(paging):
    assert SearchAnswer.model_validate({"total": 1, "results": [RESULT], **paging}).next_after is None


MALFORMED = {
    "total missing": {"results": []},
    "total as text": {"total": "450", "results": []},
    "total a boolean": {"total": True, "results": []},
    "total a fraction": {"total": 1.5, "results": []},
    "total negative": {"total": -1, "results": []},
    "total beyond any portal": {"total": 10**10, "results": []},
    "results missing": {"total": 0},
    "results not a list": {"total": 0, "results": {}},
    "a result without an id": {"total": 1, "results": [{"properties": {}}]},
    "a property value that is not text": {"total": 1, "results": [{"id": "1", "properties": {"email": ["a"]}}]},
    "more results than a page holds": {"total": 201, "results": [RESULT] * 201},
    "more results than the total": {"total": 0, "results": [RESULT]},
    "an empty cursor": {"total": 5, "results": [RESULT], "paging": {"next": {"after": ""}}},
    "a cursor that is not text": {"total": 5, "results": [RESULT], "paging": {"next": {"after": 1}}},
    "a huge cursor": {"total": 5, "results": [RESULT], "paging": {"next": {"after": "1" * 1001}}},
    "a next page after an empty one": {"total": 5, "results": [], "paging": {"next": {"after": "0"}}},
    "not an object": [],
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_an_answer_of_another_shape_is_refused(body):
    with pytest.raises(ValidationError):
        SearchAnswer.model_validate(body)


@pytest.mark.parametrize(
    ("envelope", "secondly"),
    [
        ({"message": SECONDLY_LIMIT_MESSAGE, "errorType": "RATE_LIMIT"}, True),  # as captured: no policyName
        ({"message": "You have reached your secondly limit.", "policyName": "SECONDLY"}, True),
        ({"message": "anything", "policyName": "SECONDLY"}, True),
        ({"message": "You have reached your ten_secondly_rolling limit.", "policyName": "TEN_SECONDLY_ROLLING"}, False),
        ({"message": SECONDLY_LIMIT_MESSAGE, "policyName": "DAILY"}, False),
        ({"message": "You have reached your daily limit.", "policyName": "DAILY"}, False),
        ({"message": "Too many requests"}, False),
    ],
)
def test_only_the_search_apis_own_limit_is_secondly(envelope, secondly):
    assert HubSpotRateLimited(429, ErrorEnvelope.model_validate(envelope)).secondly is secondly
