"""Nova: API and metadata API (uWSGI), scheduler, conductor, noVNC proxy, and a
compute node made of nova-compute plus libvirtd/QEMU in their own container.

Cell setup (api_db sync, cell0 mapping, cell1, db sync) is the nova-api image's
KOLLA_BOOTSTRAP hook. New compute hosts are discovered by the scheduler itself
(``discover_hosts_in_cells_interval``), so no operator step is needed; the
deploy waits until the hypervisor is registered.

External Ceph (kolla-ansible's layout and options): with ``nova_backend_ceph``
the servers' disks are RBD images in ``ceph_nova_pool_name``, cloned
copy-on-write from Glance's RBD images where they can be; with Cinder on RBD,
volumes attach through QEMU's RBD driver. ``config/nova/ceph.conf`` and the
keyrings (``ceph.client.<ceph_nova_user>.keyring``, and Cinder's user's for
volumes; a per-host ``config/nova/<host>/`` copy wins) go to nova-compute and
nova-libvirt, and the users' keys become libvirt secrets
(``rbd_secret_uuid``, ``cinder_rbd_secret_uuid``) as the files kolla-ansible
writes: ``/etc/libvirt/secrets/<uuid>.xml`` and ``<uuid>.base64``, loaded by
libvirtd when it starts, so defining them again changes nothing.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from stackyard.agent.model import Phase, Step, StepKind
from stackyard.deploy.context import PlanContext, cfile
from stackyard.deploy.merge import IniConf, render_ini
from stackyard.deploy.options import Option
from stackyard.deploy.services import common
from stackyard.deploy.services.base import (
    OSLO_OVERRIDES, Database, Frontend, Group, Password, PasswordKind, Port, RabbitUser, Registration, Service,
    Upgrade, UpgradeJob, User,
)
from stackyard.deploy.services.openvswitch import RUN_VOLUME, ovsdb_address

API_WSGI = "/usr/bin/nova-api-wsgi"
METADATA_WSGI = "/usr/bin/nova-metadata-wsgi"


def nova_conf(ctx: PlanContext) -> IniConf:
    v = ctx.variables
    addr = v["api_interface_address"]
    virt_type = v["nova_compute_virt_type"]
    service_user = common.keystone_authtoken
    return {
        "DEFAULT": common.default_section(
            ctx, "nova", my_ip=addr, state_path="/var/lib/nova", instances_path="/var/lib/nova/instances",
            compute_driver="libvirt.LibvirtDriver", host=v.get("inventory_hostname", "localhost"),
            allow_resize_to_same_host=True, initial_cpu_allocation_ratio="4.0",
            initial_ram_allocation_ratio="1.5"),
        "api": {"auth_strategy": "keystone"},
        "api_database": common.database_section(ctx, "nova_api", "nova_api_database_password", "nova_api"),
        "database": common.database_section(ctx, "nova", "nova_database_password", "nova"),
        "keystone_authtoken": common.authtoken_section(ctx, "nova", "nova_keystone_password"),
        "service_user": service_user(ctx, "nova", "nova_keystone_password", send_service_user_token=True),
        "placement": service_user(ctx, "nova", "nova_keystone_password", valid_interfaces="internal"),
        "neutron": service_user(ctx, "nova", "nova_keystone_password", valid_interfaces="internal",
                                service_metadata_proxy=True,
                                metadata_proxy_shared_secret=ctx.passwords["metadata_secret"]),
        "glance": {"valid_interfaces": "internal"},
        "os_vif_ovs": {"ovsdb_connection": ovsdb_address(ctx)},
        "cache": common.cache_section(ctx),
        "oslo_concurrency": {"lock_path": "/var/lib/nova/tmp"},
        "oslo_messaging_notifications": {"driver": "noop"},
        "libvirt": {"virt_type": virt_type, "connection_uri": "qemu:///system",
                    "cpu_mode": "none" if virt_type == "qemu" else None},
        "vnc": {"enabled": True, "server_listen": addr, "server_proxyclient_address": addr,
                "novncproxy_host": addr, "novncproxy_port": v["nova_novncproxy_port"],
                "novncproxy_base_url": f"http://{v['kolla_external_fqdn']}:{v['nova_novncproxy_port']}"
                                       "/vnc_lite.html"},
        # a TCP serial console whose log file lives in the shared instance dir:
        # nova-compute reads the console log from that file (a pty would be in
        # the libvirt container's /dev/pts, out of nova-compute's sight)
        "serial_console": {"enabled": True, "proxyclient_address": addr,
                           "base_url": f"ws://{v['kolla_external_fqdn']}:{v['nova_serialproxy_port']}/"},
        "scheduler": {"discover_hosts_in_cells_interval": 10, "workers": 1},
        "conductor": {"workers": 1},
        "wsgi": {"api_paste_config": "/etc/nova/api-paste.ini"},
        "upgrade_levels": {"compute": "auto"},
        **({"cinder": cinder_section(ctx)} if v.get("enable_cinder") else {}),
    }


def cinder_section(ctx: PlanContext) -> dict:
    """``[cinder]``: Nova finds Cinder in the catalog (its block-storage entry) and
    authenticates as the nova service user for attachments."""
    v = ctx.variables
    return {
        "catalog_info": "block-storage:cinder:internalURL",
        "os_region_name": v["openstack_region_name"],
        "auth_url": common.auth_url(ctx),
        "auth_type": "password",
        "project_domain_id": "default",
        "user_domain_id": "default",
        "project_name": "service",
        "username": "nova",
        "password": ctx.passwords["nova_keystone_password"],
    }


# ----------------------------------------------------------------------------- external Ceph
def cinder_rbd(v: dict) -> bool:
    """Cinder's volumes are RBD images (that Nova's libvirt attaches)."""
    return bool(v.get("enable_cinder") and v.get("cinder_backend_ceph"))


def uses_ceph(v: dict) -> bool:
    return bool(v["nova_backend_ceph"]) or cinder_rbd(v)


def compute_conf(ctx: PlanContext, conf: IniConf) -> IniConf:
    """nova-compute's nova.conf: the shared one, plus the RBD image backend."""
    v = ctx.variables
    if not v["nova_backend_ceph"]:
        return conf
    out = copy.deepcopy(conf)
    out["libvirt"].update({
        "images_type": "rbd",
        "images_rbd_pool": v["ceph_nova_pool_name"],
        "images_rbd_ceph_conf": common.ceph_conf_path(ctx),
        "rbd_user": v["ceph_nova_user"],
        "rbd_secret_uuid": ctx.passwords["rbd_secret_uuid"],
        "disk_cachemodes": "network=writeback",
        "hw_disk_discard": "unmap",
    })
    return out


