"""Cinder's plan (no engine): RBD backend and Ceph backup in kolla-ansible's layout and option
names, what is refused, the catalog, the upgrade."""

from __future__ import annotations

import json

import pytest
import yaml

from stackyard.agent.model import StepKind
from stackyard.deploy import services
from stackyard.deploy.merge import parse_ini
from stackyard.deploy.services import cinder
from stackyard.deploy.services.base import PasswordKind
from stackyard.errors import ConfigError


def conf(files, path):
    return parse_ini(files[path].content)


def config_json(files, service):
    return json.loads(files[f"{service}/config.json"].content)


def test_four_services_in_their_groups_with_the_database_bootstrap_and_catalog(tmp_path, ceph):
    _, plan = ceph.plan(ceph.make(tmp_path))
    steps = [(str(s.kind), s.name, s.group) for s in ceph.phase(plan, "cinder").steps]
    assert steps[:6] == [("database", "cinder", "cinder-api"), ("job", "bootstrap_cinder", "cinder-api"),
                         ("container", "cinder_api", "cinder-api"),
                         ("container", "cinder_scheduler", "cinder-scheduler"),
                         ("container", "cinder_volume", "cinder-volume"),
                         ("container", "cinder_backup", "cinder-backup")]
    assert [s[1] for s in steps if s[0] == "wait"] == ["cinder_api", "cinder_scheduler", "cinder_volume",
                                                       "cinder_backup"]
    regs = {s.name: s.params for s in ceph.phase(plan, "cinder").steps if s.kind == StepKind.KEYSTONE_REGISTER}
    assert regs["cinder"]["type"] == "block-storage"
    assert regs["cinder"]["endpoints"]["internal"] == "http://127.0.0.1:8776/v3"
    assert regs["cinder"]["user"] == "cinder" and regs["cinder"]["roles"] == ["admin", "service"]
    assert regs["cinderv3"]["type"] == "volumev3"
    assert regs["cinderv3"]["endpoints"]["public"] == "http://127.0.0.1:8776/v3/%(tenant_id)s"
    c = ceph.containers(plan)
    assert c["cinder_api"].healthcheck.test[-1] == "healthcheck_curl http://127.0.0.1:8776/healthcheck"
    for name in ("cinder_scheduler", "cinder_volume", "cinder_backup"):
        proc = name.replace("_", "-")
        assert c[name].healthcheck.test[-1] == f"healthcheck_port {proc} 5672", name
    assert "cinder:/var/lib/cinder/" in c["cinder_volume"].volumes
    assert not c["cinder_api"].cap_add and not c["cinder_scheduler"].cap_add
    # privsep (image format checks) needs these in the bounding set; never SYS_RESOURCE or ALL
    for name in ("cinder_volume", "cinder_backup"):
        assert set(c[name].cap_add) == {"NET_ADMIN", "SYS_ADMIN", "DAC_READ_SEARCH", "SYS_PTRACE"}, name


def test_kolla_ansible_groups_defaults_and_password_kinds():
    svc = services.get("cinder")
    assert svc.enabled is False
    assert {g.name: g.parents for g in svc.groups} == {
        "cinder": ("control",), "cinder-api": ("cinder",), "cinder-scheduler": ("cinder",),
        "cinder-volume": ("storage",), "cinder-backup": ("storage",)}
    opts = {o.name: o.default for o in svc.options}
    assert opts["enable_cinder_backup"] is True and opts["cinder_backend_ceph"] is False
    assert opts["cinder_backup_driver"] == "ceph" and opts["cinder_api_port"] == 8776
    assert (opts["ceph_cinder_user"], opts["ceph_cinder_pool_name"]) == ("cinder", "volumes")
    assert (opts["ceph_cinder_backup_user"], opts["ceph_cinder_backup_pool_name"]) == ("cinder-backup", "backups")
    kinds = {p.key: p.kind for p in svc.passwords}
    assert kinds == {"cinder_database_password": PasswordKind.PLAIN, "cinder_keystone_password": PasswordKind.PLAIN,
                     "cinder_rbd_secret_uuid": PasswordKind.UUID}
    assert [u.uid for u in svc.users] == [42407]
    assert [(f.name, f.port, f.check_path) for f in svc.frontends] == [("cinder_api", "cinder_api_port",
                                                                       "/healthcheck")]


