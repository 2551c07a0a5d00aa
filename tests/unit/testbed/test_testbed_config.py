"""Names and addresses of a test bed: pure functions, no root needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackyard.errors import TestbedError
from stackyard.testbed.config import TestbedConfig, parse_node


def test_default_names_and_addresses() -> None:
    cfg = TestbedConfig()
    assert (cfg.netns, cfg.bridge, cfg.veth(1)) == ("sytb", "sytb-br", "sytb-n1")
    assert (cfg.container(2), cfg.volume(2), cfg.hostname(2)) == ("sytb-node2", "sytb-node2-docker", "node2")
    assert cfg.gateway == "10.250.0.1"
    assert [cfg.node_address(i) for i in (1, 2, 3)] == ["10.250.0.11", "10.250.0.12", "10.250.0.13"]
    assert cfg.cidr(cfg.gateway) == "10.250.0.1/24"
    assert cfg.local_registry == "127.0.0.1:5100"
    assert cfg.node_registry == "10.250.0.1:5000"
    assert cfg.inventory_file == Path("/var/lib/stackyard/testbed/multinode")


def test_prefix_and_registry_port_separate_two_beds() -> None:
    cfg = TestbedConfig(state_dir=Path("/tmp/x"), prefix="sytbe", registry_port=5001)
    assert cfg.veth(99) == "sytbe-n99" and len(cfg.veth(99)) <= 15
    assert cfg.local_registry == "127.0.0.1:5001"
    # nodes always use port 5000 on their own gateway (the forwarder)
    assert cfg.node_registry == "10.250.0.1:5000"
    assert cfg.key_file == Path("/tmp/x/id_ed25519")


@pytest.mark.parametrize("prefix", ["", "Sytb", "toolongprefix", "1ab", "a-b"])
def test_bad_prefix(prefix: str) -> None:
    with pytest.raises(TestbedError, match="prefix"):
        TestbedConfig(prefix=prefix)


@pytest.mark.parametrize("subnet", ["10.250.0.0/28", "8.8.8.0/24", "nonsense"])
def test_bad_subnet(subnet: str) -> None:
    with pytest.raises(TestbedError, match="subnet"):
        TestbedConfig(subnet=subnet)


def test_other_subnet() -> None:
    cfg = TestbedConfig(subnet="10.251.0.0/24")
    assert cfg.gateway == "10.251.0.1" and cfg.node_address(4) == "10.251.0.14"
    assert cfg.node_tunnel_address(4) == "10.251.1.14" and cfg.tunnel_cidr("10.251.1.14") == "10.251.1.14/24"
    wide = TestbedConfig(subnet="10.8.0.0/16")
    assert str(wide.tunnel_network) == "10.9.0.0/16"


def test_tunnel_subnet_must_stay_private() -> None:
    with pytest.raises(TestbedError, match="tunnel subnet"):
        TestbedConfig(subnet="192.168.255.0/24")


@pytest.mark.parametrize("name,index", [("node1", 1), ("node12", 12), ("3", 3)])
def test_parse_node(name: str, index: int) -> None:
    assert parse_node(name) == index


@pytest.mark.parametrize("name", ["nodeX", "node0", "node100", "host1"])
def test_parse_node_rejects(name: str) -> None:
    with pytest.raises(TestbedError):
        parse_node(name)
