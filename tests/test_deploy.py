"""Deployment files agree with the code: docker-compose, the Dockerfiles, the pins, the distributions.

No Docker daemon is needed: the files are parsed and checked against the compose JSON schema,
the Procfile, requirements.txt and the pyproject files.
"""

from __future__ import annotations

import ast
import copy
import importlib.metadata
import importlib.resources
import json
import re
import shlex
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
SERVER_DOCKERFILE = REPO / "deploy" / "Dockerfile.server"
WORKER_DOCKERFILE = REPO / "deploy" / "Dockerfile.worker"
WORKER_REQUIREMENTS = REPO / "deploy" / "requirements-worker.txt"

SERVICES = {"postgres", "redis", "migrate", "web", "control", "worker-cpu", "worker-gpu", "serve", "hub"}
NO_DATABASE_SERVICES = ("worker-cpu", "worker-gpu", "serve")
PROCFILE_TWINS = ("web", "control")


# --- helpers ----------------------------------------------------------------------------------


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _services() -> dict[str, dict]:
    return _compose()["services"]


def _environment(service: dict) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) for item in env)
        return {p[0]: (p[1] if len(p) > 1 else None) for p in pairs}
    return dict(env)


def _as_argv(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def _procfile() -> dict[str, list[str]]:
    programs = {}
    for line in (REPO / "Procfile").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, command = line.split(":", 1)
        programs[name.strip()] = shlex.split(command)
    return programs


def _dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, f"{path.name} ends inside a continued line"
    return instructions


def _dockerfile_env(path: Path) -> dict[str, str]:
    env = {}
    for keyword, args in _dockerfile(path):
        if keyword not in ("ENV", "ARG"):
            continue
        words = shlex.split(args)
        if keyword == "ENV" and len(words) >= 2 and "=" not in words[0]:
            env[words[0]] = " ".join(words[1:])  # legacy `ENV KEY value`
            continue
        for word in words:
            key, _, value = word.partition("=")
            env[key] = value
    return env


def _exec_form(path: Path, keyword: str) -> list[str] | None:
    found = [args for kw, args in _dockerfile(path) if kw == keyword]
    if not found:
        return None
    args = found[-1]
    assert args.startswith("["), f"{path.name}: {keyword} should use the exec (JSON) form, got {args!r}"
    return json.loads(args)


def _effective_argv(service: dict, dockerfile: Path) -> list[str]:
    """What the container runs: the compose entrypoint/command over the image's ENTRYPOINT/CMD."""
    if "entrypoint" in service:
        # A compose entrypoint clears the image's CMD.
        return _as_argv(service["entrypoint"]) + _as_argv(service.get("command"))
    entrypoint = _exec_form(dockerfile, "ENTRYPOINT") or []
    command = _as_argv(service["command"]) if "command" in service else (_exec_form(dockerfile, "CMD") or [])
    return entrypoint + command


def _matches_procfile(compose_argv: list[str], procfile_argv: list[str]) -> list[str]:
    """Differences between two command lines, word by word; a Procfile word with `$` matches any value."""
    if len(compose_argv) != len(procfile_argv):
        return [f"{len(compose_argv)} words vs the Procfile's {len(procfile_argv)}"]
    return [
        f"word {i}: {ours!r} vs the Procfile's {theirs!r}"
        for i, (ours, theirs) in enumerate(zip(compose_argv, procfile_argv, strict=True))
        if ours != theirs and "$" not in theirs
    ]


def _pins(path: Path) -> dict[str, tuple[str, str]]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        assert "==" in line, f"{path.name}: {line!r} is not an exact pin"
        name, version = line.split("==", 1)
        pins[_norm(name)] = (name.strip(), version.strip())
    return pins


def _pyproject(path: str) -> dict:
    return tomllib.loads((REPO / path).read_text())["project"]


# --- (a) the compose file is valid ------------------------------------------------------------


def _compose_validator() -> jsonschema.protocols.Validator:
    schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def test_compose_file_matches_the_compose_schema():
    errors = sorted(_compose_validator().iter_errors(_compose()), key=lambda e: e.json_path)
    report = "\n".join(f"{e.json_path}: {e.message}" for e in errors)
    assert not errors, f"docker-compose.yml does not match the compose schema:\n{report}"


def test_compose_schema_check_catches_a_broken_file():
    broken = copy.deepcopy(_compose())
    broken["services"]["web"]["ports"] = "8000:8000"  # must be a list
    broken["services"]["redis"]["restrt"] = "always"  # unknown key
    paths = {e.json_path for e in _compose_validator().iter_errors(broken)}
    assert "$.services.web.ports" in paths
    assert any(p.startswith("$.services.redis") for p in paths)


# --- (b) services, GPU, the trust boundary ------------------------------------------------------


def test_compose_defines_every_service():
    missing = SERVICES - set(_services())
    assert not missing, f"docker-compose.yml lacks: {sorted(missing)}"


def test_worker_gpu_reserves_an_nvidia_gpu():
    gpu = _services()["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]} in [
        {k: d.get(k) for k in ("driver", "count", "capabilities")} for d in devices
    ]
    assert _effective_argv(gpu, WORKER_DOCKERFILE) == ["cellar-worker", "--pool", "gpu"]


@pytest.mark.parametrize("name", NO_DATABASE_SERVICES)
def test_workers_and_serve_hold_no_database_credentials(name):
    service = _services()[name]
    env = _environment(service)
    assert "DATABASE_URL" not in env
    assert not [k for k in env if k.startswith("POSTGRES") or k == "CELLAR_SECRET_KEY"], env
    assert "env_file" not in service, "an env_file could smuggle DATABASE_URL in"
    assert "postgres" not in (service.get("depends_on") or {})
    assert service.get("build", {}).get("dockerfile") == "deploy/Dockerfile.worker"


def test_pool_agents_get_the_broker():
    for name in ("worker-cpu", "worker-gpu"):
        assert _environment(_services()[name]).get("REDIS_URL", "").startswith("redis://redis:")


def test_server_processes_share_postgres_redis_and_the_artifact_volume():
    services = _services()
    for name in ("migrate", "web", "control"):
        env = _environment(services[name])
        assert env["DATABASE_URL"].startswith("postgres://"), name
        assert env["REDIS_URL"].startswith("redis://redis:"), name
        assert env["ARTIFACT_STORE_URL"] == "file:///data/artifacts", name
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile.server", name
    for name in ("web", "control"):
        assert "artifacts:/data/artifacts" in services[name]["volumes"], name
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name
    assert "artifacts" in _compose()["volumes"]
    assert "8000:8000" in services["web"]["ports"]


def test_migrate_job_migrates_then_initialises():
    migrate = _services()["migrate"]
    script = " ".join(_effective_argv(migrate, SERVER_DOCKERFILE))
    assert "python manage.py migrate --noinput && python manage.py cellar_init" in script
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_backing_services():
    services = _services()
    assert services["postgres"]["image"] == "postgres:16"
    assert "pg_isready" in " ".join(_as_argv(services["postgres"]["healthcheck"]["test"]))
    redis_argv = _as_argv(services["redis"]["command"])
    assert services["redis"]["image"] == "redis:7"
    assert redis_argv[redis_argv.index("--maxmemory-policy") + 1] == "noeviction"


def test_optional_processes_sit_behind_profiles():
    services = _services()
    assert services["serve"]["profiles"] == ["serving"]
    assert services["hub"]["profiles"] == ["workspaces"]


HUB_DOCKERFILE = REPO / "deploy" / "Dockerfile.hub"


def test_hub_runs_cellars_configuration_from_its_own_image():
    hub = _services()["hub"]
    assert hub["build"]["dockerfile"] == "deploy/Dockerfile.hub"
    text = HUB_DOCKERFILE.read_text()
    # The same pins and lock files `make up` uses, and the same configuration file.
    assert "pip install -r notebooks_ext/requirements-hub.txt" in text
    assert "npm ci" in text and "npm run build" in text
    assert "notebooks_ext/hub/jupyterhub_config.py" in text
    env = _environment(hub)
    assert env["CELLAR_API_URL"] == "http://web:8000"
    assert env["CELLAR_HUB_BIND_URL"].startswith("http://0.0.0.0:")
    assert "DATABASE_URL" not in env and "CELLAR_SECRET_KEY" not in env


def test_hub_web_and_migrate_share_the_hub_secrets_volume():
    # migrate writes the OAuth client and service token under CELLAR_HOME/hub; web signs ID tokens with the
    # key there; the hub reads the client and the token. One named volume at CELLAR_HOME for the three.
    services = _services()
    for name in ("migrate", "web", "hub"):
        assert "cellar-home:/data/cellar" in services[name]["volumes"], name
    assert "cellar-home" in _compose()["volumes"]
    assert _environment(services["web"])["CELLAR_HUB_API_URL"] == "http://hub:8001"


def test_serve_runs_the_model_server_once_it_exists():
    serve_argv = " ".join(_effective_argv(_services()["serve"], WORKER_DOCKERFILE))
    module_exists = (REPO / "workers" / "cellar_worker" / "serve.py").is_file() or (
        REPO / "workers" / "cellar_worker" / "serve" / "__init__.py"
    ).is_file()
    if module_exists:
        assert "cellar_worker.serve" in serve_argv, "cellar_worker.serve exists now: run it in the serve service"
    else:
        assert "cellar_worker.serve" not in serve_argv, "serve runs a module that does not exist"


# --- (c) compose runs the Procfile's commands -----------------------------------------------------


@pytest.mark.parametrize("name", PROCFILE_TWINS)
def test_compose_runs_the_procfile_command(name):
    procfile = _procfile()
    assert name in procfile, f"the Procfile has no {name!r} program"
    dockerfile = WORKER_DOCKERFILE if name.startswith("worker") else SERVER_DOCKERFILE
    compose_argv = _effective_argv(_services()[name], dockerfile)
    # Same executable, arguments and options in the same order; only the values the Procfile takes
    # from the environment (bind address, worker counts) may differ.
    differences = _matches_procfile(compose_argv, procfile[name])
    assert not differences, f"{name}: {compose_argv} does not run the Procfile's command: {differences}"


def test_the_procfile_scales_pool_agents_with_the_supervisor():
    # `make up` runs the local supervisor (workers/cellar_worker/supervisor.py), not a fixed agent; the
    # compose services run the agent it starts, `cellar-worker --pool <name>`, at fixed counts.
    procfile = _procfile()
    assert procfile["workers"] == ["cellar-worker", "supervise"]
    assert not [name for name in procfile if name.startswith("worker-")]
    for name, pool in (("worker-cpu", "cpu"), ("worker-gpu", "gpu")):
        assert _effective_argv(_services()[name], WORKER_DOCKERFILE) == ["cellar-worker", "--pool", pool]
    assert "CELLAR_WORKER_TOKEN" in (REPO / "Makefile").read_text()


# --- (d) the Dockerfiles -------------------------------------------------------------------------------


def test_server_dockerfile():
    instructions = _dockerfile(SERVER_DOCKERFILE)
    env = _dockerfile_env(SERVER_DOCKERFILE)
    assert instructions[0] == ("FROM", "python:3.11-slim")
    assert env["PYTHONPATH"] == "/app/platform"
    assert env["DJANGO_SETTINGS_MODULE"] == "cellar_server.settings"
    assert "DATABASE_URL" not in env, "credentials come from the environment at run time, not the image"
    runs = " ".join(args for kw, args in instructions if kw == "RUN")
    assert "pip install -r requirements.txt" in runs
    assert re.search(r"pip install [^&]*\./sdk [^&]*\./workers [^&]*\.(\s|$)", runs), runs
    cmd = " ".join(_exec_form(SERVER_DOCKERFILE, "CMD"))
    assert "gunicorn cellar_server.wsgi" in cmd


@pytest.mark.parametrize("path", [SERVER_DOCKERFILE, WORKER_DOCKERFILE], ids=lambda p: p.name)
def test_images_run_as_a_non_root_user(path):
    users = [args for kw, args in _dockerfile(path) if kw == "USER"]
    assert users, f"{path.name} never switches away from root"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_worker_dockerfile_installs_no_django():
    instructions = _dockerfile(WORKER_DOCKERFILE)
    copies = [args for kw, args in instructions if kw in ("COPY", "ADD")]
    runs = [args for kw, args in instructions if kw == "RUN"]
    for args in copies + runs:
        assert not re.search(r"(?<![-\w])requirements\.txt", args), f"installs requirements.txt: {args}"
    for args in copies:
        sources = shlex.split(args)[:-1]
        assert not any(s.rstrip("/") in ("pyproject.toml", "platform", ".", "manage.py") for s in sources), args
    for args in runs:
        for words in (shlex.split(part) for part in args.split("&&")):
            if words[:2] == ["pip", "install"]:
                assert "." not in words and "-e." not in words, f"the worker image installs the server: {args}"
                assert not any("django" in w.lower() for w in words), args
    assert "pip install -r requirements-worker.txt" in " ".join(runs)
    assert "DATABASE_URL" not in _dockerfile_env(WORKER_DOCKERFILE)
    assert _exec_form(WORKER_DOCKERFILE, "ENTRYPOINT") == ["cellar-worker"]


def test_sdk_and_worker_code_never_import_django():
    offenders = []
    for source in [*(REPO / "sdk").rglob("*.py"), *(REPO / "workers").rglob("*.py")]:
        for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            bad = [n for n in names if n.split(".")[0] in ("django", "cellar_server")]
            offenders += [f"{source.relative_to(REPO)}: {n}" for n in bad]
    assert not offenders, offenders


def test_dockerignore_keeps_local_state_out_of_the_build_context():
    patterns = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines() if line.strip()}
    for needed in (".venv", "var", ".git", "test-artifacts"):
        assert needed in patterns, needed
    assert patterns & {"node_modules", "**/node_modules"}
    assert patterns & {"__pycache__", "**/__pycache__"}


