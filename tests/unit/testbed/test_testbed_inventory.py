"""The generated multinode inventory parses with stackyard's own reader."""

from __future__ import annotations

from pathlib import Path

from stackyard.deploy.inventory import ALL_IN_ONE, load_inventory
from stackyard.testbed import inventory
from stackyard.testbed.config import TestbedConfig

CFG = TestbedConfig(state_dir=Path("/srv/tb"))


def _parse(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "multinode"
    path.write_text(text)
    return load_inventory([path])


def test_roles_for_two_nodes(tmp_path: Path) -> None:
    inv = _parse(tmp_path, inventory.render_inventory(CFG, 2))
    assert inv.hosts_in("control") == ["node1", "node2"]
    assert inv.hosts_in("network") == ["node1", "node2"]
    assert inv.hosts_in("compute") == ["node1", "node2"]
    assert inv.hosts_in("monitoring") == ["node1"]
    assert inv.hosts_in("storage") == ["node1"]
    assert inv.hosts_in("deployment") == ["localhost"]
    assert inv.hosts_in("mariadb") == ["node1", "node2"]
    assert inv.hosts_in("loadbalancer") == ["node1", "node2"]
    assert inv.hosts_in("nova-compute") == ["node1", "node2"]


def test_control_is_first_three_of_five(tmp_path: Path) -> None:
    inv = _parse(tmp_path, inventory.render_inventory(CFG, 5))
    assert inv.hosts_in("control") == ["node1", "node2", "node3"]
    assert inv.hosts_in("compute") == [f"node{i}" for i in range(1, 6)]
    assert inv.hosts_in("keystone") == ["node1", "node2", "node3"]


def test_host_vars(tmp_path: Path) -> None:
    inv = _parse(tmp_path, inventory.render_inventory(CFG, 2))
    hv = inv.hosts["node2"]
    assert hv["ansible_host"] == "10.250.0.12"
    assert hv["ansible_user"] == "root"
    assert hv["ansible_ssh_private_key_file"] == "/srv/tb/id_ed25519"
    assert hv["ansible_python_interpreter"] == "/usr/bin/python3"
    assert hv["api_interface"] == hv["network_interface"] == "eth0"
    assert hv["tunnel_interface"] == "eth1"
    # host keys checked against the test bed's own known_hosts
    assert "StrictHostKeyChecking=yes" in hv["ansible_ssh_common_args"]
    assert "UserKnownHostsFile=/srv/tb/known_hosts" in hv["ansible_ssh_common_args"]
    assert inv.hosts["localhost"]["ansible_connection"] == "local"
    # SSH control sockets per test bed: two beds use the same node addresses
    assert hv["ansible_control_path_dir"] == "/srv/tb/ssh-cp"


def test_child_groups_copied_once() -> None:
    text = inventory.render_inventory(CFG, 3)
    for group in ("[nova-compute:children]", "[loadbalancer:children]", "[mariadb:children]",
                  "[keystone:children]", "[rabbitmq:children]", "[memcached:children]"):
        assert text.count(group) == 1, group
    assert text.count("[control]") == 1


def test_child_groups_text_starts_after_roles() -> None:
    children = inventory.child_groups_text(ALL_IN_ONE)
    assert "[control]" not in children and "localhost" not in children
    assert "[baremetal:children]" in children


def test_required_groups_added_when_missing() -> None:
    text = "[control]\nlocalhost\n\n[glance:children]\ncontrol\n"
    assert inventory.child_groups_text(text) == "[glance:children]\ncontrol\n"


def test_ssh_config_and_hosts() -> None:
    ssh = inventory.render_ssh_config(CFG, 2)
    assert "Host node2 10.250.0.12" in ssh and "IdentityFile /srv/tb/id_ed25519" in ssh
    assert "StrictHostKeyChecking yes" in ssh and "UserKnownHostsFile /srv/tb/known_hosts" in ssh
    assert inventory.render_known_hosts(CFG, {2: "ssh-ed25519 AAAAkey2 root@node2\n", 1: "ssh-ed25519 AAAAkey1"}) == \
        "node1,10.250.0.11 ssh-ed25519 AAAAkey1\nnode2,10.250.0.12 ssh-ed25519 AAAAkey2\n"
    hosts = inventory.render_hosts(CFG, 2)
    assert "10.250.0.11\tnode1\n10.250.0.12\tnode2\n" in hosts


def test_write_if_changed(tmp_path: Path) -> None:
    path = tmp_path / "f"
    assert inventory.write_if_changed(path, "a")
    assert not inventory.write_if_changed(path, "a")
    assert inventory.write_if_changed(path, "b") and path.read_text() == "b"
