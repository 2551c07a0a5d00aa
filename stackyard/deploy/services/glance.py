"""Glance: image API with the file store on a named volume that survives redeploys."""

from __future__ import annotations

from stackyard.agent.model import Phase
from stackyard.deploy.context import PlanContext, cfile
from stackyard.deploy.options import Option
from stackyard.deploy.services import common
from stackyard.deploy.services.base import (
    OSLO_OVERRIDES, Database, Frontend, Group, Password, Port, RabbitUser, Registration, Service, Upgrade,
    UpgradeJob, User,
)


def plan(ctx: PlanContext) -> Phase:
    v = ctx.variables
    svc, port = "glance-api", int(v["glance_api_port"])
    conf = {
        "DEFAULT": common.default_section(
            ctx, "glance", bind_host=v["api_interface_address"], bind_port=port, workers=v["glance_api_workers"],
            enabled_backends="file:file", show_image_direct_url=False),
        "glance_store": {"default_backend": "file"},
        "file": {"filesystem_store_datadir": "/var/lib/glance/images/"},
        "os_glance_staging_store": {"filesystem_store_datadir": "/var/lib/glance/staging/"},
        "os_glance_tasks_store": {"filesystem_store_datadir": "/var/lib/glance/tasks/"},
        "database": common.database_section(ctx, "glance", "glance_database_password", "glance"),
        "keystone_authtoken": common.authtoken_section(ctx, "glance", "glance_keystone_password"),
        "paste_deploy": {"flavor": "keystone"},
        "oslo_messaging_notifications": {"driver": "noop"},
    }
    ctx.add_ini(svc, "glance-api.conf", conf, owner="glance")
    ctx.add_config_json(svc, "glance-api --config-file /etc/glance/glance-api.conf", [
        cfile("glance-api.conf", "/etc/glance/glance-api.conf", "glance", "0600"),
    ], permissions=[{"path": "/var/lib/glance", "owner": "glance:glance", "recurse": True}])
    return Phase("glance", common.api_service_steps(
        ctx, name="glance", image="glance-api", config_dir=svc, container="glance_api", port=port,
        volumes=["glance:/var/lib/glance/"]))


SERVICE = Service(
    name="glance",
    summary="Glance (images).",
    requires=("keystone", "mariadb"),
    after=("rabbitmq",),
    groups=(Group("glance", ("control",)), Group("glance-api", ("glance",))),
    placed_by=("glance-api",),
    images=("glance-api",),
    options=(
        Option("glance_api_port", int, 9292, "Glance API port."),
        Option("glance_api_workers", int, 1, "Glance API worker processes."),
    ),
    passwords=(Password("glance_database_password"), Password("glance_keystone_password")),
    databases=(Database("glance", "glance", "glance_database_password"),),
    rabbitmq=RabbitUser("glance"),
    registrations=(Registration("glance", "image", "glance_api_port", description="OpenStack Image",
                                user="glance", password_key="glance_keystone_password"),),
    frontends=(Frontend("glance_api", "glance-api", "glance_api_port", check_path="/healthcheck"),),
    users=(User("glance", 42415, "/var/lib/glance"),),
    ports=(Port("glance_api_port", "glance_api"),),
    project="glance",
    overrides=OSLO_OVERRIDES,
    upgrade=Upgrade(
        jobs=(UpgradeJob("expand", "glance_api", "expand"), UpgradeJob("migrate", "glance_api", "migrate"),
              UpgradeJob("contract", "glance_api", "contract", when="after")),
        replaces=("bootstrap_glance",)),
    plan=plan,
)
