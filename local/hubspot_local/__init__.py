"""Local tooling, never deployed: the HubSpot emulator, the local pipeline runner and the CLI."""