# --- (e) the worker's pins -------------------------------------------------------------------------------


def test_worker_pins_are_a_subset_of_requirements():
    server = _pins(REPO / "requirements.txt")
    worker = _pins(WORKER_REQUIREMENTS)
    assert worker, "deploy/requirements-worker.txt pins nothing"
    not_in_server = sorted(set(worker) - set(server))
    assert not not_in_server, f"pinned for the worker but not in requirements.txt: {not_in_server}"
    differ = {k: (worker[k][1], server[k][1]) for k in worker if worker[k][1] != server[k][1]}
    assert not differ, f"worker pin != requirements.txt pin: {differ}"
    forbidden = [k for k in worker if k.startswith(("django", "djangorestframework", "drf-", "psycopg", "dj-"))]
    assert not forbidden, f"the worker image must not install {forbidden}"


def _closure(distribution: str) -> set[str]:
    """Installed dependencies of a distribution, extras included, following the current environment."""
    seen: dict[str, frozenset[str]] = {}

    def walk(name: str, extras: frozenset[str]) -> None:
        key = _norm(name)
        if key in seen and extras <= seen[key]:
            return
        seen[key] = seen.get(key, frozenset()) | extras
        for line in importlib.metadata.requires(name) or []:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *extras)):
                walk(req.name, frozenset(req.extras))

    walk(distribution, frozenset())
    return set(seen)


