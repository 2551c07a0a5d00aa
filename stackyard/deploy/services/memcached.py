"""Memcached: token and session cache, bound to the API address."""

from __future__ import annotations

from stackyard.deploy.context import PlanContext
from stackyard.deploy.model import Phase, Step


def plan(ctx: PlanContext) -> Phase:
    v = ctx.variables
    svc = "memcached"
    command = (f"memcached -l {v['api_interface_address']} -p {v['memcached_port']} "
               f"-c {v.get('memcached_connection_limit', 5000)} -m {v.get('memcached_max_memory', 128)}")
    ctx.add_config_json(svc, command, [])
    c = ctx.container("memcached", "memcached", svc,
                      healthcheck=["healthcheck_listen", "memcached", str(v["memcached_port"])])
    return Phase(svc, [Step("container", "memcached", c), Step("wait", "memcached", params={"timeout": 60})])
