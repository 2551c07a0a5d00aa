"""Decide what to do with one step, from what the engine shows: pure functions.

The executor (:mod:`.hostapply`) observes (container state, job records),
asks these functions for an :class:`Action`, then performs it. Keeping the
decision free of engine calls means every rule is a table-driven unit test,
and a dry run is the same decision with the performing left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from .engine import ContainerState, CreateRequest
from .model import DEPLOYMENT_LABEL, MANAGED_LABEL, SERVICE_LABEL, SPEC_LABEL, ContainerSpec

#: the engine's read-only /proc paths for unprivileged containers (moby's defaults)
DEFAULT_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


class Act(str, Enum):
    """What the executor does for a step."""

    NOTHING = "nothing"      # already as planned
    START = "start"          # the right container exists, stopped: start it
    CREATE = "create"        # none exists: create and start
    RECREATE = "recreate"    # a different one exists: remove, create, start
    RUN = "run"              # run a one-shot job
    FORM = "form"            # Galera: start this member with --wsrep-new-cluster
    FAIL = "fail"            # refuse: the detail says why and what to do

    def __str__(self) -> str:
        return self.value


#: the report's wording per action, done and dry-run
_DONE = {Act.START: "started", Act.CREATE: "created", Act.RECREATE: "recreated", Act.RUN: "ran",
         Act.FORM: "formed a new cluster"}
_WOULD = {Act.START: "would start", Act.CREATE: "would create", Act.RECREATE: "would recreate",
          Act.RUN: "would run", Act.FORM: "would form a new cluster"}


@dataclass(frozen=True)
class Action:
    act: Act
    #: report text when nothing is done, or a suffix to the done/would text
    detail: str = ""

    @property
    def changes(self) -> bool:
        return self.act not in (Act.NOTHING, Act.FAIL)

    def describe(self, dry_run: bool) -> str:
        """The report's text for this action."""
        if not self.changes:
            return self.detail
        base = (_WOULD if dry_run else _DONE)[self.act]
        return f"{base} {self.detail}".strip() if self.detail and not dry_run else base


def foreign(current: ContainerState | None, deployment: str) -> Action | None:
    """A refusal when ``current`` is another deployment's container (same name, other label).

    Recreating it would take over, or break, a deployment this one does not
    own; the operator picks a ``stackyard_name_prefix`` instead. A stackyard
    container from before deployment labels existed is adopted.
    """
    if current is None or not deployment:
        return None
    owner = current.labels.get(DEPLOYMENT_LABEL)
    if owner == deployment or (owner is None and current.labels.get(MANAGED_LABEL) == "true"):
        return None
    whose = f"deployment {owner}" if owner else "something other than stackyard"
    return Action(Act.FAIL, f"container {current.name} belongs to {whose}, not to {deployment}: "
                            f"set stackyard_name_prefix to deploy beside it")


def container_action(want: str, current: ContainerState | None, deployment: str = "") -> Action:
    """A service container: leave it, start it, or (re)create it.

    ``want`` is the spec hash the plan asks for; the container carries the hash
    it was created with in :data:`SPEC_LABEL`. A container of the same name
    that belongs to another deployment is never touched.
    """
    refusal = foreign(current, deployment)
    if refusal is not None:
        return refusal
    if current is None:
        return Action(Act.CREATE)
    if current.labels.get(SPEC_LABEL) != want:
        return Action(Act.RECREATE)
    if current.running:
        return Action(Act.NOTHING, "running")
    return Action(Act.START)


def job_action(want: str, recorded: str | None) -> Action:
    """A one-shot job runs when its spec hash differs from the one of its last success."""
    if recorded == want:
        return Action(Act.NOTHING, "done before")
    return Action(Act.RUN)


def create_request(spec: ContainerSpec, spec_hash: str, *, extra_env: dict[str, str] | None = None,
                   extra_labels: dict[str, str] | None = None) -> CreateRequest:
    """The engine request for ``spec``: its labels (hash, service, managed), env and mounts."""
    labels = dict(spec.labels)
    labels.update({SPEC_LABEL: spec_hash, SERVICE_LABEL: spec.service, MANAGED_LABEL: "true"})
    labels.update(extra_labels or {})
    healthcheck: dict[str, Any] | None = spec.healthcheck.to_docker() if spec.healthcheck else None
    return CreateRequest(
        name=spec.name, image=spec.image, command=spec.command,
        environment=dict(spec.environment, **(extra_env or {})), labels=labels, binds=list(spec.volumes),
        network_mode=spec.network_mode, user=spec.user, cap_add=list(spec.cap_add), devices=list(spec.devices),
        restart_policy=spec.restart_policy if spec.restart_policy != "no" else None, healthcheck=healthcheck,
        # /proc/sys writable for agents that set sysctls in their namespaces; the
        # engine's other read-only paths (and every masked path) stay as they are
        readonly_paths=([p for p in DEFAULT_READONLY_PATHS if p != "/proc/sys"]
                        if spec.writable_proc_sys else None),
    )
