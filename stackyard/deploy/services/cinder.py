"""Cinder: block storage API (uWSGI), scheduler, and volume and backup services on an
external Ceph cluster (RBD), as kolla-ansible's external Ceph guide sets them up.

The only volume backend stackyard implements is RBD (``cinder_backend_ceph``):
this kernel has no iSCSI, NVMe-oF or device-mapper modules, and QEMU's
userspace RBD driver needs none of them. Every other kolla-ansible backend
switch is accepted only at its default, and ``enable_cinder`` without a backend
is refused, so a globals.yml never deploys a Cinder that cannot store a volume.

Ceph's files come from the operator, in kolla-ansible's layout:
``config/cinder/ceph.conf`` (merged with ``config/cinder/<service>/ceph.conf``
when present), ``config/cinder/cinder-volume/ceph.client.<ceph_cinder_user>.keyring``,
and for cinder-backup both its own and the volume user's keyrings in
``config/cinder/cinder-backup/``. They are installed into ``/etc/ceph``.

Volume types: Cinder's own ``__DEFAULT__`` type (made by the db sync, no extra
specs) schedules to the one backend, as in kolla-ansible, which creates none.
"""

from __future__ import annotations

from stackyard.agent.model import Phase, Step, StepKind
from stackyard.deploy.context import PlanContext, cfile
from stackyard.deploy.merge import IniConf, render_ini
from stackyard.deploy.options import Option
from stackyard.deploy.services import common
from stackyard.deploy.services.base import (
    OSLO_OVERRIDES, Database, Frontend, Group, Password, PasswordKind, Port, RabbitUser, Registration, Service,
    Upgrade, UpgradeJob, User,
)
from stackyard.errors import ConfigError

API_WSGI = "/usr/bin/cinder-api-wsgi"
RBD_DRIVER = "cinder.volume.drivers.rbd.RBDDriver"
CEPH_BACKUP_DRIVER = "cinder.backup.drivers.ceph.CephBackupDriver"
#: kolla-ansible's backend_host for RBD: every cinder-volume of the backend is one
#: service host, so any of them can manage any volume (active/passive HA)
RBD_BACKEND_HOST = "rbd:volumes"

#: config dir -> command (one config dir per container, Kolla's layout)
COMMANDS = {
    "cinder-api": "uwsgi --ini /etc/cinder/cinder-api-uwsgi.ini",
    "cinder-scheduler": "cinder-scheduler --config-file /etc/cinder/cinder.conf",
    "cinder-volume": "cinder-volume --config-file /etc/cinder/cinder.conf",
    "cinder-backup": "cinder-backup --config-file /etc/cinder/cinder.conf",
}

#: cinder's privsep daemon (started through sudo cinder-rootwrap) keeps its context's
#: capabilities (sys_admin_pctxt: CHOWN, DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER, NET_ADMIN,
#: SYS_ADMIN) and fails to start when the bounding set lacks one; SYS_PTRACE as for Nova's.
#: It checks an image's format before conversion (format_inspector), so volumes made
#: from images need it. No --privileged (kolla-ansible's), no host /dev.
PRIVSEP_CAPS = ["NET_ADMIN", "SYS_ADMIN", "DAC_READ_SEARCH", "SYS_PTRACE"]

#: the config dirs whose services talk to Ceph (the API and the scheduler do not)
CEPH_CLIENTS = ("cinder-volume", "cinder-backup")

#: kolla-ansible's volume backends stackyard does not implement (enable flag -> what it is)
UNSUPPORTED_BACKENDS = {
    "enable_cinder_backend_lvm": "LVM volumes (they need iSCSI, which this kernel lacks)",
    "enable_cinder_backend_iscsi": "the iSCSI target (this kernel has no iSCSI modules)",
    "enable_cinder_backend_nfs": "NFS volumes",
    "enable_cinder_backend_quobyte": "Quobyte volumes",
    "enable_cinder_backend_pure_iscsi": "Pure Storage iSCSI volumes",
    "enable_cinder_backend_pure_fc": "Pure Storage FC volumes",
    "enable_cinder_backend_pure_roce": "Pure Storage RoCE volumes",
    "enable_cinder_backend_pure_nvme_tcp": "Pure Storage NVMe/TCP volumes",
    "enable_cinder_backend_lightbits": "Lightbits NVMe/TCP volumes",
    "enable_cinder_backend_vast": "VAST NVMe/TCP volumes",
    "cinder_backend_huawei": "Huawei volumes",
    "cinder_backend_vmwarevc_vmdk": "VMware vCenter VMDK volumes",
}


