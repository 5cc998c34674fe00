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

from hubspot_destination.hubspot.client import HubSpotClient
from hubspot_destination.hubspot.errors import HubSpotRequestError
from hubspot_destination.hubspot.models import Option, Property
from hubspot_destination.observability import logger

AUDIENCE_PREFIX = "aep_"
STATUSES = ("realized", "existing", "exited")
# HubSpot internal names: lowercase letters, digits and underscores, starting with a letter, at most
# 100 characters (reference hubspot-api.md §2.3).
_MAX_NAME = 100
_SLUG_MAX = _MAX_NAME - len(AUDIENCE_PREFIX) - 1 - 10
_COMPATIBLE_TYPES = {"enumeration", "string"}
# What `audience_property_name` makes: the prefix, an optional slug, 10 hex digits.
_AUDIENCE_NAME = re.compile(rf"{AUDIENCE_PREFIX}(?:[a-z0-9_]*_)?[0-9a-f]{{10}}")


def audience_property_name(audience_id: str) -> str:
    """The internal name of an audience's property: `aep_<slug of the id>_<10 hex of its SHA-256>`.

    The slug keeps the name readable; the hash keeps ids that slug alike (`A-1`, `a_1`) apart.
    The result is at most 100 characters and matches `^[a-z][a-z0-9_]*$`.
    """
    slug = re.sub(r"[^a-z0-9]+", "_", audience_id.lower()).strip("_")[:_SLUG_MAX].rstrip("_")
    digest = hashlib.sha256(audience_id.encode()).hexdigest()[:10]
    return f"{AUDIENCE_PREFIX}{slug}_{digest}" if slug else f"{AUDIENCE_PREFIX}{digest}"


def _status_options(existing: list[Option] = ()) -> list[dict]:
    """The options of an audience property: those it has, and any status missing, as API bodies."""
    options = [option.model_dump(exclude_none=True) for option in existing]
    values = {option.value for option in existing}
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
        self._properties: dict[str, Property] = {}
        self._loaded_at: float | None = None

    def refresh(self) -> None:
        """Read every contact property again (one `GET /crm/v3/properties/contacts`)."""
        self._properties = {prop.name: prop for prop in self._client.list_properties()}
        self._loaded_at = self._clock()

    def _current(self) -> dict[str, Property]:
        if self._loaded_at is None or self._clock() - self._loaded_at > self._ttl_s:
            self.refresh()
        return self._properties

    def get(self, name: str) -> Property | None:
        """The property named `name`, or None when the portal has no such property."""
        return self._current().get(name)

    def in_group(self, group: str) -> int:
        """How many properties the group holds."""
        return sum(1 for prop in self._current().values() if prop.groupName == group)

    def put(self, prop: Property) -> None:
        """Record a property just created or updated."""
        self._properties[prop.name] = prop


@dataclass
class AudienceResolution:
    """Where each audience's status goes: `names` maps audience id → property name; `conflicts` maps
    audience id → why its property cannot hold a status (a configuration error for that audience alone);
    `deferred` holds the audiences whose property was not created in this call (`max_created` reached): their
    contacts wait for a later invocation."""

    names: dict[str, str] = field(default_factory=dict)
    conflicts: dict[str, str] = field(default_factory=dict)
    deferred: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class AudienceLimits:
    """How much of the portal the audience properties may use (README, "Limits").

    `max_properties`: properties the audience group may hold; a new audience beyond it is a conflict, so no
    sender can use up the portal's custom-property limit (1,000 per object is the common figure,
    hubspot-api.md §2.5). `max_created`: properties created per call of `resolve` (one invocation), so one
    batch cannot spend the invocation's time and the portal's burst budget on property creation.
    """

    max_properties: int = 500
    max_created: int = 25


