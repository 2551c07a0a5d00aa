"""The test bed's network: a namespace with two bridges, two veths per node.

The first bridge is the management network (eth0 in every node, plus the
deploy host's address); the second is a dedicated tunnel network (eth1, no
deploy host address) for Neutron's VXLAN between nodes.

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
        in_netns(cfg, ["ip", "link", "add", cfg.tunnel_bridge, "address", cfg.tunnel_mac(0), "type", "bridge",
                       "mcast_snooping", "0", "stp_state", "0"]),
        in_netns(cfg, ["ip", "link", "set", cfg.tunnel_bridge, "up"]),
    ]


def plumb_cmds(cfg: TestbedConfig, index: int, pid: int) -> list[Cmd]:
    """Create node ``index``'s veth pairs and address eth0 and eth1 (container PID ``pid``)."""
    veth, tveth = cfg.veth(index), cfg.tunnel_veth(index)
    return [
        in_netns(cfg, ["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0",
                       "address", cfg.mac(index), "netns", str(pid)]),
        in_netns(cfg, ["ip", "link", "set", veth, "master", cfg.bridge, "up"]),
        in_netns(cfg, ["ip", "link", "add", tveth, "type", "veth", "peer", "name", "eth1",
                       "address", cfg.tunnel_mac(index), "netns", str(pid)]),
        in_netns(cfg, ["ip", "link", "set", tveth, "master", cfg.tunnel_bridge, "up"]),
        in_node(pid, ["ip", "link", "set", "lo", "up"]),
        in_node(pid, ["ip", "addr", "replace", cfg.cidr(cfg.node_address(index)), "dev", "eth0"]),
        in_node(pid, ["ip", "link", "set", "eth0", "up"]),
        in_node(pid, ["ip", "addr", "replace", cfg.tunnel_cidr(cfg.node_tunnel_address(index)), "dev", "eth1"]),
        in_node(pid, ["ip", "link", "set", "eth1", "up"]),
    ]


def unplumb_cmds(cfg: TestbedConfig, index: int, pid: int | None) -> list[Cmd]:
    """Remove (possibly half-made) veth pairs; errors are expected and ignored."""
    cmds = [in_netns(cfg, ["ip", "link", "del", cfg.veth(index)]),
            in_netns(cfg, ["ip", "link", "del", cfg.tunnel_veth(index)])]
    if pid:
        cmds += [in_node(pid, ["ip", "link", "del", "eth0"]), in_node(pid, ["ip", "link", "del", "eth1"])]
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
    for cmd in bridge_cmds(cfg):
        if cmd[4:7] == ["ip", "link", "add"] and link_exists(cfg, cmd[7]):
            continue  # that bridge is already there
        run(cmd)
    return created


def is_plumbed(cfg: TestbedConfig, index: int, pid: int) -> bool:
    """True when eth0 is up with its address, eth1 exists, and their peers are on the bridges.

    eth1's address is not checked: a deploy moves it into an Open vSwitch
    bridge (userspace tunnelling), and re-plumbing must not undo that.
    """
    node = run(in_node(pid, ["ip", "-o", "addr", "show", "dev", "eth0"]), check=False)
    if node.returncode != 0 or f" {cfg.cidr(cfg.node_address(index))} " not in node.stdout:
        return False
    if run(in_node(pid, ["ip", "link", "show", "eth1"]), check=False).returncode != 0:
        return False
    for veth, bridge in ((cfg.veth(index), cfg.bridge), (cfg.tunnel_veth(index), cfg.tunnel_bridge)):
        peer = run(in_netns(cfg, ["ip", "-o", "link", "show", veth]), check=False)
        if peer.returncode != 0 or f"master {bridge}" not in peer.stdout or ",UP" not in peer.stdout:
            return False
    return True


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
        for cmd in unplumb_cmds(cfg, index, None):
            run(cmd, check=False)


def remove_netns(cfg: TestbedConfig) -> None:
    """Delete the namespace (its bridge and veth ends go with it)."""
    if netns_exists(cfg):
        run(in_netns(cfg, ["ip", "link", "del", cfg.bridge]), check=False)
        run(in_netns(cfg, ["ip", "link", "del", cfg.tunnel_bridge]), check=False)
        run(["ip", "netns", "del", cfg.netns])
