"""Test bed life cycle: up, down, stop/start of one node, status.

Every operation converges from whatever state is there (a previous run that
failed halfway included), so each is safe to repeat. ``up`` order matters:
the namespace and registry first, then nodes (a container must run before its
veth can be moved into its namespace), then files that name the nodes.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from stackyard.engine import ContainerState, Engine, connect
from stackyard.errors import TestbedError
from stackyard.testbed import inventory, net, nodes, procs
from stackyard.testbed.config import TestbedConfig

#: the node host key Ansible and ssh check (node-init makes it with ssh-keygen -A)
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key.pub"

Log = Callable[[str], None]


@contextlib.contextmanager
def _engine() -> Iterator[Engine]:
    """The local container engine for one operation, closed when it is done."""
    engine = connect()
    try:
        yield engine
    finally:
        engine.close()


def ensure_key(cfg: TestbedConfig) -> str:
    """The test bed's ed25519 key pair (made once); returns the public key."""
    pub = cfg.key_file.with_suffix(".pub")
    if not cfg.key_file.exists() or not pub.exists():
        cfg.key_file.unlink(missing_ok=True)
        pub.unlink(missing_ok=True)
        proc = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"stackyard-{cfg.prefix}",
                               "-f", str(cfg.key_file)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise TestbedError(f"ssh-keygen failed: {proc.stderr.strip()}")
    return pub.read_text().strip()


def _read_state(cfg: TestbedConfig) -> dict[str, Any]:
    try:
        return json.loads(cfg.state_file.read_text())
    except (OSError, ValueError):
        return {}


def _write_state(cfg: TestbedConfig, hosts: int) -> None:
    state = {"hosts": hosts, "prefix": cfg.prefix, "subnet": cfg.subnet,
             "registry_port": cfg.registry_port}
    inventory.write_if_changed(cfg.state_file, json.dumps(state, indent=2) + "\n")


def _known_hosts(cfg: TestbedConfig, engine: Engine) -> int:
    """Node count: from the state file, else the highest node container index."""
    count = int(_read_state(cfg).get("hosts", 0))
    existing = nodes.list_nodes(engine, cfg)
    return max([count, *existing.keys()]) if existing else count


def _prepare_node(cfg: TestbedConfig, count: int, engine: Engine, container: ContainerState, index: int,
                  pubkey: str) -> None:
    """Address the node and give it the key and /etc/hosts (on every up/start)."""
    name = container.name
    net.plumb(cfg, index, nodes.pid_of(engine, name))
    nodes.write_file(engine, name, "/root/.ssh/authorized_keys", pubkey + "\n")
    current = nodes.exec_in(engine, name, ["cat", "/etc/hosts"])
    # bootstrap-servers adds its own managed block later: keep it
    block_start = current.find("# BEGIN ")
    desired = inventory.render_hosts(cfg, count) + (current[block_start:] if block_start >= 0 else "")
    if current != desired:
        nodes.write_file(engine, name, "/etc/hosts", desired)


def _wait_ssh(cfg: TestbedConfig, indexes: list[int], timeout: float = 30.0) -> None:
    """Wait until sshd answers on every node (seen from inside the namespace)."""
    deadline = time.monotonic() + timeout
    pending = set(indexes)
    while pending and time.monotonic() < deadline:
        for index in sorted(pending):
            probe = net.run(net.in_netns(cfg, ["bash", "-c", f"exec 3<>/dev/tcp/{cfg.node_address(index)}/22 "
                                                             f"&& head -c 4 <&3"]), check=False)
            if probe.returncode == 0 and probe.stdout.startswith("SSH"):
                pending.discard(index)
        if pending:
            time.sleep(0.2)
    if pending:
        raise TestbedError(f"sshd did not answer on {', '.join(f'node{i}' for i in sorted(pending))} "
                           f"within {timeout:.0f}s: see /var/log/node-init.log in the node")


