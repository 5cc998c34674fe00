"""Operations resources of template.yaml: alarms, their topic, the dashboard, access logs, WAF.

Alarms and the dashboard are only worth something if they watch metrics that exist: every custom metric they name
must be one the code emits (found in the Python sources under layers/ and functions/ by reading their
`add_metric` calls), with the dimension Powertools adds; every AWS metric must be a known one, on a resource of
this stack. Each invariant returns the problems it finds; each is also run on a template broken on purpose
(`BREAKAGES`), so a check that silently stops checking fails too.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from hubspot_destination import observability
from hubspot_destination.settings import DeliverSettings
from tests.infra.stack_model import Stack, breakage_tests, getatt_target, ref_target, resource_props

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SOURCE_DIRS = (ROOT / "layers", ROOT / "functions")
METRIC_CALLS = {"add_metric", "single_metric"}
SQS_MAX_DELAY_SECONDS = 900  # a requeued copy may wait this long on purpose before it is visible

# AWS metrics the alarms and the dashboard may use, with the dimensions that name one resource.
AWS_METRICS: dict[str, tuple[set[str], tuple[str, ...]]] = {
    "AWS/SQS": (
        {
            "ApproximateNumberOfMessagesVisible",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
            "ApproximateAgeOfOldestMessage",
            "NumberOfMessagesSent",
            "NumberOfMessagesReceived",
            "NumberOfMessagesDeleted",
        },
        ("QueueName",),
    ),
    "AWS/Lambda": ({"Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions"}, ("FunctionName",)),
    "AWS/ApiGateway": ({"Count", "4XXError", "5XXError", "Latency", "IntegrationLatency"}, ("ApiName", "Stage")),
}
# Access-log fields: what an operator needs, and nothing that can carry the body or a credential.
ACCESS_LOG_FIELDS = {
    "requestId",
    "ip",
    "requestTime",
    "httpMethod",
    "resourcePath",
    "status",
    "responseLength",
    "integrationLatency",
    "userAgent",
}
FORBIDDEN_IN_ACCESS_LOGS = re.compile(r"body|authoriz|header|api.?key|cookie|token|claims|\$input|\$util", re.I)


# --------------------------------------------------------------------------------------------------
# What the code emits: add_metric / single_metric calls under layers/ and functions/
# --------------------------------------------------------------------------------------------------
@dataclass
class EmittedMetrics:
    names: set[str] = field(default_factory=set)
    patterns: list[re.Pattern[str]] = field(default_factory=list)  # names built with f-strings
    unresolved: list[str] = field(default_factory=list)  # "path:line: name expression"

    def emits(self, name: str) -> bool:
        return name in self.names or any(pattern.fullmatch(name) for pattern in self.patterns)


def _strings(node: ast.AST | None, part: str = "elements") -> list[str] | None:
    """String constants of a literal: a str, or the elements (keys/values) of a list, tuple, set or dict."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Dict):
        items = node.values if part == "values" else node.keys
    elif isinstance(node, ast.List | ast.Tuple | ast.Set):
        items = node.elts
    else:
        return None
    values = [item.value for item in items if isinstance(item, ast.Constant) and isinstance(item.value, str)]
    return values if len(values) == len(items) else None


def _loop_values(loop: ast.For, name: str, literals: dict[str, ast.AST]) -> list[str] | None:
    """What `name` takes in `for ... in X`, `X.keys()`, `X.values()` or `X.items()` over a module literal X."""
    iterator, part = loop.iter, "elements"
    if isinstance(iterator, ast.Call) and isinstance(iterator.func, ast.Attribute):
        part, iterator = iterator.func.attr, iterator.func.value
    if not isinstance(iterator, ast.Name) or iterator.id not in literals:
        return None
    target = loop.target
    if part == "items" and isinstance(target, ast.Tuple):
        names = [t.id if isinstance(t, ast.Name) else None for t in target.elts]
        part = "values" if names.index(name) == 1 else "keys"
    return _strings(literals[iterator.id], part)


