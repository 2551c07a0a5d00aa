"""End to end: a three-node Galera cluster from the mariadb-server image.

Three nodes on the loopback addresses 127.0.0.11-13, all with host networking
and the same ports (3306 SQL, 4567 group communication, 4568 IST, 4444 SST) on
their own address. Each node gets the runtime contract the deployer uses: a
config dir at /var/lib/kolla/config_files whose config.json installs galera.cnf
as /etc/mysql/mariadb.conf.d/99-stackyard.cnf and runs ``galera-start``; the
KOLLA_BOOTSTRAP job initialises each data volume first.

The flow: bootstrap node 1 (STACKYARD_GALERA_NEW_CLUSTER=1), nodes 2 and 3
join by SST (mariabackup); rows written on node 1 are read on node 3; a full
stop, ``galera-recover`` on every volume, and a restart from the most advanced
node keep every row; a killed node leaves a Primary cluster of two, recovers
its position with ``mariadbd --wsrep-recover`` and rejoins.

The image is the E2E namespace's (``STACKYARD_E2E_NAMESPACE``, built by
scripts/test.sh) unless STACKYARD_MARIADB_IMAGE names another. Everything made
here is named sytest-galera-<run>-*, labelled org.stackyard.e2e=<that prefix>,
and removed at the end: cleanup looks for that label only.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import docker
import pytest

pytestmark = pytest.mark.e2e

IMAGE = os.environ.get("STACKYARD_MARIADB_IMAGE") or \
    f"{os.environ.get('STACKYARD_E2E_NAMESPACE', 'stackyard-e2e')}/mariadb-server:2025.1"
CONFIG_DIR = "/var/lib/kolla/config_files"
NODES = {"node1": "127.0.0.11", "node2": "127.0.0.12", "node3": "127.0.0.13"}
ROOT_PASSWORD = "sytest-galera-root"
CLUSTER_ADDRESS = "gcomm://" + ",".join(f"{ip}:4567" for ip in NODES.values())

#: The galera.cnf the deployer renders per node (docs/images.md, "Galera").
GALERA_CNF = """\
[mysqld]
bind-address = {ip}
port = 3306
datadir = /var/lib/mysql
skip-name-resolve = 1
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
innodb_buffer_pool_size = 64M
innodb_log_file_size = 64M
binlog_format = ROW
default_storage_engine = InnoDB
innodb_autoinc_lock_mode = 2
wsrep_on = ON
wsrep_provider = /usr/lib/galera/libgalera_smm.so
wsrep_cluster_name = {cluster}
wsrep_cluster_address = {cluster_address}
wsrep_node_name = {name}
wsrep_node_address = {ip}:4567
wsrep_provider_options = "gmcast.listen_addr=tcp://{ip}:4567; ist.recv_addr={ip}:4568"
wsrep_sst_method = mariabackup
wsrep_sst_receive_address = {ip}:4444

