"""End-to-end: infra + Keystone on a 3-host test bed through Ansible.

The hosts are node containers on a private bridge in a network namespace (see
docs/multinode.md); images come from a local registry; stackyard and Ansible
run inside that namespace like a deploy host on the management network. The
tests run in file order against one deployment (module fixture).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
PREFIX = "symh"
SUBNET = "10.251.0.0/24"
REGISTRY_PORT = 5101
NODES = {"node1": "10.251.0.11", "node2": "10.251.0.12", "node3": "10.251.0.13"}
VIP = "10.251.0.250"
#: the E2E namespace: images are built (cached) under it and pushed to the bed's registry
NS = os.environ.get("STACKYARD_E2E_NAMESPACE", "stackyard-e2e")
IMAGES = ["base", "openstack-base", "keystone", "mariadb-server", "memcached", "rabbitmq", "cron",
          "haproxy", "keepalived"]


def run(cmd: list[str], *, timeout: int = 900, check: bool = True, netns: bool = False,
        env: dict | None = None) -> subprocess.CompletedProcess:
    if netns:
        cmd = ["ip", "netns", "exec", PREFIX, *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\n"
                             f"stderr:\n{proc.stderr[-6000:]}")
    return proc


def bed(*args: str, state: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "stackyard.cli", "testbed", *args, "--state-dir", str(state),
                "--prefix", PREFIX, "--subnet", SUBNET, "--registry-port", str(REGISTRY_PORT)], timeout=timeout)


class Cloud:
    def __init__(self, state: Path, configdir: Path):
        self.state = state
        self.configdir = configdir
        self.inventory = state / "multinode"

    def stackyard(self, *args: str, check: bool = True, timeout: int = 1200) -> subprocess.CompletedProcess:
        return run([sys.executable, "-m", "stackyard.cli", *args, "--configdir", str(self.configdir),
                    "-i", str(self.inventory)], netns=True, check=check, timeout=timeout)

    def deploy(self, *extra: str) -> dict:
        proc = self.stackyard("deploy", "--format", "json", *extra)
        return json.loads(proc.stdout)

    def node_docker(self, node: str, *args: str, check: bool = True, timeout: int = 300) -> str:
        return run(["docker", "exec", f"{PREFIX}-{node}", "docker", *args], check=check, timeout=timeout).stdout

    def sql(self, node: str, query: str) -> str:
        return self.node_docker(node, "exec", "mariadb", "mariadb", "-u", "mysql", "-N", "-B", "-e", query)

    def galera_status(self, node: str) -> dict[str, str]:
        out = self.sql(node, "SHOW GLOBAL STATUS WHERE Variable_name IN "
                             "('wsrep_cluster_size','wsrep_cluster_status','wsrep_local_state_comment')")
        return dict(line.split("\t", 1) for line in out.strip().splitlines())

    def token(self, timeout: float = 60) -> str:
        """An admin token from Keystone through the VIP (retried while the VIP moves)."""
        pw = yaml.safe_load((self.configdir / "passwords.yml").read_text())["keystone_admin_password"]
        env = dict(os.environ, OS_AUTH_URL=f"http://{VIP}:5000/v3", OS_USERNAME="admin", OS_PASSWORD=pw,
                   OS_PROJECT_NAME="admin", OS_USER_DOMAIN_NAME="Default", OS_PROJECT_DOMAIN_NAME="Default",
                   OS_IDENTITY_API_VERSION="3")
        deadline = time.monotonic() + timeout
        while True:
            proc = run([str(BIN / "openstack"), "token", "issue", "-f", "value", "-c", "id"], netns=True,
                       check=False, env=env, timeout=120)
            if proc.returncode == 0 and proc.stdout.strip():
                return proc.stdout.strip()
            if time.monotonic() > deadline:
                raise AssertionError(f"no token through the VIP: {proc.stderr[-2000:]}")
            time.sleep(2)

    def started_at(self) -> dict[str, str]:
        out = {}
        for node in NODES:
            ids = self.node_docker(node, "ps", "-aq", "--filter", "label=org.stackyard.managed").split()
            if ids:
                for c in json.loads(self.node_docker(node, "inspect", *ids)):
                    out[f"{node}/{c['Name'].lstrip('/')}"] = c["State"]["StartedAt"]
        return out


def wait_for(what: str, check, timeout: float = 300, interval: float = 3):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except AssertionError as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}: {last}")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    state = tmp_path_factory.mktemp("testbed")
    configdir = tmp_path_factory.mktemp("kolla")
    bed("up", "--hosts", "3", state=state)
    try:
        # images: built (cached) and pushed to the registry the nodes pull from
        run([sys.executable, "-m", "stackyard.cli", "build", "--push", "--registry", f"127.0.0.1:{REGISTRY_PORT}",
             "--namespace", NS, "--work-dir", str(tmp_path_factory.mktemp("build-work")), *IMAGES], timeout=1800)
        (configdir / "globals.yml").write_text(yaml.safe_dump({
            "kolla_base_distro": "debian", "openstack_release": "2025.1",
            "kolla_internal_vip_address": VIP, "network_interface": "eth0",
            "docker_registry": f"{SUBNET.rsplit('.', 1)[0]}.1:5000", "docker_registry_insecure": True,
            "docker_namespace": NS,
            "enable_loadbalancer": True, "enable_mariadb": True, "enable_memcached": True,
            "enable_rabbitmq": True, "enable_keystone": True, "enable_cron": True,
            "enable_openstack_core": False,  # infra + Keystone only
        }))
        c = Cloud(state, configdir)
        run([sys.executable, "-m", "stackyard.cli", "genpwd", "--configdir", str(configdir)])
        c.stackyard("bootstrap-servers")
        yield c
    finally:
        bed("down", "--purge", state=state)


def test_first_deploy_converges_every_host(cloud):
    t0 = time.monotonic()
    summary = cloud.deploy()
    assert summary["error"] == "" and summary["failed"] == 0
    assert sorted(summary["hosts"]) == sorted(NODES)
    assert all(h["changed"] > 0 for h in summary["hosts"].values())
    print(f"first 3-host deploy: {time.monotonic() - t0:.1f}s, tasks per host "
          f"{ {h: v['tasks'] for h, v in summary['hosts'].items()} }")


def test_token_through_the_vip(cloud):
    assert cloud.token()
    for node in NODES:
        status = cloud.galera_status(node)
        assert status == {"wsrep_cluster_size": "3", "wsrep_cluster_status": "Primary",
                          "wsrep_local_state_comment": "Synced"}, (node, status)
    rabbit = cloud.node_docker("node2", "exec", "rabbitmq", "rabbitmqctl", "cluster_status", "--formatter", "json")
    running = json.loads(rabbit)["running_nodes"]
    assert sorted(running) == [f"rabbit@{n}" for n in NODES]


def test_noop_redeploy_changes_and_restarts_nothing(cloud):
    before = cloud.started_at()
    t0 = time.monotonic()
    summary = cloud.deploy()
    seconds = time.monotonic() - t0
    assert summary["changed"] == 0, summary
    assert cloud.started_at() == before
    tasks = {h: v["tasks"] for h, v in summary["hosts"].items()}
    print(f"no-op 3-host re-deploy: {seconds:.1f}s, tasks per host {tasks}")
    assert all(n < 10 for n in tasks.values()), tasks
    # check mode and prechecks agree: nothing to do, every port held by our own containers
    assert cloud.deploy("--check")["changed"] == 0
    cloud.stackyard("prechecks")
    assert cloud.started_at() == before


def test_limit_touches_only_that_host(cloud):
    # a config change on every host, applied to node2 only
    override = cloud.configdir / "config" / "keystone.conf"
    override.parent.mkdir(parents=True, exist_ok=True)
    override.write_text("[token]\nexpiration = 7200\n")
    before = cloud.started_at()
    summary = cloud.deploy("--limit", "node2")
    assert sorted(summary["hosts"]) == ["node2"], summary
    after = cloud.started_at()
    changed = sorted(k for k in after if after[k] != before.get(k))
    assert changed == ["node2/keystone"], changed
    # the rest converge on the next full run
    summary = cloud.deploy()
    assert summary["failed"] == 0
    after2 = cloud.started_at()
    assert sorted(k for k in after2 if after2[k] != after[k]) == ["node1/keystone", "node3/keystone"]
    assert cloud.token()


def started(stamp: str) -> datetime:
    """The engine's StartedAt (RFC 3339, nanoseconds, trailing zeros dropped) as a UTC datetime."""
    m = re.fullmatch(r"(\S+?)(?:\.(\d+))?Z", stamp)
    assert m, stamp
    return datetime.fromisoformat(m.group(1) + "." + (m.group(2) or "0")[:6].ljust(6, "0") + "+00:00")


