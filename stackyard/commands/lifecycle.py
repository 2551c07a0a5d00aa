"""``stackyard backup``, ``restore``, ``upgrade`` and ``rollback``.

An all-in-one is driven through the local engine; an inventory with remote
hosts through Ansible (the engine is then not needed on the deploy host).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from stackyard.commands.common import add_deploy_options, console, inventories, load_deployment, local_engine
from stackyard.deploy import backup as backup_mod
from stackyard.deploy import upgrade as upgrade_mod
from stackyard.deploy.plan import Deployment
from stackyard.engine import Engine
from stackyard.errors import DeployError


def _engine_unless_remote(dep: Deployment, args: argparse.Namespace) -> Engine | None:
    if getattr(args, "limit", None):
        raise DeployError(f"--limit: stackyard {args.command} works on every host of the deployment "
                          f"(a cloud half on each release is not a state it can back up or roll back)")
    return None if dep.remote_hosts else local_engine(dep)


def _print(args: argparse.Namespace, result: dict[str, Any], text: list[str]) -> None:
    if args.format == "json":
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        for line in text:
            print(line)


def cmd_backup(args: argparse.Namespace) -> int:
    if args.list:
        found = backup_mod.list_backups(Path(args.configdir))
        _print(args, {"backups": [b.to_dict() for b in found]},
               [f"{b.id}  {b.created}  release {b.release}  {len(b.databases)} databases  {b.reason}"
                for b in found] or ["no backups"])
        return 0
    dep = load_deployment(args)
    taken = backup_mod.create(dep, _engine_unless_remote(dep, args), args.reason or "manual", console().print,
                              inventories(args))
    _print(args, taken.to_dict(), [taken.id])
    return 0


def _reload(args: argparse.Namespace) -> Any:
    def reload() -> Deployment:
        return load_deployment(args)
    return reload


def cmd_restore(args: argparse.Namespace) -> int:
    dep = load_deployment(args)
    result = upgrade_mod.restore(dep, _engine_unless_remote(dep, args), args.backup, console().print, _reload(args),
                                 inventories(args))
    _print(args, result, [f"restored backup {result['backup']} (release {result['release']}) "
                          f"in {result['seconds']:.0f}s; the APIs were unavailable for "
                          f"{result['api_downtime_seconds']:.0f}s"])
    return 0


def cmd_upgrade(args: argparse.Namespace) -> int:
    dep = load_deployment(args)
    result = upgrade_mod.upgrade(dep, _engine_unless_remote(dep, args), console().print, dry_run=args.dry_run,
                                 inventories=inventories(args))
    if args.dry_run:
        _print(args, result, [f"{i}. {step}" for i, step in enumerate(result["steps"], 1)])
        return 0
    _print(args, result, [
        f"upgrade {result['from']} -> {result['to']} ({result['kind']}) done in {result['seconds']:.0f}s; "
        f"backup {result['backup']} (stackyard rollback goes back to it)",
        *[f"  {api}: {result['versions_before'].get(api, '-')} -> {v}"
          for api, v in sorted(result["versions_after"].items())],
    ])
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    dep = load_deployment(args)
    result = upgrade_mod.rollback(dep, _engine_unless_remote(dep, args), console().print, _reload(args), args.backup,
                                  inventories(args))
    _print(args, result, [f"rolled back to release {result['release']} (backup {result['backup']}) "
                          f"in {result['seconds']:.0f}s; the APIs were unavailable for "
                          f"{result['api_downtime_seconds']:.0f}s (control plane stopped until healthy again)"])
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("backup", help="back up the databases, config and deployed images (or --list them)")
    add_deploy_options(p)
    p.add_argument("--list", action="store_true", help="list the backups of this config dir")
    p.add_argument("--reason", help="a note stored with the backup")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", help="put a backup's databases and config back and converge to them")
    add_deploy_options(p)
    p.add_argument("backup", help="backup id (stackyard backup --list)")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("upgrade", help="upgrade to the release globals.yml names (or to new images): "
                                       "prechecks, backup, each project as its docs prescribe, post-checks")
    add_deploy_options(p)
    p.add_argument("--dry-run", action="store_true", help="run the prechecks and print the ordered steps")
    p.set_defaults(func=cmd_upgrade)

    p = sub.add_parser("rollback", help="back to the release before the last upgrade (restores its backup)")
    add_deploy_options(p)
    p.add_argument("backup", nargs="?", help="backup id (default: the one the last upgrade took)")
    p.set_defaults(func=cmd_rollback)
