"""Pieces every OpenStack service shares, as data: database and message-queue
URLs, the keystone_authtoken-style sections, uWSGI settings and the steps of a
simple API service.

The external Ceph helpers at the end read the operator's ceph.conf and
keyrings from kolla-ansible's places under ``config/`` (Glance, Cinder and
Nova share them).

Sections are returned as dicts (key -> value) for the service to place in its
config (``{"DEFAULT": common.default_section(ctx, "nova"), …}``); the one
renderer in :mod:`stackyard.deploy.merge` writes them out after merging the
operator's overrides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from stackyard.agent.model import Step, StepKind
from stackyard.deploy.context import PlanContext, cfile
from stackyard.deploy.merge import (
    OVERRIDES_DIR, IniConf, IniValue, merge_ini, parse_ini, render_override, serialize_ini,
)
from stackyard.errors import ConfigError

Section = dict[str, IniValue]


def internal_host(ctx: PlanContext) -> str:
    return str(ctx.variables["kolla_internal_fqdn"])


def db_url(ctx: PlanContext, user: str, password_key: str, database: str) -> str:
    v = ctx.variables
    return (f"mysql+pymysql://{user}:{quote(ctx.passwords[password_key], safe='')}"
            f"@{internal_host(ctx)}:{v['database_port']}/{database}")


def transport_url(ctx: PlanContext, vhost: str) -> str:
    """The service's own RabbitMQ user and vhost (see services/rabbitmq.py), on
    every RabbitMQ node: oslo.messaging fails over between them (no VIP)."""
    v = ctx.variables
    if not v.get("enable_rabbitmq"):
        return ""
    secret = quote(ctx.passwords["rabbitmq_password"], safe="")
    hosts = ctx.addresses("rabbitmq")  # RabbitMQ is not behind the VIP
    nodes = ",".join(f"{vhost}:{secret}@{h}:{v['rabbitmq_port']}" for h in hosts)
    return f"rabbit://{nodes}/{vhost}"


def auth_url(ctx: PlanContext) -> str:
    v = ctx.variables
    return f"http://{internal_host(ctx)}:{v['keystone_public_port']}"


def memcache_servers(ctx: PlanContext) -> str:
    """Every memcached node (the client shards keys over them)."""
    v = ctx.variables
    return ",".join(f"{a}:{v['memcached_port']}" for a in ctx.addresses("memcached"))


def debug(ctx: PlanContext) -> bool:
    return bool(ctx.variables.get("openstack_logging_debug"))


def keystone_authtoken(ctx: PlanContext, user: str, password_key: str, **extra: IniValue) -> Section:
    """A ``[keystone_authtoken]``-style section for a service user in project 'service'."""
    url = auth_url(ctx)
    return {
        "www_authenticate_uri": url,
        "auth_url": url,
        "auth_type": "password",
        "project_domain_id": "default",
        "user_domain_id": "default",
        "project_name": "service",
        "username": user,
        "password": ctx.passwords[password_key],
        "region_name": ctx.variables["openstack_region_name"],
        **extra,
    }


def database_section(ctx: PlanContext, user: str, password_key: str, database: str) -> Section:
    """An oslo.db section: connection URL plus settings that survive a MariaDB restart."""
    return {"connection": db_url(ctx, user, password_key, database), "connection_recycle_time": 10,
            "max_retries": -1}


def authtoken_section(ctx: PlanContext, user: str, password_key: str) -> Section:
    """``[keystone_authtoken]`` with the token cache in memcached."""
    return keystone_authtoken(ctx, user, password_key, memcached_servers=memcache_servers(ctx))


def cache_section(ctx: PlanContext) -> Section:
    return {"enabled": True, "backend": "oslo_cache.memcache_pool", "memcache_servers": memcache_servers(ctx)}


def default_section(ctx: PlanContext, vhost: str | None, **extra: IniValue) -> Section:
    """``[DEFAULT]``: debug, logs to stderr, and the service's RabbitMQ vhost when it has one."""
    section: Section = {"debug": debug(ctx), "use_stderr": True}
    if vhost:
        url = transport_url(ctx, vhost)
        if url:
            section["transport_url"] = url
    section.update(extra)
    return section


def uwsgi_ini(ctx: PlanContext, wsgi_file: str, port: int, processes: int = 2, threads: int = 1,
              run_as: str | None = None, **extra: IniValue) -> IniConf:
    """uWSGI serving one WSGI script on the API address; SIGTERM stops it (die-on-term).

    ``run_as``: start as root, bind the (privileged) port as a shared socket, then
    drop to this user: uWSGI binds shared sockets before it drops privileges.
    """
    address = f"{ctx.variables['api_interface_address']}:{port}"
    uwsgi: Section = {"plugins": "python3"}
    if run_as:
        uwsgi.update({"shared-socket": address, "http-socket": "=0", "uid": run_as, "gid": run_as})
    else:
        uwsgi["http-socket"] = address
    uwsgi.update({
        "wsgi-file": wsgi_file,
        "master": True,
        "processes": processes,
        "threads": threads,
        "lazy-apps": True,
        "die-on-term": True,
        "need-app": True,
        "buffer-size": 65535,
        "http-keepalive": False,
        "add-header": "Connection: close",
        "disable-logging": not debug(ctx),
    })
    uwsgi.update(extra)
    return {"uwsgi": uwsgi}


def http_check(ctx: PlanContext, port: int, path: str = "") -> list[str]:
    return ["healthcheck_curl", f"http://{ctx.variables['api_interface_address']}:{port}{path}"]


