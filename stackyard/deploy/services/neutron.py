"""Neutron: ML2 server with flat (provider) and VXLAN (tenant) networks, the
Open vSwitch agent on the userspace datapath (Neutron 2025.1 has no Linux
bridge agent any more), DHCP (dnsmasq in namespaces), L3 (routers in
namespaces) and the metadata agent.

The agents' network namespaces live under /run/netns, bind-mounted with shared
propagation so every agent container and the host (``ip netns``) see the same
qdhcp-*/qrouter-* namespaces; they are host resources of this service, removed
by destroy. The "public" provider network is br-ex with one end of a veth pair
made by the deploy, attached to nothing: no route off the machine.
"""

from __future__ import annotations

from stackyard.agent.model import Phase, ResourceKind, Step, StepKind
from stackyard.deploy.context import PlanContext, cfile
from stackyard import releases
from stackyard.deploy.merge import IniConf, render_ini
from stackyard.deploy.options import Option
from stackyard.deploy.services import common
from stackyard.deploy.services.base import (
    OSLO_OVERRIDES, Database, Frontend, Group, Password, Port, RabbitUser, Registration, Service, Upgrade,
    UpgradeJob, User,
)
from stackyard.deploy.services.openvswitch import RUN_VOLUME, ovsdb_address

ROOT_HELPER = "sudo neutron-rootwrap /etc/neutron/rootwrap.conf"
AGENT_CAPS = ["NET_ADMIN", "SYS_ADMIN", "NET_RAW", "DAC_OVERRIDE", "DAC_READ_SEARCH", "SYS_PTRACE"]
#: namespaces the L3 and DHCP agents make (routers, DHCP servers, DVR)
NETNS_PREFIXES = ["qdhcp-", "qrouter-", "snat-", "fip-"]


def netns_dir(ctx: PlanContext) -> str:
    """Where the agents' namespaces live on the host: /run/netns (what ``ip netns``
    lists), or a directory of the deployment's own when it has a name prefix."""
    return f"/run/netns-{ctx.prefix}" if ctx.prefix else "/run/netns"


def neutron_conf(ctx: PlanContext) -> IniConf:
    v = ctx.variables
    return {
        "DEFAULT": common.default_section(
            ctx, "neutron", core_plugin="ml2", service_plugins="router", bind_host=v["api_interface_address"],
            bind_port=v["neutron_server_port"], auth_strategy="keystone", state_path="/var/lib/neutron",
            host=v.get("inventory_hostname", "localhost"), allow_overlapping_ips=True,
            notify_nova_on_port_status_changes=True, notify_nova_on_port_data_changes=True,
            dhcp_agents_per_network=1, api_workers=1, rpc_workers=1, rpc_state_report_workers=1,
            global_physnet_mtu=1500),
        "database": common.database_section(ctx, "neutron", "neutron_database_password", "neutron"),
        "keystone_authtoken": common.authtoken_section(ctx, "neutron", "neutron_keystone_password"),
        "nova": common.keystone_authtoken(ctx, "nova", "nova_keystone_password", endpoint_type="internal"),
        "placement": common.keystone_authtoken(ctx, "placement", "placement_keystone_password"),
        "oslo_concurrency": {"lock_path": "/var/lib/neutron/tmp"},
        "agent": {"root_helper": ROOT_HELPER,
                  "root_helper_daemon": "sudo neutron-rootwrap-daemon /etc/neutron/rootwrap.conf"},
        "ovs": {"ovsdb_connection": ovsdb_address(ctx)},
        "oslo_messaging_notifications": {"driver": "noop"},
    }


def ml2_conf(ctx: PlanContext) -> IniConf:
    return {
        "ml2": {"type_drivers": "flat,vxlan", "tenant_network_types": "vxlan",
                "mechanism_drivers": "openvswitch", "extension_drivers": "port_security"},
        "ml2_type_flat": {"flat_networks": ctx.variables["neutron_physical_network"]},
        "ml2_type_vxlan": {"vni_ranges": "1:1000"},
    }


