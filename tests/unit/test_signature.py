import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubspot_destination.ingest.signature import AuthenticationError, Sender, SenderCredentials, authenticate, sign

BODY = b'{"profiles": []}'
OLD, NEW, S1, S2 = "old-key-0123456789", "new-key-0123456789", "signing-secret-one", "signing-secret-two"
CREDENTIALS = SenderCredentials(bearerTokens=[OLD, NEW], signingSecrets=[S1, S2])
NOW = 1_700_000_000
SIGNED_AT = datetime.fromtimestamp(NOW, tz=UTC)


def test_both_rotating_bearer_keys_are_accepted():
    for key in (OLD, NEW):
        assert authenticate({"authorization": f"Bearer {key}"}, BODY, CREDENTIALS, NOW) == Sender("bearer")


def test_wrong_bearer_key_is_refused():
    with pytest.raises(AuthenticationError):
        authenticate({"Authorization": "Bearer nope"}, BODY, CREDENTIALS, NOW)


def test_signature_over_the_raw_body_with_either_secret_is_accepted_with_its_signed_time():
    for secret in (S1, S2):
        headers = {"X-Signature": sign(secret, NOW, BODY)}
        assert authenticate(headers, BODY, CREDENTIALS, NOW + 10) == Sender("signature", SIGNED_AT)


def test_signature_of_another_body_is_refused():
    headers = {"X-Signature": sign(S1, NOW, BODY)}
    with pytest.raises(AuthenticationError, match="does not match"):
        authenticate(headers, BODY + b" ", CREDENTIALS, NOW)


def test_several_v1_values_are_allowed():
    good = sign(S2, NOW, BODY).split("v1=")[1]
    headers = {"x-signature": f"t={NOW},v1=deadbeef,v1={good}"}
    assert authenticate(headers, BODY, CREDENTIALS, NOW) == Sender("signature", SIGNED_AT)


@pytest.mark.parametrize("skew", [-301, 301])
def test_stale_signature_is_refused(skew):
    headers = {"X-Signature": sign(S1, NOW, BODY)}
    with pytest.raises(AuthenticationError, match="stale"):
        authenticate(headers, BODY, CREDENTIALS, NOW + skew)


@pytest.mark.parametrize("header", ["", "t=abc,v1=00", "v1=00", f"t={NOW}"])
def test_malformed_signature_is_refused(header):
    with pytest.raises(AuthenticationError):
        authenticate({"X-Signature": header}, BODY, CREDENTIALS, NOW)


def test_no_credentials_is_refused():
    with pytest.raises(AuthenticationError, match="missing"):
        authenticate({}, BODY, CREDENTIALS, NOW)


@pytest.mark.parametrize("header", ["t=\u00b2,v1=00", "t=" + "9" * 5000 + ",v1=00", "t=\u0661\u0662,v1=00"])
def test_non_ascii_or_huge_timestamps_are_refused_cleanly(header):
    with pytest.raises(AuthenticationError, match="malformed"):
        authenticate({"X-Signature": header}, BODY, CREDENTIALS, NOW)


@pytest.mark.parametrize("secrets", [{"bearerTokens": [""]}, {"bearerTokens": [" "]}, {"signingSecrets": ["short"]}])
def test_empty_or_short_secrets_are_refused_by_the_secret_model(secrets):
    with pytest.raises(ValueError, match="at least 16"):
        SenderCredentials.model_validate(secrets)


def test_an_empty_bearer_key_never_matches():
    with pytest.raises(AuthenticationError):
        authenticate({"Authorization": "Bearer  "}, BODY, CREDENTIALS, NOW)


def test_a_non_bearer_authorization_header_does_not_hide_a_valid_signature():
    headers = {"Authorization": "Basic Zm9vOmJhcg==", "X-Signature": sign(S1, NOW, BODY)}
    assert authenticate(headers, BODY, CREDENTIALS, NOW).scheme == "signature"


GOOD_SIGNATURE = sign(S1, NOW, BODY)


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "\ud800"},
        {"authorization": f"Bearer {OLD}\udfff"},
        {"Authorization": "Bearer \ud800" + OLD},
        {"X-Signature": "\ud800"},
        {"x-signature": f"{GOOD_SIGNATURE},v1=\udbff"},
        {"X-Signature": GOOD_SIGNATURE.replace("t=", "t\ud800=")},
        {"Authorization": "Basic \ud800", "X-Signature": GOOD_SIGNATURE},
    ],
    ids=["bare", "after-a-good-key", "in-the-key", "signature", "extra-v1", "in-a-name", "basic-next-to-a-signature"],
)
def test_a_credential_header_that_cannot_be_encoded_is_refused(headers):
    with pytest.raises(AuthenticationError, match="not valid text"):
        authenticate(headers, BODY, CREDENTIALS, NOW)


any_text = st.text(st.characters(exclude_categories=()), max_size=80)  # lone surrogates included
header_values = st.one_of(
    any_text,
    any_text.map(lambda text: f"Bearer {text}"),
    any_text.map(lambda text: f"t={NOW},v1={text}"),
    any_text.map(lambda text: f"{GOOD_SIGNATURE}{text}"),
)


@given(
    st.dictionaries(st.sampled_from(["Authorization", "authorization", "X-Signature", "x-signature"]), header_values)
)
def test_any_header_values_authenticate_or_are_refused_never_crash(headers):
    with contextlib.suppress(AuthenticationError):
        assert authenticate(headers, BODY, CREDENTIALS, NOW).scheme in ("bearer", "signature")
