"""Compute each host's desired state from the operator's configuration.

Pure: reads globals, passwords, inventory and overrides; returns
:class:`~stackyard.agent.model.HostPlan` objects. No engine is touched, so
``--dry-run`` and unit tests use exactly what ``apply`` would.

Services are planned in deploy order (:mod:`stackyard.deploy.services`), each
on the hosts of the groups it is ``placed_by``; each step then stays only on
the hosts of its own group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackyard.agent.model import HostPlan, Phase, StepKind
from stackyard.deploy import config as config_mod
from stackyard.deploy import inventorycheck, merge, services
from stackyard.deploy.context import PlanContext
from stackyard.deploy.inventory import Inventory, load_inventory
from stackyard.deploy.passwords import load_passwords
from stackyard.deploy.services.base import Service


@dataclass
class Deployment:
    """Everything loaded from the config dir, plus the per-host plans."""

    configdir: Path
    variables: dict[str, Any]
    passwords: dict[str, Any]
    inventory: Inventory
    warnings: list[str] = field(default_factory=list)
    plans: dict[str, HostPlan] = field(default_factory=dict)

    @property
    def services(self) -> list[Service]:
        """The enabled services, in deploy order."""
        return services.enabled(self.variables)

    @property
    def enabled(self) -> list[str]:
        return [s.name for s in self.services]

    @property
    def label(self) -> str:
        """The deployment label: the config dir's absolute path (see DEPLOYMENT_LABEL)."""
        return deployment_label(self.configdir)

    @property
    def remote_hosts(self) -> list[str]:
        """Inventory hosts reached over SSH (not this machine): a multi-host deploy."""
        return [h for h, hv in self.inventory.hosts.items() if is_remote(h, hv)]

    def host_address(self, host: str) -> str:
        """The address ``host``'s services bind to (api_interface_address)."""
        return str(self.inventory.hosts.get(host, {}).get("api_interface_address")
                   or self.variables["api_interface_address"])


def deployment_label(configdir: Path) -> str:
    return str(Path(configdir).absolute())


def is_remote(host: str, hostvars: dict[str, Any]) -> bool:
    return hostvars.get("ansible_connection", "ssh") != "local" and host not in ("localhost", "127.0.0.1")


def load(configdir: Path, inventory_paths: list[Path] | None = None,
         extra_vars: dict[str, Any] | None = None) -> Deployment:
    variables, warnings = config_mod.load_globals(configdir, extra_vars)
    passwords = load_passwords(configdir / "passwords.yml", services.enabled(variables))
    inventory = load_inventory(inventory_paths)
    inventorycheck.check(inventory, services.enabled(variables), lambda groups: hosts_for_groups(inventory, groups))
    dep = Deployment(configdir, variables, passwords, inventory, warnings)
    if variables.get("node_config_directory", "/etc/kolla") in ("", "/etc/kolla") and not dep.remote_hosts:
        # on this machine, a config dir other than /etc/kolla keeps its rendered
        # files beside it (tests, labs); remote hosts use /etc/kolla like kolla-ansible
        variables["node_config_directory"] = str(configdir)
    return dep


#: inventory group -> the groups it falls back to (declared by the services)
_FALLBACKS = services.groups()


def hosts_for(inventory: Inventory, group: str) -> list[str]:
    """Hosts of ``group``; when the inventory lacks it, the hosts of the groups it
    is declared to fall back to (``nova-compute`` -> ``compute``), and at the top
    ``control``'s."""
    seen: set[str] = set()
    fallbacks = _FALLBACKS

    def walk(g: str) -> list[str]:
        if g in inventory.groups:
            return inventory.hosts_in(g)
        if g in seen:
            return []
        seen.add(g)
        return sorted({h for parent in fallbacks.get(g, ()) for h in walk(parent)})

    found = walk(group)
    if not found and group not in inventory.groups and "control" in inventory.groups:
        return inventory.hosts_in("control")
    return found


def hosts_for_groups(inventory: Inventory, groups: tuple[str, ...]) -> list[str]:
    """Hosts of any of ``groups``, in inventory (sorted) order."""
    return sorted({h for g in groups for h in hosts_for(inventory, g)})


def place_steps(phase: Phase, host: str, inventory: Inventory) -> Phase:
    """Keep the steps whose group holds ``host`` (a wait follows its container)."""
    group_of = {s.name: s.group for s in phase.steps if s.kind in (StepKind.CONTAINER, StepKind.GALERA)}
    kept = []
    for seq, step in enumerate(phase.steps):
        step.seq = seq
        group = step.group or (group_of.get(step.name, "") if step.kind == StepKind.WAIT else "")
        if not group or host in hosts_for(inventory, group):
            kept.append(step)
    phase.steps = kept
    return phase


#: step kinds whose name is a container's
_NAMED_BY_CONTAINER = (StepKind.CONTAINER, StepKind.JOB, StepKind.GALERA, StepKind.WAIT)


def prefix_names(phase: Phase, prefix: str) -> Phase:
    """Give every container and named volume of ``phase`` the deployment's name prefix.

    Services plan with plain names (``nova_api``, ``mariadb:/var/lib/mysql``);
    this is the one place that turns them into engine names, so two
    deployments can share an engine.
    """
    if not prefix:
        return phase
    for step in phase.steps:
        if step.kind in _NAMED_BY_CONTAINER:
            step.name = prefix + step.name
        if "container" in step.params:
            step.params["container"] = prefix + step.params["container"]
        spec = step.container
        if spec is None:
            continue
        spec.name = prefix + spec.name
        spec.volumes = [prefix + vol if not vol.startswith("/") else vol for vol in spec.volumes]
    return phase


def make_plans(dep: Deployment) -> dict[str, HostPlan]:
    """One HostPlan per host that runs at least one enabled service."""
    plans: dict[str, HostPlan] = {}
    used: set[Path] = set()
    root = Path(dep.variables["node_config_directory"])
    users = services.users()
    prefix = str(dep.variables.get("stackyard_name_prefix") or "")
    for service in dep.services:
        assert service.plan is not None
        for host in hosts_for_groups(dep.inventory, service.placement_groups):
            hvars = dict(dep.variables)
            hvars.update(dep.inventory.hosts.get(host, {}))
            hvars["inventory_hostname"] = host
            hvars["api_interface_address"] = dep.host_address(host)
            plan = plans.get(host)
            if plan is None:
                plan = plans[host] = HostPlan(host=host, config_root=str(root), deployment=dep.label)
            ctx = PlanContext(host=host, variables=hvars, passwords=dep.passwords, configdir=dep.configdir,
                              config_root=root, service=service, users=users, deployment=dep.label,
                              enabled=dep.services,
                              files=plan.files,
                              group_addresses=lambda g: [dep.host_address(h) for h in hosts_for(dep.inventory, g)],
                              group_hosts=lambda g: hosts_for(dep.inventory, g))
            phase = prefix_names(place_steps(service.plan(ctx), host, dep.inventory), prefix)
            plan.files = ctx.files
            plan.resources += ctx.resources
            used |= ctx.used_overrides
            plan.phases.append(phase)
            for step in phase.steps:
                if step.container is None:
                    continue
                for vol in step.container.volumes:
                    src = vol.split(":", 1)[0]
                    if not src.startswith("/") and src not in plan.volumes:
                        plan.volumes.append(src)
    for path in merge.unused_overrides(dep.configdir, used):
        dep.warnings.append(f"{path}: override file is not read by any enabled service")
    dep.plans = plans
    return plans
