"""End-to-end: ``stackyard up`` from nothing gives the all-in-one cloud, which runs servers;
a second deployment on the same engine comes and goes without touching it.

The full cloud is deployed once (module fixture): ``stackyard up`` on a config
dir that does not exist yet writes all-in-one globals for 127.0.0.1 (MariaDB,
Memcached, RabbitMQ, Keystone, Glance, Placement, Nova under QEMU software
emulation, Neutron with Open vSwitch, Horizon), builds (cache hits: tags) the
images it needs, deploys and uploads the guest image. Every command gets
``-e docker_namespace=<E2E namespace> -e stackyard_name_prefix=e2e-a-``, so the
cloud runs the images scripts/test.sh built and names everything of its own.

Then, with the real ``openstack`` CLI: a second ``up`` is a fast no-op, upload
and download an image, boot the stackyard guest on a tenant network, read its
console, ping it from the router namespace, ping its floating IP from a
namespace on the public network, delete everything and check nothing leaked.
Horizon is checked over HTTP and with a headless Chromium screenshot (saved in
artifacts/). Last, an identity-only deployment B on 127.0.0.2 (prefix e2e-b-)
is deployed, stopped and destroyed beside the cloud, which keeps running
untouched.

Addresses used (10.77.0.0/24 tenant, 10.99.0.0/24 public) exist only inside the
bridges and namespaces the deployment and this test create; the rest is
127.0.0.1 and 127.0.0.2.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import requests
import yaml

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
PREFIX_A = "e2e-a-"
PREFIX_B = "e2e-b-"
#: a few containers of each part of the full cloud (as the services name them)
CLOUD_CONTAINERS = {"mariadb", "memcached", "rabbitmq", "keystone", "glance_api", "placement_api", "nova_api",
                    "nova_compute", "nova_libvirt", "neutron_server", "neutron_l3_agent", "neutron_dhcp_agent",
                    "openvswitch_vswitchd", "horizon", "cron"}
#: deployment B: identity only (RabbitMQ is not needed by Keystone alone, and binds epmd)
B_CONTAINERS = {"cron", "mariadb", "memcached", "keystone"}


@dataclass
class Cloud:
    dep: object            # conftest's Deployment
    up: subprocess.CompletedProcess
    up_seconds: float
    work: Path             # image build work dir of `up`
    guest_work: Path
    netns_dir: Path        # where Neutron's namespaces of this deployment live

    def up_args(self) -> list[str]:
        return ["up", "--work-dir", str(self.work), "--guest-work-dir", str(self.guest_work)]


def sh(*cmd: str, check: bool = True, timeout: int = 60) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: {proc.stdout}{proc.stderr}")
    return proc


def plan_resources(dep, kind: str) -> list[dict]:
    plans = json.loads(dep.run("plan").stdout)
    return [r for p in plans.values() for r in p["resources"] if r["kind"] == kind]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, make_deployment, guest_work_dir: Path):
    base = tmp_path_factory.mktemp("cloud-a")
    configdir = base / "etc-kolla"  # does not exist yet: up must create it
    dep = make_deployment(configdir, PREFIX_A)
    assert dep.containers() == [] and dep.volumes() == set()
    work = base / "build-work"
    try:
        t0 = time.monotonic()
        up = dep.run("up", "--work-dir", str(work), "--guest-work-dir", str(guest_work_dir), timeout=3600)
        up_seconds = time.monotonic() - t0
        print(f"stackyard up (full cloud from nothing) took {up_seconds:.0f}s")
        netns = plan_resources(dep, "netns")
        assert len(netns) == 1, netns
        yield Cloud(dep, up, up_seconds, work, guest_work_dir, Path(netns[0]["path"]))
    finally:
        dep.run("destroy", "--yes-i-really-really-mean-it", "--include-volumes", check=False)


def osc(cloud: Cloud, *args: str, timeout: int = 300) -> str:
    return cloud.dep.openstack(*args, timeout=timeout).stdout.strip()


def osc_json(cloud: Cloud, *args: str, timeout: int = 300):
    return json.loads(osc(cloud, *args, "-f", "json", timeout=timeout))


# ----------------------------------------------------------------- stackyard up
def test_up_from_nothing_writes_all_in_one_config_and_a_working_cloud(cloud: Cloud, e2e_namespace: str) -> None:
    configdir = cloud.dep.configdir
    assert "source " in cloud.up.stdout and "admin-openrc.sh" in cloud.up.stdout
    globals_yml = yaml.safe_load((configdir / "globals.yml").read_text())
    assert globals_yml["kolla_internal_vip_address"] == "127.0.0.1"
    assert all(globals_yml[f"enable_{s}"] is True for s in ("glance", "placement", "nova", "neutron", "horizon"))
    pw = configdir / "passwords.yml"
    assert pw.stat().st_mode & 0o777 == 0o600
    assert yaml.safe_load(pw.read_text())["keystone_admin_password"]

    token = osc(cloud, "token", "issue", "-f", "value", "-c", "id")
    assert len(token) > 20
    assert osc_json(cloud, "image", "show", "stackyard-guest")["status"] == "active"

    # the deployment's own names, images from the E2E namespace
    containers = cloud.dep.containers()
    names = {c.name for c in containers}
    assert {PREFIX_A + n for n in CLOUD_CONTAINERS} <= names, sorted(names)
    for c in containers:
        assert c.attrs["Config"]["Image"].startswith(f"{e2e_namespace}/"), (c.name, c.attrs["Config"]["Image"])
    assert f"{PREFIX_A}mariadb" in cloud.dep.volumes()
    # Neutron's namespaces live in a directory of this deployment's own, not /run/netns
    assert cloud.netns_dir != Path("/run/netns") and cloud.netns_dir.is_dir()


def test_second_up_is_a_fast_noop(cloud: Cloud) -> None:
    before = cloud.dep.snapshot()
    t0 = time.monotonic()
    second = cloud.dep.run(*cloud.up_args(), timeout=600)
    elapsed = time.monotonic() - t0
    assert "0 changed" in second.stderr, second.stderr[-3000:]
    assert cloud.dep.snapshot() == before
    assert elapsed < 30, f"second 'stackyard up' took {elapsed:.1f}s"


def test_noop_redeploy_of_the_whole_cloud_changes_nothing(cloud: Cloud) -> None:
    before = cloud.dep.snapshot()
    result = json.loads(cloud.dep.run("deploy", "--format", "json").stdout)
    changed = [s for h in result["hosts"].values() for s in h["steps"] if s["status"] != "unchanged"]
    assert result["changed"] == 0, changed
    assert cloud.dep.snapshot() == before


# ----------------------------------------------------------------- using the cloud
def test_image_upload_and_download_are_identical(cloud: Cloud, tmp_path: Path) -> None:
    blob = tmp_path / "blob.raw"
    blob.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    osc(cloud, "image", "create", "--file", str(blob), "--disk-format", "raw", "--container-format", "bare",
        "e2e-blob")
    try:
        out = tmp_path / "out.raw"
        osc(cloud, "image", "save", "--file", str(out), "e2e-blob")
        assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(blob.read_bytes()).hexdigest()
    finally:
        osc(cloud, "image", "delete", "e2e-blob")


def test_server_boots_gets_dhcp_and_metadata_and_answers_ping(cloud: Cloud, server_scenario) -> None:
    server_scenario(cloud.dep, cloud.netns_dir, public_ns="e2e-a-pub", veth="e2ea-pub")


def test_horizon_login_page_and_admin_login(cloud: Cloud, horizon_login) -> None:
    base = "http://127.0.0.1"
    horizon_login(cloud.dep, base)

    chromium = shutil.which("chromium")
    if chromium is None:
        sh("apt-get", "install", "-y", "-qq", "chromium", timeout=900)
        chromium = shutil.which("chromium")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "horizon-login.png"
    sh(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
       "--disable-background-networking", "--disable-component-update", "--disable-sync",
       f"--user-data-dir={ARTIFACTS / 'chromium-profile'}", "--window-size=1280,900",
       f"--screenshot={shot}", f"{base}/auth/login/", timeout=180)
    assert shot.exists() and shot.stat().st_size > 10_000


# ----------------------------------------------------------------- a second deployment beside it
def test_second_deployment_beside_the_cloud_stops_and_goes_without_touching_it(
    cloud: Cloud, tmp_path_factory: pytest.TempPathFactory, make_deployment, e2e_namespace: str,
    docker_client: docker.DockerClient,
) -> None:
    a = cloud.dep
    configdir = tmp_path_factory.mktemp("deploy-b") / "etc-kolla"
    configdir.mkdir()
    (configdir / "globals.yml").write_text(yaml.safe_dump({
        "kolla_internal_vip_address": "127.0.0.2", "network_interface": "lo",
        "stackyard_name_prefix": PREFIX_B, "docker_namespace": e2e_namespace, "enable_rabbitmq": False,
    }))
    b = make_deployment(configdir, PREFIX_B, flags=False)
    a_before, a_running, a_volumes = a.snapshot(), a.names(running_only=True), a.volumes()
    assert {PREFIX_A + n for n in CLOUD_CONTAINERS} <= a_running
    b_names = {PREFIX_B + n for n in B_CONTAINERS}
    try:
        # a port another program holds: up names it and deploys nothing
        with socket.socket() as holder:
            holder.bind(("127.0.0.2", 5000))
            holder.listen()
            blocked = b.run("up", "--work-dir", str(cloud.work), "--guest-work-dir", str(cloud.guest_work),
                            check=False, timeout=900)
        assert blocked.returncode != 0, blocked.stdout
        assert re.search(r"prechecks failed: .*port 127\.0\.0\.2:5000 for \S*keystone is in use", blocked.stderr), \
            blocked.stderr[-2000:]
        assert b.containers() == [] and a.snapshot() == a_before
        b.run("genpwd")
        b.run("prechecks")
        b.run("deploy", timeout=1200)
        b.run("post-deploy")
        assert b.names(running_only=True) == b_names
        for c in b.containers():
            assert c.attrs["Config"]["Image"].startswith(f"{e2e_namespace}/"), c.attrs["Config"]["Image"]
        b_volumes = b.volumes()
        assert f"{PREFIX_B}mariadb" in b_volumes and not b_volumes & a_volumes
        # B's Keystone answers on its own address and issues tokens
        clouds = yaml.safe_load((configdir / "clouds.yaml").read_text())
        auth_url = clouds["clouds"]["stackyard-admin"]["auth"]["auth_url"]
        assert "127.0.0.2:5000" in auth_url, auth_url
        assert len(b.openstack("token", "issue", "-f", "value", "-c", "id").stdout.strip()) > 20
        assert requests.get("http://127.0.0.2:5000/v3", timeout=30).status_code == 200
        assert a.snapshot() == a_before, "deploying B touched A"

        # stop: B's containers only
        b.run("stop")
        assert b.names(running_only=True) == set()
        assert b.names() == b_names, "stop removed containers"
        assert a.names(running_only=True) == a_running, "stopping B stopped some of A"
        assert a.snapshot() == a_before

        # destroy with volumes: B is gone, A is as it was
        b.run("destroy", "--yes-i-really-really-mean-it", "--include-volumes")
        assert b.containers() == [] and b.volumes() == set()
        for name in b_names:
            with pytest.raises(docker.errors.NotFound):
                docker_client.containers.get(name)
        for name in b_volumes:
            with pytest.raises(docker.errors.NotFound):
                docker_client.volumes.get(name)
        assert a.snapshot() == a_before, "destroying B touched A's containers"
        assert a.names(running_only=True) == a_running
        assert a.volumes() == a_volumes
        assert len(osc(cloud, "token", "issue", "-f", "value", "-c", "id")) > 20
        assert osc_json(cloud, "image", "show", "stackyard-guest")["status"] == "active"
    finally:
        b.run("destroy", "--yes-i-really-really-mean-it", "--include-volumes", check=False)
