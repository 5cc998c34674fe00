"""`hubspot-destination`: local tools (replay, serve, emulator, bench, chaos) and operator commands (dead letters).

hubspot-destination --version
hubspot-destination replay FILE [--json] [--limit N] [--hubspot-url URL] [--portal FILE] [--faults JSON|@FILE]
    [--time-limit S] [--verbose]
hubspot-destination serve [--port N] [--hubspot-url URL] [--portal FILE] [--verbose]
hubspot-destination emulator [--port N] [--token T] [--portal FILE]
hubspot-destination dead-letters (--stack-name NAME | --dlq-url URL) [--endpoint-url URL] [--region R] [--json]
    [--limit N] [--show-emails]
hubspot-destination redrive (--stack-name NAME | --dlq-url URL --queue-url URL) [--endpoint-url URL] [--region R]
    [--reason CODE ...] [--dry-run] [--json]
hubspot-destination bench [--profiles N] [--tier T] [--latency-ms MS] [--dynamodb dynalite|moto] [--compare]
    [--plot FILE.png] [--json]
hubspot-destination chaos [--profiles N] [--seed S] [--json]
hubspot-destination verify [--hubspot-url URL] [--input FILE|-] [--audience-group NAME] [--json]

A FILE given as `-` is read from standard input (one FILE at most: `replay -`, `--portal -`, `--faults @-`).

Exit status: 0 when the command did what it checks (`replay`, `serve`: every accepted profile written; `bench`:
every profile written or dead-lettered; `chaos`: nothing lost or wrong; `verify`: no contact differs from what
--input implies), 1 when it did not, 2 on an error (one line on stderr: a bad argument or file, an unreachable or
refusing HubSpot or AWS, ...), 130 when interrupted (`serve` ends on Ctrl-C or SIGTERM as it should: 0 or 1).
"""

import argparse
import contextlib
import importlib.metadata
import json
import math
import os
import signal
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from pydantic import ValidationError

from hubspot_destination.domain.reasons import DEAD_LETTER_REASONS
from hubspot_destination.hubspot.errors import HubSpotError
from hubspot_destination.ingest.models import excerpt
from hubspot_local import bench, bench_report, chaos, serve
from hubspot_local.emulator import PRODUCT_SCOPES, FaultConfig, HubSpotEmulator, load_portal, parse_portal
from hubspot_local.emulator.ratelimit import TIERS
from hubspot_local.event_source_mapping import QueueDepth
from hubspot_local.pipeline import (
    AUDIENCE_PROPERTY_GROUP,
    EMULATOR_TOKEN,
    REPLAY_TIME_LIMIT_S,
    ReplayResult,
    replay,
)
from hubspot_operations import dead_letters, verify

PROG = "hubspot-destination"
EMULATOR_PORT = 8765  # `emulator`'s default port, and so `verify`'s default URL
STDIN = "-"  # a FILE read from standard input
REPLAY_LIST_LIMIT = 20  # `replay --limit`'s default: rows shown per list of the summary


def _print_rows(rows: Iterable[str], limit: int) -> None:
    """Print at most `limit` rows, then `  ... and K more` for the others."""
    rows = list(rows)
    for row in rows[:limit]:
        print(row)
    if len(rows) > limit:
        print(f"  ... and {len(rows) - limit} more")


