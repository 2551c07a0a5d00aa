"""The deploy plan as plain, serialisable data.

A :class:`HostPlan` is everything one host should look like: the config files
to write, the named volumes, the host resources its services own, and ordered
phases of steps (databases to create, one-shot jobs, containers, health waits,
Keystone registrations). It is computed without touching any engine; the
executor makes it so; multi-host deploys ship the same data to each host.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

SPEC_LABEL = "org.stackyard.spec-hash"
SERVICE_LABEL = "org.stackyard.service"
MANAGED_LABEL = "org.stackyard.managed"
#: the deployment a container or volume belongs to: the absolute path of the
#: operator's config dir on the deploy host, so destroy touches only its own
DEPLOYMENT_LABEL = "org.stackyard.deployment"


class StepKind(str, Enum):
    """Every kind of step a plan holds; the executors dispatch on it.

    A ``str`` enum, so plans serialise to JSON as plain strings and compare
    equal to them.
    """

    #: host-local (run by the agent on the host itself)
    HOST = "host"                    # ensure the service's host resources (mounts, veths)
    CONTAINER = "container"          # a long-running container
    JOB = "job"                      # a one-shot container (bootstrap), re-run when its spec changes
    WAIT = "wait"                    # wait for a container's health
    EXEC = "exec"                    # run a command in a container unless a check passes
    GALERA = "galera"                # a Galera member: join, or form the cluster (see galera.py)
    GALERA_FINALIZE = "galera_finalize"  # restart the forming member as an ordinary one
    #: API steps (run on the deploy host, which reaches every API)
    MYSQL_READY = "mysql_ready"
    DATABASE = "database"
    KEYSTONE_CHECK = "keystone_check"
    KEYSTONE_REGISTER = "keystone_register"
    KEYSTONE_DOMAIN = "keystone_domain"  # a domain and its admin user (params: description, user, password_key)
    KEYSTONE_ROLE = "keystone_role"  # a role, granted to the cloud admin when asked (params: grant_admin)
    HYPERVISOR_WAIT = "hypervisor_wait"
    AGENTS_WAIT = "agents_wait"
    VOLUME_SERVICES_WAIT = "volume_services_wait"  # Cinder's services report up (their backend answered)
    CACHE_FLUSH = "cache_flush"      # empty memcached (params: servers): what another release cached

    def __str__(self) -> str:
        return self.value


#: step kinds that talk to the cloud's APIs; they run on the deploy host
API_KINDS = frozenset({StepKind.DATABASE, StepKind.MYSQL_READY, StepKind.KEYSTONE_CHECK,
                       StepKind.KEYSTONE_REGISTER, StepKind.KEYSTONE_DOMAIN, StepKind.KEYSTONE_ROLE,
                       StepKind.HYPERVISOR_WAIT, StepKind.AGENTS_WAIT, StepKind.VOLUME_SERVICES_WAIT,
                       StepKind.CACHE_FLUSH})
#: step kinds that start a service container (what ``check`` and ``stop`` look at)
CONTAINER_KINDS = frozenset({StepKind.CONTAINER, StepKind.GALERA})


class ResourceKind(str, Enum):
    """Host resources outside the engine that a service creates and owns."""

    SHARED_MOUNT = "shared_mount"    # ``path`` bind-mounted on itself with shared propagation
    VETH = "veth"                    # a veth pair ``name``/``peer``, both up; ``address`` (CIDR)
    #                                  on ``peer``, which then forwards nothing
    NETNS = "netns"                  # network namespaces under ``path`` named ``prefixes``*:
    #                                  made by the service's processes, removed by destroy

    def __str__(self) -> str:
        return self.value


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class ConfigFile:
    """A rendered file on the host; containers mount its directory read-only."""

    path: str
    content: str
    mode: int = 0o600
    uid: int = 0
    gid: int = 0
    #: True when the content holds a secret: never printed, never logged
    secret: bool = False

    @property
    def hash(self) -> str:
        return sha256_text(f"{self.mode:o}:{self.uid}:{self.gid}:{self.content}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hash"] = self.hash
        if self.secret:
            d["content"] = "<secret>"
        return d


@dataclass
class Healthcheck:
    test: list[str]
    interval: int = 10
    timeout: int = 10
    retries: int = 3
    start_period: int = 5

    def to_docker(self) -> dict[str, Any]:
        ns = 1_000_000_000
        return {
            "test": self.test,
            "interval": self.interval * ns,
            "timeout": self.timeout * ns,
            "retries": self.retries,
            "start_period": self.start_period * ns,
        }


@dataclass
class ContainerSpec:
    """One long-running service container (or a one-shot job's container)."""

    name: str
    image: str
    service: str
    #: host config directories whose files feed this container (for the spec hash)
    config_dirs: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)  # "src:dst[:ro]"
    environment: dict[str, str] = field(default_factory=dict)
    healthcheck: Healthcheck | None = None
    cap_add: list[str] = field(default_factory=list)
    #: host devices, "host:container:perms" (e.g. /dev/net/tun for tap devices)
    devices: list[str] = field(default_factory=list)
    #: /proc/sys writable (the engine mounts it read-only by default), for agents
    #: that set sysctls inside the network namespaces they create
    writable_proc_sys: bool = False
    command: list[str] | None = None
    user: str | None = None
    restart_policy: str = "unless-stopped"
    network_mode: str = "host"
    stop_timeout: int = 30
    labels: dict[str, str] = field(default_factory=dict)
    #: config files (host paths) whose change matters; None means every file
    #: in config_dirs. Jobs such as db_sync set it so that, say, a token expiry
    #: change does not re-run them: they re-run when their image or spec changes.
    trigger_files: list[str] | None = None

    def spec_hash(self, image_id: str, file_hashes: dict[str, str]) -> str:
        """Everything that, if changed, requires the container to be recreated.

        The image counts by its engine ID, not by its reference: a new tag on
        the same image (an upgrade's infrastructure images, identical across
        releases) leaves the container running.
        """
        relevant = {
            path: h for path, h in sorted(file_hashes.items())
            if any(path.startswith(d.rstrip("/") + "/") for d in self.config_dirs)
            and (self.trigger_files is None or path in self.trigger_files)
        }
        data = asdict(self)
        data.pop("image")
        data["image_id"] = image_id
        data["config_files"] = relevant
        return sha256_text(json.dumps(data, sort_keys=True))


