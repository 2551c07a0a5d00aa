"""The test bed's kolla-ansible style ``multinode`` inventory and ssh_config.

The inventory is what an operator would write for a small real cloud: the
top-level roles on the nodes, then the same per-service child groups as the
built-in all-in-one (copied from :data:`stackyard.deploy.inventory.ALL_IN_ONE`
so the two never drift apart). Ansible runs inside the test bed's network
namespace, where the node addresses are reachable.
"""

from __future__ import annotations

import re
from pathlib import Path

from stackyard.deploy.inventory import ALL_IN_ONE
from stackyard.testbed.config import TestbedConfig

TOP_LEVEL_ROLES = ("control", "network", "compute", "storage", "monitoring", "deployment")
#: groups the deploy needs even if the all-in-one text ever stops listing them
REQUIRED_CHILDREN = {
    "loadbalancer": "network",
    "mariadb": "control",
    "rabbitmq": "control",
    "memcached": "control",
    "keystone": "control",
}
_HEADER = re.compile(r"^\[([^\]]+)\]\s*$", re.MULTILINE)

def ssh_options(cfg: TestbedConfig) -> str:
    """Host keys checked against the test bed's own known_hosts (see :func:`render_known_hosts`):
    whoever answers for a node's address gets nothing without the node's key."""
    return f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={cfg.known_hosts_file} -o LogLevel=ERROR"


def render_known_hosts(cfg: TestbedConfig, keys: dict[int, str]) -> str:
    """known_hosts lines for node ``index`` -> its host public key (``ssh-ed25519 AAAA...``),
    under its name and its address."""
    return "".join(f"{cfg.hostname(i)},{cfg.node_address(i)} {' '.join(keys[i].split()[:2])}\n"
                   for i in sorted(keys))


def child_groups_text(all_in_one: str = ALL_IN_ONE) -> str:
    """Everything in ``all_in_one`` after the top-level role sections."""
    for m in _HEADER.finditer(all_in_one):
        if m.group(1) not in TOP_LEVEL_ROLES:
            # keep a comment block that directly precedes the first child group
            start = all_in_one.rfind("\n\n", 0, m.start())
            return all_in_one[start + 2 if start >= 0 else m.start():].strip() + "\n"
    return ""


def role_hosts(count: int) -> dict[str, list[int]]:
    """Node indexes per top-level role (control/network = first three nodes)."""
    nodes = list(range(1, count + 1))
    control = nodes[:3]
    return {"control": control, "network": control, "compute": nodes,
            "monitoring": nodes[:1], "storage": nodes[:1]}


def host_line(cfg: TestbedConfig, index: int) -> str:
    return (f"{cfg.hostname(index)} ansible_host={cfg.node_address(index)} ansible_user=root "
            f"ansible_ssh_private_key_file={cfg.key_file} "
            f"ansible_python_interpreter=/usr/bin/python3 "
            f"api_interface=eth0 network_interface=eth0 tunnel_interface=eth1")


def render_inventory(cfg: TestbedConfig, count: int) -> str:
    """The complete ``multinode`` INI text for ``count`` nodes."""
    out = [f"# Written by `stackyard testbed up` for {count} node(s); regenerated on every up.", ""]
    for role, indexes in role_hosts(count).items():
        out.append(f"[{role}]")
        out += [host_line(cfg, i) for i in indexes]
        out.append("")
    out += ["[deployment]", "localhost ansible_connection=local", ""]
    children = child_groups_text()
    out.append(children.rstrip("\n"))
    present = {m.group(1) for m in _HEADER.finditer(children)}
    for group, parent in REQUIRED_CHILDREN.items():
        if f"{group}:children" not in present:
            out += ["", f"[{group}:children]", parent]
    # Test beds share node addresses (each in its own namespace): Ansible's SSH
    # control sockets, keyed by address/port/user, must not be shared too.
    out += ["", "[all:vars]", f"ansible_ssh_common_args='{ssh_options(cfg)}'",
            f"ansible_control_path_dir={cfg.state_dir / 'ssh-cp'}", ""]
    return "\n".join(out)


def render_ssh_config(cfg: TestbedConfig, count: int) -> str:
    """ssh_config for ``ssh -F``: every node by name, root, the test bed key."""
    out = ["# Written by `stackyard testbed up`; use inside the test bed namespace:",
           f"#   ip netns exec {cfg.netns} ssh -F {cfg.ssh_config_file} node1", ""]
    for i in range(1, count + 1):
        out += [f"Host {cfg.hostname(i)} {cfg.node_address(i)}",
                f"    HostName {cfg.node_address(i)}", ""]
    out += ["Host *",
            "    User root",
            f"    IdentityFile {cfg.key_file}",
            "    IdentitiesOnly yes",
            "    StrictHostKeyChecking yes",
            f"    UserKnownHostsFile {cfg.known_hosts_file}",
            "    LogLevel ERROR",
            "    ConnectTimeout 5",
            ""]
    return "\n".join(out)


def render_hosts(cfg: TestbedConfig, count: int) -> str:
    """/etc/hosts for every node: localhost plus every node by name."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{cfg.node_address(i)}\t{cfg.hostname(i)}" for i in range(1, count + 1)]
    return "\n".join(lines) + "\n"


def write_if_changed(path: Path, text: str, mode: int = 0o644) -> bool:
    """Write ``text`` to ``path`` only when it differs (keeps mtimes meaningful)."""
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    tmp.replace(path)
    return True
