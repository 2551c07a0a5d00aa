"""Black-box tests of the runtime contract in real containers.

They run the base image (env STACKYARD_BASE_IMAGE, default the E2E
namespace's <STACKYARD_E2E_NAMESPACE>/base:2025.1 that scripts/test.sh built)
plus a tiny throwaway image built FROM it with a test service and a bootstrap
hook.  Host networking only, 127.0.0.1 only.  Every container (named
sytest-rc-<run>-*, labelled org.stackyard.e2e=sytest-rc-<run>) and image
created here is removed again.
"""

import io
import json
import os
import socket
import tarfile
import textwrap
import time
import uuid

import docker
import pytest

pytestmark = pytest.mark.e2e

BASE_IMAGE = os.environ.get("STACKYARD_BASE_IMAGE") or \
    f"{os.environ.get('STACKYARD_E2E_NAMESPACE', 'stackyard-e2e')}/base:2025.1"
RUN_ID = "sytest-rc-%s" % uuid.uuid4().hex[:8]
LABELS = {"org.stackyard.e2e": RUN_ID}
CONFIG_DIR = "/var/lib/kolla/config_files"

SERVICE = r'''#!/usr/bin/python3
"""e2e-svc: a service for the runtime contract tests."""
import json, os, signal, subprocess, sys, time

args = sys.argv[1:]
if args[:1] == ["--print-args"]:
    print("ARGS " + json.dumps(args[1:]), flush=True)
    sys.exit(0)

def on_term(signum, frame):
    print("got SIGTERM", flush=True)
    sys.exit(0)

signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # reap the listener when it dies
if args[:1] == ["--spawn-listener"]:
    subprocess.Popen(["/usr/local/bin/e2e-listener", args[1]])
print("ready uid=%d" % os.getuid(), flush=True)
while True:
    time.sleep(3600)
'''

LISTENER = r'''#!/usr/bin/python3
import os, socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
with open("/tmp/e2e-listener.pid", "w") as f:
    f.write(str(os.getpid()))
print("listening", flush=True)
while True:
    time.sleep(3600)
'''

BOOTSTRAP = "#!/bin/sh\necho \"bootstrap ran as $(id -un) strategy=$KOLLA_CONFIG_STRATEGY\"\nexit 3\n"


# ---------------------------------------------------------------------------
# fixtures

@pytest.fixture(scope="module")
def client():
    try:
        c = docker.from_env()
        c.ping()
    except Exception as e:  # noqa: BLE001
        pytest.fail("cannot reach the Docker engine: %s" % e)
    return c


@pytest.fixture(scope="module")
def base_image(client):
    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail("base image %s does not exist: build it first (stackyard build base) "
                    "or set STACKYARD_BASE_IMAGE" % BASE_IMAGE)
    return BASE_IMAGE


