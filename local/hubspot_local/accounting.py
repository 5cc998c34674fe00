"""Where every profile of a local run went: refused at ingest, written to HubSpot, dead-lettered, still on the
queue, or none of these (lost: what the tools must never hide).

Profiles are matched by the email that keys their contact (`identity.contact_email`, the rule ingest applies),
counting each email as often as it was sent, so several updates of one contact are each accounted for.
"""

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hubspot_destination.domain.identity import EMAIL_NAMESPACE, contact_email, normalize_email
from hubspot_destination.ingest.body import parse_json
from hubspot_destination.observability import email_hash


@dataclass(frozen=True)
class SentProfile:
    """One profile of a request, as ingest judged it.

    `index` in the request's `profiles`; `given`: its email identities as the request spelled them; `email`:
    the email keying its contact, None when ingest refused it; `refusal`: `{"reason", "detail"}` of the
    refusal (a per-profile rejection, or the error answer that refused the whole request), else None.
    """

    index: int
    given: list[str]
    email: str | None
    refusal: dict | None = None

    @property
    def normalised_from(self) -> str | None:
        """The identity as given, when ingest keyed the contact by a different spelling of it (trimmed,
        lower-cased, NFC); else None."""
        if self.email is None:
            return None
        spelled = next((given for given in self.given if normalize_email(given) == self.email), self.email)
        return spelled if spelled != self.email else None


def _given_emails(profile: object) -> list[str]:
    identity_map = profile.get("identityMap") if isinstance(profile, dict) else None
    if not isinstance(identity_map, dict):
        return []
    return [
        identity["id"]
        for namespace, identities in identity_map.items()
        if namespace.lower() == EMAIL_NAMESPACE and isinstance(identities, list)
        for identity in identities
        if isinstance(identity, dict) and isinstance(identity.get("id"), str)
    ]


def sent_profiles(raw_body: bytes, answer: Mapping) -> list[SentProfile]:
    """The profiles of one ingest request with what ingest did to each.

    Args:
        raw_body: the request body (an AEP profile export).
        answer: the ingest handler's answer, `{"status", "body"}` (`LocalPipeline.ingest`).

    Returns:
        One `SentProfile` per entry of `profiles`, in order; [] when the body has no list of profiles.
    """
    try:
        profiles = parse_json(raw_body).get("profiles")  # as ingest reads it: around what Python cannot read
    except (ValueError, AttributeError):
        return []
    if not isinstance(profiles, list):
        return []
    body = answer["body"] if isinstance(answer["body"], dict) else {}
    if answer["status"] != 202:
        refusal = {"reason": body.get("error", f"HTTP {answer['status']}"), "detail": body.get("detail", "")}
        return [SentProfile(i, _given_emails(p), None, refusal) for i, p in enumerate(profiles)]
    rejected = {r["index"]: {"reason": r["reason"], "detail": r["detail"]} for r in body.get("rejected", [])}
    return [
        SentProfile(i, _given_emails(p), None, rejected[i])
        if i in rejected
        else SentProfile(i, _given_emails(p), contact_email(p["identityMap"]))
        for i, p in enumerate(profiles)
    ]


@dataclass(frozen=True)
class Accounting:
    """Every profile sent, by where it ended up: `sent` = `refused` + `written` + `dead_lettered` + `queued` +
    `lost` (the last four are emails, one per profile; a dead letter whose body is not a queue message has
    None).

    `written`: accepted, neither dead-lettered nor on the queue, and its contact was written to HubSpot during
    the run; `lost`: accepted and none of written, dead-lettered or queued.
    """

    sent: int
    refused: int
    written: list[str]
    dead_lettered: list[str | None]
    queued: list[str]
    lost: list[str]

    @property
    def accepted(self) -> int:
        """Profiles ingest accepted (or that were put on the queue directly)."""
        return self.sent - self.refused

    @property
    def all_written(self) -> bool:
        """Every accepted profile was written."""
        return len(self.written) == self.accepted

    @property
    def all_settled(self) -> bool:
        """Every accepted profile was written or dead-lettered: none is lost, none still on the queue."""
        return not self.lost and not self.queued

    def as_dict(self) -> dict:
        """`{"sent", "refused", "accepted", "written", "dead_lettered", "still_queued", "lost"}`, as counts."""
        return {
            "sent": self.sent,
            "refused": self.refused,
            "accepted": self.accepted,
            "written": len(self.written),
            "dead_lettered": len(self.dead_lettered),
            "still_queued": len(self.queued),
            "lost": len(self.lost),
        }

    def __str__(self) -> str:
        counts = self.as_dict()
        return (
            f"{counts['sent']} sent, {counts['refused']} refused at ingest, {counts['written']} written, "
            f"{counts['dead_lettered']} dead-lettered, {counts['still_queued']} still queued, {counts['lost']} lost"
        )


def account(
    sent: int,
    accepted: Iterable[str | None],
    dead_lettered: Iterable[str | None],
    queued: Iterable[str],
    written: set[str],
) -> Accounting:
    """Settle every accepted profile: dead-lettered if a dead letter carries its email, else queued if a
    message on the queue does, else written if its contact was written during the run, else lost.

    Args:
        sent: profiles sent in all (refused ones included).
        accepted: the email of each accepted profile (None for a message that is not a queue message).
        dead_lettered: the email of each profile on the dead-letter queue (None for a malformed message).
        queued: the email of each profile on the activation queue, whatever the message's state.
        written: the emails whose contacts were written to HubSpot during the run.
    """
    accepted = list(accepted)
    letters, waiting = Counter(dead_lettered), Counter(queued)
    result: dict[str, list] = {"written": [], "dead_lettered": [], "queued": [], "lost": []}
    for email in accepted:
        if letters[email]:
            letters[email] -= 1
            result["dead_lettered"].append(email)
        elif waiting[email]:
            waiting[email] -= 1
            result["queued"].append(email)
        elif email in written:
            result["written"].append(email)
        else:
            result["lost"].append(email)
    return Accounting(sent=sent, refused=sent - len(accepted), **result)


def dropped_attributes(handler_log: str, emails: Iterable[str]) -> list[dict]:
    """The attributes the deliver function left out, from its `attribute dropped` log lines (structured JSON,
    the contact as `email_hash`), each once, in the order first logged.

    Returns:
        `[{"email", "property", "code"}]`; `email` is `sha256:<prefix>` for a contact not among `emails`.
    """
    by_hash = {email_hash(email): email for email in emails}
    dropped: dict[tuple, None] = {}
    for line in handler_log.splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("message") == "attribute dropped":
            contact = record.get("contact")
            dropped[(by_hash.get(contact, f"sha256:{contact}"), record.get("property"), record.get("code"))] = None
    return [{"email": email, "property": name, "code": code} for email, name, code in dropped]
