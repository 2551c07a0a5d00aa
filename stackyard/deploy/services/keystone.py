"""Keystone: database, KOLLA_BOOTSTRAP job (db_sync, fernet and credential
keys), the API under uWSGI, then the admin bootstrap job (admin project, user,
role, region and identity endpoints)."""

from __future__ import annotations

import base64
import hashlib
import hmac

from stackyard.agent.model import Phase, Step, StepKind
from stackyard.deploy.context import PlanContext, cfile
from stackyard.deploy.merge import IniConf, render_ini
from stackyard.deploy.options import Option
from stackyard.deploy.services import common
from stackyard.deploy.services.base import (
    OSLO_OVERRIDES, Database, Frontend, Group, Password, Port, RabbitUser, Service, Upgrade, UpgradeJob, User,
)


def derived_key(secret: str, purpose: str) -> str:
    """A Fernet key (32 bytes, urlsafe base64) derived from a passwords.yml secret.

    Every Keystone node must hold the same fernet and credential keys, or a
    token issued by one is refused by the next behind the VIP. Deriving them
    from one secret puts them in the rendered config, the same on every host,
    with nothing to copy between hosts.
    """
    digest = hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()


def key_files(ctx: PlanContext, svc: str) -> list[dict]:
    """fernet-keys/0 (staged) and 1 (primary), credential-keys/0 and 1."""
    secret = ctx.passwords["keystone_fernet_secret"]
    entries = []
    for repo in ("fernet", "credential"):
        for index in (0, 1):
            name = f"{repo}-key-{index}"
            ctx.add_file(svc, name, derived_key(secret, f"{repo}-{index}") + "\n", owner="keystone", secret=True)
            entries.append(cfile(name, f"/etc/keystone/{repo}-keys/{index}", "keystone", "0600"))
    return entries


def keystone_conf(ctx: PlanContext) -> IniConf:
    v = ctx.variables
    transport = common.transport_url(ctx, "keystone")
    return {
        "DEFAULT": common.default_section(ctx, "keystone"),
        "database": {"connection": common.db_url(ctx, "keystone", "keystone_database_password", "keystone"),
                     "connection_recycle_time": 10, "max_pool_size": 4, "max_retries": -1},
        "token": {"provider": v["keystone_token_provider"], "expiration": v["fernet_token_expiry"]},
        "fernet_tokens": {"key_repository": "/etc/keystone/fernet-keys", "max_active_keys": 3},
        "credential": {"key_repository": "/etc/keystone/credential-keys"},
        "cache": common.cache_section(ctx),
        "oslo_messaging_notifications": {"driver": "messagingv2" if transport else "noop"},
    }


