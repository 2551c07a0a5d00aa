"""What a service definition needs to describe itself for one host.

Service modules call these helpers to add config files (merged with the
operator's overrides), config.json for the runtime contract, and container specs
with the standard mounts. Nothing here touches an engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from stackyard.deploy import merge
from stackyard.deploy.model import ConfigFile, ContainerSpec, Healthcheck
from stackyard.users import USERS

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
    files: list[ConfigFile] = field(default_factory=list)
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
        uid, gid = owner_ids(owner)
        path = f"{self.service_dir(service)}/{name}"
        self.files = [f for f in self.files if f.path != path]
        self.files.append(ConfigFile(path=path, content=content, mode=mode, uid=uid, gid=gid, secret=secret))
        return path

    def add_ini(self, service: str, name: str, project: str, base_text: str, *, owner: str,
                mode: int = 0o600, secret: bool = True, override_service: str | None = None,
                override_files: list[str] | None = None) -> str:
        """An INI file merged with global.conf, <project>.conf, <project>/<service>.conf …

        ``override_files`` (paths relative to ``config/``, least specific first)
        replaces that oslo.config lookup for files that are not oslo configs,
        e.g. MariaDB's ``galera.cnf``, which must not pick up ``global.conf``.
        """
        if override_files is None:
            overrides = merge.find_overrides(self.configdir, project, override_service or service, self.host)
        else:
            root = self.configdir / merge.OVERRIDES_DIR
            overrides = [root / rel for rel in override_files if (root / rel).is_file()]
        self.used_overrides.update(overrides)
        text = merge.render_and_merge(base_text, f"<generated {project}/{name}>", overrides, self.variables)
        return self.add_file(service, name, text, owner=owner, mode=mode, secret=secret)

    def add_config_json(self, service: str, command: str, config_files: list[dict[str, Any]],
                        permissions: list[dict[str, Any]] | None = None) -> str:
        doc = {"command": command, "config_files": config_files, "permissions": permissions or []}
        return self.add_file(service, "config.json", json.dumps(doc, indent=2, sort_keys=True) + "\n",
                             mode=0o600)

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
        return ContainerSpec(
            name=name, image=self.image(image), service=service,
            config_dirs=[self.service_dir(cdir)], volumes=mounts, environment=env,
            healthcheck=hc, **extra,
        )


def owner_ids(owner: str) -> tuple[int, int]:
    """``keystone`` or ``keystone:kolla`` to numeric IDs from the fixed table."""
    user, _, group = owner.partition(":")
    if user == "root":
        uid = 0
    else:
        uid = USERS[user].uid
    if not group:
        gid = 0 if user == "root" else USERS[user].gid
    elif group == "root":
        gid = 0
    else:
        gid = USERS[group].gid
    return uid, gid


def cfile(source: str, dest: str, owner: str, perm: str = "0600", **extra: Any) -> dict[str, Any]:
    """One config.json ``config_files`` entry."""
    entry = {"source": CONFIG_MOUNT + source, "dest": dest, "owner": owner, "perm": perm}
    entry.update(extra)
    return entry
