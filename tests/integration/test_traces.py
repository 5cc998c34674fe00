"""Traces: in Lambda, both functions send X-Ray subsegments for their AWS calls and every HubSpot request.

The pipeline runs in a child process set up as Lambda sets a function's environment (`LAMBDA_TASK_ROOT`, a trace
header, the X-Ray daemon's address), so the Tracer patches botocore and `http.client` there and nowhere else; a
UDP socket on loopback stands in for the daemon and collects what is sent.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHILD = """
import json, sys
from hubspot_local.pipeline import LocalPipeline
with LocalPipeline() as pipeline:
    body = json.dumps({"profiles": [{"identityMap": {"email": [{"id": "ada@example.com"}]},
                                     "attributes": {"firstname": {"value": "Ada"}}}]}).encode()
    assert pipeline.ingest(body)["status"] == 202
    pipeline.drain()
    assert [c["properties"]["email"] for c in pipeline.emulator.snapshot()["contacts"]] == ["ada@example.com"]
"""


def test_both_functions_trace_their_aws_calls_and_hubspot_requests(tmp_path):
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(0.5)
    host, port = daemon.getsockname()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))},
        "LAMBDA_TASK_ROOT": str(tmp_path),
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_XRAY_DAEMON_ADDRESS": f"{host}:{port}",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    }
    child = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert child.returncode == 0, child.stderr[-2000:]
    documents = []
    try:
        while True:
            packet = daemon.recv(65_535).decode()
            documents.append(json.loads(packet.split("\n", 1)[1]))  # a header line, then the subsegment
    except TimeoutError:
        pass
    finally:
        daemon.close()
    names = {document.get("name") for document in documents}
    assert {"sqs", "dynamodb", "secretsmanager"} <= names, names  # botocore calls, by service
    hubspot = [d for d in documents if d.get("name", "").startswith("## HubSpot ")]
    assert {d["name"] for d in hubspot} >= {"## HubSpot POST /crm/v3/objects/contacts/batch/upsert"}
    assert all(d["annotations"]["status"] < 300 for d in hubspot)
    assert any(document.get("name", "").startswith("## lambda_handler") for document in documents)
    text = json.dumps(documents)
    assert "ada@example.com" not in text  # neither the answer nor the request body is recorded
    assert "local-dev-token" not in text
