"""Audience properties: one custom HubSpot contact property per AEP audience, holding its status.

The internal name is derived from the audience id alone, so it is deterministic, stable when the audience
is renamed (a rename changes the label only) and collision-free between ids. The property is an
enumeration (`select`) with the options `realized`, `existing` and `exited`, in its own property group,
created when missing (https://developers.hubspot.com/docs/api-reference/crm-properties-v3/guide).
"""

import hashlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from hubspot_destination.hubspot.client import HubSpotClient, HubSpotRequestError
from hubspot_destination.observability import logger

AUDIENCE_PREFIX = "aep_"
STATUSES = ("realized", "existing", "exited")
# HubSpot internal names: lowercase letters, digits and underscores, starting with a letter, at most
# 100 characters (reference hubspot-api.md §2.3).
_MAX_NAME = 100
_SLUG_MAX = _MAX_NAME - len(AUDIENCE_PREFIX) - 1 - 10
_COMPATIBLE_TYPES = {"enumeration", "string"}


def audience_property_name(audience_id: str) -> str:
    """The internal name of an audience's property: `aep_<slug of the id>_<10 hex of its SHA-256>`.

    The slug keeps the name readable; the hash keeps ids that slug alike (`A-1`, `a_1`) apart.
    The result is at most 100 characters and matches `^[a-z][a-z0-9_]*$`.
    """
    slug = re.sub(r"[^a-z0-9]+", "_", audience_id.lower()).strip("_")[:_SLUG_MAX].rstrip("_")
    digest = hashlib.sha256(audience_id.encode()).hexdigest()[:10]
    return f"{AUDIENCE_PREFIX}{slug}_{digest}" if slug else f"{AUDIENCE_PREFIX}{digest}"


def _status_options(existing: list[dict] | None = None) -> list[dict]:
    options = list(existing or [])
    values = {option.get("value") for option in options}
    for order, status in enumerate(STATUSES):
        if status not in values:
            options.append({"label": status.capitalize(), "value": status, "displayOrder": order, "hidden": False})
    return options


def audience_property_definition(audience_id: str, audience_name: str, group: str) -> dict:
    """The `POST /crm/v3/properties/contacts` body for an audience's property."""
    return {
        "name": audience_property_name(audience_id),
        "label": audience_name[:255],
        "description": f"Status of AEP audience {audience_id} (managed by hubspot-destination).",
        "groupName": group,
        "type": "enumeration",
        "fieldType": "select",
        "options": _status_options(),
        "formField": False,
    }


class PropertyCatalog:
    """The portal's contact properties by internal name, read once and cached for `ttl_s` seconds."""

    def __init__(self, client: HubSpotClient, ttl_s: float, clock: Callable[[], float] = time.monotonic):
        self._client = client
        self._ttl_s = ttl_s
        self._clock = clock
        self._properties: dict[str, dict] = {}
        self._loaded_at: float | None = None

    def refresh(self) -> None:
        """Read every contact property again (one `GET /crm/v3/properties/contacts`)."""
        self._properties = {prop["name"]: prop for prop in self._client.list_properties()}
        self._loaded_at = self._clock()

    def get(self, name: str) -> dict | None:
        """The property object named `name`, or None when the portal has no such property."""
        if self._loaded_at is None or self._clock() - self._loaded_at > self._ttl_s:
            self.refresh()
        return self._properties.get(name)

    def put(self, prop: dict) -> None:
        """Record a property just created or updated."""
        self._properties[prop["name"]] = prop


@dataclass
class AudienceResolution:
    """Where each audience's status goes: `names` maps audience id → property name; `conflicts` maps
    audience id → why its property cannot hold a status (a configuration error for that audience alone)."""

    names: dict[str, str] = field(default_factory=dict)
    conflicts: dict[str, str] = field(default_factory=dict)


class AudienceProperties:
    """Ensures the property group and one status property per audience exist in the portal."""

    def __init__(self, client: HubSpotClient, catalog: PropertyCatalog, group: str, group_label: str):
        self._client = client
        self._catalog = catalog
        self._group = group
        self._group_label = group_label
        self._group_ready = False

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        if not any(g.get("name") == self._group for g in self._client.list_property_groups()):
            try:
                self._client.create_property_group(self._group, self._group_label)
            except HubSpotRequestError as error:
                if error.status != 409:  # 409: another invocation created it first
                    raise
        self._group_ready = True

    def _create(self, audience_id: str, audience_name: str) -> dict:
        self._ensure_group()
        definition = audience_property_definition(audience_id, audience_name, self._group)
        try:
            prop = self._client.create_property(definition)
        except HubSpotRequestError as error:
            if error.status != 409:
                raise
            self._catalog.refresh()  # created concurrently by another invocation
            prop = self._catalog.get(definition["name"]) or definition
        self._catalog.put(prop)
        logger.info("audience property created", extra={"property": definition["name"]})
        return prop

    def _reconcile(self, prop: dict, audience_id: str, audience_name: str) -> None:
        changes: dict = {}
        if prop.get("type") == "enumeration":
            options = _status_options(prop.get("options"))
            if len(options) != len(prop.get("options") or []):
                changes["options"] = options  # PATCH replaces the whole option list
        # A name equal to the id means the request carried no name: keep the label a real name gave.
        if audience_name != audience_id and prop.get("label") != audience_name[:255]:
            changes["label"] = audience_name[:255]
        if changes:
            self._catalog.put(self._client.update_property(prop["name"], changes))

    def resolve(self, audiences: Mapping[str, str]) -> AudienceResolution:
        """Ensure a status property for each audience (`{audience id: audience name}`).

        Missing properties are created; missing status options are added; a renamed audience gets its
        label updated. A property of an incompatible type (number, date, bool, checkbox) is a conflict.

        Raises:
            HubSpotError: when HubSpot cannot be reached or refuses a call for reasons other than 409.
        """
        resolution = AudienceResolution()
        for audience_id, audience_name in audiences.items():
            name = audience_property_name(audience_id)
            prop = self._catalog.get(name)
            if prop is None:
                try:
                    prop = self._create(audience_id, audience_name)
                except HubSpotRequestError as error:
                    # e.g. the portal's custom-property limit: a problem of this audience alone.
                    resolution.conflicts[audience_id] = f"property {name!r} could not be created: {error}"[:1000]
                    logger.error("audience property not created", extra={"property": name, "status": error.status})
                    continue
            elif prop.get("type") not in _COMPATIBLE_TYPES or prop.get("fieldType") in {"checkbox", "booleancheckbox"}:
                shape = f"{prop.get('type')}/{prop.get('fieldType')}"
                detail = f"property {name!r} exists as {shape}; expected enumeration/select"
                resolution.conflicts[audience_id] = detail
                logger.error("audience property conflict", extra={"property": name, "detail": detail})
                continue
            else:
                self._reconcile(prop, audience_id, audience_name)
            resolution.names[audience_id] = name
        return resolution
