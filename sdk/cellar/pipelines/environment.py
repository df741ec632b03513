"""The environment lock (from `importlib.metadata`, normalised) and the check of a
pipeline's imports against a pool's environment."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata

from cellar.pipelines.spec import Environment

_NAME_SEPARATORS = re.compile(r"[-_.]+")


def normalize_name(name: str) -> str:
    """PEP 503: `Scikit_Learn` and `scikit.learn` are both `scikit-learn`."""
    return _NAME_SEPARATORS.sub("-", name).lower()


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _site_signature() -> tuple[tuple[str, int], ...]:
    """The import path's folders and their modification times: installing or removing a
    distribution adds or removes a `*.dist-info` folder, which changes its folder's mtime."""
    signature = []
    for entry in sys.path:
        try:
            signature.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            continue
    return tuple(signature)


def installed_lock() -> dict[str, str]:
    """Every installed distribution of this interpreter: normalised name -> version.

    Cached until something is installed or removed, so a long-running process (the web server
    checks promotions against it) sees `pip install` without a restart."""
    return _installed_lock(_site_signature())


@lru_cache(maxsize=1)
def _installed_lock(signature: tuple) -> dict[str, str]:
    lock: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            lock.setdefault(normalize_name(name), dist.version)
    return dict(sorted(lock.items()))


def _module_owners() -> dict[str, list[str]]:
    return _module_owners_at(_site_signature())


@lru_cache(maxsize=1)
def _module_owners_at(signature: tuple) -> dict[str, list[str]]:
    return {module: [normalize_name(d) for d in dists] for module, dists in metadata.packages_distributions().items()}


def is_stdlib(module: str) -> bool:
    return module in sys.stdlib_module_names or module in sys.builtin_module_names


def module_distributions(modules: Iterable[str]) -> dict[str, str]:
    """Top-level module -> the distribution that provides it, for the non-stdlib modules
    this interpreter can resolve (an unresolvable module is simply absent)."""
    owners = _module_owners()
    found = {}
    for module in sorted(set(modules)):
        if is_stdlib(module):
            continue
        dists = owners.get(module)
        if dists:
            found[module] = sorted(dists)[0]
    return found


def current_environment(modules: Iterable[str] = ()) -> Environment:
    """This interpreter's environment, with the given imported modules resolved."""
    return Environment(python=python_version(), lock=installed_lock(), modules=module_distributions(modules))


@dataclass
class EnvironmentReport:
    errors: list[str] = field(default_factory=list)  # a missing package: the version cannot run there
    warnings: list[str] = field(default_factory=list)  # a version difference: it may run differently

    @property
    def ok(self) -> bool:
        return not self.errors


def check_environment(
    imports: dict[str, list[str]], spec_env: Environment, pool: str, pool_env: Environment
) -> EnvironmentReport:
    """Check the modules each step imports (`{step: [module, ...]}`) against a pool.

    A module the pool cannot provide is an error naming the step, the module and the
    distribution; a distribution whose version differs from the promoting environment's lock
    is a warning; so is a different Python minor version.
    """
    report = EnvironmentReport()
    pool_modules = set(pool_env.modules)
    if spec_env.python and pool_env.python and spec_env.python != pool_env.python:
        report.warnings.append(
            f"pool '{pool}' runs Python {pool_env.python}; the pipeline was promoted from Python {spec_env.python}"
        )
    seen_warnings: set[str] = set()
    for step, modules in imports.items():
        for module in modules:
            if is_stdlib(module):
                continue
            dist = spec_env.modules.get(module) or pool_env.modules.get(module) or normalize_name(module)
            in_pool = module in pool_modules or dist in pool_env.lock
            if not in_pool:
                report.errors.append(
                    f"step '{step}' imports '{module}', but pool '{pool}' does not have the package '{dist}'; "
                    f"add it to the pool's environment or remove the import"
                )
                continue
            want, have = spec_env.lock.get(dist), pool_env.lock.get(dist)
            if want and have and want != have and dist not in seen_warnings:
                seen_warnings.add(dist)
                report.warnings.append(
                    f"'{dist}' is {want} where the pipeline was promoted but {have} on pool '{pool}'"
                )
    return report
