"""Helpers shared by the end-to-end tests (fixtures: tests import nothing from
each other under --import-mode=importlib).

The e2e tests share the machine's engine with whatever else runs on it, so each
touches only what it made itself:

- images come from the E2E namespace (``STACKYARD_E2E_NAMESPACE``, default
  ``stackyard-e2e``) that scripts/test.sh builds; a test that builds images
  itself does so under a namespace (or tag) of its own and removes only the
  refs it made;
- every deployment lives in a tmp config dir, pulls from the E2E namespace and
  has a ``stackyard_name_prefix`` of its own; its containers and volumes are
  found by their deployment label (``org.stackyard.deployment=<config dir>``),
  never by "every managed container".
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import docker
import pytest

#: the namespace scripts/test.sh builds every image under
E2E_NAMESPACE = os.environ.get("STACKYARD_E2E_NAMESPACE", "stackyard-e2e")
#: the tag of the images the deployments use (openstack_tag's default)
E2E_TAG = "2025.1"
DEPLOYMENT_LABEL = "org.stackyard.deployment"
BIN = Path(sys.executable).parent


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 3.0) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned), or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


@pytest.fixture(scope="session")
def wait_for() -> Callable[..., Any]:
    """:func:`wait_until`, for tests that poll a cloud (a guest's console, a ping)."""
    return wait_until


@pytest.fixture(scope="session")
def e2e_namespace() -> str:
    """The image namespace scripts/test.sh built every image under."""
    return E2E_NAMESPACE


@pytest.fixture(scope="session")
def e2e_image(e2e_namespace: str) -> Callable[[str], str]:
    """``name`` -> the ref of that image in the E2E namespace (``stackyard-e2e/keystone:2025.1``)."""
    def ref(name: str, tag: str = E2E_TAG) -> str:
        return f"{e2e_namespace}/{name}:{tag}"
    return ref


def run_stackyard(*args: str, configdir: Path | None = None, extra_vars: dict[str, Any] | None = None,
                  check: bool = True, timeout: int = 1800, netns: str | None = None,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m stackyard.cli ARGS [--configdir D] [-e k=v ...]``; fails the test on a non-zero
    exit unless ``check`` is false. ``netns``: run it inside that (``ip netns``) namespace."""
    cmd = [sys.executable, "-m", "stackyard.cli", *args]
    if configdir is not None:
        cmd += ["--configdir", str(configdir)]
    for key, value in (extra_vars or {}).items():
        cmd += ["-e", f"{key}={value}"]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"stackyard {' '.join(args)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture(scope="session")
def stackyard() -> Callable[..., subprocess.CompletedProcess]:
    """:func:`run_stackyard`: the CLI in a subprocess, as an operator runs it."""
    return run_stackyard


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    client = docker.from_env(timeout=300)
    client.ping()
    return client


class Deployment:
    """One e2e deployment: its config dir (whose absolute path is its label), its
    name prefix and the ``-e`` flags every command gets; engine queries see only it."""

    def __init__(self, client: docker.DockerClient, configdir: Path, prefix: str,
                 extra_vars: dict[str, Any] | None = None) -> None:
        self.client = client
        self.configdir = Path(configdir)
        self.prefix = prefix
        self.extra_vars = dict(extra_vars or {})

    @property
    def label(self) -> str:
        return str(self.configdir.absolute())

    @property
    def filters(self) -> dict[str, Any]:
        return {"label": f"{DEPLOYMENT_LABEL}={self.label}"}

    def run(self, *args: str, **kw: Any) -> subprocess.CompletedProcess:
        """A stackyard command on this deployment (``--configdir`` and ``-e`` flags added)."""
        return run_stackyard(*args, configdir=self.configdir, extra_vars=self.extra_vars, **kw)

    def run_plain(self, *args: str, **kw: Any) -> subprocess.CompletedProcess:
        """A stackyard command that takes ``--configdir`` but no ``-e`` (``ceph-aio down``)."""
        return run_stackyard(*args, configdir=self.configdir, **kw)

    def name(self, plain: str) -> str:
        """The engine name of a container or volume the services call ``plain``."""
        return self.prefix + plain

    def containers(self, all: bool = True) -> list:  # noqa: A002 - docker's own word
        found = self.client.containers.list(all=all, filters=self.filters)
        # the label is the deployment's own: everything found carries its prefix
        assert all_prefixed((c.name for c in found), self.prefix), [c.name for c in found]
        return found

    def names(self, running_only: bool = False) -> set[str]:
        return {c.name for c in self.containers(all=not running_only)}

    def snapshot(self) -> dict[str, tuple[str, str]]:
        """name -> (container ID, StartedAt) of every container of this deployment."""
        return {c.name: (c.id, c.attrs["State"]["StartedAt"]) for c in self.containers()}

    def volumes(self) -> set[str]:
        return {v.name for v in self.client.volumes.list(filters=self.filters)}

    def openstack(self, *args: str, check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
        """The real ``openstack`` CLI as this deployment's admin (its clouds.yaml)."""
        env = dict(os.environ, OS_CLOUD="stackyard-admin",
                   OS_CLIENT_CONFIG_FILE=str(self.configdir / "clouds.yaml"))
        proc = subprocess.run([str(BIN / "openstack"), *args], capture_output=True, text=True, env=env,
                              timeout=timeout)
        if check:
            assert proc.returncode == 0, f"openstack {' '.join(args)}: {proc.stderr[-2000:]}"
        return proc


def all_prefixed(names: Iterable[str], prefix: str) -> bool:
    return all(n.startswith(prefix) for n in names)


@pytest.fixture(scope="session")
def make_deployment(docker_client: docker.DockerClient, e2e_namespace: str) -> Callable[..., Deployment]:
    """``make_deployment(configdir, prefix, **extra_vars)``: a :class:`Deployment` whose
    commands all get ``-e docker_namespace=<E2E namespace> -e stackyard_name_prefix=<prefix>``
    (and the other ``extra_vars``); ``flags=False`` when its globals.yml says so itself."""
    def make(configdir: Path, prefix: str, *, flags: bool = True, **extra_vars: Any) -> Deployment:
        assert prefix, "every e2e deployment has a name prefix of its own"
        if not flags:  # the caller writes namespace and prefix into globals.yml itself
            return Deployment(docker_client, configdir, prefix, extra_vars)
        given = {"docker_namespace": e2e_namespace, "stackyard_name_prefix": prefix, **extra_vars}
        return Deployment(docker_client, configdir, prefix, given)
    return make


@pytest.fixture(scope="session")
def guest_work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the guest image is built (cached by its inputs): ``STACKYARD_GUEST_WORK_DIR``
    or one tmp dir for the whole session, so it is built at most once per run."""
    env = os.environ.get("STACKYARD_GUEST_WORK_DIR")
    return Path(env) if env else tmp_path_factory.mktemp("guest-work")


# ----------------------------------------------------------------- a server on a deployed cloud
def _sh(*cmd: str, check: bool = True, timeout: int = 60) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: {proc.stdout}{proc.stderr}")
    return proc


def run_server_scenario(dep: Deployment, netns_dir: Path, *, soft_reboot: bool = False) -> dict[str, Any]:
    """Boot the stackyard guest on a tenant network of ``dep``'s cloud and check what a user sees.

    On the day-1 resources ``stackyard up`` made (flavor m1.nano, the public
    network public1, the host on it at its gateway): a tenant network with a
    router; the server goes ACTIVE, its console shows the address DHCP gave it
    and the hostname from the metadata service; it answers ping from the
    router's namespace (under ``netns_dir``, the deployment's own), and from
    this host on a floating IP. Everything made here is deleted after, and no
    port or namespace leaks. Addresses: 10.77.0.0/24 (tenant) and public1's
    subnet, inside the deployment's bridges and namespaces only.

    ``soft_reboot``: then ``openstack server reboot`` (Nova's default, soft: QEMU
    stops and starts again with a new tap) and the server answers on its
    floating IP again.
    """
    def osc(*args: str, timeout: int = 300) -> str:
        return dep.openstack(*args, timeout=timeout).stdout.strip()

    def osc_json(*args: str, timeout: int = 300) -> Any:
        return json.loads(osc(*args, "-f", "json", timeout=timeout))

    def netns() -> set[str]:
        return set(os.listdir(netns_dir)) if netns_dir.is_dir() else set()

    ns_before = netns()
    ports_before = {p["ID"] for p in osc_json("port", "list")}
    created: list[tuple[str, ...]] = []
    result: dict[str, Any] = {}
    try:
        osc("network", "create", "e2e-net")
        created.append(("network", "delete", "e2e-net"))
        osc("subnet", "create", "--network", "e2e-net", "--subnet-range", "10.77.0.0/24",
            "--dns-nameserver", "0.0.0.0", "e2e-subnet")
        router = osc_json("router", "create", "e2e-router")
        created.append(("router", "delete", "e2e-router"))
        osc("router", "set", "--external-gateway", "public1", "e2e-router")
        osc("router", "add", "subnet", "e2e-router", "e2e-subnet")
        created.append(("router", "remove", "subnet", "e2e-router", "e2e-subnet"))

        t0 = time.monotonic()
        server = osc_json("server", "create", "--image", "stackyard-guest", "--flavor", "m1.nano",
                          "--network", "e2e-net", "--wait", "e2e-server", timeout=900)
        created.append(("server", "delete", "--wait", "e2e-server"))
        assert server["status"] == "ACTIVE"
        result["active_seconds"] = round(time.monotonic() - t0)
        print(f"server ACTIVE after {result['active_seconds']}s")
        addresses = osc_json("server", "show", "e2e-server")["addresses"]
        fixed = re.search(r"10\.77\.0\.\d+", json.dumps(addresses)).group(0)

        def banner() -> Any:
            log = osc("console", "log", "show", "e2e-server")
            m = re.search(r"stackyard-guest: hostname=(\S+) address=(\S+)", log)
            return m and m.groups()

        hostname, address = wait_until(banner, 600, "the guest banner on the console")
        assert address.split("/")[0] == fixed, (address, fixed)
        assert hostname.startswith("e2e-server")

        qrouter = f"qrouter-{router['id']}"
        assert qrouter in netns(), f"router namespace is not in {netns_dir}"
        in_router = ["nsenter", f"--net={netns_dir / qrouter}"]
        wait_until(lambda: _sh(*in_router, "ping", "-c", "1", "-W", "2", fixed, check=False).returncode == 0,
                   120, f"ping {fixed} from {qrouter}")

        # the day-1 security group rules (ping, SSH) are the admin project's default group's
        fip = osc_json("floating", "ip", "create", "public1")["floating_ip_address"]
        created.append(("floating", "ip", "delete", fip))
        osc("server", "add", "floating", "ip", "e2e-server", fip)
        wait_until(lambda: _sh("ping", "-c", "1", "-W", "2", fip, check=False).returncode == 0,
                   120, f"ping floating IP {fip} from this host")
        if soft_reboot:
            t0 = time.monotonic()
            osc("server", "reboot", "--wait", "e2e-server", timeout=600)
            result["reboot_seconds"] = round(time.monotonic() - t0)
            # Nova waits up to 120 s for the guest to power off before it falls back to a hard
            # reboot (which replugs the port): a quicker reboot was the soft one
            assert result["reboot_seconds"] < 100, result
            wait_until(lambda: _sh("ping", "-c", "1", "-W", "2", fip, check=False).returncode == 0,
                       180, f"ping floating IP {fip} after a soft reboot")
            print(f"soft reboot took {result['reboot_seconds']}s; the server answers again")
    finally:
        for cmd in reversed(created):
            dep.openstack(*cmd, check=False)
    # nothing leaked: no ports, no namespaces
    wait_until(lambda: {p["ID"] for p in osc_json("port", "list")} <= ports_before, 120, "ports to go")
    wait_until(lambda: netns() <= ns_before, 120, "namespaces to go")
    return result


@pytest.fixture(scope="session")
def server_scenario() -> Callable[..., dict[str, Any]]:
    """:func:`run_server_scenario`: boot, reach and delete a server on a deployed cloud."""
    return run_server_scenario


def check_horizon_login(dep: Deployment, base: str) -> None:
    """Horizon's login page renders, and the cloud's admin logs in to the project overview."""
    import requests
    import yaml

    passwords = yaml.safe_load((dep.configdir / "passwords.yml").read_text())
    s = requests.Session()
    page = s.get(f"{base}/auth/login/", timeout=60)
    assert page.status_code == 200 and "csrfmiddlewaretoken" in page.text, page.status_code
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    region = re.search(r'name="region" value="([^"]+)"', page.text)
    form = {"csrfmiddlewaretoken": token, "username": "admin",
            "password": passwords["keystone_admin_password"], "next": "/project/"}
    if region:
        form["region"] = region.group(1)
    resp = s.post(f"{base}/auth/login/", data=form, headers={"Referer": f"{base}/auth/login/"}, timeout=120)
    assert resp.status_code == 200, resp.status_code
    assert "/auth/login" not in resp.url, "login was refused"
    assert "Overview" in resp.text and "admin" in resp.text


@pytest.fixture(scope="session")
def horizon_login() -> Callable[[Deployment, str], None]:
    """:func:`check_horizon_login`."""
    return check_horizon_login
