"""AWS stand-ins the bench runs as processes of their own, as the real services are: SQS and Secrets Manager
are moto's server (`moto_server.py`; DynamoDB too with `--dynamodb moto`), DynamoDB is dynalite
(https://github.com/architect/dynalite, DynamoDB's API on LevelDB, here in memory), installed from
`local/bench/package.json` by `make bench`, started by `local/bench/dynalite-transactions.js`. Each is stopped
when the run ends, however it ends; the moto server also stops by itself when the process that started it dies
(it watches its stdin).

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
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BENCH_TOOLS = Path(__file__).resolve().parents[1] / "bench"
DYNALITE = BENCH_TOOLS / "node_modules" / ".bin" / "dynalite"  # what `make bench` installs
DYNALITE_WITH_TRANSACTIONS = BENCH_TOOLS / "dynalite-transactions.js"
_START_S = 10.0  # how long dynalite may take to listen
_MOTO_START_S = 60.0  # how long moto's server may take to import and listen (seconds of imports on a busy machine)


@dataclass(frozen=True)
class StandIn:
    """A stand-in running as a process of its own: its endpoint `url` and process id `pid`."""

    url: str
    pid: int

    def cpu_s(self) -> float | None:
        """Its CPU seconds so far (user and system, all its threads), or None where `/proc` cannot tell."""
        return process_cpu_s(self.pid)


def process_cpu_s(pid: int) -> float | None:
    """The CPU seconds (user + system) process `pid` has used so far, from `/proc/<pid>/stat` (Linux); None
    elsewhere or once it has gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14 and 15


def _free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def dynalite() -> Iterator[StandIn]:
    """Run dynalite, with `TransactWriteItems` (`dynalite-transactions.js`), on loopback for the duration.

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
        yield StandIn(f"http://127.0.0.1:{port}", process.pid)
    finally:
        _stop(process)


@contextlib.contextmanager
def moto_server() -> Iterator[StandIn]:
    """Run moto's server (`moto_server.py`: SQS, Secrets Manager, DynamoDB) on loopback for the duration.

    Raises:
        RuntimeError: it exited, or did not say its port within 60 s.
    """
    command = [sys.executable, "-m", "hubspot_local.moto_server"]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # noqa: S603
    try:
        port = _read_port(process)
        yield StandIn(f"http://127.0.0.1:{port}", process.pid)
    finally:
        _stop(process)


def _read_port(process: subprocess.Popen) -> int:
    """The port the moto server prints on its first line (it prints nothing else)."""
    assert process.stdout is not None
    deadline, line = time.monotonic() + _MOTO_START_S, b""
    while not line.endswith(b"\n"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"moto's server did not listen within {_MOTO_START_S:.0f} s")
        if select.select([process.stdout], [], [], 0.1)[0]:
            read = os.read(process.stdout.fileno(), 64)
            if not read:
                process.wait()
                raise RuntimeError(f"moto's server exited with status {process.returncode} before listening")
            line += read
    return int(line)


def _stop(process: subprocess.Popen) -> None:
    """Stop a stand-in: close its stdin (the moto server exits then), SIGTERM, SIGKILL after 5 s; reap it."""
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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