def test_cinder_conf_has_the_rbd_backend_and_only_backup_has_the_ceph_backup_driver(tmp_path, ceph):
    dep, plan = ceph.plan(ceph.make(tmp_path))
    f = ceph.files(plan)
    uuid = dep.passwords["cinder_rbd_secret_uuid"]
    for svc in ("cinder-api", "cinder-scheduler", "cinder-volume", "cinder-backup"):
        c = conf(f, f"{svc}/cinder.conf")
        assert c["DEFAULT"]["enabled_backends"] == ["rbd-1"], svc
        assert c["rbd-1"] == {
            "volume_driver": ["cinder.volume.drivers.rbd.RBDDriver"], "volume_backend_name": ["rbd-1"],
            "rbd_pool": ["volumes"], "rbd_ceph_conf": ["/etc/ceph/ceph.conf"], "rbd_cluster_name": ["ceph"],
            "rbd_user": ["cinder"], "rbd_secret_uuid": [uuid], "rados_connect_timeout": ["5"],
            "report_discard_supported": ["true"], "backend_host": ["rbd:volumes"]}, svc
        assert c["DEFAULT"]["transport_url"][0].endswith("/cinder")
        assert c["database"]["connection"][0].endswith("@127.0.0.1:3306/cinder")
        assert c["keystone_authtoken"]["username"] == ["cinder"]
        assert c["nova"]["username"] == ["nova"] and c["nova"]["interface"] == ["internal"]
        assert c["DEFAULT"]["glance_api_servers"] == ["http://127.0.0.1:9292"]
        has_backup = "backup_driver" in c["DEFAULT"]
        assert has_backup == (svc == "cinder-backup"), svc
    backup = conf(f, "cinder-backup/cinder.conf")["DEFAULT"]
    assert backup["backup_driver"] == ["cinder.backup.drivers.ceph.CephBackupDriver"]
    assert (backup["backup_ceph_user"], backup["backup_ceph_pool"]) == (["cinder-backup"], ["backups"])
    assert backup["backup_ceph_conf"] == ["/etc/ceph/ceph.conf"]
    uwsgi = parse_ini(f["cinder-api/cinder-api-uwsgi.ini"].content)["uwsgi"]
    assert uwsgi["wsgi-file"] == ["/usr/bin/cinder-api-wsgi"] and uwsgi["http-socket"] == ["127.0.0.1:8776"]
    assert config_json(f, "cinder-api")["command"] == "uwsgi --ini /etc/cinder/cinder-api-uwsgi.ini"


def test_ceph_files_come_from_kolla_ansibles_places_into_etc_ceph(tmp_path, ceph):
    dep, plan = ceph.plan(ceph.make(tmp_path))
    f = ceph.files(plan)
    dests = {svc: {e["dest"]: e for e in config_json(f, svc)["config_files"]}
             for svc in ("cinder-api", "cinder-scheduler", "cinder-volume", "cinder-backup")}
    assert not any(d.startswith("/etc/ceph") for d in dests["cinder-api"])
    assert not any(d.startswith("/etc/ceph") for d in dests["cinder-scheduler"])
    assert {d for d in dests["cinder-volume"] if d.startswith("/etc/ceph/")} == {
        "/etc/ceph/ceph.conf", "/etc/ceph/ceph.client.cinder.keyring"}
    assert {d for d in dests["cinder-backup"] if d.startswith("/etc/ceph/")} == {
        "/etc/ceph/ceph.conf", "/etc/ceph/ceph.client.cinder.keyring", "/etc/ceph/ceph.client.cinder-backup.keyring"}
    for svc in ("cinder-volume", "cinder-backup"):
        for dest, entry in dests[svc].items():
            if dest.startswith("/etc/ceph/"):
                assert (entry["owner"], entry["perm"]) == ("cinder", "0600"), dest
        # keyrings are copied as they are, and marked secret (never printed)
        ring = f[f"{svc}/ceph/ceph.client.cinder.keyring"]
        assert ring.content == ceph.keyring("cinder") and ring.secret and ring.mode == 0o600
        # ceph.conf without the tabs of generate-minimal-conf
        assert parse_ini(f[f"{svc}/ceph/ceph.conf"].content)["global"]["mon_host"] == ["127.0.0.1:6789"]
    assert ceph.KEYS["cinder"] not in json.dumps(plan.to_dict())
    assert not [w for w in dep.warnings if "not read by any enabled service" in w], dep.warnings