def openvswitch_agent_conf(ctx: PlanContext) -> IniConf:
    v = ctx.variables
    addr = v["api_interface_address"]
    return {
        "ovs": {"bridge_mappings": f"{v['neutron_physical_network']}:br-ex", "datapath_type": "netdev",
                "local_ip": v.get("tunnel_interface_address", addr), "of_listen_address": addr,
                "of_listen_port": v["neutron_of_listen_port"], "ovsdb_connection": ovsdb_address(ctx)},
        "agent": {"tunnel_types": "vxlan", "l2_population": False},
        "securitygroup": {"enable_security_group": True, "firewall_driver": "openvswitch"},
    }


def agent_files(ctx: PlanContext) -> dict[str, tuple[str, str, IniConf, bool]]:
    """config dir -> (file, destination, content, secret) of each container's own .ini."""
    v = ctx.variables
    return {
        "neutron-server": ("ml2_conf.ini", "/etc/neutron/plugins/ml2/ml2_conf.ini", ml2_conf(ctx), False),
        "neutron-openvswitch-agent": ("openvswitch_agent.ini", "/etc/neutron/plugins/ml2/openvswitch_agent.ini",
                                      openvswitch_agent_conf(ctx), False),
        "neutron-dhcp-agent": ("dhcp_agent.ini", "/etc/neutron/dhcp_agent.ini", {"DEFAULT": {
            "interface_driver": "openvswitch", "dhcp_driver": "neutron.agent.linux.dhcp.Dnsmasq",
            "enable_isolated_metadata": True, "force_metadata": False}}, False),
        "neutron-l3-agent": ("l3_agent.ini", "/etc/neutron/l3_agent.ini", {"DEFAULT": {
            "interface_driver": "openvswitch", "agent_mode": "legacy"}}, False),
        "neutron-metadata-agent": ("metadata_agent.ini", "/etc/neutron/metadata_agent.ini", {"DEFAULT": {
            "nova_metadata_host": v["kolla_internal_fqdn"], "nova_metadata_port": v["nova_metadata_port"],
            "metadata_proxy_shared_secret": ctx.passwords["metadata_secret"], "metadata_workers": 1}}, True),
    }


#: the server's processes from 2025.2 on, when the API runs only under uWSGI:
#: config dir -> command (each reads neutron.conf and ml2_conf.ini)
SPLIT_SERVER = {
    "neutron-rpc-server": "neutron-rpc-server",
    "neutron-periodic-workers": "neutron-periodic-workers",
}
API_WSGI = "/usr/bin/neutron-api"


def api_under_uwsgi(ctx: PlanContext) -> bool:
    """Neutron 2025.2 dropped the eventlet server: the API is a WSGI app (uWSGI here) and
    RPC and periodic tasks run in processes of their own (as kolla-ansible deploys it)."""
    return releases.at_least(ctx.variables["openstack_release"], "2025.2")


