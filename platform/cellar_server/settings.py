"""Django settings: one module, driven by environment variables.

Nothing exists only in production: every production behaviour is switched on
by a variable (DATABASE_URL, REDIS_URL, ARTIFACT_STORE_URL, CELLAR_DEBUG, …)
whose local default is the embedded single-machine mode.
"""

from __future__ import annotations

import importlib.util
import os

import dj_database_url

from cellar_server import config

REPO_ROOT = config.REPO_ROOT
CELLAR_HOME = config.cellar_home()

DEBUG = config.env_bool("CELLAR_DEBUG", False)
SECRET_KEY_FROM_ENV = bool(os.environ.get("CELLAR_SECRET_KEY"))
SECRET_KEY = os.environ.get("CELLAR_SECRET_KEY") or "insecure-local-only-" + str(CELLAR_HOME)
ALLOWED_HOSTS = [h for h in os.environ.get("CELLAR_ALLOWED_HOSTS", "*").split(",") if h]
# Behind HTTPS, set CELLAR_SECURE_COOKIES=1 so session and CSRF cookies never travel in clear.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = config.env_bool("CELLAR_SECURE_COOKIES", False)
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CELLAR_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "cellar_server.core",
    "cellar_server.teams",
    "cellar_server.tracking",
    "cellar_server.pipelines",
    "cellar_server.compute",
    "cellar_server.data",
    "cellar_server.serving",
    "cellar_server.registry",
    "cellar_server.abtests",
]

MIDDLEWARE = [
    "cellar_server.core.middleware.RequestLogMiddleware",
    "cellar_server.core.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "cellar_server.urls"
WSGI_APPLICATION = "cellar_server.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [REPO_ROOT / "frontend" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "cellar_server.core.navigation.navigation",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------
DATABASE_URL = config.database_url()
# Persistent connections: opening one per request costs more than most requests
# (and on SQLite closing the last one checkpoints the WAL with fsyncs).
_db = dj_database_url.parse(DATABASE_URL, conn_max_age=600, conn_health_checks=True)
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write
    # lock at BEGIN so two writers queue instead of failing with "locked".
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    }
    # Tests use a file too, not shared-cache memory, so that concurrency behaves as in production.
    _db["TEST"] = {"NAME": str(CELLAR_HOME / f"test-cellar-{os.getpid()}.sqlite3")}
    CELLAR_HOME.mkdir(parents=True, exist_ok=True)
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth ---------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "teams:list"
LOGOUT_REDIRECT_URL = "login"

