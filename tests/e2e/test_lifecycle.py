"""End-to-end: the life of an all-in-one cloud, as kolla-ansible's CI runs it:
deploy 2025.1 (Debian's packages) -> verify -> upgrade to 2026.1 (source images)
-> verify -> rollback -> verify, with a server pinged without a pause all along.

1. 2025.1 is deployed (prefix ``e2e-lc-``, 127.0.0.1); a project, a user, an
   image, a network and a server are made; a ping from the router's namespace
   to the server runs in the background for the whole module.
2. An upgrade is killed once an upgraded service runs the new release;
   ``stackyard upgrade`` again resumes and finishes it.
3. After the upgrade: the resources are all there, the server is ACTIVE and
   answers, the APIs report 2026.1's versions, the containers run the source
   images (Neutron with its RPC and periodic workers), Horizon logs in, a new
   server boots on the new release, and a no-op deploy changes nothing.
4. ``stackyard rollback``: back on 2025.1 with every resource made before the
   upgrade, the server still answering, and a new server booting.
5. Another upgrade, killed midway, is rolled back from where it stopped.

The longest gap of the background ping is printed and must stay below 10 s
(the data plane - Open vSwitch, libvirt and the servers' QEMU - is never
restarted: the same images run under both releases). The source images come
from test_build_source (same E2E namespace), the binary ones from scripts/test.sh.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.e2e

PREFIX = "e2e-lc-"
OLD, NEW = "2025.1", "2026.1"
#: what carries the servers and their traffic: never restarted by an upgrade or a rollback
DATA_PLANE = ("nova_libvirt", "openvswitch_vswitchd", "openvswitch_db")
#: containers of OpenStack's own services (their images change with the release)
OPENSTACK = ("keystone", "glance_api", "placement_api", "nova_api", "nova_metadata", "nova_scheduler",
             "nova_conductor", "nova_novncproxy", "nova_compute", "neutron_server", "neutron_openvswitch_agent",
             "neutron_dhcp_agent", "neutron_l3_agent", "neutron_metadata_agent", "horizon")


class Cloud:
    """The module's deployment, its resources and the background ping."""

    def __init__(self, dep: Any, configdir: Path) -> None:
        self.dep = dep
        self.configdir = configdir
        self.ids: dict[str, str] = {}
        self.ping: subprocess.Popen | None = None
        self.ping_log = configdir.parent / "ping.log"
        #: container -> (ID, StartedAt) of the data plane when the resources were made
        self.data_plane: dict[str, tuple[str, str]] = {}

    def osc(self, *args: str, timeout: int = 300) -> str:
        return self.dep.openstack(*args, timeout=timeout).stdout.strip()

    def osc_json(self, *args: str, timeout: int = 300) -> Any:
        return json.loads(self.osc(*args, "-f", "json", timeout=timeout))

    def set_release(self, release: str) -> None:
        """What an operator does: openstack_release in globals.yml."""
        path = self.configdir / "globals.yml"
        data = yaml.safe_load(path.read_text())
        data["openstack_release"] = release
        path.write_text(yaml.safe_dump(data))

    def netns(self) -> Path:
        plans = json.loads(self.dep.run("plan").stdout)
        return Path(next(r["path"] for p in plans.values() for r in p["resources"] if r["kind"] == "netns"))

    def router_ping(self, address: str) -> bool:
        ns = self.netns() / f"qrouter-{self.ids['router']}"
        return subprocess.run(["nsenter", f"--net={ns}", "ping", "-c", "1", "-W", "2", address],
                              capture_output=True).returncode == 0

    def gaps(self) -> float:
        """The longest pause between two replies of the background ping, in seconds."""
        stamps = [float(m.group(1)) for m in re.finditer(r"^\[(\d+\.\d+)\].*bytes from", self.ping_log.read_text(),
                                                        re.M)]
        return max((b - a for a, b in zip(stamps, stamps[1:])), default=float("inf"))

    def versions(self) -> dict[str, str]:
        nova = json.loads(urlopen("http://127.0.0.1:8774/v2.1/"))["version"]
        placement = json.loads(urlopen("http://127.0.0.1:8780/"))["versions"][0]
        return {"nova": nova["version"], "placement": placement["max_version"]}