def check_backends(v: dict) -> None:
    """``enable_cinder`` needs a backend; the RBD one is the only one there is."""
    if not v["cinder_backend_ceph"]:
        raise ConfigError("enable_cinder is true but no volume backend is enabled: set cinder_backend_ceph: "
                          "true (Ceph RBD, the backend stackyard implements) and put the Ceph files in "
                          f"config/cinder/ ({common.CEPH_GUIDE})")


def backup_enabled(v: dict) -> bool:
    return bool(v["enable_cinder_backup"])


def cinder_conf(ctx: PlanContext, service: str) -> IniConf:
    """cinder.conf of config dir ``service``: the same for every service but the backup
    driver's options, which only cinder-backup reads (as kolla-ansible renders it)."""
    v = ctx.variables
    backend = v["cinder_backend_ceph_name"]
    default = common.default_section(
        ctx, "cinder", my_ip=v["api_interface_address"], state_path="/var/lib/cinder",
        osapi_volume_listen=v["api_interface_address"], osapi_volume_listen_port=v["cinder_api_port"],
        osapi_volume_workers=v["cinder_api_workers"], api_paste_config="/etc/cinder/api-paste.ini",
        auth_strategy="keystone", volume_name_template="volume-%s",
        glance_api_servers=f"http://{common.internal_host(ctx)}:{v['glance_api_port']}" if v.get("enable_glance")
        else None,
        glance_num_retries=len(ctx.addresses("glance-api")), os_region_name=v["openstack_region_name"],
        enabled_backends=backend)
    if service == "cinder-backup" and backup_enabled(v):
        default.update({
            "backup_driver": CEPH_BACKUP_DRIVER,
            "backup_ceph_conf": common.ceph_conf_path(ctx),
            "backup_ceph_user": v["ceph_cinder_backup_user"],
            "backup_ceph_chunk_size": 134217728,
            "backup_ceph_pool": v["ceph_cinder_backup_pool_name"],
            "backup_ceph_stripe_unit": 0,
            "backup_ceph_stripe_count": 0,
            "restore_discard_excess_bytes": True,
        })
    conf: IniConf = {
        "DEFAULT": default,
        "database": common.database_section(ctx, "cinder", "cinder_database_password", "cinder"),
        "keystone_authtoken": common.authtoken_section(ctx, "cinder", "cinder_keystone_password"),
        # cinder's calls to Nova (volume events, assisted snapshots) carry its service token
        "service_user": common.keystone_authtoken(ctx, "cinder", "cinder_keystone_password",
                                                  send_service_user_token=True),
        "oslo_concurrency": {"lock_path": "/var/lib/cinder/tmp"},
        "oslo_messaging_notifications": {"driver": "noop"},
        "oslo_middleware": {"enable_proxy_headers_parsing": True},
        "privsep_entrypoint": {"helper_command": "sudo cinder-rootwrap /etc/cinder/rootwrap.conf privsep-helper "
                                                "--config-file /etc/cinder/cinder.conf"},
    }
    if v.get("enable_nova"):
        conf["nova"] = common.keystone_authtoken(ctx, "nova", "nova_keystone_password", interface="internal")
        for key in ("www_authenticate_uri",):
            conf["nova"].pop(key)
    conf[backend] = {
        "volume_driver": RBD_DRIVER,
        "volume_backend_name": backend,
        "rbd_pool": v["ceph_cinder_pool_name"],
        "rbd_ceph_conf": common.ceph_conf_path(ctx),
        "rbd_cluster_name": v["ceph_cluster"],
        "rbd_user": v["ceph_cinder_user"],
        "rbd_secret_uuid": ctx.passwords["cinder_rbd_secret_uuid"],
        "rados_connect_timeout": 5,
        "report_discard_supported": True,
        "backend_host": RBD_BACKEND_HOST,
    }
    return conf


def keyring_paths(v: dict, service: str, keyring_option: str) -> tuple[str, ...]:
    """Where kolla-ansible looks for a keyring of config dir ``service``."""
    return (f"cinder/{service}/{v['ceph_cluster']}.{v[keyring_option]}",)


