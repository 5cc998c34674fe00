"""moto's server as a process of its own, for `bench`: SQS and Secrets Manager (and DynamoDB with `--dynamodb
moto`) served over HTTP on loopback, as the real services are, so that their work runs outside the functions'
interpreters. The functions reach it through botocore's service endpoints (`AWS_ENDPOINT_URL_SQS`, ...).

`python -m hubspot_local.moto_server` listens on a free loopback port and prints it on stdout (one line),
then serves until its stdin closes (the process that started it stopped, or died: it never outlives it) or
it gets SIGTERM. What it adds to moto's own server (`moto.server`):

- one request at a time: moto's backends are not thread-safe (`harness` module doc), and the server answers
  each connection on a thread of its own;
- SQS visibility compared against `time.time()`, and a cancelled transaction of `Put`s rolled back from one
  shallow copy of each table, as `harness.thread_safe_moto` does in process;
- `GET /hubspot-local/messages?queue=URL`: every message on a queue whatever its state, without receiving any
  (SQS hands out only visible ones), as JSON `[{"body", "attributes": {name: {"StringValue", ...}},
  "visible_at", "delayed_until"}]` (epoch ms), for the run's accounting (`LocalPipeline.messages_on`);
- no request log (werkzeug logs each request at INFO).
"""

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from urllib.parse import parse_qs

from moto.dynamodb import models as dynamodb_models
from moto.sqs.models import Message, sqs_backends

from hubspot_local.harness import transact_puts_cheaply

MESSAGES_PATH = "/hubspot-local/messages"
REGION = "us-east-1"


def queue_messages(queue_url: str, region: str = REGION) -> list[dict]:
    """The messages on the queue at `queue_url` (`http://host:port/<account>/<name>`), in this process's
    moto, as `GET /hubspot-local/messages` answers them (module doc).

    Raises:
        KeyError: no such queue.
    """
    account_id, name = queue_url.rsplit("/", 2)[-2:]
    queue = sqs_backends[account_id][region].queues[name]
    return [
        {
            "body": message.body,
            "attributes": message.message_attributes,
            "visible_at": message.visible_at,
            "delayed_until": message.delayed_until,
        }
        for message in list(queue._messages)
    ]


class _Serialised:
    """A WSGI application that runs `app` for one request at a time, and answers `/hubspot-local/messages`."""

    def __init__(self, app: Callable) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        with self._lock:
            if environ.get("PATH_INFO") == MESSAGES_PATH:
                return self._messages(environ, start_response)
            return [b"".join(self._app(environ, start_response))]  # the whole answer, inside the lock

    @staticmethod
    def _messages(environ: dict, start_response: Callable) -> list[bytes]:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        try:
            body, status = json.dumps(queue_messages(query["queue"][0], query.get("region", [REGION])[0])), "200 OK"
        except (KeyError, IndexError, ValueError):
            body, status = json.dumps({"error": "no such queue"}), "404 Not Found"
        start_response(status, [("Content-Type", "application/json")])
        return [body.encode()]


def _exit_with_stdin() -> None:
    """Stop the process once stdin reaches its end: the process that started it closed it, or died."""
    sys.stdin.buffer.read()
    os._exit(0)


def main() -> None:
    """Serve on a free loopback port (printed on stdout) until stdin closes or SIGTERM (module doc)."""
    # The server's own imports (Flask, every backend's URL index): not for `LocalPipeline`'s `queue_messages`.
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # moto's own properties compare the same fields with unix_time_millis() built from naive datetimes.
    Message.visible = property(lambda message: time.time() * 1000 > message.visible_at)
    Message.delayed = property(lambda message: time.time() * 1000 < message.delayed_until)
    backend = dynamodb_models.DynamoDBBackend
    backend.transact_write_items = transact_puts_cheaply(backend.transact_write_items)  # type: ignore[method-assign]
    app = _Serialised(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the bench stops it
    print(server.port, flush=True)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), sys.stdout.fileno())  # nobody reads stdout after the port
    threading.Thread(target=_exit_with_stdin, name="stdin-watch", daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
