"""The REST API under /pulp/api/v3/, shaped like Pulp's python plugin: a resource table
(resources), the operations generated from it (crud), the hand-written ones (actions), status,
and the API document derived from all of them (openapi); routes lists them all.

Nothing is imported here, so the CLI's REST client can read the kinds table (kinds) alone."""