# --- I18N / time ---------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- Static files ----------------------------------------------------------
STATIC_URL = "/static/"
# Unset by default: whitenoise serves from the finders; set it for `collectstatic` in images.
STATIC_ROOT = os.environ.get("CELLAR_STATIC_ROOT") or None
STATICFILES_DIRS = [
    REPO_ROOT / "frontend" / "static",
    # Plotly.js ships inside the `plotly` wheel: served locally, no CDN.
    ("vendor/plotly", os.path.join(os.path.dirname(importlib.util.find_spec("plotly").origin), "package_data")),
]
# Serve straight from the finders: no collectstatic step for `make up`.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- Request limits --------------------------------------------------------
CELLAR_MAX_BODY_BYTES = config.env_int("CELLAR_MAX_BODY_BYTES", 10 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = CELLAR_MAX_BODY_BYTES
# Artifact uploads stream to disk, so they may be far larger than other bodies.
CELLAR_MAX_ARTIFACT_BYTES = config.env_int("CELLAR_MAX_ARTIFACT_BYTES", 5 * 1024**3)

# --- Broker, artifacts ------------------------------------------------------
REDIS_URL = config.redis_url()
ARTIFACT_STORE_URL = config.artifact_store_url()

CELERY_BROKER_URL = config.celery_broker_url(REDIS_URL)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "control"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = False
# The control worker logs through LOGGING below (JSON), like the web process.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Pipelines ---------------------------------------------------------------
# The pools steps may ask for: JSON {"cpu": {"cpu": 8, "memory": "32GiB"}, "gpu": {..., "gpu": 1}}.
# Unset: one `cpu` pool with this machine's cores and memory (cellar_server/pipelines/pools.py).
CELLAR_POOLS = os.environ.get("CELLAR_POOLS", "")
# Compute (cellar_server/compute, docs/compute.md). The worker credential agents and autoscalers
# send; unset, it is derived from the secret key (`manage.py cellar_worker_token` prints it).
CELLAR_WORKER_TOKEN = os.environ.get("CELLAR_WORKER_TOKEN", "")
# Serving (cellar_server/serving, docs/serving.md): the credential serve processes send (unset:
# derived from the secret key; `manage.py cellar_serve_token` prints it) and where callers reach serve.
CELLAR_SERVE_TOKEN = os.environ.get("CELLAR_SERVE_TOKEN", "")
# Days of per-minute prediction stats kept per deployment (sampled inputs: the newest 5,000 per version).
CELLAR_SERVING_STATS_DAYS = config.env_int("CELLAR_SERVING_STATS_DAYS", 30)
CELLAR_SERVE_PUBLIC_URL = os.environ.get("CELLAR_SERVE_URL") or (
    f"http://127.0.0.1:{config.env_int('CELLAR_SERVE_PORT', config.env_int('CELLAR_PORT', 8000) + 3)}"
)
# 1: the `gpu` pool may run on a machine without a GPU (tests, the demo); its tasks say so.
CELLAR_GPU_FALLBACK = config.env_bool("CELLAR_GPU_FALLBACK", False)
# Seconds without a heartbeat before a worker is shown as gone.
CELLAR_WORKER_STALE_S = config.env_int("CELLAR_WORKER_STALE_S", 30)
# Recognises a pipeline step's task token where a step calls the API (core/task_tokens.py).
CELLAR_TASK_TOKEN_RESOLVER = "cellar_server.pipelines.engine.tokens.task_token_grant"

# --- Engine (cellar_server/pipelines/engine/settings.py reads these) --------------------------
# Where pool agents answer; `make up` exports it to every process.
CELLAR_API_URL = os.environ.get("CELLAR_API_URL", "http://127.0.0.1:8000")
# Seconds a dispatched task may wait unclaimed before the reconciler checks its message still exists.
CELLAR_ENGINE_CLAIM_GRACE = config.env_int("CELLAR_ENGINE_CLAIM_GRACE", 120)
# Seconds a claim or heartbeat keeps a running task's lease (agents beat every ~5 s).
CELLAR_ENGINE_LEASE_TTL = config.env_int("CELLAR_ENGINE_LEASE_TTL", 30)
CELLAR_ENGINE_MAX_LOST = config.env_int("CELLAR_ENGINE_MAX_LOST", 3)
# Most tasks per broker message: an integer, or JSON per pool {"cpu": 200, "gpu": 1}.
CELLAR_ENGINE_MAX_BATCH = os.environ.get("CELLAR_ENGINE_MAX_BATCH", "200")
# Messages in flight per pool worker (the pool's window).
CELLAR_ENGINE_WINDOW_FACTOR = config.env_int("CELLAR_ENGINE_WINDOW_FACTOR", 2)
# Total concurrency of each pool's agents: an integer, or JSON per pool {"cpu": 8, "gpu": 2}.
# Unset: each pool's capacity in the compute app (max workers x concurrency).
CELLAR_ENGINE_POOL_WORKERS = os.environ.get("CELLAR_ENGINE_POOL_WORKERS", "")
# Seconds a dispatch request waits before it runs (requests coalesce without a wait).
CELLAR_ENGINE_DISPATCH_DEBOUNCE = float(os.environ.get("CELLAR_ENGINE_DISPATCH_DEBOUNCE", "0"))
# Seconds of a step's measured task time per message, and tasks per message while unknown.
CELLAR_ENGINE_BATCH_SECONDS = float(os.environ.get("CELLAR_ENGINE_BATCH_SECONDS", "1"))
CELLAR_ENGINE_PROBE_BATCH = config.env_int("CELLAR_ENGINE_PROBE_BATCH", 10)
CELLAR_ENGINE_RECONCILE_INTERVAL = config.env_int("CELLAR_ENGINE_RECONCILE_INTERVAL", 5)
CELLAR_ENGINE_SCHEDULES_INTERVAL = config.env_int("CELLAR_ENGINE_SCHEDULES_INTERVAL", 15)
# --- Data layer (cellar_server/data, docs/data.md) ----------------------------------------------
from cellar_server.data import keys as _data_keys  # noqa: E402  (no Django imports)

# Fernet keys for team secrets: CELLAR_SECRETS_KEY (comma-separated, first encrypts), else a key
# generated once under CELLAR_HOME.
CELLAR_SECRETS_KEYS = _data_keys.secrets_keys()
# Seconds a blob written or re-used stays safe from the garbage collector, referenced or not.
CELLAR_GC_GRACE_S = float(os.environ.get("CELLAR_GC_GRACE_S", str(6 * 3600)))
CELLAR_GC_INTERVAL = config.env_int("CELLAR_GC_INTERVAL", 24 * 3600)

# The control worker runs `--beat` (Procfile). `expires`: a tick that waited longer than its own
# interval (control was down) is dropped rather than run in a pile-up.
CELERY_BEAT_SCHEDULE = {
    "data-gc": {
        "task": "cellar.data.gc",
        "schedule": float(CELLAR_GC_INTERVAL),
        "options": {"expires": float(CELLAR_GC_INTERVAL)},
    },
    "engine-reconcile": {
        "task": "cellar.engine.reconcile",
        "schedule": float(CELLAR_ENGINE_RECONCILE_INTERVAL),
        "options": {"expires": float(CELLAR_ENGINE_RECONCILE_INTERVAL)},
    },
    "engine-schedules": {
        "task": "cellar.engine.schedules",
        "schedule": float(CELLAR_ENGINE_SCHEDULES_INTERVAL),
        "options": {"expires": float(CELLAR_ENGINE_SCHEDULES_INTERVAL)},
    },
    # A/B tests: running tests' per-arm aggregates are recomputed this often (seconds).
    "abtests-refresh": {
        "task": "cellar.abtests.refresh",
        "schedule": float(os.environ.get("CELLAR_ABTEST_REFRESH_SECONDS", "300")),
        "options": {"expires": float(os.environ.get("CELLAR_ABTEST_REFRESH_SECONDS", "300"))},
    },
}

# --- REST API ----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: its `authenticate_header` makes anonymous API calls 401.
        "cellar_server.teams.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "cellar_server.core.pagination.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "cellar_server.core.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Cellar API",
    "DESCRIPTION": "Cellar's REST API: teams, members, tokens, quotas and the audit log.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from the drf-spectacular-sidecar wheel: the machines have no internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Logging: one JSON object per line ------------------------------------
LOG_LEVEL = os.environ.get("CELLAR_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "cellar_server.core.logging.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "django.request": {"level": "ERROR"},
    },
}

