"""The project's environment runs what the Lambda layer ships.

The Makefile installs .venv with layers/common/requirements.txt as pip constraints, and keeps the template tools
(SAM CLI, aws-sam-translator), whose pydantic pin differs, in .venv-sam. These tests fail when a dependency
drags another version of a shipped package in, or when the layer's pins drift from pyproject's ranges.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "layers" / "common" / "requirements.txt"
# Provided by the Lambda runtime, so not vendored into the layer (its version is the runtime's).
RUNTIME_PROVIDED = {"boto3", "botocore"}
# Template tools that pin pydantic: they belong in .venv-sam only.
TEMPLATE_TOOLS = ("aws-sam-cli", "aws-sam-translator")


def layer_pins() -> dict[str, str]:
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        requirement = line.split("#")[0].strip()
        if requirement:
            name, version = requirement.split("==")
            pins[canonicalize_name(name)] = version
    return pins


@pytest.mark.parametrize(("name", "version"), sorted(layer_pins().items()))
def test_installed_version_is_the_layers_pin(name: str, version: str) -> None:
    assert metadata.version(name) == version, f"{name}: .venv has {metadata.version(name)}, the layer ships {version}"


@pytest.mark.parametrize("tool", TEMPLATE_TOOLS)
def test_template_tools_are_not_in_the_project_environment(tool: str) -> None:
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version(tool)


def test_runtime_dependencies_are_pinned_by_the_layer_within_their_ranges() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = layer_pins()
    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        if name in RUNTIME_PROVIDED:
            continue
        assert name in pins, f"{name} is a runtime dependency the layer does not pin"
        assert requirement.specifier.contains(pins[name]), f"layer pins {name}=={pins[name]}, pyproject wants {line}"
