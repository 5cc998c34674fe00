"""`hubspot-destination`: replay an activation through the local pipeline, or run the HubSpot emulator.

hubspot-destination replay FILE [--json] [--hubspot-url URL] [--portal FILE] [--faults JSON|@FILE]
    [--time-limit S] [--verbose]
hubspot-destination emulator [--port N] [--token T] [--portal FILE]
hubspot-destination dead-letters (--stack-name NAME | --dlq-url URL) [--endpoint-url URL] [--region R] [--json]
    [--limit N] [--show-emails]
hubspot-destination redrive (--stack-name NAME | --dlq-url URL --queue-url URL) [--endpoint-url URL] [--region R]
    [--reason CODE ...] [--dry-run] [--json]
hubspot-destination bench [--profiles N] [--tier T] [--latency-ms MS] [--dynamodb dynalite|moto] [--compare]
    [--plot FILE.png] [--json]
hubspot-destination chaos [--profiles N] [--seed S] [--json]

Exit status: 0 when the command did what it checks (`replay`: every accepted profile written; `bench`: every
profile written or dead-lettered; `chaos`: nothing lost or wrong), 1 when it did not, 2 on an error (one line
on stderr: a bad argument or file, an unreachable or refusing HubSpot or AWS, ...), 130 when interrupted.
"""

import argparse
import json
import os
import sys
import threading
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from pydantic import ValidationError

from hubspot_destination.domain.reasons import DEAD_LETTER_REASONS
from hubspot_destination.hubspot.errors import HubSpotError
from hubspot_local import bench, bench_report, chaos
from hubspot_local.emulator import PRODUCT_SCOPES, FaultConfig, HubSpotEmulator, load_portal
from hubspot_local.emulator.ratelimit import TIERS
from hubspot_local.event_source_mapping import QueueDepth
from hubspot_local.pipeline import (
    AUDIENCE_PROPERTY_GROUP,
    EMULATOR_TOKEN,
    REPLAY_TIME_LIMIT_S,
    ReplayResult,
    replay,
)
from hubspot_operations import dead_letters

PROG = "hubspot-destination"


def _print_summary(result: ReplayResult) -> None:
    """Human-readable output of `replay` (what `make demo` shows)."""
    body = result.ingest["body"]
    print(f"Ingest: HTTP {result.ingest['status']}", end="")
    if isinstance(body, dict) and "accepted" in body:
        print(f", {body['accepted']} profile(s) accepted, {len(body['rejected'])} rejected")
    else:
        print(f": {json.dumps(body)}")
    for rejection in result.rejected:
        emails = ", ".join(json.dumps(email) for email in rejection["emails"]) or "no email"
        print(f"  rejected profile #{rejection['index']} ({emails}): {rejection['reason']} ({rejection['detail']})")
    for change in result.normalised_emails:
        print(f"  email normalised: {json.dumps(change['given'])} -> {change['email']}")
    delivery = result.delivery
    print(
        f"Delivery: {delivery['invocations']} invocation(s), {delivery['hubspot_requests']} HubSpot request(s), "
        f"{delivery['seconds']} s"
    )
    properties = result.hubspot["properties"]
    labels = {p["name"]: p.get("label", p["name"]) for p in properties}
    audience_properties = [p for p in properties if p.get("groupName") == AUDIENCE_PROPERTY_GROUP]
    print(f"\nHubSpot audience properties ({len(audience_properties)}, group {AUDIENCE_PROPERTY_GROUP}):")
    for prop in audience_properties:
        print(f"  {prop['name']}  label={prop.get('label')!r}  {prop.get('type')}/{prop.get('fieldType')}")
    contacts = result.hubspot["contacts"]
    print(f"\nHubSpot contacts ({len(contacts)}):")
    hidden = {"email", "hs_object_id", "createdate", "lastmodifieddate"}
    for contact in contacts:
        print(f"  #{contact['id']}  {contact['email']}")
        for name, value in sorted(contact["properties"].items()):
            if name not in hidden and value not in (None, ""):
                shown = f"{labels[name]} ({name})" if name in labels else name
                print(f"      {shown}: {value}")
    print(f"\nAttributes dropped ({len(result.dropped_attributes)}):")
    for dropped in result.dropped_attributes:
        print(f"  {dropped['email']}: {dropped['property']} ({dropped['code']})")
    print(f"Dead letters ({len(result.dead_letters)}):")
    for letter in result.dead_letters:
        print(f"  {letter['email']}: {letter['reason']} ({letter['detail']})")
    if result.still_queued:
        print(f"Still queued when delivery stopped ({len(result.still_queued)}):")
        for waiting in result.still_queued:
            print(f"  {waiting['email']}: attempt {waiting['attempt']}, due in {waiting['due_in_s']} s")
    if result.accounting.lost:
        print(f"Lost: neither written, dead-lettered nor queued ({len(result.accounting.lost)}):")
        for email in result.accounting.lost:
            print(f"  {email}")
    print(f"\nProfiles: {result.accounting}")
    if result.ok:
        print("OK: every accepted profile was written.")
    elif result.ingest["status"] != 202:
        print("NOT OK: ingest did not take the request.")
    else:
        print("NOT OK: not every accepted profile was written.")


