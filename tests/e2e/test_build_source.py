"""End-to-end: source images of the newest release (2026.1, from PyPI) build without a
compiler in any runtime image, at the release's pins, and an unchanged rebuild builds nothing.

The module builds the core set with ``--install-type source`` under the E2E
namespace (the wheel cache lives in the build work dir, so a second run on the
same machine is mostly cache hits). test_lifecycle then upgrades a 2025.1
cloud to these images, boots servers on them and rolls back.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

RELEASE = "2026.1"
#: what the 2026.1 images install (stackyard/imagebuild/sources.py PINS, horizon from the constraints)
PINNED = {"keystone": "29.1.0", "glance": "32.0.0", "openstack-placement": "15.0.0", "nova": "33.0.2",
          "neutron": "28.0.2", "openstack-heat": "26.0.2", "horizon": "25.7.3"}
#: image -> the project it installs
PROJECT_OF = {"keystone": "keystone", "glance-api": "glance", "placement-api": "openstack-placement",
              "nova-api": "nova", "nova-compute": "nova", "neutron-server": "neutron",
              "neutron-openvswitch-agent": "neutron", "heat-api": "openstack-heat", "heat-api-cfn": "openstack-heat",
              "heat-engine": "openstack-heat", "horizon": "horizon"}


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