[sst]
sockopt = ",bind={ip}"
"""


# ---------------------------------------------------------------------------
# fixtures and helpers

@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    try:
        c = docker.from_env()
        c.ping()
    except Exception as e:  # noqa: BLE001
        pytest.fail("cannot reach the Docker engine: %s" % e)
    try:
        c.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail("%s does not exist: build it first (scripts/test.sh builds it)" % IMAGE)
    return c


class Cluster:
    def __init__(self, client: docker.DockerClient, workdir: Path) -> None:
        self.client = client
        self.prefix = "sytest-galera-%s-" % uuid.uuid4().hex[:8]
        self.cluster_name = self.prefix + "cluster"
        self.labels = {"org.stackyard.e2e": self.prefix.rstrip("-")}
        self.workdir = workdir
        self.config: dict[str, Path] = {}
        self.volumes: dict[str, str] = {}
        self.containers: dict[str, docker.models.containers.Container] = {}

    # --------------------------------------------------------------- setup
    def write_config(self, name: str) -> Path:
        d = self.workdir / name
        d.mkdir()
        ip = NODES[name]
        (d / "galera.cnf").write_text(GALERA_CNF.format(
            ip=ip, name=name, cluster=self.cluster_name, cluster_address=CLUSTER_ADDRESS))
        (d / "root-password").write_text(ROOT_PASSWORD)
        config = {
            "command": "galera-start",
            "config_files": [
                {"source": CONFIG_DIR + "/galera.cnf", "dest": "/etc/mysql/mariadb.conf.d/99-stackyard.cnf",
                 "owner": "mysql", "perm": "0600"},
                {"source": CONFIG_DIR + "/root-password", "dest": "/etc/mysql/root-password",
                 "owner": "mysql", "perm": "0600"},
            ],
            "permissions": [{"path": "/var/log/kolla/mariadb", "owner": "mysql:mysql", "recurse": True}],
        }
        (d / "config.json").write_text(json.dumps(config))
        for p in d.iterdir():
            p.chmod(0o644)
        d.chmod(0o755)
        self.config[name] = d
        return d

    def mounts(self, name: str) -> dict:
        return {self.volumes[name]: {"bind": "/var/lib/mysql", "mode": "rw"},
                str(self.config[name]): {"bind": CONFIG_DIR, "mode": "ro"}}

    def one_off(self, name: str, suffix: str, command=None, environment=None, timeout: int = 300):
        """Run a throw-away container on the node's volume; (exit code, logs)."""
        env = {"KOLLA_CONFIG_STRATEGY": "COPY_ALWAYS", **(environment or {})}
        c = self.client.containers.run(
            IMAGE, command=command, detach=True, network_mode="host", environment=env,
            name=self.prefix + name + "-" + suffix, volumes=self.mounts(name), labels=self.labels)
        try:
            code = c.wait(timeout=timeout)["StatusCode"]
            return code, c.logs(stdout=True, stderr=True).decode(errors="replace")
        finally:
            c.remove(force=True)

    def bootstrap(self, name: str) -> None:
        self.write_config(name)
        vol = self.client.volumes.create(self.prefix + name, labels=self.labels)
        self.volumes[name] = vol.name
        code, out = self.one_off(name, "bootstrap", environment={"KOLLA_BOOTSTRAP": "1"})
        assert code == 0, "%s: bootstrap failed (%d):\n%s" % (name, code, out)

    # --------------------------------------------------------------- nodes
    def start(self, name: str, new_cluster: bool = False) -> None:
        self.remove(name)
        env = {"KOLLA_CONFIG_STRATEGY": "COPY_ALWAYS"}
        if new_cluster:
            env["STACKYARD_GALERA_NEW_CLUSTER"] = "1"
        self.containers[name] = self.client.containers.run(
            IMAGE, detach=True, network_mode="host", environment=env, name=self.prefix + name,
            volumes=self.mounts(name), stop_signal="SIGTERM", labels=self.labels)

    def stop(self, name: str) -> None:
        self.containers[name].stop(timeout=90)

    def kill(self, name: str) -> None:
        self.containers[name].kill(signal="SIGKILL")
        self.containers[name].wait(timeout=30)

    def remove(self, name: str) -> None:
        c = self.containers.pop(name, None)
        if c is not None:
            c.remove(force=True)

    def logs(self, name: str) -> str:
        return self.containers[name].logs(stdout=True, stderr=True).decode(errors="replace")

    def exec(self, name: str, cmd, env=None) -> tuple[int, str]:
        """(exit code, stdout) of a command in the node; stderr is appended on failure."""
        r = self.containers[name].exec_run(cmd, user="mysql", environment=env, demux=True)
        stdout, stderr = (part.decode(errors="replace") if part else "" for part in r.output)
        return r.exit_code, stdout if r.exit_code == 0 else stdout + stderr

    def sql(self, name: str, statement: str) -> str:
        """Run SQL as root over TCP on the node's own address (checks bind-address and root@%)."""
        code, out = self.exec(name, ["mariadb", "-h", NODES[name], "-P", "3306", "-u", "root",
                                     "--batch", "--skip-column-names", "-e", statement],
                              env={"MYSQL_PWD": ROOT_PASSWORD})
        assert code == 0, "%s: %s -> %s" % (name, statement, out)
        return out.strip()

    def status(self, name: str, variable: str) -> str:
        out = self.sql(name, "SHOW GLOBAL STATUS LIKE '%s'" % variable)
        return out.split("\t")[1] if "\t" in out else ""

    def health(self, name: str) -> tuple[int, str]:
        return self.exec(name, ["galera-health"])

    def wait_healthy(self, name: str, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        out = ""
        while time.monotonic() < deadline:
            c = self.containers[name]
            c.reload()
            if c.status in ("exited", "dead"):
                pytest.fail("%s exited while starting:\n%s" % (name, self.logs(name)[-6000:]))
            code, out = self.health(name)
            if code == 0:
                return out
            time.sleep(1)
        pytest.fail("%s never became healthy; last: %s\nlogs:\n%s" % (name, out, self.logs(name)[-6000:]))

    def wait_size(self, name: str, size: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status(name, "wsrep_cluster_size") == str(size):
                return
            time.sleep(0.5)
        pytest.fail("%s: cluster size never became %d (is %s)"
                    % (name, size, self.status(name, "wsrep_cluster_size")))

    def recover(self, name: str) -> tuple[dict, str]:
        """galera-recover's JSON and its whole output."""
        code, out = self.one_off(name, "recover", command=["galera-recover"])
        assert code == 0, "%s: galera-recover failed (%d):\n%s" % (name, code, out)
        lines = [l for l in out.splitlines() if l.startswith("{")]
        assert len(lines) == 1, out
        return json.loads(lines[0]), out

    def cleanup(self) -> None:
        mine = {"label": "org.stackyard.e2e=%s" % self.labels["org.stackyard.e2e"]}
        for c in self.client.containers.list(all=True, filters=mine):
            try:
                c.remove(force=True)
            except docker.errors.APIError:
                pass
        for v in self.client.volumes.list(filters=mine):
            try:
                v.remove(force=True)
            except docker.errors.APIError:
                pass


def choose_bootstrap_node(states: dict[str, dict]) -> str:
    """The node to start a new cluster from: highest seqno, then safe_to_bootstrap."""
    return max(sorted(states), key=lambda n: (states[n]["seqno"], states[n]["safe_to_bootstrap"]))


@pytest.fixture(scope="module")
def cluster(client, tmp_path_factory):
    c = Cluster(client, tmp_path_factory.mktemp("galera"))
    try:
        for name in NODES:
            c.bootstrap(name)
        yield c
    finally:
        c.cleanup()


# ---------------------------------------------------------------------------
# the flow: the tests run in order and share the cluster

def test_first_node_starts_a_new_cluster(cluster):
    cluster.start("node1", new_cluster=True)
    out = cluster.wait_healthy("node1")
    assert "state=Synced" in out and "cluster_size=1" in out
    assert "--wsrep-new-cluster" in cluster.logs("node1")
    assert cluster.status("node1", "wsrep_cluster_status") == "Primary"


def test_two_nodes_join_by_sst(cluster):
    for name in ("node2", "node3"):
        cluster.start(name)
        cluster.wait_healthy(name)
    for name in NODES:
        cluster.wait_size(name, 3)
        code, out = cluster.health(name)
        assert code == 0 and "cluster_size=3" in out, out
    # the joiners got their data by a mariabackup SST
    for name in ("node2", "node3"):
        logs = cluster.logs(name)
        assert "SST succeeded" in logs and "mariabackup" in logs, logs[-3000:]


def test_rows_written_on_one_node_are_read_on_another(cluster):
    cluster.sql("node1", "CREATE DATABASE sytest; CREATE TABLE sytest.t (id INT PRIMARY KEY "
                         "AUTO_INCREMENT, v VARCHAR(32)) ENGINE=InnoDB; "
                         "INSERT INTO sytest.t (v) VALUES ('one'), ('two'), ('three')")
    deadline = time.monotonic() + 30
    while cluster.sql("node3", "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='sytest'") != "1":
        assert time.monotonic() < deadline, "table never reached node3"
        time.sleep(0.5)
    assert cluster.sql("node3", "SET SESSION wsrep_sync_wait = 1; SELECT v FROM sytest.t ORDER BY id").split() \
        == ["one", "two", "three"]


def test_full_stop_recover_and_restart_from_the_most_advanced_node(cluster):
    # stop one by one; node3 writes after node1 left, so node3 ends ahead of node1
    cluster.stop("node1")
    cluster.wait_size("node3", 2)
    cluster.sql("node3", "INSERT INTO sytest.t (v) VALUES ('four')")
    cluster.stop("node2")
    cluster.wait_size("node3", 1)
    cluster.sql("node3", "INSERT INTO sytest.t (v) VALUES ('five')")
    cluster.stop("node3")

    states = {}
    for name in NODES:
        states[name], out = cluster.recover(name)
        assert "wsrep-recover" not in out, out  # a clean stop leaves the position in grastate.dat
    uuids = {s["uuid"] for s in states.values()}
    assert len(uuids) == 1 and "00000000-0000-0000-0000-000000000000" not in uuids, states
    assert states["node3"]["seqno"] > states["node2"]["seqno"] > states["node1"]["seqno"] >= 0, states
    assert states["node3"]["safe_to_bootstrap"] == 1, states
    first = choose_bootstrap_node(states)
    assert first == "node3"

    cluster.start(first, new_cluster=True)
    cluster.wait_healthy(first)
    for name in NODES:
        if name != first:
            cluster.start(name)
    for name in NODES:
        cluster.wait_healthy(name)
        cluster.wait_size(name, 3)
    for name in NODES:
        rows = cluster.sql(name, "SET SESSION wsrep_sync_wait = 1; SELECT v FROM sytest.t ORDER BY id").split()
        assert rows == ["one", "two", "three", "four", "five"], (name, rows)


def test_killed_node_leaves_a_primary_pair_then_recovers_and_rejoins(cluster):
    cluster.kill("node2")
    cluster.wait_size("node1", 2)
    assert cluster.status("node1", "wsrep_cluster_status") == "Primary"
    code, out = cluster.health("node1")
    assert code == 0 and "cluster_size=2" in out, out
    cluster.sql("node1", "INSERT INTO sytest.t (v) VALUES ('six')")

    # unclean stop: grastate.dat says seqno -1, galera-recover asks InnoDB
    state, out = cluster.recover("node2")
    assert "mariadbd --wsrep-recover found" in out, out
    assert state["seqno"] > 0 and state["safe_to_bootstrap"] == 0, state
    # the position node2 had when it was killed: before 'six', at or after 'five'
    assert state["seqno"] < int(cluster.status("node1", "wsrep_last_committed")), state

    cluster.start("node2")
    cluster.wait_healthy("node2")
    for name in NODES:
        cluster.wait_size(name, 3)
    rows = cluster.sql("node2", "SET SESSION wsrep_sync_wait = 1; SELECT v FROM sytest.t ORDER BY id").split()
    assert rows == ["one", "two", "three", "four", "five", "six"]


def test_health_reports_a_stopped_server(cluster):
    # galera-health in a container whose server is down: one line, exit 1
    code, out = cluster.one_off("node1", "health", command=["galera-health"], timeout=60)
    assert code == 1
    assert out.strip().count("\n") == 0 and out.startswith("galera-health: server does not answer"), out
