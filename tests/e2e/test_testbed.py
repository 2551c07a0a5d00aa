"""End-to-end: a 2-node test bed, bootstrap-servers on it, registry pulls, power cycles.

Uses its own prefix, state dir and registry port so it never collides with a
test bed an operator (or the multi-node deploy test) has up. Tests run in file
order against one test bed (module fixture), which is always removed at the end.
Needs root, the engine and debian:trixie; the node image is built on first use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import docker
import pytest

pytestmark = pytest.mark.e2e

PREFIX = "sytbe"
REGISTRY_PORT = 5001
NODES = ("node1", "node2")


def run(cmd: list[str], check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout}\n"
                             f"stderr:\n{proc.stderr}")
    return proc


class Bed:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.opts = ["--state-dir", str(state), "--prefix", PREFIX, "--registry-port", str(REGISTRY_PORT)]

    def testbed(self, action: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([sys.executable, "-m", "stackyard.cli", "testbed", action, *self.opts, *args], check=check)

    def in_ns(self, *cmd: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess[str]:
        return run(["ip", "netns", "exec", PREFIX, *cmd], check=check, timeout=timeout)

    def ssh(self, node: str, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.in_ns("ssh", "-F", str(self.state / "ssh_config"), "-o", "BatchMode=yes", node, command,
                          check=check)

    def bootstrap(self, configdir: Path) -> dict:
        proc = self.in_ns(sys.executable, "-m", "stackyard.cli", "bootstrap-servers", "--configdir", str(configdir),
                          "-i", str(self.state / "multinode"), "--format", "json")
        return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    if os.geteuid() != 0:
        pytest.skip("the test bed needs root (network namespaces)")
    client = docker.from_env()
    try:
        client.images.get("debian:trixie")
    except docker.errors.ImageNotFound:
        pytest.skip("debian:trixie is missing: run `stackyard base-image --base-tag trixie`")
    b = Bed(tmp_path_factory.mktemp("testbed"))
    b.testbed("down", "--purge", check=False)   # leftovers of an interrupted run
    yield b
    b.testbed("down", "--purge", check=False)


@pytest.fixture(scope="module")
def configdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("kolla")
    (d / "globals.yml").write_text("docker_registry: 10.250.0.1:5000\ndocker_registry_insecure: true\n")
    return d


def test_up_two_nodes(bed: Bed) -> None:
    start = time.monotonic()
    status = json.loads(bed.testbed("up", "--hosts", "2").stdout)
    print(f"testbed up (2 nodes, image build included if needed): {time.monotonic() - start:.1f}s")
    assert sorted(status["nodes"]) == list(NODES)
    assert all(n["running"] and n["plumbed"] for n in status["nodes"].values())
    assert status["nodes"]["node2"]["address"] == "10.250.0.12"
    assert status["registry"]["running"]
    inventory = (bed.state / "multinode").read_text()
    assert "node2 ansible_host=10.250.0.12" in inventory


def test_up_again_reuses_nodes(bed: Bed) -> None:
    client = docker.from_env()
    before = {c.name: c.id for c in client.containers.list(filters={"label": f"org.stackyard.testbed={PREFIX}"})}
    start = time.monotonic()
    bed.testbed("up", "--hosts", "2")
    assert time.monotonic() - start < 30
    after = {c.name: c.id for c in client.containers.list(filters={"label": f"org.stackyard.testbed={PREFIX}"})}
    assert before == after and len(after) == 2


def test_ssh_from_namespace(bed: Bed) -> None:
    for node in NODES:
        assert bed.ssh(node, "hostname").stdout.strip() == node
    # by address too, with the inventory's key (what Ansible does)
    # with the host keys checked against the test bed's known_hosts
    known = f"UserKnownHostsFile={bed.state / 'known_hosts'}"
    proc = bed.in_ns("ssh", "-i", str(bed.state / "id_ed25519"), "-o", "StrictHostKeyChecking=yes",
                     "-o", known, "-o", "BatchMode=yes", "root@10.250.0.11", "hostname")
    assert proc.stdout.strip() == "node1"
    # a host whose key is not the recorded one gets nothing
    wrong = bed.state / "wrong_known_hosts"
    node1_key = next(ln for ln in (bed.state / "known_hosts").read_text().splitlines() if ln.startswith("node1,"))
    wrong.write_text("10.250.0.12 " + node1_key.split(" ", 1)[1] + "\n")  # node2's address, node1's key
    refused = bed.in_ns("ssh", "-i", str(bed.state / "id_ed25519"), "-o", "StrictHostKeyChecking=yes",
                        "-o", f"UserKnownHostsFile={wrong}", "-o", "BatchMode=yes", "root@10.250.0.12",
                        "hostname", check=False)
    assert refused.returncode != 0 and "host key" in refused.stderr.lower(), refused.stderr


def test_nodes_reach_each_other_and_nothing_else(bed: Bed) -> None:
    bed.ssh("node1", "ping -c 2 -W 2 10.250.0.12")
    bed.ssh("node1", "ping -c 1 -W 2 node2")          # /etc/hosts from the test bed
    # the second NIC: a tunnel segment of its own, the next /24, no deploy host on it
    bed.ssh("node1", "ping -c 2 -W 2 -I eth1 10.250.1.12")
    assert bed.ssh("node1", "ping -c 1 -W 1 10.250.1.1", check=False).returncode != 0
    routes = sorted(bed.ssh("node1", "ip -4 route").stdout.strip().splitlines())
    assert len(routes) == 2, routes
    assert routes[0].startswith("10.250.0.0/24 dev eth0") and routes[1].startswith("10.250.1.0/24 dev eth1")
    # a route lookup only: no packet leaves
    lookup = bed.ssh("node1", "ip -4 route get 192.0.2.1", check=False)
    assert lookup.returncode != 0 and "unreachable" in lookup.stderr.lower()
    assert bed.ssh("node2", "ip -6 route show default").stdout.strip() == ""


def test_bootstrap_servers(bed: Bed, configdir: Path) -> None:
    start = time.monotonic()
    first = bed.bootstrap(configdir)
    print(f"bootstrap-servers (2 nodes): {time.monotonic() - start:.1f}s")
    assert first["failed_hosts"] == [] and first["changed"] > 0
    assert sorted(first["hosts"]) == list(NODES)   # the deployment-only localhost is skipped
    for node in NODES:
        info = json.loads(bed.ssh(node, "docker info --format '{{json .}}'").stdout)
        assert info["Driver"] == "overlay2"
        assert "10.250.0.1:5000" in json.dumps(info["RegistryConfig"])
        networks = bed.ssh(node, "docker network ls --format '{{.Name}}'").stdout.split()
        assert "bridge" not in networks
        hosts = bed.ssh(node, "cat /etc/hosts").stdout
        assert "10.250.0.11 node1" in hosts and "10.250.0.12 node2" in hosts
    second = bed.bootstrap(configdir)
    assert second["changed"] == 0, second


def test_registry_push_and_pull_in_node(bed: Bed) -> None:
    client = docker.from_env()
    ref = f"127.0.0.1:{REGISTRY_PORT}/stackyard-e2e/debian:trixie"
    client.images.get("debian:trixie").tag(ref)
    try:
        run(["docker", "push", "-q", ref])
    finally:
        client.images.remove(ref)
    for node in NODES:
        bed.ssh(node, "docker pull -q 10.250.0.1:5000/stackyard-e2e/debian:trixie")
    out = bed.ssh("node2", "docker run --rm --network none 10.250.0.1:5000/stackyard-e2e/debian:trixie "
                           "cat /etc/debian_version").stdout
    assert out.strip().startswith("13")


def test_stop_and_start_replumbs(bed: Bed) -> None:
    bed.testbed("stop", "node2")
    status = json.loads(bed.testbed("status").stdout)
    assert status["nodes"]["node2"]["running"] is False
    assert bed.ssh("node1", "ping -c 1 -W 1 10.250.0.12", check=False).returncode != 0
    bed.testbed("start", "node2")
    status = json.loads(bed.testbed("status").stdout)
    assert status["nodes"]["node2"]["running"] and status["nodes"]["node2"]["plumbed"]
    assert bed.ssh("node2", "hostname").stdout.strip() == "node2"
    bed.ssh("node1", "ping -c 2 -W 2 10.250.0.12")
    bed.ssh("node1", "ping -c 2 -W 2 10.250.1.12")
    # docker was enabled by bootstrap-servers: it starts at boot, with its images kept
    deadline = time.monotonic() + 30
    while bed.ssh("node2", "docker info >/dev/null 2>&1", check=False).returncode != 0:
        assert time.monotonic() < deadline, "dockerd did not start at boot"
        time.sleep(0.5)
    assert "stackyard-e2e/debian" in bed.ssh("node2", "docker images").stdout


def test_down_cleans_up(bed: Bed) -> None:
    status = json.loads(bed.testbed("status").stdout)
    pids = [status["registry"]["pid"], status["registry"]["forwarder_pid"]]
    bed.testbed("down")
    assert PREFIX not in run(["ip", "netns", "list"]).stdout.split()
    client = docker.from_env()
    assert client.containers.list(all=True, filters={"label": f"org.stackyard.testbed={PREFIX}"}) == []
    volumes = [v.name for v in client.volumes.list() if v.name.startswith(f"{PREFIX}-")]
    assert volumes == []
    assert not any(Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/cmdline").read_bytes()
                   for pid in pids if pid)
    assert (bed.state / "registry" / "data").is_dir()     # kept without --purge
    bed.testbed("down")                                    # twice is fine