@dataclass(frozen=True)
class LibvirtSecret:
    """A cephx key libvirt holds for QEMU (kolla-ansible's secret.xml.j2 and .base64)."""

    uuid: str
    usage: str
    key: str

    def xml(self) -> str:
        return (f"<secret ephemeral='no' private='no'>\n  <uuid>{self.uuid}</uuid>\n"
                f"  <usage type='ceph'>\n    <name>{self.usage}</name>\n  </usage>\n</secret>\n")


def ceph_sources(ctx: PlanContext, name: str) -> tuple[str, str]:
    """kolla-ansible's lookup for a file of config/nova/: the host's own copy first."""
    return (f"nova/{ctx.host}/{name}", f"nova/{name}")


def ceph_plan(ctx: PlanContext) -> tuple[list[dict], list[dict], list[LibvirtSecret]]:
    """ceph.conf, keyrings and libvirt secrets for nova-compute and nova-libvirt: their
    config.json entries (compute, libvirt) and the secrets."""
    v, cluster = ctx.variables, ctx.variables["ceph_cluster"]
    why = ("nova_backend_ceph is true" if v["nova_backend_ceph"]
           else "enable_cinder and cinder_backend_ceph are true (Nova attaches RBD volumes)")
    conf = common.ceph_conf_text(ctx, ceph_sources(ctx, common.ceph_conf_name(ctx)), (), why)
    compute_keys: list[tuple[str, str]] = []
    libvirt_keys: list[tuple[str, str]] = []
    secrets: list[LibvirtSecret] = []
    if v["nova_backend_ceph"]:
        name, text, key = common.ceph_keyring(ctx, ceph_sources(ctx, f"{cluster}.{v['ceph_nova_keyring']}"),
                                              v["ceph_nova_user"], f"nova_backend_ceph is true (nova-compute "
                                              f"connects as client.{v['ceph_nova_user']})")
        compute_keys.append((name, text))
        libvirt_keys.append((name, text))
        secrets.append(LibvirtSecret(ctx.passwords["rbd_secret_uuid"], "client.nova secret", key))
    if cinder_rbd(v):
        name, text, key = common.ceph_keyring(ctx, ceph_sources(ctx, f"{cluster}.{v['ceph_cinder_keyring']}"),
                                              v["ceph_cinder_user"], f"cinder_backend_ceph is true (Nova "
                                              f"attaches volumes as client.{v['ceph_cinder_user']})")
        compute_keys.append((name, text))
        secrets.append(LibvirtSecret(ctx.passwords["cinder_rbd_secret_uuid"], "client.cinder secret", key))
    compute = common.add_ceph_files(ctx, "nova-compute", "nova", conf, compute_keys)
    # QEMU (user qemu) reads ceph.conf; its keys come from the libvirt secrets
    libvirt = common.add_ceph_files(ctx, "nova-libvirt", "root:qemu", conf, libvirt_keys, conf_perm="0640")
    for secret in secrets:
        for suffix, text in (("xml", secret.xml()), ("base64", secret.key)):
            name = f"secrets/{secret.uuid}.{suffix}"
            ctx.add_file("nova-libvirt", name, text, secret=True)
            libvirt.append(cfile(name, f"/etc/libvirt/secrets/{secret.uuid}.{suffix}", "root", "0600"))
    return compute, libvirt, secrets


