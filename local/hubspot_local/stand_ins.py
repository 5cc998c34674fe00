"""AWS stand-ins the bench runs as processes of their own, as the real services are: DynamoDB is dynalite
(https://github.com/architect/dynalite, DynamoDB's API on LevelDB, here in memory), installed from
`local/bench/package.json` by `make bench`, started by `local/bench/dynalite-transactions.js`.

dynalite answers most calls the contact versions table makes (`aws/dynamodb.py`): consistent `BatchGetItem`,
conditional `PutItem`, `BatchWriteItem`; it has no `TransactWriteItems`, which the leases are written with.
`dynalite-transactions.js` starts dynalite in Node.js and answers `TransactWriteItems` itself, on dynalite's
own store and with its own validation and condition checks (`Put` actions only, the items locked while the
transaction runs; its header says what else it leaves out). A cancelled transaction's reasons carry the item
(`ReturnValuesOnConditionCheckFailure`), so a lease whose first attempt landed is recognised as ours; a plain
`PutItem` refused by dynalite carries none. dynalite has no `UpdateTimeToLive`: the table is created without
TTL (nothing expires during a bench anyway).
"""

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

BENCH_TOOLS = Path(__file__).resolve().parents[1] / "bench"
DYNALITE = BENCH_TOOLS / "node_modules" / ".bin" / "dynalite"  # what `make bench` installs
DYNALITE_WITH_TRANSACTIONS = BENCH_TOOLS / "dynalite-transactions.js"
_START_S = 10.0  # how long dynalite may take to listen


def _free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def dynalite() -> Iterator[str]:
    """Run dynalite, with `TransactWriteItems` (`dynalite-transactions.js`), on loopback for the duration;
    yields its endpoint URL.

    Raises:
        FileNotFoundError: dynalite (or Node.js) is not installed (`make bench` installs it).
        RuntimeError: it did not listen within 10 s.
    """
    node = shutil.which("node")
    if not DYNALITE.is_file() or node is None:
        raise FileNotFoundError(f"dynalite is not installed at {DYNALITE}: run `make bench` (needs Node.js and npm)")
    port = _free_port()
    # Tables are usable at once (dynalite waits 500 ms by default, as DynamoDB's CREATING state).
    options = ["--port", str(port), "--host", "127.0.0.1", "--createTableMs", "0"]
    command = [node, str(DYNALITE_WITH_TRANSACTIONS), *options]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603
    try:
        _wait_for(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def _wait_for(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + _START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace")[-500:] if process.stderr else ""
            raise RuntimeError(f"dynalite exited with status {process.returncode}: {error}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"dynalite did not listen on port {port} within {_START_S:.0f} s")
