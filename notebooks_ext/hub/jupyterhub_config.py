"""JupyterHub for Cellar's single-machine mode (`make up`, the `hub` process; docs/workspaces.md).

- Sign-in: Cellar is the OpenID Connect provider; `CellarAuthenticator` (GenericOAuthenticator)
  signs users in with their Cellar user name and sets their hub groups to their Cellar teams at
  every sign-in (Cellar is the one source of truth; nothing is written back).
- Servers: SimpleLocalProcessSpawner, one JupyterLab per user under CELLAR_HOME/workspaces/<user>,
  started with --allow-root when the hub runs as root. Every server runs as the hub's own OS user:
  users are separated by the hub's routing and tokens, NOT by the operating system. This mode is
  for one person or a trusted group on one machine; deploy/hub/ runs each user in their own pod.
- Cellar drives the hub's REST API with a service token (cellar_server/workspaces/hub.py).

Everything comes from the environment, with the `make up` defaults:
CELLAR_HOME (var), CELLAR_HUB_URL (http://127.0.0.1:<CELLAR_PORT + 1>, the proxy users open),
CELLAR_HUB_INTERNAL_PORT (CELLAR_PORT + 81), CELLAR_HUB_PROXY_API_PORT (CELLAR_PORT + 2),
CELLAR_PUBLIC_URL (where browsers reach Cellar; default CELLAR_API_URL or http://127.0.0.1:8000),
CELLAR_API_URL (where the hub and the servers call Cellar), CELLAR_HUB_API_TOKEN, CELLAR_HUB_OAUTH_FILE,
CELLAR_HUB_BIND_URL (where the proxy listens; default CELLAR_HUB_URL: in a container, http://0.0.0.0:<port>).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from jupyterhub.spawner import SimpleLocalProcessSpawner
from oauthenticator.generic import GenericOAuthenticator

c = get_config()  # noqa: F821  (JupyterHub's config loader defines it)

REPO = Path(__file__).resolve().parents[2]
_home = Path(os.environ.get("CELLAR_HOME", "var"))
CELLAR_HOME = _home if _home.is_absolute() else REPO / _home
HUB_DIR = CELLAR_HOME / "hub"
HUB_DIR.mkdir(parents=True, exist_ok=True)

CELLAR_API_URL = os.environ.get("CELLAR_API_URL", "http://127.0.0.1:8000").rstrip("/")
CELLAR_PUBLIC_URL = (os.environ.get("CELLAR_PUBLIC_URL") or CELLAR_API_URL).rstrip("/")
# Ports follow CELLAR_PORT (8000: the hub on 8001, its proxy's API on 8002, the hub itself on 8081), so
# two `make up` instances with their own CELLAR_PORT do not collide.
_CELLAR_PORT = int(os.environ.get("CELLAR_PORT", "8000"))
HUB_URL = os.environ.get("CELLAR_HUB_URL", f"http://127.0.0.1:{_CELLAR_PORT + 1}").rstrip("/")
HUB_INTERNAL_PORT = int(os.environ.get("CELLAR_HUB_INTERNAL_PORT", str(_CELLAR_PORT + 81)))
PROXY_API_PORT = int(os.environ.get("CELLAR_HUB_PROXY_API_PORT", str(_CELLAR_PORT + 2)))


def _secret_file(variable: str, path: Path, what: str) -> str:
    if os.environ.get(variable):
        return os.environ[variable]
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        sys.exit(f"cellar hub: {what} is missing ({path}); run `python manage.py cellar_hub_setup` first.")


OAUTH = json.loads(
    _secret_file(
        "CELLAR_HUB_OAUTH_JSON",
        Path(os.environ.get("CELLAR_HUB_OAUTH_FILE") or HUB_DIR / "oauth-client.json"),
        "the hub's OAuth client",
    )
)
SERVICE_TOKEN = _secret_file("CELLAR_HUB_API_TOKEN", HUB_DIR / "service-token", "Cellar's hub service token")

# --- the hub and its proxy -------------------------------------------------------------------------

c.JupyterHub.bind_url = os.environ.get("CELLAR_HUB_BIND_URL") or HUB_URL
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{HUB_INTERNAL_PORT}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{PROXY_API_PORT}"
# Installed into the project by `make up` (npm, notebooks_ext/hub/package.json), never globally.
c.ConfigurableHTTPProxy.command = [str(Path(__file__).parent / "node_modules" / ".bin" / "configurable-http-proxy")]
c.JupyterHub.db_url = f"sqlite:///{HUB_DIR / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(HUB_DIR / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(HUB_DIR / "jupyterhub.pid")
# Not the default (jupyterhub-proxy.pid in the working directory): a second instance started from the
# same folder would read it and kill this instance's proxy.
c.ConfigurableHTTPProxy.pid_file = str(HUB_DIR / "jupyterhub-proxy.pid")
# POST /users/<name>/server answers 202 at once while the server spawns; Cellar's page polls.
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}
c.JupyterHub.cleanup_servers = True

# --- sign-in through Cellar ------------------------------------------------------------------------------


class CellarAuthenticator(GenericOAuthenticator):
    """Users and their groups come from Cellar's claims; hub roles are never a second source of truth."""

    async def update_auth_model(self, auth_model):
        auth_model = await super().update_auth_model(auth_model)
        # With manage_roles, roles must be role dicts (strings crash the callback) and any role not
        # listed is stripped, so `user` must be there. Nobody becomes a hub admin through the hub:
        # an admin could open other users' servers.
        auth_model["roles"] = [{"name": "user"}]
        auth_model["admin"] = False
        return auth_model


