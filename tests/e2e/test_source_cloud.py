"""End-to-end: source images of the newest release (2026.1, from PyPI) build without a
compiler in any runtime image, and deploy the same all-in-one cloud, which runs servers.

The module builds the core set with ``--install-type source`` under the E2E
namespace (the wheel cache lives in the build work dir, so a second run on the
same machine is mostly cache hits), then deploys it with ``openstack_release:
"2026.1"`` and prefix ``e2e-src-`` on 127.0.0.1, boots the stackyard guest on a
tenant network, reaches it from the router and on a floating IP, and logs in to
Horizon. Addresses: as in test_cloud (our own bridges and namespaces only).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.e2e

RELEASE = "2026.1"
PREFIX = "e2e-src-"
#: what the 2026.1 images install (stackyard/imagebuild/sources.py PINS, horizon from the constraints)
PINNED = {"keystone": "29.1.0", "glance": "32.0.0", "openstack-placement": "15.0.0", "nova": "33.0.2",
          "neutron": "28.0.2", "horizon": "25.7.3"}
#: image -> the project it installs
PROJECT_OF = {"keystone": "keystone", "glance-api": "glance", "placement-api": "openstack-placement",
              "nova-api": "nova", "nova-compute": "nova", "neutron-server": "neutron",
              "neutron-openvswitch-agent": "neutron", "horizon": "horizon"}


def build(run_stackyard, namespace: str, work: Path, summary: Path) -> dict[str, Any]:
    run_stackyard("build", "--install-type", "source", "--openstack-release", RELEASE, "--profile", "core",
                  "--namespace", namespace, "--work-dir", str(work), "--summary-file", str(summary),
                  timeout=3600)
    return json.loads(summary.read_text())


@pytest.fixture(scope="module")
def source_build(stackyard, e2e_namespace: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = Path(os.environ.get("STACKYARD_WORK_DIR", "/var/lib/stackyard/e2e-build"))
    t0 = time.monotonic()
    summary = build(stackyard, e2e_namespace, work, tmp_path_factory.mktemp("src-build") / "summary.json")
    print(f"source build of the core set: {time.monotonic() - t0:.0f}s, built {len(summary['built'])}")
    summary["work"] = str(work)
    return summary


def image_run(docker_client, ref: str, script: str) -> str:
    out = docker_client.containers.run(ref, ["sh", "-c", script], remove=True, user="root",
                                       labels={"org.stackyard.e2e": "source-cloud"})
    return out.decode().strip()


# ----------------------------------------------------------------- the images
def test_every_image_installs_its_release_pin_from_the_wheel_cache(source_build: dict[str, Any]) -> None:
    assert source_build["failed"] == [] and source_build["parent_failed"] == []
    installed = source_build["installed"]
    for image, project in PROJECT_OF.items():
        assert installed[image][project] == PINNED[project], (image, installed[image].get(project))
    # the release's upper constraints hold for the libraries too
    constraints = Path(__file__).resolve().parents[2] / "stackyard/imagebuild/releases" \
        / f"upper-constraints-{RELEASE}.txt"
    pins = dict(line.split("===", 1) for line in constraints.read_text().splitlines() if "===" in line)
    for lib in ("oslo.config", "oslo.messaging", "SQLAlchemy", "keystonemiddleware"):
        assert installed["keystone"][lib] == pins[lib].split(";")[0], lib
    # compiled from an sdist by the wheel builder: libvirt-python for Debian's libvirt
    assert installed["nova-compute"]["libvirt-python"] == pins["libvirt-python"]


def test_no_compiler_dev_package_or_pip_cache_in_any_runtime_image(source_build: dict[str, Any],
                                                                     docker_client) -> None:
    script = ("for c in gcc cc c++ g++ make; do command -v $c; done; "
              "dpkg-query -W -f '${Package}\\n' | grep -- '-dev$' || true; "
              "ls -d /root/.cache/pip /tmp/pip-* 2>/dev/null || true")
    checked = 0
    for name, info in source_build["images"].items():
        if name == "openstack-builder":  # the wheel builder itself: never deployed
            continue
        assert image_run(docker_client, info["ref"], script) == "", name
        checked += 1
    assert checked >= 20


def test_an_unchanged_rebuild_builds_nothing(source_build: dict[str, Any], stackyard, e2e_namespace: str,
                                             tmp_path: Path) -> None:
    again = build(stackyard, e2e_namespace, Path(source_build["work"]), tmp_path / "summary.json")
    # the wheel builder is not even looked at when no image needs wheels
    assert again["built"] == []
    assert set(again["cached"]) == set(source_build["built"] + source_build["cached"]) - {"openstack-builder"}


# ----------------------------------------------------------------- the cloud
@pytest.fixture(scope="module")
def source_cloud(source_build: dict[str, Any], make_deployment, e2e_namespace: str, guest_work_dir: Path,
                 tmp_path_factory: pytest.TempPathFactory):
    configdir = tmp_path_factory.mktemp("source-cloud") / "etc-kolla"
    configdir.mkdir()
    (configdir / "globals.yml").write_text(yaml.safe_dump({
        "openstack_release": RELEASE, "kolla_internal_vip_address": "127.0.0.1", "network_interface": "lo",
        "docker_namespace": e2e_namespace, "stackyard_name_prefix": PREFIX, "nova_compute_virt_type": "qemu",
        "enable_glance": True, "enable_placement": True, "enable_nova": True, "enable_neutron": True,
        "enable_horizon": True,
    }))
    dep = make_deployment(configdir, PREFIX, flags=False)
    try:
        dep.run("genpwd")
        t0 = time.monotonic()
        dep.run("deploy", timeout=2400)
        print(f"source cloud deploy took {time.monotonic() - t0:.0f}s")
        dep.run("post-deploy")
        dep.run("guest-image", "--upload", "--work-dir", str(guest_work_dir), timeout=1800)
        yield dep
    finally:
        dep.run("destroy", "--yes-i-really-really-mean-it", "--include-volumes", check=False)


def test_the_cloud_runs_the_source_images_and_answers_with_their_versions(source_cloud, e2e_namespace) -> None:
    for c in source_cloud.containers():
        assert c.attrs["Config"]["Image"] == f"{e2e_namespace}/{c.attrs['Config']['Image'].split('/')[-1]}"
        assert c.attrs["Config"]["Image"].endswith(f":{RELEASE}"), c.attrs["Config"]["Image"]
    # Neutron 2025.2+: the API under uWSGI, RPC and periodic workers apart
    running = source_cloud.names(running_only=True)
    assert {PREFIX + n for n in ("neutron_server", "neutron_rpc_server", "neutron_periodic_workers")} <= running
    nova_api = source_cloud.client.containers.get(source_cloud.name("nova_api"))
    assert nova_api.exec_run(["nova-manage", "--version"]).output.decode().strip() == PINNED["nova"]
    services = json.loads(source_cloud.openstack("compute", "service", "list", "-f", "json").stdout)
    assert {(s["Binary"], s["State"]) for s in services} >= {("nova-compute", "up"), ("nova-scheduler", "up"),
                                                              ("nova-conductor", "up")}
    agents = json.loads(source_cloud.openstack("network", "agent", "list", "-f", "json").stdout)
    assert {a["Agent Type"] for a in agents if a["Alive"]} >= {"Open vSwitch agent", "DHCP agent", "L3 agent",
                                                                "Metadata agent"}


def test_noop_redeploy_changes_nothing(source_cloud) -> None:
    before = source_cloud.snapshot()
    result = json.loads(source_cloud.run("deploy", "--format", "json").stdout)
    assert result["changed"] == 0, [s for h in result["hosts"].values() for s in h["steps"]
                                    if s["status"] != "unchanged"]
    assert source_cloud.snapshot() == before


def test_a_server_boots_and_answers_ping(source_cloud, server_scenario) -> None:
    netns = [r["path"] for p in json.loads(source_cloud.run("plan").stdout).values()
             for r in p["resources"] if r["kind"] == "netns"]
    assert len(netns) == 1
    server_scenario(source_cloud, Path(netns[0]), public_ns="e2e-src-pub", veth="e2es-pub")


def test_horizon_login(source_cloud, horizon_login) -> None:
    horizon_login(source_cloud, "http://127.0.0.1")
