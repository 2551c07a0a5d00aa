"""End to end: ``stackyard build`` against the real Docker engine.

One module-scoped build makes the core set (the images named in CORE) under a
namespace of these tests' own (``<E2E namespace>-build/<name>:2025.1``), with
work dirs under pytest's tmp dirs: the base image is a cache hit on the one
scripts/test.sh built (its hash does not depend on the namespace), the rest
reuse Docker's layer cache; later runs are cache hits. Extra tags and images
made by single tests are removed by them, and only those. Everything runs with host networking; the only traffic
leaves for the Debian mirror (apt inside builds) and 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

CORE = ["base", "cron", "keystone", "mariadb-server", "memcached", "openstack-base", "rabbitmq"]
SERVICES = ["cron", "keystone", "mariadb-server", "memcached", "rabbitmq"]
TAG = "2025.1"
#: these tests' own image namespace (never the one the deployments use)
NS = os.environ.get("STACKYARD_E2E_NAMESPACE", "stackyard-e2e") + "-build"
STACKYARD = str(Path(sys.executable).with_name("stackyard"))

UIDS = {
    "kolla": 42400, "glance": 42415, "keystone": 42425, "mysql": 42434, "neutron": 42435,
    "nova": 42436, "rabbitmq": 42439, "memcached": 42457, "placement": 42482,
}


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


if not _docker_available():
    pytest.skip("no Docker engine", allow_module_level=True)


# ----------------------------------------------------------------- helpers
def build(*args: str, work: Path, timeout: int = 1200) -> tuple[int, dict[str, Any], str]:
    """Run ``stackyard build`` under :data:`NS`; return (exit code, JSON summary, stderr)."""
    work.mkdir(parents=True, exist_ok=True)
    summary_file = work / "summary.json"
    if summary_file.exists():
        summary_file.unlink()
    cmd = [STACKYARD, "build", "--config", str(_empty_config(work)), "--namespace", NS, "--work-dir", str(work),
           "--format", "json", "--summary-file", str(summary_file), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    if summary:
        assert json.loads(r.stdout) == summary, "stdout JSON and --summary-file differ"
    return r.returncode, summary, r.stderr


def _empty_config(work: Path) -> Path:
    """No /etc/stackyard/build.yml: only the built-in defaults and the flags count."""
    p = work / "empty-build.yml"
    work.mkdir(parents=True, exist_ok=True)
    if not p.exists():
        p.write_text("")
    return p


def ref(name: str, tag: str = TAG) -> str:
    return f"{NS}/{name}:{tag}"


def drun(image: str, script: str, *, user: str | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    cmd = ["docker", "run", "--rm", "--network", "host", "--entrypoint", "sh"]
    if user:
        cmd += ["--user", user]
    return subprocess.run(cmd + [image, "-c", script], capture_output=True, text=True, timeout=timeout)


def rmi(*refs: str) -> None:
    if refs:
        subprocess.run(["docker", "rmi", *refs], capture_output=True)


def images_matching(reference: str) -> list[str]:
    r = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}",
                        "--filter", f"reference={reference}"], capture_output=True, text=True)
    return [l for l in r.stdout.split() if l and "<none>" not in l]


# ----------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The work dir of the core builds."""
    return tmp_path_factory.mktemp("build-work")


@pytest.fixture(scope="module")
def core_build(work: Path) -> dict[str, Any]:
    code, summary, err = build(*CORE, work=work)
    assert code == 0, err[-3000:]
    return summary


@pytest.fixture(scope="module")
def image_facts(core_build) -> dict[str, dict[str, Any]]:
    """Per image: passwd/group entries, installed packages, compilers, apt lists."""
    script = (
        "echo '##passwd'; getent passwd; echo '##group'; getent group; "
        "echo '##packages'; dpkg-query -W -f '${Package}\\n'; "
        "echo '##compilers'; for c in gcc cc c++ g++ clang make; do command -v $c; done; "
        "ls /usr/bin/gcc-* /usr/bin/*-gcc /usr/bin/*-gcc-* 2>/dev/null; "
        "echo '##aptlists'; find /var/lib/apt/lists -mindepth 1 ! -type d; "
        "find /var/cache/apt -type f \\( -name '*.deb' -o -name '*.bin' \\); "
        "echo '##end'"
    )
    facts: dict[str, dict[str, Any]] = {}
    for name in CORE:
        r = drun(ref(name), script, user="root")
        assert r.returncode == 0, r.stderr
        sections: dict[str, list[str]] = {}
        current = ""
        for line in r.stdout.splitlines():
            if line.startswith("##"):
                current = line[2:]
                sections[current] = []
            elif line.strip():
                sections[current].append(line.strip())
        assert "end" in sections, r.stdout[-500:]
        facts[name] = sections
    return facts