def test_worker_pins_cover_what_the_sdk_and_agent_need():
    # The image installs sdk/ and workers/ with --no-deps, so the pins must be complete.
    try:
        needed = _closure("cellar-worker") - {"cellar", "cellar-worker"}
    except importlib.metadata.PackageNotFoundError as exc:
        pytest.skip(f"cellar-worker is not installed here ({exc}); run `make install`")
    missing = sorted(needed - set(_pins(WORKER_REQUIREMENTS)))
    assert not missing, f"deploy/requirements-worker.txt lacks: {missing}"


# --- (f) the distributions ---------------------------------------------------------------------------------


def _script_target_exists(root: str, target: str) -> bool:
    module, _, function = target.partition(":")
    source = REPO / root / (module.replace(".", "/") + ".py")
    if not source.is_file():
        return False
    tree = ast.parse(source.read_text())
    return any(isinstance(node, ast.FunctionDef) and node.name == function for node in tree.body)


def test_distributions_and_console_scripts():
    server = _pyproject("pyproject.toml")
    sdk = _pyproject("sdk/pyproject.toml")
    worker = _pyproject("workers/pyproject.toml")
    assert (server["name"], sdk["name"], worker["name"]) == ("cellar-server", "cellar", "cellar-worker")
    assert sdk["scripts"]["cellar"] == "cellar.cli:main"
    assert worker["scripts"]["cellar-worker"] == "cellar_worker.cli:main"
    assert _script_target_exists("sdk", sdk["scripts"]["cellar"])
    assert _script_target_exists("workers", worker["scripts"]["cellar-worker"])
    server_deps = {_norm(Requirement(d).name) for d in server["dependencies"]}
    assert {"cellar", "cellar-worker", "django"} <= server_deps
    assert "cellar" in {_norm(Requirement(d).name) for d in worker["dependencies"]}