# --- Workspaces: JupyterHub behind Cellar's sign-in (cellar_server/workspaces, docs/workspaces.md) ----
from cellar_server.workspaces import keys as _workspace_keys  # noqa: E402  (no Django imports)

INSTALLED_APPS += ["oauth2_provider", "cellar_server.workspaces"]
# Where browsers reach Cellar and the hub (links in pages and in the notebook's promote dialog).
CELLAR_PUBLIC_URL = os.environ.get("CELLAR_PUBLIC_URL") or CELLAR_API_URL
# Default: the port after Cellar's own (notebooks_ext/hub/jupyterhub_config.py derives it the same way).
CELLAR_HUB_PUBLIC_URL = (
    os.environ.get("CELLAR_HUB_URL") or f"http://127.0.0.1:{config.env_int('CELLAR_PORT', 8000) + 1}"
)
# Where Cellar calls the hub's REST API (the proxy forwards /hub/api/ to the hub).
CELLAR_HUB_API_URL = os.environ.get("CELLAR_HUB_API_URL") or CELLAR_HUB_PUBLIC_URL
CELLAR_HUB_OAUTH_CALLBACK = CELLAR_HUB_PUBLIC_URL.rstrip("/") + "/hub/oauth_callback"
# The profiles a user picks from when starting a server; the hub's spawner maps the slugs to resources
# (notebooks_ext/hub/jupyterhub_config.py locally, deploy/hub/ on Kubernetes).
CELLAR_WORKSPACE_PROFILES = [
    {"slug": "cpu", "display_name": "CPU", "description": "2 CPUs, 8 GiB memory"},
    {"slug": "gpu", "display_name": "GPU", "description": "1 NVIDIA GPU, 8 CPUs, 32 GiB memory"},
]
OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": _workspace_keys.oidc_private_key(),
    "OAUTH2_VALIDATOR_CLASS": "cellar_server.workspaces.oidc.CellarOIDCValidator",
    "SCOPES": {
        "openid": "Sign in with your Cellar account",
        "profile": "Your user name",
        "email": "Your email address",
        "groups": "The teams you belong to, and your role in each",
    },
    "DEFAULT_SCOPES": ["openid", "profile"],
    "PKCE_REQUIRED": True,
    "ACCESS_TOKEN_EXPIRE_SECONDS": config.env_int("CELLAR_OAUTH_ACCESS_TOKEN_SECONDS", 3600),
}
