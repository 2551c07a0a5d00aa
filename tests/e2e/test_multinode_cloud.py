"""End-to-end: the whole core cloud on 2 test-bed hosts, each service in its group.

node1 is control + network (APIs, MariaDB, RabbitMQ, the Neutron agents),
node2 is compute only (nova-compute, libvirt, Open vSwitch and its agent).
Checks placement, that every service reports from its own host, that a server
on the compute host gets its address (DHCP) and metadata from node1's agents
over a tenant VXLAN network, answers ping from node1's router and on its
floating IP from node1's public network, that the
tunnel survives a restart of Open vSwitch, and that a re-deploy changes
nothing. Tunnels run over the nodes' second NIC (eth1, tunnel_interface),
whose address the deploy moves into the br-phy bridge (userspace datapath).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
PREFIX, SUBNET, REGISTRY_PORT = "symc", "10.254.0.0/24", 5104
#: the E2E namespace: images are built (cached) under it and pushed to the bed's registry
NS = os.environ.get("STACKYARD_E2E_NAMESPACE", "stackyard-e2e")
VIP = "10.254.0.250"
ROLES = {"control": "node1", "network": "node1", "monitoring": "node1", "storage": "node1", "compute": "node2"}


def sh(cmd: list[str], *, netns: bool = False, timeout: int = 1800, env: dict | None = None,
       check: bool = True) -> subprocess.CompletedProcess:
    if netns:
        cmd = ["ip", "netns", "exec", PREFIX, *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def stackyard(*args: str, netns: bool = False, timeout: int = 1800) -> subprocess.CompletedProcess:
    return sh([sys.executable, "-m", "stackyard.cli", *args], netns=netns, timeout=timeout)


def split_roles(text: str) -> str:
    """The test bed's inventory with each top-level role on one node only."""
    out, section = [], None
    for line in text.splitlines():
        m = re.match(r"^\[(.+)\]$", line)
        if m:
            section = m.group(1)
        elif section in ROLES and line.startswith("node") and not line.startswith(ROLES[section] + " "):
            continue
        out.append(line)
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    state = tmp_path_factory.mktemp("testbed")
    configdir = tmp_path_factory.mktemp("kolla")
    bed = ["--state-dir", str(state), "--prefix", PREFIX, "--subnet", SUBNET, "--registry-port", str(REGISTRY_PORT)]
    stackyard("testbed", "up", "--hosts", "2", *bed)
    try:
        stackyard("build", "--push", "--registry", f"127.0.0.1:{REGISTRY_PORT}", "--namespace", NS,
                  "--work-dir", str(tmp_path_factory.mktemp("build-work")), "--profile", "core")
        inventory = configdir / "multinode"
        inventory.write_text(split_roles((state / "multinode").read_text()))
        (configdir / "globals.yml").write_text(yaml.safe_dump({
            "openstack_release": "2025.1", "kolla_internal_vip_address": VIP, "network_interface": "eth0",
            "docker_registry": f"{SUBNET.rsplit('.', 1)[0]}.1:5000", "docker_registry_insecure": True,
            "docker_namespace": NS,
            "enable_loadbalancer": True, "enable_glance": True, "enable_placement": True, "enable_nova": True,
            "enable_neutron": True, "enable_horizon": True, "nova_compute_virt_type": "qemu",
            # Heat's multi-host plan (HAProxy, API steps on the deploy host) is unit-tested; not
            # deployed here for CI time
            "enable_heat": False,
        }))
        stackyard("genpwd", "--configdir", str(configdir))
        common = ["--configdir", str(configdir), "-i", str(inventory)]
        stackyard("bootstrap-servers", *common, netns=True)
        yield {"configdir": configdir, "common": common}
    finally:
        stackyard("testbed", "down", "--purge", *bed)


def containers(node: str) -> set[str]:
    out = sh(["docker", "exec", f"{PREFIX}-{node}", "docker", "ps", "--format", "{{.Names}}",
              "--filter", "label=org.stackyard.managed"]).stdout
    return set(out.split())


def openstack(cloud, *args: str) -> str:
    env = dict(os.environ, OS_CLOUD="stackyard-admin", OS_CLIENT_CONFIG_FILE=str(cloud["configdir"] / "clouds.yaml"))
    return sh([str(BIN / "openstack"), *args], netns=True, env=env, timeout=180).stdout.strip()