class AudienceProperties:
    """Ensures the property group and one status property per audience exist in the portal."""

    def __init__(
        self,
        client: HubSpotClient,
        catalog: PropertyCatalog,
        group: str,
        group_label: str,
        limits: AudienceLimits = AudienceLimits(),
    ):
        self._client = client
        self._catalog = catalog
        self._group = group
        self._group_label = group_label
        self._limits = limits
        self._group_ready = False

    def owns(self, name: str) -> bool:
        """Whether `name` is an audience property: named as one, or in the audience group. Only memberships
        write it, never an attribute (an attribute could otherwise reverse an exit)."""
        if _AUDIENCE_NAME.fullmatch(name):
            return True
        prop = self._catalog.get(name)
        return prop is not None and prop.groupName == self._group

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        if not any(group.name == self._group for group in self._client.list_property_groups()):
            try:
                self._client.create_property_group(self._group, self._group_label)
            except HubSpotRequestError as error:
                if error.status != 409:  # 409: another invocation created it first
                    raise
        self._group_ready = True

    def _create(self, audience_id: str, audience_name: str) -> Property:
        self._ensure_group()
        definition = audience_property_definition(audience_id, audience_name, self._group)
        try:
            prop = self._client.create_property(definition)
        except HubSpotRequestError as error:
            if error.status != 409:
                raise
            self._catalog.refresh()  # created concurrently by another invocation
            prop = self._catalog.get(definition["name"]) or Property.model_validate(definition)
        self._catalog.put(prop)
        logger.info("audience property created", extra={"property": definition["name"]})
        return prop

    def _reconcile(self, prop: Property, audience_id: str, audience_name: str) -> None:
        changes: dict = {}
        if prop.type == "enumeration":
            options = _status_options(prop.options)
            if len(options) != len(prop.options):
                changes["options"] = options  # PATCH replaces the whole option list
        # A name equal to the id means the request carried no name: keep the label a real name gave.
        if audience_name != audience_id and prop.label != audience_name[:255]:
            changes["label"] = audience_name[:255]
        if changes:
            self._catalog.put(self._client.update_property(prop.name, changes))

    def resolve(self, audiences: Mapping[str, str]) -> AudienceResolution:
        """Ensure a status property for each audience (`{audience id: audience name}`).

        Missing properties are created (at most `max_created`; the others are deferred, and none once the group
        holds `max_properties`: a conflict); missing status options are added; a renamed audience gets its
        label updated. A property of an incompatible type (number, date, bool, checkbox) is a conflict.

        Raises:
            HubSpotError: when HubSpot cannot be reached or refuses a call for reasons other than 409.
        """
        resolution = AudienceResolution()
        created = 0
        for audience_id, audience_name in audiences.items():
            name = audience_property_name(audience_id)
            prop = self._catalog.get(name)
            if prop is None:
                held = self._catalog.in_group(self._group)
                if held >= self._limits.max_properties:
                    detail = f"the group {self._group!r} holds {held} audience properties, the most allowed"
                    resolution.conflicts[audience_id] = f"property {name!r} not created: {detail}"
                    logger.error("audience property limit reached", extra={"property": name, "held": held})
                    continue
                if created >= self._limits.max_created:
                    resolution.deferred.add(audience_id)
                    continue
                created += 1
                try:
                    prop = self._create(audience_id, audience_name)
                except HubSpotRequestError as error:
                    # e.g. the portal's custom-property limit: a problem of this audience alone.
                    resolution.conflicts[audience_id] = f"property {name!r} could not be created: {error}"[:1000]
                    logger.error("audience property not created", extra={"property": name, "status": error.status})
                    continue
            elif prop.type not in _COMPATIBLE_TYPES or prop.fieldType in {"checkbox", "booleancheckbox"}:
                detail = f"property {name!r} exists as {prop.type}/{prop.fieldType}; expected enumeration/select"
                resolution.conflicts[audience_id] = detail
                logger.error("audience property conflict", extra={"property": name, "detail": detail})
                continue
            else:
                self._reconcile(prop, audience_id, audience_name)
            resolution.names[audience_id] = name
        return resolution
