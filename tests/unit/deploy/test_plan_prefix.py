"""stackyard_name_prefix: a second deployment on the same engine names everything of its own.

The full all-in-one cloud is planned twice, once plain and once with the
prefix "b-", each from its own config dir; the plans must differ exactly in
the engine names (containers, jobs, waits, named volumes), the host resources
(netns dir, provider veth) and the deployment label, and nowhere else.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from stackyard.agent.model import DEPLOYMENT_LABEL, ContainerSpec, HostPlan, ResourceKind, StepKind
from stackyard.deploy import plan as plan_mod
from stackyard.deploy.passwords import genpwd

PREFIX = "b-"
CLOUD = {
    "kolla_internal_vip_address": "127.0.0.1", "network_interface": "lo",
    "enable_glance": True, "enable_placement": True, "enable_nova": True,
    "enable_neutron": True, "enable_horizon": True, "nova_compute_virt_type": "qemu",
}
#: step kinds named after the container they create or watch
NAMED_BY_CONTAINER = (StepKind.CONTAINER, StepKind.JOB, StepKind.WAIT, StepKind.GALERA)
#: Linux interface names are at most 15 characters (IFNAMSIZ - 1)
IFNAMSIZ = 15


def cloud_plan(configdir: Path, prefix: str = "") -> HostPlan:
    configdir.mkdir(parents=True)
    genpwd(configdir / "passwords.yml")
    g = dict(CLOUD)
    if prefix:
        g["stackyard_name_prefix"] = prefix
    (configdir / "globals.yml").write_text(yaml.safe_dump(g))
    plans = plan_mod.make_plans(plan_mod.load(configdir))
    assert list(plans) == ["localhost"]
    return plans["localhost"]


def plans(tmp_path: Path) -> tuple[HostPlan, HostPlan]:
    return cloud_plan(tmp_path / "a" / "etc-kolla"), cloud_plan(tmp_path / "b" / "etc-kolla", PREFIX)


def specs(plan: HostPlan) -> list[ContainerSpec]:
    """Every container the plan creates: services and one-shot jobs."""
    return [s.container for p in plan.phases for s in p.steps if s.container is not None]


def steps(plan: HostPlan):
    return [(p.name, s) for p in plan.phases for s in p.steps]


def resource(plan: HostPlan, kind: ResourceKind):
    found = [r for r in plan.resources if r.kind == kind]
    assert len(found) == 1, plan.resources
    return found[0]


def test_every_container_job_and_wait_carries_the_prefix(tmp_path):
    plain, prefixed = plans(tmp_path)
    named = [(ph, s) for ph, s in steps(prefixed) if s.kind in NAMED_BY_CONTAINER]
    assert {s.kind for _, s in named} >= {StepKind.CONTAINER, StepKind.JOB, StepKind.WAIT}
    for phase, step in named:
        assert step.name.startswith(PREFIX), (phase, step.key)
        if step.container is not None:
            assert step.container.name == step.name, (phase, step.key)
    # the same steps as the plain deployment, renamed and nothing else
    assert [(ph, s.kind, s.name) for ph, s in steps(prefixed)] == [
        (ph, s.kind, PREFIX + s.name if s.kind in NAMED_BY_CONTAINER else s.name) for ph, s in steps(plain)]
    assert sorted(c.name for c in specs(prefixed)) == sorted(PREFIX + c.name for c in specs(plain))
    # the plain plan has no prefixed names, so the comparison above means something
    assert not [c.name for c in specs(plain) if c.name.startswith(PREFIX)]


def test_waits_watch_a_container_of_the_plan(tmp_path):
    _, prefixed = plans(tmp_path)
    containers = {c.name for c in specs(prefixed)}
    waits = [s for _, s in steps(prefixed) if s.kind == StepKind.WAIT]
    assert waits
    for step in waits:
        assert step.name in containers, step.key


def test_named_volumes_carry_the_prefix_and_host_paths_do_not(tmp_path):
    plain, prefixed = plans(tmp_path)
    assert prefixed.volumes == [PREFIX + v for v in plain.volumes]
    assert all(v.startswith(PREFIX) for v in prefixed.volumes)
    netns_plain = resource(plain, ResourceKind.SHARED_MOUNT).path
    netns_prefixed = resource(prefixed, ResourceKind.SHARED_MOUNT).path

    def same_host_path(a: str, b: str) -> bool:
        """Mount ``b`` is mount ``a`` with its host path moved only to the other deployment's
        config dir or netns dir (the container side and options unchanged)."""
        src, rest = a.split(":", 1)
        if src == netns_plain:
            src = netns_prefixed
        elif src.startswith(plain.config_root + "/"):
            src = prefixed.config_root + src[len(plain.config_root):]
        return b == f"{src}:{rest}"

    by_name = {c.name: c for c in specs(plain)}
    absolute = 0
    for spec in specs(prefixed):
        twin = by_name[spec.name[len(PREFIX):]]
        assert len(spec.volumes) == len(twin.volumes), spec.name
        for mine, theirs in zip(spec.volumes, twin.volumes):
            if theirs.startswith("/"):
                absolute += 1
                assert mine.startswith("/"), (spec.name, mine)
                assert same_host_path(theirs, mine), (spec.name, theirs, mine)
            else:
                assert mine == PREFIX + theirs, (spec.name, theirs, mine)
                assert mine.split(":", 1)[0] in prefixed.volumes, (spec.name, mine)
    assert absolute  # /etc/localtime and the config dirs are there to check
    # untouched host paths really are untouched
    assert all("/etc/localtime:/etc/localtime:ro" in c.volumes for c in specs(prefixed))


def test_exec_steps_point_at_the_prefixed_container(tmp_path):
    plain, prefixed = plans(tmp_path)
    containers = {c.name for c in prefixed.containers()}
    execs = [s for _, s in steps(prefixed) if "container" in s.params]
    assert [s.kind for s in execs if s.kind == StepKind.EXEC], "the full cloud has exec steps (br-ex)"
    plain_targets = [s.params["container"] for _, s in steps(plain) if "container" in s.params]
    assert [s.params["container"] for s in execs] == [PREFIX + c for c in plain_targets]
    for step in execs:
        assert step.params["container"] in containers, step.key


def test_netns_dir_and_provider_veth_are_the_deployments_own(tmp_path):
    plain, prefixed = plans(tmp_path)
    # neutron: the namespaces' directory, mounted shared and cleaned by destroy
    mount_a, mount_b = resource(plain, ResourceKind.SHARED_MOUNT), resource(prefixed, ResourceKind.SHARED_MOUNT)
    netns_a, netns_b = resource(plain, ResourceKind.NETNS), resource(prefixed, ResourceKind.NETNS)
    assert mount_a.path == netns_a.path == "/run/netns"
    assert mount_b.path == netns_b.path
    assert mount_b.path != mount_a.path and mount_b.path.startswith("/")
    assert netns_b.prefixes == netns_a.prefixes and netns_b.prefixes
    for agent in ("neutron_dhcp_agent", "neutron_l3_agent", "neutron_openvswitch_agent"):
        spec = next(c for c in specs(prefixed) if c.name == PREFIX + agent)
        assert f"{mount_b.path}:/run/netns:shared" in spec.volumes, spec.volumes
        assert not [v for v in spec.volumes if v.startswith(f"{mount_a.path}:")], spec.volumes
    # openvswitch: the veth standing in for the provider NIC
    veth_a, veth_b = resource(plain, ResourceKind.VETH), resource(prefixed, ResourceKind.VETH)
    assert (veth_a.name, veth_a.peer) == ("sy-ext0", "sy-ext1")
    assert {veth_b.name, veth_b.peer}.isdisjoint({veth_a.name, veth_a.peer})
    assert veth_b.name != veth_b.peer
    assert all(0 < len(n) <= IFNAMSIZ for n in (veth_b.name, veth_b.peer))
    # br-ex takes this deployment's veth end
    br_ex = next(s for _, s in steps(prefixed) if s.kind == StepKind.EXEC and s.name == "br-ex")
    assert veth_b.name in br_ex.params["command"]
    assert veth_a.name not in br_ex.params["command"]
    # the host steps that make these resources name their service
    hosts = {s.params["service"] for _, s in steps(prefixed) if s.kind == StepKind.HOST}
    assert {r.service for r in prefixed.resources} <= hosts


def test_every_container_carries_the_deployment_label(tmp_path):
    plain, prefixed = plans(tmp_path)
    for plan, configdir in ((plain, tmp_path / "a" / "etc-kolla"), (prefixed, tmp_path / "b" / "etc-kolla")):
        label = str(configdir.absolute())
        assert plan.deployment == label
        assert specs(plan)
        for spec in specs(plan):
            assert spec.labels.get(DEPLOYMENT_LABEL) == label, spec.name
    assert plain.deployment != prefixed.deployment
    # the label travels to the host with the plan
    assert HostPlan.from_wire(prefixed.to_wire()).deployment == prefixed.deployment
