"""Options and helpers shared by the deployer commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from stackyard import engine as engine_mod
from stackyard.deploy import multihost
from stackyard.deploy import plan as plan_mod
from stackyard.deploy.plan import Deployment
from stackyard.engine import Engine
from stackyard.errors import ConfigError

DEFAULT_CONFIGDIR = Path("/etc/kolla")


def console() -> Console:
    """Progress and warnings go to stderr; stdout stays for results (JSON)."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def extra_vars(items: list[str]) -> dict[str, Any]:
    """``-e`` values as Ansible reads them: ``@file.yml``, a YAML/JSON mapping
    (``{"key": [1, 2]}``), or ``key=value``, whose value is a string.

    A ``key=value`` value is never parsed as YAML: Ansible keeps it a string
    (``-e 'key={{ foo }}'`` is a template, rendered with globals.yml's), and
    the options' types are applied later by :func:`stackyard.deploy.config.coerce`
    (``-e enable_heat=yes`` is still a boolean there).
    """
    out: dict[str, Any] = {}
    for item in items:
        if item.startswith("@"):
            path = Path(item[1:])
            try:
                data = yaml.safe_load(path.read_text())
            except (OSError, yaml.YAMLError) as exc:
                raise ConfigError(f"{path}: cannot read extra vars: {exc}") from None
            out.update(_mapping(data or {}, str(path)))
        elif item.lstrip().startswith(("{", "[")):
            try:
                data = yaml.safe_load(item)
            except yaml.YAMLError as exc:
                first = str(exc).splitlines()[0]
                raise ConfigError(f"-e '{item}': invalid YAML/JSON ({first}); "
                                  f"use key=value for a plain value") from None
            out.update(_mapping(data, f"-e '{item}'"))
        elif "=" in item:
            key, _, value = item.partition("=")
            out[key.strip()] = value
        else:
            raise ConfigError(f"-e '{item}': expected key=value, a YAML/JSON mapping or @file.yml")
    return out


def _mapping(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: extra vars must be a mapping")
    return data


def absolute_configdir(args: argparse.Namespace) -> argparse.Namespace:
    """Make ``--configdir`` absolute, once, before any command runs.

    The config dir ends up in places read from other directories (the
    playbook's lookups of the per-host ``.plan`` files, relative to the
    playbook; the deployment label on every container), so a relative
    ``--configdir`` must mean the same directory everywhere.
    """
    configdir = getattr(args, "configdir", None)
    if configdir:
        args.configdir = str(Path(configdir).expanduser().absolute())
    return args


def add_deploy_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--configdir", default=str(DEFAULT_CONFIGDIR),
                   help="directory with globals.yml, passwords.yml and config/ (default /etc/kolla)")
    p.add_argument("-i", "--inventory", action="append", default=[],
                   help="Ansible inventory (INI or YAML); default: built-in all-in-one")
    p.add_argument("-e", "--extra-vars", dest="extra_vars", action="append", default=[],
                   help="key=value or @file.yml, overrides globals.yml")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--limit", help="only these inventory hosts or groups (Ansible pattern; multi-host)")


def inventories(args: argparse.Namespace) -> list[Path]:
    return [Path(p) for p in args.inventory]


def load_deployment(args: argparse.Namespace) -> Deployment:
    """globals, passwords, inventory (addresses resolved on remote hosts), then every host's plan."""
    inv = inventories(args) or None
    dep = plan_mod.load(Path(args.configdir), inv, extra_vars(args.extra_vars))
    if dep.remote_hosts:
        multihost.resolve_addresses(dep, inv or [])
    plan_mod.make_plans(dep)
    say = console().print
    for w in dep.warnings:
        say(f"[yellow]warning:[/yellow] {w}")
    return dep


def local_engine(dep: Deployment | None = None) -> Engine:
    """The engine on this machine (``kolla_container_engine``); EngineError if it does not answer."""
    kind = str(dep.variables.get("kolla_container_engine", "docker")) if dep is not None else "docker"
    return engine_mod.connect(kind)


def selected_phases(args: argparse.Namespace) -> set[str] | None:
    tags = getattr(args, "tags", None)
    if not tags:
        return None
    return {t.strip() for item in tags for t in item.split(",") if t.strip()}
