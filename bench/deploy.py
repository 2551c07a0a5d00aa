#!/usr/bin/env python3
"""Benchmark ``stackyard deploy`` on the all-in-one core set; prints one JSON document.

Steps (images must already be built: ``stackyard build`` or ``stackyard up``):
1. a fresh config dir (``--configdir``, default a new temp dir): globals.yml for
   the loopback all-in-one, ``stackyard genpwd``;
2. no stackyard-managed container may exist (label ``org.stackyard.managed``):
   the bench refuses to run when one does, unless ``--force-destroy`` is given,
   which removes them first with
   ``stackyard destroy --yes-i-really-really-mean-it --include-volumes``;
3. ``stackyard prechecks`` (images present, ports free) - not timed;
4. fresh deploy: time of ``stackyard deploy``;
5. no-op redeploy: time of a second ``stackyard deploy``, and how many
   containers restarted (container ID or State.StartedAt differ before/after);
6. one-option reconfigure: write ``config/keystone.conf`` with
   ``[token] expiration = 7200``, time ``stackyard reconfigure``, and list the
   containers it restarted.

The deployment is left running (its config dir is printed) unless
``--destroy-after`` is given.

Usage: ``python bench/deploy.py [--force-destroy] [--configdir DIR] [--destroy-after]``
Run as root on the machine of the Docker engine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from stackyard.commands.up import GLOBALS_TEMPLATE, INFRA_ONLY_GLOBALS

#: the infrastructure and Keystone (what `stackyard up --infra-only` writes)
GLOBALS = GLOBALS_TEMPLATE + INFRA_ONLY_GLOBALS

MANAGED_LABEL = "org.stackyard.managed"
REPO = Path(__file__).resolve().parent.parent
DESTROY_ARGS = ["destroy", "--yes-i-really-really-mean-it", "--include-volumes"]
EXIT_REFUSED = 3


RECONFIGURE_OVERRIDE = "[token]\nexpiration = 7200\n"


def stackyard_command() -> list[str]:
    """The stackyard CLI: the repo's venv script if present, else this interpreter's module."""
    script = REPO / ".venv" / "bin" / "stackyard"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "stackyard.cli"]


class Bench:
    def __init__(self, configdir: Path, log: Path, timeout: float):
        self.configdir = configdir
        self.log = log
        self.timeout = timeout
        self.cmd = stackyard_command()

    def stackyard(self, *args: str, check: bool = True) -> tuple[float, subprocess.CompletedProcess]:
        """Run one stackyard command with --configdir; stderr goes to the log file."""
        cmd = [*self.cmd, *args, "--configdir", str(self.configdir)]
        start = time.monotonic()
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, check=False,
                               timeout=self.timeout, cwd=REPO)
        except subprocess.TimeoutExpired:
            sys.exit(f"bench: {' '.join(cmd)} did not finish within {self.timeout:.0f}s")
        elapsed = time.monotonic() - start
        with self.log.open("a") as fh:
            fh.write(f"$ {' '.join(cmd)}\n# exit {r.returncode} after {elapsed:.1f}s\n"
                     f"{r.stdout}{r.stderr}\n")
        if check and r.returncode != 0:
            sys.exit(f"bench: {' '.join(cmd)} failed ({r.returncode}); full log: {self.log}\n"
                     f"{(r.stdout + r.stderr)[-3000:]}")
        return round(elapsed, 2), r

    def deploy(self, command: str = "deploy") -> tuple[float, dict[str, Any]]:
        elapsed, r = self.stackyard(command, "--format", "json")
        try:
            summary = json.loads(r.stdout)
        except json.JSONDecodeError:
            sys.exit(f"bench: '{command}' printed no JSON summary; full log: {self.log}")
        if summary.get("failed"):
            sys.exit(f"bench: '{command}' reported failures: {summary.get('error')}; full log: {self.log}")
        return elapsed, summary


# ----------------------------------------------------------------------------- engine
def engine_client() -> Any:
    import docker
    import docker.errors

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        sys.exit(f"bench: cannot reach the container engine: {exc}")
    return client


def managed_containers(client: Any) -> list[str]:
    return sorted(c.name for c in client.containers.list(all=True, filters={"label": MANAGED_LABEL}))


def snapshot(client: Any) -> dict[str, dict[str, str]]:
    """name -> container ID, start time and status, for every managed container."""
    out = {}
    for c in client.containers.list(all=True, filters={"label": MANAGED_LABEL}):
        c.reload()
        state = c.attrs.get("State", {})
        out[c.name] = {"id": c.id, "started_at": state.get("StartedAt", ""),
                       "status": state.get("Status", "")}
    return out


def restarts(before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]) -> dict[str, list[str]]:
    """Which containers were recreated (new ID), restarted (same ID, new start), added or removed."""
    recreated, restarted = [], []
    for name, now in after.items():
        old = before.get(name)
        if old is None:
            continue
        if old["id"] != now["id"]:
            recreated.append(name)
        elif old["started_at"] != now["started_at"]:
            restarted.append(name)
    return {
        "recreated": sorted(recreated),
        "restarted_in_place": sorted(restarted),
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
    }


def restart_count(diff: dict[str, list[str]]) -> int:
    return sum(len(v) for v in diff.values())


def all_restarted(diff: dict[str, list[str]]) -> list[str]:
    return sorted({n for v in diff.values() for n in v})


# ----------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark a fresh all-in-one deploy, a no-op redeploy and a one-option "
                    "reconfigure; prints JSON. Refuses to run while stackyard containers exist.")
    p.add_argument("--force-destroy", action="store_true",
                   help="remove existing stackyard containers AND their volumes first "
                        "(stackyard destroy --include-volumes): destroys any running deployment")
    p.add_argument("--configdir", help="fresh config dir to use (default: a new temp dir); "
                                       "must not hold a passwords.yml yet")
    p.add_argument("--destroy-after", action="store_true",
                   help="destroy the benchmark deployment (with volumes) when done")
    p.add_argument("--timeout", type=float, default=1800, help="seconds allowed per stackyard command")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    client = engine_client()

    existing = managed_containers(client)
    if existing and not args.force_destroy:
        print(f"bench: refusing to run: stackyard-managed containers already exist "
              f"({', '.join(existing)}).\n"
              f"The benchmark measures a fresh deploy, so it would have to destroy them and their "
              f"volumes (all data). Re-run with --force-destroy to do that.", file=sys.stderr)
        return EXIT_REFUSED

    created: Path | None = None
    if args.configdir:
        configdir = Path(args.configdir).resolve()
        configdir.mkdir(parents=True, exist_ok=True)
        if (configdir / "passwords.yml").exists() or (configdir / "config").exists():
            sys.exit(f"bench: {configdir} is not fresh (passwords.yml or config/ exists)")
    else:
        configdir = Path(tempfile.mkdtemp(prefix="stackyard-bench-deploy-"))
        created = configdir
    log = configdir / "bench.log"
    log.touch(mode=0o600)
    bench = Bench(configdir, log, args.timeout)
    (configdir / "globals.yml").write_text(GLOBALS)
    bench.stackyard("genpwd")

    destroyed: list[str] = []
    if existing:
        bench.stackyard(*DESTROY_ARGS)
        destroyed = existing
        left = managed_containers(client)
        if left:
            sys.exit(f"bench: containers still present after destroy: {', '.join(left)}")

    _, pre = bench.stackyard("prechecks", check=False)
    if pre.returncode != 0:
        if created is not None and not destroyed:
            shutil.rmtree(created)  # nothing deployed from it: leave no litter
        sys.exit(f"bench: prechecks failed (are the images built? run 'stackyard build'):\n"
                 f"{pre.stdout[-3000:]}{pre.stderr[-1000:]}")

    # (a) fresh deploy
    fresh_s, fresh = bench.deploy()
    s0 = snapshot(client)

    # (b) no-op redeploy
    noop_s, noop = bench.deploy()
    s1 = snapshot(client)
    noop_diff = restarts(s0, s1)

    # (c) one-option reconfigure
    override = configdir / "config" / "keystone.conf"
    override.parent.mkdir(parents=True, exist_ok=True)
    override.write_text(RECONFIGURE_OVERRIDE)
    reconf_s, reconf = bench.deploy("reconfigure")
    s2 = snapshot(client)
    reconf_diff = restarts(s1, s2)

    _, check = bench.stackyard("check", check=False)

    result = {
        "configdir": str(configdir),
        "log": str(log),
        "destroyed_before": destroyed,
        "containers": sorted(s0),
        "fresh_deploy": {"seconds": fresh_s, "changed": fresh.get("changed")},
        "noop_redeploy": {
            "seconds": noop_s,
            "changed": noop.get("changed"),
            "restarts": restart_count(noop_diff),
            "restarted": all_restarted(noop_diff),
            "detail": noop_diff,
        },
        "reconfigure_one_option": {
            "option": "keystone.conf [token] expiration = 7200",
            "seconds": reconf_s,
            "changed": reconf.get("changed"),
            "restarts": restart_count(reconf_diff),
            "restarted": all_restarted(reconf_diff),
            "detail": reconf_diff,
            "files_changed": sorted({f for h in reconf.get("hosts", {}).values()
                                     for f in h.get("files_changed", [])}),
        },
        "healthy_after": check.returncode == 0,
    }

    if args.destroy_after:
        bench.stackyard(*DESTROY_ARGS)
        result["destroyed_after"] = True

    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