def test_a_service_ceph_conf_is_merged_over_cinders_and_is_a_template(tmp_path, ceph):
    configdir = ceph.make(tmp_path, files={
        "cinder/cinder-backup/ceph.conf": "[client]\nrbd_cache = {{ openstack_region_name == 'RegionOne' }}\n",
    })
    _, plan = ceph.plan(configdir)
    f = ceph.files(plan)
    backup = parse_ini(f["cinder-backup/ceph/ceph.conf"].content)
    assert backup["global"]["fsid"] and backup["client"]["rbd_cache"] == ["True"]
    assert "client" not in parse_ini(f["cinder-volume/ceph/ceph.conf"].content)


def test_enable_cinder_without_a_backend_is_refused(tmp_path, ceph):
    configdir = ceph.make(tmp_path, {"cinder_backend_ceph": False})
    with pytest.raises(ConfigError, match=r"no volume backend is enabled: set cinder_backend_ceph"):
        ceph.plan(configdir)


@pytest.mark.parametrize("key", ["enable_cinder_backend_lvm", "enable_cinder_backend_nfs",
                                 "enable_cinder_backend_iscsi", "cinder_backend_huawei"])
def test_backends_stackyard_does_not_implement_are_refused_by_name(tmp_path, ceph, key):
    with pytest.raises(ConfigError, match=rf"'{key}' is True, but .*not implemented.*cinder_backend_ceph"):
        ceph.plan(ceph.make(tmp_path, {key: True}))


def test_backup_drivers_other_than_ceph_are_refused(tmp_path, ceph):
    with pytest.raises(ConfigError, match=r"'cinder_backup_driver' is 'nfs', but only the Ceph backup driver"):
        ceph.plan(ceph.make(tmp_path, {"cinder_backup_driver": "nfs"}))


@pytest.mark.parametrize("missing", ["cinder/ceph.conf", "cinder/cinder-volume/ceph.client.cinder.keyring",
                                     "cinder/cinder-backup/ceph.client.cinder-backup.keyring"])
def test_a_missing_ceph_file_is_an_error_naming_the_expected_path(tmp_path, ceph, missing):
    configdir = ceph.make(tmp_path, files={missing: None})
    with pytest.raises(ConfigError, match="cinder_backend_ceph is true") as err:
        ceph.plan(configdir)
    assert f"{configdir}/config/{missing} is missing" in str(err.value)


def test_a_keyring_of_another_user_is_refused(tmp_path, ceph):
    configdir = ceph.make(tmp_path, files={"cinder/cinder-volume/ceph.client.cinder.keyring": ceph.keyring("glance")})
    with pytest.raises(ConfigError, match=r"ceph.client.cinder.keyring: no \[client.cinder\] section "
                                          r"\(found: client.glance\)"):
        ceph.plan(configdir)


def test_backup_can_be_left_out(tmp_path, ceph):
    configdir = ceph.make(tmp_path, {"enable_cinder_backup": False},
                          files={"cinder/cinder-backup/ceph.client.cinder-backup.keyring": None,
                                 "cinder/cinder-backup/ceph.client.cinder.keyring": None})
    _, plan = ceph.plan(configdir)
    assert "cinder_backup" not in ceph.containers(plan)
    assert not any(p.startswith("cinder-backup/") for p in ceph.files(plan))


