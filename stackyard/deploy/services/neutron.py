"""Neutron: ML2 server with flat (provider) and VXLAN (tenant) networks, the
Open vSwitch agent on the userspace datapath (Neutron 2025.1 has no Linux
bridge agent any more), DHCP (dnsmasq in namespaces), L3 (routers in
namespaces) and the metadata agent.

The agents' network namespaces live under /run/netns, bind-mounted with shared
propagation so every agent container and the host (``ip netns``) see the same
qdhcp-*/qrouter-* namespaces. The "public" provider network is br-ex with one
end of a veth pair made by the deploy, attached to nothing: no route off the
machine.
"""

from __future__ import annotations

from stackyard.deploy.context import PlanContext, cfile
from stackyard.deploy.model import Phase, Step
from stackyard.deploy.services import common
from stackyard.deploy.services.openvswitch import RUN_VOLUME, ovsdb_address

ROOT_HELPER = "sudo neutron-rootwrap /etc/neutron/rootwrap.conf"
NETNS_MOUNT = "/run/netns:/run/netns:shared"
AGENT_CAPS = ["NET_ADMIN", "SYS_ADMIN", "NET_RAW", "DAC_OVERRIDE", "DAC_READ_SEARCH", "SYS_PTRACE"]


def neutron_conf(ctx: PlanContext) -> str:
    v = ctx.variables
    return (
        common.default_section(ctx, "neutron", extra=(
            "core_plugin = ml2\n"
            "service_plugins = router\n"
            f"bind_host = {v['api_interface_address']}\n"
            f"bind_port = {v['neutron_server_port']}\n"
            "auth_strategy = keystone\n"
            "state_path = /var/lib/neutron\n"
            f"host = {v.get('inventory_hostname', 'localhost')}\n"
            "allow_overlapping_ips = true\n"
            "notify_nova_on_port_status_changes = true\n"
            "notify_nova_on_port_data_changes = true\n"
            "dhcp_agents_per_network = 1\n"
            "api_workers = 1\n"
            "rpc_workers = 1\n"
            "rpc_state_report_workers = 1\n"
            "global_physnet_mtu = 1500\n"
        ))
        + common.database_section(ctx, "neutron", "neutron_database_password", "neutron")
        + common.authtoken_section(ctx, "neutron", "neutron_keystone_password")
        + "\n" + common.keystone_authtoken(ctx, "nova", "nova_keystone_password", section="nova")
        + "endpoint_type = internal\n"
        + "\n" + common.keystone_authtoken(ctx, "placement", "placement_keystone_password", section="placement")
        + "\n[oslo_concurrency]\nlock_path = /var/lib/neutron/tmp\n"
        + f"\n[agent]\nroot_helper = {ROOT_HELPER}\nroot_helper_daemon = sudo neutron-rootwrap-daemon /etc/neutron/rootwrap.conf\n"
        + f"\n[ovs]\novsdb_connection = {ovsdb_address(ctx)}\n"
        + "\n[oslo_messaging_notifications]\ndriver = noop\n"
    )


def ml2_conf(ctx: PlanContext) -> str:
    v = ctx.variables
    return (
        "[ml2]\ntype_drivers = flat,vxlan\ntenant_network_types = vxlan\n"
        "mechanism_drivers = openvswitch\nextension_drivers = port_security\n"
        f"\n[ml2_type_flat]\nflat_networks = {v.get('neutron_physical_network', 'physnet1')}\n"
        "\n[ml2_type_vxlan]\nvni_ranges = 1:1000\n"
    )


def openvswitch_agent_conf(ctx: PlanContext) -> str:
    v = ctx.variables
    addr = v["api_interface_address"]
    return (
        f"[ovs]\nbridge_mappings = {v.get('neutron_physical_network', 'physnet1')}:br-ex\n"
        "datapath_type = netdev\n"
        f"local_ip = {v.get('tunnel_interface_address', addr)}\n"
        f"of_listen_address = {addr}\nof_listen_port = {v.get('neutron_of_listen_port', 6633)}\n"
        f"ovsdb_connection = {ovsdb_address(ctx)}\n"
        "\n[agent]\ntunnel_types = vxlan\nl2_population = false\n"
        "\n[securitygroup]\nenable_security_group = true\nfirewall_driver = openvswitch\n"
    )


