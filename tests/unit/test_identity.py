import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubspot_destination.domain.identity import (
    InvalidEmailError,
    contact_email,
    emails_in_identity_map,
    normalize_email,
    validate_hubspot_email,
    validate_hubspot_email_fully,
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


ATEXT = "abcxyzABCXYZ0189!#$%&'*+/=?^_`{|}~-"
LABELS = [
    "example", "com", "co", "uk", "design", "EXAMPLE", "Com", "test", "invalid", "onion", "arpa", "localhost",
    "comtttt", "con", "a" * 63, "b" * 64, "-a", "a-", "", "123", "ex_ample", "xn--bcher-kva", "xn--", "XN--fiqs8s",
    "bücher", "ß", "中国", " ", "@", "(c)", "[1.2.3.4]",
]  # fmt: skip
locals_ = st.one_of(
    st.text(alphabet=ATEXT + ".", min_size=0, max_size=70),
    st.lists(st.text(alphabet=ATEXT, max_size=4), min_size=1, max_size=5).map(".".join),  # empty atoms: dots
    st.text(alphabet=ATEXT + '." @()<>,;:\\é中\t', min_size=0, max_size=12),
    st.integers(min_value=1, max_value=240).map(lambda n: "u" * n),  # around the 254-octet limit
)
domains = st.one_of(
    st.sampled_from(["example.com", "sub.example.co.uk", "test.design", "EXAMPLE.COM", "a.io"]),  # passing ones
    st.lists(st.sampled_from(LABELS), min_size=1, max_size=6).map(".".join),
)


def decided_alike(domain: str, local: str) -> None:
    """The shortcut and the full check decide alike, the domain seen before or not: the first address may
    fill the cache of passing domains, the second then uses it."""
    for email in (f"first@{domain}", f"{local}@{domain}"):
        try:
            expected = validate_hubspot_email_fully(email)
        except InvalidEmailError:
            expected = None
        try:
            got = validate_hubspot_email(email)
        except InvalidEmailError:
            got = None
        assert got == expected, email


@settings(max_examples=3000, deadline=None)
@given(local=locals_, domain=domains, slack=st.integers(min_value=-3, max_value=3))
def test_the_shortcut_for_a_domain_seen_before_decides_as_the_full_check_does(local, domain, slack):
    decided_alike(domain, local)
    decided_alike(domain, "u" * max(1, 254 - 1 - len(domain) + slack))  # at the 254-octet limit


IDNA_LABEL = "xn--j50iaaaaaaaaaaaaaa"  # U+20000 fifteen times: 22 octets as IDNA, 60 in UTF-8


@pytest.mark.parametrize(
    ("local", "domain"),
    [
        ("u" * 186, "a" * 63 + ".com"),  # 254 octets: valid
        ("u" * 187, "a" * 63 + ".com"),  # 255: too long
        ("u" * 181, f"{IDNA_LABEL}.{IDNA_LABEL}.{IDNA_LABEL}.com"),  # 254 as written, 368 in Unicode: too long
    ],
)
def test_the_shortcut_keeps_the_length_limit_of_every_form_of_the_address(local, domain):
    decided_alike(domain, local)
