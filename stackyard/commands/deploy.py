"""Deployer commands: genpwd, mergepwd, genconfig, plan, deploy, reconfigure,
post-deploy, prechecks, check, stop, destroy and mariadb-recovery.

One host (the all-in-one) is driven directly through the local engine; an
inventory with remote hosts goes through Ansible (:mod:`stackyard.deploy.multihost`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from stackyard.agent.hostapply import sync_files
from stackyard.commands.common import (
    add_deploy_options, console, inventories, load_deployment, local_engine, selected_phases,
)
from stackyard.deploy import multihost, ops, state
from stackyard.deploy.apply import apply_local
from stackyard.deploy.clientfiles import write_client_files
from stackyard.deploy.passwords import genpwd, mergepwd
from stackyard.deploy.plan import Deployment
from stackyard.errors import DeployError, StackyardError


def apply(args: argparse.Namespace, dry_run: bool, dep: Deployment | None = None) -> int:
    """Converge every host (``--dry-run``: say what would change); prints a summary."""
    dep = dep or load_deployment(args)
    say = console().print
    if dep.remote_hosts:
        start = time.monotonic()
        summary = multihost.run(dep, inventories(args), only_phases=selected_phases(args),
                                limit=getattr(args, "limit", None), check=dry_run)
        summary["seconds"] = round(time.monotonic() - start, 2)
        summary["dry_run"] = dry_run
        if (not summary["error"] and not dry_run and selected_phases(args) is None
                and not getattr(args, "limit", None)):
            state.record(dep, None)  # what `stackyard upgrade` upgrades from (images by reference)
    else:
        engine = local_engine(dep)
        summary = apply_local(dep, engine, say, dry_run=dry_run, only_phases=selected_phases(args))
        if not summary["error"] and not dry_run and selected_phases(args) is None:
            state.record(dep, engine)  # what `stackyard upgrade` upgrades from
    if args.format == "json":
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        verb = "would change" if dry_run else "changed"
        if dep.remote_hosts:
            for host, h in sorted(summary["hosts"].items()):
                for change in h["changes"]:
                    say(f"{host}: {change}")
            tasks = ", ".join(f"{h} {v['tasks']}" for h, v in sorted(summary["hosts"].items()))
            say(f"summary: {summary['changed']} {verb}, {summary['failed']} failed on "
                f"{len(summary['hosts'])} hosts in {summary['seconds']:.1f}s "
                f"({summary['waves']} waves; tasks per host: {tasks})")
        else:
            say(f"summary: {summary['changed']} {verb}, {summary['unchanged']} unchanged, "
                f"{summary['failed']} failed in {summary['seconds']:.1f}s")
    if summary["error"]:
        raise DeployError(summary["error"])
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    return apply(args, dry_run=args.dry_run)


def cmd_genpwd(args: argparse.Namespace) -> int:
    path = Path(args.passwords) if args.passwords else Path(args.configdir) / "passwords.yml"
    made = genpwd(path)
    print(f"{path}: generated {len(made)} password(s), kept existing values")
    if made:  # the key names only: never a secret on the terminal
        print(f"generated: {', '.join(made)}")
    return 0


def cmd_mergepwd(args: argparse.Namespace) -> int:
    mergepwd(Path(args.old), Path(args.new), Path(args.final), clean=args.clean)
    print(f"merged {args.old} into {args.final}")
    return 0


def cmd_genconfig(args: argparse.Namespace) -> int:
    dep = load_deployment(args)
    for host, plan in dep.plans.items():
        changed = sync_files(plan)
        print(f"{host}: {len(plan.files)} config files, {len(changed)} changed")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    dep = load_deployment(args)
    print(json.dumps({h: p.to_dict() for h, p in dep.plans.items()}, indent=2, sort_keys=True))
    return 0


def cmd_post_deploy(args: argparse.Namespace) -> int:
    dep = load_deployment(args)
    openrc, clouds = write_client_files(dep)
    print(f"wrote {openrc} and {clouds}")
    return 0


def _engine_unless_remote(dep: Deployment | None) -> Any:
    return None if dep is not None and dep.remote_hosts else local_engine(dep)


def _report(result: ops.OpResult, verb: str) -> int:
    for line in result.lines:
        print(line)
    print(f"{verb}: " + ("passed" if result.ok else f"{len(result.problems)} problem(s)"))
    return 0 if result.ok else 1


def cmd_prechecks(args: argparse.Namespace) -> int:
    dep = load_deployment(args)
    return _report(ops.prechecks(dep, _engine_unless_remote(dep), inventories(args), args.limit), "prechecks")


def cmd_check(args: argparse.Namespace) -> int:
    dep = load_deployment(args)
    return _report(ops.check(dep, _engine_unless_remote(dep), inventories(args), args.limit), "check")


def _load_or_none(args: argparse.Namespace) -> Deployment | None:
    """The deployment, or None when its config no longer loads (stop and destroy
    must still work then: they find the deployment by its label)."""
    try:
        return load_deployment(args)
    except StackyardError as exc:
        if args.inventory:
            raise
        console().print(f"[yellow]warning:[/yellow] {exc}; acting on the deployment's label and stored plan")
        return None


def cmd_stop(args: argparse.Namespace) -> int:
    dep = _load_or_none(args)
    result = ops.stop(dep, Path(args.configdir), _engine_unless_remote(dep), inventories(args), args.limit)
    for line in result.lines:
        print(line)
    if not result.ok:
        raise DeployError("; ".join(result.problems))
    return 0


def cmd_destroy(args: argparse.Namespace) -> int:
    if not args.yes_i_really_really_mean_it:
        raise StackyardError("destroy removes this deployment's containers and rendered config: "
                             "add --yes-i-really-really-mean-it")
    dep = _load_or_none(args)
    result = ops.destroy(dep, Path(args.configdir), _engine_unless_remote(dep), inventories(args),
                         args.include_volumes, args.limit)
    for line in result.lines:
        print(line)
    return 0


def cmd_mariadb_recovery(args: argparse.Namespace) -> int:
    dep = load_deployment(args)
    start = time.monotonic()
    result = multihost.recover_galera(dep, inventories(args), console().print)
    console().print(f"mariadb-recovery: cluster restarted from {result['bootstrap_host']} "
                    f"in {time.monotonic() - start:.1f}s")
    if args.format == "json":
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    return 0


def init_runonce(dep: Deployment) -> dict[str, Any]:
    """The day-1 resources (flavors, public and demo networks, key pair, SSH and ping allowed)."""
    from stackyard.deploy import day1
    from stackyard.deploy.clientfiles import admin_connection

    plan = day1.plan_day1(dep.variables, dep.enabled, dep.configdir)
    return day1.apply_day1(admin_connection(dep), plan, console().print)


def cmd_init_runonce(args: argparse.Namespace) -> int:
    dep = load_deployment(args)
    report = init_runonce(dep)
    if args.format == "json":
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        console().print(f"day-1 resources: {len(report['changed'])} created, {len(report['present'])} present")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("genpwd", help="fill passwords.yml with strong random secrets (mode 0600)")
    add_deploy_options(p)
    p.add_argument("--passwords", "-p", help="path of passwords.yml (default <configdir>/passwords.yml)")
    p.set_defaults(func=cmd_genpwd)

    p = sub.add_parser("mergepwd", help="merge an old passwords.yml into a new one")
    p.add_argument("--old", required=True)
    p.add_argument("--new", required=True)
    p.add_argument("--final", required=True)
    p.add_argument("--clean", action="store_true", help="drop keys that the new file does not have")
    p.set_defaults(func=cmd_mergepwd)

    for name, helptext in (("deploy", "deploy or converge every enabled service"),
                           ("reconfigure", "apply config changes; restarts only what changed")):
        p = sub.add_parser(name, help=helptext)
        add_deploy_options(p)
        p.add_argument("--dry-run", "--check", dest="dry_run", action="store_true",
                       help="print what would change, change nothing")
        p.add_argument("--tags", action="append", default=[], help="only these services (comma list)")
        p.set_defaults(func=cmd_deploy)

    for name, func, helptext in (
        ("genconfig", cmd_genconfig, "render every host's config files only"),
        ("plan", cmd_plan, "print the full per-host plan as JSON (secrets masked)"),
        ("post-deploy", cmd_post_deploy, "write admin-openrc.sh and clouds.yaml"),
        ("init-runonce", cmd_init_runonce, "day-1 resources, as kolla-ansible's init-runonce: flavors, "
                                           "public and demo networks, key pair, ping and SSH allowed"),
        ("prechecks", cmd_prechecks, "engine reachable, ports free, images present, passwords complete"),
        ("check", cmd_check, "every enabled container running and healthy"),
        ("stop", cmd_stop, "stop this deployment's containers"),
        ("mariadb-recovery", cmd_mariadb_recovery,
         "restart a fully stopped Galera cluster from the member with the highest seqno"),
    ):
        p = sub.add_parser(name, help=helptext)
        add_deploy_options(p)
        p.set_defaults(func=func)

    p = sub.add_parser("destroy", help="remove this deployment's containers, rendered config and host "
                                       "resources (volumes with --include-volumes)")
    add_deploy_options(p)
    p.add_argument("--yes-i-really-really-mean-it", action="store_true")
    p.add_argument("--include-volumes", action="store_true")
    p.set_defaults(func=cmd_destroy)

