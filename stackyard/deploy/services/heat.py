"""Heat: the orchestration API (native and CloudFormation-compatible, both under uWSGI)
and heat-engine, which creates the stacks' resources through the other services' APIs.

Beside its catalog entries Heat needs, in Keystone, the domain where it creates
the users and projects of stacks (``heat_user_domain``, managed by
``heat_domain_admin``) and the roles ``heat_stack_owner`` (granted to the cloud
admin) and ``heat_stack_user`` (given to the users it creates), as
kolla-ansible's heat role sets them up. Stack operations that run later (a
scaling, a delete) act for the user through a Keystone trust to the ``heat``
service user (``deferred_auth_method = trusts``); the trust IDs are stored
encrypted with ``heat_auth_encryption_key``.
"""

from __future__ import annotations

from stackyard.agent.model import Phase, Step, StepKind
from stackyard.deploy.context import PlanContext, cfile
from stackyard.deploy.merge import IniConf, render_ini
from stackyard.deploy.options import Option
from stackyard.deploy.services import common
from stackyard.deploy.services.base import (
    OSLO_OVERRIDES, Database, Domain, Frontend, Group, Password, PasswordKind, Port, RabbitUser, Registration,
    Role, Service, Upgrade, UpgradeJob, User,
)

#: kolla-ansible's names (its heat.conf and heat role)
STACK_USER_DOMAIN = "heat_user_domain"
DOMAIN_ADMIN = "heat_domain_admin"
STACK_OWNER_ROLE = "heat_stack_owner"
STACK_USER_ROLE = "heat_stack_user"

#: config dir -> (command, image, WSGI script): one config dir per container (Kolla's layout)
CONTAINERS = {
    "heat-api": ("uwsgi --ini /etc/heat/heat-api-uwsgi.ini", "heat-api", "/usr/bin/heat-wsgi-api"),
    "heat-api-cfn": ("uwsgi --ini /etc/heat/heat-api-cfn-uwsgi.ini", "heat-api-cfn", "/usr/bin/heat-wsgi-api-cfn"),
    "heat-engine": ("heat-engine", "heat-engine", ""),
}


def heat_conf(ctx: PlanContext, svc: str) -> IniConf:
    """heat.conf of one container; the engine's alone carries its worker count, so changing
    it restarts only the engine."""
    v = ctx.variables
    keystone = common.auth_url(ctx)
    cfn = f"http://{v['kolla_external_fqdn']}:{v['heat_api_cfn_port']}"
    default = common.default_section(
        ctx, "heat",
        # where servers of a stack signal and fetch their metadata (the CloudFormation API)
        heat_metadata_server_url=cfn,
        heat_waitcondition_server_url=f"{cfn}/v1/waitcondition",
        heat_stack_user_role=STACK_USER_ROLE,
        stack_domain_admin=DOMAIN_ADMIN,
        stack_domain_admin_password=ctx.passwords["heat_domain_admin_password"],
        stack_user_domain_name=STACK_USER_DOMAIN,
        # deferred operations act through a trust to the heat user (all the trustor's
        # roles: trusts_delegated_roles left at Heat's default, as kolla-ansible does)
        deferred_auth_method="trusts",
        auth_encryption_key=ctx.passwords["heat_auth_encryption_key"],
        region_name_for_services=v["openstack_region_name"],
        # servers call back from tenant networks: the public endpoint
        server_keystone_endpoint_type="public",
    )
    if svc == "heat-engine":
        default["num_engine_workers"] = v["heat_engine_workers"]
    return {
        "DEFAULT": default,
        "database": common.database_section(ctx, "heat", "heat_database_password", "heat"),
        "keystone_authtoken": {**common.authtoken_section(ctx, "heat", "heat_keystone_password"),
                               "service_type": "orchestration"},
        "cache": common.cache_section(ctx),
        "trustee": {"auth_url": keystone, "auth_type": "password", "user_domain_id": "default",
                    "username": "heat", "password": ctx.passwords["heat_keystone_password"]},
        "clients": {"endpoint_type": "internalURL"},
        "clients_keystone": {"auth_uri": keystone},
        # the CloudFormation API checks EC2-signed requests with Keystone's /v3/ec2tokens
        "ec2authtoken": {"auth_uri": f"{keystone}/v3"},
        "oslo_messaging_notifications": {"driver": "noop"},
        "oslo_middleware": {"enable_proxy_headers_parsing": True},
    }


