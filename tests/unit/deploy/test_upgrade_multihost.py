"""Multi-host upgrade, backup and restore: the playbooks they run (pure), the host they pick,
the database dump and load on a host (a fake engine), and what they read back from Ansible."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from stackyard.agent import ops as agent_ops
from stackyard.deploy import backup, state, upgrade
from stackyard.deploy import plan as plan_mod
from stackyard.deploy.passwords import genpwd
from stackyard.errors import DeployError
from tests.unit.multihost.test_multihost_plan import NODES, VIP, cloud_inventory


def cloud(tmp_path: Path, **extra: Any) -> plan_mod.Deployment:
    configdir = tmp_path / "etc-kolla"
    configdir.mkdir(exist_ok=True)
    genpwd(configdir / "passwords.yml")
    (configdir / "globals.yml").write_text(yaml.safe_dump(dict({
        "kolla_internal_vip_address": VIP, "network_interface": "eth0", "enable_loadbalancer": True,
        "docker_registry": "10.250.0.1:5000", "nova_compute_virt_type": "qemu", "enable_glance": True,
        "enable_placement": True, "enable_nova": True, "enable_neutron": True}, **extra)))
    dep = plan_mod.load(configdir, [cloud_inventory(tmp_path)])
    plan_mod.make_plans(dep)
    return dep


class Played:
    def __init__(self, rc: int = 0, tasks: list | None = None) -> None:
        self.rc, self.tasks = rc, tasks or []

    def first_error(self) -> str:
        bad = next((t for t in self.tasks if t.get("failed")), None)
        return f"host {bad['host']}: {bad['task']}: {bad['result']['msg']}" if bad else ""


# ----------------------------------------------------------------------------- commands and host (pure)
def test_the_dump_and_load_commands_keep_names_and_password_off_the_shell() -> None:
    cmd = agent_ops.dump_command("root", ["keystone", "nova_api"])
    assert cmd[:2] == ["sh", "-c"] and cmd[3:] == ["mariadb-dump", "root", "keystone", "nova_api"]
    assert "--single-transaction" in cmd[2] and "--add-drop-database" in cmd[2] and "umask 077" in cmd[2]
    assert cmd[2].endswith("> " + agent_ops.DUMP_IN_CONTAINER) and "keystone" not in cmd[2]
    load = agent_ops.load_command("root")
    assert load[2].endswith("< " + agent_ops.DUMP_IN_CONTAINER) and load[3:] == ["mariadb", "root"]
    assert agent_ops.list_databases_command("root")[-1] == "SHOW DATABASES"


def test_a_dump_lives_under_the_hosts_state_dir_and_its_name_is_checked() -> None:
    assert str(agent_ops.dump_path("/etc/kolla", "20260101T000000Z-abc123")) == \
        "/etc/kolla/.stackyard/backup-20260101T000000Z-abc123.sql.gz"
    for bad in ("../x", "a/b", "", "-x"):
        with pytest.raises(DeployError):
            agent_ops.dump_path("/etc/kolla", bad)


def test_the_first_mariadb_host_dumps_and_loads(tmp_path: Path) -> None:
    dep = cloud(tmp_path)
    assert backup.mariadb_host(dep) == "node1"
    assert backup.host_running(dep, "nova_compute", "nova-compute") == "node3"
    dep.variables["enable_mariadb"] = False
    with pytest.raises(DeployError, match="runs no MariaDB"):
        backup.mariadb_host(dep)


# ----------------------------------------------------------------------------- playbooks (pure)
def test_the_dump_play_dumps_fetches_and_always_removes_the_hosts_copy(tmp_path: Path) -> None:
    dest = tmp_path / "backups" / "b1" / "databases.sql.gz"
    (play,) = yaml.safe_load(backup.render_dump_playbook("node1", "/etc/kolla", "/cfg", "b1", "mariadb", "root",
                                                         ["keystone", "nova"], dest))
    assert play["hosts"] == ["node1"] and play["gather_facts"] is False
    (task,) = play["tasks"]
    dump, fetch = task["block"]
    assert dump["stackyard_host"] == {
        "op": "db_dump", "config_root": "/etc/kolla", "deployment": "/cfg", "container": "mariadb", "user": "root",
        "password": "{{ stackyard_db_password }}", "databases": ["keystone", "nova"], "backup_id": "b1"}
    remote = "/etc/kolla/.stackyard/backup-b1.sql.gz"
    assert fetch["ansible.builtin.fetch"] == {"src": remote, "dest": str(dest), "flat": True,
                                              "validate_checksum": True}
    (remove,) = task["always"]
    assert remove["ansible.builtin.file"] == {"path": remote, "state": "absent"}


def test_the_load_play_copies_loads_and_always_removes_the_hosts_copy(tmp_path: Path) -> None:
    src = tmp_path / "databases.sql.gz"
    (play,) = yaml.safe_load(backup.render_load_playbook("node2", "/etc/kolla", "/cfg", "b1", "x-mariadb", "root",
                                                         src))
    assert play["hosts"] == ["node2"]
    (task,) = play["tasks"]
    copy, load = task["block"]
    remote = "/etc/kolla/.stackyard/backup-b1.sql.gz"
    assert copy["ansible.builtin.copy"] == {"src": str(src), "dest": remote, "mode": "0600"}
    assert load["stackyard_host"]["op"] == "db_load" and load["stackyard_host"]["path"] == remote
    assert load["stackyard_host"]["container"] == "x-mariadb"
    assert "{{" in load["stackyard_host"]["password"]
    assert task["always"][0]["ansible.builtin.file"] == {"path": remote, "state": "absent"}


# ----------------------------------------------------------------------------- on a host (fake engine)
class FakeEngine:
    def __init__(self, present: str = "information_schema\nkeystone\nnova\n") -> None:
        self.present = present
        self.files: dict[str, bytes] = {}
        self.calls: list[tuple[list[str], dict[str, str] | None]] = []
        self.loaded = b""

    def container(self, name: str) -> Any:
        return SimpleNamespace(running=True, image_id="sha256:a") if name == "mariadb" else None

    def exec(self, name: str, command: list[str], user: str = "", environment: dict | None = None) -> tuple[int, str]:
        self.calls.append((command, environment))
        if command[-1] == "SHOW DATABASES":
            return 0, self.present
        if command[0] == "sh" and "mariadb-dump" in command[2]:
            self.files[agent_ops.DUMP_IN_CONTAINER] = ("-- " + " ".join(command[5:])).encode()
            return 0, ""
        if command[0] == "sh":
            self.loaded = self.files[agent_ops.DUMP_IN_CONTAINER]
            return 0, ""
        if command[:2] == ["rm", "-f"]:
            self.files.pop(command[2], None)
        return 0, ""

    def get_file(self, name: str, path: str) -> bytes:
        return self.files[path]

    def put_file(self, name: str, path: str, data: bytes, mode: int = 0o600) -> None:
        self.files[path] = data

    def image_id(self, ref: str) -> str | None:
        return {"r:new": "sha256:b", "r:old": "sha256:a"}.get(ref)


def test_db_dump_writes_a_private_gzip_of_the_databases_that_exist_and_db_load_reads_it_back(tmp_path: Path) -> None:
    engine = FakeEngine()
    out = agent_ops.db_dump(engine, "mariadb", "root", "s3cret", ["keystone", "glance", "nova"], str(tmp_path), "b1")
    path = Path(out["path"])
    assert path == tmp_path / ".stackyard" / "backup-b1.sql.gz"
    assert path.stat().st_mode & 0o777 == 0o600
    assert out["databases"] == ["keystone", "nova"] and gzip.decompress(path.read_bytes()) == b"-- keystone nova"
    assert out["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    # the password only in the exec's environment, never in a command
    assert all(env == {"MYSQL_PWD": "s3cret"} for cmd, env in engine.calls if cmd[0] != "rm")
    assert not any("s3cret" in " ".join(cmd) for cmd, _ in engine.calls)
    assert agent_ops.DUMP_IN_CONTAINER not in engine.files  # removed from the container
    assert agent_ops.db_load(engine, "mariadb", "root", "s3cret", str(path)) == path.stat().st_size
    assert engine.loaded == b"-- keystone nova" and agent_ops.DUMP_IN_CONTAINER not in engine.files
    with pytest.raises(DeployError, match="not running"):
        agent_ops.db_dump(engine, "other", "root", "pw", ["nova"], str(tmp_path), "b2")


def test_running_images_say_whether_a_container_runs_its_reference() -> None:
    plan = SimpleNamespace(containers=lambda: [SimpleNamespace(name="mariadb", image="r:new"),
                                               SimpleNamespace(name="gone", image="r:old")])
    images = agent_ops.running_images(FakeEngine(), plan)
    assert images == {"mariadb": {"ref": "r:new", "id": "sha256:a", "ref_id": "sha256:b"}}
    assert upgrade.image_problems({"node1": images}) == ["node1: mariadb does not run r:new"]
    assert upgrade.image_problems({"node1": {"m": {"ref": "r", "id": "x", "ref_id": "x"}}}) == []


# ----------------------------------------------------------------------------- through Ansible (faked)
def test_a_remote_backup_fetches_the_dump_and_checks_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dep = cloud(tmp_path)
    seen: dict[str, Any] = {}
    data = gzip.compress(b"-- dump", mtime=0)

    def fake_run(playbook: Path, inventories: list[Path], **kw: Any) -> Played:
        (play,) = yaml.safe_load(Path(playbook).read_text())
        seen.update(play=play, extra_vars=kw.get("extra_vars"), text=Path(playbook).read_text())
        dest = Path(play["tasks"][0]["block"][1]["ansible.builtin.fetch"]["dest"])
        dest.write_bytes(data)
        return Played(0, [{"host": "node1", "task": "dump the databases", "result": {
            "sha256": hashlib.sha256(data).hexdigest(), "databases": ["keystone", "nova"], "path": "/x"}}])

    monkeypatch.setattr("stackyard.ansible.runner.run_playbook", fake_run)
    taken = backup.create(dep, None, "test", lambda _: None, [tmp_path / "inv"])
    assert taken.databases == ["keystone", "nova"] and "databases.sql.gz" in taken.files
    dump = Path(taken.dir) / "databases.sql.gz"
    assert dump.read_bytes() == data and dump.stat().st_mode & 0o777 == 0o600
    assert seen["play"]["hosts"] == ["node1"]
    password = dep.passwords["database_password"]
    assert seen["extra_vars"] == {"stackyard_db_password": password} and password not in seen["text"]
    backup.get(dep.configdir, taken.id)  # the manifest matches

    def tampered(playbook: Path, inventories: list[Path], **kw: Any) -> Played:
        played = fake_run(playbook, inventories, **kw)
        played.tasks[0]["result"]["sha256"] = "0" * 64
        return played

    monkeypatch.setattr("stackyard.ansible.runner.run_playbook", tampered)
    with pytest.raises(DeployError, match="does not match the sha256 node1 reported"):
        backup.create(dep, None, "test", lambda _: None, [])
    assert len(backup.list_backups(dep.configdir)) == 1  # the failed one left nothing behind

    def failing(playbook: Path, inventories: list[Path], **kw: Any) -> Played:
        return Played(2, [{"host": "node1", "task": "dump the databases", "failed": True,
                           "result": {"msg": "container mariadb is not running"}}])

    monkeypatch.setattr("stackyard.ansible.runner.run_playbook", failing)
    with pytest.raises(DeployError, match="on node1 failed: host node1: dump the databases: container mariadb"):
        backup.create(dep, None, "test", lambda _: None, [])


def test_a_rollback_stops_the_control_plane_on_every_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dep = cloud(tmp_path)
    seen: dict[str, Any] = {}

    def fake_run(playbook: Path, inventories: list[Path], **kw: Any) -> Played:
        (seen["play"],) = yaml.safe_load(Path(playbook).read_text())
        return Played(0, [{"host": h, "task": "stop", "result": {"detail": "stopped x"}} for h in NODES])

    monkeypatch.setattr("stackyard.ansible.runner.run_playbook", fake_run)
    said = upgrade.stop_control_plane(dep, None, [])
    task = seen["play"]["tasks"][0]["stackyard_host"]
    assert seen["play"]["hosts"] == ["node1", "node2", "node3"] and task["op"] == "stop"
    assert {"keystone", "nova_api", "nova_compute", "neutron_server"} <= set(task["names"])
    assert not set(task["names"]) & {"nova_libvirt", "openvswitch_vswitchd", "mariadb", "rabbitmq", "memcached"}
    assert len(task["names"]) == len(set(task["names"])) and "node3 stopped x" in said


def test_post_checks_name_the_host_at_fault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dep = cloud(tmp_path)

    def fake_run(playbook: Path, inventories: list[Path], **kw: Any) -> Played:
        ok = {"keystone": {"ref": "r:new", "id": "sha256:b", "ref_id": "sha256:b"}}
        return Played(2, [
            {"host": "node1", "task": "check", "result": {"images": ok}},
            {"host": "node2", "task": "check", "result": {"images": {
                "keystone": {"ref": "r:new", "id": "sha256:a", "ref_id": "sha256:b"}}}},
            {"host": "node3", "task": "check", "failed": True, "result": {"msg": "nova_compute: unhealthy (running)",
                                                                          "images": {}}}])

    monkeypatch.setattr("stackyard.ansible.runner.run_playbook", fake_run)
    monkeypatch.setattr(upgrade, "api_versions", lambda dep: {})
    with pytest.raises(DeployError) as exc:
        upgrade.postchecks(dep, None, [])
    assert "node3: nova_compute: unhealthy" in str(exc.value) and "node2: keystone does not run r:new" in str(exc.value)


def test_multi_host_state_records_images_by_reference_and_reported_ids(tmp_path: Path) -> None:
    dep = cloud(tmp_path)
    deployed = state.from_plans(dep, {"node2": {"keystone": {"ref": "x", "id": "sha256:k"}}})
    assert deployed.images["keystone"] == {"ref": dep.plans["node1"].spec_of("keystone").image, "id": "sha256:k"}
    assert deployed.images["nova_compute"]["id"] == "" and deployed.images["nova_compute"]["ref"].endswith(
        "nova-compute:" + str(dep.variables["openstack_tag"]))
    state.record(dep, None)
    assert state.load(dep.configdir).release == str(dep.variables["openstack_release"])
    assert state.config_path(dep.configdir).is_file()


def test_a_multi_host_dry_run_lists_the_plays_and_which_go_host_by_host(tmp_path: Path) -> None:
    dep = cloud(tmp_path)
    lines = upgrade.describe_waves(upgrade.upgrade_plans(dep.plans))
    keystone = next(ln for ln in lines if ln.startswith("keystone: keystone"))
    assert keystone.endswith("on node1, node2 (one host at a time)")
    assert any("upgrade_keystone_expand" in ln and ln.endswith("on node1") for ln in lines)