c.JupyterHub.authenticator_class = CellarAuthenticator
c.CellarAuthenticator.client_id = OAUTH["client_id"]
c.CellarAuthenticator.client_secret = OAUTH["client_secret"]
c.CellarAuthenticator.oauth_callback_url = f"{HUB_URL}/hub/oauth_callback"
c.CellarAuthenticator.authorize_url = f"{CELLAR_PUBLIC_URL}/o/authorize/"  # the browser goes there
c.CellarAuthenticator.token_url = f"{CELLAR_API_URL}/o/token/"  # the hub calls these two
c.CellarAuthenticator.userdata_url = f"{CELLAR_API_URL}/o/userinfo/"
c.CellarAuthenticator.scope = ["openid", "profile", "email", "groups"]
c.CellarAuthenticator.username_claim = "preferred_username"
c.CellarAuthenticator.login_service = "Cellar"
c.CellarAuthenticator.auto_login = True
c.CellarAuthenticator.enable_pkce = True
c.CellarAuthenticator.allow_all = True  # every active Cellar user; Cellar decides who that is
c.CellarAuthenticator.manage_groups = True
c.CellarAuthenticator.auth_state_groups_key = "oauth_user.groups"
c.CellarAuthenticator.manage_roles = True
c.CellarAuthenticator.reset_managed_roles_on_startup = False

# --- Cellar's service account ------------------------------------------------------------------------

c.JupyterHub.services = [{"name": "cellar", "api_token": SERVICE_TOKEN}]
c.JupyterHub.load_roles = [
    {
        "name": "cellar-service",
        "services": ["cellar"],
        "scopes": ["admin:users", "admin:servers", "admin:groups", "list:users", "read:users"],
    }
]

# --- one JupyterLab per user, on this machine --------------------------------------------------------

PROFILES = {
    "cpu": {"display_name": "CPU", "cpu_limit": 2.0, "mem_limit": "8G"},
    "gpu": {"display_name": "GPU", "cpu_limit": 8.0, "mem_limit": "32G", "gpus": 1},
}
NOTEBOOKS_EXT = Path(__file__).resolve().parents[1]


class CellarLocalSpawner(SimpleLocalProcessSpawner):
    """SimpleLocalProcessSpawner with Cellar's profiles and kernels that already know Cellar.

    Profiles only label the server here (one machine, one OS user: limits are not enforced);
    KubeSpawner turns them into pod resources (deploy/hub/).
    """

    def options_from_form(self, formdata):
        return {"profile": (formdata.get("profile") or ["cpu"])[0]}

    def _options_form_default(self):
        radios = "".join(
            f'<label><input type="radio" name="profile" value="{slug}" {"checked" if slug == "cpu" else ""}> '
            f"{p['display_name']}</label><br>"
            for slug, p in PROFILES.items()
        )
        return radios

    def get_env(self):
        env = super().get_env()
        profile = PROFILES.get((self.user_options or {}).get("profile", "cpu"), PROFILES["cpu"])
        home = Path(self.home_dir_template.format(username=self.user.name))
        env.update(
            {
                "CELLAR_URL": CELLAR_API_URL,
                "CELLAR_PUBLIC_URL": CELLAR_PUBLIC_URL,
                # The server extension writes fresh kernel tokens here; the SDK rereads it.
                "CELLAR_TOKEN_FILE": str(home / ".cellar" / "token.json"),
                "CELLAR_WORKSPACE_PROFILE": (self.user_options or {}).get("profile", "cpu"),
                "CPU_LIMIT": str(profile["cpu_limit"]),
                "MEM_LIMIT": profile["mem_limit"],
                # The prebuilt JupyterLab extension (built by `make up` into notebooks_ext/jupyter-data).
                "JUPYTER_PATH": os.pathsep.join(
                    [str(NOTEBOOKS_EXT / "jupyter-data"), os.environ.get("JUPYTER_PATH", "")]
                ).rstrip(os.pathsep),
                "PYTHONPATH": os.pathsep.join([str(NOTEBOOKS_EXT), os.environ.get("PYTHONPATH", "")]).rstrip(
                    os.pathsep
                ),
            }
        )
        return env


c.JupyterHub.spawner_class = CellarLocalSpawner
c.Spawner.cmd = [str(Path(sys.executable).parent / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.args = ["--ServerApp.jpserver_extensions={'cellar_notebooks': True}"]
if os.geteuid() == 0:
    # jupyter-server refuses root without it, and the hub would only time out ("never showed up").
    c.Spawner.args.append("--allow-root")
c.SimpleLocalProcessSpawner.home_dir_template = str(CELLAR_HOME / "workspaces" / "{username}")
c.Spawner.http_timeout = 120
c.Spawner.start_timeout = 180
c.Spawner.env_keep = ["PATH", "LANG", "LC_ALL", "PYTHONUNBUFFERED", "CELLAR_TOKEN_CHECK_SECONDS"]

print(f"cellar hub: {HUB_URL} (sign-in at {CELLAR_PUBLIC_URL}), state in {HUB_DIR}", file=sys.stderr)
