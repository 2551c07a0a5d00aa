"""Host resources outside the engine: made before a service's containers, removed by destroy.

Services declare them as data (:class:`~.model.HostResource`); these two
functions are the only code that knows how to make or remove each kind, so a
service needs no teardown code of its own and the local CLI and the Ansible
module tear down exactly the same things.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from .model import DEPLOYMENT_LABEL, MANAGED_LABEL, HostPlan, HostResource, ResourceKind


def volume_labels(plan: HostPlan) -> dict[str, str]:
    """Labels of every volume a plan creates: managed, and whose deployment it is."""
    labels = {MANAGED_LABEL: "true"}
    if plan.deployment:
        labels[DEPLOYMENT_LABEL] = plan.deployment
    return labels


def tcp_open(address: str, timeout: float = 1.0) -> bool:
    """``host:port`` accepts TCP connections (a Galera peer is up)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def _run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


def _is_shared_mount(path: str) -> bool:
    info = Path("/proc/self/mountinfo").read_text().splitlines()
    line = next((ln for ln in reversed(info) if ln.split()[4] == path), "")
    return "shared:" in line


def _link_exists(name: str) -> bool:
    return _run(["ip", "link", "show", name], check=False).returncode == 0


def _ensure_host_address(dev: str, address: str, dry_run: bool) -> list[str]:
    """``address`` on ``dev``, and nothing arriving on ``dev`` forwarded elsewhere.

    The host then sits on the network behind ``dev`` (the all-in-one's public
    network: it reaches the floating IPs), while what the guests send to it
    never leaves the machine through the host's routing table.
    """
    changed = []
    shown = _run(["ip", "-o", "-4", "addr", "show", "dev", dev], check=False).stdout
    if f" {address} " not in shown:
        changed.append(f"{address} on {dev}")
        if not dry_run:
            _run(["ip", "addr", "replace", address, "dev", dev])
    sysctl = Path(f"/proc/sys/net/ipv4/conf/{dev}/forwarding")
    try:
        forwarding = sysctl.read_text().strip()
    except FileNotFoundError:  # dry run before the veth exists
        forwarding = "1"
    if forwarding != "0":
        changed.append(f"forwarding off on {dev}")
        if not dry_run:
            sysctl.write_text("0\n")
    return changed


def ensure(owned: list[HostResource], dry_run: bool = False) -> list[str]:
    """Make every resource in ``owned`` exist; returns what changed (would change)."""
    changed: list[str] = []
    for r in owned:
        if r.kind == ResourceKind.SHARED_MOUNT:
            mounted = os.path.isdir(r.path) and _run(["mountpoint", "-q", r.path], check=False).returncode == 0
            if not mounted:
                changed.append(f"{r.path} bind-mounted")
                if not dry_run:
                    os.makedirs(r.path, exist_ok=True)
                    _run(["mount", "--bind", r.path, r.path])
            if dry_run and not mounted:
                continue
            if not _is_shared_mount(r.path):
                changed.append(f"{r.path} shared")
                if not dry_run:
                    _run(["mount", "--make-shared", r.path])
        elif r.kind == ResourceKind.VETH:
            if not _link_exists(r.name):
                changed.append(f"veth {r.name}/{r.peer} created")
                if not dry_run:
                    _run(["ip", "link", "add", r.name, "type", "veth", "peer", "name", r.peer])
            if not dry_run:
                for dev in (r.name, r.peer):
                    _run(["ip", "link", "set", dev, "up"])
            if r.address:
                changed += _ensure_host_address(r.peer, r.address, dry_run)
        elif r.kind == ResourceKind.NETNS:
            pass  # the service's own processes make them; only destroy acts on these
    return changed


def netns_owned(r: HostResource) -> list[str]:
    """Names of the namespaces under ``r.path`` whose name starts with one of ``r.prefixes``."""
    try:
        names = sorted(os.listdir(r.path))
    except FileNotFoundError:
        return []
    return [n for n in names if n.startswith(tuple(r.prefixes))]


def teardown(owned: list[HostResource], dry_run: bool = False) -> list[str]:
    """Remove what ``owned`` declares, in reverse order; returns what was removed.

    A shared mount stays: it is a property of a host directory that other
    software (``ip netns``) may rely on, and a bind mount of a directory on
    itself costs nothing.
    """
    removed: list[str] = []
    for r in reversed(owned):
        if r.kind == ResourceKind.NETNS:
            for name in netns_owned(r):
                path = os.path.join(r.path, name)
                removed.append(f"network namespace {path}")
                if not dry_run:
                    # what 'ip netns delete' does, for any directory: the file is a
                    # bind mount of the namespace
                    _run(["umount", "-l", path], check=False)
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        pass
        elif r.kind == ResourceKind.VETH and _link_exists(r.name):
            removed.append(f"veth {r.name}/{r.peer}")
            if not dry_run:
                _run(["ip", "link", "delete", r.name], check=False)
    return removed