def plan(ctx: PlanContext) -> Phase:
    v = ctx.variables
    port = int(v["neutron_server_port"])
    conf = neutron_conf(ctx)
    owner = "neutron"
    agents = {
        "neutron-server": ("neutron-server --config-file /etc/neutron/neutron.conf "
                           "--config-file /etc/neutron/plugins/ml2/ml2_conf.ini", "ml2_conf.ini",
                           "/etc/neutron/plugins/ml2/ml2_conf.ini", ml2_conf(ctx)),
        "neutron-openvswitch-agent": ("neutron-openvswitch-agent --config-file /etc/neutron/neutron.conf "
                                      "--config-file /etc/neutron/plugins/ml2/openvswitch_agent.ini",
                                      "openvswitch_agent.ini", "/etc/neutron/plugins/ml2/openvswitch_agent.ini",
                                      openvswitch_agent_conf(ctx)),
        "neutron-dhcp-agent": ("neutron-dhcp-agent --config-file /etc/neutron/neutron.conf "
                               "--config-file /etc/neutron/dhcp_agent.ini", "dhcp_agent.ini",
                               "/etc/neutron/dhcp_agent.ini",
                               "[DEFAULT]\ninterface_driver = openvswitch\n"
                               "dhcp_driver = neutron.agent.linux.dhcp.Dnsmasq\n"
                               "enable_isolated_metadata = true\nforce_metadata = false\n"),
        "neutron-l3-agent": ("neutron-l3-agent --config-file /etc/neutron/neutron.conf "
                             "--config-file /etc/neutron/l3_agent.ini", "l3_agent.ini", "/etc/neutron/l3_agent.ini",
                             "[DEFAULT]\ninterface_driver = openvswitch\nagent_mode = legacy\n"),
        "neutron-metadata-agent": ("neutron-metadata-agent --config-file /etc/neutron/neutron.conf "
                                   "--config-file /etc/neutron/metadata_agent.ini", "metadata_agent.ini",
                                   "/etc/neutron/metadata_agent.ini",
                                   f"[DEFAULT]\nnova_metadata_host = {v['kolla_internal_fqdn']}\n"
                                   f"nova_metadata_port = {v['nova_metadata_port']}\n"
                                   f"metadata_proxy_shared_secret = {ctx.passwords['metadata_secret']}\n"
                                   "metadata_workers = 1\n"),
    }
    for svc, (command, name, dest, text) in agents.items():
        ctx.add_ini(svc, "neutron.conf", "neutron", conf, owner=owner, override_service=svc)
        ctx.add_ini(svc, name, "neutron", text, owner=owner, override_service=name.rsplit(".", 1)[0],
                    secret=svc == "neutron-metadata-agent")
        files = [cfile("neutron.conf", "/etc/neutron/neutron.conf", owner, "0600"),
                 cfile(name, dest, owner, "0600")]
        ctx.add_config_json(svc, command, files, permissions=[
            {"path": "/var/lib/neutron", "owner": "neutron:neutron", "recurse": True},
        ])
    boot = ctx.container("bootstrap_neutron", "neutron-server", "neutron-server",
                         environment={"KOLLA_BOOTSTRAP": "1"}, restart_policy="no", trigger_files=[])
    server = ctx.container("neutron_server", "neutron-server", "neutron-server",
                           healthcheck=common.http_check(ctx, port))
    state = ["neutron_state:/var/lib/neutron/", NETNS_MOUNT, RUN_VOLUME]
    ovs = ctx.container("neutron_openvswitch_agent", "neutron-openvswitch-agent", "neutron-openvswitch-agent",
                        volumes=[NETNS_MOUNT, RUN_VOLUME], cap_add=AGENT_CAPS)
    # sysctls inside qrouter-/qdhcp- namespaces need a writable /proc/sys
    dhcp = ctx.container("neutron_dhcp_agent", "neutron-dhcp-agent", "neutron-dhcp-agent",
                         volumes=state, cap_add=AGENT_CAPS, writable_proc_sys=True)
    l3 = ctx.container("neutron_l3_agent", "neutron-l3-agent", "neutron-l3-agent",
                       volumes=state, cap_add=AGENT_CAPS, writable_proc_sys=True)
    meta = ctx.container("neutron_metadata_agent", "neutron-metadata-agent", "neutron-metadata-agent",
                         volumes=state, cap_add=AGENT_CAPS)
    host_prep = {"shared_mounts": ["/run/netns"]}
    database = common.database_step("neutron", "neutron", "neutron", "neutron_database_password")
    register = common.register_step(ctx, "neutron", "network", port, user="neutron",
                                    password_key="neutron_keystone_password", description="OpenStack Networking",
                                    roles=["admin", "service"])
    database.group = register.group = "neutron-server"
    return Phase("neutron", [
        Step("host", "neutron-host", params=host_prep),
        database,
        Step("job", "bootstrap_neutron", boot, group="neutron-server"),
        Step("container", "neutron_server", server, group="neutron-server"),
        Step("container", "neutron_openvswitch_agent", ovs, group="neutron-openvswitch-agent"),
        Step("container", "neutron_dhcp_agent", dhcp, group="neutron-dhcp-agent"),
        Step("container", "neutron_l3_agent", l3, group="neutron-l3-agent"),
        Step("container", "neutron_metadata_agent", meta, group="neutron-metadata-agent"),
        Step("wait", "neutron_server", params={"timeout": 180}),
        register,
        Step("agents_wait", "neutron", params={"timeout": 180, "agents": [
            "Open vSwitch agent", "DHCP agent", "L3 agent", "Metadata agent"]}, group="neutron-server"),
    ])
