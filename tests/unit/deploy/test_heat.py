"""Heat's plan (no engine): heat.conf, the Keystone domain, roles and catalog entries, the
HAProxy frontends, the enable default that follows enable_openstack_core, the upgrade
order, its 32-character encryption key, and the Keystone steps' executor on a fake API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from stackyard.agent.hostapply import CHANGED, UNCHANGED
from stackyard.agent.model import HostPlan, Step, StepKind
from stackyard.deploy import multihost
from stackyard.deploy import plan as plan_mod
from stackyard.deploy.apply import HostApplier
from stackyard.deploy.merge import parse_ini
from stackyard.deploy.passwords import genpwd, load_passwords
from stackyard.deploy.upgrade import upgrade_plan
from stackyard.errors import ConfigError

VIP = "10.250.0.10"
BASE = {"kolla_internal_vip_address": "127.0.0.1", "network_interface": "lo",
        "kolla_external_fqdn": "cloud.example"}


def write_config(tmp_path: Path, globals_: dict[str, Any], overrides: dict[str, str] | None = None) -> Path:
    configdir = tmp_path / "etc-kolla"
    configdir.mkdir(parents=True)
    genpwd(configdir / "passwords.yml")
    (configdir / "globals.yml").write_text(yaml.safe_dump(globals_))
    for rel, text in (overrides or {}).items():
        path = configdir / "config" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return configdir


def deploy(tmp_path: Path, extra: dict[str, Any] | None = None, overrides: dict[str, str] | None = None,
           inventory: Path | None = None) -> plan_mod.Deployment:
    configdir = write_config(tmp_path, {**BASE, **(extra or {})}, overrides)
    dep = plan_mod.load(configdir, [inventory] if inventory else None)
    plan_mod.make_plans(dep)
    return dep


def conf(plan: HostPlan, svc: str) -> dict[str, dict[str, list[str]]]:
    return parse_ini(next(f.content for f in plan.files if f.path == f"{plan.config_root}/{svc}/heat.conf"))


def heat_steps(plan: HostPlan) -> list[Step]:
    return next(p.steps for p in plan.phases if p.name == "heat")


# ----------------------------------------------------------------- enabled by default, as kolla-ansible
def test_heat_follows_enable_openstack_core(tmp_path: Path) -> None:
    assert "heat" in deploy(tmp_path / "default").enabled
    assert "heat" not in deploy(tmp_path / "off", {"enable_openstack_core": False}).enabled
    # one service back on by its own flag
    assert "heat" in deploy(tmp_path / "one", {"enable_openstack_core": False, "enable_heat": True}).enabled
    assert "heat" not in deploy(tmp_path / "flag", {"enable_heat": False}).enabled


def test_heat_without_rabbitmq_is_refused_naming_both(tmp_path: Path) -> None:
    configdir = write_config(tmp_path, {**BASE, "enable_rabbitmq": False})
    with pytest.raises(ConfigError) as err:
        plan_mod.load(configdir)
    assert "'heat' needs" in str(err.value) and "enable_rabbitmq" in str(err.value)


# ----------------------------------------------------------------- heat.conf
def test_heat_conf_has_the_stack_domain_trusts_and_internal_clients(tmp_path: Path) -> None:
    dep = deploy(tmp_path)
    plan, pw = dep.plans["localhost"], dep.passwords
    for svc in ("heat-api", "heat-api-cfn", "heat-engine"):
        c = conf(plan, svc)
        d = c["DEFAULT"]
        assert d["stack_user_domain_name"] == ["heat_user_domain"]
        assert d["stack_domain_admin"] == ["heat_domain_admin"]
        assert d["stack_domain_admin_password"] == [pw["heat_domain_admin_password"]]
        assert d["heat_stack_user_role"] == ["heat_stack_user"]
        assert d["deferred_auth_method"] == ["trusts"]
        assert "trusts_delegated_roles" not in d  # Heat's default (every role), as kolla-ansible leaves it
        assert d["auth_encryption_key"] == [pw["heat_auth_encryption_key"]]
        assert len(d["auth_encryption_key"][0]) == 32
        assert d["server_keystone_endpoint_type"] == ["public"]
        # servers of a stack signal the CloudFormation API on the public address
        assert d["heat_metadata_server_url"] == ["http://cloud.example:8000"]
        assert d["heat_waitcondition_server_url"] == ["http://cloud.example:8000/v1/waitcondition"]
        assert d["transport_url"][0].endswith("@127.0.0.1:5672/heat")
        assert c["database"]["connection"][0].endswith("@127.0.0.1:3306/heat")
        assert c["keystone_authtoken"]["username"] == ["heat"]
        assert c["keystone_authtoken"]["service_type"] == ["orchestration"]
        assert c["trustee"] == {"auth_url": ["http://127.0.0.1:5000"], "auth_type": ["password"],
                                "user_domain_id": ["default"], "username": ["heat"],
                                "password": [pw["heat_keystone_password"]]}
        assert c["clients"]["endpoint_type"] == ["internalURL"]
        assert c["clients_keystone"]["auth_uri"] == ["http://127.0.0.1:5000"]
        assert c["ec2authtoken"]["auth_uri"] == ["http://127.0.0.1:5000/v3"]
    # the worker count is the engine's alone: changing it restarts nothing else
    assert conf(plan, "heat-engine")["DEFAULT"]["num_engine_workers"] == ["2"]
    assert "num_engine_workers" not in conf(plan, "heat-api")["DEFAULT"]


def test_apis_run_under_uwsgi_and_the_engine_alone(tmp_path: Path) -> None:
    dep = deploy(tmp_path, {"heat_api_workers": 3})
    plan = dep.plans["localhost"]
    files = {f.path.removeprefix(plan.config_root + "/"): f for f in plan.files}
    for svc, port, wsgi in (("heat-api", 8004, "heat-wsgi-api"), ("heat-api-cfn", 8000, "heat-wsgi-api-cfn")):
        uwsgi = parse_ini(files[f"{svc}/{svc}-uwsgi.ini"].content)["uwsgi"]
        assert uwsgi["http-socket"] == [f"127.0.0.1:{port}"] and uwsgi["wsgi-file"] == [f"/usr/bin/{wsgi}"]
        cj = json.loads(files[f"{svc}/config.json"].content)
        assert cj["command"] == f"uwsgi --ini /etc/heat/{svc}-uwsgi.ini"
        assert {f["dest"] for f in cj["config_files"]} == {"/etc/heat/heat.conf", f"/etc/heat/{svc}-uwsgi.ini"}
    assert parse_ini(files["heat-api/heat-api-uwsgi.ini"].content)["uwsgi"]["processes"] == ["3"]
    assert json.loads(files["heat-engine/config.json"].content)["command"] == "heat-engine"
    # the files kolla_set_configs installs hold secrets: 0600, owned by heat (Kolla's UID)
    for name, f in files.items():
        if name.startswith("heat-") and not name.endswith("config.json"):
            assert (f.mode, f.uid, f.gid) == (0o600, 42418, 42418), name


def test_overrides_follow_kolla_ansible_paths(tmp_path: Path) -> None:
    dep = deploy(tmp_path, overrides={"heat.conf": "[DEFAULT]\nmax_stacks_per_tenant = 7\n",
                                      "heat/heat-engine.conf": "[DEFAULT]\nnum_engine_workers = 5\n"})
    plan = dep.plans["localhost"]
    assert all(conf(plan, s)["DEFAULT"]["max_stacks_per_tenant"] == ["7"]
               for s in ("heat-api", "heat-api-cfn", "heat-engine"))
    assert conf(plan, "heat-engine")["DEFAULT"]["num_engine_workers"] == ["5"]
    assert "num_engine_workers" not in conf(plan, "heat-api")["DEFAULT"]
    assert not [w for w in dep.warnings if "heat" in w], dep.warnings


def test_rabbitmq_has_the_heat_user_and_vhost(tmp_path: Path) -> None:
    plan = deploy(tmp_path).plans["localhost"]
    defs = json.loads(next(f.content for f in plan.files if f.path.endswith("rabbitmq/definitions.json")))
    assert {"name": "heat"} in defs["vhosts"]
    assert any(u["name"] == "heat" for u in defs["users"])


# ----------------------------------------------------------------- steps: Keystone, containers, health
def test_keystone_domain_roles_and_catalog_come_before_the_containers(tmp_path: Path) -> None:
    steps = heat_steps(deploy(tmp_path).plans["localhost"])
    keys = [s.key for s in steps]
    assert keys[:6] == ["database:heat", "keystone_domain:heat_user_domain", "keystone_role:heat_stack_owner",
                        "keystone_role:heat_stack_user", "keystone_register:heat", "keystone_register:heat-cfn"]
    assert keys.index("keystone_register:heat-cfn") < keys.index("job:bootstrap_heat") \
        < keys.index("container:heat_engine") < keys.index("container:heat_api")
    by_key = {s.key: s for s in steps}
    assert by_key["keystone_domain:heat_user_domain"].params == {
        "description": "Owns the users and projects Heat creates for stacks", "user": "heat_domain_admin",
        "password_key": "heat_domain_admin_password"}
    assert by_key["keystone_role:heat_stack_owner"].params == {"grant_admin": True}
    assert by_key["keystone_role:heat_stack_user"].params == {"grant_admin": False}
    # API steps: on the deploy host
    assert all(by_key[k].where == "deploy" for k in keys[:6])
    assert by_key["job:bootstrap_heat"].container.environment["KOLLA_BOOTSTRAP"] == "1"


def test_endpoints_are_kolla_ansibles(tmp_path: Path) -> None:
    steps = {s.key: s for s in heat_steps(deploy(tmp_path).plans["localhost"])}
    orch = steps["keystone_register:heat"].params
    assert (orch["type"], orch["user"], orch["roles"]) == ("orchestration", "heat", ["admin"])
    assert orch["endpoints"] == {"public": "http://cloud.example:8004/v1/%(tenant_id)s",
                                 "internal": "http://127.0.0.1:8004/v1/%(tenant_id)s",
                                 "admin": "http://127.0.0.1:8004/v1/%(tenant_id)s"}
    cfn = steps["keystone_register:heat-cfn"].params
    assert cfn["type"] == "cloudformation" and "user" not in cfn
    assert cfn["endpoints"]["public"] == "http://cloud.example:8000/v1"
    assert cfn["endpoints"]["internal"] == "http://127.0.0.1:8000/v1"


def test_healthchecks_and_the_engine_readiness_wait(tmp_path: Path) -> None:
    plan = deploy(tmp_path).plans["localhost"]
    steps = {s.key: s for s in heat_steps(plan)}
    api, cfn = steps["container:heat_api"].container, steps["container:heat_api_cfn"].container
    assert api.healthcheck.test == ["CMD-SHELL", "healthcheck_curl http://127.0.0.1:8004/healthcheck"]
    assert cfn.healthcheck.test == ["CMD-SHELL", "healthcheck_curl http://127.0.0.1:8000/healthcheck"]
    assert steps["container:heat_engine"].container.healthcheck is None  # RPC healthchecks: issue 18
    wait = steps["wait:heat_engine"]
    assert wait.params["ready"] == ["healthcheck_port", "heat-engine", "5672"] and wait.deferred
    assert not steps["wait:heat_api"].deferred
    assert {c.image for c in plan.containers() if c.service.startswith("heat")} == {
        "stackyard/heat-api:2025.1", "stackyard/heat-api-cfn:2025.1", "stackyard/heat-engine:2025.1"}


def test_prechecks_know_the_api_ports(tmp_path: Path) -> None:
    from stackyard.deploy import ops

    ports = ops.host_checks(deploy(tmp_path), "localhost").ports
    assert ports[8004] == "heat_api" and ports[8000] == "heat_api_cfn"


# ----------------------------------------------------------------- several hosts
def inventory(tmp_path: Path) -> Path:
    from stackyard.deploy.inventory import ALL_IN_ONE

    nodes = {"node1": "10.250.0.11", "node2": "10.250.0.12"}
    lines = []
    for role in ("control", "network", "compute", "storage", "monitoring"):
        lines += [f"[{role}]"] + [f"{h} ansible_host={a} api_interface_address={a}" for h, a in nodes.items()] + [""]
    lines += ["[deployment]", "localhost ansible_connection=local", ""]
    lines.append(ALL_IN_ONE[ALL_IN_ONE.index("[baremetal:children]"):])
    path = tmp_path / "multinode"
    path.write_text("\n".join(lines))
    return path


def test_haproxy_fronts_both_apis_and_keystone_steps_run_once_on_the_deploy_host(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    dep = deploy(tmp_path, {"kolla_internal_vip_address": VIP, "network_interface": "eth0",
                            "enable_loadbalancer": True}, inventory=inv)
    cfg = next(f.content for f in dep.plans["node1"].files if f.path.endswith("haproxy/haproxy.cfg"))
    for name, port in (("heat_api", 8004), ("heat_api_cfn", 8000)):
        section = cfg[cfg.index(f"listen {name}\n"):].split("\n\n")[0]
        assert f"bind {VIP}:{port} transparent" in section
        assert "option httpchk GET /healthcheck" in section
        assert f"server node1 10.250.0.11:{port} check" in section
        assert f"server node2 10.250.0.12:{port} check" in section
    # the services bind their own host's address
    assert conf(dep.plans["node2"], "heat-engine")["database"]["connection"][0].endswith(f"@{VIP}:3306/heat")
    waves = multihost.compute_waves(dep.plans)
    api = [w.select[w.hosts[0]]["heat"] for w in waves if w.kind == "api" and "heat" in w.select[w.hosts[0]]]
    assert api[0][:4] == ["database:heat", "keystone_domain:heat_user_domain", "keystone_role:heat_stack_owner",
                          "keystone_role:heat_stack_user"]
    once = [w for w in waves if w.kind == "target" and "job:bootstrap_heat" in
            w.select.get(w.hosts[0], {}).get("heat", [])]
    assert len(once) == 1 and once[0].hosts == ["node1"]


# ----------------------------------------------------------------- upgrade
def test_upgrade_syncs_the_database_then_the_engines_then_the_apis(tmp_path: Path) -> None:
    dep = deploy(tmp_path, {"openstack_release": "2026.1", "stackyard_name_prefix": "x-"})
    plan = upgrade_plan(dep.plans["localhost"], "x-")
    steps = next(p.steps for p in plan.phases if p.name == "heat")
    order = [s.name for s in steps if s.kind in (StepKind.JOB, StepKind.CONTAINER)]
    assert order == ["x-bootstrap_heat", "x-upgrade_heat_sync", "x-heat_engine", "x-heat_api", "x-heat_api_cfn"]
    by_name = {s.name: s for s in steps}
    assert by_name["x-bootstrap_heat"].params["record_only"] is True
    sync = by_name["x-upgrade_heat_sync"].container
    assert sync.image == "stackyard/heat-api:2026.1"
    assert sync.environment["KOLLA_UPGRADE"] == "1" and sync.environment["STACKYARD_UPGRADE_STEP"] == "sync"


# ----------------------------------------------------------------- the encryption key
def test_genpwd_makes_a_32_character_key_and_a_wrong_length_is_refused(tmp_path: Path) -> None:
    from stackyard.deploy import services

    path = tmp_path / "passwords.yml"
    genpwd(path)
    data = yaml.safe_load(path.read_text())
    assert len(data["heat_auth_encryption_key"]) == 32 and data["heat_auth_encryption_key"].isalnum()
    heat_svc = services.get("heat")
    assert load_passwords(path, [heat_svc])["heat_auth_encryption_key"] == data["heat_auth_encryption_key"]
    data["heat_auth_encryption_key"] = "notgood but too short"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"heat_auth_encryption_key must be exactly 32 characters \(got 21\)"):
        load_passwords(path, [heat_svc])
    # a key with no service enabled is not checked
    load_passwords(path, [services.get("keystone")])


# ----------------------------------------------------------------- the Keystone steps, on a fake Keystone
class Obj:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


class FakeIdentity:
    """The few identity calls the domain and role steps make, on in-memory state."""

    def __init__(self) -> None:
        self.domains: dict[str, Obj] = {"default": Obj(id="default", name="Default", is_enabled=True)}
        self.users: dict[tuple[str, str], Obj] = {("default", "admin"): Obj(id="u-admin", name="admin")}
        self.projects = {("default", "admin"): Obj(id="p-admin", name="admin")}
        self.roles: dict[str, Obj] = {"admin": Obj(id="r-admin", name="admin")}
        self.grants: set[tuple[str, str, str]] = set()
        self.passwords: dict[str, str] = {}

    def find_domain(self, name: str) -> Obj | None:
        return next((d for d in self.domains.values() if d.name == name), None)

    def create_domain(self, name: str, description: str, is_enabled: bool) -> Obj:
        self.domains[name] = Obj(id=f"d-{name}", name=name, is_enabled=is_enabled)
        return self.domains[name]

    def find_user(self, name: str, domain_id: str) -> Obj | None:
        return self.users.get((domain_id, name))

    def create_user(self, name: str, password: str, domain_id: str) -> Obj:
        self.users[(domain_id, name)] = Obj(id=f"u-{name}", name=name)
        self.passwords[f"u-{name}"] = password
        return self.users[(domain_id, name)]

    def update_user(self, user: Obj, password: str) -> None:
        self.passwords[user.id] = password

    def find_role(self, name: str) -> Obj | None:
        return self.roles.get(name)

    def create_role(self, name: str) -> Obj:
        self.roles[name] = Obj(id=f"r-{name}", name=name)
        return self.roles[name]

    def find_project(self, name: str, domain_id: str) -> Obj | None:
        return self.projects.get((domain_id, name))

    def validate_user_has_domain_role(self, domain: Obj, user: Obj, role: Obj) -> bool:
        return (domain.id, user.id, role.id) in self.grants

    def assign_domain_role_to_user(self, domain: Obj, user: Obj, role: Obj) -> None:
        self.grants.add((domain.id, user.id, role.id))

    validate_user_has_project_role = validate_user_has_domain_role
    assign_project_role_to_user = assign_domain_role_to_user


def applier(ident: FakeIdentity, passwords: dict[str, str], dry_run: bool = False) -> HostApplier:
    a = HostApplier(None, HostPlan(host="localhost", config_root="/nonexistent"), passwords,
                    {"keystone_admin_user": "admin", "keystone_admin_project": "admin"}, lambda _m: None,
                    dry_run=dry_run)
    a._openstack = lambda: Obj(identity=ident, auth={"auth_url": "http://keystone.invalid/v3"})  # type: ignore
    a._password_works = lambda user, password, **_scope: ident.passwords.get(f"u-{user}") == password  # type: ignore
    return a


def identity_steps(tmp_path: Path) -> list[Step]:
    return [s for s in heat_steps(deploy(tmp_path).plans["localhost"])
            if s.kind in (StepKind.KEYSTONE_DOMAIN, StepKind.KEYSTONE_ROLE)]


def test_domain_and_roles_are_made_once_then_left_alone(tmp_path: Path) -> None:
    ident, steps = FakeIdentity(), identity_steps(tmp_path)
    a = applier(ident, {"heat_domain_admin_password": "s3cret"})
    first = [a.handlers()[s.kind](s) for s in steps]
    assert [status for status, _ in first] == [CHANGED, CHANGED, CHANGED]
    assert first[0][1] == ("domain created, user heat_domain_admin created, "
                           "role admin on heat_user_domain granted to heat_domain_admin")
    assert first[1][1] == "role created, granted to admin in admin"
    domain = ident.find_domain("heat_user_domain")
    assert (domain.id, "u-heat_domain_admin", "r-admin") in ident.grants
    assert ("p-admin", "u-admin", "r-heat_stack_owner") in ident.grants
    assert not any(g[2] == "r-heat_stack_user" for g in ident.grants)
    assert [a.handlers()[s.kind](s) for s in steps] == [(UNCHANGED, "present")] * 3
    # a password changed in passwords.yml reaches Keystone
    again = applier(ident, {"heat_domain_admin_password": "n3w"})
    assert again.handlers()[steps[0].kind](steps[0]) == (CHANGED, "user heat_domain_admin password updated")
    assert ident.passwords["u-heat_domain_admin"] == "n3w"


def test_a_dry_run_touches_nothing_and_a_disabled_domain_is_an_error(tmp_path: Path) -> None:
    from stackyard.errors import DeployError

    ident, steps = FakeIdentity(), identity_steps(tmp_path)
    dry = applier(ident, {"heat_domain_admin_password": "s3cret"}, dry_run=True)
    assert all(dry.handlers()[s.kind](s)[0] == UNCHANGED for s in steps)
    assert ident.find_domain("heat_user_domain") is None and "heat_stack_owner" not in ident.roles
    ident.create_domain("heat_user_domain", "", is_enabled=False)
    with pytest.raises(DeployError, match="Keystone domain heat_user_domain is disabled"):
        applier(ident, {"heat_domain_admin_password": "s3cret"}).do_keystone_domain(steps[0])


# ----------------------------------------------------------------- what `stackyard up` writes
def test_up_writes_heat_into_the_cloud_and_leaves_it_out_of_infra_only(tmp_path: Path) -> None:
    from stackyard.commands.up import CLOUD_GLOBALS, GLOBALS_TEMPLATE, INFRA_ONLY_GLOBALS

    def enabled(name: str, text: str) -> list[str]:
        configdir = tmp_path / name
        configdir.mkdir()
        genpwd(configdir / "passwords.yml")
        (configdir / "globals.yml").write_text(text)
        return plan_mod.load(configdir).enabled

    assert enabled("infra", GLOBALS_TEMPLATE + INFRA_ONLY_GLOBALS) == [
        "cron", "mariadb", "memcached", "rabbitmq", "keystone"]
    assert "heat" in enabled("cloud", GLOBALS_TEMPLATE + CLOUD_GLOBALS.format(virt_type="qemu"))
