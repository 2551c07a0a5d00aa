"""Helpers for the image-builder unit tests (no container engine needed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stackyard.imagebuild.config import BuildConfig

#: The service-user table the CLI passes to the builder (Kolla's fixed numbers),
#: copied here: the builder no longer owns it, and the tests must not depend on
#: where the CLI gets it from.
SERVICE_USERS: dict[str, dict[str, Any]] = {
    name: {"uid": uid, "gid": uid, "home": home, "groups": [] if name == "kolla" else ["kolla"]}
    for name, uid, home in (
        ("kolla", 42400, "/var/lib/kolla"),
        ("glance", 42415, "/var/lib/glance"),
        ("heat", 42418, "/var/lib/heat"),
        ("horizon", 42420, "/var/lib/horizon"),
        ("keystone", 42425, "/var/lib/keystone"),
        ("qemu", 42427, "/var/lib/qemu"),
        ("mysql", 42434, "/var/lib/mysql"),
        ("neutron", 42435, "/var/lib/neutron"),
        ("nova", 42436, "/var/lib/nova"),
        ("rabbitmq", 42439, "/var/lib/rabbitmq"),
        ("haproxy", 42454, "/var/lib/haproxy"),
        ("memcached", 42457, "/run/memcached"),
        ("placement", 42482, "/var/lib/placement"),
    )
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write ``{relative path: text}`` under ``root`` and return ``root``."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Callable[..., Path]:
    """``tree({...}, name='dd')`` writes a docker dir under tmp_path."""
    counter = {"n": 0}

    def make(files: dict[str, str], name: str | None = None) -> Path:
        counter["n"] += 1
        return write_tree(tmp_path / (name or f"dd{counter['n']}"), files)

    return make


@pytest.fixture
def service_users() -> dict[str, dict[str, Any]]:
    """A fresh copy of :data:`SERVICE_USERS` (tests may change it)."""
    return {name: {**u, "groups": list(u["groups"])} for name, u in SERVICE_USERS.items()}


@pytest.fixture
def config(service_users: dict[str, dict[str, Any]]) -> Callable[..., BuildConfig]:
    """``config(**settings)``: a BuildConfig with the service-user table unless ``users=`` is given."""

    def make(**kw: Any) -> BuildConfig:
        kw.setdefault("work_dir", "/tmp/stackyard-unit-build")
        kw.setdefault("users", service_users)
        for key in ("docker_dirs", "template_overrides"):
            if key in kw:
                kw[key] = [str(p) for p in kw[key]]
        return BuildConfig(**kw)

    return make