def ceph_entries(ctx: PlanContext, service: str) -> list[dict]:
    """ceph.conf and the keyrings ``service`` needs, read from config/cinder/ (kolla-ansible's
    layout), added to its config dir; their config.json entries."""
    v = ctx.variables
    conf_name = common.ceph_conf_name(ctx)
    why = f"cinder_backend_ceph is true ({service} reads Ceph's config)"
    conf = common.ceph_conf_text(ctx, (f"cinder/{conf_name}",), (f"cinder/{service}/{conf_name}",), why)
    wanted = [("ceph_cinder_user", "ceph_cinder_keyring")]
    if service == "cinder-backup":
        wanted.append(("ceph_cinder_backup_user", "ceph_cinder_backup_keyring"))
    keyrings = []
    for user_opt, keyring_opt in wanted:
        name, text, _key = common.ceph_keyring(ctx, keyring_paths(v, service, keyring_opt), v[user_opt],
                                               f"cinder_backend_ceph is true ({service} connects as "
                                               f"client.{v[user_opt]})")
        keyrings.append((name, text))
    return common.add_ceph_files(ctx, service, "cinder", conf, keyrings)


def plan(ctx: PlanContext) -> Phase:
    v = ctx.variables
    check_backends(v)
    port = int(v["cinder_api_port"])
    owner = "cinder"
    services = [s for s in COMMANDS if s != "cinder-backup" or backup_enabled(v)]
    for svc in services:
        ctx.add_ini(svc, "cinder.conf", cinder_conf(ctx, svc), owner=owner)
        files = [cfile("cinder.conf", "/etc/cinder/cinder.conf", owner, "0600")]
        if svc == "cinder-api":
            ini = common.uwsgi_ini(ctx, API_WSGI, port, processes=v["cinder_api_workers"])
            ctx.add_file(svc, "cinder-api-uwsgi.ini", render_ini(ini), owner=owner)
            files.append(cfile("cinder-api-uwsgi.ini", "/etc/cinder/cinder-api-uwsgi.ini", owner, "0600"))
        if svc in CEPH_CLIENTS:
            files += ceph_entries(ctx, svc)
        ctx.add_config_json(svc, COMMANDS[svc], files, permissions=[
            {"path": "/var/lib/cinder", "owner": "cinder:cinder", "recurse": True},
        ] if svc in CEPH_CLIENTS else [])

    rpc = str(v["rabbitmq_port"])
    boot = common.bootstrap_job(ctx, "cinder", "cinder-api", "cinder-api")
    boot.group = "cinder-api"
    api = ctx.container("cinder_api", "cinder-api", "cinder-api",
                        healthcheck=common.http_check(ctx, port, "/healthcheck"))
    sched = ctx.container("cinder_scheduler", "cinder-scheduler", "cinder-scheduler",
                          healthcheck=["healthcheck_port", "cinder-scheduler", rpc])
    state = ["cinder:/var/lib/cinder/"]
    volume = ctx.container("cinder_volume", "cinder-volume", "cinder-volume", volumes=state, cap_add=PRIVSEP_CAPS,
                           healthcheck=["healthcheck_port", "cinder-volume", rpc])
    steps = [
        *ctx.database_steps(),
        boot,
        Step(StepKind.CONTAINER, "cinder_api", api, group="cinder-api"),
        Step(StepKind.CONTAINER, "cinder_scheduler", sched, group="cinder-scheduler"),
        Step(StepKind.CONTAINER, "cinder_volume", volume, group="cinder-volume"),
    ]
    waits = ["cinder_api", "cinder_scheduler", "cinder_volume"]
    if backup_enabled(v):
        backup = ctx.container("cinder_backup", "cinder-backup", "cinder-backup", volumes=state, cap_add=PRIVSEP_CAPS,
                               healthcheck=["healthcheck_port", "cinder-backup", rpc])
        steps.append(Step(StepKind.CONTAINER, "cinder_backup", backup, group="cinder-backup"))
        waits.append("cinder_backup")
    steps += [Step(StepKind.WAIT, name, params={"timeout": 180}) for name in waits]
    steps += ctx.registration_steps()
    # the containers' health says they talk to RabbitMQ; only the service list says the
    # RBD driver reached Ceph (cinder-volume reports nothing until it has)
    wanted = {"cinder-volume": f"{RBD_BACKEND_HOST}@{v['cinder_backend_ceph_name']}"}
    if backup_enabled(v):
        wanted["cinder-backup"] = ""
    steps.append(Step(StepKind.VOLUME_SERVICES_WAIT, "cinder", group="cinder-api",
                      params={"services": wanted, "timeout": 180}))
    return Phase("cinder", steps)


def _unsupported(name: str, what: str) -> Option:
    return Option(name, bool, False, f"kolla-ansible's switch for {what}.",
                  unsupported=f"{what}: not implemented; Cinder's one backend here is Ceph RBD "
                              "(cinder_backend_ceph)")


