"""End to end: the haproxy and keepalived images through the runtime contract.

haproxy gets its haproxy.cfg from set_configs, starts as root, drops to the
haproxy user, proxies 127.0.0.1 to a backend on 127.0.0.1 and exposes its admin
socket in /run/haproxy, a volume shared with a keepalived container whose
check-haproxy reads it. keepalived is only config-tested (-t): a running VRRP
instance would send multicast on a real interface, and this test talks to
loopback addresses only. The images are the E2E namespace's
(``STACKYARD_E2E_NAMESPACE``, built by scripts/test.sh). Everything is named
sytest-lb-<run>-*, labelled org.stackyard.e2e=<run>, and removed.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.request
import uuid

import docker
import pytest

pytestmark = pytest.mark.e2e

NS = os.environ.get("STACKYARD_E2E_NAMESPACE", "stackyard-e2e")
HAPROXY = f"{NS}/haproxy:2025.1"
KEEPALIVED = f"{NS}/keepalived:2025.1"
CONFIG_DIR = "/var/lib/kolla/config_files"
FRONT_PORT = 18481
STATS_PORT = 18482
HAPROXY_UID = 42454

HAPROXY_CFG = f"""\
global
    user haproxy
    group haproxy
    chroot /var/lib/haproxy
    stats socket /run/haproxy/admin.sock mode 660 level admin
    log stdout format raw local0

defaults
    mode http
    log global
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend monitor
    bind 127.0.0.1:{STATS_PORT}
    monitor-uri /monitor
    http-request return status 200 content-type text/plain string "stats ok"

listen web
    bind 127.0.0.1:{FRONT_PORT}
    server local 127.0.0.1:{STATS_PORT} check inter 1s
"""

KEEPALIVED_CONF = """\
global_defs {
    router_id sytest
    script_user root
    enable_script_security
}
vrrp_script check_haproxy {
    script "/usr/local/bin/check-haproxy /run/haproxy/admin.sock"
    interval 2
    fall 2
    rise 2
}
"""


def free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    try:
        client = docker.from_env()
        client.ping()
        for image in (HAPROXY, KEEPALIVED):
            client.images.get(image)
    except docker.errors.ImageNotFound as e:
        pytest.fail("%s: build it first (stackyard build --namespace %s haproxy keepalived)" % (e, NS))
    except Exception as e:  # noqa: BLE001
        pytest.fail("cannot reach the Docker engine: %s" % e)
    assert free(FRONT_PORT) and free(STATS_PORT), "test ports in use"
    run_id = uuid.uuid4().hex[:8]
    prefix = "sytest-lb-%s-" % run_id
    labels = {"org.stackyard.e2e": "sytest-lb-" + run_id}
    base = tmp_path_factory.mktemp("lb")
    dirs = {}
    for name, dest, text, command in (
        ("haproxy", "/etc/haproxy/haproxy.cfg", HAPROXY_CFG, "haproxy -W -db -f /etc/haproxy/haproxy.cfg"),
        ("keepalived", "/etc/keepalived/keepalived.conf", KEEPALIVED_CONF, "sleep infinity"),
    ):
        d = base / name
        d.mkdir()
        fname = dest.rsplit("/", 1)[1]
        (d / fname).write_text(text)
        (d / "config.json").write_text(json.dumps({"command": command, "config_files": [
            {"source": f"{CONFIG_DIR}/{fname}", "dest": dest, "owner": "root", "perm": "0644"}]}))
        for p in d.iterdir():
            p.chmod(0o644)
        d.chmod(0o755)
        dirs[name] = d
    volume = client.volumes.create(prefix + "run-haproxy", labels=labels)
    containers = {}

    def run(name, image):
        containers[name] = client.containers.run(
            image, detach=True, network_mode="host", name=prefix + name, labels=labels,
            environment={"KOLLA_CONFIG_STRATEGY": "COPY_ALWAYS"},
            volumes={str(dirs[name]): {"bind": CONFIG_DIR, "mode": "ro"},
                     volume.name: {"bind": "/run/haproxy", "mode": "rw"}})
        return containers[name]

    try:
        yield run
    finally:
        for c in containers.values():
            try:
                c.remove(force=True)
            except docker.errors.APIError:
                pass
        try:
            volume.remove(force=True)
        except docker.errors.APIError:
            pass


def wait_http(url: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read().decode()
        except OSError as e:
            last = e
            time.sleep(0.3)
    pytest.fail("%s never answered: %s" % (url, last))


def test_haproxy_and_keepalived_check(env):
    haproxy = env("haproxy", HAPROXY)
    assert wait_http(f"http://127.0.0.1:{FRONT_PORT}/") == "stats ok"
    # healthcheck_listen cannot see the worker's sockets (it dropped to another
    # uid, so its /proc/PID/fd needs CAP_SYS_PTRACE): check over HTTP instead
    r = haproxy.exec_run(["healthcheck_curl", f"http://127.0.0.1:{STATS_PORT}/monitor"])
    assert r.exit_code == 0, r.output
    # the worker runs as the haproxy user, the master as root
    r = haproxy.exec_run(["ps", "-o", "uid=,comm=", "-C", "haproxy"])
    uids = {int(line.split()[0]) for line in r.output.decode().splitlines() if line.strip()}
    assert uids == {0, HAPROXY_UID}, r.output

    keepalived = env("keepalived", KEEPALIVED)
    deadline = time.monotonic() + 30
    while True:
        r = keepalived.exec_run(["check-haproxy", "/run/haproxy/admin.sock"])
        if r.exit_code == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r.exit_code == 0, r.output
    r = keepalived.exec_run(["keepalived", "-t", "-f", "/etc/keepalived/keepalived.conf"])
    assert r.exit_code == 0, r.output

    haproxy.stop(timeout=10)
    r = keepalived.exec_run(["check-haproxy", "/run/haproxy/admin.sock"])
    assert r.exit_code == 1 and b"check-haproxy: /run/haproxy/admin.sock" in r.output
