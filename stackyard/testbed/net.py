"""The test bed's network: a namespace with a bridge, one veth per node.

Nothing here touches the root network namespace: the bridge and the
bridge-side veth ends are created inside the test bed namespace, and the other
veth end is created directly in the node container's namespace (``ip link add
... peer name eth0 netns <pid>``). There is no default route anywhere, so
nodes reach only each other and the deploy host address on the bridge.

The ``*_cmds`` functions only build argument lists (unit tested); ``run``
executes them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from stackyard.errors import TestbedError
from stackyard.testbed.config import TestbedConfig

Cmd = list[str]
NETNS_DIR = Path("/run/netns")


def in_netns(cfg: TestbedConfig, cmd: Cmd) -> Cmd:
    return ["ip", "netns", "exec", cfg.netns, *cmd]


def in_node(pid: int, cmd: Cmd) -> Cmd:
    """Run ``cmd`` in a node's network namespace only (our own ``ip`` binary)."""
    return ["nsenter", f"--net=/proc/{pid}/ns/net", *cmd]


def bridge_cmds(cfg: TestbedConfig) -> list[Cmd]:
    """Bring up lo, the bridge and the deploy host address inside the namespace.

    Multicast snooping is off so that VRRP (keepalived) and other multicast
    reach every port without an IGMP querier on the bridge.
    """
    return [
        in_netns(cfg, ["ip", "link", "set", "lo", "up"]),
        in_netns(cfg, ["ip", "link", "add", cfg.bridge, "address", cfg.mac(0), "type", "bridge", "mcast_snooping", "0",
                       "stp_state", "0"]),
        in_netns(cfg, ["ip", "addr", "replace", cfg.cidr(cfg.gateway), "dev", cfg.bridge]),
        in_netns(cfg, ["ip", "link", "set", cfg.bridge, "up"]),
    ]


def plumb_cmds(cfg: TestbedConfig, index: int, pid: int) -> list[Cmd]:
    """Create node ``index``'s veth pair and address its eth0 (container PID ``pid``)."""
    veth = cfg.veth(index)
    return [
        in_netns(cfg, ["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0",
                       "address", cfg.mac(index), "netns", str(pid)]),
        in_netns(cfg, ["ip", "link", "set", veth, "master", cfg.bridge, "up"]),
        in_node(pid, ["ip", "link", "set", "lo", "up"]),
        in_node(pid, ["ip", "addr", "replace", cfg.cidr(cfg.node_address(index)), "dev", "eth0"]),
        in_node(pid, ["ip", "link", "set", "eth0", "up"]),
    ]


def unplumb_cmds(cfg: TestbedConfig, index: int, pid: int | None) -> list[Cmd]:
    """Remove a (possibly half-made) veth pair; errors are expected and ignored."""
    cmds = [in_netns(cfg, ["ip", "link", "del", cfg.veth(index)])]
    if pid:
        cmds.append(in_node(pid, ["ip", "link", "del", "eth0"]))
    return cmds


def run(cmd: Cmd, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise TestbedError(f"'{' '.join(cmd)}' failed (rc {proc.returncode}): "
                           f"{(proc.stderr or proc.stdout).strip()}")
    return proc


def netns_exists(cfg: TestbedConfig) -> bool:
    return (NETNS_DIR / cfg.netns).exists()


def link_exists(cfg: TestbedConfig, name: str) -> bool:
    return run(in_netns(cfg, ["ip", "link", "show", name]), check=False).returncode == 0


def ensure_bridge(cfg: TestbedConfig) -> bool:
    """Create the namespace and bridge if missing (idempotent); True if the namespace is new."""
    created = not netns_exists(cfg)
    if created:
        run(["ip", "netns", "add", cfg.netns])
    cmds = bridge_cmds(cfg)
    run(cmds[0])
    if not link_exists(cfg, cfg.bridge):
        run(cmds[1])
    for cmd in cmds[2:]:
        run(cmd)
    return created


def is_plumbed(cfg: TestbedConfig, index: int, pid: int) -> bool:
    """True when the node's eth0 is up with its address and its peer is on the bridge."""
    node = run(in_node(pid, ["ip", "-o", "addr", "show", "dev", "eth0"]), check=False)
    if node.returncode != 0 or f" {cfg.cidr(cfg.node_address(index))} " not in node.stdout:
        return False
    peer = run(in_netns(cfg, ["ip", "-o", "link", "show", cfg.veth(index)]), check=False)
    return peer.returncode == 0 and f"master {cfg.bridge}" in peer.stdout and ",UP" in peer.stdout


def plumb(cfg: TestbedConfig, index: int, pid: int) -> bool:
    """Wire node ``index`` to the bridge unless it already is; returns True if it changed."""
    if is_plumbed(cfg, index, pid):
        return False
    for cmd in unplumb_cmds(cfg, index, pid):
        run(cmd, check=False)
    for cmd in plumb_cmds(cfg, index, pid):
        run(cmd)
    return True


def unplumb(cfg: TestbedConfig, index: int) -> None:
    if netns_exists(cfg):
        run(unplumb_cmds(cfg, index, None)[0], check=False)


def remove_netns(cfg: TestbedConfig) -> None:
    """Delete the namespace (its bridge and veth ends go with it)."""
    if netns_exists(cfg):
        run(in_netns(cfg, ["ip", "link", "del", cfg.bridge]), check=False)
        run(["ip", "netns", "del", cfg.netns])