def plan(ctx: PlanContext) -> Phase:
    v = ctx.variables
    ports = {"heat-api": int(v["heat_api_port"]), "heat-api-cfn": int(v["heat_api_cfn_port"])}
    workers = {"heat-api": v["heat_api_workers"], "heat-api-cfn": v["heat_api_cfn_workers"]}
    for svc, (command, _image, wsgi) in CONTAINERS.items():
        ctx.add_ini(svc, "heat.conf", heat_conf(ctx, svc), owner="heat")
        files = [cfile("heat.conf", "/etc/heat/heat.conf", "heat", "0600")]
        if wsgi:
            ini = f"{svc}-uwsgi.ini"
            uwsgi = common.uwsgi_ini(ctx, wsgi, ports[svc], processes=workers[svc])
            ctx.add_file(svc, ini, render_ini(uwsgi), owner="heat")
            files.append(cfile(ini, f"/etc/heat/{ini}", "heat", "0600"))
        ctx.add_config_json(svc, command, files)

    boot = common.bootstrap_job(ctx, "heat", "heat-api", "heat-api")
    boot.group = "heat-api"
    api = ctx.container("heat_api", "heat-api", "heat-api",
                        healthcheck=common.http_check(ctx, ports["heat-api"], "/healthcheck"))
    cfn = ctx.container("heat_api_cfn", "heat-api-cfn", "heat-api-cfn",
                        healthcheck=common.http_check(ctx, ports["heat-api-cfn"], "/healthcheck"))
    engine = ctx.container("heat_engine", "heat-engine", "heat-engine")
    return Phase("heat", [
        *ctx.database_steps(),
        # the domain, roles and users first, as kolla-ansible registers before it deploys
        *ctx.identity_steps(),
        *ctx.registration_steps(),
        boot,
        Step(StepKind.CONTAINER, "heat_engine", engine, group="heat-engine"),
        Step(StepKind.CONTAINER, "heat_api", api, group="heat-api"),
        Step(StepKind.CONTAINER, "heat_api_cfn", cfn, group="heat-api-cfn"),
        Step(StepKind.WAIT, "heat_api", params={"timeout": 180}),
        Step(StepKind.WAIT, "heat_api_cfn", params={"timeout": 180}),
        # the engine has no healthcheck of its own (issue 18): it is ready once it holds its
        # RabbitMQ connection, whose topic the APIs' calls go to; nothing later in the deploy
        # needs it, so the wait overlaps with the services that follow
        Step(StepKind.WAIT, "heat_engine", params={
            "timeout": 180, "ready": ["healthcheck_port", "heat-engine", str(v["rabbitmq_port"])]},
            group="heat-engine", deferred=True),
    ])


SERVICE = Service(
    name="heat",
    summary="Heat (orchestration).",
    enabled="{{ enable_openstack_core }}",
    requires=("keystone", "mariadb", "rabbitmq"),
    groups=(
        Group("heat", ("control",)),
        Group("heat-api", ("heat",)),
        Group("heat-api-cfn", ("heat",)),
        Group("heat-engine", ("heat",)),
    ),
    placed_by=("heat-api", "heat-api-cfn", "heat-engine"),
    images=("heat-api", "heat-api-cfn", "heat-engine"),
    options=(
        Option("heat_api_port", int, 8004, "Heat API port."),
        Option("heat_api_cfn_port", int, 8000, "Heat CloudFormation-compatible API port."),
        Option("heat_api_workers", int, 2, "uWSGI processes of the Heat API."),
        Option("heat_api_cfn_workers", int, 1, "uWSGI processes of the Heat CloudFormation API."),
        Option("heat_engine_workers", int, 2, "heat-engine worker processes."),
    ),
    passwords=(Password("heat_database_password"), Password("heat_keystone_password"),
               Password("heat_domain_admin_password"),
               Password("heat_auth_encryption_key", PasswordKind.KEY32)),
    databases=(Database("heat", "heat", "heat_database_password"),),
    rabbitmq=RabbitUser("heat"),
    registrations=(
        Registration("heat", "orchestration", "heat_api_port", "/v1/%(tenant_id)s", description="Orchestration",
                     user="heat", password_key="heat_keystone_password"),
        Registration("heat-cfn", "cloudformation", "heat_api_cfn_port", "/v1", description="Orchestration"),
    ),
    domains=(Domain(STACK_USER_DOMAIN, "Owns the users and projects Heat creates for stacks",
                    admin_user=DOMAIN_ADMIN, password_key="heat_domain_admin_password"),),
    roles=(Role(STACK_OWNER_ROLE, grant_admin=True), Role(STACK_USER_ROLE)),
    frontends=(
        Frontend("heat_api", "heat-api", "heat_api_port", check_path="/healthcheck"),
        Frontend("heat_api_cfn", "heat-api-cfn", "heat_api_cfn_port", check_path="/healthcheck"),
    ),
    users=(User("heat", 42418, "/var/lib/heat"),),
    ports=(Port("heat_api_port", "heat_api"), Port("heat_api_cfn_port", "heat_api_cfn")),
    project="heat",
    overrides=OSLO_OVERRIDES,
    # heat's upgrade guide: the database first (heat-manage db_sync adds to the schema),
    # then the engines, then the APIs
    upgrade=Upgrade(jobs=(UpgradeJob("sync", "heat_api", "sync"),),
                    order=("heat_engine", "heat_api", "heat_api_cfn"), replaces=("bootstrap_heat",)),
    plan=plan,
)
