import pytest

from hubspot_destination.signature import AuthenticationError, SenderCredentials, authenticate, sign

BODY = b'{"profiles": []}'
CREDENTIALS = SenderCredentials(bearerTokens=["old-key", "new-key"], signingSecrets=["s1", "s2"])
NOW = 1_700_000_000


def test_both_rotating_bearer_keys_are_accepted():
    for key in ("old-key", "new-key"):
        assert authenticate({"authorization": f"Bearer {key}"}, BODY, CREDENTIALS, NOW) == "bearer"


def test_wrong_bearer_key_is_refused():
    with pytest.raises(AuthenticationError):
        authenticate({"Authorization": "Bearer nope"}, BODY, CREDENTIALS, NOW)


def test_signature_over_the_raw_body_with_either_secret_is_accepted():
    for secret in ("s1", "s2"):
        headers = {"X-Signature": sign(secret, NOW, BODY)}
        assert authenticate(headers, BODY, CREDENTIALS, NOW + 10) == "signature"


def test_signature_of_another_body_is_refused():
    headers = {"X-Signature": sign("s1", NOW, BODY)}
    with pytest.raises(AuthenticationError, match="does not match"):
        authenticate(headers, BODY + b" ", CREDENTIALS, NOW)


def test_several_v1_values_are_allowed():
    good = sign("s2", NOW, BODY).split("v1=")[1]
    headers = {"x-signature": f"t={NOW},v1=deadbeef,v1={good}"}
    assert authenticate(headers, BODY, CREDENTIALS, NOW) == "signature"


@pytest.mark.parametrize("skew", [-301, 301])
def test_stale_signature_is_refused(skew):
    headers = {"X-Signature": sign("s1", NOW, BODY)}
    with pytest.raises(AuthenticationError, match="stale"):
        authenticate(headers, BODY, CREDENTIALS, NOW + skew)


@pytest.mark.parametrize("header", ["", "t=abc,v1=00", "v1=00", f"t={NOW}"])
def test_malformed_signature_is_refused(header):
    with pytest.raises(AuthenticationError):
        authenticate({"X-Signature": header}, BODY, CREDENTIALS, NOW)


def test_no_credentials_is_refused():
    with pytest.raises(AuthenticationError, match="missing"):
        authenticate({}, BODY, CREDENTIALS, NOW)