def test_galera_config_change_restarts_members_one_at_a_time(cloud):
    override = cloud.configdir / "config" / "galera.cnf"
    override.parent.mkdir(parents=True, exist_ok=True)
    override.write_text("[mysqld]\nmax_connections = 1500\n")
    before = cloud.started_at()
    summary = cloud.deploy()
    assert summary["failed"] == 0
    after = cloud.started_at()
    restarted = sorted(k for k in after if after[k] != before.get(k))
    assert restarted == [f"{n}/mariadb" for n in NODES], restarted
    # serial: each member restarted after the previous one had rejoined (seconds apart, in host order)
    starts = [started(after[f"{n}/mariadb"]) for n in NODES]
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:])]
    assert all(g >= 2 for g in gaps), gaps
    for node in NODES:
        assert cloud.sql(node, "SELECT @@max_connections").strip() == "1500"
        assert cloud.galera_status(node)["wsrep_cluster_size"] == "3"
    assert cloud.token()


def test_a_controller_down_keeps_tokens_and_galera_primary(cloud):
    bed("stop", "node1", state=cloud.state)
    assert cloud.token(timeout=90)
    for node in ("node2", "node3"):
        status = wait_for(f"galera on {node} with 2 members",
                          lambda n=node: (s := cloud.galera_status(n))["wsrep_cluster_size"] == "2" and s, 120)
        assert status["wsrep_cluster_status"] == "Primary"


