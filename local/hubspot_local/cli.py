"""`hubspot-destination`: replay an activation through the local pipeline, or run the HubSpot emulator.

hubspot-destination replay FILE [--json] [--hubspot-url URL] [--portal FILE]
hubspot-destination emulator [--port N] [--token T] [--portal FILE]
"""

import argparse
import io
import json
import sys
import threading
from pathlib import Path

from hubspot_local.emulator import PRODUCT_SCOPES, HubSpotEmulator, load_portal
from hubspot_local.pipeline import EMULATOR_TOKEN, ReplayResult, replay


def _print_summary(result: ReplayResult) -> None:
    """Human-readable output of `replay` (what `make demo` shows)."""
    body = result.ingest["body"]
    print(f"Ingest: HTTP {result.ingest['status']}", end="")
    if isinstance(body, dict) and "accepted" in body:
        print(f", {body['accepted']} profile(s) accepted, {len(body['rejected'])} rejected")
        for rejection in body["rejected"]:
            print(f"  rejected profile #{rejection['index']}: {rejection['reason']} ({rejection['detail']})")
    else:
        print(f": {json.dumps(body)}")
    delivery = result.delivery
    print(f"Delivery: {delivery['invocations']} invocation(s), {delivery['hubspot_requests']} HubSpot request(s)")
    properties = result.hubspot["properties"]
    labels = {p["name"]: p.get("label", p["name"]) for p in properties}
    print(f"\nHubSpot audience properties ({len(properties)}):")
    for prop in properties:
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
    print(f"\nDead letters ({len(result.dead_letters)}):")
    for letter in result.dead_letters:
        print(f"  {letter['email']}: {letter['reason']} ({letter['detail']})")


def _replay(args: argparse.Namespace) -> int:
    portal = load_portal(args.portal) if args.portal else None
    output = sys.stderr if args.verbose else io.StringIO()
    result = replay(Path(args.file), hubspot_url=args.hubspot_url, portal=portal, handler_output=output)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        _print_summary(result)
    return 0


def _emulator(args: argparse.Namespace) -> int:
    portal = load_portal(args.portal) if args.portal else None
    emulator = HubSpotEmulator(tokens={args.token: PRODUCT_SCOPES}, portal=portal, port=args.port)
    url = emulator.start()
    print(f"HubSpot emulator on {url} (token {args.token!r}, scopes: {', '.join(sorted(PRODUCT_SCOPES))})")
    print(f"State: {url}/__emulator/state   Stop with Ctrl-C.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (DESIGN.md, CLI contract)."""
    parser = argparse.ArgumentParser(prog="hubspot-destination", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    replay_cmd = commands.add_parser("replay", help="run a request body or API Gateway event through the pipeline")
    replay_cmd.add_argument("file", help="an AEP request body (JSON) or an API Gateway proxy event")
    replay_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    replay_cmd.add_argument("--hubspot-url", help="write to this HubSpot instead (token from HUBSPOT_ACCESS_TOKEN)")
    replay_cmd.add_argument("--portal", help="pre-load the emulator's portal from this JSON file")
    replay_cmd.add_argument("--verbose", action="store_true", help="show the handlers' logs and metrics on stderr")
    replay_cmd.set_defaults(run=_replay)

    emulator_cmd = commands.add_parser("emulator", help="run the HubSpot emulator alone")
    emulator_cmd.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765)")
    emulator_cmd.add_argument("--token", default=EMULATOR_TOKEN, help=f"accepted token (default {EMULATOR_TOKEN})")
    emulator_cmd.add_argument("--portal", help="pre-load the portal from this JSON file")
    emulator_cmd.set_defaults(run=_emulator)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `hubspot-destination` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (OSError, ValueError) as error:
        print(f"hubspot-destination: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