@dataclass
class HostResource:
    """Something a service needs on the host beside its containers (see :class:`ResourceKind`).

    Declared by the service, made by its ``host`` step, and torn down by
    ``destroy`` from the same data: teardown needs no per-service code.
    """

    kind: ResourceKind
    service: str
    name: str = ""
    peer: str = ""
    path: str = ""
    prefixes: list[str] = field(default_factory=list)
    #: VETH: an address (CIDR) for the host's end, ``peer``
    address: str = ""

    def __post_init__(self) -> None:
        self.kind = ResourceKind(self.kind)


@dataclass
class Step:
    """One action of a phase; ``kind`` (a :class:`StepKind`) selects the executor.

    ``params`` by kind: ``database`` database, user, password_key; ``wait``
    timeout; ``exec`` container, command, unless; ``host`` service (its
    resources are in the plan); ``galera`` peers, first …
    """

    kind: StepKind
    name: str
    container: ContainerSpec | None = None
    params: dict[str, Any] = field(default_factory=dict)
    #: where the step runs when a service spans several hosts: ``host`` on every
    #: host of the service, ``once`` on the service's first host only (bootstrap
    #: jobs), ``deploy`` on the deploy host (API calls: databases, Keystone);
    #: empty means the default for its kind (see :attr:`where`)
    scope: str = ""
    #: inventory group whose hosts get this step (nova-compute, neutron-server …);
    #: empty: every host of the service. A ``wait`` follows its container's group.
    group: str = ""
    #: position in the service's full step list before placement dropped the
    #: steps of other groups: orders the union of every host's steps
    seq: int = -1
    #: a readiness check nothing later in the deploy relies on (Neutron's agents
    #: reporting, the hypervisor appearing): run after every phase, so its wait
    #: overlaps with the services that follow instead of holding them up
    deferred: bool = False

    def __post_init__(self) -> None:
        self.kind = StepKind(self.kind)

    @property
    def where(self) -> str:
        if self.scope:
            return self.scope
        if self.kind in API_KINDS:
            return "deploy"
        return "once" if self.kind == StepKind.JOB else "host"

    @property
    def key(self) -> str:
        """Identifies the step inside its phase on every host (kind:name is unique)."""
        return f"{self.kind}:{self.name}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if "password" in d["params"]:
            d["params"]["password"] = "<secret>"
        return d


