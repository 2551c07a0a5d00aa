"""End-to-end: deploy the all-in-one MariaDB + Memcached + RabbitMQ + Keystone on
the real engine, then use it with the real ``openstack`` CLI.

The tests run in file order against one deployment (module fixture). They need
the images built by ``stackyard build`` (scripts/test.sh builds them first).
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
MANAGED = "org.stackyard.managed"
SERVICES = ["cron", "mariadb", "memcached", "rabbitmq", "keystone"]


def stackyard(*args: str, configdir: Path, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "stackyard.cli", *args, "--configdir", str(configdir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def deploy_json(configdir: Path, *extra: str) -> dict:
    proc = stackyard("deploy", "--format", "json", *extra, configdir=configdir)
    return json.loads(proc.stdout)


def openstack(configdir: Path, *args: str) -> str:
    env = dict(os.environ, OS_CLOUD="stackyard-admin", OS_CLIENT_CONFIG_FILE=str(configdir / "clouds.yaml"))
    proc = subprocess.run([str(BIN / "openstack"), *args], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, f"openstack {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


def snapshot(client: docker.DockerClient) -> dict[str, tuple[str, str]]:
    """name -> (container ID, StartedAt) of every managed container."""
    out = {}
    for c in client.containers.list(all=True, filters={"label": MANAGED}):
        out[c.name] = (c.id, c.attrs["State"]["StartedAt"])
    return out


def destroy_everything(configdir: Path) -> None:
    stackyard("destroy", "--yes-i-really-really-mean-it", "--include-volumes", configdir=configdir)


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    return docker.from_env(timeout=300)


@pytest.fixture(scope="module")
def configdir(tmp_path_factory: pytest.TempPathFactory, client: docker.DockerClient) -> Path:
    d = tmp_path_factory.mktemp("kolla")
    # start from nothing: a leftover deployment would make these tests lie
    destroy_everything(d)
    assert client.containers.list(all=True, filters={"label": MANAGED}) == []
    (d / "globals.yml").write_text("kolla_internal_vip_address: 127.0.0.1\nnetwork_interface: lo\n")
    stackyard("genpwd", configdir=d)
    yield d
    destroy_everything(d)


@pytest.fixture(scope="module")
def passwords(configdir: Path) -> dict:
    return yaml.safe_load((configdir / "passwords.yml").read_text())


def test_prechecks_pass_on_a_clean_machine(configdir: Path) -> None:
    proc = stackyard("prechecks", configdir=configdir)
    assert "prechecks: passed" in proc.stdout


def test_dry_run_changes_nothing(configdir: Path, client: docker.DockerClient) -> None:
    result = deploy_json(configdir, "--dry-run")
    assert result["dry_run"] is True
    steps = result["hosts"]["localhost"]["steps"]
    assert any(s["name"] == "keystone" and s["detail"] == "would create" for s in steps)
    assert client.containers.list(all=True, filters={"label": MANAGED}) == []
    assert not (configdir / "keystone" / "keystone.conf").exists()


def test_fresh_deploy_issues_tokens_and_manages_projects(configdir: Path, client: docker.DockerClient) -> None:
    t0 = time.monotonic()
    result = deploy_json(configdir)
    elapsed = time.monotonic() - t0
    assert result["failed"] == 0 and result["changed"] > 0
    names = {c.name for c in client.containers.list(filters={"label": MANAGED})}
    assert names == set(SERVICES)
    for c in client.containers.list(filters={"label": MANAGED}):
        assert c.attrs["HostConfig"]["NetworkMode"] == "host"
        assert c.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    stackyard("post-deploy", configdir=configdir)
    assert (configdir / "admin-openrc.sh").stat().st_mode & 0o777 == 0o600
    token = openstack(configdir, "token", "issue", "-f", "value", "-c", "id")
    assert len(token) > 20
    openstack(configdir, "project", "create", "e2e-project")
    openstack(configdir, "user", "create", "--project", "e2e-project", "--password", "e2e-pass-1", "e2e-user")
    openstack(configdir, "role", "add", "--project", "e2e-project", "--user", "e2e-user", "member")
    users = openstack(configdir, "user", "list", "-f", "value", "-c", "Name").split()
    assert "e2e-user" in users
    # the new user can log in with the password we gave it
    env = dict(os.environ, OS_AUTH_URL="http://127.0.0.1:5000/v3", OS_USERNAME="e2e-user",
               OS_PASSWORD="e2e-pass-1", OS_PROJECT_NAME="e2e-project", OS_USER_DOMAIN_NAME="Default",
               OS_PROJECT_DOMAIN_NAME="Default", OS_IDENTITY_API_VERSION="3")
    proc = subprocess.run([str(BIN / "openstack"), "token", "issue"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    print(f"fresh deploy took {elapsed:.1f}s")


def test_check_reports_healthy(configdir: Path) -> None:
    proc = stackyard("check", configdir=configdir)
    for name in SERVICES:
        assert f"ok   {name}" in proc.stdout


def test_secrets_never_in_process_arguments_or_container_config(
    configdir: Path, client: docker.DockerClient, passwords: dict
) -> None:
    secrets = [v for v in passwords.values() if isinstance(v, str) and len(v) >= 16]
    assert secrets
    ps = subprocess.run(["ps", "axww", "-o", "args"], capture_output=True, text=True).stdout
    for c in client.containers.list(filters={"label": MANAGED}):
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


def test_second_deploy_changes_and_restarts_nothing(configdir: Path, client: docker.DockerClient) -> None:
    before = snapshot(client)
    t0 = time.monotonic()
    result = deploy_json(configdir)
    elapsed = time.monotonic() - t0
    assert result["changed"] == 0, [s for s in result["hosts"]["localhost"]["steps"] if s["status"] != "unchanged"]
    assert result["hosts"]["localhost"]["files_changed"] == []
    assert snapshot(client) == before
    assert elapsed < 30, f"no-op redeploy took {elapsed:.1f}s"


def test_one_option_reconfigure_restarts_keystone_only(configdir: Path, client: docker.DockerClient) -> None:
    before = snapshot(client)
    override = configdir / "config" / "keystone.conf"
    override.parent.mkdir(exist_ok=True)
    override.write_text("[token]\nexpiration = 7200\n")
    stackyard("reconfigure", configdir=configdir)
    after = snapshot(client)
    restarted = {n for n in before if after.get(n) != before[n]}
    assert restarted == {"keystone"}
    rendered = (configdir / "keystone" / "keystone.conf").read_text()
    assert "expiration = 7200" in rendered
    # the running service really reads it: a token lives two hours
    out = openstack(configdir, "token", "issue", "-f", "json")
    token = json.loads(out)
    from datetime import datetime, timezone

    expires = datetime.fromisoformat(token["expires"].replace("Z", "+00:00"))
    remaining = (expires - datetime.now(timezone.utc)).total_seconds()
    assert 6900 < remaining <= 7300, remaining


def test_mariadb_data_survives_redeploy_and_stop(configdir: Path, client: docker.DockerClient, passwords: dict) -> None:
    def connect() -> pymysql.Connection:
        return pymysql.connect(host="127.0.0.1", port=3306, user="root",
                               password=passwords["database_password"], autocommit=True)

    with connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS e2e_marker")
        cur.execute("CREATE TABLE IF NOT EXISTS e2e_marker.rows (v VARCHAR(64))")
        cur.execute("INSERT INTO e2e_marker.rows VALUES ('survives')")
    # a config change recreates the mariadb container: data must stay
    (configdir / "config" / "galera.cnf").write_text("[mysqld]\nmax_connections = 1500\n")
    mariadb_before = client.containers.get("mariadb").id
    deploy_json(configdir)
    assert client.containers.get("mariadb").id != mariadb_before
    stackyard("stop", configdir=configdir)
    assert client.containers.list(filters={"label": MANAGED}) == []
    result = deploy_json(configdir)
    assert result["failed"] == 0
    with connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT v FROM e2e_marker.rows")
        assert cur.fetchall() == (("survives",),)
        cur.execute("SHOW VARIABLES LIKE 'max_connections'")
        assert cur.fetchone()[1] == "1500"
    assert "e2e-user" in openstack(configdir, "user", "list", "-f", "value", "-c", "Name").split()


def test_killed_keystone_mid_deploy_converges_on_rerun(configdir: Path, client: docker.DockerClient) -> None:
    # force keystone to be recreated, and kill it while the deploy waits for it
    (configdir / "config" / "keystone.conf").write_text("[token]\nexpiration = 3600\n")
    old_id = client.containers.get("keystone").id
    killed = threading.Event()

    def killer() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                c = client.containers.get("keystone")
                if c.id != old_id and c.status == "running":
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
    first = stackyard("deploy", configdir=configdir, check=False)
    t.join()
    assert killed.is_set(), "the keystone container was never seen running"
    second = stackyard("deploy", "--format", "json", configdir=configdir)
    result = json.loads(second.stdout)
    assert result["failed"] == 0, (first.stderr, second.stderr)
    assert client.containers.get("keystone").status == "running"
    openstack(configdir, "token", "issue")
    # and now it has converged: nothing left to do
    assert deploy_json(configdir)["changed"] == 0


def test_check_fails_when_a_service_is_down(configdir: Path, client: docker.DockerClient) -> None:
    client.containers.get("memcached").stop(timeout=5)
    proc = stackyard("check", configdir=configdir, check=False)
    assert proc.returncode != 0
    assert "FAIL memcached" in proc.stdout
    deploy_json(configdir)
    stackyard("check", configdir=configdir)


def test_destroy_leaves_no_container_behind(configdir: Path, client: docker.DockerClient) -> None:
    proc = stackyard("destroy", configdir=configdir, check=False)
    assert proc.returncode != 0 and "yes-i-really-really-mean-it" in proc.stderr
    stackyard("destroy", "--yes-i-really-really-mean-it", configdir=configdir)
    assert client.containers.list(all=True, filters={"label": MANAGED}) == []
    assert not (configdir / "keystone").exists()
    # volumes are kept without --include-volumes
    assert client.volumes.get("mariadb")
    stackyard("destroy", "--yes-i-really-really-mean-it", "--include-volumes", configdir=configdir)
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get("mariadb")