@pytest.mark.parametrize("path", ["sdk/pyproject.toml", "workers/pyproject.toml"])
def test_sdk_and_worker_declare_no_django(path):
    project = _pyproject(path)
    declared = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        declared += extra
    names = {_norm(Requirement(d).name) for d in declared}
    assert not {n for n in names if n.startswith(("django", "djangorestframework", "drf-"))}, names


def test_server_package_is_found_under_the_platform_source_root():
    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert find["where"] == ["platform"]
    assert not (REPO / "platform" / "__init__.py").exists(), "platform/ must stay a source root, not a package"


# --- (g) the operator docs agree with the code ----------------------------------------------------------

PLATFORM = REPO / "platform" / "cellar_server"
ERROR_SOURCES = [
    "teams/services.py",
    "teams/authentication.py",
    "teams/apis.py",
    "core/errors.py",
    "core/viewsets.py",
    "core/middleware.py",
    "urls.py",
]
CODE_CALLS = {"ServiceError", "TokenRejected", "MissingScope", "json_error", "error_body", "_api_aware"}
CODE_WORD = re.compile(r"^[a-z]+(_[a-z]+)*$")


def _markdown_rows(path: Path, first_header: str) -> list[list[str]]:
    """The body rows of the markdown table whose first header cell is `first_header`."""
    rows, inside = [], False
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if cells is None:
            inside = False
        elif cells[0] == first_header:
            inside = True
        elif inside and not set(cells[0]) <= set("-: "):
            rows.append(cells)
    return rows


