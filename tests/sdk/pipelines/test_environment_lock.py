"""The environment lock follows installs without a restart (the web process checks promotions against it)."""

from __future__ import annotations

import os
import sys

from cellar.pipelines import environment


def _install_fake_distribution(site, name: str, version: str, module: str) -> None:
    dist = site / f"{name}-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist / "top_level.txt").write_text(module + "\n")
    (dist / "RECORD").write_text(f"{module}/__init__.py,,\n")
    (site / module).mkdir()
    (site / module / "__init__.py").write_text("")


def test_a_distribution_installed_while_running_is_seen(tmp_path, monkeypatch):
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.setattr(sys, "path", [str(site), *sys.path])
    before = environment.installed_lock()
    assert "cellar-fake-dist" not in before
    assert environment.installed_lock() is before  # cached while nothing changes

    _install_fake_distribution(site, "Cellar_Fake.Dist", "1.2.3", "cellar_fake_mod")
    stat = os.stat(site)
    os.utime(site, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a coarse clock still moves

    after = environment.installed_lock()
    assert after["cellar-fake-dist"] == "1.2.3"
    assert environment.module_distributions(["cellar_fake_mod"]) == {"cellar_fake_mod": "cellar-fake-dist"}
