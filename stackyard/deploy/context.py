"""What a service's ``plan()`` is given to describe itself for one host.

Service modules call these helpers to add config files (built as data and
merged with the operator's overrides), config.json for the runtime contract,
container specs with the standard mounts, host resources, and the steps their
declared databases and Keystone registrations need. Nothing here touches an
engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from stackyard.agent.model import (
    DEPLOYMENT_LABEL, ConfigFile, ContainerSpec, Healthcheck, HostResource, ResourceKind, Step, StepKind,
)
from stackyard.deploy import merge
from stackyard.deploy.merge import IniConf
from stackyard.deploy.services.base import Service, User

CONFIG_MOUNT = "/var/lib/kolla/config_files/"
LOGS_VOLUME = "kolla_logs"


@dataclass
class PlanContext:
    host: str
    variables: dict[str, Any]
    passwords: dict[str, Any]
    #: the operator's config dir (globals.yml, passwords.yml, config/)
    configdir: Path
    #: where rendered per-service configs go on the host (node_config_directory)
    config_root: Path
    #: the service being planned (its declarations)
    service: Service
    #: fixed service users by name (owners of rendered files)
    users: dict[str, User]
    #: the deployment label's value (the config dir's absolute path)
    deployment: str = ""
    #: every enabled service, in deploy order (whose frontends, RabbitMQ users … to serve)
    enabled: list[Service] = field(default_factory=list)
    files: list[ConfigFile] = field(default_factory=list)
    resources: list[HostResource] = field(default_factory=list)
    used_overrides: set[Path] = field(default_factory=set)
    #: inventory group -> the api addresses / names of its hosts (cluster peers,
    #: load-balancer backends); the default is this host alone (all-in-one)
    group_addresses: Callable[[str], list[str]] | None = None
    group_hosts: Callable[[str], list[str]] | None = None

    # -- cluster -------------------------------------------------------------
    def addresses(self, group: str) -> list[str]:
        if self.group_addresses is None:
            return [self.variables["api_interface_address"]]
        return self.group_addresses(group) or [self.variables["api_interface_address"]]

    def hosts(self, group: str) -> list[str]:
        if self.group_hosts is None:
            return [self.host]
        return self.group_hosts(group) or [self.host]

    # -- names ---------------------------------------------------------------
    @property
    def prefix(self) -> str:
        """``stackyard_name_prefix``: containers, volumes and host resources carry it."""
        return str(self.variables.get("stackyard_name_prefix") or "")

    # -- images --------------------------------------------------------------
    def image(self, name: str) -> str:
        v = self.variables
        parts = [p for p in (v.get("docker_registry", ""), v.get("docker_namespace", "stackyard")) if p]
        return "/".join(parts + [name]) + f":{v.get('openstack_tag') or v['openstack_release']}"

    # -- files ---------------------------------------------------------------
    def service_dir(self, service: str) -> str:
        return str(self.config_root / service)

    def add_file(self, service: str, name: str, content: str, *, owner: str = "root",
                 mode: int = 0o600, secret: bool = False) -> str:
        uid, gid = self.owner_ids(owner)
        path = f"{self.service_dir(service)}/{name}"
        self.files = [f for f in self.files if f.path != path]
        self.files.append(ConfigFile(path=path, content=content, mode=mode, uid=uid, gid=gid, secret=secret))
        return path

    def content_of(self, service: str, name: str) -> str:
        """A file added earlier in this plan (a job that shares a service's config)."""
        path = f"{self.service_dir(service)}/{name}"
        for f in self.files:
            if f.path == path:
                return f.content
        raise KeyError(path)

    def overrides(self, service: str, patterns: tuple[str, ...] | None = None) -> list[Path]:
        """The operator's override files for config dir ``service`` on this host, least specific first.

        ``patterns`` default to the service's declared ones (relative to config/,
        with {project}, {service} and {host} filled in).
        """
        root = self.configdir / merge.OVERRIDES_DIR
        names = {"project": self.service.project or self.service.name, "service": service, "host": self.host}
        found: list[Path] = []
        for pattern in self.service.overrides if patterns is None else patterns:
            path = root / pattern.format(**names)
            if path.is_file() and path not in found:
                found.append(path)
        self.used_overrides.update(found)
        return found

    def add_ini(self, service: str, name: str, conf: IniConf, *, owner: str, mode: int = 0o600,
                secret: bool = True, override_service: str | None = None,
                overrides: tuple[str, ...] | None = None) -> str:
        """An INI file from ``conf`` with the operator's overrides merged over it.

        The overrides are the service's declared override files for
        ``override_service`` (default: the config dir ``service``), or the
        ``overrides`` patterns given, e.g. MariaDB's ``galera.cnf``, which must
        not pick up ``global.conf``.
        """
        found = self.overrides(override_service or service, overrides)
        text = merge.render_and_merge(conf, found, self.variables)
        return self.add_file(service, name, text, owner=owner, mode=mode, secret=secret)

    def add_config_json(self, service: str, command: str, config_files: list[dict[str, Any]],
                        permissions: list[dict[str, Any]] | None = None) -> str:
        doc = {"command": command, "config_files": config_files, "permissions": permissions or []}
        return self.add_file(service, "config.json", json.dumps(doc, indent=2, sort_keys=True) + "\n",
                             mode=0o600)

    # -- host resources --------------------------------------------------------
    def resource(self, kind: ResourceKind, **fields: Any) -> HostResource:
        """Declare a host resource of this service (made by its ``host`` step, removed by destroy)."""
        r = HostResource(kind=kind, service=self.service.name, **fields)
        self.resources.append(r)
        return r

    def host_step(self) -> Step:
        """The step that makes this service's host resources."""
        return Step(StepKind.HOST, f"{self.service.name}-host", params={"service": self.service.name})

    # -- containers ----------------------------------------------------------
    def container(self, name: str, image: str, service: str, *, config_dir: str | None = None,
                  volumes: list[str] | None = None, environment: dict[str, str] | None = None,
                  healthcheck: list[str] | None = None, **extra: Any) -> ContainerSpec:
        cdir = config_dir or service
        env = {"KOLLA_CONFIG_STRATEGY": self.variables.get("config_strategy", "COPY_ALWAYS"),
               "KOLLA_SERVICE_NAME": name}
        env.update(environment or {})
        mounts = [f"{self.service_dir(cdir)}/:{CONFIG_MOUNT}:ro", "/etc/localtime:/etc/localtime:ro",
                  f"{LOGS_VOLUME}:/var/log/kolla/"]
        mounts += volumes or []
        hc = Healthcheck(test=["CMD-SHELL", " ".join(healthcheck)]) if healthcheck else None
        labels = dict(extra.pop("labels", {}) or {})
        if self.deployment:
            labels[DEPLOYMENT_LABEL] = self.deployment
        return ContainerSpec(
            name=name, image=self.image(image), service=service,
            config_dirs=[self.service_dir(cdir)], volumes=mounts, environment=env,
            healthcheck=hc, labels=labels, **extra,
        )

    # -- declared steps ----------------------------------------------------------
    def database_steps(self) -> list[Step]:
        """A ``database`` step per declared database (created before the bootstrap job)."""
        return [Step(StepKind.DATABASE, d.name, group=d.group,
                     params={"database": d.name, "user": d.user, "password_key": d.password_key})
                for d in self.service.databases]

    def registration_steps(self) -> list[Step]:
        """A ``keystone_register`` step per declared registration (after the API is healthy)."""
        v = self.variables
        steps = []
        for r in self.service.registrations:
            port = v[r.port]
            internal = f"http://{v['kolla_internal_fqdn']}:{port}{r.path}"
            public = f"http://{v['kolla_external_fqdn']}:{port}{r.path}"
            params: dict[str, Any] = {"name": r.name, "type": r.type, "description": r.description,
                                      "endpoints": {"public": public, "internal": internal, "admin": internal}}
            if r.user:
                params.update({"user": r.user, "password_key": r.password_key, "roles": list(r.roles)})
            steps.append(Step(StepKind.KEYSTONE_REGISTER, r.name, params=params, group=r.group))
        return steps

    def identity_steps(self) -> list[Step]:
        """A ``keystone_domain`` step per declared domain, then a ``keystone_role`` step per
        declared role: what the service needs in Keystone besides its catalog entries."""
        steps = []
        for d in self.service.domains:
            params: dict[str, Any] = {"description": d.description}
            if d.admin_user:
                params.update({"user": d.admin_user, "password_key": d.password_key})
            steps.append(Step(StepKind.KEYSTONE_DOMAIN, d.name, params=params))
        for r in self.service.roles:
            steps.append(Step(StepKind.KEYSTONE_ROLE, r.name, params={"grant_admin": r.grant_admin}))
        return steps

    # -- ownership -----------------------------------------------------------------
    def owner_ids(self, owner: str) -> tuple[int, int]:
        """``keystone`` or ``keystone:kolla`` to numeric IDs from the fixed users."""
        user, _, group = owner.partition(":")
        uid = 0 if user == "root" else self.users[user].uid
        if not group:
            gid = 0 if user == "root" else self.users[user].gid
        elif group == "root":
            gid = 0
        else:
            gid = self.users[group].gid
        return uid, gid


def cfile(source: str, dest: str, owner: str, perm: str = "0600", **extra: Any) -> dict[str, Any]:
    """One config.json ``config_files`` entry."""
    entry = {"source": CONFIG_MOUNT + source, "dest": dest, "owner": owner, "perm": perm}
    entry.update(extra)
    return entry
