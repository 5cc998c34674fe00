"""Fixtures for the template invariant tests: template.yaml as SAM, and as the CloudFormation SAM makes of it.

The SAM translator runs in the template tools' environment (.venv-sam, created by `make`), not in this one:
its pydantic pin differs from the layer's (tests/infra/template_tools.py). Both run offline; local
CodeUri/ContentUri values are swapped for dummy S3 URIs, as `sam package` would do.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.infra.stack_model import Stack
from tests.infra.template_tools import DEFAULT_TOOLS_PYTHON, TemplateTools

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
# The interpreter of the environment holding aws-sam-translator (SAM CLI's own).
TOOLS_PYTHON = Path(os.environ.get("TEMPLATE_TOOLS_PYTHON", DEFAULT_TOOLS_PYTHON))

# Parameters without defaults get example values; everything else keeps the template's default.
EXAMPLE_PARAMETERS = {
    "HubSpotTokenSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:hubspot-token-AbCdEf",
    "WebhookSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:webhook-AbCdEf",
}


@pytest.fixture(scope="session")
def template_tools() -> Iterator[TemplateTools]:
    if not TOOLS_PYTHON.exists():
        pytest.fail(f"{TOOLS_PYTHON} not found: `make {DEFAULT_TOOLS_PYTHON.parent.parent.name}/bin/sam` creates it")
    tools = TemplateTools(TOOLS_PYTHON)
    yield tools
    tools.close()


@pytest.fixture(scope="session")
def translate(template_tools: TemplateTools) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Translate a SAM template into plain CloudFormation, offline."""

    def to_cloudformation(sam_template: dict[str, Any]) -> dict[str, Any]:
        template = copy.deepcopy(sam_template)
        for logical_id, resource in template.get("Resources", {}).items():
            properties = resource.get("Properties", {})
            if resource["Type"] == "AWS::Serverless::Function":
                properties["CodeUri"] = f"s3://example-bucket/{logical_id}.zip"
            elif resource["Type"] == "AWS::Serverless::LayerVersion":
                properties["ContentUri"] = f"s3://example-bucket/{logical_id}.zip"
        return template_tools.transform(template, dict(EXAMPLE_PARAMETERS))

    return to_cloudformation


@pytest.fixture(scope="session")
def sam_template(template_tools: TemplateTools) -> dict[str, Any]:
    return template_tools.parse(TEMPLATE_PATH)


@pytest.fixture(scope="session")
def cfn_template(sam_template: dict[str, Any], translate: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    return translate(sam_template)


@pytest.fixture(scope="session")
def stack(sam_template: dict[str, Any], cfn_template: dict[str, Any]) -> Stack:
    return Stack(sam_template, cfn_template)