def _print_summary(result: ReplayResult, limit: int) -> None:
    """Human-readable output of `replay` (what `make demo` shows); each list shows at most `limit` rows."""
    body = result.ingest["body"]
    print(f"Ingest: HTTP {result.ingest['status']}", end="")
    if isinstance(body, dict) and "accepted" in body:
        print(f", {body['accepted']} profile(s) accepted, {len(body['rejected'])} rejected")
    else:
        print(f": {json.dumps(body)}")
    _print_rows(
        (
            f"  rejected profile #{rejection['index']} "
            f"({', '.join(json.dumps(email) for email in rejection['emails']) or 'no email'}): "
            f"{rejection['reason']} ({rejection['detail']})"
            for rejection in result.rejected
        ),
        limit,
    )
    _print_rows(
        (
            f"  email normalised: {json.dumps(change['given'])} -> {change['email']}"
            for change in result.normalised_emails
        ),
        limit,
    )
    delivery = result.delivery
    print(
        f"Delivery: {delivery['invocations']} invocation(s), {delivery['hubspot_requests']} HubSpot request(s), "
        f"{delivery['seconds']} s"
    )
    properties = result.hubspot["properties"]
    labels = {p["name"]: p.get("label", p["name"]) for p in properties}
    audience_properties = [p for p in properties if p.get("groupName") == AUDIENCE_PROPERTY_GROUP]
    print(f"\nHubSpot audience properties ({len(audience_properties)}, group {AUDIENCE_PROPERTY_GROUP}):")
    _print_rows(
        (
            f"  {prop['name']}  label={prop.get('label')!r}  {prop.get('type')}/{prop.get('fieldType')}"
            for prop in audience_properties
        ),
        limit,
    )
    contacts = result.hubspot["contacts"]
    print(f"\nHubSpot contacts ({len(contacts)}):")
    hidden = {"email", "hs_object_id", "createdate", "lastmodifieddate"}

    def contact_row(contact: dict) -> str:
        lines = [f"  #{contact['id']}  {contact['email']}"]
        for name, value in sorted(contact["properties"].items()):
            if name not in hidden and value not in (None, ""):
                shown = f"{labels[name]} ({name})" if name in labels else name
                lines.append(f"      {shown}: {value}")
        return "\n".join(lines)

    _print_rows(map(contact_row, contacts), limit)
    print(f"\nAttributes dropped ({len(result.dropped_attributes)}):")
    _print_rows(
        (f"  {dropped['email']}: {dropped['property']} ({dropped['code']})" for dropped in result.dropped_attributes),
        limit,
    )
    print(f"Dead letters ({len(result.dead_letters)}):")
    _print_rows(
        (f"  {letter['email']}: {letter['reason']} ({letter['detail']})" for letter in result.dead_letters), limit
    )
    if result.still_queued:
        print(f"Still queued when delivery stopped ({len(result.still_queued)}):")
        _print_rows(
            (
                f"  {waiting['email']}: attempt {waiting['attempt']}, due in {waiting['due_in_s']} s"
                for waiting in result.still_queued
            ),
            limit,
        )
    if result.accounting.lost:
        print(f"Lost: neither written, dead-lettered nor queued ({len(result.accounting.lost)}):")
        _print_rows((f"  {email}" for email in result.accounting.lost), limit)
    print(f"\nProfiles: {result.accounting}")
    if result.ok:
        print("OK: every accepted profile was written.")
    elif result.ingest["status"] != 202:
        print("NOT OK: ingest did not take the request.")
    else:
        print("NOT OK: not every accepted profile was written.")


def _read_file(name: str) -> bytes:
    """A FILE's bytes; standard input's for `-`.

    Raises:
        OSError: the file cannot be read.
    """
    return sys.stdin.buffer.read() if name == STDIN else Path(name).read_bytes()


def _check_one_stdin(args: argparse.Namespace) -> None:
    """Raise ValueError when more than one FILE of the command is standard input (it can be read once)."""
    files = [getattr(args, "file", None), getattr(args, "portal", None)]
    faults = getattr(args, "faults", None)
    files.append(faults[1:] if faults and faults.startswith("@") else None)
    if files.count(STDIN) > 1:
        raise ValueError("only one FILE can be - (standard input)")


def _port(value: str) -> int:
    """`--port`: 0 (a free port) to 65535."""
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r}: a port is 0 to 65535 (0: a free port)")
    return int(value)


