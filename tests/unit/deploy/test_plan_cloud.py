"""Plan of the full all-in-one cloud (no engine): every service, least privilege,
no secret outside 0600 files, images that the builder's core profile makes."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from stackyard.build.config import DEFAULT_PROFILES
from stackyard.deploy import plan as plan_mod
from stackyard.deploy.passwords import genpwd

CLOUD = {
    "kolla_internal_vip_address": "127.0.0.1", "network_interface": "lo",
    "enable_glance": True, "enable_placement": True, "enable_nova": True,
    "enable_neutron": True, "enable_horizon": True, "nova_compute_virt_type": "qemu",
}
#: capabilities a container may ask for; never SYS_RESOURCE/SYS_MODULE/ALL, never privileged
ALLOWED_CAPS = {"NET_ADMIN", "SYS_ADMIN", "NET_RAW", "DAC_OVERRIDE", "DAC_READ_SEARCH", "SYS_PTRACE", "SYS_NICE"}


def cloud_plan(tmp_path: Path):
    configdir = tmp_path / "etc-kolla"
    configdir.mkdir(parents=True)
    genpwd(configdir / "passwords.yml")
    (configdir / "globals.yml").write_text(yaml.safe_dump(CLOUD))
    dep = plan_mod.load(configdir)
    return dep, plan_mod.make_plans(dep)["localhost"]


def specs(plan):
    return [s.container for p in plan.phases for s in p.steps if s.container is not None]


def test_every_cloud_service_has_its_phase_in_order(tmp_path):
    _, plan = cloud_plan(tmp_path)
    names = [p.name for p in plan.phases]
    for before, after in [("mariadb", "keystone"), ("keystone", "glance"), ("placement", "nova"),
                          ("openvswitch", "neutron"), ("keystone", "horizon")]:
        assert names.index(before) < names.index(after)
    containers = {c.name for c in specs(plan)}
    assert {"glance_api", "placement_api", "nova_api", "nova_metadata", "nova_scheduler", "nova_conductor",
            "nova_novncproxy", "nova_compute", "nova_libvirt", "neutron_server", "neutron_openvswitch_agent",
            "neutron_dhcp_agent", "neutron_l3_agent", "neutron_metadata_agent", "openvswitch_db",
            "openvswitch_vswitchd", "horizon"} <= containers


def test_images_come_from_the_core_profile(tmp_path):
    _, plan = cloud_plan(tmp_path)
    core = set(DEFAULT_PROFILES["core"])
    for c in specs(plan):
        name = c.image.rsplit("/", 1)[-1].split(":")[0]
        assert name in core, f"{c.name} uses {name}, which 'stackyard build --profile core' does not make"


def test_least_privilege(tmp_path):
    _, plan = cloud_plan(tmp_path)
    for c in specs(plan):
        assert set(c.cap_add) <= ALLOWED_CAPS, (c.name, c.cap_add)
        assert c.network_mode == "host"
        assert all(d.startswith("/dev/net/tun:") for d in c.devices), (c.name, c.devices)
    by_name = {c.name: c for c in specs(plan)}
    assert by_name["glance_api"].cap_add == [] and by_name["keystone"].cap_add == []
    for agent in ("neutron_dhcp_agent", "neutron_l3_agent", "neutron_openvswitch_agent"):
        assert "/run/netns:/run/netns:shared" in by_name[agent].volumes


def test_no_secret_outside_secret_files(tmp_path):
    dep, plan = cloud_plan(tmp_path)
    secrets = [v for v in dep.passwords.values() if isinstance(v, str) and len(v) >= 16]
    for c in specs(plan):
        blob = json.dumps({"env": c.environment, "cmd": c.command, "labels": c.labels})
        assert not any(s in blob for s in secrets), c.name
    for f in plan.files:
        if any(s in f.content for s in secrets):
            assert f.secret and f.mode == 0o600, f.path
    dumped = json.dumps(plan.to_dict())
    assert not any(s in dumped for s in secrets)


def test_ports_below_32768_and_on_loopback(tmp_path):
    _, plan = cloud_plan(tmp_path)
    import re

    for f in plan.files:
        for host, port in re.findall(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3}):(\d+)", f.content):
            assert int(port) < 32768, (f.path, port)
            assert host.startswith("127."), (f.path, host)


def test_whole_cloud_plan_is_deterministic(tmp_path):
    _, first = cloud_plan(tmp_path / "a")
    _, second = cloud_plan(tmp_path / "b")
    assert [f.path.split("etc-kolla")[1] for f in first.files] == [f.path.split("etc-kolla")[1] for f in second.files]