@dataclass
class Phase:
    name: str
    steps: list[Step] = field(default_factory=list)
    #: across hosts, converge one host at a time (clustered services: Galera,
    #: RabbitMQ), so a changed config restarts the cluster member by member
    serial: bool = False


@dataclass
class HostPlan:
    host: str
    config_root: str
    #: the value of :data:`DEPLOYMENT_LABEL` on everything this plan creates
    deployment: str = ""
    files: list[ConfigFile] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    resources: list[HostResource] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)

    def containers(self) -> list[ContainerSpec]:
        return [s.container for p in self.phases for s in p.steps
                if s.kind in CONTAINER_KINDS and s.container is not None]

    def spec_of(self, name: str) -> ContainerSpec | None:
        """The service container (not job) named ``name``."""
        return next((c for c in self.containers() if c.name == name), None)

    def images(self) -> list[str]:
        return sorted({s.container.image for p in self.phases for s in p.steps if s.container})

    def file_hashes(self) -> dict[str, str]:
        return {f.path: f.hash for f in self.files}

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "config_root": self.config_root,
            "deployment": self.deployment,
            "files": [f.to_dict() for f in self.files],
            "volumes": list(self.volumes),
            "resources": [asdict(r) for r in self.resources],
            "phases": [{"name": p.name, "serial": p.serial, "steps": [s.to_dict() for s in p.steps]}
                       for p in self.phases],
        }

    def to_wire(self) -> dict[str, Any]:
        """The full plan, secrets included, for shipping to the host that applies it."""
        return json.loads(json.dumps({
            "host": self.host,
            "config_root": self.config_root,
            "deployment": self.deployment,
            "files": [asdict(f) for f in self.files],
            "volumes": list(self.volumes),
            "resources": [asdict(r) for r in self.resources],
            "phases": [{"name": p.name, "serial": p.serial, "steps": [asdict(s) for s in p.steps]}
                       for p in self.phases],
        }))

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> "HostPlan":
        """Inverse of :meth:`to_wire` (runs on the target host, stdlib only)."""
        phases = []
        for p in data.get("phases", []):
            steps = []
            for s in p["steps"]:
                spec = s.get("container")
                if spec is not None:
                    hc = spec.get("healthcheck")
                    spec = ContainerSpec(**dict(spec, healthcheck=Healthcheck(**hc) if hc else None))
                steps.append(Step(kind=s["kind"], name=s["name"], container=spec,
                                  params=s.get("params", {}), scope=s.get("scope", ""),
                                  group=s.get("group", ""), seq=s.get("seq", -1),
                                  deferred=bool(s.get("deferred", False))))
            phases.append(Phase(p["name"], steps, p.get("serial", False)))
        return cls(host=data["host"], config_root=data["config_root"],
                   deployment=data.get("deployment", ""),
                   files=[ConfigFile(**f) for f in data.get("files", [])],
                   volumes=list(data.get("volumes", [])),
                   resources=[HostResource(**r) for r in data.get("resources", [])], phases=phases)
