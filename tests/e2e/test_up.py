"""End-to-end: ``stackyard up`` on a machine with no config gives a working
all-in-one cloud, and running it again is a fast no-op."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest
import yaml

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
MANAGED = "org.stackyard.managed"


def run(*args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stackyard.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture()
def fresh_configdir(tmp_path: Path):
    d = tmp_path / "etc-kolla"  # does not exist yet: up must create it
    run("destroy", "--yes-i-really-really-mean-it", "--include-volumes", "--configdir", str(d))
    yield d
    run("destroy", "--yes-i-really-really-mean-it", "--include-volumes", "--configdir", str(d))


def test_up_from_nothing_then_noop(fresh_configdir: Path) -> None:
    client = docker.from_env()
    first = run("up", "--configdir", str(fresh_configdir))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "source " in first.stdout and "admin-openrc.sh" in first.stdout
    globals_yml = yaml.safe_load((fresh_configdir / "globals.yml").read_text())
    assert globals_yml["kolla_internal_vip_address"] == "127.0.0.1"
    pw = fresh_configdir / "passwords.yml"
    assert pw.stat().st_mode & 0o777 == 0o600
    assert yaml.safe_load(pw.read_text())["keystone_admin_password"]

    env = dict(os.environ, OS_CLOUD="stackyard-admin", OS_CLIENT_CONFIG_FILE=str(fresh_configdir / "clouds.yaml"))
    token = subprocess.run([str(BIN / "openstack"), "token", "issue", "-f", "value", "-c", "id"],
                           capture_output=True, text=True, env=env)
    assert token.returncode == 0, token.stderr

    before = {c.name: (c.id, c.attrs["State"]["StartedAt"])
              for c in client.containers.list(filters={"label": MANAGED})}
    t0 = time.monotonic()
    second = run("up", "--configdir", str(fresh_configdir))
    elapsed = time.monotonic() - t0
    assert second.returncode == 0, second.stderr[-3000:]
    assert "0 changed" in second.stderr
    after = {c.name: (c.id, c.attrs["State"]["StartedAt"])
             for c in client.containers.list(filters={"label": MANAGED})}
    assert after == before
    assert elapsed < 30, f"second 'stackyard up' took {elapsed:.1f}s"
