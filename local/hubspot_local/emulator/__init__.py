"""A local HubSpot CRM emulator (contacts and contact properties) for tests, replays and benchmarks.

Behaviour follows the project's HubSpot reference (``hubspot-api.md``); ``docs/emulator.md`` maps each rule
to its source and its test.
"""

from .faults import FaultConfig
from .portal import load_portal, parse_portal
from .server import DEFAULT_TOKEN, PRODUCT_SCOPES, HubSpotEmulator

__all__ = ["DEFAULT_TOKEN", "PRODUCT_SCOPES", "FaultConfig", "HubSpotEmulator", "load_portal", "parse_portal"]
