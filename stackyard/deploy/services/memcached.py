"""Memcached: token and session cache, bound to the API address."""

from __future__ import annotations

from stackyard.agent.model import Phase, Step, StepKind
from stackyard.deploy.context import PlanContext
from stackyard.deploy.options import Option
from stackyard.deploy.services.base import Group, Password, Port, Service, User


def plan(ctx: PlanContext) -> Phase:
    v = ctx.variables
    svc = "memcached"
    command = (f"memcached -l {v['api_interface_address']} -p {v['memcached_port']} "
               f"-c {v['memcached_connection_limit']} -m {v['memcached_max_memory']}")
    ctx.add_config_json(svc, command, [])
    c = ctx.container("memcached", "memcached", svc,
                      healthcheck=["healthcheck_listen", "memcached", str(v["memcached_port"])])
    return Phase(svc, [Step(StepKind.CONTAINER, "memcached", c),
                       Step(StepKind.WAIT, "memcached", params={"timeout": 60})])


SERVICE = Service(
    name="memcached",
    summary="memcached (token and session cache).",
    enabled=True,
    groups=(Group("memcached", ("control",)),),
    images=("memcached",),
    profile="infra",
    options=(
        Option("memcached_port", int, 11211, "memcached port."),
        Option("memcached_max_memory", int, 128, "Memcached memory limit in MB."),
        Option("memcached_connection_limit", int, 5000, "Memcached's maximum simultaneous connections."),
    ),
    passwords=(Password("memcache_secret_key"),),
    users=(User("memcached", 42457, "/run/memcached"),),
    ports=(Port("memcached_port", "memcached"),),
    plan=plan,
)
