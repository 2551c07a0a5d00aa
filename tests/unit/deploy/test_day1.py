"""Day-1 resources as data: what init-runonce makes follows from globals, and bad values are one line."""

from pathlib import Path

import pytest

from stackyard.deploy.day1 import FLAVORS, ensure_keypair_file, plan_day1, public_network
from stackyard.errors import ConfigError

BASE = {"stackyard_public_cidr": "172.24.4.0/24", "stackyard_public_gateway": "", "stackyard_public_range": "",
        "neutron_physical_network": "physnet1", "stackyard_demo_cidr": "10.0.0.0/24", "stackyard_demo_dns": ""}


def test_public_network_defaults_gateway_first_pool_upper_half() -> None:
    pub = public_network(BASE)
    assert (pub.cidr, pub.gateway, pub.pool_start, pub.pool_end) == (
        "172.24.4.0/24", "172.24.4.1", "172.24.4.128", "172.24.4.254")
    assert pub.gateway_cidr == "172.24.4.1/24" and pub.physnet == "physnet1"
    small = public_network({**BASE, "stackyard_public_cidr": "192.168.50.0/28"})
    assert (small.gateway, small.pool_start, small.pool_end) == ("192.168.50.1", "192.168.50.8", "192.168.50.14")


def test_public_network_given_values() -> None:
    pub = public_network({**BASE, "stackyard_public_gateway": "172.24.4.254",
                          "stackyard_public_range": "172.24.4.10-172.24.4.20"})
    assert (pub.gateway, pub.pool_start, pub.pool_end) == ("172.24.4.254", "172.24.4.10", "172.24.4.20")
    high = public_network({**BASE, "stackyard_public_gateway": "172.24.4.254"})  # the pool moves below it
    assert (high.pool_start, high.pool_end) == ("172.24.4.1", "172.24.4.127")


@pytest.mark.parametrize("key,value,message", [
    ("stackyard_public_cidr", "172.24.4.1/24", "is not a subnet"),
    ("stackyard_public_cidr", "fd00::/64", "must be an IPv4 subnet"),
    ("stackyard_public_gateway", "10.0.0.1", "is not a host address of 172.24.4.0/24"),
    ("stackyard_public_range", "172.24.4.10", "is not FIRST-LAST"),
    ("stackyard_public_range", "172.24.4.30-172.24.4.20", "comes after"),
    ("stackyard_public_range", "172.24.4.1-172.24.4.20", "holds the gateway"),
    ("stackyard_demo_cidr", "172.24.4.0/25", "overlaps stackyard_public_cidr"),
    ("stackyard_demo_dns", "dns.example", "is not an IP address"),
])
def test_bad_values_name_the_key(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}: .*{message}"):
        plan_day1({**BASE, key: value}, ["nova", "neutron"], Path("/etc/kolla"))


def test_plan_follows_the_enabled_services() -> None:
    full = plan_day1(BASE, ["keystone", "glance", "nova", "neutron"], Path("/etc/kolla"))
    assert full.flavors == FLAVORS and full.public is not None and full.demo_cidr == "10.0.0.0/24"
    assert full.keypair_file == Path("/etc/kolla/mykey.pub") and full.security_rules
    identity = plan_day1(BASE, ["keystone"], Path("/etc/kolla"))
    assert identity.flavors == () and identity.public is None and identity.keypair_file is None
    # the tiny flavors the test guest boots, besides kolla-ansible's m1.*
    assert {f.name for f in FLAVORS} >= {"m1.nano", "m1.micro", "m1.tiny", "m1.xlarge"}


def test_keypair_file_is_made_once_private(tmp_path: Path) -> None:
    pub = tmp_path / "mykey.pub"
    key, made = ensure_keypair_file(pub)
    assert made and key.startswith("ssh-ed25519 ") and pub.read_text().strip() == key
    assert (tmp_path / "mykey").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "mykey").read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert ensure_keypair_file(pub) == (key, False)
    pub.write_text("not a key\n")
    with pytest.raises(ConfigError, match="not an OpenSSH public key"):
        ensure_keypair_file(pub)
