"""Keystone: database, KOLLA_BOOTSTRAP job (db_sync, fernet and credential
keys), the API under uWSGI, then the admin bootstrap job (admin project, user,
role, region and identity endpoints)."""

from __future__ import annotations

import base64
import hashlib
import hmac

from stackyard.deploy.context import PlanContext, cfile
from stackyard.deploy.model import Phase, Step
from stackyard.deploy.services import common

KEYSTONE_CONF = """\
[DEFAULT]
debug = {debug}
use_stderr = true
transport_url = {transport_url}

[database]
connection = {connection}
connection_recycle_time = 10
max_pool_size = 4
max_retries = -1

[token]
provider = {provider}
expiration = {expiry}

[fernet_tokens]
key_repository = /etc/keystone/fernet-keys
max_active_keys = 3

[credential]
key_repository = /etc/keystone/credential-keys

[cache]
enabled = true
backend = oslo_cache.memcache_pool
memcache_servers = {memcache}

[oslo_messaging_notifications]
driver = {notify_driver}
"""

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


def plan(ctx: PlanContext) -> Phase:
    v, pw = ctx.variables, ctx.passwords
    svc = "keystone"
    transport = common.transport_url(ctx, "keystone")
    conf = KEYSTONE_CONF.format(
        debug=str(bool(v.get("openstack_logging_debug"))).lower(),
        connection=common.db_url(ctx, "keystone", "keystone_database_password", "keystone"),
        provider=v["keystone_token_provider"], expiry=v["fernet_token_expiry"],
        memcache=common.memcache_servers(ctx),
        transport_url=transport, notify_driver="messagingv2" if transport else "noop",
    )
    ctx.add_ini(svc, "keystone.conf", "keystone", conf, owner="keystone", secret=True)
    uwsgi = common.uwsgi_ini(ctx, "/usr/bin/keystone-wsgi-public", int(v["keystone_public_port"]),
                             processes=v.get("keystone_api_workers", 2))
    ctx.add_file(svc, "keystone-uwsgi.ini", uwsgi, owner="keystone", mode=0o600)
    ctx.add_config_json(svc, "uwsgi --ini /etc/keystone/keystone-uwsgi.ini", [
        cfile("keystone.conf", "/etc/keystone/keystone.conf", "keystone", "0600"),
        cfile("keystone-uwsgi.ini", "/etc/keystone/keystone-uwsgi.ini", "keystone", "0600"),
    ] + key_files(ctx, svc), permissions=[
        {"path": "/etc/keystone/fernet-keys", "owner": "keystone:keystone", "perm": "0700", "recurse": False},
        {"path": "/etc/keystone/credential-keys", "owner": "keystone:keystone", "perm": "0700", "recurse": False},
    ])
    # the admin bootstrap job has its own config dir: keystone.conf plus the admin password
    admin = "keystone-bootstrap-admin"
    ctx.add_file(admin, "keystone.conf", _find(ctx, svc, "keystone.conf"),
                 owner="keystone", secret=True)
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
    # db_sync and key setup re-run when the image changes (new schema), not on
    # every keystone.conf edit; the admin bootstrap re-runs when its password or
    # endpoints change (they are in its config.json and admin-password)
    bootstrap = ctx.container("bootstrap_keystone", "keystone", svc, volumes=volumes,
                              environment={"KOLLA_BOOTSTRAP": "1"}, restart_policy="no",
                              trigger_files=[])
    api = ctx.container(
        "keystone", "keystone", svc, volumes=volumes,
        healthcheck=["healthcheck_curl", f"http://{v['api_interface_address']}:{v['keystone_public_port']}/v3"],
    )
    admin_job = ctx.container("keystone_bootstrap_admin", "keystone", svc, config_dir=admin,
                              volumes=volumes, restart_policy="no",
                              trigger_files=[f"{ctx.service_dir(admin)}/admin-password",
                                             f"{ctx.service_dir(admin)}/config.json"])
    return Phase(svc, [
        Step("database", "keystone", params={"database": "keystone", "user": "keystone",
                                             "password_key": "keystone_database_password"}),
        Step("job", "bootstrap_keystone", bootstrap),
        Step("container", "keystone", api),
        Step("wait", "keystone", params={"timeout": 120}),
        Step("job", "keystone_bootstrap_admin", admin_job),
        Step("keystone_check", "keystone", params={"auth_url": f"{url}/v3"}),
    ])


def _find(ctx: PlanContext, service: str, name: str) -> str:
    path = f"{ctx.service_dir(service)}/{name}"
    for f in ctx.files:
        if f.path == path:
            return f.content
    raise KeyError(path)
