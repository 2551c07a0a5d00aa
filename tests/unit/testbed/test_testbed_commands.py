"""Command lines and container settings the test bed would use (nothing is run)."""

from __future__ import annotations

import sys
from pathlib import Path

from stackyard.engine import CreateRequest
from stackyard.testbed import net, nodes, procs
from stackyard.testbed.config import TestbedConfig

CFG = TestbedConfig(state_dir=Path("/srv/tb"), prefix="sytbe", registry_port=5001)


def test_bridge_commands_stay_in_the_namespace() -> None:
    cmds = net.bridge_cmds(CFG)
    assert all(c[:4] == ["ip", "netns", "exec", "sytbe"] for c in cmds)
    add = cmds[1]
    assert add[4:] == ["ip", "link", "add", "sytbe-br", "address", CFG.mac(0), "type", "bridge", "mcast_snooping", "0",
                       "stp_state", "0"]
    assert ["ip", "addr", "replace", "10.250.0.1/24", "dev", "sytbe-br"] == cmds[2][4:]
    # the tunnel bridge has no deploy host address
    assert cmds[4][4:8] == ["ip", "link", "add", "sytbe-tb"]
    assert not any("addr" in c and "sytbe-tb" in c for c in cmds)


def test_plumb_commands() -> None:
    cmds = net.plumb_cmds(CFG, 2, 4242)
    # the node end is created directly in the container's namespace: nothing in the root netns
    assert cmds[0] == ["ip", "netns", "exec", "sytbe", "ip", "link", "add", "sytbe-n2", "type", "veth",
                       "peer", "name", "eth0", "address", CFG.mac(2), "netns", "4242"]
    assert cmds[1][4:] == ["ip", "link", "set", "sytbe-n2", "master", "sytbe-br", "up"]
    assert cmds[2] == ["ip", "netns", "exec", "sytbe", "ip", "link", "add", "sytbe-t2", "type", "veth",
                       "peer", "name", "eth1", "address", CFG.tunnel_mac(2), "netns", "4242"]
    assert cmds[3][4:] == ["ip", "link", "set", "sytbe-t2", "master", "sytbe-tb", "up"]
    node = [c[2:] for c in cmds if c[0] == "nsenter"]
    assert ["ip", "addr", "replace", "10.250.0.12/24", "dev", "eth0"] in node
    # the tunnel NIC is on its own segment and subnet (the block after the node subnet)
    assert ["ip", "addr", "replace", "10.250.1.12/24", "dev", "eth1"] in node
    assert CFG.mac(2) != CFG.tunnel_mac(2)
    assert not any("route" in c for c in cmds)


def test_unplumb_commands() -> None:
    assert net.unplumb_cmds(CFG, 1, None) == [["ip", "netns", "exec", "sytbe", "ip", "link", "del", "sytbe-n1"],
                                              ["ip", "netns", "exec", "sytbe", "ip", "link", "del", "sytbe-t1"]]
    assert len(net.unplumb_cmds(CFG, 1, 7)) == 4


def test_container_spec(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(nodes.os.path, "exists", lambda p: p == "/dev/net/tun")
    req = nodes.container_spec(CFG, 3, "img:1")
    assert isinstance(req, CreateRequest)
    assert (req.name, req.image, req.hostname) == ("sytbe-node3", "img:1", "node3")
    assert req.labels == {"org.stackyard.testbed": "sytbe", "org.stackyard.testbed.node": "3"}
    # no network until the test bed plumbs its veths into the container's namespace
    assert req.network_mode == "none"
    # everything a nested dockerd needs, without --privileged
    assert req.cap_add == ["ALL"] and req.cap_drop == ["SYS_RESOURCE"]
    assert set(req.security_opt) == {"seccomp=unconfined", "apparmor=unconfined"}
    assert req.masked_paths == [] and req.readonly_paths == []   # systempaths=unconfined
    assert req.cgroupns == "host"
    assert "/sys/fs/cgroup:/sys/fs/cgroup:rw" in req.binds
    # the nested /var/lib/docker lives on the node's own named volume (a source without a /)
    assert f"{CFG.volume(3)}:/var/lib/docker:rw" in req.binds
    assert "/run" in req.tmpfs
    # only devices this machine has are passed through
    assert req.devices == ["/dev/net/tun:/dev/net/tun:rwm"]
    assert req.restart_policy in (None, "no")
    # node-init needs time to stop nested dockerd after SIGTERM
    assert req.stop_signal == "SIGTERM" and req.stop_timeout == nodes.STOP_TIMEOUT >= 10


def test_container_spec_without_devices(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(nodes.os.path, "exists", lambda p: False)
    assert nodes.container_spec(CFG, 1, "img:1").devices == []


def test_context_hash_follows_content(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM debian:trixie\n")
    first = nodes.context_hash(tmp_path)
    assert first == nodes.context_hash(tmp_path)
    (tmp_path / "node-init").write_text("#!/bin/sh\n")
    assert nodes.context_hash(tmp_path) != first
    assert nodes.image_ref(first) == f"stackyard/testbed-node:{first}"


def test_registry_config_and_commands() -> None:
    conf = procs.registry_config(CFG)
    assert "addr: 127.0.0.1:5001" in conf
    assert "rootdirectory: /srv/tb/registry/data" in conf
    assert procs.registry_cmd(CFG) == ["/usr/bin/docker-registry", "serve", "/srv/tb/registry/config.yml"]
    fwd = procs.forwarder_cmd(CFG)
    assert fwd[:3] == [sys.executable, "-m", "stackyard.testbed.forward"]
    assert fwd[fwd.index("--listen") + 1] == "10.250.0.1:5000"
    assert fwd[fwd.index("--target") + 1] == "127.0.0.1:5001"


def test_running_pid_checks_the_command_line(tmp_path: Path) -> None:
    cfg = TestbedConfig(state_dir=tmp_path)
    (tmp_path / "registry.pid").write_text("1\n")
    assert procs.running_pid(cfg, "registry", "no-such-marker-in-pid-1") is None
    (tmp_path / "registry.pid").write_text("garbage")
    assert procs.running_pid(cfg, "registry", "x") is None


def test_fixed_macs() -> None:
    assert CFG.mac(2) == CFG.mac(2) and CFG.mac(2).startswith("02:53:") and CFG.mac(2).endswith(":00:02")
    assert CFG.mac(0) != CFG.mac(1)
    assert TestbedConfig(prefix="other").mac(1) != CFG.mac(1)