def up(cfg: TestbedConfig, hosts: int, log: Log, rebuild: bool = False) -> dict[str, Any]:
    """Create or converge a test bed of ``hosts`` nodes; returns :func:`status`."""
    if not 1 <= hosts <= 99:
        raise TestbedError(f"--hosts {hosts}: must be between 1 and 99")
    start = time.monotonic()
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    with _engine() as engine:
        image = nodes.ensure_image(engine, log, force=rebuild)
        extra = [i for i in nodes.list_nodes(engine, cfg) if i > hosts]
        if extra:
            raise TestbedError(f"test bed '{cfg.prefix}' has more nodes "
                               f"({', '.join(f'node{i}' for i in extra)}) than --hosts {hosts}: "
                               f"run `stackyard testbed down` first")
        pubkey = ensure_key(cfg)
        if net.ensure_bridge(cfg):
            # a forwarder left from before would still listen in the old namespace
            procs.stop(cfg, "forwarder", procs.FORWARDER_MARKER.format(netns=cfg.netns))
        procs.ensure_registry(cfg)
        procs.ensure_forwarder(cfg)
        indexes = list(range(1, hosts + 1))

        def one(index: int) -> None:
            container, was_running = nodes.ensure_running(engine, cfg, index, image)
            _prepare_node(cfg, hosts, engine, container, index, pubkey)
            log(f"node{index}: {'running' if was_running else 'started'} at {cfg.node_address(index)}")

        with ThreadPoolExecutor(max_workers=min(8, hosts)) as pool:
            for future in [pool.submit(one, i) for i in indexes]:
                future.result()
        _write_state(cfg, hosts)
        inventory.write_if_changed(cfg.inventory_file, inventory.render_inventory(cfg, hosts))
        inventory.write_if_changed(cfg.ssh_config_file, inventory.render_ssh_config(cfg, hosts))
        _wait_ssh(cfg, indexes)
        # sshd answers, so node-init made the host keys: read them through the engine
        running = nodes.list_nodes(engine, cfg)
        keys = {i: nodes.exec_in(engine, running[i].name, ["cat", HOST_KEY]) for i in indexes}
        inventory.write_if_changed(cfg.known_hosts_file, inventory.render_known_hosts(cfg, keys))
        log(f"test bed '{cfg.prefix}' up with {hosts} node(s) in {time.monotonic() - start:.1f}s; "
            f"inventory {cfg.inventory_file}")
        return status(cfg, engine)


def down(cfg: TestbedConfig, log: Log, purge: bool = False) -> None:
    """Remove nodes, volumes, namespace and processes; keep registry data unless ``purge``."""
    with _engine() as engine:
        for index, container in nodes.list_nodes(engine, cfg).items():
            nodes.remove_node(engine, cfg, index, container)
            log(f"node{index}: removed")
        for index in range(1, int(_read_state(cfg).get("hosts", 0)) + 1):
            nodes.remove_node(engine, cfg, index, None)   # volumes of containers removed by hand
    procs.stop_all(cfg)
    net.remove_netns(cfg)
    cfg.state_file.unlink(missing_ok=True)
    if purge:
        procs.purge_registry(cfg)
        log("registry storage removed")
    log(f"test bed '{cfg.prefix}' removed")


def _node(cfg: TestbedConfig, engine: Engine, index: int) -> ContainerState:
    """Node ``index``'s container; an operator error when the test bed has no such node."""
    container = nodes.get_container(engine, cfg, index)
    if container is None:
        raise TestbedError(f"node{index} is not part of test bed '{cfg.prefix}': run `stackyard testbed up`")
    return container


def stop_node(cfg: TestbedConfig, index: int, log: Log) -> None:
    """Power a node off (docker stop); its bridge-side veth vanishes with its namespace."""
    with _engine() as engine:
        container = _node(cfg, engine, index)
        engine.stop(container.name, timeout=nodes.STOP_TIMEOUT)
    net.unplumb(cfg, index)
    log(f"node{index}: stopped")


def start_node(cfg: TestbedConfig, index: int, log: Log) -> None:
    """Power a node on again and re-plumb it (a restarted container has a new namespace)."""
    with _engine() as engine:
        container = _node(cfg, engine, index)
        if not net.netns_exists(cfg):
            raise TestbedError(f"test bed namespace '{cfg.netns}' is missing: run `stackyard testbed up`")
        count = max(_known_hosts(cfg, engine), index)
        container, _ = nodes.ensure_running(engine, cfg, index, container.image_id)
        _prepare_node(cfg, count, engine, container, index, ensure_key(cfg))
    _wait_ssh(cfg, [index])
    log(f"node{index}: started at {cfg.node_address(index)}")


def status(cfg: TestbedConfig, engine: Engine | None = None) -> dict[str, Any]:
    """Machine-readable state of the test bed (what exists, not what should)."""
    if engine is None:
        with _engine() as own:
            return status(cfg, own)
    out_nodes = {}
    for index, container in nodes.list_nodes(engine, cfg).items():
        running = container.running
        plumbed = running and net.netns_exists(cfg) and net.is_plumbed(cfg, index,
                                                                        nodes.pid_of(engine, container.name))
        out_nodes[cfg.hostname(index)] = {
            "container": container.name, "address": cfg.node_address(index),
            "running": running, "plumbed": plumbed, "status": container.status,
        }
    registry_pid = procs.running_pid(cfg, "registry", str(cfg.registry_dir / "config.yml"))
    forwarder_pid = procs.running_pid(cfg, "forwarder", procs.FORWARDER_MARKER.format(netns=cfg.netns))
    return {
        "prefix": cfg.prefix,
        "state_dir": str(cfg.state_dir),
        "netns": cfg.netns if net.netns_exists(cfg) else None,
        "bridge": cfg.bridge,
        "deploy_address": cfg.gateway,
        "inventory": str(cfg.inventory_file) if cfg.inventory_file.exists() else None,
        "ssh_config": str(cfg.ssh_config_file),
        "key": str(cfg.key_file),
        "nodes": out_nodes,
        "registry": {"local": cfg.local_registry, "nodes": cfg.node_registry,
                     "pid": registry_pid, "forwarder_pid": forwarder_pid,
                     "running": bool(registry_pid and forwarder_pid)},
    }