def test_the_whole_cloud_deploys_with_each_service_in_its_group(cloud):
    t0 = time.monotonic()
    summary = json.loads(stackyard("deploy", "--format", "json", *cloud["common"], netns=True).stdout)
    print(f"full cloud on 2 hosts: {time.monotonic() - t0:.0f}s, {summary['waves']} waves, tasks "
          f"{ {h: v['tasks'] for h, v in summary['hosts'].items()} }")
    assert summary["error"] == "" and summary["failed"] == 0
    control, compute = containers("node1"), containers("node2")
    assert {"nova_api", "nova_scheduler", "nova_conductor", "neutron_server", "neutron_l3_agent",
            "neutron_dhcp_agent", "glance_api", "placement_api", "keystone", "mariadb", "horizon"} <= control
    assert {"nova_compute", "nova_libvirt", "neutron_openvswitch_agent", "openvswitch_vswitchd", "cron"} <= compute
    assert not control & {"nova_compute", "nova_libvirt"}
    assert not compute & {"nova_api", "neutron_server", "neutron_l3_agent", "keystone", "mariadb", "rabbitmq"}


def test_every_service_reports_from_its_own_host(cloud):
    stackyard("post-deploy", *cloud["common"], netns=True)
    services = {tuple(line.split()) for line in
                openstack(cloud, "compute", "service", "list", "-c", "Binary", "-c", "Host", "-c", "State",
                          "-f", "value").splitlines()}
    assert {("nova-compute", "node2", "up"), ("nova-scheduler", "node1", "up"),
            ("nova-conductor", "node1", "up")} <= services
    agents = json.loads(openstack(cloud, "network", "agent", "list", "-f", "json"))
    alive = {(a["Agent Type"], a["Host"]) for a in agents if a["Alive"]}
    assert {("Open vSwitch agent", "node1"), ("Open vSwitch agent", "node2"), ("L3 agent", "node1"),
            ("DHCP agent", "node1"), ("Metadata agent", "node1")} <= alive


def on_node(node: str, *cmd: str, check: bool = False) -> subprocess.CompletedProcess:
    return sh(["docker", "exec", f"{PREFIX}-{node}", *cmd], check=check, timeout=120)


def test_the_tunnel_address_moved_into_br_phy(cloud):
    for node, addr in (("node1", "10.254.1.11/24"), ("node2", "10.254.1.12/24")):
        assert addr in on_node(node, "ip", "-4", "-o", "addr", "show", "dev", "br-phy", check=True).stdout
        assert "inet " not in on_node(node, "ip", "-4", "-o", "addr", "show", "dev", "eth1", check=True).stdout
        ports = on_node(node, "docker", "exec", "openvswitch_vswitchd", "ovs-vsctl", "list-ports", "br-phy",
                        check=True).stdout.split()
        assert ports == ["eth1"]