# ----------------------------------------------------------------- the core set
def test_core_build_succeeds(core_build):
    assert core_build["failed"] == [] and core_build["parent_failed"] == []
    assert set(CORE) <= set(core_build["built"] + core_build["cached"])
    for name in CORE:
        info = core_build["images"][name]
        assert info["ref"] == ref(name)
        assert len(info["hash"]) == 64 and info["image_id"].startswith("sha256:")
        assert info["size"] > 0


def test_images_carry_hash_label(core_build):
    for name in CORE:
        r = subprocess.run(["docker", "image", "inspect", ref(name)], capture_output=True, text=True)
        labels = json.loads(r.stdout)[0]["Config"]["Labels"]
        assert labels["org.stackyard.hash"] == core_build["images"][name]["hash"]
        assert labels["org.stackyard.image"] == name


@pytest.mark.parametrize(
    "image, script, expect",
    [
        ("keystone", "keystone-manage --version", "27."),
        ("mariadb-server", "mariadbd --version", "MariaDB"),
        ("mariadb-server", "mariadb --version", "MariaDB"),
        ("memcached", "memcached -V", "memcached 1."),
        ("rabbitmq", "rabbitmqctl version", "4."),
        ("rabbitmq", "test -x /usr/lib/rabbitmq/bin/rabbitmq-server && echo present", "present"),
        ("cron", "logrotate --version", "logrotate"),
        ("cron", "test -x /usr/sbin/cron && command -v cron", "/usr/sbin/cron"),
        ("base", "python3 --version", "Python 3."),
        ("base", "for c in kolla_start kolla_set_configs dumb-init; do command -v $c; done", "kolla_start"),
    ],
)
def test_service_binaries_run(core_build, image, script, expect):
    r = drun(ref(image), script)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert expect in r.stdout + r.stderr


