"""Deploy plan generation: pure data from globals, passwords and overrides (no engine)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml

from stackyard.deploy import plan as plan_mod
from stackyard.deploy.context import CONFIG_MOUNT
from stackyard.agent.model import ContainerSpec, HostPlan
from stackyard.deploy.passwords import genpwd
from stackyard.errors import ConfigError

HOST = "localhost"
IMAGE_ID = "sha256:" + "0" * 64
SERVICE_UIDS = {"keystone": 42425, "mariadb": 42434, "rabbitmq": 42439}
DEPLOY_ORDER = ["mariadb", "memcached", "rabbitmq", "keystone"]
#: the plans here are of the infrastructure and Keystone: kolla-ansible's core services
#: (Heat, which follows enable_openstack_core) are left out (their plans: test_plan_cloud, test_heat)
INFRA_ONLY = {"enable_openstack_core": False}


# --------------------------------------------------------------------------- helpers
def make_configdir(tmp_path: Path, globals_: dict | None = None,
                   overrides: dict[str, str] | None = None) -> Path:
    configdir = tmp_path / "etc-kolla"
    configdir.mkdir(parents=True)
    genpwd(configdir / "passwords.yml")
    (configdir / "globals.yml").write_text(yaml.safe_dump({**INFRA_ONLY, **(globals_ or {})}))
    for rel, text in (overrides or {}).items():
        path = configdir / "config" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return configdir


def deploy(tmp_path: Path, globals_: dict | None = None,
           overrides: dict[str, str] | None = None) -> tuple[plan_mod.Deployment, HostPlan]:
    configdir = make_configdir(tmp_path, globals_, overrides)
    dep = plan_mod.load(configdir)
    plans = plan_mod.make_plans(dep)
    assert list(plans) == [HOST]
    return dep, plans[HOST]


def file_named(plan: HostPlan, service_dir: str, name: str):
    matches = [f for f in plan.files if f.path == f"{plan.config_root}/{service_dir}/{name}"]
    assert len(matches) == 1, [f.path for f in plan.files]
    return matches[0]


def all_specs(plan: HostPlan) -> list[ContainerSpec]:
    """Every container the plan would create: services and one-shot jobs."""
    return [s.container for p in plan.phases for s in p.steps if s.container is not None]


def spec_by_name(plan: HostPlan, name: str) -> ContainerSpec:
    return next(c for c in all_specs(plan) if c.name == name)


def phase_names(plan: HostPlan) -> list[str]:
    return [p.name for p in plan.phases]


def password_values(dep: plan_mod.Deployment) -> list[str]:
    return [v for v in dep.passwords.values() if isinstance(v, str) and len(v) >= 8]


# --------------------------------------------------------------------------- phases
def test_every_enabled_service_gets_its_phase_in_deploy_order(tmp_path):
    dep, plan = deploy(tmp_path)
    names = phase_names(plan)
    assert sorted(names) == sorted(DEPLOY_ORDER + ["cron"])
    assert [n for n in names if n != "cron"] == DEPLOY_ORDER
    assert dep.enabled == [n for n in names]


@pytest.mark.parametrize("disabled", ["cron", "rabbitmq", "keystone"])
def test_disabling_a_service_removes_its_phase(tmp_path, disabled):
    _, plan = deploy(tmp_path, {f"enable_{disabled}": False})
    assert disabled not in phase_names(plan)
    assert not [c for c in all_specs(plan) if c.service == disabled]
    assert not [f for f in plan.files if f.path.startswith(f"{plan.config_root}/{disabled}/")]
    expected = [s for s in DEPLOY_ORDER if s != disabled]
    assert [n for n in phase_names(plan) if n != "cron"] == expected


def test_infra_only_deployment_without_keystone(tmp_path):
    _, plan = deploy(tmp_path, {"enable_keystone": False, "enable_cron": False})
    assert phase_names(plan) == ["mariadb", "memcached", "rabbitmq"]
    assert "keystone_fernet_tokens" not in plan.volumes


@pytest.mark.parametrize("dep_service", ["mariadb", "memcached"])
def test_keystone_without_its_dependency_is_refused(tmp_path, dep_service):
    configdir = make_configdir(tmp_path, {f"enable_{dep_service}": False})
    with pytest.raises(ConfigError) as err:
        plan_mod.load(configdir)
    msg = str(err.value)
    assert "'keystone' needs" in msg and dep_service in msg
    assert f"enable_{dep_service}" in msg


def test_keystone_without_rabbitmq_uses_no_transport(tmp_path):
    _, plan = deploy(tmp_path, {"enable_rabbitmq": False})
    conf = file_named(plan, "keystone", "keystone.conf").content
    assert "rabbit://" not in conf
    assert re.search(r"^driver = noop$", conf, re.MULTILINE)


def test_named_volumes_are_collected_once(tmp_path):
    _, plan = deploy(tmp_path)
    assert len(plan.volumes) == len(set(plan.volumes))
    assert {"kolla_logs", "mariadb", "rabbitmq", "keystone_fernet_tokens",
            "keystone_credential_keys"} <= set(plan.volumes)
    assert all(not v.startswith("/") for v in plan.volumes)


# --------------------------------------------------------------------------- containers
def test_containers_use_host_network_and_restart_policies(tmp_path):
    _, plan = deploy(tmp_path)
    jobs = {s.container.name for p in plan.phases for s in p.steps if s.kind == "job"}
    services = {c.name for c in plan.containers()}
    assert jobs == {"bootstrap_mariadb", "bootstrap_keystone", "keystone_bootstrap_admin"}
    assert services == {"mariadb", "memcached", "rabbitmq", "keystone", "cron"}
    for spec in all_specs(plan):
        assert spec.network_mode == "host", spec.name
        expected = "no" if spec.name in jobs else "unless-stopped"
        assert spec.restart_policy == expected, spec.name


def test_config_dirs_are_mounted_read_only(tmp_path):
    _, plan = deploy(tmp_path)
    for spec in all_specs(plan):
        config_mounts = [v for v in spec.volumes if v.split(":")[1] == CONFIG_MOUNT]
        assert len(config_mounts) == 1, spec.volumes
        src, dst, mode = config_mounts[0].split(":")
        assert dst == "/var/lib/kolla/config_files/"
        assert mode == "ro"
        assert src.rstrip("/") in spec.config_dirs
        assert src.startswith(plan.config_root + "/")


def test_every_mounted_config_dir_has_a_config_json(tmp_path):
    _, plan = deploy(tmp_path)
    paths = {f.path for f in plan.files}
    for spec in all_specs(plan):
        for d in spec.config_dirs:
            assert f"{d}/config.json" in paths, spec.name
            doc = json.loads(next(f.content for f in plan.files if f.path == f"{d}/config.json"))
            assert doc["command"]
            for entry in doc["config_files"]:
                assert entry["source"].startswith(CONFIG_MOUNT)
                # every file config.json copies exists in the mounted dir
                assert f"{d}/{entry['source'][len(CONFIG_MOUNT):]}" in paths


def test_images_follow_namespace_registry_and_tag(tmp_path):
    _, plan = deploy(tmp_path, {"docker_registry": "127.0.0.1:4000", "docker_namespace": "ns",
                                "openstack_tag": "t1"})
    assert spec_by_name(plan, "keystone").image == "127.0.0.1:4000/ns/keystone:t1"
    assert spec_by_name(plan, "mariadb").image == "127.0.0.1:4000/ns/mariadb-server:t1"


# --------------------------------------------------------------------------- secrets
def test_passwords_only_in_secret_files_with_mode_0600(tmp_path):
    dep, plan = deploy(tmp_path)
    secrets = password_values(dep)
    assert len(secrets) > 5
    used = set()
    for f in plan.files:
        hits = [s for s in secrets if s in f.content]
        used.update(hits)
        if hits:
            assert f.secret, f"{f.path} holds a password but is not marked secret"
        if f.secret:
            assert f.mode == 0o600, f.path
    # the secrets that the enabled services need really reach their files
    for key in ("database_password", "keystone_database_password", "keystone_admin_password",
                "rabbitmq_password", "rabbitmq_cluster_cookie"):
        assert dep.passwords[key] in used, key


def test_no_password_in_any_container_environment_command_or_labels(tmp_path):
    dep, plan = deploy(tmp_path)
    secrets = password_values(dep)
    for spec in all_specs(plan):
        exposed = json.dumps({"env": spec.environment, "cmd": spec.command, "labels": spec.labels,
                              "volumes": spec.volumes, "healthcheck": spec.healthcheck and spec.healthcheck.test,
                              "user": spec.user})
        for s in secrets:
            assert s not in exposed, f"password in container {spec.name}"
    # config.json "command" lines end up in process arguments: no secrets there either
    for f in plan.files:
        if f.path.endswith("/config.json"):
            command = json.loads(f.content)["command"]
            assert not [s for s in secrets if s in command], f.path


def test_plan_dict_masks_every_secret(tmp_path):
    dep, plan = deploy(tmp_path, {"enable_glance": True, "enable_neutron": True},
                       overrides={"keystone.conf": "[token]\nexpiration = 1234\n"})
    text = json.dumps(plan.to_dict(), sort_keys=True)
    for s in password_values(dep):
        assert s not in text
    assert "<secret>" in text
    # the rabbitmq password hash is not the password, but it is still not shown
    defs = file_named(plan, "rabbitmq", "definitions.json").content
    for user in json.loads(defs)["users"]:
        assert user["password_hash"] not in text


def test_files_are_owned_by_the_fixed_service_uids(tmp_path):
    _, plan = deploy(tmp_path)
    seen = set()
    for f in plan.files:
        service_dir = Path(f.path).parent.name
        service = "keystone" if service_dir.startswith("keystone") else service_dir
        if Path(f.path).name == "config.json":
            assert (f.uid, f.gid) == (0, 0), f.path
            continue
        if service in SERVICE_UIDS:
            assert f.uid == SERVICE_UIDS[service], f.path
            assert f.gid == SERVICE_UIDS[service], f.path
            seen.add(service)
    assert seen == set(SERVICE_UIDS)


# --------------------------------------------------------------------------- overrides
def keystone_conf(plan: HostPlan) -> str:
    return file_named(plan, "keystone", "keystone.conf").content


def test_project_override_lands_in_keystone_conf(tmp_path):
    _, base = deploy(tmp_path / "a")
    assert re.search(r"^expiration = 86400$", keystone_conf(base), re.MULTILINE)
    _, plan = deploy(tmp_path / "b", overrides={"keystone.conf": "[token]\nexpiration = 1234\n"})
    conf = keystone_conf(plan)
    assert re.search(r"^expiration = 1234$", conf, re.MULTILINE)
    assert "86400" not in conf
    # the rest of our generated config is kept
    assert re.search(r"^provider = fernet$", conf, re.MULTILINE)
    # the admin bootstrap job reads the same merged file
    assert file_named(plan, "keystone-bootstrap-admin", "keystone.conf").content == conf


def test_global_conf_applies_and_later_file_wins(tmp_path):
    _, plan = deploy(tmp_path, overrides={
        "global.conf": "[DEFAULT]\ndebug = true\nfrom_global = g\n[token]\nexpiration = 1\n",
        "keystone.conf": "[token]\nexpiration = 2\n",
        "keystone/keystone.conf": "[token]\nexpiration = 3\n[DEFAULT]\nfrom_service = s\n",
    })
    conf = keystone_conf(plan)
    assert re.search(r"^debug = true$", conf, re.MULTILINE)
    assert re.search(r"^from_global = g$", conf, re.MULTILINE)
    assert re.search(r"^from_service = s$", conf, re.MULTILINE)
    assert re.findall(r"^expiration = .*$", conf, re.MULTILINE) == ["expiration = 3"]


def test_global_conf_alone_applies_to_keystone(tmp_path):
    _, plan = deploy(tmp_path, overrides={"global.conf": "[DEFAULT]\ndebug = true\n"})
    assert re.search(r"^debug = true$", keystone_conf(plan), re.MULTILINE)
    assert "debug = false" not in keystone_conf(plan)


def test_override_is_rendered_with_jinja(tmp_path):
    _, plan = deploy(tmp_path, {"openstack_region_name": "RegionTest"}, overrides={
        "keystone.conf": "[DEFAULT]\nregion_hint = {{ openstack_region_name }}\n"
                         "[token]\nexpiration = {{ 600 * 2 }}\n",
    })
    conf = keystone_conf(plan)
    assert re.search(r"^region_hint = RegionTest$", conf, re.MULTILINE)
    assert re.search(r"^expiration = 1200$", conf, re.MULTILINE)
    assert "{{" not in conf


def test_override_with_undefined_variable_is_an_error(tmp_path):
    configdir = make_configdir(tmp_path, overrides={"keystone.conf": "[a]\nb = {{ no_such_var }}\n"})
    dep = plan_mod.load(configdir)
    with pytest.raises(ConfigError, match="keystone.conf"):
        plan_mod.make_plans(dep)


def test_unused_override_produces_a_warning(tmp_path):
    dep, _ = deploy(tmp_path, overrides={"nova.conf": "[DEFAULT]\ndebug = true\n",
                                         "keystone.conf": "[token]\nexpiration = 1234\n"})
    unused = [w for w in dep.warnings if "not read by any enabled service" in w]
    assert len(unused) == 1
    assert "nova.conf" in unused[0]


def test_used_overrides_produce_no_warning(tmp_path):
    dep, _ = deploy(tmp_path, overrides={"keystone.conf": "[token]\nexpiration = 1234\n",
                                         "global.conf": "[DEFAULT]\ndebug = true\n"})
    assert dep.warnings == []


def test_keystone_override_unused_when_keystone_disabled(tmp_path):
    dep, _ = deploy(tmp_path, {"enable_keystone": False},
                    overrides={"keystone.conf": "[token]\nexpiration = 1234\n"})
    assert any("keystone.conf" in w and "not read" in w for w in dep.warnings)


def test_galera_cnf_uses_kolla_ansible_override_names(tmp_path):
    _, plan = deploy(tmp_path, overrides={
        "galera.cnf": "[mysqld]\nmax_connections = 1500\nwait_timeout = 60\n",
        f"mariadb/{HOST}/galera.cnf": "[mysqld]\nwait_timeout = 90\n",
    })
    galera = file_named(plan, "mariadb", "galera.cnf").content
    assert re.search(r"^max_connections = 1500$", galera, re.MULTILINE)
    assert re.findall(r"^wait_timeout = .*$", galera, re.MULTILINE) == ["wait_timeout = 90"]


def test_global_conf_does_not_reach_galera_cnf(tmp_path):
    """global.conf is for oslo.config services; MariaDB must not restart when it changes."""
    configdir = make_configdir(tmp_path)
    before = plan_mod.make_plans(plan_mod.load(configdir))[HOST]
    (configdir / "config").mkdir()
    (configdir / "config" / "global.conf").write_text("[DEFAULT]\ndebug = true\n")
    dep = plan_mod.load(configdir)
    after = plan_mod.make_plans(dep)[HOST]
    assert "[DEFAULT]" not in file_named(after, "mariadb", "galera.cnf").content
    h1, h2 = spec_hashes(before), spec_hashes(after)
    assert h1["mariadb"] == h2["mariadb"]
    assert h1["keystone"] != h2["keystone"]
    assert dep.warnings == []


# --------------------------------------------------------------------------- spec hashes
def spec_hashes(plan: HostPlan) -> dict[str, str]:
    hashes = plan.file_hashes()
    return {c.name: c.spec_hash(IMAGE_ID, hashes) for c in all_specs(plan)}


def test_plan_is_deterministic(tmp_path):
    configdir = make_configdir(tmp_path, overrides={"keystone.conf": "[token]\nexpiration = 1234\n"})
    first = plan_mod.make_plans(plan_mod.load(configdir))[HOST]
    second = plan_mod.make_plans(plan_mod.load(configdir))[HOST]
    assert first.to_dict() == second.to_dict()
    assert spec_hashes(first) == spec_hashes(second)


def test_keystone_conf_change_changes_only_keystone_hashes(tmp_path):
    configdir = make_configdir(tmp_path)
    before = plan_mod.make_plans(plan_mod.load(configdir))[HOST]
    override = configdir / "config" / "keystone.conf"
    override.parent.mkdir()
    override.write_text("[token]\nexpiration = 7200\n")
    after = plan_mod.make_plans(plan_mod.load(configdir))[HOST]

    changed_files = {p for p, h in after.file_hashes().items() if before.file_hashes().get(p) != h}
    assert changed_files == {f"{configdir}/keystone/keystone.conf",
                             f"{configdir}/keystone-bootstrap-admin/keystone.conf"}
    h1, h2 = spec_hashes(before), spec_hashes(after)
    changed = {name for name in h1 if h1[name] != h2[name]}
    # the API is recreated; db_sync and the admin bootstrap do not re-run for it
    assert changed == {"keystone"}
    for name in ("memcached", "mariadb", "rabbitmq", "cron"):
        assert h1[name] == h2[name], name


def test_spec_hash_follows_image_id(tmp_path):
    _, plan = deploy(tmp_path)
    spec = spec_by_name(plan, "memcached")
    hashes = plan.file_hashes()
    assert spec.spec_hash(IMAGE_ID, hashes) != spec.spec_hash("sha256:" + "1" * 64, hashes)


# --------------------------------------------------------------------------- addresses and ports
def test_ports_and_addresses_from_globals_reach_configs_and_healthchecks(tmp_path):
    _, plan = deploy(tmp_path, {"keystone_public_port": 5001,
                                "kolla_internal_vip_address": "127.0.0.2",
                                "memcached_port": 11222, "database_port": 3307,
                                "rabbitmq_port": 5673})
    uwsgi = file_named(plan, "keystone", "keystone-uwsgi.ini").content
    assert re.search(r"^http-socket = 127\.0\.0\.2:5001$", uwsgi, re.MULTILINE)
    ks = spec_by_name(plan, "keystone")
    assert ks.healthcheck is not None
    assert "http://127.0.0.2:5001/v3" in " ".join(ks.healthcheck.test)

    conf = keystone_conf(plan)
    assert "@127.0.0.2:3307/keystone" in conf
    assert "@127.0.0.2:5673/keystone" in conf
    assert re.search(r"^memcache_servers = 127\.0\.0\.2:11222$", conf, re.MULTILINE)

    assert "11222" in " ".join(spec_by_name(plan, "memcached").healthcheck.test)
    memcached_cmd = json.loads(file_named(plan, "memcached", "config.json").content)["command"]
    assert "-l 127.0.0.2 -p 11222" in memcached_cmd
    assert "3307" in " ".join(spec_by_name(plan, "mariadb").healthcheck.test)
    galera = file_named(plan, "mariadb", "galera.cnf").content
    assert re.search(r"^bind-address = 127\.0\.0\.2$", galera, re.MULTILINE)
    assert re.search(r"^port = 3307$", galera, re.MULTILINE)
    assert "listeners.tcp.1 = 127.0.0.2:5673" in file_named(plan, "rabbitmq", "rabbitmq.conf").content

    # the admin bootstrap registers endpoints on the configured address and port
    admin_cmd = json.loads(file_named(plan, "keystone-bootstrap-admin", "config.json").content)["command"]
    assert "--bootstrap-internal-url http://127.0.0.2:5001" in admin_cmd
    keystone_check = next(s for p in plan.phases for s in p.steps if s.kind == "keystone_check")
    assert keystone_check.params["auth_url"] == "http://127.0.0.2:5001/v3"


def _ports_in(text: str) -> set[int]:
    found = set()
    for pattern in (r"(?:\d{1,3}\.){3}\d{1,3}:(\d+)", r"\bport\s*=\s*(\d+)", r"-p (\d+)",
                    r"_PORT[=:\s\"]+(\d+)", r"PORT=(\d+)", r"\b[a-z]+\s(\d{2,5})$"):
        found.update(int(m) for m in re.findall(pattern, text, re.MULTILINE))
    return found


def test_every_port_used_is_below_the_ephemeral_range(tmp_path):
    dep, plan = deploy(tmp_path)
    texts = [f.content for f in plan.files if not f.secret or "keystone.conf" in f.path]
    for spec in all_specs(plan):
        texts.append(json.dumps(spec.environment))
        if spec.healthcheck:
            texts.append(" ".join(spec.healthcheck.test))
    ports = set().union(*(_ports_in(t) for t in texts))
    ports |= {int(v) for k, v in dep.variables.items() if k.endswith("_port")}
    # sanity: the extraction saw the well-known ports
    assert {3306, 11211, 5672, 5000, 25672, 4369} <= ports
    assert all(0 < p < 32768 for p in ports), sorted(ports)


# --------------------------------------------------------------------------- rabbitmq
def rabbit_definitions(plan: HostPlan) -> dict:
    return json.loads(file_named(plan, "rabbitmq", "definitions.json").content)


def verify_rabbit_hash(password_hash: str, password: str) -> bool:
    raw = base64.b64decode(password_hash)
    salt, digest = raw[:4], raw[4:]
    return len(raw) == 4 + 32 and hashlib.sha256(salt + password.encode()).digest() == digest


@pytest.mark.parametrize("extra, expected", [
    ({}, ["keystone"]),
    ({"enable_glance": True, "enable_neutron": True}, ["glance", "keystone", "neutron"]),
])
def test_rabbitmq_definitions_have_a_user_and_vhost_per_service(tmp_path, extra, expected):
    dep, plan = deploy(tmp_path, extra)
    defs = rabbit_definitions(plan)
    assert sorted(u["name"] for u in defs["users"]) == expected
    assert sorted(v["name"] for v in defs["vhosts"]) == expected
    assert sorted((p["user"], p["vhost"]) for p in defs["permissions"]) == [(n, n) for n in expected]
    for user in defs["users"]:
        assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
        assert verify_rabbit_hash(user["password_hash"], dep.passwords["rabbitmq_password"])
        assert not verify_rabbit_hash(user["password_hash"], "wrong-password")


def test_rabbitmq_password_hash_is_deterministic(tmp_path):
    configdir = make_configdir(tmp_path)
    a = plan_mod.make_plans(plan_mod.load(configdir))[HOST]
    b = plan_mod.make_plans(plan_mod.load(configdir))[HOST]
    assert rabbit_definitions(a) == rabbit_definitions(b)
    assert file_named(a, "rabbitmq", "definitions.json").hash == \
        file_named(b, "rabbitmq", "definitions.json").hash


def test_rabbitmq_password_change_changes_the_hash(tmp_path):
    configdir = make_configdir(tmp_path)
    before = rabbit_definitions(plan_mod.make_plans(plan_mod.load(configdir))[HOST])
    pw_path = configdir / "passwords.yml"
    data = yaml.safe_load(pw_path.read_text())
    data["rabbitmq_password"] = "Changed0Password0Value0For0The0Test0Run"
    pw_path.write_text(yaml.safe_dump(data))
    dep = plan_mod.load(configdir)
    after = rabbit_definitions(plan_mod.make_plans(dep)[HOST])
    assert before["users"][0]["password_hash"] != after["users"][0]["password_hash"]
    assert verify_rabbit_hash(after["users"][0]["password_hash"], data["rabbitmq_password"])


def test_keystone_uses_its_rabbitmq_vhost(tmp_path):
    dep, plan = deploy(tmp_path)
    conf = keystone_conf(plan)
    assert f"rabbit://keystone:{dep.passwords['rabbitmq_password']}@127.0.0.1:5672/keystone" in conf


def test_admin_password_change_reruns_admin_bootstrap_only(tmp_path):
    configdir = make_configdir(tmp_path)
    before = plan_mod.make_plans(plan_mod.load(configdir))[HOST]
    pw_path = configdir / "passwords.yml"
    pw = yaml.safe_load(pw_path.read_text())
    pw["keystone_admin_password"] = "a-new-admin-password-0123456789"
    pw_path.write_text(yaml.safe_dump(pw))
    after = plan_mod.make_plans(plan_mod.load(configdir))[HOST]
    h1, h2 = spec_hashes(before), spec_hashes(after)
    assert {name for name in h1 if h1[name] != h2[name]} == {"keystone_bootstrap_admin"}


def test_bootstrap_jobs_rerun_when_their_image_changes(tmp_path):
    _, plan = deploy(tmp_path)
    hashes = plan.file_hashes()
    for name in ("bootstrap_keystone", "bootstrap_mariadb"):
        job = spec_by_name(plan, name)
        assert job.spec_hash(IMAGE_ID, hashes) != job.spec_hash("sha256:" + "2" * 64, hashes)


def test_owner_ids_come_from_the_fixed_service_users(tmp_path):
    from stackyard.deploy import services
    from stackyard.deploy.context import PlanContext

    ctx = PlanContext(host=HOST, variables={}, passwords={}, configdir=tmp_path, config_root=tmp_path,
                      service=services.get("keystone"), users=services.users())
    kolla = services.users()["kolla"].gid
    assert ctx.owner_ids("root") == (0, 0)
    assert ctx.owner_ids("keystone") == (SERVICE_UIDS["keystone"], SERVICE_UIDS["keystone"])
    assert ctx.owner_ids("keystone:kolla") == (SERVICE_UIDS["keystone"], kolla)
    assert ctx.owner_ids("mysql:root") == (SERVICE_UIDS["mariadb"], 0)  # MariaDB runs as mysql
    assert ctx.owner_ids("root:rabbitmq") == (0, SERVICE_UIDS["rabbitmq"])
    # a file added for an owner lands with those IDs
    path = ctx.add_file("keystone", "x.conf", "[a]\n", owner="keystone:kolla")
    f = next(f for f in ctx.files if f.path == path)
    assert (f.uid, f.gid) == (SERVICE_UIDS["keystone"], kolla)
