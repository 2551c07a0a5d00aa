"""Compute each host's desired state from the operator's configuration.

Pure: reads globals, passwords, inventory and overrides; returns
:class:`~stackyard.deploy.model.HostPlan` objects. No engine is touched, so
``--dry-run`` and unit tests use exactly what ``apply`` would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from stackyard.deploy import config as config_mod
from stackyard.deploy import merge
from stackyard.deploy.context import PlanContext
from stackyard.deploy.inventory import Inventory, load_inventory
from stackyard.deploy.model import HostPlan, Phase
from stackyard.deploy.passwords import load_passwords
from stackyard.deploy.services import (
    cron, glance, horizon, keystone, loadbalancer, mariadb, memcached, neutron, nova, openvswitch, placement,
    rabbitmq,
)

NOVA_GROUPS = ("nova-api", "nova-metadata", "nova-scheduler", "nova-conductor", "nova-novncproxy",
               "nova-libvirt", "nova-compute")
NEUTRON_GROUPS = ("neutron-server", "neutron-dhcp-agent", "neutron-l3-agent", "neutron-metadata-agent",
                  "neutron-openvswitch-agent")

#: service -> (inventory group(s) it is placed by, plan function); deploy order.
#: A service with several groups is planned on every host of any of them; each
#: step then stays only on the hosts of its own group (Step.group).
SERVICE_PLANNERS: dict[str, tuple[str | tuple[str, ...], Callable[[PlanContext], Phase]]] = {
    "loadbalancer": ("loadbalancer", loadbalancer.plan),
    "mariadb": ("mariadb", mariadb.plan),
    "memcached": ("memcached", memcached.plan),
    "rabbitmq": ("rabbitmq", rabbitmq.plan),
    "keystone": ("keystone", keystone.plan),
    "glance": ("glance-api", glance.plan),
    "placement": ("placement-api", placement.plan),
    "openvswitch": ("openvswitch", openvswitch.plan),
    "nova": (NOVA_GROUPS, nova.plan),
    "neutron": (NEUTRON_GROUPS, neutron.plan),
    "horizon": ("horizon", horizon.plan),
    "cron": ("cron", cron.plan),
}


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
    def enabled(self) -> list[str]:
        return [s for s in config_mod.enabled_services(self.variables) if s in SERVICE_PLANNERS]

    @property
    def remote_hosts(self) -> list[str]:
        """Inventory hosts reached over SSH (not this machine): a multi-host deploy."""
        return [h for h, hv in self.inventory.hosts.items() if is_remote(h, hv)]

    def host_address(self, host: str) -> str:
        """The address ``host``'s services bind to (api_interface_address)."""
        return str(self.inventory.hosts.get(host, {}).get("api_interface_address")
                   or self.variables["api_interface_address"])


def is_remote(host: str, hostvars: dict[str, Any]) -> bool:
    return hostvars.get("ansible_connection", "ssh") != "local" and host not in ("localhost", "127.0.0.1")


def load(configdir: Path, inventory_paths: list[Path] | None = None,
         extra_vars: dict[str, Any] | None = None) -> Deployment:
    variables, warnings = config_mod.load_globals(configdir, extra_vars)
    passwords = load_passwords(configdir / "passwords.yml", config_mod.enabled_services(variables))
    inventory = load_inventory(inventory_paths)
    dep = Deployment(configdir, variables, passwords, inventory, warnings)
    if variables.get("node_config_directory", "/etc/kolla") in ("", "/etc/kolla") and not dep.remote_hosts:
        # on this machine, a config dir other than /etc/kolla keeps its rendered
        # files beside it (tests, labs); remote hosts use /etc/kolla like kolla-ansible
        variables["node_config_directory"] = str(configdir)
    return dep


def hosts_for(inventory: Inventory, group: str) -> list[str]:
    if group in inventory.groups:
        return inventory.hosts_in(group)
    return inventory.hosts_in("control") if "control" in inventory.groups else []


def hosts_for_groups(inventory: Inventory, groups: str | tuple[str, ...]) -> list[str]:
    """Hosts of any of ``groups``, in inventory (sorted) order."""
    if isinstance(groups, str):
        return hosts_for(inventory, groups)
    found = {h for g in groups for h in hosts_for(inventory, g)}
    return sorted(found)


def place_steps(phase: Phase, host: str, inventory: Inventory) -> Phase:
    """Keep the steps whose group holds ``host`` (a wait follows its container)."""
    group_of = {s.name: s.group for s in phase.steps if s.kind in ("container", "galera")}
    kept = []
    for seq, step in enumerate(phase.steps):
        step.seq = seq
        group = step.group or (group_of.get(step.name, "") if step.kind == "wait" else "")
        if not group or host in hosts_for(inventory, group):
            kept.append(step)
    phase.steps = kept
    return phase


def make_plans(dep: Deployment) -> dict[str, HostPlan]:
    """One HostPlan per host that runs at least one enabled service."""
    plans: dict[str, HostPlan] = {}
    used: set[Path] = set()
    root = Path(dep.variables["node_config_directory"])
    for service in dep.enabled:
        groups, planner = SERVICE_PLANNERS[service]
        for host in hosts_for_groups(dep.inventory, groups):
            hvars = dict(dep.variables)
            hvars.update({k: v for k, v in dep.inventory.hosts.get(host, {}).items()})
            hvars["inventory_hostname"] = host
            plan = plans.get(host)
            if plan is None:
                plan = plans[host] = HostPlan(host=host, config_root=str(root))
            hvars["api_interface_address"] = dep.host_address(host)
            ctx = PlanContext(host=host, variables=hvars, passwords=dep.passwords,
                              configdir=dep.configdir, config_root=root, files=plan.files,
                              group_addresses=lambda g: [dep.host_address(h) for h in hosts_for(dep.inventory, g)],
                              group_hosts=lambda g: hosts_for(dep.inventory, g))
            phase = place_steps(planner(ctx), host, dep.inventory)
            plan.files = ctx.files
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
