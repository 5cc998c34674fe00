"""The HubSpot adapter: the only code that speaks HTTP to HubSpot."""
