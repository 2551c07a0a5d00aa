"""Fixtures of the deployer's unit tests: a config dir with kolla-ansible's external
Ceph files (the Cinder, Glance and Nova RBD tests).

Under ``--import-mode=importlib`` test modules cannot import each other, so the
helpers are handed out by the ``ceph`` fixture.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import pytest
import yaml

from stackyard.deploy import plan as plan_mod
from stackyard.deploy.passwords import genpwd

CLOUD = {
    "kolla_internal_vip_address": "127.0.0.1", "network_interface": "lo",
    "enable_glance": True, "enable_placement": True, "enable_nova": True,
    "enable_neutron": True, "nova_compute_virt_type": "qemu",
}
RBD = {"enable_cinder": True, "cinder_backend_ceph": True, "glance_backend_ceph": True, "nova_backend_ceph": True}
#: ``ceph config generate-minimal-conf`` output: tab-indented
CEPH_CONF = "# minimal ceph.conf\n[global]\n\tfsid = 0f5c7e1a-1111-4c2b-9d9e-000000000001\n\tmon_host = 127.0.0.1:6789\n"
KEYS = {"glance": "AQBglanceglanceglanceglanceglanceglance1==",
        "cinder": "AQBcindercindercindercindercindercinder1==",
        "cinder-backup": "AQBbackupbackupbackupbackupbackupbackup1==",
        "nova": "AQBnovanovanovanovanovanovanovanovanova1=="}


def keyring(user: str, key: str | None = None) -> str:
    """A keyring as ``ceph auth get`` prints it (tab-indented, with caps)."""
    return f'[client.{user}]\n\tkey = {key or KEYS[user]}\n\tcaps mon = "profile rbd"\n'


#: config/ path -> content: every file kolla-ansible's external Ceph guide asks for
LAYOUT = {
    "glance/ceph.conf": CEPH_CONF,
    "glance/ceph.client.glance.keyring": keyring("glance"),
    "cinder/ceph.conf": CEPH_CONF,
    "cinder/cinder-volume/ceph.client.cinder.keyring": keyring("cinder"),
    "cinder/cinder-backup/ceph.client.cinder.keyring": keyring("cinder"),
    "cinder/cinder-backup/ceph.client.cinder-backup.keyring": keyring("cinder-backup"),
    "nova/ceph.conf": CEPH_CONF,
    "nova/ceph.client.cinder.keyring": keyring("cinder"),
}


def make(tmp_path: Path, extra: dict[str, Any] | None = None, files: dict[str, str | None] | None = None,
         *, rbd: bool = True) -> Path:
    """A config dir: the cloud's globals (with the RBD switches unless ``rbd`` is false) and
    the Ceph files; ``files`` adds, replaces or (value None) removes some of them."""
    configdir = tmp_path / "etc-kolla"
    configdir.mkdir(parents=True)
    genpwd(configdir / "passwords.yml")
    (configdir / "globals.yml").write_text(yaml.safe_dump({**CLOUD, **(RBD if rbd else {}), **(extra or {})}))
    layout = {**LAYOUT, **(files or {})}
    for rel, text in layout.items():
        if text is None:
            continue
        path = configdir / "config" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return configdir


def plan(configdir: Path):
    """(deployment, the localhost plan)."""
    dep = plan_mod.load(configdir)
    return dep, plan_mod.make_plans(dep)["localhost"]


def files(host_plan) -> dict[str, Any]:
    """Config file path (relative to the config root) -> ConfigFile."""
    root = host_plan.config_root.rstrip("/") + "/"
    return {f.path[len(root):]: f for f in host_plan.files}


def containers(host_plan) -> dict[str, Any]:
    return {s.container.name: s.container for p in host_plan.phases for s in p.steps if s.container is not None}


def phase(host_plan, name: str):
    return next(p for p in host_plan.phases if p.name == name)


@pytest.fixture
def ceph() -> SimpleNamespace:
    """The helpers above: ``ceph.make(tmp_path, extra, files)``, ``ceph.plan(configdir)`` …"""
    return SimpleNamespace(make=make, plan=plan, files=files, containers=containers, phase=phase,
                           keyring=keyring, KEYS=KEYS, LAYOUT=LAYOUT, CEPH_CONF=CEPH_CONF, CLOUD=CLOUD, RBD=RBD)


# --------------------------------------------------------------------------- kolla-ansible, the oracle

KOLLA_MISSING = ("kolla-ansible is not installed in this environment; it is the oracle of the "
                 "passwords.yml and inventory tests: install the test extra (pip install -e '.[test]')")


def _kolla_share() -> Path:
    """kolla-ansible's ``share/kolla-ansible`` data dir, found through the installed
    distribution's file list (wherever pip put it)."""
    from importlib import metadata

    try:
        dist = metadata.distribution("kolla-ansible")
    except metadata.PackageNotFoundError:
        pytest.fail(KOLLA_MISSING, pytrace=False)
    for f in dist.files or ():
        if str(f).endswith("etc_examples/kolla/passwords.yml"):
            share = Path(dist.locate_file(f)).resolve().parents[2]
            if share.is_dir():
                return share
    pytest.fail(f"{KOLLA_MISSING} (kolla-ansible {dist.version} ships no etc_examples/kolla/passwords.yml)",
                pytrace=False)


def _start_kolla(module: str, *args: str) -> Callable[[], None]:
    """Start one of kolla-ansible's commands (``kolla_ansible.cmd.<module>``) with this
    Python; returns the function that waits for it and fails the test if it failed."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", f"kolla_ansible.cmd.{module}", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait() -> None:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            pytest.fail(f"kolla-{module} {' '.join(args)} failed (rc {proc.returncode}): {out}", pytrace=False)

    return wait


@pytest.fixture(scope="session")
def kolla() -> SimpleNamespace:
    """kolla-ansible's shipped files and commands: ``kolla.passwords`` (its passwords.yml),
    ``kolla.inventory`` (the dir of all-in-one and multinode), ``kolla.genpwd(path)`` (or
    ``kolla.start_genpwd(path)``, which returns the function waiting for it),
    ``kolla.mergepwd(old, new, final, clean)``. Fails (never skips) without kolla-ansible."""
    share = _kolla_share()

    def start_genpwd(path: Path) -> Callable[[], None]:
        return _start_kolla("genpwd", "-p", str(path))

    def mergepwd_(old: Path, new: Path, final: Path, clean: bool = False) -> None:
        _start_kolla("mergepwd", "--old", str(old), "--new", str(new), "--final", str(final),
                     *(["--clean"] if clean else []))()

    return SimpleNamespace(share=share, passwords=share / "etc_examples" / "kolla" / "passwords.yml",
                           inventory=share / "ansible" / "inventory", start_genpwd=start_genpwd,
                           genpwd=lambda path: start_genpwd(path)(), mergepwd=mergepwd_)