LIBVIRTD_CONF = """\
listen_tls = 0
listen_tcp = 0
unix_sock_group = "kolla"
unix_sock_ro_perms = "0770"
unix_sock_rw_perms = "0770"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:stderr"
"""

QEMU_CONF = """\
user = "qemu"
group = "qemu"
dynamic_ownership = 1
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
vnc_listen = "{addr}"
"""

#: config dir -> (command, image): one config dir per container (Kolla's layout)
COMMANDS = {
    "nova-api": ("uwsgi --ini /etc/nova/nova-api-uwsgi.ini", "nova-api"),
    "nova-metadata": ("uwsgi --ini /etc/nova/nova-metadata-uwsgi.ini", "nova-api"),
    "nova-scheduler": ("nova-scheduler", "nova-scheduler"),
    "nova-conductor": ("nova-conductor", "nova-conductor"),
    "nova-novncproxy": ("nova-novncproxy --web /usr/share/novnc", "nova-novncproxy"),
    "nova-compute": ("nova-compute", "nova-compute"),
}


def scheduler_conf(conf: dict) -> dict:
    """nova.conf for the scheduler: its periodic tasks (host discovery among them) start at
    once. oslo.service's random start delay (up to 60 s) spreads many computes' tasks; the
    few schedulers gain nothing from it, and a new compute host would wait for it to be
    discovered."""
    return {**conf, "DEFAULT": {**conf["DEFAULT"], "periodic_fuzzy_delay": 0}}


