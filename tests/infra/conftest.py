"""Fixtures for the template invariant tests: template.yaml as SAM, and as the CloudFormation SAM makes of it.

Both run offline: the SAM translator needs a region (set here) but no credentials, and local
CodeUri/ContentUri values are swapped for dummy S3 URIs, as `sam package` would do.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"

# Parameters without defaults get example values; everything else keeps the template's default.
EXAMPLE_PARAMETERS = {
    "HubSpotTokenSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:hubspot-token-AbCdEf",
    "WebhookSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:webhook-AbCdEf",
}


class _NoManagedPolicies:
    """Managed-policy loader that never calls IAM.

    The functions use explicit roles, so SAM has no managed policy to look up. Should that change, the
    translation fails here instead of silently attaching broad AWS-managed policies.
    """

    def load(self) -> dict[str, str]:
        return {}


def load_sam_template() -> dict[str, Any]:
    return yaml_parse(TEMPLATE_PATH.read_text())


def to_cloudformation(sam_template: dict[str, Any]) -> dict[str, Any]:
    """Translate a SAM template into plain CloudFormation, offline."""
    template = copy.deepcopy(sam_template)
    for logical_id, resource in template.get("Resources", {}).items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            properties["CodeUri"] = f"s3://example-bucket/{logical_id}.zip"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            properties["ContentUri"] = f"s3://example-bucket/{logical_id}.zip"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return transform(template, dict(EXAMPLE_PARAMETERS), _NoManagedPolicies())  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def sam_template() -> dict[str, Any]:
    return load_sam_template()


@pytest.fixture(scope="session")
def cfn_template(sam_template: dict[str, Any]) -> dict[str, Any]:
    return to_cloudformation(sam_template)


@pytest.fixture(scope="session")
def translate() -> Callable[[dict[str, Any]], dict[str, Any]]:
    return to_cloudformation
