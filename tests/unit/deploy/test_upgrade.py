"""Upgrade and rollback rules and plans (no engine): which jumps, which version hops, the
order each project's docs prescribe, what a rollback stops, and the backups' files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from stackyard.deploy import backup, state
from stackyard.deploy import plan as plan_mod
from stackyard.deploy.passwords import genpwd
from stackyard.deploy.upgrade import control_plane, describe, jump, upgrade_plan, version_hop
from stackyard.errors import DeployError

CLOUD = {"kolla_internal_vip_address": "127.0.0.1", "network_interface": "lo", "openstack_release": "2026.1",
         "enable_glance": True, "enable_placement": True, "enable_nova": True, "enable_neutron": True,
         "enable_horizon": True, "nova_compute_virt_type": "qemu", "stackyard_name_prefix": "x-"}


def deployment(tmp_path: Path, **extra):
    configdir = tmp_path / "etc-kolla"
    configdir.mkdir(exist_ok=True)
    genpwd(configdir / "passwords.yml")
    (configdir / "globals.yml").write_text(yaml.safe_dump(dict(CLOUD, **extra)))
    dep = plan_mod.load(configdir)
    plan_mod.make_plans(dep)
    return dep


@pytest.mark.parametrize("current, target, kind", [
    ("2025.1", "2025.1", "update"),     # new images of the same release
    ("2025.1", "2025.2", "upgrade"),
    ("2025.2", "2026.1", "upgrade"),
    ("2025.1", "2026.1", "upgrade"),    # SLURP to SLURP
])
def test_supported_jumps(current: str, target: str, kind: str) -> None:
    assert jump(current, target) == kind


@pytest.mark.parametrize("current, target, words", [
    ("2026.1", "2025.1", "2026.1 -> 2025.1 is a downgrade"),
    ("2025.2", "2026.2", "2025.2 -> 2026.2 skips a release"),   # not SLURP
    ("2025.1", "2026.2", "skips a release"),
    ("2025.1", "2027.1", "skips a release"),
])
def test_refused_jumps_name_both_releases(current: str, target: str, words: str) -> None:
    with pytest.raises(DeployError, match=words) as exc:
        jump(current, target)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("kind, old, new, ok", [
    ("mariadb", "11.8.3", "11.8.5", True),
    ("mariadb", "11.4.2", "11.8.1", True),
    ("mariadb", "10.11.6", "11.8.1", True),
    ("mariadb", "10.6.1", "12.1.0", False),
    ("mariadb", "11.8.3", "11.4.1", False),
    ("rabbitmq", "4.0.5", "4.0.9", True),
    ("rabbitmq", "3.12.1", "3.13.7", True),
    ("rabbitmq", "3.11.1", "3.13.7", False),
    ("rabbitmq", "3.13.7", "4.0.5", True),
    ("rabbitmq", "4.1.0", "4.0.5", False),
])
def test_version_hops(kind: str, old: str, new: str, ok: bool) -> None:
    if ok:
        version_hop(kind, old, new)
    else:
        with pytest.raises(DeployError, match=kind.replace("mariadb", "MariaDB").replace("rabbitmq", "RabbitMQ")
                           if kind else ""):
            version_hop(kind, old, new)


def test_each_project_upgrades_as_its_docs_prescribe(tmp_path: Path) -> None:
    dep = deployment(tmp_path)
    plan = upgrade_plan(dep.plans["localhost"], "x-", ["127.0.0.1:11211"])
    phases = {p.name: [(str(s.kind), s.name) for s in p.steps] for p in plan.phases}
    ks = phases["keystone"]
    assert ks.index(("job", "x-upgrade_keystone_expand")) < ks.index(("job", "x-upgrade_keystone_migrate")) \
        < ks.index(("container", "x-keystone")) < ks.index(("job", "x-upgrade_keystone_contract"))
    nova = phases["nova"]
    containers = [n for k, n in nova if k == "container"]
    assert containers.index("x-nova_conductor") < containers.index("x-nova_scheduler") \
        < containers.index("x-nova_api") < containers.index("x-nova_compute")
    assert nova.index(("job", "x-upgrade_nova_db")) < nova.index(("container", "x-nova_conductor"))
    assert nova[-1] == ("job", "x-upgrade_nova_online")
    assert nova.index(("hypervisor_wait", "localhost")) < nova.index(("job", "x-upgrade_nova_online"))
    neutron = phases["neutron"]
    assert neutron.index(("job", "x-upgrade_neutron_expand")) < neutron.index(("container", "x-neutron_server")) \
        < neutron.index(("container", "x-neutron_openvswitch_agent"))
    assert neutron[-1] == ("job", "x-upgrade_neutron_contract")
    assert phases["horizon"][0] == ("cache_flush", "memcached")
    # what a service without rules does: converge as in a deploy
    mariadb = next(p for p in dep.plans["localhost"].phases if p.name == "mariadb")
    assert phases["mariadb"] == [(str(s.kind), s.name) for s in mariadb.steps]


def test_upgrade_jobs_run_the_new_image_and_bootstrap_jobs_are_only_recorded(tmp_path: Path) -> None:
    dep = deployment(tmp_path)
    plan = upgrade_plan(dep.plans["localhost"], "x-")
    steps = {s.name: s for p in plan.phases for s in p.steps}
    expand = steps["x-upgrade_keystone_expand"].container
    assert expand.image == "stackyard/keystone:2026.1"
    assert expand.environment["KOLLA_UPGRADE"] == "1" and expand.environment["STACKYARD_UPGRADE_STEP"] == "expand"
    assert expand.restart_policy == "no" and expand.healthcheck is None
    assert "/etc/keystone/fernet-keys/" in " ".join(expand.volumes)
    assert steps["x-bootstrap_keystone"].params["record_only"] is True
    assert "record_only" not in steps["x-keystone_bootstrap_admin"].params
    lines = describe(plan)
    assert any("x-upgrade_nova_db (upgrade step db, image stackyard/nova-api:2026.1)" in ln for ln in lines)


def test_a_rollback_stops_the_control_plane_and_keeps_the_data_plane(tmp_path: Path) -> None:
    stopped = set(control_plane(deployment(tmp_path)))
    assert {"x-keystone", "x-nova_api", "x-nova_compute", "x-neutron_server", "x-neutron_l3_agent",
            "x-glance_api", "x-placement_api", "x-horizon"} <= stopped
    assert not stopped & {"x-nova_libvirt", "x-openvswitch_vswitchd", "x-openvswitch_db", "x-mariadb",
                          "x-memcached", "x-rabbitmq"}


def test_the_deployed_config_is_what_a_backup_restores(tmp_path: Path) -> None:
    dep = deployment(tmp_path, openstack_release="2025.1")
    configdir = dep.configdir
    (configdir / "config").mkdir()
    (configdir / "config" / "nova.conf").write_text("[DEFAULT]\ndebug = true\n")
    archive = state.config_archive(configdir)
    assert state.config_archive(configdir) == archive  # reproducible
    # the operator edits for the upgrade, then the backup is restored
    (configdir / "globals.yml").write_text(yaml.safe_dump(dict(CLOUD, openstack_release="2026.1")))
    (configdir / "config" / "neutron.conf").write_text("[DEFAULT]\n")
    bdir = tmp_path / "b"
    bdir.mkdir()
    (bdir / "config.tar.gz").write_bytes(archive)
    taken = backup.Backup(id="b1", created="", release="2025.1", reason="", databases=[], dir=str(bdir))
    backup.restore_config(configdir, taken)
    assert yaml.safe_load((configdir / "globals.yml").read_text())["openstack_release"] == "2025.1"
    assert (configdir / "config" / "nova.conf").exists() and not (configdir / "config" / "neutron.conf").exists()
    assert (configdir / "passwords.yml").stat().st_mode & 0o777 == 0o600


def test_a_backup_is_checked_against_its_manifest(tmp_path: Path) -> None:
    configdir = tmp_path / "etc"
    target = backup.root(configdir) / "20260101T000000Z-abcdef"
    target.mkdir(parents=True)
    (target / "databases.sql.gz").write_bytes(b"dump")
    manifest = {"id": target.name, "created": "x", "release": "2025.1", "reason": "test", "databases": ["nova"],
                "files": {"databases.sql.gz": backup._sha256(target / "databases.sql.gz")}}
    (target / "manifest.json").write_text(json.dumps(manifest))
    (backup.root(configdir) / "half-written").mkdir()  # no manifest: never listed
    assert [b.id for b in backup.list_backups(configdir)] == [target.name]
    assert backup.get(configdir, target.name).databases == ["nova"]
    (target / "databases.sql.gz").write_bytes(b"tampered")
    with pytest.raises(DeployError, match="does not match its checksum"):
        backup.get(configdir, target.name)
    with pytest.raises(DeployError, match="backup nope not found"):
        backup.get(configdir, "nope")


def test_the_upgrade_jobs_all_have_hooks_in_their_images() -> None:
    """Every upgrade step a service declares is handled by its image's upgrade hook."""
    from stackyard.deploy import services

    images = Path(__file__).resolve().parents[3] / "images"
    for svc in services.ALL.values():
        for job in svc.upgrade.jobs if svc.upgrade else ():
            hook = images / {"keystone": "keystone", "glance_api": "glance-api", "placement_api": "placement-api",
                             "nova_api": "nova-api", "neutron_server": "neutron-server",
                             "heat_api": "heat-api"}[job.container] \
                / "hooks" / "upgrade"
            text = hook.read_text()
            assert job.step in text, (svc.name, job.step)


