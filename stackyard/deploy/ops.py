"""stop, destroy, check and prechecks for a whole deployment, on every host.

The work on each host is :mod:`stackyard.agent.ops`: called here directly
with the local engine for an all-in-one, and by the ``stackyard_host``
Ansible module on each remote host. This module only computes each host's
inputs from the plan and picks the way to reach the hosts, so both ways run
the same code.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackyard.agent import ops as agent_ops
from stackyard.agent.hostapply import STATE_DIR, load_plan
from stackyard.deploy import clientfiles, multihost, services
from stackyard.deploy.plan import Deployment, deployment_label
from stackyard.engine import Engine
from stackyard.errors import DeployError


@dataclass
class OpResult:
    """What an operation printed per host, and whether it succeeded everywhere."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class HostChecks:
    """What prechecks verifies on one host."""

    address: str
    #: port -> the container that binds it (free unless that container holds it)
    ports: dict[int, str]
    images: list[str]

    def to_wire(self) -> dict[str, Any]:
        return {"address": self.address, "ports": {str(k): v for k, v in self.ports.items()},
                "images": self.images}


def host_checks(dep: Deployment, host: str) -> HostChecks:
    """The host's address, the ports its containers bind (as the services declare
    them) and the images it runs."""
    plan = dep.plans[host]
    names = {c.name for c in plan.containers()}
    prefix = str(dep.variables.get("stackyard_name_prefix") or "")
    ports = {int(dep.variables[p.option]): prefix + p.container for p in services.ports(dep.services)
             if prefix + p.container in names}
    return HostChecks(dep.host_address(host), ports, plan.images())


def _remote(dep: Deployment, inventories: list[Path], op: str, limit: str | None,
            args: dict[str, Any] | None = None, task_vars: dict[str, Any] | None = None) -> OpResult:
    result = multihost.run_op(dep, inventories, op, args=args, limit=limit, task_vars=task_vars)
    out = OpResult()
    for t in result.tasks:
        out.lines += [f"{t['host']}: {line}" for line in (t.get("result") or {}).get("lines", [])]
        if t.get("failed") or t.get("unreachable"):
            out.problems.append(f"{t['host']}: {(t.get('result') or {}).get('msg') or 'failed'}")
    if result.rc != 0 and not out.problems:
        out.problems.append(result.first_error() or f"{op} failed on {', '.join(result.failed_hosts)}")
    return out


def prechecks(dep: Deployment, engine: Engine | None, inventories: list[Path], limit: str | None = None,
              ports: bool = True) -> OpResult:
    """Engine, ports (unless ``ports`` is False: an upgrade of a running cloud) and
    images on every host of the deployment."""
    if dep.remote_hosts:
        checks = {h: host_checks(dep, h).to_wire() for h in dep.plans}
        if not ports:
            checks = {h: dict(c, ports={}) for h, c in checks.items()}
        return _remote(dep, inventories, "prechecks", limit,
                       args={"checks": "{{ stackyard_checks[inventory_hostname] }}"},
                       task_vars={"stackyard_checks": checks})
    assert engine is not None
    out = OpResult()
    for host in dep.plans:
        c = host_checks(dep, host)
        problems = agent_ops.prechecks(engine, c.address, c.ports if ports else {}, c.images, dep.label)
        out.lines += [f"FAIL {p}" for p in problems]
        out.problems += problems
    return out


def check(dep: Deployment, engine: Engine | None, inventories: list[Path], limit: str | None = None) -> OpResult:
    """Every planned container running and healthy, on every host."""
    if dep.remote_hosts:
        return _remote(dep, inventories, "check", limit)
    assert engine is not None
    out = OpResult()
    for plan in dep.plans.values():
        for h in agent_ops.check(engine, plan):
            out.lines.append(h.line())
            if not h.ok:
                out.problems.append(f"{h.name}: {h.verdict} ({h.state})")
    return out


def stop(dep: Deployment | None, configdir: Path, engine: Engine | None, inventories: list[Path],
         limit: str | None = None) -> OpResult:
    """Stop the deployment's containers; ``dep`` may be None when the config no longer loads."""
    if dep is not None and dep.remote_hosts:
        return _remote(dep, inventories, "stop", limit)
    assert engine is not None
    stopped = agent_ops.stop(engine, deployment_label(configdir))
    return OpResult(lines=[f"stopped {name}" for name in stopped])


def destroy(dep: Deployment | None, configdir: Path, engine: Engine | None, inventories: list[Path],
            include_volumes: bool, limit: str | None = None) -> OpResult:
    """Remove the deployment's containers, rendered config, host resources and
    (``include_volumes``) volumes, then its client files and deploy state.

    ``dep`` may be None when the config no longer loads: the all-in-one is
    then found by its deployment label and the plan it stored.
    """
    if dep is not None and dep.remote_hosts:
        out = _remote(dep, inventories, "destroy", limit, args={"volumes": include_volumes})
        if not out.ok:
            raise DeployError("; ".join(out.problems))
        state = Path(configdir) / STATE_DIR
        if state.is_dir() and not limit:
            shutil.rmtree(state)
    else:
        assert engine is not None
        out = OpResult()
        label = deployment_label(configdir)
        roots = {p.config_root: p for p in dep.plans.values()} if dep is not None else {str(configdir): None}
        for root, fresh in roots.items():
            # the plan the last deploy stored says what was made; a fresh one, if none was stored
            gone = agent_ops.destroy(engine, label, load_plan(root) or fresh, root, include_volumes)
            out.lines += gone.lines()
    out.lines += [f"removed {p}" for p in clientfiles.remove_client_files(configdir)]
    return out
