"""RabbitMQ: one user and vhost per OpenStack service that uses the bus (each
service declares its ``rabbitmq`` user), from a definitions file imported at
boot (no passwords on any command line)."""

from __future__ import annotations

import base64
import hashlib
import json

from stackyard.agent.model import Phase, Step, StepKind
from stackyard.deploy.context import PlanContext, cfile
from stackyard.deploy.options import Option
from stackyard.deploy.services.base import Group, Password, PasswordKind, Port, Service, User


def password_hash(user: str, password: str) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256 format: base64(salt + sha256(salt + pw)).

    The salt is derived from user and password so the definitions file (and so the
    container's spec hash) does not change from one deploy to the next.
    """
    salt = hashlib.sha256(f"stackyard:{user}:{password}".encode()).digest()[:4]
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def rabbit_users(ctx: PlanContext) -> dict[str, str]:
    """user/vhost name -> password, for each enabled service that uses RabbitMQ."""
    declared = [s.rabbitmq for s in ctx.enabled if s.rabbitmq is not None]
    return {user.user: ctx.passwords[user.password_key] for user in declared}


def definitions(ctx: PlanContext) -> str:
    users, vhosts, perms = [], [], []
    for name, password in sorted(rabbit_users(ctx).items()):
        users.append({"name": name, "password_hash": password_hash(name, password),
                      "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []})
        vhosts.append({"name": name})
        perms.append({"user": name, "vhost": name, "configure": ".*", "write": ".*", "read": ".*"})
    return json.dumps({"users": users, "vhosts": vhosts, "permissions": perms}, indent=2, sort_keys=True) + "\n"


def plan(ctx: PlanContext) -> Phase:
    v = ctx.variables
    svc = "rabbitmq"
    addr = v["api_interface_address"]
    # rabbitmq.conf is RabbitMQ's own key = value format (no sections): text
    conf = (
        f"listeners.tcp.1 = {addr}:{v['rabbitmq_port']}\n"
        "loopback_users = none\n"
        "definitions.import_backend = local_filesystem\n"
        "definitions.local.path = /etc/rabbitmq/definitions.json\n"
        "log.console = true\n"
        "log.console.level = info\n"
        "log.file = false\n"
        "vm_memory_high_watermark.relative = 0.2\n"
        "disk_free_limit.absolute = 100MB\n"
    )
    nodes = ctx.hosts("rabbitmq")
    clustered = len(nodes) > 1
    if clustered:
        # every node lists every node: nodes that boot together find each other
        # and form the cluster; a node that restarts later rejoins the others.
        # Not serial: a node booting alone waits for its peers to appear.
        conf += ("cluster_formation.peer_discovery_backend = classic_config\n"
                 + "".join(f"cluster_formation.classic_config.nodes.{i} = rabbit@{n}\n"
                           for i, n in enumerate(nodes, 1))
                 + "cluster_partition_handling = pause_minority\n")
    nodename = ctx.host if clustered else "localhost"
    ip_tuple = ",".join(addr.split(".")) if addr.count(".") == 3 else "0,0,0,0"
    env_conf = (
        f"NODENAME=rabbit@{nodename}\n"
        f"DIST_PORT={v['rabbitmq_cluster_port']}\n"
        f'SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {{{ip_tuple}}}"\n'
        "USE_LONGNAME=false\n"
    )
    ctx.add_file(svc, "rabbitmq.conf", conf, owner="rabbitmq", mode=0o600)
    ctx.add_file(svc, "rabbitmq-env.conf", env_conf, owner="rabbitmq", mode=0o600)
    ctx.add_file(svc, "definitions.json", definitions(ctx), owner="rabbitmq", secret=True)
    ctx.add_file(svc, "erlang.cookie", ctx.passwords["rabbitmq_cluster_cookie"], owner="rabbitmq", secret=True)
    ctx.add_file(svc, "enabled_plugins", "[].\n", owner="rabbitmq", mode=0o600)
    ctx.add_config_json(svc, "rabbitmq-server", [
        cfile("rabbitmq.conf", "/etc/rabbitmq/rabbitmq.conf", "rabbitmq", "0600"),
        cfile("rabbitmq-env.conf", "/etc/rabbitmq/rabbitmq-env.conf", "rabbitmq", "0600"),
        cfile("definitions.json", "/etc/rabbitmq/definitions.json", "rabbitmq", "0600"),
        cfile("enabled_plugins", "/etc/rabbitmq/enabled_plugins", "rabbitmq", "0600"),
        cfile("erlang.cookie", "/var/lib/rabbitmq/.erlang.cookie", "rabbitmq", "0400"),
    ], permissions=[{"path": "/var/lib/rabbitmq", "owner": "rabbitmq:rabbitmq", "recurse": True}])
    c = ctx.container(
        "rabbitmq", "rabbitmq", svc, volumes=["rabbitmq:/var/lib/rabbitmq/"],
        environment={"ERL_EPMD_ADDRESS": addr, "ERL_EPMD_PORT": str(v["rabbitmq_epmd_port"]),
                     "RABBITMQ_CONFIG_FILE": "/etc/rabbitmq/rabbitmq.conf"},
        healthcheck=["healthcheck_listen", "beam.smp", str(v["rabbitmq_port"])], stop_timeout=60,
    )
    return Phase(svc, [Step(StepKind.CONTAINER, "rabbitmq", c),
                       Step(StepKind.WAIT, "rabbitmq", params={"timeout": 300})])


SERVICE = Service(
    name="rabbitmq",
    summary="RabbitMQ (the RPC message bus).",
    enabled=True,
    groups=(Group("rabbitmq", ("control",)),),
    images=("rabbitmq",),
    profile="infra",
    options=(
        Option("rabbitmq_port", int, 5672, "RabbitMQ AMQP port."),
        Option("rabbitmq_cluster_port", int, 25672, "RabbitMQ inter-node (Erlang distribution) port."),
        Option("rabbitmq_epmd_port", int, 4369, "Erlang port mapper port used by RabbitMQ."),
    ),
    passwords=(Password("rabbitmq_password"), Password("rabbitmq_cluster_cookie", PasswordKind.LETTERS)),
    users=(User("rabbitmq", 42439, "/var/lib/rabbitmq"),),
    ports=(Port("rabbitmq_port", "rabbitmq"), Port("rabbitmq_cluster_port", "rabbitmq"),
           Port("rabbitmq_epmd_port", "rabbitmq")),
    plan=plan,
)