def test_a_server_on_the_compute_host_gets_dhcp_metadata_and_answers_ping(cloud, wait_for):
    # the guest is built on this machine (Debian mirror), uploaded from the deploy host
    sh([sys.executable, "-m", "stackyard.cli", "guest-image"], timeout=900)
    stackyard("guest-image", "--upload", "--configdir", str(cloud["configdir"]), netns=True)
    openstack(cloud, "network", "create", "mc-net")
    openstack(cloud, "subnet", "create", "mc-subnet", "--network", "mc-net", "--subnet-range", "192.168.77.0/24",
              "--dns-nameserver", "0.0.0.0")
    router = json.loads(openstack(cloud, "router", "create", "mc-router", "-f", "json"))
    openstack(cloud, "router", "add", "subnet", "mc-router", "mc-subnet")
    project = json.loads(openstack(cloud, "project", "show", "admin", "-f", "json"))["id"]
    groups = json.loads(openstack(cloud, "security", "group", "list", "--project", project, "-f", "json"))
    sg = next(g["ID"] for g in groups if g["Name"] == "default")
    openstack(cloud, "security", "group", "rule", "create", "--protocol", "icmp", "--ingress", sg)
    openstack(cloud, "flavor", "create", "--ram", "192", "--disk", "1", "--vcpus", "1", "mc-tiny")
    t0 = time.monotonic()
    openstack(cloud, "server", "create", "--image", "stackyard-guest", "--flavor", "mc-tiny",
              "--network", "mc-net", "mc-vm")

    def built() -> dict | None:
        show = json.loads(openstack(cloud, "server", "show", "mc-vm", "-f", "json"))
        return show if show["status"] in ("ACTIVE", "ERROR") else None

    show = wait_for(built, 300, "mc-vm to leave BUILD")
    assert show["status"] == "ACTIVE", show.get("fault")
    assert show["OS-EXT-SRV-ATTR:host"] == "node2"
    print(f"mc-vm ACTIVE on node2 after {time.monotonic() - t0:.0f}s")
    fixed = re.search(r"192\.168\.77\.\d+", json.dumps(show["addresses"])).group(0)

    def banner():
        log = openstack(cloud, "console", "log", "show", "mc-vm")
        m = re.search(r"stackyard-guest: hostname=(\S+) address=(\S+)", log)
        return m and m.groups()

    # DHCP (node1's dnsmasq) and metadata (node1's proxy) cross the tunnel
    hostname, address = wait_for(banner, 600, "the guest banner on mc-vm's console")
    print(f"mc-vm banner after {time.monotonic() - t0:.0f}s: {hostname} {address}")
    assert address.split("/")[0] == fixed and hostname.startswith("mc-vm")

    qrouter = f"qrouter-{router['id']}"

    def ping() -> bool:
        return on_node("node1", "ip", "netns", "exec", qrouter, "ping", "-c", "1", "-W", "2",
                       fixed).returncode == 0

    wait_for(ping, 120, f"ping {fixed} (node2) from {qrouter} (node1)")

    # north-south: a floating IP on node1's router reaches the guest on node2. The
    # client is a namespace of ours inside node1, plugged into node1's br-ex.
    openstack(cloud, "network", "create", "--external", "--provider-network-type", "flat",
              "--provider-physical-network", "physnet1", "mc-public")
    openstack(cloud, "subnet", "create", "--network", "mc-public", "--subnet-range", "10.99.0.0/24", "--no-dhcp",
              "--gateway", "10.99.0.1", "--allocation-pool", "start=10.99.0.100,end=10.99.0.200", "mc-public-subnet")
    openstack(cloud, "router", "set", "--external-gateway", "mc-public", "mc-router")
    fip = json.loads(openstack(cloud, "floating", "ip", "create", "mc-public", "-f", "json"))["floating_ip_address"]
    openstack(cloud, "server", "add", "floating", "ip", "mc-vm", fip)
    for cmd in (["ip", "netns", "add", "mc-pub"],
                ["ip", "link", "add", "mc-pub0", "type", "veth", "peer", "name", "mc-pub1", "netns", "mc-pub"],
                ["ip", "link", "set", "mc-pub0", "up"],
                ["docker", "exec", "openvswitch_vswitchd", "ovs-vsctl", "--may-exist", "add-port", "br-ex", "mc-pub0"],
                ["ip", "netns", "exec", "mc-pub", "ip", "addr", "add", "10.99.0.50/24", "dev", "mc-pub1"],
                ["ip", "netns", "exec", "mc-pub", "ip", "link", "set", "mc-pub1", "up"]):
        on_node("node1", *cmd, check=True)
    wait_for(lambda: on_node("node1", "ip", "netns", "exec", "mc-pub", "ping", "-c", "1", "-W", "2",
                             fip).returncode == 0, 120, f"ping floating IP {fip} from node1's public network")

    # a stopped ovs-vswitchd gives the tunnel address back to eth1 (nothing serves
    # br-phy's tap then); a started one moves it into br-phy again
    def holder() -> str:
        """The node2 interface(s) holding the tunnel address."""
        out = on_node("node2", "ip", "-4", "-o", "addr", "show", "to", "10.254.1.12/32").stdout
        return " ".join(sorted(line.split()[1] for line in out.splitlines()))

    on_node("node2", "docker", "stop", "openvswitch_vswitchd", check=True)
    assert holder() == "eth1"
    on_node("node2", "docker", "start", "openvswitch_vswitchd", check=True)
    wait_for(lambda: holder() == "br-phy", 60, "the tunnel address on node2's br-phy only")
    wait_for(ping, 180, f"ping {fixed} after stopping and starting node2's ovs-vswitchd")
    openstack(cloud, "server", "delete", "--wait", "mc-vm")


def test_a_redeploy_of_the_whole_cloud_changes_nothing(cloud):
    t0 = time.monotonic()
    summary = json.loads(stackyard("deploy", "--format", "json", *cloud["common"], netns=True).stdout)
    print(f"no-op full cloud re-deploy on 2 hosts: {time.monotonic() - t0:.1f}s")
    assert summary["changed"] == 0, summary["hosts"]


