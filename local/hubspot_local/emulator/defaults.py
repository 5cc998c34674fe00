"""HubSpot's default contact properties and property groups, as the Properties API returns them.

Shapes follow hubspot-api.md §2.2 (property object) and §2.4 (property group). The names, types, field
types and enumeration option values are HubSpot's documented defaults for contacts
(https://knowledge.hubspot.com/properties/hubspots-default-contact-properties). A real portal has several
hundred default properties; this is the subset an integration writing contact data meets, each with its
real ``type``/``fieldType``.
"""

from __future__ import annotations

from typing import Any

# A fixed creation time for built-in definitions, so snapshots are stable between runs.
_BUILT_IN_AT = "2019-08-06T02:41:08.224Z"

# source: hubspot-api.md §2.4 (contactinformation is the default contact group in HubSpot's examples)
DEFAULT_GROUPS: tuple[dict[str, Any], ...] = tuple(
    {"name": name, "label": label, "displayOrder": order, "archived": False}
    for order, (name, label) in enumerate(
        [
            ("contactinformation", "Contact information"),
            ("emailinformation", "Email information"),
            ("conversioninformation", "Conversion information"),
            ("socialmediainformation", "Social media information"),
            ("analyticsinformation", "Web analytics history"),
            ("sales_properties", "Sales properties"),
        ]
    )
)

LIFECYCLE_STAGES = (
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
)

LEAD_STATUSES = (
    ("NEW", "New"),
    ("OPEN", "Open"),
    ("IN_PROGRESS", "In Progress"),
    ("OPEN_DEAL", "Open Deal"),
    ("UNQUALIFIED", "Unqualified"),
    ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"),
    ("CONNECTED", "Connected"),
    ("BAD_TIMING", "Bad Timing"),
)

EMPLOYEE_RANGES = tuple((v, v) for v in ("1-5", "5-25", "25-50", "50-100", "100-500", "500-1000", "1000+"))


def _options(pairs: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    return [
        {"label": label, "value": value, "displayOrder": i, "hidden": False} for i, (value, label) in enumerate(pairs)
    ]


def _prop(
    name: str,
    label: str,
    type_: str = "string",
    field_type: str = "text",
    *,
    group: str = "contactinformation",
    options: tuple[tuple[str, str], ...] = (),
    calculated: bool = False,
    read_only: bool = False,
) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": type_,
        "fieldType": field_type,
        "groupName": group,
        "description": "",
        "options": _options(options),
        "displayOrder": -1,
        "hidden": False,
        "formField": not (calculated or read_only),
        "hasUniqueValue": False,
        "calculated": calculated,
        "externalOptions": False,
        "hubspotDefined": True,
        "archived": False,
        "createdAt": _BUILT_IN_AT,
        "updatedAt": _BUILT_IN_AT,
        "modificationMetadata": {
            "archivable": False,
            "readOnlyDefinition": True,
            "readOnlyOptions": not options,
            "readOnlyValue": calculated or read_only,
        },
    }


def default_properties() -> list[dict[str, Any]]:
    """Fresh copies of HubSpot's default contact properties (hubspotDefined: true)."""
    return [
        _prop("email", "Email"),
        _prop("firstname", "First Name"),
        _prop("lastname", "Last Name"),
        _prop("salutation", "Salutation"),
        _prop("address", "Street Address"),
        _prop("city", "City"),
        _prop("state", "State/Region"),
        _prop("zip", "Postal Code"),
        _prop("country", "Country/Region"),
        _prop("phone", "Phone Number", "string", "phonenumber"),
        _prop("mobilephone", "Mobile Phone Number", "string", "phonenumber"),
        _prop("fax", "Fax Number"),
        _prop("company", "Company Name"),
        _prop("jobtitle", "Job Title"),
        _prop("industry", "Industry"),
        _prop("website", "Website URL"),
        _prop("annualrevenue", "Annual Revenue"),
        _prop("date_of_birth", "Date of birth"),
        _prop("message", "Message", "string", "textarea"),
        _prop("twitterhandle", "Twitter Username", group="socialmediainformation"),
        _prop("numemployees", "Number of Employees", "enumeration", "select", options=EMPLOYEE_RANGES),
        _prop("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", options=LIFECYCLE_STAGES),
        _prop(
            "hs_lead_status",
            "Lead Status",
            "enumeration",
            "radio",
            group="sales_properties",
            options=LEAD_STATUSES,
        ),
        # `;`-separated secondary addresses. HubSpot maintains them (merges, the UI), the API cannot write
        # them; they are matched on email lookups (hubspot-api.md §1.6).
        _prop(
            "hs_additional_emails",
            "Additional email addresses",
            "string",
            "textarea",
            group="emailinformation",
            read_only=True,
        ),
        _prop("hs_email_domain", "Email Domain", group="emailinformation", calculated=True),
        _prop("hs_object_id", "Record ID", "number", "number", calculated=True),
        _prop("createdate", "Create Date", "datetime", "date", read_only=True),
        _prop("lastmodifieddate", "Last Modified Date", "datetime", "date", read_only=True),
    ]
