import pytest

from hubspot_destination.signature import AuthenticationError, SenderCredentials, authenticate, sign

BODY = b'{"profiles": []}'
OLD, NEW, S1, S2 = "old-key-0123456789", "new-key-0123456789", "signing-secret-one", "signing-secret-two"
CREDENTIALS = SenderCredentials(bearerTokens=[OLD, NEW], signingSecrets=[S1, S2])
NOW = 1_700_000_000


def test_both_rotating_bearer_keys_are_accepted():
    for key in (OLD, NEW):
        assert authenticate({"authorization": f"Bearer {key}"}, BODY, CREDENTIALS, NOW) == "bearer"


def test_wrong_bearer_key_is_refused():
    with pytest.raises(AuthenticationError):
        authenticate({"Authorization": "Bearer nope"}, BODY, CREDENTIALS, NOW)


def test_signature_over_the_raw_body_with_either_secret_is_accepted():
    for secret in (S1, S2):
        headers = {"X-Signature": sign(secret, NOW, BODY)}
        assert authenticate(headers, BODY, CREDENTIALS, NOW + 10) == "signature"


def test_signature_of_another_body_is_refused():
    headers = {"X-Signature": sign(S1, NOW, BODY)}
    with pytest.raises(AuthenticationError, match="does not match"):
        authenticate(headers, BODY + b" ", CREDENTIALS, NOW)


def test_several_v1_values_are_allowed():
    good = sign(S2, NOW, BODY).split("v1=")[1]
    headers = {"x-signature": f"t={NOW},v1=deadbeef,v1={good}"}
    assert authenticate(headers, BODY, CREDENTIALS, NOW) == "signature"


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
    assert authenticate(headers, BODY, CREDENTIALS, NOW) == "signature"