def test_default_command_runs_through_dumb_init(core_build):
    r = subprocess.run(["docker", "run", "--rm", "--network", "host", ref("memcached"), "memcached", "-V"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "memcached 1." in r.stdout
    cfg = json.loads(subprocess.run(["docker", "image", "inspect", ref("keystone")],
                                    capture_output=True, text=True).stdout)[0]["Config"]
    assert cfg["Entrypoint"] == ["dumb-init", "--single-child", "--"]
    assert cfg["Cmd"] == ["kolla_start"]
    assert cfg["User"] == "keystone"


@pytest.mark.parametrize("image", CORE)
def test_fixed_uids(image_facts, image):
    passwd = {l.split(":")[0]: l.split(":") for l in image_facts[image]["passwd"]}
    groups = {l.split(":")[0]: l.split(":") for l in image_facts[image]["group"]}
    for user, uid in UIDS.items():
        assert user in passwd, f"{image}: no user {user}"
        assert int(passwd[user][2]) == uid, f"{image}: {user} has uid {passwd[user][2]}, want {uid}"
        assert int(passwd[user][3]) == uid, f"{image}: {user} has gid {passwd[user][3]}, want {uid}"
        assert int(groups[user][2]) == uid
    # every service user is in the kolla group
    members = groups["kolla"][3].split(",") if groups["kolla"][3] else []
    assert {"keystone", "mysql", "rabbitmq", "memcached"} <= set(members)


@pytest.mark.parametrize("image", CORE)
def test_no_compilers_and_no_dev_packages(image_facts, image):
    assert image_facts[image]["compilers"] == [], f"{image}: {image_facts[image]['compilers']}"
    packages = image_facts[image]["packages"]
    assert "gcc" not in packages and "build-essential" not in packages
    dev = [p for p in packages if p.split(":")[0].endswith("-dev")]
    assert dev == [], f"{image} has development packages: {dev}"


@pytest.mark.parametrize("image", CORE)
def test_apt_lists_empty(image_facts, image):
    assert image_facts[image]["aptlists"] == [], f"{image}: {image_facts[image]['aptlists']}"


def test_second_build_is_all_cached(core_build, work):
    start = time.monotonic()
    code, summary, err = build(*CORE, work=work)
    elapsed = time.monotonic() - start
    assert code == 0, err[-2000:]
    assert summary["built"] == [] and summary["failed"] == []
    assert set(CORE) <= set(summary["cached"])
    assert summary["cached"] == sorted(core_build["built"] + core_build["cached"])
    for name in CORE:
        assert summary["images"][name]["hash"] == core_build["images"][name]["hash"]
        assert summary["images"][name]["image_id"] == core_build["images"][name]["image_id"]
    assert elapsed < 60, f"a no-change build took {elapsed:.0f}s"


def test_selection_builds_only_what_is_asked(core_build, work):
    code, summary, err = build("memcached", work=work)
    assert code == 0, err[-2000:]
    assert summary["cached"] == ["base", "memcached"]
    assert "keystone" in summary["unmatched"]


# ----------------------------------------------------------------- overrides
OVERRIDE = """\
{% extends parent_template %}
{% set keystone_packages_append = ['less'] %}
{% block keystone_header %}
RUN echo header > /etc/stackyard-override-header
{% endblock %}
{% block keystone_footer %}
RUN echo footer > /etc/stackyard-override-footer
{% endblock %}
"""


def test_template_override_lands_in_image(core_build, tmp_path):
    override = tmp_path / "override.j2"
    override.write_text(OVERRIDE)
    work = tmp_path / "work"
    try:
        code, summary, err = build("keystone", "--tag", "overridetest", "--template-override", str(override),
                                   work=work)
        assert code == 0, err[-3000:]
        assert summary["failed"] == []
        assert summary["images"]["keystone"]["status"] == "built"
        # base has no FROM on our tag, so its hash and image are shared with the main build
        assert summary["images"]["base"]["hash"] == core_build["images"]["base"]["hash"]
        r = drun(ref("keystone", "overridetest"),
                 "dpkg-query -W -f '${Status}' less && command -v less && "
                 "cat /etc/stackyard-override-header /etc/stackyard-override-footer && id -un")
        assert r.returncode == 0, r.stderr
        assert "install ok installed" in r.stdout
        assert "/usr/bin/less" in r.stdout
        assert "header\nfooter\nkeystone" in r.stdout
        # the main image is untouched
        r = drun(ref("keystone"), "command -v less || echo absent; ls /etc/stackyard-override-footer 2>&1")
        assert "absent" in r.stdout and "No such file" in r.stdout
    finally:
        rmi(*images_matching(f"{NS}/*:overridetest"))
    assert images_matching(f"{NS}/*:overridetest") == []


def test_packages_append_via_config_file(core_build, tmp_path):
    """``template_vars`` in build.yml reach the image the same way."""
    cfg = tmp_path / "build.yml"
    cfg.write_text(f"template_vars:\n  memcached_packages_append: [less]\ntag: overridetest2\nnamespace: {NS}\n")
    work = tmp_path / "work"
    try:
        r = subprocess.run([STACKYARD, "build", "--config", str(cfg), "--work-dir", str(work),
                            "--format", "json", "memcached"], capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
        summary = json.loads(r.stdout)
        assert summary["images"]["memcached"]["status"] == "built"
        r = drun(ref("memcached", "overridetest2"), "command -v less && memcached -V")
        assert r.returncode == 0 and "/usr/bin/less" in r.stdout
    finally:
        rmi(*images_matching(f"{NS}/*:overridetest2"))


# ----------------------------------------------------------------- failures
def test_failing_image_marks_children_parent_failed(core_build, tmp_path):
    dd = tmp_path / "dd"
    (dd / "broken").mkdir(parents=True)
    (dd / "broken" / "Dockerfile.j2").write_text(
        "{% import 'macros.j2' as macros %}\n"
        "FROM {{ image_ref('base') }}\n"
        "{{ macros.install_packages(['stackyard-no-such-package-xyz']) }}\n")
    (dd / "broken-child").mkdir()
    (dd / "broken-child" / "Dockerfile.j2").write_text("FROM {{ image_ref('broken') }}\nRUN true\n")
    (dd / "broken-grandchild").mkdir()
    (dd / "broken-grandchild" / "Dockerfile.j2").write_text("FROM {{ image_ref('broken-child') }}\n")
    work = tmp_path / "work"
    try:
        code, summary, err = build("--docker-dir", str(dd), "broken-grandchild", "memcached", work=work)
        assert code == 1, err[-3000:]
        assert summary["failed"] == ["broken"]
        assert summary["parent_failed"] == ["broken-child", "broken-grandchild"]
        assert summary["cached"] == ["base", "memcached"]
        broken = summary["images"]["broken"]
        assert "Unable to locate package stackyard-no-such-package-xyz" in broken["reason"]
        assert broken["attempts"] == 1, "a missing package is not retried"
        assert summary["failed_reasons"]["broken-child"] == "parent 'broken' failed"
        log = work / "logs" / "broken.log"
        assert log.is_file() and "stackyard-no-such-package-xyz" in log.read_text()
        assert images_matching(f"{NS}/broken*") == []
    finally:
        rmi(*images_matching(f"{NS}/broken*"))


def test_failure_exit_code_in_text_mode(core_build, tmp_path):
    dd = tmp_path / "dd"
    (dd / "broken").mkdir(parents=True)
    (dd / "broken" / "Dockerfile.j2").write_text("FROM {{ image_ref('base') }}\nRUN exit 3\n")
    work = tmp_path / "work"
    r = subprocess.run([STACKYARD, "build", "--config", str(_empty_config(work)), "--namespace", NS,
                        "--work-dir", str(work), "--docker-dir", str(dd), "broken"],
                       capture_output=True, text=True, timeout=600)
    try:
        assert r.returncode == 1
        assert "1 failed" in r.stdout and "broken:" in r.stdout
        assert "Traceback" not in r.stderr
    finally:
        rmi(*images_matching(f"{NS}/broken*"))


# ----------------------------------------------------------------- push
def _registry_address() -> str:
    """127.0.0.1:5000 when free; Keystone's public API (host networking) also wants 5000,
    so fall back to a free loopback port (dockerd trusts every 127.0.0.0/8 registry)."""
    import socket

    for port in (5000, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return f"127.0.0.1:{s.getsockname()[1]}"
    raise AssertionError("no free loopback port for the registry")


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """Debian's docker-registry on loopback with storage under /tmp; fails (not skips) if unavailable."""
    binary = shutil.which("docker-registry")
    if binary is None:
        r = subprocess.run(["apt-get", "install", "-y", "docker-registry"], capture_output=True, text=True,
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), timeout=600)
        binary = shutil.which("docker-registry")
        assert binary, f"cannot install docker-registry: {r.stderr[-1000:]}"
    root = tmp_path_factory.mktemp("registry")
    address = _registry_address()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {address}\n"
    )
    log = open(root / "registry.log", "w")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"docker-registry exited: {(root / 'registry.log').read_text()[-1000:]}"
            try:
                with urllib.request.urlopen(f"http://{address}/v2/", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            assert time.monotonic() < deadline, f"docker-registry did not answer on {address}"
            time.sleep(0.3)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        rmi(*images_matching(f"{address}/{NS}/*"))


def _registry_json(address: str, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{address}{path}", timeout=10) as resp:
        return json.loads(resp.read())


def test_push_then_cached(core_build, registry, tmp_path):
    work = tmp_path / "work"
    code, first, err = build("memcached", "--registry", registry, "--push", work=work)
    assert code == 0, err[-3000:]
    assert first["failed"] == []
    assert sorted(first["built"] + first["cached"]) == ["base", "memcached"]
    # base's Dockerfile does not name the registry: same hash as the local build
    assert first["images"]["base"]["hash"] == core_build["images"]["base"]["hash"]
    assert first["images"]["memcached"]["ref"] == f"{registry}/{NS}/memcached:{TAG}"
    catalog = _registry_json(registry, "/v2/_catalog")["repositories"]
    assert {f"{NS}/base", f"{NS}/memcached"} <= set(catalog)
    assert _registry_json(registry, f"/v2/{NS}/memcached/tags/list")["tags"] == [TAG]

    code, second, err = build("memcached", "--registry", registry, "--push", work=work)
    assert code == 0, err[-3000:]
    assert second["built"] == [] and second["cached"] == ["base", "memcached"]
    assert second["images"]["memcached"]["hash"] == first["images"]["memcached"]["hash"]

    # with the local image gone, the registry copy (same hash label) is still a cache hit
    rmi(f"{registry}/{NS}/memcached:{TAG}")
    code, third, err = build("memcached", "--registry", registry, "--push", work=work)
    assert code == 0, err[-3000:]
    assert third["built"] == [] and third["cached"] == ["base", "memcached"]
    r = drun(f"{registry}/{NS}/memcached:{TAG}", "memcached -V")
    assert r.returncode == 0 and "memcached 1." in r.stdout