class PruneEngine:
    """The deployment's containers as an engine lists them; records removals."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.removed: list[str] = []

    def containers(self, labels: list[str]) -> list:
        from types import SimpleNamespace
        assert any(lbl.endswith("=" + self.label) for lbl in labels), labels  # only this deployment's
        return [SimpleNamespace(name=n, running=True) for n in self.names]

    def remove(self, name: str) -> None:
        self.removed.append(name)


def test_a_rollback_removes_the_containers_only_the_newer_release_had(tmp_path: Path) -> None:
    from stackyard.agent import ops as agent_ops
    new = deployment(tmp_path)                                    # 2026.1: Neutron's RPC server and workers
    (tmp_path / "old").mkdir()
    old = deployment(tmp_path / "old", openstack_release="2025.1")
    (host, new_plan), = new.plans.items()
    (_, old_plan), = old.plans.items()
    running = [s.name for s in new_plan.containers()] + ["x-upgrade_nova_db"]   # and a killed job's container
    engine = PruneEngine(running)
    engine.label = old.label
    gone = agent_ops.prune(engine, old.label, old_plan)
    assert set(gone) == set(engine.removed)
    assert {"x-neutron_rpc_server", "x-neutron_periodic_workers", "x-upgrade_nova_db"} <= set(gone)
    assert not set(gone) & {s.name for s in old_plan.containers()}
    # converged on the same release: nothing to remove
    engine = PruneEngine([s.name for s in new_plan.containers()])
    engine.label = new.label
    assert agent_ops.prune(engine, new.label, new_plan) == []


def test_a_restore_refuses_a_backup_of_another_deployment(tmp_path: Path) -> None:
    dep = deployment(tmp_path)
    (host,) = dep.plans
    ours = backup.Backup(id="b1", created="x", release="2025.1", reason="t", databases=[], deployment=dep.label,
                         hosts=[host], name_prefix="x-")
    backup.check_matches(dep, ours)  # its own: fine
    for other, words in (
        ({"deployment": "/elsewhere/etc-kolla"}, "taken of the deployment in /elsewhere/etc-kolla"),
        ({"hosts": ["node1", "node2"]}, "taken of hosts node1, node2, this deployment has " + host),
        ({"name_prefix": ""}, r"named \(no prefix\)\*, this deployment's x-\*"),
    ):
        theirs = backup.Backup(**{**ours.to_dict(), **other, "dir": ""})
        with pytest.raises(DeployError, match="backup b1 does not match this deployment: .*" + words):
            backup.check_matches(dep, theirs)
    # a manifest written before these were recorded still restores
    backup.check_matches(dep, backup.Backup(id="old", created="x", release="2025.1", reason="t", databases=[]))
