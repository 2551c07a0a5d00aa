"""End-to-end: deploy the all-in-one MariaDB + Memcached + RabbitMQ + Keystone on
the real engine, then use it with the real ``openstack`` CLI.

The tests run in file order against one deployment (module fixture) in a tmp
config dir, with the name prefix ``e2e-infra-`` and the images scripts/test.sh
built in the E2E namespace. Every engine query filters by this deployment's
label: other containers on the engine are none of these tests' business.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import docker
import pymysql
import pytest
import yaml

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
PREFIX = "e2e-infra-"
SERVICES = ["cron", "mariadb", "memcached", "rabbitmq", "keystone"]
NAMES = {PREFIX + s for s in SERVICES}


@pytest.fixture(scope="module")
def client(docker_client: docker.DockerClient) -> docker.DockerClient:
    return docker_client


@pytest.fixture(scope="module")
def dep(tmp_path_factory: pytest.TempPathFactory, make_deployment):
    d = tmp_path_factory.mktemp("kolla")
    deployment = make_deployment(d, PREFIX)
    # start from nothing: nothing carries this deployment's label yet
    assert deployment.containers() == [] and deployment.volumes() == set()
    # infrastructure and Keystone: kolla-ansible's core services (Heat) off
    (d / "globals.yml").write_text("kolla_internal_vip_address: 127.0.0.1\nnetwork_interface: lo\n"
                                   "enable_openstack_core: false\n")
    deployment.run("genpwd")
    yield deployment
    deployment.run("destroy", "--yes-i-really-really-mean-it", "--include-volumes", check=False)


@pytest.fixture(scope="module")
def configdir(dep) -> Path:
    return dep.configdir


@pytest.fixture(scope="module")
def passwords(configdir: Path) -> dict:
    return yaml.safe_load((configdir / "passwords.yml").read_text())


def deploy_json(dep, *extra: str) -> dict:
    return json.loads(dep.run("deploy", "--format", "json", *extra, timeout=900).stdout)


def openstack(dep, *args: str) -> str:
    return dep.openstack(*args, timeout=120).stdout.strip()


def container(client: docker.DockerClient, dep, service: str):
    """This deployment's container of ``service`` (by its exact prefixed name)."""
    c = client.containers.get(dep.name(service))
    assert c.labels.get("org.stackyard.deployment") == dep.label
    return c


def test_prechecks_pass_on_a_clean_machine(dep) -> None:
    proc = dep.run("prechecks")
    assert "prechecks: passed" in proc.stdout


def test_dry_run_changes_nothing(dep, configdir: Path) -> None:
    result = deploy_json(dep, "--dry-run")
    assert result["dry_run"] is True
    steps = result["hosts"]["localhost"]["steps"]
    assert any(s["name"] == dep.name("keystone") and s["detail"] == "would create" for s in steps)
    assert dep.containers() == []
    assert not (configdir / "keystone" / "keystone.conf").exists()


