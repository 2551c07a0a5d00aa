"""End-to-end: builds work through a caching apt proxy and against a local
mirror, using Debian's apt-cacher-ng bound to 127.0.0.1 (started by the test)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

pytestmark = pytest.mark.e2e

PORT = 3142


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def acng(tmp_path_factory: pytest.TempPathFactory):
    """apt-cacher-ng on 127.0.0.1 only, with its own cache and log dirs."""
    if shutil.which("apt-cacher-ng") is None:
        # keep the package's own scripts from starting a daemon on all interfaces
        policy = Path("/usr/sbin/policy-rc.d")
        had_policy = policy.exists()
        if not had_policy:
            policy.write_text("#!/bin/sh\nexit 101\n")
            policy.chmod(0o755)
        try:
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            subprocess.run(["apt-get", "install", "-y", "-qq", "apt-cacher-ng"], check=True, env=env,
                           stdout=subprocess.DEVNULL)
        finally:
            if not had_policy:
                policy.unlink()
    subprocess.run(["pkill", "-x", "apt-cacher-ng"], check=False)
    time.sleep(0.5)
    assert not _port_open(PORT), f"port {PORT} is taken by something else"
    base = tmp_path_factory.mktemp("acng")
    (base / "cache").mkdir()
    (base / "log").mkdir()
    # our own minimal config: loopback only, no remapping to the package's mirror lists
    (base / "acng.conf").write_text(
        f"CacheDir: {base / 'cache'}\nLogDir: {base / 'log'}\nSupportDir: /usr/lib/apt-cacher-ng\n"
        f"Port: {PORT}\nBindAddress: 127.0.0.1\n"
    )
    proc = subprocess.Popen(["apt-cacher-ng", "-c", str(base), "ForeGround=1", "PidFile=", "SocketPath="],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    for _ in range(50):
        if _port_open(PORT):
            break
        time.sleep(0.2)
    assert _port_open(PORT), "apt-cacher-ng did not start"
    yield base
    proc.terminate()
    proc.wait(timeout=10)


def build(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stackyard.cli", "build", *args], capture_output=True,
                          text=True, timeout=1200)


def _log(base: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in (base / "log").glob("*.log"))


def test_build_through_caching_proxy(acng: Path, tmp_path: Path) -> None:
    tree = tmp_path / "images" / "proxytest"
    tree.mkdir(parents=True)
    (tree / "Dockerfile.j2").write_text(
        '{% import "macros.j2" as macros %}\nFROM {{ image_ref("base") }}\n'
        "{{ macros.install_packages(['less']) }}\n"
    )
    res = build("proxytest", "--skip-parents", "--docker-dir", str(tmp_path / "images"),
                "--apt-proxy", f"http://127.0.0.1:{PORT}", "--work-dir", str(tmp_path / "work"),
                "--no-cache")
    try:
        assert res.returncode == 0, res.stderr[-2000:]
        assert "less_" in _log(acng), "the package was not fetched through the proxy"
        out = docker.from_env().containers.run("stackyard/proxytest:2025.1", ["less", "--version"],
                                               entrypoint=[], remove=True, network_mode="host")
        assert b"less" in out
    finally:
        try:
            docker.from_env().images.remove("stackyard/proxytest:2025.1", force=True)
        except docker.errors.ImageNotFound:
            pass


def test_build_against_local_mirror(acng: Path, tmp_path: Path) -> None:
    mirror = f"http://127.0.0.1:{PORT}/deb.debian.org/debian"
    res = build("base", "--tag", "mirrortest", "--apt-mirror", mirror, "--work-dir", str(tmp_path / "work"))
    client = docker.from_env()
    try:
        assert res.returncode == 0, res.stderr[-2000:]
        sources = client.containers.run("stackyard/base:mirrortest", ["cat", "/etc/apt/sources.list.d/debian.sources"],
                                        entrypoint=[], remove=True, network_mode="host").decode()
        assert f"URIs: {mirror}" in sources
        assert "trixie" in _log(acng) and "InRelease" in _log(acng)
    finally:
        try:
            client.images.remove("stackyard/base:mirrortest", force=True)
        except docker.errors.ImageNotFound:
            pass


def test_unreachable_mirror_is_one_line_error(tmp_path: Path) -> None:
    res = build("base", "--tag", "unreachable", "--no-cache", "--apt-mirror", "http://127.0.0.1:9/debian",
                "--work-dir", str(tmp_path / "work"))
    assert res.returncode == 2
    lines = [line for line in res.stderr.splitlines() if line.startswith("stackyard: error:")]
    assert lines and "127.0.0.1:9" in lines[0] and "unreachable" in lines[0]
    assert "Traceback" not in res.stderr
