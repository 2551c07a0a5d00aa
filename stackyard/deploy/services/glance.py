"""Glance: image API with the file store on a named volume that survives redeploys."""

from __future__ import annotations

from stackyard.deploy.context import PlanContext, cfile
from stackyard.deploy.model import Phase
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
        + common.database_section(ctx, "glance", "glance_database_password", "glance")
        + common.authtoken_section(ctx, "glance", "glance_keystone_password")
        + "\n[paste_deploy]\nflavor = keystone\n"
        + "\n[oslo_messaging_notifications]\ndriver = noop\n"
    )
    ctx.add_ini(svc, "glance-api.conf", "glance", conf, owner="glance", override_service="glance-api")
    ctx.add_config_json(svc, "glance-api --config-file /etc/glance/glance-api.conf", [
        cfile("glance-api.conf", "/etc/glance/glance-api.conf", "glance", "0600"),
    ], permissions=[{"path": "/var/lib/glance", "owner": "glance:glance", "recurse": True}])
    return Phase("glance", common.api_service_steps(
        ctx, name="glance", service_type="image", image="glance-api", config_dir=svc, container="glance_api",
        port=port, volumes=["glance:/var/lib/glance/"], description="OpenStack Image"))