def bootstrap_job(ctx: PlanContext, name: str, image: str, config_dir: str, **extra: Any) -> Step:
    """The service's KOLLA_BOOTSTRAP job (db sync …): re-runs when its image or spec
    changes, not on every config edit (``trigger_files`` empty unless given)."""
    extra.setdefault("trigger_files", [])
    job = ctx.container(f"bootstrap_{name}", image, config_dir, environment={"KOLLA_BOOTSTRAP": "1"},
                        restart_policy="no", **extra)
    return Step(StepKind.JOB, job.name, job)


def api_service_steps(ctx: PlanContext, *, name: str, image: str, config_dir: str, container: str,
                      port: int, volumes: list[str] | None = None) -> list[Step]:
    """Database, KOLLA_BOOTSTRAP job, API container, health wait and Keystone
    registration: the life of a simple OpenStack API service."""
    api = ctx.container(container, image, config_dir, volumes=volumes, healthcheck=http_check(ctx, port))
    return [
        *ctx.database_steps(),
        bootstrap_job(ctx, name, image, config_dir, volumes=volumes),
        Step(StepKind.CONTAINER, container, api),
        Step(StepKind.WAIT, container, params={"timeout": 120}),
        *ctx.registration_steps(),
    ]


# ----------------------------------------------------------------------------- external Ceph
#: where the Ceph clients in every image look for ceph.conf and keyrings
CEPH_DIR = "/etc/ceph"
#: the layout kolla-ansible's external Ceph guide documents (for error messages)
CEPH_GUIDE = "kolla-ansible's external Ceph layout, see docs/configuration.md#external-ceph"


def ceph_conf_name(ctx: PlanContext) -> str:
    """``<ceph_cluster>.conf`` (ceph.conf): the file name in config/ and in /etc/ceph."""
    return f"{ctx.variables['ceph_cluster']}.conf"


def ceph_conf_path(ctx: PlanContext) -> str:
    return f"{CEPH_DIR}/{ceph_conf_name(ctx)}"


def _first_found(ctx: PlanContext, candidates: tuple[str, ...]) -> Path | None:
    root = ctx.configdir / OVERRIDES_DIR
    for rel in candidates:
        path = root / rel
        if path.is_file():
            return path
    return None


def _missing(ctx: PlanContext, candidates: tuple[str, ...], why: str) -> ConfigError:
    root = ctx.configdir / OVERRIDES_DIR
    paths = " or ".join(str(root / rel) for rel in candidates)
    return ConfigError(f"{why}, but {paths} is missing ({CEPH_GUIDE})")


def ceph_conf_text(ctx: PlanContext, required: tuple[str, ...], extra: tuple[str, ...], why: str) -> str:
    """The operator's ceph.conf: the first of ``required`` (paths under config/), with each
    existing file of ``extra`` merged over it, INI-style, as kolla-ansible's merge_configs does.

    Rendered as Jinja templates like every override. Leading whitespace is dropped
    from every line first: ``ceph config generate-minimal-conf`` indents with tabs,
    which Ceph ignores but an INI parser reads as continuation lines.
    """
    base = _first_found(ctx, required)
    if base is None:
        raise _missing(ctx, required, why)
    layers = [base] + [p for p in (_first_found(ctx, (rel,)) for rel in extra) if p is not None]
    ctx.used_overrides.update(layers)
    parsed = []
    for path in layers:
        text = render_override(path, ctx.variables)
        parsed.append(parse_ini("\n".join(line.lstrip() for line in text.splitlines()) + "\n", str(path)))
    return serialize_ini(merge_ini(*parsed))


def keyring_key(text: str, user: str, source: str) -> str:
    """The cephx key of ``client.<user>`` in a keyring file (what a libvirt secret holds)."""
    data = parse_ini("\n".join(line.lstrip() for line in text.splitlines()) + "\n", source)
    entity = f"client.{user}"
    if entity not in data:
        found = ", ".join(sorted(data)) or "none"
        raise ConfigError(f"{source}: no [{entity}] section (found: {found}); the keyring must be the "
                          f"one of Ceph user {user}")
    key = (data[entity].get("key") or [""])[-1].strip()
    if not key:
        raise ConfigError(f"{source}: [{entity}] has no key")
    return key


def ceph_keyring(ctx: PlanContext, candidates: tuple[str, ...], user: str, why: str) -> tuple[str, str, str]:
    """(file name, text, key) of the first keyring found among ``candidates`` (under config/),
    checked to hold ``client.<user>``'s key. Copied as it is, like kolla-ansible does."""
    path = _first_found(ctx, candidates)
    if path is None:
        raise _missing(ctx, candidates, why)
    ctx.used_overrides.add(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read keyring: {exc}") from exc
    return path.name, text, keyring_key(text, user, str(path))


def add_ceph_files(ctx: PlanContext, service: str, owner: str, conf: str,
                   keyrings: list[tuple[str, str]], conf_perm: str = "0600") -> list[dict[str, Any]]:
    """Put ceph.conf and keyrings into config dir ``service`` (under ceph/) and return their
    config.json entries, installed into /etc/ceph. ``keyrings``: (file name, text); a keyring
    given twice (nova's and cinder's user may be one) is installed once."""
    conf_owner = owner if ":" not in owner else owner.split(":", 1)[0]
    ctx.add_file(service, f"ceph/{ceph_conf_name(ctx)}", conf, owner=conf_owner)
    entries = [cfile(f"ceph/{ceph_conf_name(ctx)}", ceph_conf_path(ctx), owner, conf_perm)]
    seen: set[str] = set()
    for name, text in keyrings:
        if name in seen:
            continue
        seen.add(name)
        ctx.add_file(service, f"ceph/{name}", text, owner=conf_owner, secret=True)
        entries.append(cfile(f"ceph/{name}", f"{CEPH_DIR}/{name}", owner.split(":", 1)[0], "0600"))
    return entries
