"""OpenAPI description of the worker credential (drf-spectacular extension)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class WorkerCredentialScheme(OpenApiAuthenticationExtension):
    target_class = "cellar_server.compute.credentials.WorkerCredentialAuthentication"
    name = "workerCredential"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The worker credential (CELLAR_WORKER_TOKEN) pool agents and autoscalers send.",
        }
