"""Placement: resource inventory API under uWSGI."""

from __future__ import annotations

from stackyard.deploy.context import PlanContext, cfile
from stackyard.deploy.model import Phase
from stackyard.deploy.services import common

WSGI_SCRIPT = "/usr/bin/placement-api"


def plan(ctx: PlanContext) -> Phase:
    v = ctx.variables
    svc, port = "placement-api", int(v["placement_api_port"])
    conf = (
        common.default_section(ctx, None)
        + "\n[api]\nauth_strategy = keystone\n"
        + common.database_section(ctx, "placement", "placement_database_password", "placement",
                                  "placement_database")
        + common.authtoken_section(ctx, "placement", "placement_keystone_password")
    )
    ctx.add_ini(svc, "placement.conf", "placement", conf, owner="placement", override_service="placement-api")
    ctx.add_file(svc, "placement-uwsgi.ini",
                 common.uwsgi_ini(ctx, WSGI_SCRIPT, port, processes=v.get("placement_api_workers", 2)),
                 owner="placement", mode=0o600)
    ctx.add_config_json(svc, "uwsgi --ini /etc/placement/placement-uwsgi.ini", [
        cfile("placement.conf", "/etc/placement/placement.conf", "placement", "0600"),
        cfile("placement-uwsgi.ini", "/etc/placement/placement-uwsgi.ini", "placement", "0600"),
    ])
    return Phase("placement", common.api_service_steps(
        ctx, name="placement", service_type="placement", image="placement-api", config_dir=svc,
        container="placement_api", port=port, description="Placement API"))
