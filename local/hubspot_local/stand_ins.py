"""AWS stand-ins the bench runs as processes of their own, as the real services are: DynamoDB is dynalite
(https://github.com/architect/dynalite, DynamoDB's API on LevelDB, here in memory), installed from
`local/bench/package.json` by `make bench`.

dynalite answers every call the contact versions table makes (`aws/dynamodb.py`): consistent `BatchGetItem`,
conditional `PutItem`, `BatchWriteItem`. It takes `ReturnValuesOnConditionCheckFailure` but returns no item
with the refusal; the product then counts the contact as leased by another invocation, which is right unless
an earlier attempt of the same write landed and its answer was lost (not on loopback). It has no
`UpdateTimeToLive`: the table is created without TTL (nothing expires during a bench anyway).
"""

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

DYNALITE = Path(__file__).resolve().parents[1] / "bench" / "node_modules" / ".bin" / "dynalite"
_START_S = 10.0  # how long dynalite may take to listen


def _free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def dynalite() -> Iterator[str]:
    """Run dynalite on loopback for the duration; yields its endpoint URL.

    Raises:
        FileNotFoundError: dynalite (or Node.js) is not installed (`make bench` installs it).
        RuntimeError: it did not listen within 10 s.
    """
    if not DYNALITE.is_file() or shutil.which("node") is None:
        raise FileNotFoundError(f"dynalite is not installed at {DYNALITE}: run `make bench` (needs Node.js and npm)")
    port = _free_port()
    # Tables are usable at once (dynalite waits 500 ms by default, as DynamoDB's CREATING state).
    command = [str(DYNALITE), "--port", str(port), "--host", "127.0.0.1", "--createTableMs", "0"]
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
