"""A small model of the stack: the SAM template plus its offline translation to CloudFormation."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pytest


def breakage_tests(
    invariants: list[Callable[[Stack], list[str]]],
    breakages: list[tuple[Callable[[Stack], list[str]], str, Callable[[dict[str, Any]], None]]],
) -> tuple[Callable[..., None], Callable[[], None]]:
    """The two tests every invariant file runs: each breakage (invariant, name, how to break the SAM template) is
    caught by its invariant, and every invariant has a breakage."""

    @pytest.mark.parametrize(
        ("invariant", "breakage"),
        [pytest.param(invariant, mutate, id=f"{invariant.__name__}-{name}") for invariant, name, mutate in breakages],
    )
    def test_invariant_catches(
        sam_template: dict[str, Any],
        translate: Callable[[dict[str, Any]], dict[str, Any]],
        invariant: Callable[[Stack], list[str]],
        breakage: Callable[[dict[str, Any]], None],
    ) -> None:
        broken = copy.deepcopy(sam_template)
        breakage(broken)
        assert invariant(Stack(broken, translate(broken))) != []

    def test_every_invariant_has_a_breakage() -> None:
        assert {invariant for invariant, _, _ in breakages} == set(invariants)

    return test_invariant_catches, test_every_invariant_has_a_breakage


def resource_props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    """The `Properties` of one resource of a template (a dict to break on purpose in the tests)."""
    return template["Resources"][logical_id]["Properties"]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def getatt_target(value: Any) -> str | None:
    """Logical id behind `!GetAtt X.Arn` (either CFN spelling), else None."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return target[0] if isinstance(target, list) else target.split(".")[0]
    return None


def ref_target(value: Any) -> str | None:
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return value["Ref"]
    return None


@dataclass
class Stack:
    sam: dict[str, Any]
    cfn: dict[str, Any]

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource.get("Properties", {})
            for logical_id, resource in self.cfn["Resources"].items()
            if resource["Type"] == resource_type
        }

    @cached_property
    def parameters(self) -> dict[str, dict[str, Any]]:
        return self.sam.get("Parameters", {})

    def resolve(self, value: Any) -> Any:
        """Deployed value of a literal, a `Ref` to a parameter (its default) or an `Fn::FindInMap`."""
        if isinstance(value, dict):
            if (name := ref_target(value)) is not None:
                return self.resolve(self.parameters[name]["Default"])
            if "Fn::FindInMap" in value:
                mapping, first, second = (self.resolve(part) for part in value["Fn::FindInMap"])
                return self.resolve(self.sam["Mappings"][mapping][first][second])
            raise AssertionError(f"cannot resolve {value!r}")
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
            return int(value)
        return value

    @property
    def functions(self) -> dict[str, dict[str, Any]]:
        return self.resources("AWS::Lambda::Function")

    @property
    def queues(self) -> dict[str, dict[str, Any]]:
        return self.resources("AWS::SQS::Queue")

    @property
    def dead_letter_queues(self) -> set[str]:
        return {
            target
            for queue in self.queues.values()
            if (target := getatt_target(queue.get("RedrivePolicy", {}).get("deadLetterTargetArn")))
        }

    def sqs_mappings(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(function id, queue id, mapping properties) for every SQS event source mapping."""
        for esm in self.resources("AWS::Lambda::EventSourceMapping").values():
            queue = getatt_target(esm.get("EventSourceArn"))
            if queue in self.queues:
                function = ref_target(esm["FunctionName"])
                assert function is not None, f"mapping on {queue} names its function without !Ref"
                yield function, queue, esm

    def env(self, function: str) -> dict[str, Any]:
        return self.functions[function].get("Environment", {}).get("Variables", {})

    def role_of(self, function: str) -> tuple[str, dict[str, Any]]:
        role_id = getatt_target(self.functions[function]["Role"])
        assert role_id is not None, f"{function}: Role is not a !GetAtt of a role in this stack"
        return role_id, self.resources("AWS::IAM::Role")[role_id]

    def statements(self, role_id: str) -> list[dict[str, Any]]:
        """Allow statements of a role's inline policies and of stack policies attached to it."""
        found: list[dict[str, Any]] = []
        role = self.resources("AWS::IAM::Role")[role_id]
        documents = [policy["PolicyDocument"] for policy in role.get("Policies", [])]
        for policy_type in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for policy in self.resources(policy_type).values():
                if {"Ref": role_id} in policy.get("Roles", []):
                    documents.append(policy["PolicyDocument"])
        for document in documents:
            found.extend(s for s in as_list(document["Statement"]) if s.get("Effect") == "Allow")
        return found

    def grants(self, function: str, prefix: str) -> list[tuple[str, Any]]:
        """(action, resource) pairs the function's role allows for actions starting with `prefix`."""
        role_id, _ = self.role_of(function)
        return [
            (action, resource)
            for statement in self.statements(role_id)
            for action in as_list(statement["Action"])
            if action == "*" or action.startswith(prefix)
            for resource in as_list(statement.get("Resource", "*"))
        ]
