"""Placement: resource inventory API under uWSGI."""

from __future__ import annotations

from stackyard.agent.model import Phase
from stackyard.deploy.context import PlanContext, cfile
from stackyard.deploy.merge import render_ini
from stackyard.deploy.options import Option
from stackyard.deploy.services import common
from stackyard.deploy.services.base import (
    OSLO_OVERRIDES, Database, Frontend, Group, Password, Port, Registration, Service, Upgrade, UpgradeJob,
    User,
)

WSGI_SCRIPT = "/usr/bin/placement-api"


def plan(ctx: PlanContext) -> Phase:
    v = ctx.variables
    svc, port = "placement-api", int(v["placement_api_port"])
    conf = {
        "DEFAULT": common.default_section(ctx, None),
        "api": {"auth_strategy": "keystone"},
        "placement_database": common.database_section(ctx, "placement", "placement_database_password",
                                                      "placement"),
        "keystone_authtoken": common.authtoken_section(ctx, "placement", "placement_keystone_password"),
    }
    ctx.add_ini(svc, "placement.conf", conf, owner="placement")
    uwsgi = common.uwsgi_ini(ctx, WSGI_SCRIPT, port, processes=v["placement_api_workers"])
    ctx.add_file(svc, "placement-uwsgi.ini", render_ini(uwsgi), owner="placement", mode=0o600)
    ctx.add_config_json(svc, "uwsgi --ini /etc/placement/placement-uwsgi.ini", [
        cfile("placement.conf", "/etc/placement/placement.conf", "placement", "0600"),
        cfile("placement-uwsgi.ini", "/etc/placement/placement-uwsgi.ini", "placement", "0600"),
    ])
    return Phase("placement", common.api_service_steps(
        ctx, name="placement", image="placement-api", config_dir=svc, container="placement_api", port=port))


SERVICE = Service(
    name="placement",
    summary="Placement (resource inventory).",
    requires=("keystone", "mariadb"),
    groups=(Group("placement", ("control",)), Group("placement-api", ("placement",))),
    placed_by=("placement-api",),
    images=("placement-api",),
    options=(
        Option("placement_api_port", int, 8780, "Placement API port."),
        Option("placement_api_workers", int, 2, "uWSGI processes of the Placement API."),
    ),
    passwords=(Password("placement_database_password"), Password("placement_keystone_password")),
    databases=(Database("placement", "placement", "placement_database_password"),),
    registrations=(Registration("placement", "placement", "placement_api_port", description="Placement API",
                                user="placement", password_key="placement_keystone_password"),),
    frontends=(Frontend("placement_api", "placement-api", "placement_api_port", check_path="/"),),
    users=(User("placement", 42482, "/var/lib/placement"),),
    ports=(Port("placement_api_port", "placement_api"),),
    project="placement",
    overrides=OSLO_OVERRIDES,
    upgrade=Upgrade(jobs=(UpgradeJob("sync", "placement_api", "sync"),), replaces=("bootstrap_placement",)),
    plan=plan,
)
