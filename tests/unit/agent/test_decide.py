"""Container and job decisions, and the engine request a spec becomes."""

from __future__ import annotations

import pytest

from stackyard.agent.decide import DEFAULT_READONLY_PATHS, Act, container_action, create_request, job_action
from stackyard.agent.engine import ContainerState
from stackyard.agent.model import DEPLOYMENT_LABEL, MANAGED_LABEL, SPEC_LABEL, ContainerSpec, Healthcheck


def state(status: str, spec: str) -> ContainerState:
    return ContainerState(name="keystone", id="x", status=status, labels={SPEC_LABEL: spec})


@pytest.mark.parametrize("current, act, dry, wet", [
    (None, Act.CREATE, "would create", "created"),
    (state("running", "old"), Act.RECREATE, "would recreate", "recreated"),
    (state("exited", "old"), Act.RECREATE, "would recreate", "recreated"),
    (state("exited", "want"), Act.START, "would start", "started"),
    (state("created", "want"), Act.START, "would start", "started"),
    (state("running", "want"), Act.NOTHING, "running", "running"),
])
def test_container_action(current, act, dry, wet) -> None:
    action = container_action("want", current)
    assert action.act == act
    assert action.describe(dry_run=True) == dry
    assert action.describe(dry_run=False) == wet
    assert action.changes == (act != Act.NOTHING)


def test_job_runs_only_when_its_hash_changed() -> None:
    assert job_action("h1", None).act == Act.RUN
    assert job_action("h1", "h0").act == Act.RUN
    assert job_action("h1", "h1").act == Act.NOTHING


def spec(**kw) -> ContainerSpec:
    base = dict(name="neutron_l3_agent", image="stackyard/neutron-l3-agent:2025.1", service="neutron-l3-agent",
                volumes=["/etc/kolla/neutron-l3-agent/:/var/lib/kolla/config_files/:ro", "kolla_logs:/var/log/kolla/"],
                environment={"KOLLA_SERVICE_NAME": "neutron_l3_agent"}, labels={DEPLOYMENT_LABEL: "/etc/kolla"},
                cap_add=["NET_ADMIN"], healthcheck=Healthcheck(["CMD-SHELL", "true"]))
    base.update(kw)
    return ContainerSpec(**base)


def test_create_request_carries_hash_service_and_deployment() -> None:
    req = create_request(spec(), "abc", extra_env={"X": "1"}, extra_labels={"extra": "y"})
    assert req.labels[SPEC_LABEL] == "abc" and req.labels[MANAGED_LABEL] == "true"
    assert req.labels[DEPLOYMENT_LABEL] == "/etc/kolla" and req.labels["extra"] == "y"
    assert req.environment == {"KOLLA_SERVICE_NAME": "neutron_l3_agent", "X": "1"}
    assert req.binds == spec().volumes and req.cap_add == ["NET_ADMIN"]
    assert req.restart_policy == "unless-stopped"
    assert req.healthcheck is not None and req.healthcheck["interval"] == 10 * 10**9
    assert req.readonly_paths is None  # the engine's defaults


def test_writable_proc_sys_keeps_every_other_read_only_path() -> None:
    req = create_request(spec(writable_proc_sys=True), "abc")
    assert req.readonly_paths == [p for p in DEFAULT_READONLY_PATHS if p != "/proc/sys"]
    assert "/proc/sysrq-trigger" in req.readonly_paths


def test_a_job_does_not_restart() -> None:
    assert create_request(spec(restart_policy="no"), "abc").restart_policy is None


def test_another_deployments_container_is_never_touched() -> None:
    theirs = ContainerState(name="mariadb", id="y", status="running",
                            labels={SPEC_LABEL: "old", DEPLOYMENT_LABEL: "/etc/kolla"})
    refused = container_action("new", theirs, "/tmp/lab")
    assert refused.act == Act.FAIL and "/etc/kolla" in refused.detail and "stackyard_name_prefix" in refused.detail
    not_ours = ContainerState(name="mariadb", id="z", status="running", labels={})
    assert container_action("new", not_ours, "/tmp/lab").act == Act.FAIL
    older_stackyard = ContainerState(name="mariadb", id="z", status="running",
                                     labels={SPEC_LABEL: "old", MANAGED_LABEL: "true"})
    assert container_action("new", older_stackyard, "/tmp/lab").act == Act.RECREATE
    ours = ContainerState(name="mariadb", id="y", status="running",
                          labels={SPEC_LABEL: "old", DEPLOYMENT_LABEL: "/tmp/lab"})
    assert container_action("new", ours, "/tmp/lab").act == Act.RECREATE
