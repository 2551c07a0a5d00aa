"""Day-1 resources: what kolla-ansible's ``init-runonce`` gives a new cloud, made idempotently.

A fresh cloud has no flavors and no networks, so a new user can boot
nothing. :func:`plan_day1` computes, from globals alone, what should exist:

- kolla-ansible's ``m1.*`` flavors, plus ``m1.nano`` and ``m1.micro`` (the
  devstack names) small enough for the test guest;
- ``public1``: a flat external network on ``neutron_physical_network`` with a
  subnet (no DHCP) and a floating IP pool (``stackyard_public_*``);
- ``demo-net`` with ``demo-subnet`` and ``demo-router`` (gateway on public1);
- ICMP and SSH allowed in the admin project's default security group;
- the ``mykey`` keypair, from ``<configdir>/mykey.pub`` (made on first run).

:func:`apply_day1` then makes what is missing through openstacksdk and never
changes or deletes what an operator made: a flavor of the same name with
other sizes, or a flat network already on the physical network, is reported
and used as it is.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from stackyard.errors import ConfigError, DeployError


@dataclass(frozen=True)
class Flavor:
    name: str
    vcpus: int
    ram: int   # MiB
    disk: int  # GiB


#: kolla-ansible's init-runonce flavors, and two tiny ones for test guests (devstack's names)
FLAVORS = (
    Flavor("m1.nano", 1, 192, 1),
    Flavor("m1.micro", 1, 256, 1),
    Flavor("m1.tiny", 1, 512, 1),
    Flavor("m1.small", 1, 2048, 20),
    Flavor("m1.medium", 2, 4096, 40),
    Flavor("m1.large", 4, 8192, 80),
    Flavor("m1.xlarge", 8, 16384, 160),
)
PUBLIC_NETWORK, PUBLIC_SUBNET = "public1", "public1-subnet"
DEMO_NETWORK, DEMO_SUBNET, DEMO_ROUTER = "demo-net", "demo-subnet", "demo-router"
KEYPAIR = "mykey"
#: (protocol, port) opened in the admin project's default security group, IPv4 ingress
SECURITY_RULES = (("icmp", None), ("tcp", 22))


@dataclass(frozen=True)
class PublicNetwork:
    """The flat external network: its subnet, gateway and floating IP pool."""

    physnet: str
    cidr: str
    gateway: str
    pool_start: str
    pool_end: str

    @property
    def gateway_cidr(self) -> str:
        """The gateway with the subnet's prefix length (the host's address on the network)."""
        return f"{self.gateway}/{ipaddress.ip_network(self.cidr).prefixlen}"


@dataclass(frozen=True)
class Day1Plan:
    flavors: tuple[Flavor, ...]
    public: PublicNetwork | None
    demo_cidr: str = ""
    demo_dns: str = ""
    keypair_file: Path | None = None
    security_rules: tuple[tuple[str, int | None], ...] = ()


def _network(key: str, value: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ConfigError(f"{key}: '{value}' is not a subnet ({exc})") from None
    if net.version != 4 or net.num_addresses < 8:
        raise ConfigError(f"{key}: '{value}' must be an IPv4 subnet of at least 8 addresses (/29)")
    return net


def _address_in(key: str, value: str, net: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    try:
        addr = ipaddress.ip_address(value.strip())
    except ValueError:
        raise ConfigError(f"{key}: '{value}' is not an IPv4 address") from None
    if addr not in net or addr in (net.network_address, net.broadcast_address):
        raise ConfigError(f"{key}: {addr} is not a host address of {net}")
    return addr


def public_network(v: dict[str, Any]) -> PublicNetwork:
    """public1's addressing from the ``stackyard_public_*`` keys, checked (ConfigError naming the key)."""
    net = _network("stackyard_public_cidr", str(v["stackyard_public_cidr"]))
    hosts = list(net.hosts())
    gw_text = str(v.get("stackyard_public_gateway") or "")
    gateway = _address_in("stackyard_public_gateway", gw_text, net) if gw_text else hosts[0]
    rng = str(v.get("stackyard_public_range") or "")
    if rng:
        first, sep, last = rng.partition("-")
        if not sep:
            raise ConfigError(f"stackyard_public_range: '{rng}' is not FIRST-LAST (e.g. 172.24.4.100-172.24.4.200)")
        start = _address_in("stackyard_public_range", first, net)
        end = _address_in("stackyard_public_range", last, net)
        if end < start:
            raise ConfigError(f"stackyard_public_range: {start} comes after {end}")
        if start <= gateway <= end:
            raise ConfigError(f"stackyard_public_range: {rng} holds the gateway {gateway}")
    else:
        # the upper half of the subnet, or the lower half when the gateway is up there
        start, end = hosts[len(hosts) // 2], hosts[-1]
        if start <= gateway <= end:
            start, end = hosts[0], hosts[len(hosts) // 2 - 1]
    return PublicNetwork(str(v["neutron_physical_network"]), str(net), str(gateway), str(start), str(end))


def plan_day1(v: dict[str, Any], enabled: list[str], configdir: Path) -> Day1Plan:
    """What should exist for the enabled services (pure: globals in, data out)."""
    flavors = FLAVORS if "nova" in enabled else ()
    public = public_network(v) if "neutron" in enabled else None
    demo = ""
    dns = ""
    if public is not None:
        demo = str(_network("stackyard_demo_cidr", str(v["stackyard_demo_cidr"])))
        if ipaddress.ip_network(demo).overlaps(ipaddress.ip_network(public.cidr)):
            raise ConfigError(f"stackyard_demo_cidr: {demo} overlaps stackyard_public_cidr {public.cidr}")
        dns = str(v.get("stackyard_demo_dns") or "")
        if dns:
            try:
                ipaddress.ip_address(dns)
            except ValueError:
                raise ConfigError(f"stackyard_demo_dns: '{dns}' is not an IP address") from None
    keyfile = configdir / f"{KEYPAIR}.pub" if "nova" in enabled else None
    rules = SECURITY_RULES if public is not None else ()
    return Day1Plan(flavors, public, demo, dns, keyfile, rules)


def ensure_keypair_file(pub: Path) -> tuple[str, bool]:
    """The public key in ``pub``; made (ed25519, private key beside it, mode 0600) when missing."""
    if pub.is_file():
        text = pub.read_text().strip()
        if not text.startswith(("ssh-", "ecdsa-")):
            raise ConfigError(f"{pub}: not an OpenSSH public key")
        return text, False
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode() + " stackyard-mykey"
    priv_path = pub.with_suffix("")
    priv_path.touch(mode=0o600, exist_ok=True)
    priv_path.chmod(0o600)
    priv_path.write_bytes(private)
    pub.write_text(public + "\n")
    return public, True


Say = Callable[[str], None]


def apply_day1(conn: Any, plan: Day1Plan, say: Say) -> dict[str, Any]:
    """Make what ``plan`` lists and is missing; returns {"changed": [...], "present": [...], "notes": [...]}."""
    report: dict[str, list[str]] = {"changed": [], "present": [], "notes": []}

    def did(what: str) -> None:
        report["changed"].append(what)
        say(f"day-1: {what}")

    try:
        _flavors(conn, plan, did, report)
        net = _public(conn, plan, did, report) if plan.public else None
        if plan.public is not None and net is not None:
            _demo(conn, plan, net, did, report)
            _security_rules(conn, plan, did, report)
        if plan.keypair_file is not None:
            _keypair(conn, plan.keypair_file, did, report)
    except DeployError:
        raise
    except Exception as exc:  # noqa: BLE001 - an API refusal: one line naming it
        raise DeployError(f"day-1 resources: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    for note in report["notes"]:
        say(f"day-1: note: {note}")
    return report


def _flavors(conn: Any, plan: Day1Plan, did: Callable[[str], None], report: dict[str, list[str]]) -> None:
    existing = {f.name: f for f in conn.compute.flavors(is_public=None)}
    for f in plan.flavors:
        have = existing.get(f.name)
        if have is None:
            conn.compute.create_flavor(name=f.name, vcpus=f.vcpus, ram=f.ram, disk=f.disk, is_public=True)
            did(f"flavor {f.name} created ({f.vcpus} vCPU, {f.ram} MiB, {f.disk} GiB)")
        elif (have.vcpus, have.ram, have.disk) != (f.vcpus, f.ram, f.disk):
            report["notes"].append(f"flavor {f.name} exists with {have.vcpus} vCPU, {have.ram} MiB, "
                                   f"{have.disk} GiB: left as it is")
        else:
            report["present"].append(f"flavor {f.name}")


def find_public_network(conn: Any, physnet: str) -> Any:
    """public1, else the external flat network on ``physnet`` (one flat network per physical network)."""
    nets = list(conn.network.networks())
    named = [n for n in nets if n.name == PUBLIC_NETWORK and n.is_router_external]
    if named:
        return named[0]
    flat = [n for n in nets if n.provider_network_type == "flat" and n.provider_physical_network == physnet]
    return flat[0] if flat else None


def _public(conn: Any, plan: Day1Plan, did: Callable[[str], None], report: dict[str, list[str]]) -> Any:
    pub = plan.public
    assert pub is not None
    net = find_public_network(conn, pub.physnet)
    if net is None:
        net = conn.network.create_network(name=PUBLIC_NETWORK, is_router_external=True, is_shared=False,
                                          provider_network_type="flat", provider_physical_network=pub.physnet)
        did(f"network {PUBLIC_NETWORK} created (flat, {pub.physnet}, external)")
    elif net.name != PUBLIC_NETWORK:
        report["notes"].append(f"flat network {net.name} already uses {pub.physnet}: used as the public network")
    else:
        report["present"].append(f"network {PUBLIC_NETWORK}")
    subnets = [s for s in conn.network.subnets(network_id=net.id) if s.ip_version == 4]
    if not subnets:
        conn.network.create_subnet(network_id=net.id, name=PUBLIC_SUBNET, ip_version=4, cidr=pub.cidr,
                                   gateway_ip=pub.gateway, is_dhcp_enabled=False,
                                   allocation_pools=[{"start": pub.pool_start, "end": pub.pool_end}])
        did(f"subnet {PUBLIC_SUBNET} created ({pub.cidr}, gateway {pub.gateway}, "
            f"floating IPs {pub.pool_start}-{pub.pool_end})")
    else:
        if not any(s.cidr == pub.cidr for s in subnets):
            report["notes"].append(f"network {net.name} has subnet {subnets[0].cidr}, not "
                                   f"stackyard_public_cidr {pub.cidr}: left as it is")
        report["present"].append(f"subnet of {net.name}")
    return net


def _demo(conn: Any, plan: Day1Plan, public: Any, did: Callable[[str], None],
          report: dict[str, list[str]]) -> None:
    project = conn.current_project_id
    net = conn.network.find_network(DEMO_NETWORK, project_id=project)
    if net is None:
        net = conn.network.create_network(name=DEMO_NETWORK, project_id=project)
        did(f"network {DEMO_NETWORK} created")
    else:
        report["present"].append(f"network {DEMO_NETWORK}")
    subnet = conn.network.find_subnet(DEMO_SUBNET, network_id=net.id)
    if subnet is None:
        kw: dict[str, Any] = {"dns_nameservers": [plan.demo_dns]} if plan.demo_dns else {}
        subnet = conn.network.create_subnet(network_id=net.id, name=DEMO_SUBNET, ip_version=4,
                                            cidr=plan.demo_cidr, is_dhcp_enabled=True, **kw)
        did(f"subnet {DEMO_SUBNET} created ({plan.demo_cidr})")
    else:
        report["present"].append(f"subnet {DEMO_SUBNET}")
    router = conn.network.find_router(DEMO_ROUTER, project_id=project)
    if router is None:
        router = conn.network.create_router(name=DEMO_ROUTER, project_id=project,
                                            external_gateway_info={"network_id": public.id})
        did(f"router {DEMO_ROUTER} created (gateway on {public.name})")
    elif not router.external_gateway_info:
        conn.network.update_router(router, external_gateway_info={"network_id": public.id})
        did(f"router {DEMO_ROUTER}: gateway set on {public.name}")
    else:
        report["present"].append(f"router {DEMO_ROUTER}")
    ports = conn.network.ports(device_id=router.id, network_id=net.id)
    if not any(True for _ in ports):
        conn.network.add_interface_to_router(router, subnet_id=subnet.id)
        did(f"router {DEMO_ROUTER}: interface on {DEMO_SUBNET}")


def _security_rules(conn: Any, plan: Day1Plan, did: Callable[[str], None], report: dict[str, list[str]]) -> None:
    project = conn.current_project_id
    groups = [g for g in conn.network.security_groups(project_id=project) if g.name == "default"]
    if not groups:
        report["notes"].append("the admin project has no default security group yet: rules not added")
        return
    group = groups[0]
    rules = list(conn.network.security_group_rules(security_group_id=group.id))
    for protocol, port in plan.security_rules:
        def matches(r: Any) -> bool:
            return (r.direction == "ingress" and r.ether_type == "IPv4" and r.protocol == protocol
                    and r.remote_ip_prefix in (None, "0.0.0.0/0") and r.remote_group_id is None
                    and (port is None or (r.port_range_min == port and r.port_range_max == port)))
        what = f"{protocol}{'' if port is None else f'/{port}'}"
        if any(matches(r) for r in rules):
            report["present"].append(f"security rule {what}")
            continue
        kw: dict[str, Any] = {} if port is None else {"port_range_min": port, "port_range_max": port}
        conn.network.create_security_group_rule(security_group_id=group.id, direction="ingress",
                                                ether_type="IPv4", protocol=protocol,
                                                remote_ip_prefix="0.0.0.0/0", **kw)
        did(f"security group default: {what} allowed in")


def _keypair(conn: Any, pub: Path, did: Callable[[str], None], report: dict[str, list[str]]) -> None:
    key, made = ensure_keypair_file(pub)
    if made:
        did(f"key pair written to {pub.with_suffix('')} (private, 0600) and {pub}")
    existing = conn.compute.find_keypair(KEYPAIR)
    if existing is None:
        conn.compute.create_keypair(name=KEYPAIR, public_key=key)
        did(f"keypair {KEYPAIR} created")
    elif existing.public_key.strip().split()[:2] != key.split()[:2]:
        report["notes"].append(f"keypair {KEYPAIR} holds another key than {pub}: left as it is")
    else:
        report["present"].append(f"keypair {KEYPAIR}")
