import pytest

from hubspot_destination.domain.identity import (
    InvalidEmailError,
    contact_email,
    emails_in_identity_map,
    normalize_email,
    validate_hubspot_email,
)


def test_normalisation_trims_and_lowercases_but_keeps_plus_tags():
    assert normalize_email("  Ana.Garcia+VIP@Example.COM \n") == "ana.garcia+vip@example.com"


@pytest.mark.parametrize("email", ["x@test.design", "user1@example.com", "a+b@sub.example.co.uk"])
def test_valid_addresses_pass(email):
    assert validate_hubspot_email(email) == email


@pytest.mark.parametrize(
    "email",
    [
        "user2@example.con",  # B4: a mistyped top-level domain
        "x@yahoo.comtttt",  # HubSpot's own example of a rejected address
        '"quoted"@example.com',  # quoted local parts are refused
        "no-at-sign.example.com",
        "two@@example.com",
        "x@localhost",
    ],
)
def test_addresses_hubspot_rejects_are_rejected(email):
    with pytest.raises(InvalidEmailError):
        validate_hubspot_email(email)


def test_email_namespace_is_matched_case_insensitively_and_deduplicated():
    identity_map = {
        "Email": [{"id": "A@X.com"}],
        "email": [{"id": "a@x.com"}, {"id": "b@x.com"}],
        "ecid": [{"id": "123"}],
    }
    assert emails_in_identity_map(identity_map) == ["a@x.com", "b@x.com"]


def test_first_valid_email_keys_the_contact():
    assert contact_email({"email": [{"id": "bad@example.con"}, {"id": "good@example.com"}]}) == "good@example.com"


def test_profile_without_email_is_refused_with_a_reason():
    with pytest.raises(InvalidEmailError, match="no email identity"):
        contact_email({"ecid": [{"id": "123"}]})