def _resolve_name(node: ast.Name, parents: dict[ast.AST, ast.AST], literals: dict[str, ast.AST]) -> list[str] | None:
    current: ast.AST | None = node
    while current is not None:
        current = parents.get(current)
        if isinstance(current, ast.For):
            if node.id in {n.id for n in ast.walk(current.target) if isinstance(n, ast.Name)}:
                return _loop_values(current, node.id, literals)
            continue
        if isinstance(current, ast.FunctionDef | ast.AsyncFunctionDef):
            assigned = [
                value
                for statement in ast.walk(current)
                if isinstance(statement, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == node.id for t in statement.targets)
                for value in [_strings(statement.value)]
            ]
            return assigned[0] if len(assigned) == 1 else None
    return _strings(literals.get(node.id))


def scan_emitted_metrics(paths: list[Path]) -> EmittedMetrics:
    found = EmittedMetrics()
    for path in paths:
        tree = ast.parse(path.read_text(), filename=str(path))
        parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        literals: dict[str, ast.AST] = {}
        for statement in tree.body:
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                if isinstance(statement.targets[0], ast.Name):
                    literals[statement.targets[0].id] = statement.value
            elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                literals[statement.target.id] = statement.value
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if called not in METRIC_CALLS:
                continue
            argument = next((k.value for k in node.keywords if k.arg == "name"), node.args[0] if node.args else None)
            shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            where = f"{shown}:{node.lineno}: {ast.unparse(argument) if argument else '?'}"
            if isinstance(argument, ast.JoinedStr):
                pattern = "".join(
                    re.escape(part.value) if isinstance(part, ast.Constant) else "[A-Za-z0-9]+"
                    for part in argument.values
                )
                found.patterns.append(re.compile(pattern))
                continue
            names = _strings(argument) or (
                _resolve_name(argument, parents, literals) if isinstance(argument, ast.Name) else None
            )
            if names:
                found.names.update(names)
            else:
                found.unresolved.append(where)
    return found


@cache
def emitted_metrics() -> EmittedMetrics:
    return scan_emitted_metrics(sorted(p for d in SOURCE_DIRS for p in d.rglob("*.py")))


# --------------------------------------------------------------------------------------------------
# Helpers on the stack
# --------------------------------------------------------------------------------------------------
def sub_form(value: Any) -> str | None:
    """A value as it reads inside Fn::Sub: "${X}" for Ref X, "${X.Attr}" for GetAtt, the string of a Sub."""
    if isinstance(value, str):
        return value
    if (name := ref_target(value)) is not None:
        return f"${{{name}}}"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return "${" + (".".join(target) if isinstance(target, list) else target) + "}"
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        return value["Fn::Sub"]
    return None


def powertools_environment(stack: Stack) -> tuple[str, str]:
    """(namespace, service) the functions' Powertools Metrics are given by the template."""
    env = stack.sam["Globals"]["Function"]["Environment"]["Variables"]
    return env["POWERTOOLS_METRICS_NAMESPACE"], env["POWERTOOLS_SERVICE_NAME"]


def rest_api_names(stack: Stack) -> set[str]:
    names = set()
    for api in stack.resources("AWS::ApiGateway::RestApi").values():
        name = api.get("Name", api.get("Body", {}).get("info", {}).get("title"))
        if (form := sub_form(name)) is not None:
            names.add(form)
    return names


def resource_dimensions(stack: Stack) -> dict[str, set[str]]:
    """Per dimension name, the values (in Fn::Sub form) that name a resource of this stack."""
    stages = stack.resources("AWS::ApiGateway::Stage")
    return {
        "QueueName": {f"${{{queue}.QueueName}}" for queue in stack.queues},
        "FunctionName": {f"${{{function}}}" for function in stack.functions},
        "ApiName": rest_api_names(stack),
        "Stage": {f"${{{stage}}}" for stage in stages} | {props["StageName"] for props in stages.values()},
    }


def metric_problems(
    stack: Stack, where: str, namespace: str, name: str, dimensions: list[tuple[str, Any]]
) -> list[str]:
    """Problems of one metric an alarm or the dashboard shows: does anything publish it, for this stack?"""
    own_namespace, service = powertools_environment(stack)
    shown = [(key, sub_form(value)) for key, value in dimensions]
    if namespace == own_namespace:
        problems = [] if emitted_metrics().emits(name) else [f"{where}: no add_metric in the code emits {name}"]
        if shown != [("service", service)]:
            problems.append(f"{where}: {name} has dimensions {shown}; Powertools emits only service={service}")
        return problems
    if namespace not in AWS_METRICS:
        return [f"{where}: unknown namespace {namespace}"]
    names, keys = AWS_METRICS[namespace]
    if name not in names:
        return [f"{where}: {namespace} has no metric {name} (or add it to AWS_METRICS)"]
    if sorted(key for key, _ in shown) != sorted(keys):
        return [f"{where}: {namespace} {name} needs dimensions {keys}, has {shown}"]
    own = resource_dimensions(stack)
    return [f"{where}: {key}={value} is no resource of this stack" for key, value in shown if value not in own[key]]


