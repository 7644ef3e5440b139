"""The REST API under /pulp/api/v3/, shaped like Pulp's python plugin.

Resources and operations are declared as data (schema.py, resources.py); the routes, body
validation and (later) the OpenAPI document are all derived from those declarations.
"""