def _faults(value: str | None) -> FaultConfig | None:
    """`--faults`: FaultConfig JSON, inline or `@FILE` (fields in docs/emulator.md)."""
    if not value:
        return None
    text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    try:
        return FaultConfig.model_validate_json(text)
    except ValidationError as error:
        raise ValueError(f"--faults: {error.errors(include_url=False)[0]['msg']}") from None


def _replay(args: argparse.Namespace) -> int:
    """Exit status 0 when ingest answered 202 and every profile it accepted was written, else 1 (a smoke test)."""
    if args.time_limit <= 0:
        raise ValueError("--time-limit must be more than 0 seconds")
    url = urlsplit(args.hubspot_url) if args.hubspot_url is not None else None
    if url is not None and (url.scheme not in ("http", "https") or not url.netloc):
        raise ValueError(f"--hubspot-url {args.hubspot_url!r} is not an http(s) URL (e.g. https://api.hubapi.com)")
    portal = load_portal(args.portal) if args.portal else None

    def progress(elapsed_s: float, depth: QueueDepth) -> None:
        print(
            f"{PROG} replay: {elapsed_s:.0f} s, still on the queue: {depth}; stopping at {args.time_limit:g} s",
            file=sys.stderr,
            flush=True,
        )

    result = replay(
        Path(args.file),
        hubspot_url=args.hubspot_url,
        portal=portal,
        echo=sys.stderr if args.verbose else None,
        faults=_faults(args.faults),
        time_limit_s=args.time_limit,
        progress=progress,
    )
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        _print_summary(result)
    return 0 if result.ok else 1


