"""Placement: resource inventory API under uWSGI."""

from __future__ import annotations

from stackyard.deploy.context import PlanContext, cfile
from stackyard.deploy.model import Phase, Step
from stackyard.deploy.services import common

WSGI_SCRIPT = "/usr/bin/placement-api"


def plan(ctx: PlanContext) -> Phase:
    v = ctx.variables
    svc, port = "placement-api", int(v["placement_api_port"])
    conf = (
        common.default_section(ctx, None)
        + "\n[api]\nauth_strategy = keystone\n"
        + f"\n[placement_database]\nconnection = "
          f"{common.db_url(ctx, 'placement', 'placement_database_password', 'placement')}\n"
        + "connection_recycle_time = 10\nmax_retries = -1\n"
        + "\n" + common.keystone_authtoken(ctx, "placement", "placement_keystone_password")
        + f"memcached_servers = {common.memcache_servers(ctx)}\n"
    )
    ctx.add_ini(svc, "placement.conf", "placement", conf, owner="placement", override_service="placement-api")
    ctx.add_file(svc, "placement-uwsgi.ini",
                 common.uwsgi_ini(ctx, WSGI_SCRIPT, port, processes=v.get("placement_api_workers", 2)),
                 owner="placement", mode=0o600)
    ctx.add_config_json(svc, "uwsgi --ini /etc/placement/placement-uwsgi.ini", [
        cfile("placement.conf", "/etc/placement/placement.conf", "placement", "0600"),
        cfile("placement-uwsgi.ini", "/etc/placement/placement-uwsgi.ini", "placement", "0600"),
    ])
    job = ctx.container("bootstrap_placement", "placement-api", svc,
                        environment={"KOLLA_BOOTSTRAP": "1"}, restart_policy="no", trigger_files=[])
    api = ctx.container("placement_api", "placement-api", svc, healthcheck=common.http_check(ctx, port))
    return Phase("placement", [
        common.database_step("placement", "placement", "placement", "placement_database_password"),
        Step("job", "bootstrap_placement", job),
        Step("container", "placement_api", api),
        Step("wait", "placement_api", params={"timeout": 120}),
        common.register_step(ctx, "placement", "placement", port, user="placement",
                             password_key="placement_keystone_password", description="Placement API"),
    ])
