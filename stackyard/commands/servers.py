"""Commands that run stackyard's own Ansible playbooks: ``bootstrap-servers``.

Host preparation (packages, Docker daemon settings, /etc/hosts) is plain
configuration management, which Ansible already does well over SSH; the
deploy itself stays in stackyard. Options mirror the deploy commands
(--configdir, -i, -e, --limit) so the same inventory and globals.yml serve both.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from stackyard.ansible import runner
from stackyard.commands.common import add_deploy_options, extra_vars
from stackyard.deploy.config import load_globals
from stackyard.errors import DeployError

BOOTSTRAP_PLAYBOOK = "bootstrap-servers.yml"


def bootstrap_extra_vars(variables: dict[str, Any]) -> dict[str, Any]:
    """Extra vars for bootstrap-servers.yml from the deploy globals.

    Only values the playbook needs, and never ``api_interface`` or
    ``network_interface`` under their own names: extra vars beat inventory
    host vars, so passing them would override per-host interfaces. The
    global interface is passed as a fallback under a name of its own.
    """
    registry = str(variables.get("docker_registry") or "")
    return {
        "docker_registry": registry,
        "docker_registry_insecure": bool(variables.get("docker_registry_insecure")) and bool(registry),
        "stackyard_default_interface": str(variables.get("api_interface")
                                           or variables.get("network_interface") or "eth0"),
    }


def cmd_bootstrap_servers(args: argparse.Namespace) -> int:
    cli_vars = extra_vars(args.extra_vars)
    variables, warnings = load_globals(Path(args.configdir), cli_vars)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    if not args.inventory:
        raise DeployError("bootstrap-servers needs an inventory: -i multinode")
    extra = bootstrap_extra_vars(variables)
    result = runner.run_playbook(runner.PLAYBOOKS / BOOTSTRAP_PLAYBOOK, [Path(p) for p in args.inventory],
                          limit=args.limit, extra_vars=extra, verbose=args.verbose)
    summary = {"rc": result.rc, "changed": result.changed, "hosts": result.hosts,
               "failed_hosts": result.failed_hosts}
    if args.format == "json":
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        print(f"bootstrap-servers: {len(result.hosts)} host(s), {result.changed} changed, "
              f"{len(result.failed_hosts)} failed", file=sys.stderr)
    if result.rc != 0 or result.failed_hosts:
        raise DeployError(f"bootstrap-servers failed: {result.first_error() or f'rc {result.rc}'}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    """The deploy commands' options (--configdir, -i, -e, --limit, --format), plus -v."""
    add_deploy_options(p)
    p.add_argument("-v", "--verbose", action="store_true", help="print the ansible-playbook command")


def register(sub: Any) -> None:
    p = sub.add_parser("bootstrap-servers",
                       help="prepare hosts for deploys: docker, python3-docker, daemon.json, /etc/hosts")
    _common(p)
    p.set_defaults(func=cmd_bootstrap_servers)
