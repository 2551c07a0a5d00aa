"""End to end: the cloud images of the ``core`` profile build and their programs run.

One module-scoped ``stackyard build --profile core`` under the E2E namespace
(``STACKYARD_E2E_NAMESPACE``): cache hits, as scripts/test.sh built it already
(cold, a few minutes). Then every check runs a throw-away container
(``--rm``, labelled ``org.stackyard.e2e=build-cloud``) with host networking and
no config: versions, service users with Kolla's UIDs, no compiler and no -dev
package, and the helper programs each service calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stackyard.deploy.services import build_profiles
from stackyard.deploy.services import users

USERS = users()

pytestmark = pytest.mark.e2e

TAG = "2025.1"
NS = os.environ.get("STACKYARD_E2E_NAMESPACE", "stackyard-e2e")

#: image -> (service user it runs as, command printing its version, expected version prefix)
SERVICES: dict[str, tuple[str, list[str], str]] = {
    "glance-api": ("glance", ["glance-api", "--version"], "30."),
    "placement-api": ("placement", ["placement-manage", "--version"], "13."),
    "nova-api": ("nova", ["nova-manage", "--version"], "31."),
    "nova-scheduler": ("nova", ["nova-scheduler", "--version"], "31."),
    "nova-conductor": ("nova", ["nova-conductor", "--version"], "31."),
    "nova-novncproxy": ("nova", ["nova-novncproxy", "--version"], "31."),
    "nova-compute": ("nova", ["nova-compute", "--version"], "31."),
    "nova-libvirt": ("root", ["libvirtd", "--version"], "libvirtd (libvirt) 11."),
    "openvswitch-db-server": ("root", ["ovsdb-server", "--version"], "ovsdb-server (Open vSwitch) 3."),
    "openvswitch-vswitchd": ("root", ["ovs-vswitchd", "--version"], "ovs-vswitchd (Open vSwitch) 3."),
    "neutron-server": ("neutron", ["neutron-server", "--version"], "neutron-server 26."),
    "neutron-openvswitch-agent": ("neutron", ["neutron-openvswitch-agent", "--version"], "neutron-openvswitch-agent 26."),
    "neutron-dhcp-agent": ("neutron", ["neutron-dhcp-agent", "--version"], "neutron-dhcp-agent 26."),
    "neutron-l3-agent": ("neutron", ["neutron-l3-agent", "--version"], "neutron-l3-agent 26."),
    "neutron-metadata-agent": ("neutron", ["neutron-metadata-agent", "--version"], "neutron-metadata-agent 26."),
    "heat-api": ("heat", ["heat-manage", "--version"], "24."),
    "heat-api-cfn": ("heat", ["heat-api-cfn", "--version"], "24."),
    "heat-engine": ("heat", ["heat-engine", "--version"], "24."),
    "horizon": ("horizon", ["python3", "-c", "import horizon, openstack_dashboard; print(horizon.__file__)"],
                "/usr/lib/python3/dist-packages/horizon/"),
    "haproxy": ("root", ["haproxy", "-v"], "HAProxy version 3."),
    "keepalived": ("root", ["keepalived", "--version"], "Keepalived v2."),
}


def ref(name: str) -> str:
    return f"{NS}/{name}:{TAG}"


def run(image: str, *cmd: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    args = ["docker", "run", "--rm", "--label", "org.stackyard.e2e=build-cloud", "--network", "host",
            "--entrypoint", cmd[0]]
    if user:
        args += ["--user", user]
    return subprocess.run([*args, ref(image), *cmd[1:]], check=False, capture_output=True, text=True, timeout=300)


def out(image: str, *cmd: str, user: str | None = None) -> str:
    r = run(image, *cmd, user=user)
    assert r.returncode == 0, f"{image}: {' '.join(cmd)} -> {r.returncode}\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}"
    # eventlet programs print "This program is using eventlet ..." first
    return (r.stdout + r.stderr).strip()


@pytest.fixture(scope="module")
def core_build(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("cloud-build")
    summary = work / "summary.json"
    proc = subprocess.run(
        [sys.executable, "-m", "stackyard.cli", "build", "--profile", "core", "--namespace", NS,
         "--work-dir", str(work), "--summary-file", str(summary)],
        check=False, capture_output=True, text=True, timeout=3600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(Path(summary).read_text())


def test_core_profile_holds_the_cloud() -> None:
    assert set(SERVICES) <= set(build_profiles()["core"])
    assert {"mariadb-server", "memcached", "rabbitmq", "keystone"} <= set(build_profiles()["core"])


def test_core_build_succeeds(core_build: dict) -> None:
    assert core_build["failed"] == [] and core_build["parent_failed"] == []
    done = set(core_build["built"]) | set(core_build["cached"])
    assert set(SERVICES) | {"nova-base", "neutron-base", "openvswitch-base", "heat-base"} <= done


@pytest.mark.parametrize("image", sorted(SERVICES))
def test_program_runs_with_its_version(core_build: dict, image: str) -> None:
    _, cmd, expected = SERVICES[image]
    assert expected in out(image, *cmd)


@pytest.mark.parametrize("image", sorted(SERVICES))
def test_runs_as_its_service_user(core_build: dict, image: str) -> None:
    user = SERVICES[image][0]
    uid = out(image, "id", "-u")
    assert uid == ("0" if user == "root" else str(USERS[user].uid))


@pytest.mark.parametrize("image", sorted(SERVICES))
def test_no_compiler_and_no_dev_package(core_build: dict, image: str) -> None:
    script = ("for c in gcc cc c++ g++ clang make; do command -v $c; done; "
              "dpkg-query -W -f '${db:Status-Abbrev} ${Package}\\n' | awk '$1 == \"ii\" {print $2}' | grep -E -- '-dev(:|$)'; "
              "ls /var/lib/apt/lists | grep -v -e '^lock$' -e '^partial$'; true")
    assert out(image, "sh", "-c", script, user="root") == ""


def test_service_users_in_the_vm_and_agent_images(core_build: dict) -> None:
    assert out("nova-libvirt", "id", "-u", "qemu") == str(USERS["qemu"].uid)
    assert "kvm" in out("nova-libvirt", "id", "-Gn", "qemu").split()
    assert "qemu" in out("nova-compute", "id", "-Gn").split()


def test_virtualisation_programs(core_build: dict) -> None:
    assert out("nova-libvirt", "qemu-system-x86_64", "--version").startswith("QEMU emulator version")
    assert out("nova-libvirt", "virtlogd", "--version").startswith("virtlogd (libvirt)")
    assert "ovs-vsctl (Open vSwitch)" in out("nova-libvirt", "ovs-vsctl", "--version")
    assert out("nova-compute", "qemu-img", "--version").startswith("qemu-img version")
    assert out("nova-compute", "python3", "-c", "import libvirt; print(libvirt.getVersion())").isdigit()


def test_network_programs(core_build: dict) -> None:
    assert out("neutron-dhcp-agent", "dnsmasq", "--version").startswith("Dnsmasq version")
    for image in ("neutron-l3-agent", "neutron-dhcp-agent"):
        assert "HAProxy version" in out(image, "haproxy", "-v")
    for tool in ("ip", "iptables", "conntrack", "ipset", "ovs-vsctl", "ovs-ofctl"):
        out("neutron-openvswitch-agent", "sh", "-c", f"command -v {tool}")
    assert out("neutron-l3-agent", "sh", "-c", "command -v arping radvd") != ""


@pytest.mark.parametrize("image,project", [("nova-compute", "nova"), ("neutron-l3-agent", "neutron"),
                                           ("neutron-dhcp-agent", "neutron")])
def test_rootwrap_through_sudo(core_build: dict, image: str, project: str) -> None:
    assert out(image, "test", "-f", f"/etc/{project}/rootwrap.conf") == ""
    assert out(image, "sh", "-c", f"ls /etc/{project}/rootwrap.d/") != ""
    rules = out(image, "sudo", "-n", "-l")
    assert f"/usr/bin/{project}-rootwrap /etc/{project}/rootwrap.conf *" in rules
    # the service user really becomes root through rootwrap (no filter matches `id`)
    r = run(image, "sudo", "-n", f"/usr/bin/{project}-rootwrap", f"/etc/{project}/rootwrap.conf", "id")
    assert "Unauthorized command" in r.stdout + r.stderr


def test_wsgi_scripts_exist(core_build: dict) -> None:
    for path in ("/usr/bin/nova-api-wsgi", "/usr/bin/nova-metadata-wsgi"):
        assert "application" in out("nova-api", "cat", path)
    assert "application" in out("placement-api", "cat", "/usr/bin/placement-api")
    assert "application" in out("glance-api", "cat", "/usr/bin/glance-wsgi-api")
    assert "application" in out("neutron-server", "cat", "/usr/bin/neutron-api")
    assert "application" in out("heat-api", "cat", "/usr/bin/heat-wsgi-api")
    assert "application" in out("heat-api-cfn", "cat", "/usr/bin/heat-wsgi-api-cfn")


def test_galera_pieces(core_build: dict) -> None:
    for path in ("/usr/lib/galera/libgalera_smm.so", "/usr/bin/wsrep_sst_common", "/usr/bin/wsrep_sst_mariabackup",
                 "/usr/local/bin/galera-start", "/usr/local/bin/galera-recover", "/usr/local/bin/galera-health"):
        out("mariadb-server", "test", "-e", path)
    assert "mariadb-backup" in out("mariadb-server", "mariadb-backup", "--version")
    out("mariadb-server", "sh", "-c", "command -v socat")
    assert out("haproxy", "id", "-u", "haproxy") == str(USERS["haproxy"].uid)
    out("keepalived", "test", "-x", "/usr/local/bin/check-haproxy")


def test_hooks_present(core_build: dict) -> None:
    for image in ("glance-api", "placement-api", "nova-api", "neutron-server", "heat-api"):
        out(image, "test", "-x", "/usr/local/lib/stackyard/hooks/bootstrap")
    # what heat-engine reads besides heat.conf: the global environment and the templates it names
    out("heat-engine", "test", "-f", "/etc/heat/environment.d/default.yaml")
    out("heat-engine", "test", "-f", "/etc/heat/templates/AWS_RDS_DBInstance.yaml")
    out("heat-api", "test", "-f", "/etc/heat/api-paste.ini")


def test_glance_store_and_horizon_static(core_build: dict) -> None:
    assert out("glance-api", "stat", "-c", "%u", "/var/lib/glance/images") == str(USERS["glance"].uid)
    assert out("glance-api", "sh", "-c", "ls /etc/glance/metadefs | head -1") != ""
    assert out("horizon", "test", "-f", "/var/lib/openstack-dashboard/static/dashboard/manifest.json") == ""
    assert out("nova-novncproxy", "test", "-f", "/usr/share/novnc/vnc_lite.html") == ""
