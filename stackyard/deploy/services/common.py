"""Pieces every OpenStack API service shares: database and message-queue URLs,
the keystone_authtoken section, uWSGI settings and the standard steps."""

from __future__ import annotations

from urllib.parse import quote

from stackyard.deploy.context import PlanContext
from stackyard.deploy.model import Step


def internal_host(ctx: PlanContext) -> str:
    return ctx.variables["kolla_internal_fqdn"]


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


def keystone_authtoken(ctx: PlanContext, user: str, password_key: str, section: str = "keystone_authtoken") -> str:
    """The ``[keystone_authtoken]``-style section for a service user in project 'service'."""
    url = auth_url(ctx)
    return (
        f"[{section}]\n"
        f"www_authenticate_uri = {url}\n"
        f"auth_url = {url}\n"
        "auth_type = password\n"
        "project_domain_id = default\n"
        "user_domain_id = default\n"
        "project_name = service\n"
        f"username = {user}\n"
        f"password = {ctx.passwords[password_key]}\n"
        f"region_name = {ctx.variables['openstack_region_name']}\n"
    )


def database_section(ctx: PlanContext, user: str, password_key: str, database: str,
                     section: str = "database") -> str:
    """An oslo.db section: connection URL plus settings that survive a MariaDB restart."""
    return (f"\n[{section}]\nconnection = {db_url(ctx, user, password_key, database)}\n"
            "connection_recycle_time = 10\nmax_retries = -1\n")


def authtoken_section(ctx: PlanContext, user: str, password_key: str) -> str:
    """``[keystone_authtoken]`` with the token cache in memcached."""
    return ("\n" + keystone_authtoken(ctx, user, password_key)
            + f"memcached_servers = {memcache_servers(ctx)}\n")


def cache_section(ctx: PlanContext) -> str:
    return ("[cache]\nenabled = true\nbackend = oslo_cache.memcache_pool\n"
            f"memcache_servers = {memcache_servers(ctx)}\n")


def default_section(ctx: PlanContext, vhost: str | None, extra: str = "") -> str:
    v = ctx.variables
    text = f"[DEFAULT]\ndebug = {str(bool(v.get('openstack_logging_debug'))).lower()}\nuse_stderr = true\n"
    if vhost:
        url = transport_url(ctx, vhost)
        if url:
            text += f"transport_url = {url}\n"
    return text + extra


def uwsgi_ini(ctx: PlanContext, wsgi_file: str, port: int, processes: int = 2, threads: int = 1,
              extra: str = "", run_as: str | None = None) -> str:
    """uWSGI serving one WSGI script on the API address; SIGTERM stops it (die-on-term).

    ``run_as``: start as root, bind the (privileged) port as a shared socket, then
    drop to this user: uWSGI binds shared sockets before it drops privileges.
    """
    v = ctx.variables
    address = f"{v['api_interface_address']}:{port}"
    if run_as:
        socket = f"shared-socket = {address}\nhttp-socket = =0\nuid = {run_as}\ngid = {run_as}\n"
    else:
        socket = f"http-socket = {address}\n"
    return (
        "[uwsgi]\n"
        "plugins = python3\n"
        + socket +
        f"wsgi-file = {wsgi_file}\n"
        "master = true\n"
        f"processes = {processes}\n"
        f"threads = {threads}\n"
        "lazy-apps = true\n"
        "die-on-term = true\n"
        "need-app = true\n"
        "buffer-size = 65535\n"
        "http-keepalive = false\n"
        "add-header = Connection: close\n"
        f"disable-logging = {'false' if v.get('openstack_logging_debug') else 'true'}\n"
        + extra
    )


def database_step(name: str, database: str, user: str, password_key: str) -> Step:
    return Step("database", name, params={"database": database, "user": user, "password_key": password_key})


def register_step(ctx: PlanContext, name: str, service_type: str, port: int, path: str = "",
                  user: str | None = None, password_key: str | None = None,
                  description: str = "", roles: list[str] | None = None) -> Step:
    """Keystone catalog entry and service user, applied through Keystone's API."""
    v = ctx.variables
    internal = f"http://{v['kolla_internal_fqdn']}:{port}{path}"
    public = f"http://{v['kolla_external_fqdn']}:{port}{path}"
    params = {"name": name, "type": service_type, "description": description,
              "endpoints": {"public": public, "internal": internal, "admin": internal}}
    if user:
        params.update({"user": user, "password_key": password_key, "roles": roles or ["admin"]})
    return Step("keystone_register", name, params=params)


def api_service_steps(ctx: PlanContext, *, name: str, service_type: str, image: str, config_dir: str,
                      container: str, port: int, volumes: list[str] | None = None,
                      description: str = "", path: str = "") -> list[Step]:
    """Database, KOLLA_BOOTSTRAP job, API container, health wait and Keystone
    registration: the life of a simple OpenStack API service."""
    job = ctx.container(f"bootstrap_{name}", image, config_dir, volumes=volumes,
                        environment={"KOLLA_BOOTSTRAP": "1"}, restart_policy="no", trigger_files=[])
    api = ctx.container(container, image, config_dir, volumes=volumes, healthcheck=http_check(ctx, port))
    return [
        database_step(name, name, name, f"{name}_database_password"),
        Step("job", f"bootstrap_{name}", job),
        Step("container", container, api),
        Step("wait", container, params={"timeout": 120}),
        register_step(ctx, name, service_type, port, path, user=name, password_key=f"{name}_keystone_password",
                      description=description),
    ]


def http_check(ctx: PlanContext, port: int, path: str = "") -> list[str]:
    return ["healthcheck_curl", f"http://{ctx.variables['api_interface_address']}:{port}{path}"]
