"""OpenAPI description of the serve credential (drf-spectacular extension)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ServeCredentialScheme(OpenApiAuthenticationExtension):
    target_class = "cellar_server.serving.credentials.ServeCredentialAuthentication"
    name = "serveCredential"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The serve credential (CELLAR_SERVE_TOKEN) serve processes send.",
        }
