"""Nova: API and metadata API (uWSGI), scheduler, conductor, noVNC proxy, and a
compute node made of nova-compute plus libvirtd/QEMU in their own container.

Cell setup (api_db sync, cell0 mapping, cell1, db sync) is the nova-api image's
KOLLA_BOOTSTRAP hook. New compute hosts are discovered by the scheduler itself
(``discover_hosts_in_cells_interval``), so no operator step is needed; the
deploy waits until the hypervisor is registered.
"""

from __future__ import annotations

from stackyard.deploy.context import PlanContext, cfile
from stackyard.deploy.model import Phase, Step
from stackyard.deploy.services import common
from stackyard.deploy.services.openvswitch import RUN_VOLUME, ovsdb_address

API_WSGI = "/usr/bin/nova-api-wsgi"
METADATA_WSGI = "/usr/bin/nova-metadata-wsgi"


def nova_conf(ctx: PlanContext) -> str:
    v = ctx.variables
    addr = v["api_interface_address"]
    virt_type = v.get("nova_compute_virt_type", "kvm")
    return (
        common.default_section(ctx, "nova", extra=(
            f"my_ip = {addr}\n"
            "state_path = /var/lib/nova\n"
            "instances_path = /var/lib/nova/instances\n"
            "compute_driver = libvirt.LibvirtDriver\n"
            f"host = {v.get('inventory_hostname', 'localhost')}\n"
            "allow_resize_to_same_host = true\n"
            "initial_cpu_allocation_ratio = 4.0\n"
            "initial_ram_allocation_ratio = 1.5\n"
        ))
        + "\n[api]\nauth_strategy = keystone\n"
        + common.database_section(ctx, "nova_api", "nova_api_database_password", "nova_api", "api_database")
        + common.database_section(ctx, "nova", "nova_database_password", "nova")
        + common.authtoken_section(ctx, "nova", "nova_keystone_password")
        + "\n" + common.keystone_authtoken(ctx, "nova", "nova_keystone_password", section="service_user")
        + "send_service_user_token = true\n"
        + "\n" + common.keystone_authtoken(ctx, "nova", "nova_keystone_password", section="placement")
        + "valid_interfaces = internal\n"
        + "\n" + common.keystone_authtoken(ctx, "nova", "nova_keystone_password", section="neutron")
        + "valid_interfaces = internal\nservice_metadata_proxy = true\n"
        + f"metadata_proxy_shared_secret = {ctx.passwords['metadata_secret']}\n"
        + "\n[glance]\nvalid_interfaces = internal\n"
        + f"\n[os_vif_ovs]\novsdb_connection = {ovsdb_address(ctx)}\n"
        + "\n" + common.cache_section(ctx)
        + "\n[oslo_concurrency]\nlock_path = /var/lib/nova/tmp\n"
        + "\n[oslo_messaging_notifications]\ndriver = noop\n"
        + f"\n[libvirt]\nvirt_type = {virt_type}\nconnection_uri = qemu:///system\n"
        + ("cpu_mode = none\n" if virt_type == "qemu" else "")
        + "\n[vnc]\nenabled = true\n"
        f"server_listen = {addr}\nserver_proxyclient_address = {addr}\n"
        f"novncproxy_host = {addr}\nnovncproxy_port = {v['nova_novncproxy_port']}\n"
        f"novncproxy_base_url = http://{v['kolla_external_fqdn']}:{v['nova_novncproxy_port']}/vnc_lite.html\n"
        # a TCP serial console whose log file lives in the shared instance dir:
        # nova-compute reads the console log from that file (a pty would be in
        # the libvirt container's /dev/pts, out of nova-compute's sight)
        + f"\n[serial_console]\nenabled = true\nproxyclient_address = {addr}\n"
        f"base_url = ws://{v['kolla_external_fqdn']}:{v.get('nova_serialproxy_port', 6083)}/\n"
        + "\n[scheduler]\ndiscover_hosts_in_cells_interval = 10\nworkers = 1\n"
        + "\n[conductor]\nworkers = 1\n"
        + "\n[wsgi]\napi_paste_config = /etc/nova/api-paste.ini\n"
        + "\n[upgrade_levels]\ncompute = auto\n"
    )


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