def plan(ctx: PlanContext) -> Phase:
    v = ctx.variables
    api_port, meta_port = int(v["nova_api_port"]), int(v["nova_metadata_port"])
    conf = nova_conf(ctx)
    owner = "nova"
    uwsgi = {"nova-api": (API_WSGI, api_port), "nova-metadata": (METADATA_WSGI, meta_port)}
    ceph_compute: list[dict] = []
    ceph_libvirt: list[dict] = []
    if uses_ceph(v):
        ceph_compute, ceph_libvirt, _secrets = ceph_plan(ctx)
    for svc, (command, _image) in COMMANDS.items():
        svc_conf = {"nova-compute": compute_conf(ctx, conf), "nova-scheduler": scheduler_conf(conf)}.get(svc, conf)
        ctx.add_ini(svc, "nova.conf", svc_conf, owner=owner)
        files = [cfile("nova.conf", "/etc/nova/nova.conf", owner, "0600")]
        if svc == "nova-compute":
            files += ceph_compute
        if svc in uwsgi:
            ini = f"{svc}-uwsgi.ini"
            ctx.add_file(svc, ini, render_ini(common.uwsgi_ini(ctx, *uwsgi[svc])), owner=owner)
            files.append(cfile(ini, f"/etc/nova/{ini}", owner, "0600"))
        ctx.add_config_json(svc, command, files, permissions=[
            {"path": "/var/lib/nova", "owner": "nova:nova", "recurse": True},
        ] if svc == "nova-compute" else [])
    addr = v["api_interface_address"]
    ctx.add_file("nova-libvirt", "libvirtd.conf", LIBVIRTD_CONF, mode=0o600)
    ctx.add_file("nova-libvirt", "qemu.conf", QEMU_CONF.format(addr=addr), mode=0o600)
    ctx.add_config_json("nova-libvirt", "libvirtd", [
        cfile("libvirtd.conf", "/etc/libvirt/libvirtd.conf", "root", "0600"),
        cfile("qemu.conf", "/etc/libvirt/qemu.conf", "root", "0600"),
        *ceph_libvirt,
    ])

    # cell1's mapping keeps the bus and database URLs it was made with: the
    # bootstrap re-runs (and updates the mapping) when they change
    urls = [common.transport_url(ctx, "nova"), common.db_url(ctx, "nova", "nova_database_password", "nova")]
    mapping = ctx.add_file("nova-api", "cell1-mapping", "\n".join(urls) + "\n", owner=owner, secret=True)
    boot = common.bootstrap_job(ctx, "nova", "nova-api", "nova-api", trigger_files=[mapping])
    boot.group = "nova-api"
    api = ctx.container("nova_api", "nova-api", "nova-api", healthcheck=common.http_check(ctx, api_port))
    meta = ctx.container("nova_metadata", "nova-api", "nova-metadata",
                         healthcheck=common.http_check(ctx, meta_port))
    sched = ctx.container("nova_scheduler", "nova-scheduler", "nova-scheduler")
    cond = ctx.container("nova_conductor", "nova-conductor", "nova-conductor")
    vnc = ctx.container("nova_novncproxy", "nova-novncproxy", "nova-novncproxy",
                        healthcheck=common.http_check(ctx, int(v["nova_novncproxy_port"]), "/vnc_lite.html"))
    shared = ["libvirt_run:/run/libvirt/", "nova_compute:/var/lib/nova/", RUN_VOLUME]
    devices = ["/dev/net/tun:/dev/net/tun:rwm"]
    if v["nova_compute_virt_type"] == "kvm":
        devices.append("/dev/kvm:/dev/kvm:rwm")  # hardware virtualisation for QEMU
    libvirt = ctx.container(
        "nova_libvirt", "nova-libvirt", "nova-libvirt",
        volumes=shared + ["libvirtd:/var/lib/libvirt/"],
        cap_add=["NET_ADMIN", "SYS_ADMIN"],
        healthcheck=["healthcheck_socket", "libvirtd", "/run/libvirt/libvirt-sock"],
        devices=devices,
    )
    compute = ctx.container(
        "nova_compute", "nova-compute", "nova-compute", volumes=shared,
        cap_add=["NET_ADMIN", "SYS_ADMIN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "SYS_PTRACE"],
    )
    return Phase("nova", [
        *ctx.database_steps(),
        # the scheduler and the conductor log in to Keystone as nova when they start (a
        # placement client): without the user they exit and the engine's restart back-off
        # delays them, so the user comes first, as kolla-ansible registers before deploying
        *ctx.registration_steps(),
        boot,
        Step(StepKind.CONTAINER, "nova_api", api, group="nova-api"),
        Step(StepKind.CONTAINER, "nova_metadata", meta, group="nova-metadata"),
        Step(StepKind.CONTAINER, "nova_scheduler", sched, group="nova-scheduler"),
        Step(StepKind.CONTAINER, "nova_conductor", cond, group="nova-conductor"),
        Step(StepKind.CONTAINER, "nova_novncproxy", vnc, group="nova-novncproxy"),
        Step(StepKind.CONTAINER, "nova_libvirt", libvirt, group="nova-libvirt"),
        Step(StepKind.WAIT, "nova_api", params={"timeout": 180}),
        Step(StepKind.WAIT, "nova_metadata", params={"timeout": 180}),
        Step(StepKind.WAIT, "nova_libvirt", params={"timeout": 120}),
        # nova-compute starts once the conductor consumes: its first call (a ping to
        # the conductor) sent before the conductor's queue exists is dropped and only
        # retried after rpc_response_timeout (60 s)
        Step(StepKind.WAIT, "nova_conductor", params={
            "timeout": 180, "ready": ["healthcheck_port", "nova-conductor", str(v["rabbitmq_port"])]},
            group="nova-conductor"),
        Step(StepKind.CONTAINER, "nova_compute", compute, group="nova-compute"),
        Step(StepKind.HYPERVISOR_WAIT, v.get("inventory_hostname", "localhost"), params={"timeout": 300},
             group="nova-compute", deferred=True),
    ])


SERVICE = Service(
    name="nova",
    summary="Nova (compute).",
    requires=("keystone", "mariadb", "rabbitmq", "placement", "glance"),
    after=("neutron",),
    groups=(
        Group("nova", ("control",)),
        Group("nova-api", ("nova",)),
        Group("nova-metadata", ("nova",)),
        Group("nova-scheduler", ("nova",)),
        Group("nova-conductor", ("nova",)),
        Group("nova-super-conductor", ("nova",)),
        Group("nova-novncproxy", ("nova",)),
        Group("nova-compute", ("compute",)),
        Group("nova-libvirt", ("compute",)),
        Group("nova-ssh", ("compute",)),
    ),
    placed_by=("nova-api", "nova-metadata", "nova-scheduler", "nova-conductor", "nova-novncproxy",
               "nova-libvirt", "nova-compute"),
    images=("nova-api", "nova-scheduler", "nova-conductor", "nova-novncproxy", "nova-compute", "nova-libvirt"),
    options=(
        Option("nova_api_port", int, 8774, "Nova API port."),
        Option("nova_metadata_port", int, 8775, "Nova metadata API port."),
        Option("nova_novncproxy_port", int, 6080, "Nova noVNC console proxy port."),
        Option("nova_serialproxy_port", int, 6083,
               "Port in the serial console URL (no nova-serialproxy is deployed yet)."),
        Option("nova_compute_virt_type", str, "kvm",
               "Hypervisor type for libvirt; use qemu where /dev/kvm is missing (nested VMs).",
               choices=("kvm", "qemu")),
        Option("nova_backend_ceph", bool, False,
               "Servers' disks in the external Ceph cluster's ceph_nova_pool_name pool ([libvirt] images_type = "
               "rbd)."),
        Option("ceph_nova_user", str, "{{ ceph_cinder_user }}", "Ceph user of nova-compute's RBD disks."),
        Option("ceph_nova_keyring", str, "{{ ceph_cinder_keyring }}",
               "Keyring file name of ceph_nova_user, after '<ceph_cluster>.'."),
        Option("ceph_nova_pool_name", str, "vms", "Ceph pool of the servers' disks."),
    ),
    passwords=(Password("nova_database_password"), Password("nova_api_database_password"),
               Password("nova_keystone_password"), Password("metadata_secret"),
               Password("libvirt_sasl_password"), Password("rbd_secret_uuid", PasswordKind.UUID)),
    databases=(
        Database("nova_api", "nova_api", "nova_api_database_password", group="nova-api"),
        Database("nova", "nova", "nova_database_password", group="nova-api"),
        Database("nova_cell0", "nova", "nova_database_password", group="nova-api"),
    ),
    rabbitmq=RabbitUser("nova"),
    registrations=(Registration("nova", "compute", "nova_api_port", "/v2.1", description="OpenStack Compute",
                                user="nova", password_key="nova_keystone_password", roles=("admin", "service"),
                                group="nova-api"),),
    frontends=(
        Frontend("nova_api", "nova-api", "nova_api_port", check_path="/"),
        Frontend("nova_metadata", "nova-metadata", "nova_metadata_port"),
        Frontend("nova_novncproxy", "nova-novncproxy", "nova_novncproxy_port"),
    ),
    users=(User("nova", 42436, "/var/lib/nova"), User("qemu", 42427, "/var/lib/qemu")),
    ports=(Port("nova_api_port", "nova_api"), Port("nova_metadata_port", "nova_metadata"),
           Port("nova_novncproxy_port", "nova_novncproxy")),
    project="nova",
    overrides=OSLO_OVERRIDES,
    # nova's docs: the databases first (additive), compute RPC pinned (upgrade_levels auto),
    # conductor, scheduler and the APIs before the computes, online migrations last
    upgrade=Upgrade(
        jobs=(UpgradeJob("db", "nova_api", "db"), UpgradeJob("online", "nova_api", "online", when="after")),
        order=("nova_conductor", "nova_scheduler", "nova_api", "nova_metadata", "nova_novncproxy",
               "nova_libvirt", "nova_compute"),
        replaces=("bootstrap_nova",)),
    data_plane=("nova_libvirt",),
    plan=plan,
)