def test_tenancy_doc_role_table_matches_roles_py():
    from cellar_server.teams.roles import ALL_SCOPES, ROLE_SCOPES, STAFF_SCOPES, Role

    documented = {row[0].strip("`"): row[1:6] for row in _markdown_rows(REPO / "docs" / "tenancy.md", "Scope")}
    assert set(documented) == set(ALL_SCOPES), "docs/tenancy.md's role table lists other scopes than roles.py"
    for scope, marks in documented.items():
        expected = [scope in ROLE_SCOPES[role] for role in Role] + [scope in STAFF_SCOPES]
        assert [m == "✓" for m in marks] == expected, f"docs/tenancy.md: row {scope!r} differs from roles.py"


def test_tenancy_doc_lists_every_audit_verb():
    verbs = set()
    for match in re.finditer(r"verb=([^,\n]+)", (PLATFORM / "teams" / "services.py").read_text()):
        verbs |= set(re.findall(r'"([a-z_]+\.[a-z_]+)"', match.group(1)))
    assert verbs, "found no audit verbs in services.py"
    documented = {row[0].strip("`") for row in _markdown_rows(REPO / "docs" / "tenancy.md", "Verb")}
    assert not verbs - documented, f"add to docs/tenancy.md's audit table: {sorted(verbs - documented)}"


def test_tenancy_doc_lists_every_error_code():
    codes = set()
    for relative in ERROR_SOURCES:
        tree = ast.parse((PLATFORM / relative).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                if func in CODE_CALLS:
                    args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                    codes |= {a for a in args if CODE_WORD.match(a)}
            elif isinstance(node, ast.FunctionDef) and node.name == "__init__":
                params = node.args.args[-len(node.args.defaults) :] if node.args.defaults else []
                for param, default in zip(params, node.args.defaults, strict=True):
                    if param.arg == "code" and isinstance(default, ast.Constant):
                        codes.add(default.value)
            elif isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "_DEFAULT_CODES" for t in node.targets):
                # core/errors.py: {DRF exception: (code, message template)}
                codes |= {value.elts[0].value for value in node.value.values}
    assert {"not_found", "missing_scope", "token_invalid", "last_owner", "malformed_json"} <= codes
    documented = {row[0].strip("`") for row in _markdown_rows(REPO / "docs" / "tenancy.md", "Code")}
    assert not codes - documented, f"add to docs/tenancy.md's error table: {sorted(codes - documented)}"
