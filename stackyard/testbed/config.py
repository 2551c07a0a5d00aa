"""Names and addresses of one test bed, derived from a prefix and a node count.

Kept pure (no I/O) so that every name the test bed creates can be unit
tested, and so that two test beds with different prefixes never collide:
the prefix names the network namespace, the bridge, the veths, the node
containers and their volumes.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from stackyard.errors import TestbedError

DEFAULT_STATE_DIR = Path("/var/lib/stackyard/testbed")
DEFAULT_PREFIX = "sytb"
DEFAULT_SUBNET = "10.250.0.0/24"
#: not 5000: that is Keystone's port in an all-in-one on this machine
DEFAULT_REGISTRY_PORT = 5100
#: node N gets host address FIRST_NODE_OFFSET + N (10.250.0.11 for node1)
FIRST_NODE_OFFSET = 10
LABEL = "org.stackyard.testbed"
#: the port the nodes use to reach the registry (on the gateway address)
NODE_REGISTRY_PORT = 5000

# Linux interface names are at most 15 bytes: "<prefix>-n<NN>" must fit.
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
MAX_NODES = 99


@dataclass(frozen=True)
class TestbedConfig:
    """Everything that identifies one test bed."""

    __test__ = False  # not a pytest class, despite the name

    state_dir: Path = DEFAULT_STATE_DIR
    prefix: str = DEFAULT_PREFIX
    subnet: str = DEFAULT_SUBNET
    registry_port: int = DEFAULT_REGISTRY_PORT

    def __post_init__(self) -> None:
        if not _PREFIX_RE.match(self.prefix):
            raise TestbedError(f"test bed prefix '{self.prefix}': use 1-8 lowercase letters/digits, "
                               f"starting with a letter (it names network interfaces)")
        try:
            net = ipaddress.IPv4Network(self.subnet)
        except ValueError as exc:
            raise TestbedError(f"test bed subnet '{self.subnet}': {exc}") from None
        if net.prefixlen > 24 or not net.is_private:
            raise TestbedError(f"test bed subnet '{self.subnet}': must be a private /24 or larger")
        if not self.tunnel_network.is_private:
            raise TestbedError(f"test bed subnet '{self.subnet}': the tunnel subnet after it "
                               f"({self.tunnel_network}) is not private; pick a lower subnet")

    # ---------------------------------------------------------------- names
    @property
    def netns(self) -> str:
        return self.prefix

    @property
    def bridge(self) -> str:
        return f"{self.prefix}-br"

    def veth(self, index: int) -> str:
        """The bridge-side end of node ``index``'s veth (inside the netns)."""
        return f"{self.prefix}-n{index}"

    @property
    def tunnel_bridge(self) -> str:
        """The second L2 segment: the nodes' tunnel NICs (eth1), no deploy host address."""
        return f"{self.prefix}-tb"

    def tunnel_veth(self, index: int) -> str:
        """The tunnel-bridge-side end of node ``index``'s eth1."""
        return f"{self.prefix}-t{index}"

    def container(self, index: int) -> str:
        return f"{self.prefix}-node{index}"

    def volume(self, index: int) -> str:
        return f"{self.prefix}-node{index}-docker"

    @staticmethod
    def hostname(index: int) -> str:
        return f"node{index}"

    # ---------------------------------------------------------------- addresses
    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def gateway(self) -> str:
        """The deploy host's address on the bridge (first address of the subnet)."""
        return str(self.network.network_address + 1)

    def node_address(self, index: int) -> str:
        check_index(index)
        return str(self.network.network_address + FIRST_NODE_OFFSET + index)

    def cidr(self, address: str) -> str:
        return f"{address}/{self.network.prefixlen}"

    @property
    def tunnel_network(self) -> ipaddress.IPv4Network:
        """The tunnel NICs' subnet: the next block of the node subnet's size.

        A separate subnet (and segment), as a dedicated tunnel network is on
        real hosts: Neutron's VXLAN runs over it, and on Open vSwitch's
        userspace datapath its address moves into an OVS bridge, which must
        not take the management (SSH, API) address with it.
        """
        net = self.network
        return ipaddress.IPv4Network((int(net.network_address) + net.num_addresses, net.prefixlen))

    def node_tunnel_address(self, index: int) -> str:
        check_index(index)
        return str(self.tunnel_network.network_address + FIRST_NODE_OFFSET + index)

    def tunnel_cidr(self, address: str) -> str:
        return f"{address}/{self.tunnel_network.prefixlen}"

    @property
    def node_registry(self) -> str:
        """Registry address as the nodes see it (the forwarder in the netns)."""
        return f"{self.gateway}:{NODE_REGISTRY_PORT}"

    @property
    def local_registry(self) -> str:
        """Registry address in the root namespace (where images are pushed)."""
        return f"127.0.0.1:{self.registry_port}"

    def mac(self, index: int) -> str:
        """A fixed MAC for node ``index``'s eth0 (0: the bridge).

        Fixed like real hardware: a node that is stopped and started keeps its
        MAC, so its peers' ARP caches stay valid, and the bridge's MAC does
        not change as ports come and go (Linux otherwise takes the lowest
        port's MAC).
        """
        digest = hashlib.sha256(self.prefix.encode()).digest()
        return f"02:53:{digest[0]:02x}:{digest[1]:02x}:00:{index:02x}"

    def tunnel_mac(self, index: int) -> str:
        """A fixed MAC for node ``index``'s eth1 (0: the tunnel bridge)."""
        digest = hashlib.sha256(self.prefix.encode()).digest()
        return f"02:53:{digest[0]:02x}:{digest[1]:02x}:01:{index:02x}"

    # ---------------------------------------------------------------- files
    @property
    def key_file(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def inventory_file(self) -> Path:
        return self.state_dir / "multinode"

    @property
    def ssh_config_file(self) -> Path:
        return self.state_dir / "ssh_config"

    @property
    def known_hosts_file(self) -> Path:
        """The nodes' SSH host keys, read from the nodes through the engine (not over SSH)."""
        return self.state_dir / "known_hosts"

    @property
    def registry_dir(self) -> Path:
        return self.state_dir / "registry"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"


def check_index(index: int) -> None:
    if not 1 <= index <= MAX_NODES:
        raise TestbedError(f"node index {index}: must be between 1 and {MAX_NODES}")


def parse_node(name: str) -> int:
    """``node2`` (or ``2``) -> 2; anything else is an operator error."""
    m = re.fullmatch(r"(?:node)?(\d+)", name.strip())
    if not m:
        raise TestbedError(f"'{name}' is not a node name: expected nodeN, e.g. node2")
    index = int(m.group(1))
    check_index(index)
    return index
