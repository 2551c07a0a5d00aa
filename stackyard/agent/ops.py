"""Operations on a deployed host: stop, destroy, check, prechecks.

One implementation for both ways of reaching a host: the local CLI calls
these functions with the local engine, and the ``stackyard_host`` Ansible
module calls the very same functions on each remote host. Each works from
the plan stored on the host by the last deploy (or the plan given) and from
the deployment label, so it touches only that deployment's containers,
volumes, files and host resources.
"""

from __future__ import annotations

import json
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

from . import resources
from .engine import ContainerState, CreateRequest, Engine
from .errors import DeployError, EngineError
from .hostapply import STATE_DIR, container_health, has_registry
from .model import DEPLOYMENT_LABEL, MANAGED_LABEL, ContainerSpec, HostPlan


def deployment_filter(deployment: str) -> list[str]:
    """The engine label filters selecting one deployment's containers and volumes."""
    return [MANAGED_LABEL, f"{DEPLOYMENT_LABEL}={deployment}"]


def deployment_containers(engine: Engine, deployment: str) -> list[ContainerState]:
    return engine.containers(deployment_filter(deployment))


def stop(engine: Engine, deployment: str, names: list[str] | None = None, timeout: int = 60,
         dry_run: bool = False) -> list[str]:
    """Stop the deployment's running containers (all, or those named); returns the names."""
    stopped = []
    for c in deployment_containers(engine, deployment):
        if c.running and (names is None or c.name in names):
            if not dry_run:
                engine.stop(c.name, timeout)
            stopped.append(c.name)
    return stopped


@dataclass
class Destroyed:
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return ([f"removed container {n}" for n in self.containers]
                + [f"removed volume {n}" for n in self.volumes]
                + [f"removed {p}" for p in self.paths]
                + [f"removed {r}" for r in self.resources])


def rendered_dirs(plan: HostPlan | None, config_root: str) -> list[Path]:
    """Every directory the deployer rendered into on this host, and its state dir.

    From the stored plan; without one (a deploy that never got that far), the
    service directories under ``config_root`` that hold a config.json.
    """
    root = Path(config_root)
    dirs = {root / STATE_DIR}
    if plan is not None:
        dirs |= {Path(f.path).parent for f in plan.files}
    elif root.is_dir():
        dirs |= {p for p in root.iterdir() if (p / "config.json").exists()}
    return sorted(dirs)


def destroy(engine: Engine, deployment: str, plan: HostPlan | None, config_root: str,
            include_volumes: bool = False, dry_run: bool = False) -> Destroyed:
    """Remove the deployment's containers, rendered config, state, host resources
    and (``include_volumes``) volumes. Other deployments on the engine are not touched."""
    out = Destroyed()
    for c in deployment_containers(engine, deployment):
        if not dry_run:
            engine.remove(c.name)
        out.containers.append(c.name)
    for d in rendered_dirs(plan, config_root):
        if d.is_dir():
            if not dry_run:
                shutil.rmtree(d)
            out.paths.append(str(d))
    if plan is not None:
        out.resources = resources.teardown(plan.resources, dry_run)
    if include_volumes:
        for vol in engine.volumes(deployment_filter(deployment)):
            if not dry_run:
                engine.remove_volume(vol)
            out.volumes.append(vol)
    return out


@dataclass
class Health:
    name: str
    verdict: str   # healthy, starting, unhealthy, stopped, missing
    state: str

    @property
    def ok(self) -> bool:
        return self.verdict == "healthy"

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.verdict} ({self.state})"


def check(engine: Engine, plan: HostPlan) -> list[Health]:
    """Every planned service container: running and healthy?"""
    out = []
    for spec in plan.containers():
        verdict, state = container_health(engine, spec)
        out.append(Health(spec.name, verdict, state))
    return out


def prechecks(engine: Engine, address: str, ports: dict[int, str], images: list[str],
              deployment: str = "") -> list[str]:
    """Before a deploy: each port free on ``address`` unless its owning container
    (``ports``: port -> container name) of this deployment already holds it, and
    every image on the host or, for an image named with a registry, in that registry."""
    problems = []
    labels = deployment_filter(deployment) if deployment else [MANAGED_LABEL]
    running = {c.name for c in engine.containers(labels) if c.running}
    for port, owner in sorted(ports.items()):
        if owner in running:
            continue  # ours already holds it
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((address, port))
            except OSError as exc:
                problems.append(f"port {address}:{port} for {owner} is in use ({exc.strerror})")
    for ref in images:
        if engine.image_id(ref) is not None:
            continue
        if not has_registry(ref):
            problems.append(f"image {ref} is missing (run 'stackyard build')")
            continue
        try:
            engine.in_registry(ref)
        except EngineError as exc:
            problems.append(f"image {ref} is neither on the host nor in its registry ({exc}): "
                            f"push it with 'stackyard build --push'")
    return problems


def galera_position(engine: Engine, spec: ContainerSpec) -> dict:
    """uuid/seqno of a stopped member's data, read by galera-recover in a one-off
    container on the member's volume and config (it may need mariadbd --wsrep-recover)."""
    req = CreateRequest(name=f"{spec.name}_galera_recover", image=spec.image, command=["galera-recover"],
                        binds=list(spec.volumes), environment={"KOLLA_CONFIG_STRATEGY": "COPY_ALWAYS"},
                        network_mode="host")
    code, out, err = engine.run(req)
    if code != 0:
        raise DeployError(f"galera-recover failed (exit {code}): {err.strip() or out.strip()}")
    lines = out.strip().splitlines()
    try:
        return dict(json.loads(lines[-1]))
    except (IndexError, ValueError):
        raise DeployError(f"galera-recover printed no position: {out.strip()[-200:]}") from None
