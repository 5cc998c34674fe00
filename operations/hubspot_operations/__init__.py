"""Commands for operators of a deployed stack (`hubspot-destination dead-letters`, `redrive`): they act on the
stack's own queues in AWS, or on a local stand-in with `--endpoint-url`. Nothing here is deployed."""
