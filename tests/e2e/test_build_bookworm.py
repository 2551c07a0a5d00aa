"""End-to-end: ``--base-tag bookworm`` renders and builds (Debian's Zed packages).

Built under a namespace of this test's own (``<E2E namespace>-bookworm``), with
its work dir under pytest's tmp dirs. The images stay (later runs are cache
hits); nothing outside that namespace is touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import docker
import pytest

pytestmark = pytest.mark.e2e

#: this test's own image namespace
NS = os.environ.get("STACKYARD_E2E_NAMESPACE", "stackyard-e2e") + "-bookworm"


def ref(name: str) -> str:
    return f"{NS}/{name}:zed"


@pytest.fixture(scope="module")
def bookworm_build(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("bookworm")
    summary = work / "summary.json"
    proc = subprocess.run(
        [sys.executable, "-m", "stackyard.cli", "build", "keystone", "mariadb-server", "--base-tag", "bookworm",
         "--namespace", NS, "--work-dir", str(work), "--summary-file", str(summary)],
        capture_output=True, text=True, timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(summary.read_text())


def run_in(image: str, *cmd: str) -> str:
    out = docker.from_env().containers.run(image, list(cmd), entrypoint=[], remove=True, network_mode="host")
    return out.decode().strip()


def test_bookworm_images_are_tagged_with_its_release(bookworm_build: dict) -> None:
    built = set(bookworm_build["built"]) | set(bookworm_build["cached"])
    assert {"base", "openstack-base", "keystone", "mariadb-server"} <= built
    assert bookworm_build["images"]["keystone"]["ref"] == ref("keystone")


def test_bookworm_keystone_is_zed(bookworm_build: dict) -> None:
    assert run_in(ref("keystone"), "keystone-manage", "--version").startswith("22.")
    assert run_in(ref("keystone"), "id", "-u") == "42425"
    assert "bookworm" in run_in(ref("base"), "cat", "/etc/os-release")


def test_bookworm_mariadb_runs(bookworm_build: dict) -> None:
    assert "10.11" in run_in(ref("mariadb-server"), "mariadbd", "--version")
