"""Plan of the full all-in-one cloud (no engine): every service, least privilege,
no secret outside 0600 files, images that the builder's core profile makes."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from stackyard.deploy.services import build_profiles
from stackyard.deploy import plan as plan_mod
from stackyard.deploy.passwords import genpwd
from stackyard.agent.model import ResourceKind, StepKind
from stackyard.deploy.merge import parse_ini

CLOUD = {
    "kolla_internal_vip_address": "127.0.0.1", "network_interface": "lo",
    "enable_glance": True, "enable_placement": True, "enable_nova": True,
    "enable_neutron": True, "enable_horizon": True, "nova_compute_virt_type": "qemu",
}
#: capabilities a container may ask for; never SYS_RESOURCE/SYS_MODULE/ALL, never privileged
ALLOWED_CAPS = {"NET_ADMIN", "SYS_ADMIN", "NET_RAW", "DAC_OVERRIDE", "DAC_READ_SEARCH", "SYS_PTRACE", "SYS_NICE"}


def cloud_plan(tmp_path: Path, overrides: dict[str, str] | None = None):
    configdir = tmp_path / "etc-kolla"
    configdir.mkdir(parents=True)
    genpwd(configdir / "passwords.yml")
    (configdir / "globals.yml").write_text(yaml.safe_dump(CLOUD))
    for rel, text in (overrides or {}).items():
        path = configdir / "config" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
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
    core = set(build_profiles()["core"])
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


def file_text(plan, rel: str) -> str:
    matches = [f.content for f in plan.files if f.path == f"{plan.config_root}/{rel}"]
    assert len(matches) == 1, rel
    return matches[0]


def test_neutron_agent_files_read_only_their_own_overrides(tmp_path):
    dep, plan = cloud_plan(tmp_path, overrides={
        "global.conf": "[DEFAULT]\nfrom_global = g\n",
        "neutron.conf": "[DEFAULT]\nfrom_neutron_conf = n\n",
        "neutron/ml2_conf.ini": "[ml2_type_vxlan]\nvni_ranges = 5:50\n",
        "neutron/dhcp_agent.ini": "[DEFAULT]\ndnsmasq_dns_servers = 192.0.2.53\nfrom_file = all\n",
        "neutron/localhost/dhcp_agent.ini": "[DEFAULT]\nfrom_file = this-host\n",
        "neutron/otherhost/l3_agent.ini": "[DEFAULT]\nagent_mode = dvr\n",
    })
    ml2 = parse_ini(file_text(plan, "neutron-server/ml2_conf.ini"))
    assert ml2["ml2_type_vxlan"]["vni_ranges"] == ["5:50"]
    assert ml2["ml2"]["mechanism_drivers"] == ["openvswitch"]  # the generated file is kept under it
    dhcp = parse_ini(file_text(plan, "neutron-dhcp-agent/dhcp_agent.ini"))["DEFAULT"]
    assert dhcp["dnsmasq_dns_servers"] == ["192.0.2.53"]
    assert dhcp["from_file"] == ["this-host"]  # per-host file last
    # another host's file does not reach this one
    assert parse_ini(file_text(plan, "neutron-l3-agent/l3_agent.ini"))["DEFAULT"]["agent_mode"] == ["legacy"]
    # global.conf and neutron.conf are for neutron.conf, not the agents' own files
    for svc, name in (("neutron-server", "ml2_conf.ini"), ("neutron-openvswitch-agent", "openvswitch_agent.ini"),
                      ("neutron-dhcp-agent", "dhcp_agent.ini"), ("neutron-l3-agent", "l3_agent.ini"),
                      ("neutron-metadata-agent", "metadata_agent.ini")):
        text = file_text(plan, f"{svc}/{name}")
        assert "from_global" not in text and "from_neutron_conf" not in text, f"{svc}/{name}"
        conf = parse_ini(file_text(plan, f"{svc}/neutron.conf"))["DEFAULT"]
        assert conf["from_global"] == ["g"] and conf["from_neutron_conf"] == ["n"], svc
    unused = [w for w in dep.warnings if "not read by any enabled service" in w]
    assert len(unused) == 1 and "otherhost/l3_agent.ini" in unused[0], dep.warnings


def test_host_resources_are_declared_with_a_host_step(tmp_path):
    _, plan = cloud_plan(tmp_path)
    by_kind = {(r.service, r.kind): r for r in plan.resources}
    assert set(by_kind) == {("neutron", ResourceKind.SHARED_MOUNT), ("neutron", ResourceKind.NETNS),
                            ("openvswitch", ResourceKind.VETH)}
    assert by_kind[("neutron", ResourceKind.SHARED_MOUNT)].path == "/run/netns"
    netns = by_kind[("neutron", ResourceKind.NETNS)]
    assert netns.path == "/run/netns" and {"qdhcp-", "qrouter-"} <= set(netns.prefixes)
    veth = by_kind[("openvswitch", ResourceKind.VETH)]
    assert (veth.name, veth.peer) == ("sy-ext0", "sy-ext1")
    # the host's end sits on the public network at its gateway (it reaches the floating IPs)
    assert veth.address == "172.24.4.1/24"
    # each owning service's phase makes its resources first, before any container needs them
    for service in ("neutron", "openvswitch"):
        phase = next(p for p in plan.phases if p.name == service)
        host_steps = [s for s in phase.steps if s.kind == StepKind.HOST]
        assert [(s.name, s.params) for s in host_steps] == [(f"{service}-host", {"service": service})]
        first_container = next(i for i, s in enumerate(phase.steps) if s.container is not None)
        assert phase.steps.index(host_steps[0]) < first_container
    # services with no host resources have no host step
    assert not [s for p in plan.phases if p.name not in ("neutron", "openvswitch") for s in p.steps
                if s.kind == StepKind.HOST]


def test_public_gateway_on_the_host_follows_its_options(tmp_path):
    def veth(name, **extra):
        configdir = tmp_path / name
        configdir.mkdir()
        genpwd(configdir / "passwords.yml")
        (configdir / "globals.yml").write_text(yaml.safe_dump({**CLOUD, **extra}))
        dep = plan_mod.load(configdir)
        plan = plan_mod.make_plans(dep)["localhost"]
        return [r for r in plan.resources if r.kind == ResourceKind.VETH]

    assert veth("other", stackyard_public_cidr="192.168.77.0/24",
                stackyard_public_gateway="192.168.77.254")[0].address == "192.168.77.254/24"
    assert veth("off", stackyard_public_on_host=False)[0].address == ""
    assert veth("nic", neutron_external_interface="eth1") == []  # a real NIC: no veth, no address


def test_only_the_scheduler_starts_its_periodic_tasks_without_a_random_delay(tmp_path):
    """Host discovery runs in the scheduler's periodic tasks: with oslo.service's random
    start delay a new compute host waited up to a minute to be usable."""
    _, plan = cloud_plan(tmp_path)
    sched = parse_ini(file_text(plan, "nova-scheduler/nova.conf"))
    assert sched["DEFAULT"]["periodic_fuzzy_delay"] == ["0"]
    assert sched["scheduler"]["discover_hosts_in_cells_interval"] == ["10"]
    for svc in ("nova-compute", "nova-conductor", "nova-api"):
        assert "periodic_fuzzy_delay" not in parse_ini(file_text(plan, f"{svc}/nova.conf"))["DEFAULT"], svc


def test_services_wait_for_what_their_first_rpc_call_needs(tmp_path):
    """An RPC call sent before the server's queue exists is lost for rpc_response_timeout:
    agents start once neutron-server consumes, nova-compute once the conductor does; the
    nova user exists before any nova container starts (they log in at start). The deploy
    ends once heat-engine consumes too (the Heat APIs' calls go to its queue)."""
    _, plan = cloud_plan(tmp_path)
    keys = {p.name: [s.key for s in p.steps] for p in plan.phases}
    neutron, nova = keys["neutron"], keys["nova"]
    for agent in ("neutron_openvswitch_agent", "neutron_dhcp_agent", "neutron_l3_agent", "neutron_metadata_agent"):
        assert neutron.index("wait:neutron_server") < neutron.index(f"container:{agent}")
    server_wait = next(s for p in plan.phases for s in p.steps if s.key == "wait:neutron_server")
    assert server_wait.params["ready"] == ["healthcheck_port", "neutron-server", "5672"]
    assert nova.index("keystone_register:nova") < nova.index("job:bootstrap_nova") < nova.index("container:nova_api")
    assert nova.index("wait:nova_conductor") < nova.index("container:nova_compute")
    deferred = [s.key for p in plan.phases for s in p.steps if s.deferred]
    assert deferred == ["wait:heat_engine", "agents_wait:neutron", "hypervisor_wait:localhost"]
