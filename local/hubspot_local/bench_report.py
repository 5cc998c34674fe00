"""What `hubspot-destination bench` prints and draws: its figures, the comparison with the peer's strategy,
and the plot (`--plot FILE.png`: matplotlib, from the `plot` extra that `make bench-plot` installs)."""

import json
import math
from pathlib import Path

from hubspot_local.bench import BenchResult, compare, run_bench
from hubspot_local.emulator.ratelimit import TIERS, WINDOW_SECONDS

_ROWS = ("limit_utilization", "throttled", "contacts_per_second", "seconds")


def _row(result: BenchResult) -> dict[str, float]:
    """The comparison's figures: `throttled` is 429s ÷ requests, `seconds` the time to drain."""
    return {
        "limit_utilization": result.limit_utilization,
        "throttled": round(result.throttled_requests / max(result.hubspot_requests, 1), 4),
        "contacts_per_second": result.contacts_per_second,
        "seconds": result.seconds,
    }


def text(ours: BenchResult, peer: BenchResult | None) -> str:
    """One `key: value` per line, then with a peer both strategies' rows side by side."""
    lines = [f"{name}: {value}" for name, value in ours.as_dict().items()]
    if peer is not None:
        lines += ["", f"{'strategy':<10}" + "".join(f"{name:>22}" for name in _ROWS)]
        for label, result in (("ours", ours), ("peer", peer)):
            lines.append(f"{label:<10}" + "".join(f"{value:>22}" for value in _row(result).values()))
    return "\n".join(lines)


def as_json(ours: BenchResult, peer: BenchResult | None) -> str:
    """The `--json` object: our figures, and `peer` with the peer's when compared."""
    return json.dumps(ours.as_dict() | ({"peer": peer.as_dict()} if peer is not None else {}))


def _per_window(result: BenchResult) -> tuple[list[float], list[int], list[float]]:
    """Each second since the first request: requests counted in the 10 s up to it, and contacts written in it."""
    end = math.ceil(max((at for at, _, _ in result.timeline), default=0.0)) + 1
    counted = sorted(at for at, status, _ in result.timeline if status != 429)
    written = [0.0] * end
    for at, status, inputs in result.timeline:
        if status is not None and status < 300 and inputs:
            written[int(at)] += inputs
    seconds = list(range(end))
    windows = [sum(1 for at in counted if second - WINDOW_SECONDS < at <= second) for second in seconds]
    return [float(s) for s in seconds], windows, written


def plot(results: dict[str, BenchResult], path: Path) -> None:
    """Draw requests per 10 s against the tier's limit, and contacts written per second, for each strategy.

    Raises:
        ModuleNotFoundError: matplotlib is not installed (`make bench-plot` installs it).
    """
    import matplotlib  # an optional extra, only for --plot

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (requests_axis, contacts_axis) = pyplot.subplots(2, 1, figsize=(10, 7), sharex=True)
    first = next(iter(results.values()))
    limit = TIERS[first.tier][0]
    for label, result in results.items():
        seconds, windows, written = _per_window(result)
        requests_axis.plot(seconds, windows, label=f"{label} (utilization {result.limit_utilization})")
        contacts_axis.plot(seconds, written, label=f"{label} ({result.contacts_per_second} contacts/s overall)")
    requests_axis.axhline(limit, color="red", linestyle="--", label=f"{first.tier} limit ({limit} per 10 s)")
    requests_axis.set_ylabel("requests in the last 10 s")
    contacts_axis.set_ylabel("contacts written per second")
    contacts_axis.set_xlabel("seconds since the first HubSpot request")
    title = f"{first.profiles} profiles, {first.tier}, HubSpot answers in {first.hubspot_latency_ms:.0f} ms (median)"
    requests_axis.set_title(title)
    for axis in (requests_axis, contacts_axis):
        axis.legend(loc="lower right")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def run(
    profiles: int,
    tier: str,
    latency_ms: float,
    dynamodb: str,
    *,
    peer: bool,
    plot_to: Path | None,
    json_out: bool,
) -> int:
    """`bench`: run, print, plot; exit status 0 unless a profile was neither written nor dead-lettered (1)."""
    if plot_to is not None:
        try:
            import matplotlib  # noqa: F401 - fail before a long run, not after it
        except ImportError:
            raise RuntimeError("--plot needs matplotlib: run `make bench-plot`") from None
    if peer:
        ours, theirs = compare(profiles, tier, latency_ms, dynamodb=dynamodb, progress=not json_out)
    else:
        ours, theirs = run_bench(profiles, tier, latency_ms, dynamodb=dynamodb, progress=not json_out), None
    print(as_json(ours, theirs) if json_out else text(ours, theirs))
    if plot_to is not None:
        plot({"ours": ours, **({"peer": theirs} if theirs is not None else {})}, plot_to)
    return 0 if ours.all_settled and (theirs is None or theirs.all_settled) else 1
