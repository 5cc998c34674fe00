"""Commands for operators of a deployed stack: `hubspot-destination dead-letters` and `redrive` act on the
stack's own queues in AWS, or on a local stand-in with `--endpoint-url`; `verify` reads back what landed in the
HubSpot portal (or the local emulator). Nothing here is deployed; `request_file` reads the request files the
tools take."""
