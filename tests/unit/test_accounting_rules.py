"""Where each profile of a local run went (`hubspot_local.accounting`): every accepted profile is counted once,
as written, dead-lettered, still queued or lost, and a contact that exists is not enough to be written."""

import json

from hubspot_destination.observability import email_hash
from hubspot_local.accounting import account, dropped_attributes, sent_profiles


def test_each_profile_of_an_email_is_settled_on_its_own():
    # a@ sent three times: one dead-lettered, one still queued, one written; b@ never written; c@ written.
    accounting = account(
        sent=6,
        accepted=["a@x.com", "a@x.com", "a@x.com", "b@x.com", "c@x.com"],
        dead_lettered=["a@x.com"],
        queued=["a@x.com"],
        written={"a@x.com", "c@x.com"},
    )
    assert (accounting.sent, accounting.refused, accounting.accepted) == (6, 1, 5)
    assert accounting.written == ["a@x.com", "c@x.com"]
    assert (accounting.dead_lettered, accounting.queued, accounting.lost) == (["a@x.com"], ["a@x.com"], ["b@x.com"])
    assert not accounting.all_written
    assert not accounting.all_settled
    assert accounting.as_dict() == {
        "sent": 6,
        "refused": 1,
        "accepted": 5,
        "written": 2,
        "dead_lettered": 1,
        "still_queued": 1,
        "lost": 1,
    }


def test_nothing_written_is_never_all_written():
    nothing_landed = account(sent=2, accepted=["a@x.com", "b@x.com"], dead_lettered=[], queued=[], written=set())
    assert nothing_landed.lost == ["a@x.com", "b@x.com"]
    assert not nothing_landed.all_written
    waiting = account(sent=1, accepted=["a@x.com"], dead_lettered=[], queued=["a@x.com"], written={"a@x.com"})
    assert (waiting.written, waiting.queued) == ([], ["a@x.com"])  # the contact exists, the profile is not written
    assert not waiting.all_settled


def test_dead_letters_settle_the_profiles_but_are_not_written():
    accounting = account(
        sent=2, accepted=["a@x.com", None], dead_lettered=[None, "a@x.com"], queued=[], written={"a@x.com"}
    )
    assert accounting.all_settled
    assert not accounting.all_written
    assert accounting.dead_lettered == ["a@x.com", None]


def request(*emails) -> bytes:
    return json.dumps({"profiles": [{"identityMap": {"Email": [{"id": email}]}} for email in emails]}).encode()


def test_sent_profiles_say_what_ingest_did_to_each():
    body = request(" Ada@Example.COM ", "ok@example.com", "eve@example.con")
    answer = {
        "status": 202,
        "body": {"accepted": 2, "rejected": [{"index": 2, "reason": "INVALID_EMAIL", "detail": "no such TLD"}]},
    }
    ada, ok, eve = sent_profiles(body, answer)
    assert (ada.email, ada.normalised_from) == ("ada@example.com", " Ada@Example.COM ")
    assert (ok.email, ok.normalised_from, ok.refusal) == ("ok@example.com", None, None)
    assert (eve.email, eve.given) == (None, ["eve@example.con"])
    assert eve.refusal == {"reason": "INVALID_EMAIL", "detail": "no such TLD"}


def test_a_refused_request_refuses_every_profile():
    answer = {"status": 401, "body": {"error": "UNAUTHORIZED", "detail": "bad signature"}}
    profiles = sent_profiles(request("a@example.com", "b@example.com"), answer)
    assert [(p.email, p.refusal["reason"]) for p in profiles] == [(None, "UNAUTHORIZED"), (None, "UNAUTHORIZED")]
    assert sent_profiles(b"not json", answer) == []
    assert sent_profiles(b'{"profiles": 3}', answer) == []


def test_dropped_attributes_are_read_from_the_deliver_log_each_once():
    def line(contact, name, code):
        return json.dumps(
            {"level": "WARNING", "message": "attribute dropped", "contact": contact, "property": name, "code": code}
        )

    ada = email_hash("ada@example.com")
    log = "\n".join(
        [
            line(ada, "favoriteColor", "PROPERTY_DOESNT_EXIST"),
            '{"_aws": {"CloudWatchMetrics": []}, "AttributesDropped": [1]}',
            "not json {",
            line(ada, "favoriteColor", "PROPERTY_DOESNT_EXIST"),  # the same drop on a retry
            line("0123456789abcdef", "createdate", "READ_ONLY_VALUE"),
            json.dumps({"message": "batch settled"}),
        ]
    )
    assert dropped_attributes(log, ["ada@example.com"]) == [
        {"email": "ada@example.com", "property": "favoriteColor", "code": "PROPERTY_DOESNT_EXIST"},
        {"email": "sha256:0123456789abcdef", "property": "createdate", "code": "READ_ONLY_VALUE"},
    ]
