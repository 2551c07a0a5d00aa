"""Pieces every OpenStack service shares, as data: database and message-queue
URLs, the keystone_authtoken-style sections, uWSGI settings and the steps of a
simple API service.

Sections are returned as dicts (key -> value) for the service to place in its
config (``{"DEFAULT": common.default_section(ctx, "nova"), …}``); the one
renderer in :mod:`stackyard.deploy.merge` writes them out after merging the
operator's overrides.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from stackyard.agent.model import Step, StepKind
from stackyard.deploy.context import PlanContext
from stackyard.deploy.merge import IniConf, IniValue

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