def _latency_ms(value: str) -> float:
    """`--latency-ms`: a number of ms from 0 (answers at once) to 60,000, as the emulator's `Latency` takes."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not 0 <= number <= 60_000:  # NaN and infinities fail the comparison too
        raise argparse.ArgumentTypeError(f"{value!r}: a median answer time is 0 to 60000 ms (0: none)")
    return number


def _portal(name: str | None) -> dict | None:
    """`--portal FILE` (or `-`), read and checked (`load_portal`); None without it."""
    if name is None:
        return None
    return parse_portal(_read_file(name), "standard input") if name == STDIN else load_portal(name)


def _hubspot_url(value: str | None) -> str | None:
    """`--hubspot-url`, checked as `verify.checked_url` checks it (None without it)."""
    return None if value is None else verify.checked_url(value)


def _faults(value: str | None) -> FaultConfig | None:
    """`--faults`: FaultConfig JSON, inline or `@FILE` (`@-`: standard input; fields in docs/emulator.md)."""
    if not value:
        return None
    text = _read_file(value[1:]).decode("utf-8") if value.startswith("@") else value
    try:
        return FaultConfig.model_validate_json(text)
    except ValidationError as error:
        raise ValueError(f"--faults: {error.errors(include_url=False)[0]['msg']}") from None


def _replay(args: argparse.Namespace) -> int:
    """Exit status 0 when ingest answered 202 and every profile it accepted was written, else 1 (a smoke test)."""
    if not 0 < args.time_limit < math.inf:  # also refuses nan
        raise ValueError("--time-limit must be a number of seconds more than 0")
    if args.limit < 0:
        raise ValueError("--limit must be at least 0")
    hubspot_url = _hubspot_url(args.hubspot_url)
    portal = _portal(args.portal)
    faults = _faults(args.faults)

    def progress(elapsed_s: float, depth: QueueDepth) -> None:
        print(
            f"{PROG} replay: {elapsed_s:.0f} s, still on the queue: {depth}; stopping at {args.time_limit:g} s",
            file=sys.stderr,
            flush=True,
        )

    result = replay(
        _read_file(args.file),
        "standard input" if args.file == STDIN else args.file,
        hubspot_url=hubspot_url,
        portal=portal,
        echo=sys.stderr if args.verbose else None,
        faults=faults,
        time_limit_s=args.time_limit,
        progress=progress,
    )
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        _print_summary(result, args.limit)
    return 0 if result.ok else 1


def _interrupt(_signum: int, _frame: object) -> None:
    """SIGINT and SIGTERM, while `serve` runs: as Python's own Ctrl-C (also when the shell that started the
    command in the background made it ignore SIGINT)."""
    raise KeyboardInterrupt


def _until_interrupted() -> None:
    """Block until SIGINT (Ctrl-C) or SIGTERM."""
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()


def _serve(args: argparse.Namespace) -> int:
    """Exit status 0 when every profile accepted while it ran was written, else 1 (reported on stderr)."""
    hubspot_url = _hubspot_url(args.hubspot_url)
    portal = _portal(args.portal)
    stdout = sys.stdout  # the JSON line's; the handlers' output takes stdout's place while it serves

    def ready(info: dict) -> None:
        print(json.dumps(info), file=stdout, flush=True)

    previous = {signum: signal.signal(signum, _interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        with contextlib.ExitStack() as stack:
            output = sys.stderr if args.verbose else stack.enter_context(open(os.devnull, "w"))
            result = serve.serve(
                ready, _until_interrupted, port=args.port, hubspot_url=hubspot_url, portal=portal, handler_output=output
            )
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    report = [
        f"{PROG} serve: stopped after {result.requests} request(s) and {result.invocations} deliver invocation(s); "
        f"left on the queue: {result.left_on_queue}",
        f"Profiles: {result.accounting}",
        "OK: every accepted profile was written." if result.ok else "NOT OK: not every accepted profile was written.",
    ]
    print("\n".join(report), file=sys.stderr)
    return 0 if result.ok else 1


def _emulator(args: argparse.Namespace) -> int:
    portal = _portal(args.portal)
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
        # What a dead letter carries is anyone's text: control characters are shown escaped, never sent to the terminal.
        email = excerpt(letter.email or f"sha256:{letter.email_sha256 or '-'}", 320)
        reason = excerpt(letter.reason or "-")
        print(f"  {letter.message_id}  {letter.sent_at}  receives={letter.receive_count}  {reason}  {email}")
        if letter.detail:
            print(f"      {excerpt(letter.detail, 1000)}")
    counts = dead_letters.count_by_reason(letters)
    print("By reason: " + (", ".join(f"{excerpt(reason)} {n}" for reason, n in counts.items()) or "none"))
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


def _verify(args: argparse.Namespace) -> int:
    """Exit status 0 when every contact holds what --input implies (always, without --input), else 1.

    Without --hubspot-url: the emulator as `emulator` starts it. The token is HUBSPOT_ACCESS_TOKEN, or for
    a loopback URL (an emulator) the emulator's default token when it is unset.
    """
    url = verify.checked_url(args.hubspot_url or f"http://127.0.0.1:{EMULATOR_PORT}")
    token = os.environ.get("HUBSPOT_ACCESS_TOKEN") or (
        EMULATOR_TOKEN if urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1") else ""
    )
    if not token:
        raise ValueError(f"set HUBSPOT_ACCESS_TOKEN to read the portal at {url}")
    raw_body = verify.read_input(args.input) if args.input is not None else None
    shown = not args.json and sys.stderr.isatty()  # a display for a person watching, never in a log

    def progress(text: str) -> None:
        print(f"\r{PROG} verify: {text}\x1b[K", end="", file=sys.stderr, flush=True)

    try:
        report = verify.verify(
            url, token, group=args.audience_group, raw_body=raw_body, progress=progress if shown else None
        )
    finally:
        if shown:
            print("\r\x1b[K", end="", file=sys.stderr, flush=True)
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.text(url, args.audience_group))
    return 0 if report.ok else 1


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


VERBOSE_HELP = (
    "show on stderr what the functions write: their JSON log lines (level POWERTOOLS_LOG_LEVEL, INFO when unset) "
    "and their metrics (CloudWatch embedded metric format lines)"
)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (README, "Local tools")."""
    parser = _Parser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"{PROG} {importlib.metadata.version(PROG)}")
    commands = parser.add_subparsers(dest="command", required=True)

    replay_cmd = commands.add_parser("replay", help="run a request body or API Gateway event through the pipeline")
    replay_cmd.add_argument("file", help="an AEP request body (JSON) or an API Gateway proxy event; - for stdin")
    replay_cmd.add_argument("--json", action="store_true", help="print one JSON object (whole, whatever --limit)")
    replay_cmd.add_argument(
        "--limit",
        type=int,
        default=REPLAY_LIST_LIMIT,
        metavar="N",
        help=f"show at most N rows of each list of the summary (default {REPLAY_LIST_LIMIT}; 0: counts only)",
    )
    replay_cmd.add_argument("--hubspot-url", help="write to this HubSpot instead (token from HUBSPOT_ACCESS_TOKEN)")
    replay_cmd.add_argument("--portal", help="pre-load the emulator's portal from this JSON file (- for stdin)")
    replay_cmd.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    replay_cmd.add_argument("--faults", help="emulator fault injection: FaultConfig JSON or @FILE (docs/emulator.md)")
    replay_cmd.add_argument(
        "--time-limit",
        type=float,
        default=REPLAY_TIME_LIMIT_S,
        metavar="S",
        help=f"stop delivering after S seconds and report what is still queued (default {REPLAY_TIME_LIMIT_S:g})",
    )
    replay_cmd.set_defaults(run=_replay)

    serve_cmd = commands.add_parser(
        "serve", help="serve the webhook on 127.0.0.1, the whole pipeline behind it, until Ctrl-C or SIGTERM"
    )
    serve_cmd.add_argument("--port", type=_port, default=0, help="port on 127.0.0.1 (default 0: a free port)")
    serve_cmd.add_argument("--hubspot-url", help="write to this HubSpot instead (token from HUBSPOT_ACCESS_TOKEN)")
    serve_cmd.add_argument("--portal", help="pre-load the emulator's portal from this JSON file (- for stdin)")
    serve_cmd.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    serve_cmd.set_defaults(run=_serve)

    emulator_cmd = commands.add_parser("emulator", help="run the HubSpot emulator alone")
    emulator_cmd.add_argument(
        "--port", type=_port, default=EMULATOR_PORT, help=f"port on 127.0.0.1 (default {EMULATOR_PORT})"
    )
    emulator_cmd.add_argument("--token", default=EMULATOR_TOKEN, help=f"accepted token (default {EMULATOR_TOKEN})")
    emulator_cmd.add_argument("--portal", help="pre-load the portal from this JSON file (- for stdin)")
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
        choices=[str(reason) for reason in (*DEAD_LETTER_REASONS, dead_letters.SQS_REDRIVE_REASON)],
        metavar="CODE",
        help="only dead letters with these reason codes: "
        + ", ".join(str(reason) for reason in (*DEAD_LETTER_REASONS, dead_letters.SQS_REDRIVE_REASON)),
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
        type=_latency_ms,
        default=bench.HUBSPOT_LATENCY_MS,
        help="HubSpot's median answer time for a 100-input upsert, in ms (an assumption; default 400; 0: none)",
    )
    bench_cmd.add_argument(
        "--dynamodb",
        default="dynalite",
        choices=["dynalite", "moto"],
        help="DynamoDB: dynalite, a process of its own (make bench installs it; default), or moto's server",
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

    verify_cmd = commands.add_parser(
        "verify", help="count each audience's contacts in HubSpot; with --input, check what a request file implies"
    )
    verify_cmd.add_argument(
        "--hubspot-url",
        help=f"the portal (default http://127.0.0.1:{EMULATOR_PORT}, the emulator; token from HUBSPOT_ACCESS_TOKEN)",
    )
    verify_cmd.add_argument(
        "--input", metavar="FILE", help="a request body or API Gateway event, as replay reads; - for stdin"
    )
    verify_cmd.add_argument(
        "--audience-group",
        default=verify.AUDIENCE_GROUP,
        help=f"the audience property group (default {verify.AUDIENCE_GROUP})",
    )
    verify_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    verify_cmd.set_defaults(run=_verify)
    return parser


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `hubspot-destination` console script; returns the exit status (module doc).

    Every error ends the command with one line on stderr, never a traceback.
    """
    args = build_parser().parse_args(argv)
    try:
        _check_one_stdin(args)
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
