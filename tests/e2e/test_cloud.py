"""End-to-end: the all-in-one cloud runs servers.

Deploys Glance, Placement, Nova (QEMU under software emulation), Neutron (Linux
bridge, DHCP, L3, metadata) and Horizon on top of the infra + Keystone set, then
uses it with the real ``openstack`` CLI: upload and download an image, boot the
stackyard guest on a tenant network, read its console, ping it from the router
namespace, ping its floating IP from a namespace on the public network, delete
everything and check nothing leaked. Horizon is checked over HTTP and with a
headless Chromium screenshot (saved in artifacts/).

Addresses used (10.77.0.0/24 tenant, 10.99.0.0/24 public) exist only inside the
bridges and namespaces the deployment and this test create.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
GLOBALS = """\
kolla_internal_vip_address: "127.0.0.1"
network_interface: lo
enable_glance: true
enable_placement: true
enable_nova: true
enable_neutron: true
enable_horizon: true
nova_compute_virt_type: qemu
"""


def stackyard(*args: str, configdir: Path, check: bool = True, timeout: int = 1800) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "stackyard.cli", *args, "--configdir", str(configdir)],
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"stackyard {' '.join(args)} exited {proc.returncode}\n{proc.stderr[-4000:]}")
    return proc


def sh(*cmd: str, check: bool = True, timeout: int = 60) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: {proc.stdout}{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("cloud")
    stackyard("destroy", "--yes-i-really-really-mean-it", "--include-volumes", configdir=d)
    (d / "globals.yml").write_text(GLOBALS)
    stackyard("genpwd", configdir=d)
    t0 = time.monotonic()
    stackyard("deploy", configdir=d)
    print(f"cloud deploy took {time.monotonic() - t0:.0f}s")
    stackyard("post-deploy", configdir=d)
    stackyard("guest-image", "--upload", configdir=d)
    yield d
    stackyard("destroy", "--yes-i-really-really-mean-it", "--include-volumes", configdir=d, check=False)


def osc(cloud: Path, *args: str, timeout: int = 300) -> str:
    env = dict(os.environ, OS_CLOUD="stackyard-admin", OS_CLIENT_CONFIG_FILE=str(cloud / "clouds.yaml"))
    proc = subprocess.run([str(BIN / "openstack"), *args], capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, f"openstack {' '.join(args)}: {proc.stderr[-2000:]}"
    return proc.stdout.strip()


def osc_json(cloud: Path, *args: str, timeout: int = 300):
    return json.loads(osc(cloud, *args, "-f", "json", timeout=timeout))


def test_noop_redeploy_of_the_whole_cloud_changes_nothing(cloud: Path) -> None:
    proc = stackyard("deploy", "--format", "json", configdir=cloud)
    result = json.loads(proc.stdout)
    changed = [s for s in result["hosts"]["localhost"]["steps"] if s["status"] != "unchanged"]
    assert result["changed"] == 0, changed


def test_image_upload_and_download_are_identical(cloud: Path, tmp_path: Path) -> None:
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


def _netns() -> set[str]:
    return {line.split()[0] for line in sh("ip", "netns", "list").stdout.splitlines() if line.strip()}


def test_server_boots_gets_dhcp_and_metadata_and_answers_ping(cloud: Path, wait_for) -> None:
    ns_before = _netns()
    ports_before = {p["ID"] for p in osc_json(cloud, "port", "list")}
    created: list[tuple[str, ...]] = []
    test_ns = "sy-e2e-pub"
    try:
        osc(cloud, "network", "create", "--external", "--provider-network-type", "flat",
            "--provider-physical-network", "physnet1", "e2e-public")
        created.append(("network", "delete", "e2e-public"))
        osc(cloud, "subnet", "create", "--network", "e2e-public", "--subnet-range", "10.99.0.0/24",
            "--no-dhcp", "--gateway", "10.99.0.1", "--allocation-pool", "start=10.99.0.100,end=10.99.0.200",
            "e2e-public-subnet")
        osc(cloud, "network", "create", "e2e-net")
        created.append(("network", "delete", "e2e-net"))
        osc(cloud, "subnet", "create", "--network", "e2e-net", "--subnet-range", "10.77.0.0/24",
            "--dns-nameserver", "0.0.0.0", "e2e-subnet")
        router = osc_json(cloud, "router", "create", "e2e-router")
        created.append(("router", "delete", "e2e-router"))
        osc(cloud, "router", "set", "--external-gateway", "e2e-public", "e2e-router")
        osc(cloud, "router", "add", "subnet", "e2e-router", "e2e-subnet")
        created.append(("router", "remove", "subnet", "e2e-router", "e2e-subnet"))
        project = osc_json(cloud, "project", "show", "admin")["id"]
        sg = [g for g in osc_json(cloud, "security", "group", "list", "--project", project)
              if g["Name"] == "default"][0]["ID"]
        osc(cloud, "security", "group", "rule", "create", "--protocol", "icmp", "--ingress", sg)
        osc(cloud, "flavor", "create", "--ram", "192", "--disk", "1", "--vcpus", "1", "e2e-tiny")
        created.append(("flavor", "delete", "e2e-tiny"))

        t0 = time.monotonic()
        server = osc_json(cloud, "server", "create", "--image", "stackyard-guest", "--flavor", "e2e-tiny",
                          "--network", "e2e-net", "--wait", "e2e-server", timeout=900)
        created.append(("server", "delete", "--wait", "e2e-server"))
        assert server["status"] == "ACTIVE"
        print(f"server ACTIVE after {time.monotonic() - t0:.0f}s")
        addresses = osc_json(cloud, "server", "show", "e2e-server")["addresses"]
        fixed = re.search(r"10\.77\.0\.\d+", json.dumps(addresses)).group(0)

        def banner():
            log = osc(cloud, "console", "log", "show", "e2e-server")
            m = re.search(r"stackyard-guest: hostname=(\S+) address=(\S+)", log)
            return m and m.groups()

        hostname, address = wait_for(banner, 600, "the guest banner on the console")
        assert address.split("/")[0] == fixed, (address, fixed)
        assert hostname.startswith("e2e-server")

        qrouter = f"qrouter-{router['id']}"
        assert qrouter in _netns(), "router namespace is not visible on the host"
        wait_for(lambda: sh("ip", "netns", "exec", qrouter, "ping", "-c", "1", "-W", "2", fixed,
                         check=False).returncode == 0, 120, f"ping {fixed} from {qrouter}")

        fip = osc_json(cloud, "floating", "ip", "create", "e2e-public")["floating_ip_address"]
        created.append(("floating", "ip", "delete", fip))
        osc(cloud, "server", "add", "floating", "ip", "e2e-server", fip)
        # a client on the public network: a namespace of ours, plugged into br-ex
        sh("ip", "netns", "add", test_ns)
        sh("ip", "link", "add", "sy-e2e0", "type", "veth", "peer", "name", "sy-e2e1")
        sh("ip", "link", "set", "sy-e2e1", "netns", test_ns)
        sh("ip", "link", "set", "sy-e2e0", "up")
        sh("docker", "exec", "openvswitch_vswitchd", "ovs-vsctl", "--may-exist", "add-port", "br-ex", "sy-e2e0")
        sh("ip", "netns", "exec", test_ns, "ip", "addr", "add", "10.99.0.50/24", "dev", "sy-e2e1")
        sh("ip", "netns", "exec", test_ns, "ip", "link", "set", "sy-e2e1", "up")
        wait_for(lambda: sh("ip", "netns", "exec", test_ns, "ping", "-c", "1", "-W", "2", fip,
                         check=False).returncode == 0, 120, f"ping floating IP {fip}")
    finally:
        sh("docker", "exec", "openvswitch_vswitchd", "ovs-vsctl", "--if-exists", "del-port", "br-ex", "sy-e2e0",
           check=False)
        sh("ip", "link", "del", "sy-e2e0", check=False)
        sh("ip", "netns", "del", test_ns, check=False)
        for cmd in reversed(created):
            env = dict(os.environ, OS_CLOUD="stackyard-admin", OS_CLIENT_CONFIG_FILE=str(cloud / "clouds.yaml"))
            subprocess.run([str(BIN / "openstack"), *cmd], env=env, capture_output=True, timeout=300)
    # nothing leaked: no ports, no namespaces
    wait_for(lambda: {p["ID"] for p in osc_json(cloud, "port", "list")} <= ports_before, 120, "ports to go")
    wait_for(lambda: _netns() <= ns_before, 120, "namespaces to go")


def test_horizon_login_page_and_admin_login(cloud: Path) -> None:
    passwords = yaml.safe_load((cloud / "passwords.yml").read_text())
    base = "http://127.0.0.1"
    s = requests.Session()
    page = s.get(f"{base}/auth/login/", timeout=60)
    assert page.status_code == 200 and "csrfmiddlewaretoken" in page.text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    region = re.search(r'name="region" value="([^"]+)"', page.text)
    form = {"csrfmiddlewaretoken": token, "username": "admin",
            "password": passwords["keystone_admin_password"], "next": "/project/"}
    if region:
        form["region"] = region.group(1)
    resp = s.post(f"{base}/auth/login/", data=form, headers={"Referer": f"{base}/auth/login/"}, timeout=120)
    assert resp.status_code == 200, resp.status_code
    assert "/auth/login" not in resp.url, "login was refused"
    assert "Overview" in resp.text and "admin" in resp.text

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