def plan(ctx: PlanContext) -> Phase:
    v = ctx.variables
    api_port, meta_port = int(v["nova_api_port"]), int(v["nova_metadata_port"])
    conf = nova_conf(ctx)
    owner = "nova"
    steps: list[Step] = [
        common.database_step("nova_api", "nova_api", "nova_api", "nova_api_database_password"),
        common.database_step("nova", "nova", "nova", "nova_database_password"),
        common.database_step("nova_cell0", "nova_cell0", "nova", "nova_database_password"),
    ]
    for step in steps:
        step.group = "nova-api"
    # one config dir per container, each with its own config.json (Kolla's layout)
    commands = {
        "nova-api": ("uwsgi --ini /etc/nova/nova-api-uwsgi.ini", "nova-api"),
        "nova-metadata": ("uwsgi --ini /etc/nova/nova-metadata-uwsgi.ini", "nova-api"),
        "nova-scheduler": ("nova-scheduler", "nova-scheduler"),
        "nova-conductor": ("nova-conductor", "nova-conductor"),
        "nova-novncproxy": ("nova-novncproxy --web /usr/share/novnc", "nova-novncproxy"),
        "nova-compute": ("nova-compute", "nova-compute"),
    }
    for svc, (command, _image) in commands.items():
        ctx.add_ini(svc, "nova.conf", "nova", conf, owner=owner, override_service=svc)
        files = [cfile("nova.conf", "/etc/nova/nova.conf", owner, "0600")]
        if svc == "nova-api":
            ctx.add_file(svc, "nova-api-uwsgi.ini", common.uwsgi_ini(ctx, API_WSGI, api_port), owner=owner)
            files.append(cfile("nova-api-uwsgi.ini", "/etc/nova/nova-api-uwsgi.ini", owner, "0600"))
        if svc == "nova-metadata":
            ctx.add_file(svc, "nova-metadata-uwsgi.ini", common.uwsgi_ini(ctx, METADATA_WSGI, meta_port),
                         owner=owner)
            files.append(cfile("nova-metadata-uwsgi.ini", "/etc/nova/nova-metadata-uwsgi.ini", owner, "0600"))
        ctx.add_config_json(svc, command, files, permissions=[
            {"path": "/var/lib/nova", "owner": "nova:nova", "recurse": svc == "nova-compute"},
        ] if svc == "nova-compute" else [])
    addr = v["api_interface_address"]
    ctx.add_file("nova-libvirt", "libvirtd.conf", LIBVIRTD_CONF, mode=0o600)
    ctx.add_file("nova-libvirt", "qemu.conf", QEMU_CONF.format(addr=addr), mode=0o600)
    ctx.add_config_json("nova-libvirt", "libvirtd", [
        cfile("libvirtd.conf", "/etc/libvirt/libvirtd.conf", "root", "0600"),
        cfile("qemu.conf", "/etc/libvirt/qemu.conf", "root", "0600"),
    ])

    # cell1's mapping keeps the bus and database URLs it was made with: the
    # bootstrap re-runs (and updates the mapping) when they change
    urls = [common.transport_url(ctx, "nova"), common.db_url(ctx, "nova", "nova_database_password", "nova")]
    mapping = ctx.add_file("nova-api", "cell1-mapping", "\n".join(urls) + "\n", owner=owner, secret=True)
    boot = ctx.container("bootstrap_nova", "nova-api", "nova-api", environment={"KOLLA_BOOTSTRAP": "1"},
                         restart_policy="no", trigger_files=[mapping])
    api = ctx.container("nova_api", "nova-api", "nova-api", healthcheck=common.http_check(ctx, api_port))
    meta = ctx.container("nova_metadata", "nova-api", "nova-metadata",
                         healthcheck=common.http_check(ctx, meta_port))
    sched = ctx.container("nova_scheduler", "nova-scheduler", "nova-scheduler")
    cond = ctx.container("nova_conductor", "nova-conductor", "nova-conductor")
    vnc = ctx.container("nova_novncproxy", "nova-novncproxy", "nova-novncproxy",
                        healthcheck=common.http_check(ctx, int(v["nova_novncproxy_port"]), "/vnc_lite.html"))
    shared = ["libvirt_run:/run/libvirt/", "nova_compute:/var/lib/nova/", RUN_VOLUME]
    libvirt = ctx.container(
        "nova_libvirt", "nova-libvirt", "nova-libvirt",
        volumes=shared + ["libvirtd:/var/lib/libvirt/"],
        cap_add=["NET_ADMIN", "SYS_ADMIN"],
        healthcheck=["healthcheck_socket", "libvirtd", "/run/libvirt/libvirt-sock"],
        devices=["/dev/net/tun:/dev/net/tun:rwm"],
    )
    compute = ctx.container(
        "nova_compute", "nova-compute", "nova-compute", volumes=shared,
        cap_add=["NET_ADMIN", "SYS_ADMIN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "SYS_PTRACE"],
    )
    register = common.register_step(ctx, "nova", "compute", api_port, "/v2.1", user="nova",
                                    password_key="nova_keystone_password", description="OpenStack Compute",
                                    roles=["admin", "service"])
    register.group = "nova-api"
    steps += [
        Step("job", "bootstrap_nova", boot, group="nova-api"),
        Step("container", "nova_api", api, group="nova-api"),
        Step("container", "nova_metadata", meta, group="nova-metadata"),
        Step("container", "nova_scheduler", sched, group="nova-scheduler"),
        Step("container", "nova_conductor", cond, group="nova-conductor"),
        Step("container", "nova_novncproxy", vnc, group="nova-novncproxy"),
        Step("container", "nova_libvirt", libvirt, group="nova-libvirt"),
        Step("container", "nova_compute", compute, group="nova-compute"),
        Step("wait", "nova_api", params={"timeout": 180}),
        Step("wait", "nova_metadata", params={"timeout": 180}),
        Step("wait", "nova_libvirt", params={"timeout": 120}),
        register,
        Step("hypervisor_wait", v.get("inventory_hostname", "localhost"), params={"timeout": 300},
             group="nova-compute"),
    ]
    return Phase("nova", steps)
