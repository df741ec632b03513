"""OpenAPI description of the hub token a notebook server trades for kernel tokens (drf-spectacular)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class HubServerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "cellar_server.workspaces.apis.HubServerTokenAuthentication"
    name = "hubToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`token <JUPYTERHUB_API_TOKEN>` of a user's notebook server; Cellar asks the hub whose.",
        }
