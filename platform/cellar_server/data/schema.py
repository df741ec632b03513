"""OpenAPI description of a running step's task token on the data endpoints (drf-spectacular)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class TaskTokenScheme(OpenApiAuthenticationExtension):
    target_class = "cellar_server.data.access.TaskTokenAuthentication"
    name = "taskToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A running pipeline step's task token (CELLAR_TOKEN in its process): reads the "
            "secrets and connections its step declared, records data sets on its own run.",
        }