def _emulator(args: argparse.Namespace) -> int:
    portal = load_portal(args.portal) if args.portal else None
    faults = _faults(args.faults)
    emulator = HubSpotEmulator(
        tokens={args.token: PRODUCT_SCOPES}, portal=portal, port=args.port, tier=args.tier, faults=faults
    )
    url = emulator.start()
    print(f"HubSpot emulator on {url} (token {args.token!r}, scopes: {', '.join(sorted(PRODUCT_SCOPES))})")
    print(f"Tier {args.tier}; faults: {faults.model_dump_json(exclude_defaults=True) if faults else 'none'}")
    print(f"State: {url}/__emulator/state   Stop with Ctrl-C.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


def _queues(args: argparse.Namespace) -> tuple[object, str, str | None]:
    """The SQS client, the dead-letter queue URL and the activation queue URL (`None` when not named), from
    `--stack-name` or from `--dlq-url` and `--queue-url`."""
    queue_url = getattr(args, "queue_url", None)
    if args.stack_name:
        if queue_url:
            raise ValueError("--queue-url goes with --dlq-url, not with --stack-name")
        sqs, cloudformation = dead_letters.clients(args.endpoint_url, args.region, "sqs", "cloudformation")
        urls = dead_letters.stack_queue_urls(cloudformation, args.stack_name)
        return sqs, urls.dead_letter_queue_url, urls.queue_url
    (sqs,) = dead_letters.clients(args.endpoint_url, args.region, "sqs")
    return sqs, args.dlq_url, queue_url


def _dead_letters(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise ValueError("--limit must be at least 1")
    sqs, dlq_url, _ = _queues(args)
    letters = dead_letters.list_dead_letters(sqs, dlq_url, limit=args.limit, show_emails=args.show_emails)
    if args.json:
        print(json.dumps(dead_letters.listing_as_dict(letters), indent=2))
        return 0
    print(f"Dead letters on {dlq_url}: {len(letters)} listed (left on the queue)")
    for letter in letters:
        email = letter.email or f"sha256:{letter.email_sha256 or '-'}"
        print(f"  {letter.message_id}  {letter.sent_at}  receives={letter.receive_count}  {letter.reason}  {email}")
        if letter.detail:
            print(f"      {letter.detail}")
    counts = dead_letters.count_by_reason(letters)
    print("By reason: " + (", ".join(f"{reason} {n}" for reason, n in counts.items()) or "none"))
    return 0


def _redrive(args: argparse.Namespace) -> int:
    sqs, dlq_url, queue_url = _queues(args)
    if queue_url is None:
        raise ValueError("--dlq-url needs --queue-url (the queue to send the dead letters back to)")
    reasons = frozenset(args.reason) if args.reason else None
    result = dead_letters.redrive(sqs, dlq_url, queue_url, reasons=reasons, dry_run=args.dry_run)
    if args.json:
        print(json.dumps({"moved": result.moved, "by_reason": result.by_reason, "dry_run": result.dry_run}))
        return 0
    verb = "Would move" if result.dry_run else "Moved"
    counts = ", ".join(f"{reason} {n}" for reason, n in result.by_reason.items())
    print(f"{verb} {result.moved} dead letter(s) to {queue_url}" + (f": {counts}" if counts else ""))
    return 0


def _bench(args: argparse.Namespace) -> int:
    """Exit status 0 whatever the figures, unless a profile was neither written nor dead-lettered (1)."""
    plot_to = Path(args.plot) if args.plot else None
    return bench_report.run(
        args.profiles, args.tier, args.latency_ms, args.dynamodb, peer=args.compare, plot_to=plot_to, json_out=args.json
    )


def _chaos(args: argparse.Namespace) -> int:
    result = chaos.run_chaos(profiles=args.profiles, seed=args.seed)
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        for name, value in result.as_dict().items():
            if name != "examples":
                print(f"{name}: {value}")
        for example in result.examples:
            print(f"  {example}")
    return 0 if result.ok else 1


def _add_queue_arguments(command: argparse.ArgumentParser, *, need_source: bool) -> None:
    """`--stack-name` or explicit queue URLs, plus where AWS is (`--endpoint-url`, `--region`)."""
    where = command.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack-name", help="read the queue URLs from this CloudFormation stack's outputs")
    where.add_argument("--dlq-url", help="the dead-letter queue URL")
    if need_source:
        command.add_argument("--queue-url", help="the activation queue URL (with --dlq-url)")
    command.add_argument("--endpoint-url", help="AWS endpoint for SQS and CloudFormation (e.g. a local moto server)")
    command.add_argument("--region", help="AWS region (default: the configured one)")
    command.add_argument("--json", action="store_true", help="print one JSON object")


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line, like every other error of the command (`--help` shows
    the usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (README, "Local tools")."""
    parser = _Parser(prog=PROG, description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    replay_cmd = commands.add_parser("replay", help="run a request body or API Gateway event through the pipeline")
    replay_cmd.add_argument("file", help="an AEP request body (JSON) or an API Gateway proxy event")
    replay_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    replay_cmd.add_argument("--hubspot-url", help="write to this HubSpot instead (token from HUBSPOT_ACCESS_TOKEN)")
    replay_cmd.add_argument("--portal", help="pre-load the emulator's portal from this JSON file")
    replay_cmd.add_argument("--verbose", action="store_true", help="show the handlers' logs and metrics on stderr")
    replay_cmd.add_argument("--faults", help="emulator fault injection: FaultConfig JSON or @FILE (docs/emulator.md)")
    replay_cmd.add_argument(
        "--time-limit",
        type=float,
        default=REPLAY_TIME_LIMIT_S,
        metavar="S",
        help=f"stop delivering after S seconds and report what is still queued (default {REPLAY_TIME_LIMIT_S:g})",
    )
    replay_cmd.set_defaults(run=_replay)

    emulator_cmd = commands.add_parser("emulator", help="run the HubSpot emulator alone")
    emulator_cmd.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765)")
    emulator_cmd.add_argument("--token", default=EMULATOR_TOKEN, help=f"accepted token (default {EMULATOR_TOKEN})")
    emulator_cmd.add_argument("--portal", help="pre-load the portal from this JSON file")
    emulator_cmd.add_argument(
        "--tier", default="professional", choices=list(TIERS), help="rate limits (default professional)"
    )
    emulator_cmd.add_argument("--faults", help="fault injection: FaultConfig JSON or @FILE (docs/emulator.md)")
    emulator_cmd.set_defaults(run=_emulator)

    dead_letters_cmd = commands.add_parser("dead-letters", help="list dead letters (they stay on the queue)")
    _add_queue_arguments(dead_letters_cmd, need_source=False)
    dead_letters_cmd.add_argument("--limit", type=int, default=1000, help="list at most N (default 1000)")
    dead_letters_cmd.add_argument("--show-emails", action="store_true", help="show raw emails (personal data)")
    dead_letters_cmd.set_defaults(run=_dead_letters)

    redrive_cmd = commands.add_parser("redrive", help="send dead letters back to the activation queue")
    _add_queue_arguments(redrive_cmd, need_source=True)
    redrive_cmd.add_argument(
        "--reason",
        nargs="+",
        type=str.upper,
        choices=[*DEAD_LETTER_REASONS, dead_letters.SQS_REDRIVE_REASON],
        metavar="CODE",
        help="only dead letters with these reason codes: " + ", ".join(DEAD_LETTER_REASONS),
    )
    redrive_cmd.add_argument("--dry-run", action="store_true", help="count what would move, move nothing")
    redrive_cmd.set_defaults(run=_redrive)

    bench_cmd = commands.add_parser("bench", help="throughput of the local pipeline at a tier's rate limit")
    bench_cmd.add_argument("--profiles", type=int, default=20_000, help="profiles to send (default 20000)")
    bench_cmd.add_argument(
        "--tier", default="professional", choices=list(TIERS), help="HubSpot tier (default professional)"
    )
    bench_cmd.add_argument(
        "--latency-ms",
        type=float,
        default=bench.HUBSPOT_LATENCY_MS,
        help="HubSpot's median answer time for a 100-input upsert, in ms (an assumption; default 400; 0: none)",
    )
    bench_cmd.add_argument(
        "--dynamodb",
        default="dynalite",
        choices=["dynalite", "moto"],
        help="DynamoDB: dynalite, a process of its own (make bench installs it; default), or moto in process",
    )
    bench_cmd.add_argument("--compare", action="store_true", help="also run a peer's strategy (no pacing)")
    bench_cmd.add_argument("--plot", metavar="FILE.png", help="draw requests per 10 s and contacts/s (make bench-plot)")
    bench_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    bench_cmd.set_defaults(run=_bench)

    chaos_cmd = commands.add_parser(
        "chaos", help="the local pipeline under faults; exit 1 if anything is lost or wrong"
    )
    chaos_cmd.add_argument("--profiles", type=int, default=10_000, help="profiles to send (default 10000)")
    chaos_cmd.add_argument("--seed", type=int, default=1, help="seed of the input and of every fault (default 1)")
    chaos_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    chaos_cmd.set_defaults(run=_chaos)
    return parser


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `hubspot-destination` console script; returns the exit status (module doc).

    Every error ends the command with one line on stderr, never a traceback.
    """
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python from failing to flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError, HubSpotError, RuntimeError) as error:
        print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except Exception as error:  # a bug: still one line, with what it was
        print(f"{PROG}: internal error: {type(error).__name__}: {_one_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