def plan(ctx: PlanContext) -> Phase:
    v, pw = ctx.variables, ctx.passwords
    svc = "keystone"
    ctx.add_ini(svc, "keystone.conf", keystone_conf(ctx), owner="keystone")
    uwsgi = common.uwsgi_ini(ctx, "/usr/bin/keystone-wsgi-public", int(v["keystone_public_port"]),
                             processes=v["keystone_api_workers"])
    ctx.add_file(svc, "keystone-uwsgi.ini", render_ini(uwsgi), owner="keystone", mode=0o600)
    ctx.add_config_json(svc, "uwsgi --ini /etc/keystone/keystone-uwsgi.ini", [
        cfile("keystone.conf", "/etc/keystone/keystone.conf", "keystone", "0600"),
        cfile("keystone-uwsgi.ini", "/etc/keystone/keystone-uwsgi.ini", "keystone", "0600"),
    ] + key_files(ctx, svc), permissions=[
        {"path": "/etc/keystone/fernet-keys", "owner": "keystone:keystone", "perm": "0700", "recurse": False},
        {"path": "/etc/keystone/credential-keys", "owner": "keystone:keystone", "perm": "0700", "recurse": False},
    ])
    # the admin bootstrap job has its own config dir: keystone.conf plus the admin password
    admin = "keystone-bootstrap-admin"
    ctx.add_file(admin, "keystone.conf", ctx.content_of(svc, "keystone.conf"), owner="keystone", secret=True)
    ctx.add_file(admin, "admin-password", pw["keystone_admin_password"], owner="keystone", secret=True)
    url = common.auth_url(ctx)
    args = [
        "/usr/local/lib/stackyard/hooks/admin-bootstrap",
        "--bootstrap-username", v["keystone_admin_user"],
        "--bootstrap-project-name", v["keystone_admin_project"],
        "--bootstrap-role-name", "admin",
        "--bootstrap-service-name", "keystone",
        "--bootstrap-region-id", v["openstack_region_name"],
        "--bootstrap-admin-url", url,
        "--bootstrap-internal-url", url,
        "--bootstrap-public-url", f"http://{v['kolla_external_fqdn']}:{v['keystone_public_port']}",
    ]
    ctx.add_config_json(admin, " ".join(args), [
        cfile("keystone.conf", "/etc/keystone/keystone.conf", "keystone", "0600"),
        cfile("admin-password", "/etc/keystone/admin-password", "keystone", "0600"),
    ])
    volumes = ["keystone_fernet_tokens:/etc/keystone/fernet-keys/",
               "keystone_credential_keys:/etc/keystone/credential-keys/"]
    api = ctx.container("keystone", "keystone", svc, volumes=volumes,
                        healthcheck=common.http_check(ctx, int(v["keystone_public_port"]), "/v3"))
    # the admin bootstrap re-runs when its password or endpoints change (they
    # are in its config.json and admin-password), not on every keystone.conf edit
    admin_job = ctx.container("keystone_bootstrap_admin", "keystone", svc, config_dir=admin,
                              volumes=volumes, restart_policy="no",
                              trigger_files=[f"{ctx.service_dir(admin)}/admin-password",
                                             f"{ctx.service_dir(admin)}/config.json"])
    return Phase(svc, [
        *ctx.database_steps(),
        common.bootstrap_job(ctx, "keystone", "keystone", svc, volumes=volumes),
        Step(StepKind.CONTAINER, "keystone", api),
        Step(StepKind.WAIT, "keystone", params={"timeout": 120}),
        Step(StepKind.JOB, "keystone_bootstrap_admin", admin_job),
        Step(StepKind.KEYSTONE_CHECK, "keystone", params={"auth_url": f"{url}/v3"}),
    ])


SERVICE = Service(
    name="keystone",
    summary="Keystone (identity).",
    enabled=True,
    requires=("mariadb", "memcached"),
    after=("rabbitmq", "loadbalancer"),
    groups=(Group("keystone", ("control",)),),
    images=("keystone",),
    options=(
        Option("keystone_public_port", int, 5000, "Keystone public API port."),
        Option("keystone_internal_port", int, "{{ keystone_public_port }}",
               "Keystone internal API port (the same as the public one since the admin API is gone).",
               unsupported="Keystone serves one port: set keystone_public_port instead"),
        Option("keystone_api_workers", int, 2, "uWSGI processes of the Keystone API."),
        Option("keystone_admin_user", str, "admin", "Cloud administrator user created in Keystone."),
        Option("keystone_admin_project", str, "admin", "Project the administrator belongs to."),
        Option("keystone_token_provider", str, "fernet", "Keystone token format.", choices=("fernet",)),
        Option("fernet_token_expiry", int, 86400, "Token lifetime in seconds."),
    ),
    passwords=(Password("keystone_admin_password"), Password("keystone_database_password"),
               Password("keystone_fernet_secret")),
    databases=(Database("keystone", "keystone", "keystone_database_password"),),
    rabbitmq=RabbitUser("keystone"),
    frontends=(Frontend("keystone", "keystone", "keystone_public_port", check_path="/v3"),),
    users=(User("keystone", 42425, "/var/lib/keystone"),),
    ports=(Port("keystone_public_port", "keystone"),),
    project="keystone",
    overrides=OSLO_OVERRIDES,
    upgrade=Upgrade(
        jobs=(UpgradeJob("expand", "keystone", "expand"), UpgradeJob("migrate", "keystone", "migrate"),
              UpgradeJob("contract", "keystone", "contract", when="after")),
        replaces=("bootstrap_keystone",)),
    plan=plan,
)