def test_the_controller_rejoins_when_it_comes_back(cloud):
    bed("start", "node1", state=cloud.state)
    wait_for("node1 back in the Galera cluster",
             lambda: cloud.galera_status("node1") == {"wsrep_cluster_size": "3", "wsrep_cluster_status": "Primary",
                                                      "wsrep_local_state_comment": "Synced"}, 300)
    assert cloud.token()
    cloud.stackyard("check")


def test_mariadb_recovery_after_a_full_stop_loses_no_row(cloud):
    cloud.sql("node2", "CREATE DATABASE IF NOT EXISTS marker; "
                       "CREATE TABLE IF NOT EXISTS marker.rows (id INT PRIMARY KEY, note VARCHAR(40))")
    for i in range(1, 51):
        cloud.sql(f"node{1 + i % 3}", f"INSERT INTO marker.rows VALUES ({i}, 'row {i}')")
    for node in ("node3", "node2", "node1"):
        cloud.node_docker(node, "stop", "mariadb")
    proc = cloud.stackyard("mariadb-recovery", timeout=1200)
    print(proc.stderr[-3000:])
    for node in NODES:
        assert cloud.sql(node, "SELECT COUNT(*), SUM(id) FROM marker.rows").split() == ["50", str(sum(range(1, 51)))]
        assert cloud.galera_status(node)["wsrep_cluster_size"] == "3"
    assert cloud.token()
    summary = cloud.deploy()
    assert summary["changed"] == 0, summary


def test_stop_and_destroy_leave_no_container_on_any_host(cloud):
    cloud.stackyard("stop")
    for node in NODES:
        assert cloud.node_docker(node, "ps", "-q", "--filter", "label=org.stackyard.managed").strip() == ""
    cloud.stackyard("destroy", "--yes-i-really-really-mean-it", "--include-volumes")
    for node in NODES:
        assert cloud.node_docker(node, "ps", "-aq", "--filter", "label=org.stackyard.managed").strip() == ""
        assert cloud.node_docker(node, "volume", "ls", "-q", "--filter", "label=org.stackyard.managed").strip() == ""
        assert run(["docker", "exec", f"{PREFIX}-{node}", "ls", "/etc/kolla"], check=False).stdout.strip() == ""