SERVICE = Service(
    name="cinder",
    summary="Cinder (block storage) on an external Ceph cluster (RBD).",
    requires=("keystone", "mariadb", "rabbitmq"),
    groups=(
        Group("cinder", ("control",)),
        Group("cinder-api", ("cinder",)),
        Group("cinder-scheduler", ("cinder",)),
        Group("cinder-volume", ("storage",)),
        Group("cinder-backup", ("storage",)),
    ),
    placed_by=("cinder-api", "cinder-scheduler", "cinder-volume", "cinder-backup"),
    images=("cinder-api", "cinder-scheduler", "cinder-volume", "cinder-backup"),
    options=(
        Option("enable_cinder_backup", bool, True,
               "Deploy cinder-backup (with enable_cinder), backups in Ceph (cinder_backup_driver)."),
        Option("cinder_backend_ceph", bool, False,
               "Volumes in the external Ceph cluster's ceph_cinder_pool_name pool (RBD)."),
        Option("cinder_backend_ceph_name", str, "rbd-1",
               "Name of the RBD backend: its cinder.conf section and volume_backend_name."),
        Option("cinder_backup_driver", str, "ceph", "Where cinder-backup stores backups.",
               unsupported="only the Ceph backup driver is implemented (not nfs, s3 or swift)"),
        Option("ceph_cinder_user", str, "cinder", "Ceph user of cinder-volume (and of Nova's volume attachments)."),
        Option("ceph_cinder_keyring", str, "client.{{ ceph_cinder_user }}.keyring",
               "Keyring file name of ceph_cinder_user, after '<ceph_cluster>.'."),
        Option("ceph_cinder_pool_name", str, "volumes", "Ceph pool of Cinder's volumes."),
        Option("ceph_cinder_backup_user", str, "cinder-backup", "Ceph user of cinder-backup."),
        Option("ceph_cinder_backup_keyring", str, "client.{{ ceph_cinder_backup_user }}.keyring",
               "Keyring file name of ceph_cinder_backup_user, after '<ceph_cluster>.'."),
        Option("ceph_cinder_backup_pool_name", str, "backups", "Ceph pool of Cinder's backups."),
        Option("cinder_api_port", int, 8776, "Cinder API port."),
        Option("cinder_api_workers", int, 2, "uWSGI processes of the Cinder API."),
        *(_unsupported(name, what) for name, what in UNSUPPORTED_BACKENDS.items()),
        Option("cinder_ceph_backends", list, [], "kolla-ansible's list of RBD backends (several clusters).",
               unsupported="several Ceph backends are not implemented: the one RBD backend follows "
                           "ceph_cinder_user, ceph_cinder_pool_name and ceph_cluster"),
        Option("cinder_backup_ceph_backend", dict, {}, "kolla-ansible's Ceph cluster of cinder-backup.",
               unsupported="a backup cluster of its own is not implemented: backups follow "
                           "ceph_cinder_backup_user, ceph_cinder_backup_pool_name and ceph_cluster"),
    ),
    passwords=(Password("cinder_database_password"), Password("cinder_keystone_password"),
               Password("cinder_rbd_secret_uuid", PasswordKind.UUID)),
    databases=(Database("cinder", "cinder", "cinder_database_password", group="cinder-api"),),
    rabbitmq=RabbitUser("cinder"),
    # kolla-ansible 2025.1's catalog: block-storage (/v3) and the deprecated volumev3
    # (/v3/<project>) that older clients look up
    registrations=(
        Registration("cinder", "block-storage", "cinder_api_port", "/v3", description="OpenStack Block Storage",
                     user="cinder", password_key="cinder_keystone_password", roles=("admin", "service"),
                     group="cinder-api"),
        Registration("cinderv3", "volumev3", "cinder_api_port", "/v3/%(tenant_id)s",
                     description="OpenStack Block Storage (deprecated)", group="cinder-api"),
    ),
    frontends=(Frontend("cinder_api", "cinder-api", "cinder_api_port", check_path="/healthcheck"),),
    users=(User("cinder", 42407, "/var/lib/cinder"),),
    ports=(Port("cinder_api_port", "cinder_api"),),
    project="cinder",
    overrides=OSLO_OVERRIDES,
    # cinder's upgrade docs: db sync first (additive), then the scheduler, volume and
    # backup services before the API; online data migrations once all run the new release
    upgrade=Upgrade(
        jobs=(UpgradeJob("db", "cinder_api", "db"), UpgradeJob("online", "cinder_api", "online", when="after")),
        order=("cinder_scheduler", "cinder_volume", "cinder_backup", "cinder_api"),
        replaces=("bootstrap_cinder",)),
    plan=plan,
)
