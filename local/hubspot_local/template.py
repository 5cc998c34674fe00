"""The deployed stack's settings the local pipeline mirrors, read from `template.yaml` rather than copied.

CloudFormation's short tags (`!Ref`, `!GetAtt`, `!Sub`, ...) are read as `{"Tag": value}`: the values read
here are plain numbers in the template.
"""

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


class _CloudFormationLoader(yaml.SafeLoader):
    """YAML's safe loader, taking any `!Tag value` as `{"Tag": value}`."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {suffix: value}


_CloudFormationLoader.add_multi_constructor("!", _tagged)


@dataclass(frozen=True)
class DeployedSettings:
    """What the event source mapping and the queues do in AWS: `batch_size` messages per invocation,
    `batching_window_s`, the deliver function's `timeout_s`, the queue's `max_receive_count` before SQS
    moves a message to the dead-letter queue, `max_concurrency` (the default of `DeliverMaximumConcurrency`),
    and each function's memory (`ingest_memory_mb`, `deliver_memory_mb`: what Lambda bills by)."""

    batch_size: int
    batching_window_s: int
    timeout_s: int
    max_receive_count: int
    max_concurrency: int
    ingest_memory_mb: int
    deliver_memory_mb: int


@cache
def deployed_settings(path: Path = TEMPLATE) -> DeployedSettings:
    """The settings as `template.yaml` declares them.

    Raises:
        OSError: the template cannot be read. KeyError: it no longer declares one of them where expected.
    """
    template = yaml.load(path.read_text(encoding="utf-8"), Loader=_CloudFormationLoader)  # noqa: S506
    resources = template["Resources"]
    deliver = resources["DeliverFunction"]["Properties"]
    mapping = deliver["Events"]["ActivationQueue"]["Properties"]
    redrive = resources["ActivationQueue"]["Properties"]["RedrivePolicy"]
    return DeployedSettings(
        batch_size=int(mapping["BatchSize"]),
        batching_window_s=int(mapping["MaximumBatchingWindowInSeconds"]),
        timeout_s=int(deliver["Timeout"]),
        max_receive_count=int(redrive["maxReceiveCount"]),
        max_concurrency=int(template["Parameters"]["DeliverMaximumConcurrency"]["Default"]),
        ingest_memory_mb=int(resources["IngestFunction"]["Properties"]["MemorySize"]),
        deliver_memory_mb=int(deliver["MemorySize"]),
    )
