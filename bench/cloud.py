#!/usr/bin/env python3
"""Benchmark the all-in-one cloud; prints JSON.

- time from deploy start until every service is healthy (fresh deploy, images built)
- time for a server to go from create to ACTIVE (stackyard guest, tenant network)
- total memory of all running stackyard containers (engine stats, one sample each)

Refuses to run while stackyard containers exist, unless --force-destroy (which
destroys them and their volumes first). Run by hand, not as a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

from stackyard.commands.up import CLOUD_GLOBALS, GLOBALS_TEMPLATE

MANAGED = "org.stackyard.managed"
BIN = Path(sys.executable).parent
GLOBALS = GLOBALS_TEMPLATE + CLOUD_GLOBALS.format(virt_type="qemu")


def stackyard(configdir: Path, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "stackyard.cli", *args, "--configdir", str(configdir)],
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        sys.exit(f"stackyard {' '.join(args)} failed:\n{proc.stderr[-3000:]}")


def osc(configdir: Path, *args: str) -> str:
    env = dict(os.environ, OS_CLOUD="stackyard-admin", OS_CLIENT_CONFIG_FILE=str(configdir / "clouds.yaml"))
    proc = subprocess.run([str(BIN / "openstack"), *args], capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        sys.exit(f"openstack {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return proc.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force-destroy", action="store_true",
                        help="destroy existing stackyard containers and volumes first")
    parser.add_argument("--destroy-after", action="store_true")
    args = parser.parse_args()
    client = docker.from_env(timeout=600)
    existing = client.containers.list(all=True, filters={"label": MANAGED})
    configdir = Path(tempfile.mkdtemp(prefix="stackyard-bench-cloud-"))
    if existing and not args.force_destroy:
        print(f"refusing: {len(existing)} stackyard containers exist; use --force-destroy", file=sys.stderr)
        return 3
    stackyard(configdir, "destroy", "--yes-i-really-really-mean-it", "--include-volumes")
    (configdir / "globals.yml").write_text(GLOBALS)
    stackyard(configdir, "genpwd")

    t0 = time.monotonic()
    stackyard(configdir, "deploy")  # returns once every service passed its health wait
    deploy_seconds = time.monotonic() - t0
    stackyard(configdir, "post-deploy")
    stackyard(configdir, "guest-image", "--upload")

    osc(configdir, "network", "create", "bench-net")
    osc(configdir, "subnet", "create", "--network", "bench-net", "--subnet-range", "10.78.0.0/24", "bench-subnet")
    osc(configdir, "flavor", "create", "--ram", "192", "--disk", "1", "--vcpus", "1", "bench-tiny")
    t1 = time.monotonic()
    osc(configdir, "server", "create", "--image", "stackyard-guest", "--flavor", "bench-tiny",
        "--network", "bench-net", "--wait", "bench-server")
    active_seconds = time.monotonic() - t1

    memory = {}
    for c in client.containers.list(filters={"label": MANAGED}):
        stats = c.stats(stream=False)
        mem = stats.get("memory_stats", {})
        usage = mem.get("usage", 0) - mem.get("stats", {}).get("cache", 0)
        memory[c.name] = usage
    result = {
        "deploy_until_all_healthy_seconds": round(deploy_seconds, 1),
        "server_create_to_active_seconds": round(active_seconds, 1),
        "containers": len(memory),
        "total_memory_bytes": sum(memory.values()),
        "memory_bytes": dict(sorted(memory.items(), key=lambda kv: -kv[1])),
        "configdir": str(configdir),
    }
    if args.destroy_after:
        stackyard(configdir, "destroy", "--yes-i-really-really-mean-it", "--include-volumes")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
