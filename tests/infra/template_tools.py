"""The SAM translator, run in the template tools' environment (.venv-sam) rather than the project's.

aws-sam-translator pins pydantic (and SAM CLI boto3) to versions other than those the Lambda layer ships, so it
is not installed in .venv. The tests start this file once with .venv-sam's interpreter (`TemplateTools` below)
and talk to it over its standard input and output, one JSON object a line:

    {"parse": "<path>"}                             -> {"result": the SAM template, intrinsics as dicts}
    {"transform": <SAM template>, "parameters": {}} -> {"result": the CloudFormation SAM makes of it}

Anything that fails answers {"error": "<traceback>"}. Both run offline: the translator needs a region (set
here) but no credentials, and never looks up a managed policy (`_NoManagedPolicies`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TOOLS_PYTHON = ROOT / ".venv-sam" / "bin" / "python"


class TemplateToolsError(RuntimeError):
    """The translator refused a template, or its process died."""


class TemplateTools:
    """A running translator process in the tools' environment; `close()` ends it."""

    def __init__(self, python: Path) -> None:
        env = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
        self._process = subprocess.Popen(
            [str(python), str(Path(__file__).resolve())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def _call(self, request: dict[str, Any]) -> Any:
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise TemplateToolsError(f"the translator process ended (exit status {self._process.wait()})")
        answer = json.loads(line)
        if "error" in answer:
            raise TemplateToolsError(answer["error"])
        return answer["result"]

    def parse(self, path: Path) -> dict[str, Any]:
        return self._call({"parse": str(path)})

    def transform(self, sam_template: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
        return self._call({"transform": sam_template, "parameters": parameters})

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=30)


# --------------------------------------------------------------------------------------------------
# The process side, run by .venv-sam's interpreter
# --------------------------------------------------------------------------------------------------
class _NoManagedPolicies:
    """Managed-policy loader that never calls IAM.

    The functions use explicit roles, so SAM has no managed policy to look up. Should that change, the
    translation fails here instead of silently attaching broad AWS-managed policies.
    """

    def load(self) -> dict[str, str]:
        return {}


def _serve() -> None:
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    for line in sys.stdin:
        request = json.loads(line)
        try:
            if "parse" in request:
                result = yaml_parse(Path(request["parse"]).read_text())
            else:
                result = transform(request["transform"], request["parameters"], _NoManagedPolicies())
            answer = {"result": result}
        except Exception:  # every failure goes back to the test that asked
            answer = {"error": traceback.format_exc()}
        sys.stdout.write(json.dumps(answer, default=str) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve()
