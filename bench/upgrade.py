#!/usr/bin/env python3
"""Benchmark an all-in-one upgrade 2025.1 -> 2026.1 and its rollback; prints JSON.

What is measured, on a cloud deployed here for the purpose (prefix ``bench-up-``):

- how long ``stackyard upgrade`` and ``stackyard rollback`` take;
- for each API (keystone, glance, placement, nova, neutron, horizon): the
  seconds it did not answer its version document (sampled once a second,
  in parallel, by a thread per API), and its longest outage;
- the longest gap between two replies of a ping (every 0.2 s) from the
  router's namespace to a running server: the data plane.

The images must exist: binary 2025.1 and source 2026.1 under ``--namespace``
(``stackyard build`` / ``stackyard build --install-type source
--openstack-release 2026.1``). Open vSwitch bridges are host-wide, so no other
deployment with Neutron may run on the host; the script refuses if one does.
Run by hand, not as a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import docker
import yaml

BIN = Path(sys.executable).parent
PREFIX = "bench-up-"
OLD, NEW = "2025.1", "2026.1"
APIS = {"keystone": "http://127.0.0.1:5000/v3", "glance": "http://127.0.0.1:9292/versions",
        "placement": "http://127.0.0.1:8780/", "nova": "http://127.0.0.1:8774/v2.1/",
        "neutron": "http://127.0.0.1:9696/", "horizon": "http://127.0.0.1/auth/login/"}


def stackyard(configdir: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "stackyard.cli", *args, "--configdir", str(configdir)],
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        sys.exit(f"stackyard {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def osc(configdir: Path, *args: str) -> str:
    env = dict(os.environ, OS_CLOUD="stackyard-admin", OS_CLIENT_CONFIG_FILE=str(configdir / "clouds.yaml"))
    proc = subprocess.run([str(BIN / "openstack"), *args], capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        sys.exit(f"openstack {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return proc.stdout.strip()


class Sampler:
    """One thread per API asks for its version document every second; ``stop()`` returns
    per API the seconds it failed and its longest outage."""

    def __init__(self) -> None:
        self.samples: dict[str, list[tuple[float, bool]]] = {name: [] for name in APIS}
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._poll, args=(name, url), daemon=True)
                        for name, url in APIS.items()]
        for t in self.threads:
            t.start()

    def _poll(self, name: str, url: str) -> None:
        while not self.done.is_set():
            t = time.monotonic()
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    ok = resp.status < 500
            except urllib.error.HTTPError as exc:
                ok = exc.code < 500
            except (urllib.error.URLError, OSError):
                ok = False
            self.samples[name].append((t, ok))
            self.done.wait(max(0.0, 1.0 - (time.monotonic() - t)))

    def stop(self) -> dict[str, dict[str, float]]:
        self.done.set()
        for t in self.threads:
            t.join()
        out = {}
        for name, samples in self.samples.items():
            down = longest = 0.0
            start = None
            for (t, ok), (t_next, _) in zip(samples, samples[1:] + [(samples[-1][0] + 1.0, True)]):
                if not ok:
                    down += t_next - t
                    start = t if start is None else start
                    longest = max(longest, t_next - start)
                else:
                    start = None
            out[name] = {"unavailable_seconds": round(down, 1), "longest_outage_seconds": round(longest, 1),
                         "samples": len(samples)}
        return out


def ping_gap(log: Path, since: float) -> float:
    """Longest pause between two ping replies stamped after ``since`` (epoch seconds)."""
    stamps = [float(m.group(1)) for m in re.finditer(r"^\[(\d+\.\d+)\].*bytes from", log.read_text(), re.M)]
    stamps = [s for s in stamps if s >= since]
    return round(max((b - a for a, b in zip(stamps, stamps[1:])), default=float("inf")), 2)


def set_release(configdir: Path, release: str) -> None:
    path = configdir / "globals.yml"
    data = yaml.safe_load(path.read_text())
    data["openstack_release"] = release
    path.write_text(yaml.safe_dump(data))


def make_server(configdir: Path) -> tuple[str, str]:
    """A server on a tenant network behind a router; returns (router namespace path, server address)."""
    osc(configdir, "network", "create", "--external", "--provider-network-type", "flat",
        "--provider-physical-network", "physnet1", "bench-public")
    osc(configdir, "subnet", "create", "--network", "bench-public", "--subnet-range", "10.98.0.0/24", "--no-dhcp",
        "--gateway", "10.98.0.1", "bench-public-sub")
    osc(configdir, "network", "create", "bench-net")
    osc(configdir, "subnet", "create", "--network", "bench-net", "--subnet-range", "10.79.0.0/24",
        "--dns-nameserver", "0.0.0.0", "bench-sub")
    router = json.loads(osc(configdir, "router", "create", "bench-router", "-f", "json"))["id"]
    osc(configdir, "router", "set", "--external-gateway", "bench-public", "bench-router")
    osc(configdir, "router", "add", "subnet", "bench-router", "bench-sub")
    admin = json.loads(osc(configdir, "project", "show", "admin", "-f", "json"))["id"]
    groups = json.loads(osc(configdir, "security", "group", "list", "--project", admin, "-f", "json"))
    osc(configdir, "security", "group", "rule", "create", "--protocol", "icmp", "--ingress",
        next(g["ID"] for g in groups if g["Name"] == "default"))
    osc(configdir, "flavor", "create", "--ram", "192", "--disk", "1", "--vcpus", "1", "bench-tiny")
    osc(configdir, "server", "create", "--image", "stackyard-guest", "--flavor", "bench-tiny", "--network",
        "bench-net", "--wait", "bench-server")
    address = re.search(r"10\.79\.0\.\d+", osc(configdir, "server", "show", "bench-server", "-c", "addresses",
                                              "-f", "json")).group(0)
    plans = json.loads(stackyard(configdir, "plan"))
    netns = next(r["path"] for p in plans.values() for r in p["resources"] if r["kind"] == "netns")
    ns = f"{netns}/qrouter-{router}"
    deadline = time.monotonic() + 900
    while subprocess.run(["nsenter", f"--net={ns}", "ping", "-c", "1", "-W", "2", address],
                         capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            sys.exit(f"bench-server ({address}) never answered a ping from {ns}")
        time.sleep(5)
    return ns, address


def measured(configdir: Path, log: Path, *command: str) -> dict[str, Any]:
    sampler = Sampler()
    since = time.time()
    t0 = time.monotonic()
    result = json.loads(stackyard(configdir, *command, "--format", "json"))
    seconds = time.monotonic() - t0
    time.sleep(3)  # the last samples after the command returned
    apis = sampler.stop()
    return {"seconds": round(seconds, 1), "result": result, "apis": apis,
            "longest_ping_gap_seconds": ping_gap(log, since)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", default="stackyard", help="where the 2025.1 and 2026.1 images are")
    parser.add_argument("--keep", action="store_true", help="leave the cloud deployed afterwards")
    args = parser.parse_args()
    client = docker.from_env(timeout=600)
    others = [c.name for c in client.containers.list(all=True, filters={"label": "org.stackyard.managed"})
              if "neutron" in c.name or "openvswitch" in c.name]
    if others:
        print(f"refusing: another deployment runs Neutron here ({', '.join(sorted(others)[:3])}...): "
              "Open vSwitch bridges are host-wide", file=sys.stderr)
        return 3
    configdir = Path(tempfile.mkdtemp(prefix="stackyard-bench-upgrade-")) / "kolla"
    configdir.mkdir()
    (configdir / "globals.yml").write_text(yaml.safe_dump({
        "openstack_release": OLD, "kolla_internal_vip_address": "127.0.0.1", "network_interface": "lo",
        "docker_namespace": args.namespace, "stackyard_name_prefix": PREFIX, "nova_compute_virt_type": "qemu",
        "enable_glance": True, "enable_placement": True, "enable_nova": True, "enable_neutron": True,
        "enable_horizon": True, "enable_heat": False}))  # as test_lifecycle: Heat's upgrade is unit-tested
    log = configdir.parent / "ping.log"
    ping = None
    try:
        stackyard(configdir, "genpwd")
        stackyard(configdir, "deploy")
        stackyard(configdir, "post-deploy")
        stackyard(configdir, "guest-image", "--upload")
        ns, address = make_server(configdir)
        ping = subprocess.Popen(["nsenter", f"--net={ns}", "ping", "-D", "-i", "0.2", "-W", "1", address],
                                stdout=open(log, "w"), stderr=subprocess.STDOUT)
        time.sleep(5)
        set_release(configdir, NEW)
        upgrade = measured(configdir, log, "upgrade")
        rollback = measured(configdir, log, "rollback")
        out = {
            "upgrade_seconds": upgrade["seconds"],
            "rollback_seconds": rollback["seconds"],
            "upgrade_longest_ping_gap_seconds": upgrade["longest_ping_gap_seconds"],
            "rollback_longest_ping_gap_seconds": rollback["longest_ping_gap_seconds"],
            "upgrade_api_unavailable": upgrade["apis"],
            "rollback_api_unavailable": rollback["apis"],
            "rollback_reported_api_downtime_seconds": rollback["result"].get("api_downtime_seconds"),
            "versions_before": upgrade["result"].get("versions_before"),
            "versions_after": upgrade["result"].get("versions_after"),
            "upgrade_containers_changed": upgrade["result"].get("changed"),
            "rollback_containers_changed": rollback["result"].get("changed"),
            "configdir": str(configdir),
        }
        print(json.dumps(out, indent=2))
        return 0
    finally:
        if ping is not None:
            ping.terminate()
        if not args.keep:
            stackyard(configdir, "destroy", "--yes-i-really-really-mean-it", "--include-volumes")


if __name__ == "__main__":
    sys.exit(main())
