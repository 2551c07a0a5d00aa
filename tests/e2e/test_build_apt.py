"""End-to-end: builds work through a caching apt proxy and against a local
mirror, using Debian's apt-cacher-ng bound to 127.0.0.1 (started by the test on
a free port, with its own cache, config and log dirs).

Images are built under a namespace of these tests' own (``<E2E namespace>-apt``)
with work dirs under pytest's tmp dirs; each test removes the refs it made.
"""

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

E2E_NAMESPACE = os.environ.get("STACKYARD_E2E_NAMESPACE", "stackyard-e2e")
#: these tests' own image namespace
NS = E2E_NAMESPACE + "-apt"


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    """A free loopback port for our apt-cacher-ng: its usual 3142 if free, else one near it
    (below 32768: apt-cacher-ng cannot bind ports above that)."""
    for port in (3142, *range(13142, 13242)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free loopback port for apt-cacher-ng")


def _remove_image(ref: str) -> None:
    try:
        docker.from_env().images.remove(ref, force=True)
    except docker.errors.ImageNotFound:
        pass


class Acng:
    def __init__(self, base: Path, port: int) -> None:
        self.base = base
        self.port = port

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in (self.base / "log").glob("*.log"))


@pytest.fixture(scope="module")
def acng(tmp_path_factory: pytest.TempPathFactory):
    """apt-cacher-ng of our own on 127.0.0.1 only, with its own port, cache and log dirs."""
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
    port = _free_port()
    base = tmp_path_factory.mktemp("acng")
    (base / "cache").mkdir()
    (base / "log").mkdir()
    # our own minimal config: loopback only, no remapping to the package's mirror lists
    (base / "acng.conf").write_text(
        f"CacheDir: {base / 'cache'}\nLogDir: {base / 'log'}\nSupportDir: /usr/lib/apt-cacher-ng\n"
        f"Port: {port}\nBindAddress: 127.0.0.1\n"
    )
    proc = subprocess.Popen(["apt-cacher-ng", "-c", str(base), "ForeGround=1", "PidFile=", "SocketPath="],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        for _ in range(50):
            if _port_open(port) or proc.poll() is not None:
                break
            time.sleep(0.2)
        assert _port_open(port), "apt-cacher-ng did not start"
        yield Acng(base, port)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def build(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stackyard.cli", "build", "--namespace", NS, *args],
                          capture_output=True, text=True, timeout=1200)


@pytest.fixture()
def own_base(e2e_image) -> str:
    """The base image scripts/test.sh built, tagged into our namespace (--skip-parents builds
    FROM it); the tag is removed afterwards, the image itself stays."""
    client = docker.from_env()
    ref = f"{NS}/base:2025.1"
    image = client.images.get(e2e_image("base"))
    image.tag(f"{NS}/base", "2025.1")
    yield ref
    client.images.remove(ref)  # only our tag: the image has the E2E namespace's one too


def test_build_through_caching_proxy(acng: Acng, own_base: str, tmp_path: Path) -> None:
    tree = tmp_path / "images" / "proxytest"
    tree.mkdir(parents=True)
    (tree / "Dockerfile.j2").write_text(
        '{% import "macros.j2" as macros %}\nFROM {{ image_ref("base") }}\n'
        "{{ macros.install_packages(['less']) }}\n"
    )
    res = build("proxytest", "--skip-parents", "--docker-dir", str(tmp_path / "images"),
                "--apt-proxy", f"http://127.0.0.1:{acng.port}", "--work-dir", str(tmp_path / "work"),
                "--no-cache")
    try:
        assert res.returncode == 0, res.stderr[-2000:]
        assert "less_" in acng.log(), "the package was not fetched through the proxy"
        out = docker.from_env().containers.run(f"{NS}/proxytest:2025.1", ["less", "--version"],
                                               entrypoint=[], remove=True, network_mode="host")
        assert b"less" in out
    finally:
        _remove_image(f"{NS}/proxytest:2025.1")


def test_build_against_local_mirror(acng: Acng, tmp_path: Path) -> None:
    mirror = f"http://127.0.0.1:{acng.port}/deb.debian.org/debian"
    res = build("base", "--tag", "mirrortest", "--apt-mirror", mirror, "--work-dir", str(tmp_path / "work"))
    client = docker.from_env()
    try:
        assert res.returncode == 0, res.stderr[-2000:]
        sources = client.containers.run(f"{NS}/base:mirrortest", ["cat", "/etc/apt/sources.list.d/debian.sources"],
                                        entrypoint=[], remove=True, network_mode="host").decode()
        assert f"URIs: {mirror}" in sources
        assert "trixie" in acng.log() and "InRelease" in acng.log()
    finally:
        _remove_image(f"{NS}/base:mirrortest")


def test_unreachable_mirror_is_one_line_error(tmp_path: Path) -> None:
    res = build("base", "--tag", "unreachable", "--no-cache", "--apt-mirror", "http://127.0.0.1:9/debian",
                "--work-dir", str(tmp_path / "work"))
    assert res.returncode == 2
    lines = [line for line in res.stderr.splitlines() if line.startswith("stackyard: error:")]
    assert lines and "127.0.0.1:9" in lines[0] and "unreachable" in lines[0]
    assert "Traceback" not in res.stderr
    with pytest.raises(docker.errors.ImageNotFound):
        docker.from_env().images.get(f"{NS}/base:unreachable")
