"""The registry and its forwarder: two background processes per test bed.

Debian's ``docker-registry`` serves on 127.0.0.1 in the root namespace (the
engine here pushes to it without TLS: 127.0.0.0/8 registries are insecure by
default). The forwarder (:mod:`stackyard.testbed.forward`) makes the same
registry reachable from the nodes at the bridge address. Both are started
detached (their own session, output to a log in the state dir) and found
again through pid files, checked against /proc so a reused pid is not mistaken
for ours.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from stackyard.errors import TestbedError
from stackyard.testbed.config import NODE_REGISTRY_PORT, TestbedConfig

REGISTRY_BIN = Path("/usr/bin/docker-registry")
#: how our forwarder's command line is recognised (with the trailing space: sytb vs sytbe)
FORWARDER_MARKER = "--netns {netns} "


def registry_config(cfg: TestbedConfig) -> str:
    """docker-registry (distribution 2.x) config: filesystem storage in the state dir."""
    return "\n".join([
        "version: 0.1",
        "log:",
        "  level: warn",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {cfg.registry_dir / 'data'}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: {cfg.local_registry}",
        "",
    ])


def registry_cmd(cfg: TestbedConfig) -> list[str]:
    return [str(REGISTRY_BIN), "serve", str(cfg.registry_dir / "config.yml")]


def forwarder_cmd(cfg: TestbedConfig) -> list[str]:
    return [sys.executable, "-m", "stackyard.testbed.forward", "--netns", cfg.netns,
            "--listen", f"{cfg.gateway}:{NODE_REGISTRY_PORT}", "--target", cfg.local_registry,
            "--pid-file", str(pid_file(cfg, "forwarder"))]


def pid_file(cfg: TestbedConfig, name: str) -> Path:
    return cfg.state_dir / f"{name}.pid"


def running_pid(cfg: TestbedConfig, name: str, marker: str) -> int | None:
    """The pid from ``<name>.pid`` if that process is alive and its command line has ``marker``."""
    try:
        pid = int(pid_file(cfg, name).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, ValueError):
        return None
    return pid if marker in cmdline else None


def ensure_registry_binary() -> None:
    """Install Debian's docker-registry if it is missing (as scripts/setup-host.sh does)."""
    if REGISTRY_BIN.exists():
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "docker-registry"]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise TestbedError(f"cannot install docker-registry ({' '.join(cmd)}): {proc.stderr.strip()}")
    # the package enables a system-wide registry on :5000; ours runs from the state dir
    for cmd in (["service", "docker-registry", "stop"], ["update-rc.d", "docker-registry", "disable"]):
        subprocess.run(cmd, capture_output=True)


def _spawn(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True, close_fds=True)


def _registry_ok(cfg: TestbedConfig) -> bool:
    try:
        with urllib.request.urlopen(f"http://{cfg.local_registry}/v2/", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def ensure_registry(cfg: TestbedConfig, timeout: float = 20.0) -> int:
    """Start the registry unless ours is running; returns its pid."""
    pid = running_pid(cfg, "registry", str(cfg.registry_dir / "config.yml"))
    if pid and _registry_ok(cfg):
        return pid
    if pid:
        stop(cfg, "registry", str(cfg.registry_dir / "config.yml"))
    if _registry_ok(cfg):
        raise TestbedError(f"another registry already answers on {cfg.local_registry}: stop it "
                           f"or use --registry-port")
    ensure_registry_binary()
    (cfg.registry_dir / "data").mkdir(parents=True, exist_ok=True)
    (cfg.registry_dir / "config.yml").write_text(registry_config(cfg))
    proc = _spawn(registry_cmd(cfg), cfg.state_dir / "registry.log")
    pid_file(cfg, "registry").write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TestbedError(f"docker-registry exited (rc {proc.returncode}): see "
                               f"{cfg.state_dir / 'registry.log'}")
        if _registry_ok(cfg):
            return proc.pid
        time.sleep(0.1)
    raise TestbedError(f"docker-registry did not answer on {cfg.local_registry} in {timeout:.0f}s")


def ensure_forwarder(cfg: TestbedConfig, timeout: float = 10.0) -> int:
    """Start the registry forwarder in the test bed namespace unless it runs; returns its pid."""
    marker = FORWARDER_MARKER.format(netns=cfg.netns)
    pid = running_pid(cfg, "forwarder", marker)
    if pid:
        return pid
    pid_file(cfg, "forwarder").unlink(missing_ok=True)
    log = cfg.state_dir / "forwarder.log"
    proc = _spawn(forwarder_cmd(cfg), log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            raise TestbedError(f"registry forwarder exited (rc {proc.returncode}): {' '.join(tail)}")
        if running_pid(cfg, "forwarder", marker):
            return proc.pid
        time.sleep(0.05)
    raise TestbedError(f"registry forwarder did not start in {timeout:.0f}s: see {log}")


def stop(cfg: TestbedConfig, name: str, marker: str, timeout: float = 10.0) -> bool:
    """SIGTERM (then SIGKILL) our process ``name``; returns True if one was running."""
    pid = running_pid(cfg, name, marker)
    pid_file(cfg, name).unlink(missing_ok=True)
    if not pid:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        try:
            # reap it if it is our child (a test calling up and down in one process)
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return True


def stop_all(cfg: TestbedConfig) -> None:
    stop(cfg, "forwarder", FORWARDER_MARKER.format(netns=cfg.netns))
    stop(cfg, "registry", str(cfg.registry_dir / "config.yml"))


def purge_registry(cfg: TestbedConfig) -> None:
    shutil.rmtree(cfg.registry_dir, ignore_errors=True)
