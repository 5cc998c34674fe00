"""Pure rules and models: no AWS, no HTTP. Everything here is unit-tested without sockets."""