def plan(ctx: PlanContext) -> Phase:
    v = ctx.variables
    port = int(v["neutron_server_port"])
    owner = "neutron"
    conf = neutron_conf(ctx)
    split = api_under_uwsgi(ctx)
    files = agent_files(ctx)
    if split:
        files.update({svc: files["neutron-server"] for svc in SPLIT_SERVER})
    for svc, (name, dest, text, secret) in files.items():
        ctx.add_ini(svc, "neutron.conf", conf, owner=owner)
        # an agent's own file takes config/neutron/<file> (kolla-ansible's name), not
        # global.conf or neutron.conf, which are for neutron.conf
        ctx.add_ini(svc, name, text, owner=owner, secret=secret,
                    overrides=(f"neutron/{name}", f"neutron/{{host}}/{name}"))
        config_files = [cfile("neutron.conf", "/etc/neutron/neutron.conf", owner, "0600"),
                        cfile(name, dest, owner, "0600")]
        command = f"{SPLIT_SERVER.get(svc, svc)} --config-file /etc/neutron/neutron.conf --config-file {dest}"
        if split and svc == "neutron-server":
            # neutron.wsgi.api reads /etc/neutron/neutron.conf and plugins/ml2/ml2_conf.ini
            uwsgi = common.uwsgi_ini(ctx, API_WSGI, port, processes=1)
            ctx.add_file(svc, "neutron-api-uwsgi.ini", render_ini(uwsgi), owner=owner)
            config_files.append(cfile("neutron-api-uwsgi.ini", "/etc/neutron/neutron-api-uwsgi.ini", owner, "0600"))
            command = "uwsgi --ini /etc/neutron/neutron-api-uwsgi.ini"
        ctx.add_config_json(svc, command, config_files,
                            permissions=[{"path": "/var/lib/neutron", "owner": "neutron:neutron", "recurse": True}])
    netns = netns_dir(ctx)
    ctx.resource(ResourceKind.SHARED_MOUNT, path=netns)
    ctx.resource(ResourceKind.NETNS, path=netns, prefixes=NETNS_PREFIXES)
    netns_mount = f"{netns}:/run/netns:shared"
    server = ctx.container("neutron_server", "neutron-server", "neutron-server",
                           healthcheck=common.http_check(ctx, port))
    state = ["neutron_state:/var/lib/neutron/", netns_mount, RUN_VOLUME]
    ovs = ctx.container("neutron_openvswitch_agent", "neutron-openvswitch-agent", "neutron-openvswitch-agent",
                        volumes=[netns_mount, RUN_VOLUME], cap_add=AGENT_CAPS)
    # sysctls inside qrouter-/qdhcp- namespaces need a writable /proc/sys
    dhcp = ctx.container("neutron_dhcp_agent", "neutron-dhcp-agent", "neutron-dhcp-agent",
                         volumes=state, cap_add=AGENT_CAPS, writable_proc_sys=True)
    l3 = ctx.container("neutron_l3_agent", "neutron-l3-agent", "neutron-l3-agent",
                       volumes=state, cap_add=AGENT_CAPS, writable_proc_sys=True)
    meta = ctx.container("neutron_metadata_agent", "neutron-metadata-agent", "neutron-metadata-agent",
                         volumes=state, cap_add=AGENT_CAPS)
    boot = common.bootstrap_job(ctx, "neutron", "neutron-server", "neutron-server")
    boot.group = "neutron-server"
    split_steps = [Step(StepKind.CONTAINER, svc.replace("-", "_"),
                        ctx.container(svc.replace("-", "_"), "neutron-server", svc), group="neutron-server")
                   for svc in (SPLIT_SERVER if split else {})]
    # The agents start once the server's RPC workers hold their RabbitMQ connection: an
    # agent's first call (the L3 agent's HA router count) sent before the server's queues
    # exist is dropped and only retried after rpc_response_timeout (60 s).
    rpc = ["healthcheck_port", "neutron-rpc-server" if split else "neutron-server", str(v["rabbitmq_port"])]
    rpc_waits = ([Step(StepKind.WAIT, "neutron_rpc_server", params={"timeout": 180, "ready": rpc},
                       group="neutron-server")] if split else [])
    return Phase("neutron", [
        ctx.host_step(),
        *ctx.database_steps(),
        boot,
        Step(StepKind.CONTAINER, "neutron_server", server, group="neutron-server"),
        *split_steps,
        Step(StepKind.WAIT, "neutron_server", params={"timeout": 180, **({} if split else {"ready": rpc})}),
        *rpc_waits,
        Step(StepKind.CONTAINER, "neutron_openvswitch_agent", ovs, group="neutron-openvswitch-agent"),
        Step(StepKind.CONTAINER, "neutron_dhcp_agent", dhcp, group="neutron-dhcp-agent"),
        Step(StepKind.CONTAINER, "neutron_l3_agent", l3, group="neutron-l3-agent"),
        Step(StepKind.CONTAINER, "neutron_metadata_agent", meta, group="neutron-metadata-agent"),
        *ctx.registration_steps(),
        Step(StepKind.AGENTS_WAIT, "neutron", params={"timeout": 180, "agents": [
            "Open vSwitch agent", "DHCP agent", "L3 agent", "Metadata agent"]}, group="neutron-server",
            deferred=True),
    ])