def test_user_pool_and_cluster_names_follow_the_kolla_options(tmp_path, ceph):
    configdir = ceph.make(tmp_path, {"ceph_cinder_user": "vol", "ceph_cinder_pool_name": "vols",
                                     "ceph_cinder_backup_user": "bak", "ceph_cinder_backup_pool_name": "baks",
                                     "ceph_cluster": "ext", "nova_backend_ceph": False, "glance_backend_ceph": False},
                          files={"cinder/ext.conf": ceph.CEPH_CONF,
                                 "cinder/cinder-volume/ext.client.vol.keyring": ceph.keyring("vol", "AQBvol=="),
                                 "cinder/cinder-backup/ext.client.vol.keyring": ceph.keyring("vol", "AQBvol=="),
                                 "cinder/cinder-backup/ext.client.bak.keyring": ceph.keyring("bak", "AQBbak=="),
                                 "nova/ext.conf": ceph.CEPH_CONF,
                                 "nova/ext.client.vol.keyring": ceph.keyring("vol", "AQBvol==")})
    _, plan = ceph.plan(configdir)
    f = ceph.files(plan)
    rbd = conf(f, "cinder-volume/cinder.conf")["rbd-1"]
    assert (rbd["rbd_user"], rbd["rbd_pool"], rbd["rbd_ceph_conf"]) == (["vol"], ["vols"], ["/etc/ceph/ext.conf"])
    backup = conf(f, "cinder-backup/cinder.conf")["DEFAULT"]
    assert (backup["backup_ceph_user"], backup["backup_ceph_pool"]) == (["bak"], ["baks"])
    assert {e["dest"] for e in config_json(f, "cinder-backup")["config_files"]} >= {
        "/etc/ceph/ext.conf", "/etc/ceph/ext.client.vol.keyring", "/etc/ceph/ext.client.bak.keyring"}


def test_haproxy_serves_the_api_on_the_vip(tmp_path, ceph):
    _, plan = ceph.plan(ceph.make(tmp_path, {"enable_loadbalancer": True}))
    cfg = ceph.files(plan)["haproxy/haproxy.cfg"].content
    block = cfg.split("listen cinder_api", 1)[1].split("\nlisten ", 1)[0]
    assert ":8776" in block and "/healthcheck" in block


def test_database_and_rabbitmq_user(tmp_path, ceph):
    _, plan = ceph.plan(ceph.make(tmp_path))
    defs = json.loads(ceph.files(plan)["rabbitmq/definitions.json"].content)
    assert {"name": "cinder"} in defs["vhosts"]
    db = [s for s in ceph.phase(plan, "cinder").steps if s.kind == StepKind.DATABASE]
    assert [(s.params["database"], s.params["user"], s.params["password_key"]) for s in db] == [
        ("cinder", "cinder", "cinder_database_password")]


def test_upgrade_syncs_first_and_migrates_online_last():
    up = services.get("cinder").upgrade
    assert [(j.step, j.when) for j in up.jobs] == [("db", "before"), ("online", "after")]
    assert up.order[-1] == "cinder_api" and up.replaces == ("bootstrap_cinder",)


def test_cinder_is_off_by_default_and_adds_nothing(tmp_path, ceph):
    _, plan = ceph.plan(ceph.make(tmp_path, rbd=False))
    assert "cinder" not in [p.name for p in plan.phases]
    assert "cinder" not in conf(ceph.files(plan), "nova-api/nova.conf")


def test_enable_cinder_is_in_the_all_in_one_inventory_groups():
    inventory = services.all_in_one_inventory()
    assert "[cinder-volume:children]\nstorage" in inventory
    assert "[cinder-api:children]\ncinder" in inventory


def test_check_backends_names_the_key():
    with pytest.raises(ConfigError, match="cinder_backend_ceph"):
        cinder.check_backends({"cinder_backend_ceph": False})
    cinder.check_backends({"cinder_backend_ceph": True})


def test_globals_yml_written_by_an_operator_loads_with_kolla_spellings(tmp_path, ceph):
    """YAML "yes"/"no" strings, as kolla-ansible's globals.yml writes them."""
    configdir = ceph.make(tmp_path, rbd=False)
    text = yaml.safe_load((configdir / "globals.yml").read_text())
    text.update({"enable_cinder": "yes", "cinder_backend_ceph": "yes", "enable_cinder_backup": "no"})
    (configdir / "globals.yml").write_text(yaml.safe_dump(text))
    dep, plan = ceph.plan(configdir)
    assert dep.variables["enable_cinder"] is True and "cinder_backup" not in ceph.containers(plan)


def test_the_deploy_waits_for_the_volume_service_of_the_rbd_backend(tmp_path, ceph):
    _, plan = ceph.plan(ceph.make(tmp_path))
    steps = ceph.phase(plan, "cinder").steps
    wait = steps[-1]
    assert wait.kind == StepKind.VOLUME_SERVICES_WAIT and wait.group == "cinder-api"
    assert wait.params["services"] == {"cinder-volume": "rbd:volumes@rbd-1", "cinder-backup": ""}
    # after the containers and the registration (the check talks to Cinder's API)
    kinds = [s.kind for s in steps]
    assert kinds.index(StepKind.KEYSTONE_REGISTER) < kinds.index(StepKind.VOLUME_SERVICES_WAIT)