def _tar(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, (text, mode) in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


@pytest.fixture(scope="module")
def test_image(client, base_image):
    tag = "%s/runtime-contract:latest" % RUN_ID
    dockerfile = textwrap.dedent("""
        FROM %s
        COPY e2e-svc e2e-listener /usr/local/bin/
        COPY bootstrap /usr/local/lib/stackyard/hooks/bootstrap
        RUN chmod 0755 /usr/local/bin/e2e-svc /usr/local/bin/e2e-listener \\
                       /usr/local/lib/stackyard/hooks/bootstrap
    """ % base_image)
    ctx = _tar({"Dockerfile": (dockerfile, 0o644), "e2e-svc": (SERVICE, 0o755),
                "e2e-listener": (LISTENER, 0o755), "bootstrap": (BOOTSTRAP, 0o755)})
    client.images.build(fileobj=ctx, custom_context=True, tag=tag, network_mode="host",
                        rm=True, forcerm=True, pull=False, labels=LABELS)
    yield tag
    try:
        client.images.remove(tag, force=True)
    except docker.errors.APIError:
        pass


class Runner:
    def __init__(self, client, image, tmp_path):
        self.client = client
        self.image = image
        self.tmp = tmp_path
        self.containers = []

    def config_dir(self, config, files=None):
        d = self.tmp / ("config-%d" % len(self.containers))
        d.mkdir()
        for name, text in (files or {}).items():
            p = d / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
            p.chmod(0o644)
        (d / "config.json").write_text(json.dumps(config))
        (d / "config.json").chmod(0o644)
        d.chmod(0o755)
        return d

    def run(self, config_dir, strategy="COPY_ALWAYS", user=None, environment=None, **kw):
        env = {"KOLLA_CONFIG_STRATEGY": strategy}
        env.update(environment or {})
        c = self.client.containers.run(
            self.image, detach=True, network_mode="host", environment=env,
            user=user or "root", name="%s-%s" % (RUN_ID, uuid.uuid4().hex[:10]), labels=LABELS,
            volumes={str(config_dir): {"bind": CONFIG_DIR, "mode": "ro"}}, **kw)
        self.containers.append(c)
        return c

    def cleanup(self):
        for c in self.containers:
            try:
                c.remove(force=True)
            except docker.errors.APIError:
                pass


@pytest.fixture
def runner(client, test_image, tmp_path):
    r = Runner(client, test_image, tmp_path)
    yield r
    r.cleanup()


def logs(c):
    return c.logs(stdout=True, stderr=True).decode(errors="replace")


def wait_for_log(c, text, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = logs(c)
        if text in out:
            return out
        c.reload()
        if c.status in ("exited", "dead"):
            break
        time.sleep(0.2)
    pytest.fail("container never logged %r; status %s; logs:\n%s" % (text, c.status, logs(c)))


def exec_(c, cmd, user="root"):
    r = c.exec_run(cmd, user=user)
    return r.exit_code, r.output.decode(errors="replace")


def svc_config(command="e2e-svc", extra_files=()):
    return {
        "command": command,
        "config_files": [
            {"source": CONFIG_DIR + "/svc.conf", "dest": "/etc/e2e/svc.conf",
             "owner": "kolla", "perm": "0600"},
            {"source": CONFIG_DIR + "/conf.d", "dest": "/etc/e2e/conf.d",
             "owner": "kolla:kolla", "perm": "0640"},
            *extra_files,
        ],
    }


SVC_FILES = {"svc.conf": "version = 1\n", "conf.d/a.conf": "a\n", "conf.d/sub/b.conf": "b\n"}


# ---------------------------------------------------------------------------
# tests

@pytest.mark.parametrize("strategy", ["COPY_ALWAYS", "COPY_ONCE"])
def test_config_strategy_across_restart(runner, strategy):
    d = runner.config_dir(svc_config(), SVC_FILES)
    # as the unprivileged kolla user: kolla_start installs config via sudo
    c = runner.run(d, strategy, user="kolla")
    wait_for_log(c, "ready uid=42400")
    assert exec_(c, "cat /etc/e2e/svc.conf") == (0, "version = 1\n")
    assert exec_(c, "stat -c '%U:%G %a' /etc/e2e/svc.conf")[1].strip() == "kolla:kolla 600"
    assert exec_(c, "stat -c '%U:%G %a' /etc/e2e/conf.d/sub")[1].strip() == "kolla:kolla 750"

    (d / "svc.conf").write_text("version = 2\n")
    c.restart(timeout=10)
    deadline = time.monotonic() + 30
    while logs(c).count("ready uid=42400") < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert logs(c).count("ready uid=42400") == 2, logs(c)
    content = exec_(c, "cat /etc/e2e/svc.conf")[1]
    if strategy == "COPY_ALWAYS":
        assert content == "version = 2\n"
    else:
        assert content == "version = 1\n"
        assert "immutable" in logs(c)


def test_check_before_and_after_changing_mounted_config(runner):
    d = runner.config_dir(svc_config(), SVC_FILES)
    c = runner.run(d)
    wait_for_log(c, "ready")
    # right after start: no false alarm (includes a directory source)
    code, out = exec_(c, "kolla_set_configs --check")
    assert code == 0, out
    (d / "conf.d" / "sub" / "b.conf").write_text("b changed\n")
    code, out = exec_(c, "kolla_set_configs --check")
    assert code == 1, out
    assert "/etc/e2e/conf.d/sub/b.conf" in out and "b changed" not in out
    (d / "conf.d" / "sub" / "b.conf").write_text("b\n")
    assert exec_(c, "kolla_set_configs --check")[0] == 0
    (d / "config.json").write_text("{broken")
    assert exec_(c, "kolla_set_configs --check")[0] == 2


def test_bootstrap_exit_code_reaches_docker_wait(runner):
    d = runner.config_dir(svc_config(), SVC_FILES)
    c = runner.run(d, user="kolla", environment={"KOLLA_BOOTSTRAP": "1"})
    result = c.wait(timeout=60)
    assert result["StatusCode"] == 3, logs(c)
    out = logs(c)
    assert "bootstrap ran as kolla strategy=COPY_ALWAYS" in out
    assert "ready" not in out


def test_upgrade_without_hook_exits_0(runner):
    d = runner.config_dir(svc_config(), SVC_FILES)
    c = runner.run(d, environment={"KOLLA_UPGRADE": "1"})
    assert c.wait(timeout=60)["StatusCode"] == 0
    assert "no upgrade hook" in logs(c)


def test_quoted_arguments_reach_the_process_intact(runner):
    d = runner.config_dir(svc_config(
        command="""e2e-svc --print-args 'hello world' "it's" '' "a \\"b\\" c" --x=$HOME"""), SVC_FILES)
    c = runner.run(d)
    assert c.wait(timeout=60)["StatusCode"] == 0, logs(c)
    line = [x for x in logs(c).splitlines() if x.startswith("ARGS ")][0]
    assert json.loads(line[5:]) == ["hello world", "it's", "", 'a "b" c', "--x=$HOME"]


def test_invalid_config_fails_the_start(runner):
    d = runner.config_dir({"config_files": []})
    c = runner.run(d)
    assert c.wait(timeout=60)["StatusCode"] == 1
    assert "command is required" in logs(c)


def test_docker_stop_is_fast_for_a_sigterm_handling_service(runner):
    d = runner.config_dir(svc_config(), SVC_FILES)
    c = runner.run(d, user="kolla")
    wait_for_log(c, "ready")
    # the service is the only child of dumb-init: nothing in between
    code, out = exec_(c, "cat /proc/1/comm")
    assert out.strip() == "dumb-init"
    code, out = exec_(c, "sh -c 'cat /proc/$(cat /proc/1/task/1/children | cut -d\" \" -f1)/comm'")
    assert out.strip() == "e2e-svc", out
    started = time.monotonic()
    c.stop(timeout=10)
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, "docker stop took %.1f s" % elapsed
    assert c.wait(timeout=10)["StatusCode"] == 0  # exited by its handler, not SIGKILL
    assert "got SIGTERM" in logs(c)


def _free_port():
    for port in range(21000 + os.getpid() % 5000, 32768):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail("no free port between 20000 and 32767")


def _health(c):
    c.reload()
    return c.attrs["State"].get("Health", {}).get("Status")


def test_healthcheck_listen_turns_unhealthy_when_service_dies(runner):
    port = _free_port()
    d = runner.config_dir(svc_config(command="e2e-svc --spawn-listener %d" % port), SVC_FILES)
    second = 1_000_000_000
    c = runner.run(d, user="kolla", healthcheck={
        "test": ["CMD", "healthcheck_listen", "e2e-listener", str(port)],
        "interval": second // 2, "timeout": 5 * second, "retries": 2, "start_period": 0})
    wait_for_log(c, "listening")
    deadline = time.monotonic() + 30
    while _health(c) != "healthy" and time.monotonic() < deadline:
        time.sleep(0.25)
    assert _health(c) == "healthy", c.attrs["State"].get("Health")
    code, out = exec_(c, "sh -c 'kill -9 $(cat /tmp/e2e-listener.pid)'", user="kolla")
    assert code == 0, out
    deadline = time.monotonic() + 30
    while _health(c) != "unhealthy" and time.monotonic() < deadline:
        time.sleep(0.25)
    health = c.attrs["State"]["Health"]
    assert health["Status"] == "unhealthy", health
    last = health["Log"][-1]
    assert last["ExitCode"] == 1 and "e2e-listener" in last["Output"]


def test_healthcheck_scripts_in_the_image(runner):
    port = _free_port()
    d = runner.config_dir(svc_config(command="e2e-svc --spawn-listener %d" % port), SVC_FILES)
    c = runner.run(d)
    wait_for_log(c, "listening")
    assert exec_(c, "healthcheck_listen e2e-listener %d" % port)[0] == 0
    assert exec_(c, "healthcheck_listen e2e-listener %d" % (port + 1))[0] == 1
    assert exec_(c, "healthcheck_port e2e-svc %d" % port)[0] == 1
    assert exec_(c, "healthcheck_curl http://127.0.0.1:%d/" % port)[0] == 1
    code, out = exec_(c, "healthcheck_socket no-such-process /run/x.sock")
    assert code == 1 and "no process named" in out


def test_sudoers_allows_only_the_contract(runner):
    d = runner.config_dir(svc_config(), SVC_FILES)
    c = runner.run(d)
    wait_for_log(c, "ready")
    assert exec_(c, "visudo -c")[0] == 0
    assert exec_(c, "stat -c '%a %U' /etc/sudoers.d/kolla_sudoers")[1].strip() == "440 root"
    assert exec_(c, "sudo -n /usr/local/bin/kolla_set_configs --check", user="kolla")[0] == 0
    assert exec_(c, "sudo -n /bin/true", user="kolla")[0] != 0
    # the environment cannot be smuggled in with -E
    assert exec_(c, "sudo -n -E /usr/local/bin/kolla_set_configs --check", user="kolla")[0] != 0
