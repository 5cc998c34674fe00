"""The portal's contact properties: the cached catalog, and the audience properties ensured in it.

An audience property (domain/audiences.py) is an enumeration (`select`) with the options `realized`, `existing`
and `exited`, in its own property group, created when missing
(https://developers.hubspot.com/docs/api-reference/crm-properties-v3/guide).
"""

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from hubspot_destination.domain.audiences import STATUSES, audience_property_name
from hubspot_destination.domain.deadline import Deadline
from hubspot_destination.hubspot.client import HubSpotClient
from hubspot_destination.hubspot.errors import HubSpotRequestError
from hubspot_destination.hubspot.models import Option, Property
from hubspot_destination.limits import HUBSPOT_LABEL_MAX
from hubspot_destination.observability import logger

_COMPATIBLE_TYPES = {"enumeration", "string"}


def _status_options(existing: Sequence[Option] = ()) -> list[dict]:
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
        "label": audience_name[:HUBSPOT_LABEL_MAX],
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

    def refresh(self, deadline: Deadline | None = None) -> None:
        """Read every contact property again (one `GET /crm/v3/properties/contacts`).

        Raises:
            HubSpotError: the list could not be read (the cache is kept as it was).
        """
        self._properties = {prop.name: prop for prop in self._client.list_properties(deadline)}
        self._loaded_at = self._clock()

    def current(self, deadline: Deadline | None = None) -> Mapping[str, Property]:
        """The properties by name, read again first when the cache is older than `ttl_s`; raises as `refresh`."""
        if self._loaded_at is None or self._clock() - self._loaded_at > self._ttl_s:
            self.refresh(deadline)
        return self._properties

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

    def _ensure_group(self, deadline: Deadline | None) -> None:
        if self._group_ready:
            return
        if not any(group.name == self._group for group in self._client.list_property_groups(deadline)):
            try:
                self._client.create_property_group(self._group, self._group_label, deadline)
            except HubSpotRequestError as error:
                if error.status != 409:  # 409: another invocation created it first
                    raise
        self._group_ready = True

    def _create(self, audience_id: str, audience_name: str, deadline: Deadline | None) -> Property:
        self._ensure_group(deadline)
        definition = audience_property_definition(audience_id, audience_name, self._group)
        try:
            prop = self._client.create_property(definition, deadline)
        except HubSpotRequestError as error:
            if error.status != 409:
                raise
            self._catalog.refresh(deadline)  # created concurrently by another invocation
            prop = self._catalog.current(deadline).get(definition["name"]) or Property.model_validate(definition)
        self._catalog.put(prop)
        logger.info("audience property created", extra={"property": definition["name"]})
        return prop

    def _reconcile(self, prop: Property, audience_id: str, audience_name: str, deadline: Deadline | None) -> None:
        changes: dict = {}
        if prop.type == "enumeration":
            options = _status_options(prop.options)
            if len(options) != len(prop.options):
                changes["options"] = options  # PATCH replaces the whole option list
        # A name equal to the id means the request carried no name: keep the label a real name gave.
        if audience_name != audience_id and prop.label != audience_name[:HUBSPOT_LABEL_MAX]:
            changes["label"] = audience_name[:HUBSPOT_LABEL_MAX]
        if changes:
            self._catalog.put(self._client.update_property(prop.name, changes, deadline))

    def resolve(self, audiences: Mapping[str, str], deadline: Deadline | None = None) -> AudienceResolution:
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
            properties = self._catalog.current(deadline)
            prop = properties.get(name)
            if prop is None:
                held = sum(1 for known in properties.values() if known.groupName == self._group)
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
                    prop = self._create(audience_id, audience_name, deadline)
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
                self._reconcile(prop, audience_id, audience_name, deadline)
            resolution.names[audience_id] = name
        return resolution