def urlopen(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.read().decode()


def boot(cloud: Cloud, name: str, wait_for) -> str:
    """A server from the guest image on the tenant network; returns its address once it is up."""
    server = cloud.osc_json("server", "create", "--image", "stackyard-guest", "--flavor", "e2e-lc-tiny",
                            "--network", "e2e-lc-net", "--wait", name, timeout=900)
    assert server["status"] == "ACTIVE", server
    address = re.search(r"10\.77\.0\.\d+", json.dumps(cloud.osc_json("server", "show", name)["addresses"])).group(0)
    wait_for(lambda: re.search(rf"stackyard-guest: hostname=\S+ address={address}",
                               cloud.osc("console", "log", "show", name)), 600, f"{name}'s banner")
    wait_for(lambda: cloud.router_ping(address), 180, f"ping {name}")
    return address


@pytest.fixture(scope="module")
def cloud(make_deployment, e2e_namespace: str, guest_work_dir: Path, tmp_path_factory: pytest.TempPathFactory,
          wait_for):
    configdir = tmp_path_factory.mktemp("lifecycle") / "etc-kolla"
    configdir.mkdir()
    (configdir / "globals.yml").write_text(yaml.safe_dump({
        "openstack_release": OLD, "kolla_internal_vip_address": "127.0.0.1", "network_interface": "lo",
        "docker_namespace": e2e_namespace, "stackyard_name_prefix": PREFIX, "nova_compute_virt_type": "qemu",
        "enable_glance": True, "enable_placement": True, "enable_nova": True, "enable_neutron": True,
        "enable_horizon": True,
        # Heat's upgrade order and job are unit-tested (test_heat); left out here for CI time
        "enable_heat": False,
    }))
    c = Cloud(make_deployment(configdir, PREFIX, flags=False), configdir)
    try:
        c.dep.run("genpwd")
        c.dep.run("deploy", timeout=2400)
        c.dep.run("post-deploy")
        c.dep.run("guest-image", "--upload", "--work-dir", str(guest_work_dir), timeout=1800)
        make_resources(c, configdir.parent, wait_for)
        ns = c.netns() / f"qrouter-{c.ids['router']}"
        c.ping = subprocess.Popen(["nsenter", f"--net={ns}", "ping", "-D", "-i", "0.2", "-W", "1", c.ids["ip"]],
                                  stdout=open(c.ping_log, "w"), stderr=subprocess.STDOUT)
        yield c
    finally:
        if c.ping is not None:
            c.ping.terminate()
        c.dep.run("destroy", "--yes-i-really-really-mean-it", "--include-volumes", check=False)


def make_resources(c: Cloud, scratch: Path, wait_for) -> None:
    c.ids["project"] = c.osc_json("project", "create", "e2e-lc-project")["id"]
    c.ids["user"] = c.osc_json("user", "create", "--project", "e2e-lc-project", "--password", "lc-pass-1",
                               "e2e-lc-user")["id"]
    c.osc("role", "add", "--project", "e2e-lc-project", "--user", "e2e-lc-user", "member")
    blob = scratch / "blob.raw"
    blob.write_bytes(os.urandom(1024 * 1024 + 3))
    c.ids["image"] = c.osc_json("image", "create", "--file", str(blob), "--disk-format", "raw",
                                "--container-format", "bare", "e2e-lc-blob")["id"]
    c.osc("network", "create", "--external", "--provider-network-type", "flat", "--provider-physical-network",
          "physnet1", "e2e-lc-public")
    c.osc("subnet", "create", "--network", "e2e-lc-public", "--subnet-range", "10.99.0.0/24", "--no-dhcp",
          "--gateway", "10.99.0.1", "--allocation-pool", "start=10.99.0.100,end=10.99.0.200", "e2e-lc-public-sub")
    c.ids["network"] = c.osc_json("network", "create", "e2e-lc-net")["id"]
    c.osc("subnet", "create", "--network", "e2e-lc-net", "--subnet-range", "10.77.0.0/24", "--dns-nameserver",
          "0.0.0.0", "e2e-lc-sub")
    c.ids["router"] = c.osc_json("router", "create", "e2e-lc-router")["id"]
    c.osc("router", "set", "--external-gateway", "e2e-lc-public", "e2e-lc-router")
    c.osc("router", "add", "subnet", "e2e-lc-router", "e2e-lc-sub")
    admin = c.osc_json("project", "show", "admin")["id"]
    sg = [g for g in c.osc_json("security", "group", "list", "--project", admin) if g["Name"] == "default"][0]["ID"]
    c.osc("security", "group", "rule", "create", "--protocol", "icmp", "--ingress", sg)
    c.osc("flavor", "create", "--ram", "192", "--disk", "1", "--vcpus", "1", "e2e-lc-tiny")
    c.ids["ip"] = boot(c, "e2e-lc-server", wait_for)
    c.ids["server"] = c.osc_json("server", "show", "e2e-lc-server")["id"]
    c.ids["versions"] = json.dumps(c.versions())
    c.data_plane = {n: c.dep.snapshot()[c.dep.name(n)] for n in DATA_PLANE}


def check_resources(c: Cloud) -> None:
    """Everything made before the first upgrade is there, and the server answers."""
    assert c.osc_json("project", "show", "e2e-lc-project")["id"] == c.ids["project"]
    assert c.osc_json("user", "show", "e2e-lc-user")["id"] == c.ids["user"]
    assert c.osc_json("image", "show", "e2e-lc-blob")["status"] == "active"
    assert c.osc_json("network", "show", "e2e-lc-net")["id"] == c.ids["network"]
    server = c.osc_json("server", "show", "e2e-lc-server")
    assert (server["id"], server["status"]) == (c.ids["server"], "ACTIVE")
    assert c.router_ping(c.ids["ip"])
    env = dict(os.environ, OS_AUTH_URL="http://127.0.0.1:5000/v3", OS_USERNAME="e2e-lc-user",
               OS_PASSWORD="lc-pass-1", OS_PROJECT_NAME="e2e-lc-project", OS_USER_DOMAIN_NAME="Default",
               OS_PROJECT_DOMAIN_NAME="Default", OS_IDENTITY_API_VERSION="3")
    token = subprocess.run([str(Path(sys.executable).parent / "openstack"), "token", "issue"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert token.returncode == 0, token.stderr


def run_killed(c: Cloud, after: re.Pattern[str]) -> str:
    """``stackyard upgrade``, killed (SIGKILL) as soon as its progress matches ``after``."""
    cmd = [sys.executable, "-m", "stackyard.cli", "upgrade", "--configdir", str(c.configdir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if after.search(line):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)[-3000:]
    return "".join(seen)


# ----------------------------------------------------------------- the upgrade
def test_upgrade_dry_run_prints_the_ordered_steps(cloud: Cloud) -> None:
    cloud.set_release(NEW)
    steps = cloud.dep.run("upgrade", "--dry-run").stdout
    order = [re.search(p, steps).start() for p in (r"backup", r"keystone: job \S+upgrade_keystone_expand",
                                                   r"keystone: container", r"upgrade_keystone_contract",
                                                   r"neutron: job \S+upgrade_neutron_expand",
                                                   r"upgrade_neutron_contract", r"nova: job \S+upgrade_nova_db",
                                                   r"nova: container \S+nova_conductor",
                                                   r"nova: container \S+nova_compute", r"upgrade_nova_online")]
    assert order == sorted(order), steps
    assert json.loads((cloud.configdir / ".stackyard" / "deployed.json").read_text())["release"] == OLD


def test_an_interrupted_upgrade_resumes_and_finishes(cloud: Cloud) -> None:
    out = run_killed(cloud, re.compile(r"keystone +container .*recreated"))
    assert "backup" in out
    result = json.loads(cloud.dep.run("upgrade", "--format", "json", timeout=2400).stdout)
    assert (result["from"], result["to"], result["kind"]) == (OLD, NEW, "upgrade")
    assert result["backup"] in out, "the resumed upgrade kept the first one's backup"
    print(f"upgrade (resumed) took {result['seconds']}s; versions {result['versions_after']}")


def test_after_the_upgrade_everything_is_there_on_the_new_release(cloud: Cloud, horizon_login, wait_for) -> None:
    check_resources(cloud)
    before = json.loads(cloud.ids["versions"])
    after = cloud.versions()
    assert tuple(map(int, after["nova"].split("."))) > tuple(map(int, before["nova"].split("."))), (before, after)
    running = {c.name: c for c in cloud.dep.containers()}
    for name in OPENSTACK:
        image = running[cloud.dep.name(name)].attrs["Config"]["Image"]
        assert image.endswith(f":{NEW}"), (name, image)
    snapshot = cloud.dep.snapshot()
    assert {n: snapshot[cloud.dep.name(n)] for n in DATA_PLANE} == cloud.data_plane, "the data plane restarted"
    nova_api = cloud.dep.client.containers.get(cloud.dep.name("nova_api"))
    assert nova_api.exec_run(["nova-manage", "--version"]).output.decode().strip().startswith("33.")
    assert {cloud.dep.name(n) for n in ("neutron_rpc_server", "neutron_periodic_workers")} <= \
        cloud.dep.names(running_only=True)
    agents = cloud.osc_json("network", "agent", "list")
    assert all(a["Alive"] for a in agents) and len(agents) >= 4
    horizon_login(cloud.dep, "http://127.0.0.1")
    # the new release boots servers
    boot(cloud, "e2e-lc-new", wait_for)
    cloud.osc("server", "delete", "--wait", "e2e-lc-new", timeout=600)
    before_noop = cloud.dep.snapshot()
    assert json.loads(cloud.dep.run("deploy", "--format", "json").stdout)["changed"] == 0
    assert cloud.dep.snapshot() == before_noop


# ----------------------------------------------------------------- the rollback
def test_rollback_returns_to_2025_1_with_every_resource(cloud: Cloud, horizon_login, wait_for) -> None:
    result = json.loads(cloud.dep.run("rollback", "--format", "json", timeout=2400).stdout)
    assert result["release"] == OLD
    assert 0 < result["api_downtime_seconds"] <= result["seconds"], result
    print(f"rollback took {result['seconds']}s, APIs unavailable {result['api_downtime_seconds']}s")
    assert yaml.safe_load((cloud.configdir / "globals.yml").read_text())["openstack_release"] == OLD
    running = {c.name: c for c in cloud.dep.containers()}
    for name in OPENSTACK:
        image = running[cloud.dep.name(name)].attrs["Config"]["Image"]
        assert image.endswith(f":{OLD}"), (name, image)
    # 2026.1's own services do not stay behind to run against 2025.1's databases
    assert not {cloud.dep.name(n) for n in ("neutron_rpc_server", "neutron_periodic_workers")} & cloud.dep.names()
    snapshot = cloud.dep.snapshot()
    assert {n: snapshot[cloud.dep.name(n)] for n in DATA_PLANE} == cloud.data_plane, "the data plane restarted"
    check_resources(cloud)
    assert cloud.versions() == json.loads(cloud.ids["versions"])
    horizon_login(cloud.dep, "http://127.0.0.1")
    boot(cloud, "e2e-lc-after", wait_for)
    cloud.osc("server", "delete", "--wait", "e2e-lc-after", timeout=600)


def test_an_interrupted_upgrade_rolls_back_from_where_it_stopped(cloud: Cloud) -> None:
    cloud.set_release(NEW)
    run_killed(cloud, re.compile(r"neutron +container .*neutron_server .*recreated"))
    result = json.loads(cloud.dep.run("rollback", "--format", "json", timeout=2400).stdout)
    assert result["release"] == OLD
    check_resources(cloud)


def test_the_server_was_never_unreachable(cloud: Cloud) -> None:
    gap = cloud.gaps()
    print(f"longest ping gap through two upgrades and two rollbacks: {gap:.1f}s")
    assert gap < 10, gap