def alarms(stack: Stack) -> dict[str, dict[str, Any]]:
    return stack.resources("AWS::CloudWatch::Alarm")


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown document."""
    anchors = set()
    for line in markdown.splitlines():
        if match := re.match(r"#{1,6} +(.+)", line):
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def dashboard_body(stack: Stack) -> tuple[str, set[str]]:
    """(the DashboardBody with every ${...} replaced by a JSON-safe placeholder "~N~", the ${...} names)."""
    [dashboard] = stack.resources("AWS::CloudWatch::Dashboard").values()
    body = dashboard["DashboardBody"]["Fn::Sub"]
    body = body[0] if isinstance(body, list) else body
    names = set(re.findall(r"\$\{([^}]+)\}", body))
    return body, names


def dashboard_metrics(body: str) -> Iterator[tuple[str, list[Any]]]:
    """(widget title, metric array) of every metric widget."""
    for widget in json.loads(body)["widgets"]:
        if widget["type"] == "metric":
            for metric in widget["properties"]["metrics"]:
                yield widget["properties"].get("title", "?"), metric


def evaluate_conditions(stack: Stack, **overrides: str) -> dict[str, bool]:
    """Every condition of the template, with parameter defaults except those overridden."""
    parameters = {name: str(overrides.get(name, p.get("Default"))) for name, p in stack.parameters.items()}
    conditions = stack.cfn.get("Conditions", {})

    def value(expression: Any) -> str:
        name = ref_target(expression)
        return parameters[name] if name is not None else str(expression)

    def holds(expression: Any) -> bool:
        [(function, arguments)] = expression.items()
        if function == "Fn::Equals":
            return value(arguments[0]) == value(arguments[1])
        if function == "Fn::Not":
            return not holds(arguments[0])
        if function == "Fn::And":
            return all(holds(argument) for argument in arguments)
        if function == "Fn::Or":
            return any(holds(argument) for argument in arguments)
        if function == "Condition":
            return holds(conditions[arguments])
        raise AssertionError(f"cannot evaluate {expression!r}")

    return {name: holds(expression) for name, expression in conditions.items()}


def deployed_resources(stack: Stack, **overrides: str) -> set[str]:
    held = evaluate_conditions(stack, **overrides)
    return {
        logical_id
        for logical_id, resource in stack.cfn["Resources"].items()
        if "Condition" not in resource or held[resource["Condition"]]
    }


def _branches(value: Any) -> list[Any]:
    """The values an Fn::If may take (both branches, recursively), or the value itself."""
    if isinstance(value, dict) and "Fn::If" in value:
        return [leaf for branch in value["Fn::If"][1:] for leaf in _branches(branch)]
    return [value]


def _getatt_targets(value: Any) -> set[str]:
    if isinstance(value, dict):
        return ({t} if (t := getatt_target(value)) else set()) | {x for v in value.values() for x in _getatt_targets(v)}
    if isinstance(value, list):
        return {x for v in value for x in _getatt_targets(v)}
    return set()


def _refs(value: Any) -> set[str]:
    if isinstance(value, dict):
        return ({r} if (r := ref_target(value)) else set()) | {x for v in value.values() for x in _refs(v)}
    if isinstance(value, list):
        return {x for v in value for x in _refs(v)}
    return set()


# --------------------------------------------------------------------------------------------------
# Invariants
# --------------------------------------------------------------------------------------------------
def alarms_watch_metrics_that_exist(stack: Stack) -> list[str]:
    problems = [] if alarms(stack) else ["no alarms"]
    for alarm_id, alarm in alarms(stack).items():
        if "MetricName" not in alarm:
            problems.append(f"{alarm_id}: no MetricName (metric math is not checked here)")
            continue
        dimensions = [(d["Name"], d["Value"]) for d in alarm.get("Dimensions", [])]
        problems += metric_problems(stack, alarm_id, alarm["Namespace"], alarm["MetricName"], dimensions)
    return problems


def alarms_notify_the_stacks_topic(stack: Stack) -> list[str]:
    topics = set(stack.resources("AWS::SNS::Topic"))
    problems = []
    for alarm_id, alarm in alarms(stack).items():
        for actions in ("AlarmActions", "OKActions"):
            targets = [ref_target(action) for action in alarm.get(actions, [])]
            if not targets or not set(targets) <= topics:
                problems.append(f"{alarm_id}: {actions} {alarm.get(actions)} is not the stack's SNS topic")
    return problems


def alarms_point_to_their_runbook(stack: Stack) -> list[str]:
    anchors = github_anchors(README.read_text())
    problems = []
    for alarm_id, alarm in alarms(stack).items():
        found = re.findall(r"README\.md#([\w-]+)", alarm.get("AlarmDescription", ""))
        if not found:
            problems.append(f"{alarm_id}: AlarmDescription does not point to a README runbook entry")
        problems += [f"{alarm_id}: README.md has no heading #{anchor}" for anchor in found if anchor not in anchors]
    return problems


def alarms_treat_missing_counters_as_fine(stack: Stack) -> list[str]:
    """Counters publish nothing when nothing happened: that must not leave the alarm in INSUFFICIENT_DATA."""
    problems = []
    for alarm_id, alarm in alarms(stack).items():
        missing = alarm.get("TreatMissingData")
        if missing is None:
            problems.append(f"{alarm_id}: TreatMissingData not chosen")
        elif alarm.get("Statistic") == "Sum" and missing != "notBreaching":
            problems.append(f"{alarm_id}: a counter with TreatMissingData {missing}")
    return problems


def alert_topic_is_encrypted_for_cloudwatch(stack: Stack) -> list[str]:
    """CloudWatch cannot publish to a topic encrypted with aws/sns: the key must be one whose policy lets it."""
    problems = []
    keys = stack.resources("AWS::KMS::Key")
    for topic_id, topic in stack.resources("AWS::SNS::Topic").items():
        key_id = ref_target(topic.get("KmsMasterKeyId")) or getatt_target(topic.get("KmsMasterKeyId"))
        if key_id not in keys:
            problems.append(f"{topic_id}: not encrypted with a key of this stack ({topic.get('KmsMasterKeyId')})")
            continue
        allowed = {
            action
            for statement in keys[key_id]["KeyPolicy"]["Statement"]
            if statement["Effect"] == "Allow" and statement["Principal"].get("Service") == "cloudwatch.amazonaws.com"
            for action in statement["Action"]
        }
        if not {"kms:Decrypt", "kms:GenerateDataKey*"} <= allowed:
            problems.append(f"{key_id}: the key policy does not let CloudWatch alarms publish to {topic_id}")
    return problems


def dashboard_shows_metrics_that_exist(stack: Stack) -> list[str]:
    body, names = dashboard_body(stack)
    known = set(stack.cfn["Resources"]) | set(stack.parameters)
    problems = [
        f"dashboard: ${{{name}}} names nothing"
        for name in sorted(names)
        if not name.startswith("AWS::") and name.split(".")[0] not in known
    ]
    placeholders = {f"${{{name}}}": f"~{i}~" for i, name in enumerate(sorted(names))}
    parsable = body
    for token, placeholder in placeholders.items():
        parsable = parsable.replace(token, placeholder)
    try:
        widgets = json.loads(parsable)["widgets"]
    except (ValueError, KeyError) as error:
        return [*problems, f"dashboard: the body is not JSON once ${{...}} are substituted: {error}"]
    back = {placeholder: token for token, placeholder in placeholders.items()}

    def restore(value: Any) -> Any:
        return re.sub(r"~\d+~", lambda m: back[m.group(0)], value) if isinstance(value, str) else value

    shown_alarms = set()
    metrics = 0
    for widget in widgets:
        properties = widget["properties"]
        if widget["type"] == "alarm":
            shown_alarms |= {restore(arn) for arn in properties["alarms"]}
            continue
        for metric in properties.get("metrics", []):
            metrics += 1
            parts = [restore(part) for part in metric if not isinstance(part, dict)]
            where = f"dashboard {properties.get('title')!r}"
            if len(parts) < 2 or len(parts) % 2 or any(part in (".", "...") for part in parts):
                problems.append(f"{where}: {metric} is not [namespace, name, dimension, value, ...]")
                continue
            dimensions = list(zip(parts[2::2], parts[3::2], strict=True))
            problems += metric_problems(stack, where, parts[0], parts[1], dimensions)
    if not metrics:
        problems.append("dashboard: no metrics")
    missing = {f"${{{alarm_id}.Arn}}" for alarm_id in alarms(stack)} - shown_alarms
    problems += [f"dashboard: alarm {arn} not shown" for arn in sorted(missing)]
    return problems


def access_logs_are_json_without_secrets(stack: Stack) -> list[str]:
    problems = []
    stages = stack.resources("AWS::ApiGateway::Stage")
    log_groups = stack.resources("AWS::Logs::LogGroup")
    for stage_id, stage in stages.items():
        settings = [s for s in _branches(stage.get("AccessLogSetting")) if isinstance(s, dict) and "Format" in s]
        if not settings:
            problems.append(f"{stage_id}: no access logs")
        for setting in settings:
            targets = {target for arn in _branches(setting["DestinationArn"]) for target in _getatt_targets(arn)}
            groups = targets & set(log_groups)
            if not groups:
                problems.append(f"{stage_id}: access logs go to no log group of this stack")
            problems += [f"{group}: no retention" for group in groups if "RetentionInDays" not in log_groups[group]]
            try:
                fields = json.loads(setting["Format"])
            except ValueError as error:
                problems.append(f"{stage_id}: the access log format is not JSON: {error}")
                continue
            if missing := ACCESS_LOG_FIELDS - set(fields):
                problems.append(f"{stage_id}: access logs lack {sorted(missing)}")
            for key, variable in fields.items():
                if not re.fullmatch(r"\$context\.[A-Za-z.]+", str(variable)):
                    problems.append(f"{stage_id}: access log field {key} is {variable!r}, not one $context variable")
                if FORBIDDEN_IN_ACCESS_LOGS.search(f"{key} {variable}"):
                    problems.append(f"{stage_id}: access log field {key} ({variable}) may carry a body or secret")
    return problems or ([] if stages else ["no API Gateway stage"])


INVARIANTS: list[Callable[[Stack], list[str]]] = [
    alarms_watch_metrics_that_exist,
    alarms_notify_the_stacks_topic,
    alarms_point_to_their_runbook,
    alarms_treat_missing_counters_as_fine,
    alert_topic_is_encrypted_for_cloudwatch,
    dashboard_shows_metrics_that_exist,
    access_logs_are_json_without_secrets,
]


@pytest.mark.parametrize("invariant", INVARIANTS, ids=lambda f: f.__name__)
def test_invariant_holds(stack: Stack, invariant: Callable[[Stack], list[str]]) -> None:
    assert invariant(stack) == []


# --------------------------------------------------------------------------------------------------
# Each invariant must notice a template broken on purpose
# --------------------------------------------------------------------------------------------------
def _api(template: dict[str, Any]) -> dict[str, Any]:
    return resource_props(template, "ActivationApi")


def _access_log_setting(template: dict[str, Any]) -> dict[str, Any]:
    return _api(template)["AccessLogSetting"]["Fn::If"][1]


def _edit_dashboard(template: dict[str, Any], old: str, new: str) -> None:
    """Replace the regular expression `old` in the dashboard body (it must be there)."""
    body = resource_props(template, "OperationsDashboard")["DashboardBody"]
    assert re.search(old, body["Fn::Sub"]), old
    body["Fn::Sub"] = re.sub(old, new, body["Fn::Sub"])


BREAKAGES: list[tuple[Callable[[Stack], list[str]], str, Callable[[dict[str, Any]], None]]] = [
    (
        alarms_watch_metrics_that_exist,
        "a made-up custom metric",
        lambda t: resource_props(t, "HubSpotAuthAlarm").update(MetricName="HubSpotAuthFailuresMadeUp"),
    ),
    (
        alarms_watch_metrics_that_exist,
        "a dimension Powertools does not emit",
        lambda t: resource_props(t, "VersionsNotRecordedAlarm").update(
            Dimensions=[{"Name": "Service", "Value": "hubspot-destination"}]
        ),
    ),
    (
        alarms_watch_metrics_that_exist,
        "a misspelt SQS metric",
        lambda t: resource_props(t, "DeadLetterQueueAlarm").update(MetricName="ApproximateNumberOfMessagesVisable"),
    ),
    (
        alarms_watch_metrics_that_exist,
        "a queue of another stack",
        lambda t: resource_props(t, "QueueAgeAlarm").update(Dimensions=[{"Name": "QueueName", "Value": "other-queue"}]),
    ),
    (
        alarms_notify_the_stacks_topic,
        "no OK notification",
        lambda t: resource_props(t, "DeliverThrottlesAlarm").pop("OKActions"),
    ),
    (
        alarms_notify_the_stacks_topic,
        "another topic",
        lambda t: resource_props(t, "QueueAgeAlarm").update(AlarmActions=["arn:aws:sns:us-east-1:123456789012:other"]),
    ),
    (
        alarms_point_to_their_runbook,
        "no runbook link",
        lambda t: resource_props(t, "DeliverErrorsAlarm").update(AlarmDescription="DeliverFunction failed."),
    ),
    (
        alarms_point_to_their_runbook,
        "a runbook entry the README lacks",
        lambda t: resource_props(t, "DeliverErrorsAlarm").update(AlarmDescription="Runbook: README.md#alarm-made-up"),
    ),
    (
        alarms_treat_missing_counters_as_fine,
        "a counter alarm left INSUFFICIENT_DATA when idle",
        lambda t: resource_props(t, "HubSpotDailyLimitAlarm").update(TreatMissingData="missing"),
    ),
    (
        alarms_treat_missing_counters_as_fine,
        "missing data not chosen",
        lambda t: resource_props(t, "DeadLetterQueueAlarm").pop("TreatMissingData"),
    ),
    (
        alert_topic_is_encrypted_for_cloudwatch,
        "the AWS-managed SNS key",
        lambda t: resource_props(t, "AlertTopic").update(KmsMasterKeyId="alias/aws/sns"),
    ),
    (
        alert_topic_is_encrypted_for_cloudwatch,
        "CloudWatch not allowed to use the key",
        lambda t: resource_props(t, "AlertKey")["KeyPolicy"]["Statement"].pop(),
    ),
    (
        dashboard_shows_metrics_that_exist,
        "a made-up custom metric",
        lambda t: _edit_dashboard(t, '"ProfilesDelivered"', '"ProfilesDeliverd"'),
    ),
    (
        dashboard_shows_metrics_that_exist,
        "a ${...} that names nothing",
        lambda t: _edit_dashboard(t, r"\$\{ActivationDeadLetterQueue\.", "${DeadLetterQueue."),
    ),
    (
        dashboard_shows_metrics_that_exist,
        "not JSON",
        lambda t: _edit_dashboard(t, r'"widgets": \[', '"widgets": [,'),
    ),
    (
        dashboard_shows_metrics_that_exist,
        "an alarm left off",
        lambda t: _edit_dashboard(t, r'"\$\{QueueAgeAlarm\.Arn\}",\s*', ""),
    ),
    (
        access_logs_are_json_without_secrets,
        "the request body",
        lambda t: _access_log_setting(t).update(Format='{"requestId":"$context.requestId", "body":"$input.body"}'),
    ),
    (
        access_logs_are_json_without_secrets,
        "the Authorization header",
        lambda t: _access_log_setting(t).update(
            Format=_access_log_setting(t)["Format"].replace(
                '"userAgent"', '"auth":"$context.requestOverride.header.Authorization", "userAgent"'
            )
        ),
    ),
    (
        access_logs_are_json_without_secrets,
        "common log format",
        lambda t: _access_log_setting(t).update(Format="$context.identity.sourceIp [$context.requestTime]"),
    ),
    (
        access_logs_are_json_without_secrets,
        "no access logs",
        lambda t: _api(t).pop("AccessLogSetting"),
    ),
]


test_invariant_catches, test_every_invariant_has_a_breakage = breakage_tests(INVARIANTS, BREAKAGES)


# --------------------------------------------------------------------------------------------------
# The metric scan itself
# --------------------------------------------------------------------------------------------------
def test_every_metric_name_in_the_code_can_be_told() -> None:
    """An add_metric whose name the scan cannot tell would make the alarm checks above blind to it."""
    assert emitted_metrics().unresolved == []


def test_the_scan_finds_literal_looped_and_built_names(tmp_path: Path) -> None:
    source = tmp_path / "emitter.py"
    source.write_text(
        "NAMES = {'delivered': 'ProfilesDelivered', 'requeue': 'ProfilesRequeued'}\n"
        "def settle(metrics, reason, counts, computed):\n"
        "    metrics.add_metric(name='HubSpotThrottled', unit='Count', value=1)\n"
        "    for kind, name in NAMES.items():\n"
        "        metrics.add_metric(name=name, unit='Count', value=counts[kind])\n"
        "    metrics.add_metric(name=f'DeadLetters{reason.title()}', unit='Count', value=1)\n"
        "    metrics.add_metric(name=computed(), unit='Count', value=1)\n"
    )
    found = scan_emitted_metrics([source])
    assert found.names == {"HubSpotThrottled", "ProfilesDelivered", "ProfilesRequeued"}
    assert found.emits("DeadLettersInvalidValue")
    assert not found.emits("DeadLetters")
    assert not found.emits("MadeUp")
    assert [entry.split(": ", 1)[1] for entry in found.unresolved] == ["computed()"]


def test_the_code_emits_what_the_dashboard_and_alarms_rely_on() -> None:
    emitted = emitted_metrics()
    for name in ("ProfilesAccepted", "ProfilesDelivered", "ProfilesRequeued", "ProfilesDeadLettered"):
        assert emitted.emits(name), name  # deliver/settlement.py names these through a dict
    assert emitted.emits("DeadLettersInvalidValue")  # deliver/pipeline.py builds DeadLetters<Reason>


def test_powertools_emits_the_namespace_and_dimension_the_alarms_use(stack: Stack) -> None:
    namespace, service = powertools_environment(stack)
    assert (namespace, service) == (observability.NAMESPACE, observability.SERVICE)
    emf = observability.metrics.serialize_metric_set(metrics={"Probe": {"Unit": "Count", "Value": [1.0]}})
    [directive] = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == namespace
    assert directive["Dimensions"] == [["service"]]
    assert emf["service"] == service


# --------------------------------------------------------------------------------------------------
# Specific settings of this product
# --------------------------------------------------------------------------------------------------
def test_the_alarms_cover_what_needs_a_person(stack: Stack) -> None:
    watched = {(a["Namespace"], a["MetricName"], sub_form(a["Dimensions"][0]["Value"])) for a in alarms(stack).values()}
    namespace, _ = powertools_environment(stack)
    assert watched == {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "${ActivationDeadLetterQueue.QueueName}"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", "${ActivationQueue.QueueName}"),
        ("AWS/Lambda", "Errors", "${DeliverFunction}"),
        ("AWS/Lambda", "Throttles", "${DeliverFunction}"),
        (namespace, "HubSpotDailyLimitReached", "hubspot-destination"),
        (namespace, "HubSpotAuthFailures", "hubspot-destination"),
        (namespace, "VersionsNotRecorded", "hubspot-destination"),
        (namespace, "AudiencePropertyConflicts", "hubspot-destination"),
        ("AWS/ApiGateway", "5XXError", "${AWS::StackName}"),
    }
    dead_letters = alarms(stack)["DeadLetterQueueAlarm"]
    assert (dead_letters["ComparisonOperator"], dead_letters["Threshold"]) == ("GreaterThanThreshold", 0)
    # SQS stops publishing for a queue nobody touches, even with messages on it: keep the last state.
    assert dead_letters["TreatMissingData"] == "ignore"


def test_tunable_thresholds_are_parameters(stack: Stack) -> None:
    thresholds = {alarm_id: ref_target(alarm["Threshold"]) for alarm_id, alarm in alarms(stack).items()}
    assert thresholds["QueueAgeAlarm"] == "QueueAgeAlarmSeconds"
    assert thresholds["DeliverErrorsAlarm"] == "DeliverErrorsAlarmThreshold"
    assert thresholds["WebhookServerErrorsAlarm"] == "Api5xxAlarmThreshold"
    # Requeued profiles wait on purpose (daily limit, auth failure, backoff): that must not raise the alarm.
    settings = DeliverSettings.model_fields
    longest_wait = max(
        SQS_MAX_DELAY_SECONDS,
        settings["daily_limit_requeue_seconds"].default,
        settings["auth_failure_requeue_seconds"].default,
    )
    assert stack.parameters["QueueAgeAlarmSeconds"]["Default"] > longest_wait


def test_optional_resources_follow_their_parameters(stack: Stack) -> None:
    optional = {
        "AlertEmailSubscription",
        "ApiAccessLogGroup",
        "ApiGatewayCloudWatchRole",
        "ApiGatewayAccount",
        "WebhookWebAcl",
        "WebhookWebAclAssociation",
    }
    assert deployed_resources(stack) & optional == {"ApiAccessLogGroup"}
    assert deployed_resources(stack, AlertEmail="ops@example.com") & optional >= {"AlertEmailSubscription"}
    assert deployed_resources(stack, ApiAccessLogs="false") & optional == set()
    assert deployed_resources(stack, CreateApiGatewayAccountRole="true") & optional == {
        "ApiAccessLogGroup",
        "ApiGatewayCloudWatchRole",
        "ApiGatewayAccount",
    }
    assert deployed_resources(stack, WafRateLimitPerIp="2000") & optional == {
        "ApiAccessLogGroup",
        "WebhookWebAcl",
        "WebhookWebAclAssociation",
    }


def test_access_logs_wait_for_the_account_role_they_need(stack: Stack) -> None:
    [stage] = stack.resources("AWS::ApiGateway::Stage").values()
    # When the stack sets the account's CloudWatch role, the stage references it, so it is created after it.
    assert "ApiGatewayAccount" in _refs(stage["AccessLogSetting"])
    for logical_id in ("ApiGatewayCloudWatchRole", "ApiGatewayAccount"):
        resource = stack.cfn["Resources"][logical_id]
        assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == ("Retain", "Retain"), logical_id
    assert stack.parameters["CreateApiGatewayAccountRole"]["Default"] == "false"  # account-wide: opt in
    role = stack.resources("AWS::IAM::Role")["ApiGatewayCloudWatchRole"]
    [statement] = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
    policies = [arn["Fn::Sub"].rsplit("/", 1)[1] for arn in role["ManagedPolicyArns"]]
    assert policies == ["AmazonAPIGatewayPushToCloudWatchLogs"]


def test_waf_rate_limits_each_source_ip_when_asked(stack: Stack) -> None:
    parameter = stack.parameters["WafRateLimitPerIp"]
    assert parameter["Default"] == "0"
    accepted = [value for value in ("0", "5", "10", "2000") if re.fullmatch(parameter["AllowedPattern"], value)]
    assert accepted == ["0", "10", "2000"]  # WAF's smallest rate limit is 10
    acl = stack.resources("AWS::WAFv2::WebACL")["WebhookWebAcl"]
    assert acl["Scope"] == "REGIONAL"
    assert acl["DefaultAction"] == {"Allow": {}}
    [rule] = acl["Rules"]
    assert rule["Statement"]["RateBasedStatement"]["AggregateKeyType"] == "IP"
    assert rule["Statement"]["RateBasedStatement"]["Limit"] == {"Ref": "WafRateLimitPerIp"}
    assert "Block" in rule["Action"]
    [association] = stack.resources("AWS::WAFv2::WebACLAssociation").values()
    [stage_id] = stack.resources("AWS::ApiGateway::Stage")
    arn = association["ResourceArn"]["Fn::Sub"]
    assert arn.endswith("::/restapis/${ActivationApi}/stages/${" + stage_id + "}")
    assert association["WebACLArn"] == {"Fn::GetAtt": ["WebhookWebAcl", "Arn"]}


def test_alert_email_is_optional(stack: Stack) -> None:
    parameter = stack.parameters["AlertEmail"]
    assert parameter["Default"] == ""
    assert re.fullmatch(parameter["AllowedPattern"], "")
    assert re.fullmatch(parameter["AllowedPattern"], "ops@example.com")
    assert not re.fullmatch(parameter["AllowedPattern"], "not an address")
    subscription = stack.resources("AWS::SNS::Subscription")["AlertEmailSubscription"]
    assert subscription["Protocol"] == "email"
    assert subscription["Endpoint"] == {"Ref": "AlertEmail"}
    assert subscription["TopicArn"] == {"Ref": "AlertTopic"}