SERVICE = Service(
    name="neutron",
    summary="Neutron (networking).",
    requires=("keystone", "mariadb", "rabbitmq", "openvswitch"),
    groups=(
        Group("neutron", ("network",)),
        Group("neutron-server", ("control",)),
        Group("neutron-dhcp-agent", ("neutron",)),
        Group("neutron-l3-agent", ("neutron",)),
        Group("neutron-metadata-agent", ("neutron",)),
        Group("neutron-openvswitch-agent", ("network", "compute")),
    ),
    placed_by=("neutron-server", "neutron-dhcp-agent", "neutron-l3-agent", "neutron-metadata-agent",
               "neutron-openvswitch-agent"),
    images=("neutron-server", "neutron-openvswitch-agent", "neutron-dhcp-agent", "neutron-l3-agent",
            "neutron-metadata-agent"),
    options=(
        Option("neutron_server_port", int, 9696, "Neutron API port."),
        Option("neutron_plugin_agent", str, "openvswitch", "Neutron L2 agent (2025.1 has no Linux bridge agent).",
               choices=("openvswitch",)),
        Option("neutron_physical_network", str, "physnet1", "Name of the provider network mapped to br-ex."),
        Option("neutron_of_listen_port", int, 6633, "OpenFlow port of the Open vSwitch agent's controller."),
        # the day-1 resources (`stackyard init-runonce`, run by `stackyard up`): kolla-ansible's
        # init-runonce takes these as EXT_NET_CIDR, EXT_NET_GATEWAY, EXT_NET_RANGE, DEMO_NET_CIDR
        Option("stackyard_public_cidr", str, "172.24.4.0/24",
               "Subnet of the flat public network public1 (floating IPs) that init-runonce creates "
               "on neutron_physical_network."),
        Option("stackyard_public_gateway", str, "",
               "Gateway of public1; empty: the subnet's first address."),
        Option("stackyard_public_range", str, "",
               "Floating IP pool of public1 as FIRST-LAST; empty: the upper half of the subnet "
               "(the lower half when the gateway is in the upper one)."),
        Option("stackyard_public_on_host", bool, True,
               "When neutron_external_interface is empty, give the host's end of br-ex's veth the "
               "public gateway address, so the network host (the all-in-one's only host) reaches the "
               "floating IPs; nothing arriving there is forwarded off the machine."),
        Option("stackyard_demo_cidr", str, "10.0.0.0/24",
               "Subnet of the demo project network demo-net that init-runonce creates."),
        Option("stackyard_demo_dns", str, "",
               "DNS server given to demo-net's guests; empty: none."),
    ),
    passwords=(Password("neutron_database_password"), Password("neutron_keystone_password"),
               Password("metadata_secret")),
    databases=(Database("neutron", "neutron", "neutron_database_password", group="neutron-server"),),
    rabbitmq=RabbitUser("neutron"),
    registrations=(Registration("neutron", "network", "neutron_server_port", description="OpenStack Networking",
                                user="neutron", password_key="neutron_keystone_password",
                                roles=("admin", "service"), group="neutron-server"),),
    frontends=(Frontend("neutron_server", "neutron-server", "neutron_server_port", check_path="/"),),
    users=(User("neutron", 42435, "/var/lib/neutron"),),
    ports=(Port("neutron_server_port", "neutron_server"),),
    project="neutron",
    overrides=OSLO_OVERRIDES,
    # neutron's docs: expand while the old servers run, servers then agents, contract
    # once every server runs the new release
    upgrade=Upgrade(
        jobs=(UpgradeJob("expand", "neutron_server", "expand"),
              UpgradeJob("contract", "neutron_server", "contract", when="after")),
        order=("neutron_server", "neutron_rpc_server", "neutron_periodic_workers"),
        replaces=("bootstrap_neutron",)),
    plan=plan,
)