def test_fresh_deploy_issues_tokens_and_manages_projects(dep, configdir: Path, e2e_namespace: str) -> None:
    t0 = time.monotonic()
    result = deploy_json(dep)
    elapsed = time.monotonic() - t0
    assert result["failed"] == 0 and result["changed"] > 0
    running = dep.containers(all=False)
    assert {c.name for c in running} == NAMES
    for c in running:
        assert c.attrs["HostConfig"]["NetworkMode"] == "host"
        assert c.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        assert c.attrs["Config"]["Image"].startswith(f"{e2e_namespace}/"), c.attrs["Config"]["Image"]
    dep.run("post-deploy")
    assert (configdir / "admin-openrc.sh").stat().st_mode & 0o777 == 0o600
    token = openstack(dep, "token", "issue", "-f", "value", "-c", "id")
    assert len(token) > 20
    openstack(dep, "project", "create", "e2e-project")
    openstack(dep, "user", "create", "--project", "e2e-project", "--password", "e2e-pass-1", "e2e-user")
    openstack(dep, "role", "add", "--project", "e2e-project", "--user", "e2e-user", "member")
    users = openstack(dep, "user", "list", "-f", "value", "-c", "Name").split()
    assert "e2e-user" in users
    # the new user can log in with the password we gave it
    env = dict(os.environ, OS_AUTH_URL="http://127.0.0.1:5000/v3", OS_USERNAME="e2e-user",
               OS_PASSWORD="e2e-pass-1", OS_PROJECT_NAME="e2e-project", OS_USER_DOMAIN_NAME="Default",
               OS_PROJECT_DOMAIN_NAME="Default", OS_IDENTITY_API_VERSION="3")
    proc = subprocess.run([str(BIN / "openstack"), "token", "issue"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    print(f"fresh deploy took {elapsed:.1f}s")


def test_check_reports_healthy(dep) -> None:
    proc = dep.run("check")
    for name in NAMES:
        assert f"ok   {name}" in proc.stdout


def test_secrets_never_in_process_arguments_or_container_config(dep, configdir: Path, passwords: dict) -> None:
    secrets = [v for v in passwords.values() if isinstance(v, str) and len(v) >= 16]
    assert secrets
    ps = subprocess.run(["ps", "axww", "-o", "args"], capture_output=True, text=True).stdout
    for c in dep.containers(all=False):
        inspect = json.dumps({"Cmd": c.attrs["Config"]["Cmd"], "Args": c.attrs["Args"],
                              "Env": c.attrs["Config"]["Env"], "Labels": c.attrs["Config"]["Labels"]})
        logs = c.logs().decode(errors="replace")
        for s in secrets:
            assert s not in inspect, f"a secret is in docker inspect of {c.name}"
            assert s not in logs, f"a secret is in the logs of {c.name}"
    for s in secrets:
        assert s not in ps, "a secret is visible in ps"
    for path in (configdir / "keystone").iterdir():
        st = path.stat()
        assert st.st_mode & 0o077 == 0 or path.name == "config.json", f"{path} is readable by others"
    assert (configdir / "keystone" / "keystone.conf").stat().st_uid == 42425
    assert (configdir / "mariadb" / "root-password").stat().st_uid == 42434


def test_second_deploy_changes_and_restarts_nothing(dep) -> None:
    before = dep.snapshot()
    t0 = time.monotonic()
    result = deploy_json(dep)
    elapsed = time.monotonic() - t0
    assert result["changed"] == 0, [s for s in result["hosts"]["localhost"]["steps"] if s["status"] != "unchanged"]
    assert result["hosts"]["localhost"]["files_changed"] == []
    assert dep.snapshot() == before
    assert elapsed < 30, f"no-op redeploy took {elapsed:.1f}s"


def test_one_option_reconfigure_restarts_keystone_only(dep, configdir: Path) -> None:
    before = dep.snapshot()
    override = configdir / "config" / "keystone.conf"
    override.parent.mkdir(exist_ok=True)
    override.write_text("[token]\nexpiration = 7200\n")
    dep.run("reconfigure", timeout=900)
    after = dep.snapshot()
    restarted = {n for n in before if after.get(n) != before[n]}
    assert restarted == {dep.name("keystone")}
    rendered = (configdir / "keystone" / "keystone.conf").read_text()
    assert "expiration = 7200" in rendered
    # the running service really reads it: a token lives two hours
    out = openstack(dep, "token", "issue", "-f", "json")
    token = json.loads(out)
    from datetime import datetime, timezone

    expires = datetime.fromisoformat(token["expires"].replace("Z", "+00:00"))
    remaining = (expires - datetime.now(timezone.utc)).total_seconds()
    assert 6900 < remaining <= 7300, remaining


def test_mariadb_data_survives_redeploy_and_stop(dep, configdir: Path, client: docker.DockerClient,
                                                 passwords: dict) -> None:
    def connect() -> pymysql.Connection:
        return pymysql.connect(host="127.0.0.1", port=3306, user="root",
                               password=passwords["database_password"], autocommit=True)

    with connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS e2e_marker")
        cur.execute("CREATE TABLE IF NOT EXISTS e2e_marker.rows (v VARCHAR(64))")
        cur.execute("INSERT INTO e2e_marker.rows VALUES ('survives')")
    # a config change recreates the mariadb container: data must stay
    (configdir / "config" / "galera.cnf").write_text("[mysqld]\nmax_connections = 1500\n")
    mariadb_before = container(client, dep, "mariadb").id
    deploy_json(dep)
    assert container(client, dep, "mariadb").id != mariadb_before
    dep.run("stop")
    assert dep.names(running_only=True) == set()
    assert NAMES <= dep.names(), "stop removed containers"
    result = deploy_json(dep)
    assert result["failed"] == 0
    with connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT v FROM e2e_marker.rows")
        assert cur.fetchall() == (("survives",),)
        cur.execute("SHOW VARIABLES LIKE 'max_connections'")
        assert cur.fetchone()[1] == "1500"
    assert "e2e-user" in openstack(dep, "user", "list", "-f", "value", "-c", "Name").split()


def test_killed_keystone_mid_deploy_converges_on_rerun(dep, configdir: Path, client: docker.DockerClient) -> None:
    # force keystone to be recreated, and kill it while the deploy waits for it
    (configdir / "config" / "keystone.conf").write_text("[token]\nexpiration = 3600\n")
    keystone = dep.name("keystone")
    old_id = container(client, dep, "keystone").id
    killed = threading.Event()

    def killer() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                c = client.containers.get(keystone)
                if c.id != old_id and c.status == "running" \
                        and c.labels.get("org.stackyard.deployment") == dep.label:
                    c.kill()
                    killed.set()
                    return
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError:
                pass
            time.sleep(0.05)

    t = threading.Thread(target=killer)
    t.start()
    first = dep.run("deploy", check=False, timeout=900)
    t.join()
    assert killed.is_set(), "the keystone container was never seen running"
    second = dep.run("deploy", "--format", "json", timeout=900)
    result = json.loads(second.stdout)
    assert result["failed"] == 0, (first.stderr, second.stderr)
    assert container(client, dep, "keystone").status == "running"
    openstack(dep, "token", "issue")
    # and now it has converged: nothing left to do
    assert deploy_json(dep)["changed"] == 0


def test_check_fails_when_a_service_is_down(dep, client: docker.DockerClient) -> None:
    container(client, dep, "memcached").stop(timeout=5)
    proc = dep.run("check", check=False)
    assert proc.returncode != 0
    assert f"FAIL {dep.name('memcached')}" in proc.stdout
    deploy_json(dep)
    dep.run("check")


def test_destroy_leaves_no_container_behind(dep, configdir: Path, client: docker.DockerClient) -> None:
    proc = dep.run("destroy", check=False)
    assert proc.returncode != 0 and "yes-i-really-really-mean-it" in proc.stderr
    dep.run("destroy", "--yes-i-really-really-mean-it")
    assert dep.containers() == []
    for name in NAMES:
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(name)
    assert not (configdir / "keystone").exists()
    # volumes are kept without --include-volumes
    volume = dep.name("mariadb")
    assert client.volumes.get(volume)
    assert volume in dep.volumes()
    dep.run("destroy", "--yes-i-really-really-mean-it", "--include-volumes")
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get(volume)
    assert dep.volumes() == set()
