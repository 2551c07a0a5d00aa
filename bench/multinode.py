#!/usr/bin/env python3
"""Benchmark multi-host deploys on the test bed; prints one JSON document.

Side by side, in one run, on the same hosts:

* ``noop_3_hosts``: a no-op re-deploy of all three hosts (``stackyard deploy``);
* ``noop_1_host``: the same deployment re-deployed on one host only
  (``--limit node1``): what the fan-out costs over a single host;
* the Ansible tasks executed per host in each (from stackyard's callback;
  API steps delegated to the deploy host are counted separately).

Each is repeated ``--repeat`` times (median and all runs reported).

With ``--setup`` the bench first brings up its own 3-host test bed (prefix
``sybench``, subnet 10.252.0.0/24, registry port 5102), builds and pushes the
infra + Keystone images, bootstraps the hosts and deploys (``first_deploy``
seconds); ``--teardown`` removes the test bed afterwards. Without ``--setup``
it uses an existing deployment: ``--configdir``, ``-i`` and ``--netns``.

Usage: python bench/multinode.py --setup --teardown [--repeat 3]
Run as root on the machine of the Docker engine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

IMAGES = ["base", "openstack-base", "keystone", "mariadb-server", "memcached", "rabbitmq", "cron",
          "haproxy", "keepalived"]
PREFIX, SUBNET, REGISTRY_PORT = "sybench", "10.252.0.0/24", 5102


def sh(cmd: list[str], netns: str | None = None, timeout: int = 3600) -> subprocess.CompletedProcess:
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def stackyard(*args: str, netns: str | None = None) -> subprocess.CompletedProcess:
    return sh([sys.executable, "-m", "stackyard.cli", *args], netns=netns)


def deploy(configdir: Path, inventory: Path, netns: str, *extra: str) -> tuple[float, dict[str, Any]]:
    t0 = time.monotonic()
    out = stackyard("deploy", "--format", "json", "--configdir", str(configdir), "-i", str(inventory),
                    *extra, netns=netns).stdout
    return time.monotonic() - t0, json.loads(out)


def tasks_per_host(summary: dict[str, Any]) -> dict[str, Any]:
    """Tasks executed on each host, and API tasks the deploy host ran for it."""
    return {h: {"on_host": v["tasks"], "on_deploy_host": v.get("deploy_host_tasks", 0)}
            for h, v in sorted(summary["hosts"].items())}


def measure(configdir: Path, inventory: Path, netns: str, repeat: int, *extra: str) -> dict[str, Any]:
    runs, summary = [], {}
    for _ in range(repeat):
        seconds, summary = deploy(configdir, inventory, netns, *extra)
        if summary["changed"]:
            sys.exit(f"not a no-op: {summary['changed']} changes: {summary['hosts']}")
        runs.append(round(seconds, 2))
    return {"seconds_median": statistics.median(runs), "seconds_runs": runs,
            "tasks_per_host": tasks_per_host(summary), "waves": summary.get("waves")}


def setup(state: Path, configdir: Path) -> dict[str, Any]:
    common = ["--state-dir", str(state), "--prefix", PREFIX, "--subnet", SUBNET,
              "--registry-port", str(REGISTRY_PORT)]
    t0 = time.monotonic()
    stackyard("testbed", "up", "--hosts", "3", *common)
    testbed_s = time.monotonic() - t0
    t0 = time.monotonic()
    stackyard("build", "--push", "--registry", f"127.0.0.1:{REGISTRY_PORT}", *IMAGES)
    push_s = time.monotonic() - t0
    (configdir / "globals.yml").write_text(yaml.safe_dump({
        "openstack_release": "2025.1", "kolla_internal_vip_address": SUBNET.rsplit(".", 1)[0] + ".250",
        "network_interface": "eth0", "enable_loadbalancer": True,
        "docker_registry": f"{SUBNET.rsplit('.', 1)[0]}.1:5000", "docker_registry_insecure": True,
        "enable_openstack_core": False,  # infra + Keystone: kolla-ansible's core services (Heat) off
    }))
    stackyard("genpwd", "--configdir", str(configdir))
    inventory = state / "multinode"
    stackyard("bootstrap-servers", "--configdir", str(configdir), "-i", str(inventory), netns=PREFIX)
    first_s, summary = deploy(configdir, inventory, PREFIX)
    return {"testbed_up_seconds": round(testbed_s, 1), "build_push_seconds": round(push_s, 1),
            "first_deploy_seconds": round(first_s, 1), "first_deploy_tasks_per_host": tasks_per_host(summary)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setup", action="store_true", help="bring up a test bed and deploy first")
    ap.add_argument("--teardown", action="store_true", help="remove the bench's test bed at the end")
    ap.add_argument("--configdir", type=Path)
    ap.add_argument("-i", "--inventory", type=Path)
    ap.add_argument("--netns", default=PREFIX, help="network namespace the deploy host lives in")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    result: dict[str, Any] = {}
    state = Path(tempfile.mkdtemp(prefix="stackyard-bench-testbed-"))
    try:
        if args.setup:
            configdir = Path(tempfile.mkdtemp(prefix="stackyard-bench-kolla-"))
            result["setup"] = setup(state, configdir)
            inventory, netns = state / "multinode", PREFIX
        else:
            if not (args.configdir and args.inventory):
                sys.exit("without --setup, give --configdir and -i of an existing multi-host deployment")
            configdir, inventory, netns = args.configdir, args.inventory, args.netns
        result["noop_3_hosts"] = measure(configdir, inventory, netns, args.repeat)
        result["noop_1_host"] = measure(configdir, inventory, netns, args.repeat, "--limit", "node1")
        result["ratio_3_to_1"] = round(result["noop_3_hosts"]["seconds_median"]
                                       / result["noop_1_host"]["seconds_median"], 2)
    finally:
        if args.setup and args.teardown:
            stackyard("testbed", "down", "--purge", "--state-dir", str(state), "--prefix", PREFIX,
                      "--subnet", SUBNET, "--registry-port", str(REGISTRY_PORT))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
