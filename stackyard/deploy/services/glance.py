"""Glance: image API with the file store on a named volume that survives redeploys."""

from __future__ import annotations

from stackyard.deploy.context import PlanContext, cfile
from stackyard.deploy.model import Phase, Step
from stackyard.deploy.services import common


def plan(ctx: PlanContext) -> Phase:
    v = ctx.variables
    svc, port = "glance-api", int(v["glance_api_port"])
    conf = (
        common.default_section(ctx, "glance", extra=(
            f"bind_host = {v['api_interface_address']}\n"
            f"bind_port = {port}\n"
            f"workers = {v.get('glance_api_workers', 1)}\n"
            "enabled_backends = file:file\n"
            "show_image_direct_url = false\n"
        ))
        + "\n[glance_store]\ndefault_backend = file\n"
        + "\n[file]\nfilesystem_store_datadir = /var/lib/glance/images/\n"
        + "\n[os_glance_staging_store]\nfilesystem_store_datadir = /var/lib/glance/staging/\n"
        + "\n[os_glance_tasks_store]\nfilesystem_store_datadir = /var/lib/glance/tasks/\n"
        + f"\n[database]\nconnection = {common.db_url(ctx, 'glance', 'glance_database_password', 'glance')}\n"
        + "connection_recycle_time = 10\nmax_retries = -1\n"
        + "\n" + common.keystone_authtoken(ctx, "glance", "glance_keystone_password")
        + f"memcached_servers = {common.memcache_servers(ctx)}\n"
        + "\n[paste_deploy]\nflavor = keystone\n"
        + "\n[oslo_messaging_notifications]\ndriver = noop\n"
    )
    ctx.add_ini(svc, "glance-api.conf", "glance", conf, owner="glance", override_service="glance-api")
    ctx.add_config_json(svc, "glance-api --config-file /etc/glance/glance-api.conf", [
        cfile("glance-api.conf", "/etc/glance/glance-api.conf", "glance", "0600"),
    ], permissions=[{"path": "/var/lib/glance", "owner": "glance:glance", "recurse": True}])
    volumes = ["glance:/var/lib/glance/"]
    job = ctx.container("bootstrap_glance", "glance-api", svc, volumes=volumes,
                        environment={"KOLLA_BOOTSTRAP": "1"}, restart_policy="no", trigger_files=[])
    api = ctx.container("glance_api", "glance-api", svc, volumes=volumes,
                        healthcheck=common.http_check(ctx, port))
    return Phase("glance", [
        common.database_step("glance", "glance", "glance", "glance_database_password"),
        Step("job", "bootstrap_glance", job),
        Step("container", "glance_api", api),
        Step("wait", "glance_api", params={"timeout": 120}),
        common.register_step(ctx, "glance", "image", port, user="glance",
                             password_key="glance_keystone_password", description="OpenStack Image"),
    ])
