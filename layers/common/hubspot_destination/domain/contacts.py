"""Coalescing: the profiles of one batch merged into one change per contact, so no HubSpot request carries
the same contact twice (HubSpot refuses such a batch whole, hubspot-api.md §1.5)."""

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from hubspot_destination.domain.profiles import AttributeValue, AudienceUpdate, ProfileUpdate


@dataclass(frozen=True)
class ContactChange:
    """What must become true for one contact, and the profiles (`refs`) it came from.

    `attributes` maps property names to raw values (still to be coerced by the live property type) and
    `attribute_times` to when each was observed; `audiences` holds the newest status per audience id.
    """

    email: str
    refs: tuple[str, ...] = ()
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    attribute_times: Mapping[str, datetime] = field(default_factory=dict)
    audiences: Mapping[str, AudienceUpdate] = field(default_factory=dict)

    def without(self, attributes: Collection[str] = (), audiences: Collection[str] = ()) -> "ContactChange":
        """The same change less the named attributes and audiences."""
        return replace(
            self,
            attributes={n: v for n, v in self.attributes.items() if n not in attributes},
            attribute_times={n: t for n, t in self.attribute_times.items() if n not in attributes},
            audiences={a: s for a, s in self.audiences.items() if a not in audiences},
        )

    @property
    def empty(self) -> bool:
        return not self.attributes and not self.audiences


def coalesce(updates: Iterable[tuple[str, ProfileUpdate]]) -> dict[str, ContactChange]:
    """Merge `(ref, update)` pairs into one `ContactChange` per email: `{email: change}`.

    Attributes merge field by field, the newest `observed_at` winning; each audience keeps the status with
    the newest `qualified_at` (ties: the later profile).
    """
    refs: dict[str, list[str]] = {}
    values: dict[str, dict[str, AttributeValue]] = {}
    times: dict[str, dict[str, datetime]] = {}
    audiences: dict[str, dict[str, AudienceUpdate]] = {}
    for ref, update in sorted(updates, key=lambda pair: pair[1].observed_at):
        email = update.email
        refs.setdefault(email, []).append(ref)
        contact_values, contact_times = values.setdefault(email, {}), times.setdefault(email, {})
        for name, value in update.attributes.items():
            if name not in contact_times or update.observed_at >= contact_times[name]:
                contact_values[name], contact_times[name] = value, update.observed_at
        statuses = audiences.setdefault(email, {})
        for audience_id, status in update.audiences.items():
            current = statuses.get(audience_id)
            if current is None or status.qualified_at >= current.qualified_at:
                statuses[audience_id] = status
    return {
        email: ContactChange(email, tuple(refs[email]), values[email], times[email], audiences[email]) for email in refs
    }
