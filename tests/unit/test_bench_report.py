"""What `bench` prints and plots from its figures (`hubspot_local.bench_report`), without running a bench."""

import json

from hubspot_local.bench import BenchResult
from hubspot_local.bench_report import _per_window, as_json, text


def result(**figures) -> BenchResult:
    defaults = dict.fromkeys(set(BenchResult.__dataclass_fields__) - {"timeline", "processes", "tier"}, 0)
    return BenchResult(**(defaults | {"tier": "free"} | figures))


def test_the_comparison_rows_give_429s_as_a_share_of_requests():
    ours = result(limit_utilization=0.93, hubspot_requests=200, throttled_requests=0, contacts_per_second=950.0)
    peer = result(limit_utilization=0.99, hubspot_requests=250, throttled_requests=50, contacts_per_second=700.0)
    rows = text(ours, peer).splitlines()[-2:]
    assert rows[0].split() == ["ours", "0.93", "0.0", "950.0", "0"]
    assert rows[1].split() == ["peer", "0.99", "0.2", "700.0", "0"]
    printed = json.loads(as_json(ours, peer))
    assert printed["peer"] == peer.as_dict()
    assert "timeline" not in printed
    assert "peer" not in json.loads(as_json(ours, None))


def test_requests_are_counted_per_rolling_10_s_and_contacts_per_second():
    timeline = [(0.0, 200, 100), (0.5, 200, 100), (3.2, 429, 100), (10.5, 207, 50), (12.0, None, 100)]
    seconds, windows, written = _per_window(result(timeline=timeline))
    assert seconds[:3] == [0.0, 1.0, 2.0]
    # The 429 is not counted against the limit; a request leaves the window 10 s after it was counted.
    assert windows[0] == 1  # at 0.0 exactly
    assert windows[9] == 2
    assert windows[10] == 1  # 0.0 has rolled out, 0.5 not yet
    assert windows[11] == 1  # 0.5 gone, 10.5 in
    assert windows[12] == 2  # the reset (no status) reached the emulator and was counted
    assert (written[0], written[3], written[10], written[12]) == (200, 0, 50, 0)
