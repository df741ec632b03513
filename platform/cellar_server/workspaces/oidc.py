"""Cellar as an OpenID Connect provider (django-oauth-toolkit) for JupyterHub's sign-in.

Custom claims only reach the hub when they are mapped to a scope in `oidc_claim_scope`:
django-oauth-toolkit drops any claim whose scope was not granted (or is not mapped).
`groups` carries the user's team slugs, so Cellar stays the one source of truth for
membership: the hub resets its groups from this claim at every sign-in.
"""

from __future__ import annotations

from oauth2_provider.oauth2_validators import OAuth2Validator

from cellar_server.teams import selectors as team_selectors

GROUPS_SCOPE = "groups"


def user_claims(user) -> dict:
    memberships = team_selectors.teams_for_user(user=user)
    return {
        "preferred_username": user.get_username(),
        "email": user.email or "",
        "groups": sorted(team.slug for team, _role in memberships),
        "cellar_roles": {team.slug: role for team, role in memberships},
    }


class CellarOIDCValidator(OAuth2Validator):
    oidc_claim_scope = {
        **OAuth2Validator.oidc_claim_scope,
        "groups": GROUPS_SCOPE,
        "cellar_roles": GROUPS_SCOPE,
    }

    def get_additional_claims(self, request):
        return user_claims(request.user)
