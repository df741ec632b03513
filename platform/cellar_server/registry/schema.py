"""OpenAPI description of a pipeline step's task token on the registry endpoints steps call."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class StepTokenScheme(OpenApiAuthenticationExtension):
    target_class = "cellar_server.registry.step_auth.StepTokenAuthentication"
    name = "stepTokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A running pipeline step's task token (CELLAR_TOKEN inside the step).",
        }
