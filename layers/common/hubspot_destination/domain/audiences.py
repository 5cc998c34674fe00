"""Audience properties: one custom HubSpot contact property per AEP audience, holding its status.

The internal name is derived from the audience id alone, so it is deterministic, stable when the audience
is renamed (a rename changes the label only) and collision-free between ids. Only memberships write it, in
order; an attribute never does (it could reverse an exit).
"""

import hashlib
import re

from hubspot_destination.limits import HUBSPOT_NAME_MAX

AUDIENCE_PREFIX = "aep_"
STATUSES = ("realized", "existing", "exited")
# HubSpot internal names: lowercase letters, digits and underscores, starting with a letter, at most
# 100 characters (hubspot-api.md §2.3).
_SLUG_MAX = HUBSPOT_NAME_MAX - len(AUDIENCE_PREFIX) - 1 - 10
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


def is_audience_property(name: str, group_of_property: str | None, audience_group: str) -> bool:
    """Whether `name` is an audience property: named as one, or in the audience property group."""
    return bool(_AUDIENCE_NAME.fullmatch(name)) or group_of_property == audience_group