class FakeServices:
    """openstacksdk's block_storage proxy, answering a scripted service list per call."""

    def __init__(self, answers):
        self.answers = list(answers)

    def services(self):
        from types import SimpleNamespace
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return [SimpleNamespace(binary=b, host=h, state=s) for b, h, s in answer]


def volume_wait_applier(answers, monkeypatch):
    from types import SimpleNamespace

    from stackyard.agent.model import HostPlan
    from stackyard.deploy import apply as apply_mod

    monkeypatch.setattr(apply_mod.time, "sleep", lambda s: None)
    applier = apply_mod.HostApplier(None, HostPlan(host="localhost", config_root="/x"), {}, {}, lambda *a: None)
    conn = SimpleNamespace(block_storage=FakeServices(answers))
    applier._openstack = lambda: conn  # type: ignore[method-assign]
    return applier


def test_volume_services_wait_passes_once_the_backend_reports_up(monkeypatch):
    from stackyard.agent.model import Step

    step = Step(StepKind.VOLUME_SERVICES_WAIT, "cinder",
                params={"services": {"cinder-volume": "rbd:volumes@rbd-1", "cinder-backup": ""}, "timeout": 60})
    applier = volume_wait_applier([
        [("cinder-scheduler", "ctl", "up")],
        [("cinder-volume", "rbd:volumes@rbd-1", "down"), ("cinder-backup", "ctl", "up")],
        [("cinder-volume", "rbd:volumes@rbd-1", "up"), ("cinder-backup", "ctl", "up")],
    ], monkeypatch)
    status, detail = applier.do_volume_services_wait(step)
    assert detail == "cinder-backup, cinder-volume up"


def test_volume_services_wait_names_what_stays_down(monkeypatch):
    from stackyard.agent.model import Step
    from stackyard.errors import DeployError

    step = Step(StepKind.VOLUME_SERVICES_WAIT, "cinder",
                params={"services": {"cinder-volume": "rbd:volumes@rbd-1"}, "timeout": 0})
    applier = volume_wait_applier([[("cinder-volume", "otherhost@rbd-1", "up")]], monkeypatch)
    with pytest.raises(DeployError, match=r"cinder services not up after 0s \(down or missing: cinder-volume@rbd-1\)"):
        applier.do_volume_services_wait(step)


def test_up_ceph_aio_globals_turn_on_cinder_and_the_three_rbd_backends(tmp_path, ceph):
    from stackyard.commands.up import CLOUD_GLOBALS, GLOBALS_TEMPLATE, backends_off, ceph_globals

    configdir = ceph.make(tmp_path, rbd=False)
    (configdir / "globals.yml").write_text(GLOBALS_TEMPLATE + CLOUD_GLOBALS.format(virt_type="qemu") + ceph_globals())
    dep, plan = ceph.plan(configdir)
    assert backends_off(dep.variables) == []
    assert {"cinder", "glance", "nova"} <= {p.name for p in plan.phases}
    assert conf(ceph.files(plan), "nova-compute/nova.conf")["libvirt"]["images_type"] == ["rbd"]
    (configdir / "globals.yml").write_text(GLOBALS_TEMPLATE + CLOUD_GLOBALS.format(virt_type="qemu"))
    dep, _ = ceph.plan(configdir)
    assert backends_off(dep.variables) == ["enable_cinder", "cinder_backend_ceph", "glance_backend_ceph",
                                           "nova_backend_ceph"]


@pytest.mark.parametrize("key,value", [("cinder_ceph_backends", [{"name": "rbd-2", "cluster": "other"}]),
                                       ("glance_ceph_backends", [{"name": "rbd", "cluster": "other"}]),
                                       ("cinder_backup_ceph_backend", {"cluster": "other"})])
def test_kollas_several_cluster_lists_are_refused(tmp_path, ceph, key, value):
    with pytest.raises(ConfigError, match=rf"'{key}' is .* not implemented"):
        ceph.plan(ceph.make(tmp_path, {key: value}))