def nova_max_microversion(cloud) -> str:
    versions = json.loads(openstack(cloud, "versions", "show", "--service", "compute", "--status", "CURRENT",
                                    "-f", "json"))
    return max((v["Max Microversion"] for v in versions if v.get("Max Microversion")),
               key=lambda s: tuple(int(x) for x in s.split(".")))


def images_on(node: str) -> dict[str, str]:
    out = sh(["docker", "exec", f"{PREFIX}-{node}", "docker", "ps", "--format", "{{.Names}} {{.Image}}",
              "--filter", "label=org.stackyard.managed"]).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def started_at(node: str, container: str) -> str:
    return on_node(node, "docker", "inspect", "-f", "{{.State.StartedAt}}", container, check=True).stdout.strip()


def set_release(configdir: Path, release: str) -> None:
    path = configdir / "globals.yml"
    data = yaml.safe_load(path.read_text())
    data["openstack_release"] = release
    path.write_text(yaml.safe_dump(data))


def services_up(cloud) -> bool:
    """nova-compute (node2) and nova-conductor (node1) up, and every Neutron agent alive."""
    states = {tuple(line.split()) for line in
              openstack(cloud, "compute", "service", "list", "-c", "Binary", "-c", "Host", "-c", "State",
                        "-f", "value").splitlines()}
    agents = json.loads(openstack(cloud, "network", "agent", "list", "-f", "json"))
    return {("nova-compute", "node2", "up"), ("nova-conductor", "node1", "up")} <= states \
        and bool(agents) and all(a["Alive"] for a in agents)


def test_upgrade_to_2026_1_host_by_host_then_rollback(cloud, wait_for):
    """2025.1 -> 2026.1 (source images) on both hosts, then back: each service's containers
    are recreated one host at a time, the data plane on node2 never restarts, the resources
    made before stay, and the APIs report each release's versions."""
    stackyard("build", "--push", "--registry", f"127.0.0.1:{REGISTRY_PORT}", "--namespace", NS,
              "--install-type", "source", "--openstack-release", "2026.1", "--profile", "core",
              "--work-dir", os.environ.get("STACKYARD_WORK_DIR", "/var/lib/stackyard/e2e-build"), timeout=3600)
    configdir, common = cloud["configdir"], cloud["common"]
    old_nova = nova_max_microversion(cloud)
    network = json.loads(openstack(cloud, "network", "show", "mc-net", "-f", "json"))["id"]
    vswitchd = started_at("node2", "openvswitch_vswitchd")
    libvirt = started_at("node2", "nova_libvirt")

    set_release(configdir, "2026.1")
    plan = stackyard("upgrade", "--dry-run", *common, netns=True).stdout
    assert re.search(r"nova: .* on node1, node2 \(one host at a time\)", plan), plan
    t0 = time.monotonic()
    up = stackyard("upgrade", *common, netns=True, timeout=3600)
    print(f"multi-host upgrade 2025.1 -> 2026.1: {time.monotonic() - t0:.0f}s\n{up.stdout[-1500:]}")
    assert re.search(r"backup \S+", up.stdout)
    for node in ("node1", "node2"):
        for name, image in images_on(node).items():
            if name.startswith(("nova_", "neutron_", "keystone", "glance", "placement", "horizon")) \
                    and name != "nova_libvirt":
                assert image.endswith(":2026.1"), (node, name, image)
    assert started_at("node2", "openvswitch_vswitchd") == vswitchd
    assert started_at("node2", "nova_libvirt") == libvirt
    new_nova = nova_max_microversion(cloud)
    assert tuple(map(int, new_nova.split("."))) > tuple(map(int, old_nova.split("."))), (old_nova, new_nova)
    wait_for(lambda: services_up(cloud), 180, "compute services and agents up on 2026.1")
    assert json.loads(openstack(cloud, "network", "show", "mc-net", "-f", "json"))["id"] == network

    t0 = time.monotonic()
    stackyard("rollback", *common, netns=True, timeout=3600)
    print(f"multi-host rollback: {time.monotonic() - t0:.0f}s")
    assert yaml.safe_load((configdir / "globals.yml").read_text())["openstack_release"] == "2025.1"
    for node in ("node1", "node2"):
        assert not [i for i in images_on(node).values() if i.endswith(":2026.1")], images_on(node)
    assert nova_max_microversion(cloud) == old_nova
    assert started_at("node2", "openvswitch_vswitchd") == vswitchd
    wait_for(lambda: services_up(cloud), 180, "compute services and agents up on 2025.1 again")
    assert json.loads(openstack(cloud, "network", "show", "mc-net", "-f", "json"))["id"] == network
