"""Open vSwitch on the userspace (netdev) datapath: this kernel has no
openvswitch module. ovsdb-server and ovs-vswitchd run in their own containers
and share /run/openvswitch; the provider bridge br-ex gets the deploy's veth.

Userspace tunnelling sends and receives VXLAN through an OVS bridge, so on a
host with a tunnel NIC of its own (``tunnel_interface_cidr``, set by
multihost.resolve_addresses) ovs-vswitchd-start puts that NIC in the netdev
bridge ``br-phy`` and moves its address there while ovs-vswitchd runs (only
a running ovs-vswitchd serves the bridge's tap; the address goes back to the
NIC when it stops)."""

from __future__ import annotations

import hashlib

from stackyard.agent.model import Phase, ResourceKind, Step, StepKind
from stackyard.deploy import day1
from stackyard.deploy.context import PlanContext
from stackyard.deploy.options import Option
from stackyard.deploy.services.base import Group, Port, Service

RUN_VOLUME = "openvswitch_run:/run/openvswitch/"
#: the netdev bridge holding a dedicated tunnel NIC (as in OVS's userspace-tunneling
#: guide); multihost.resolve_addresses reads the address there once it has moved
TUNNEL_BRIDGE = "br-phy"
DB = "/var/lib/openvswitch/conf.db"


def ovsdb_address(ctx: PlanContext) -> str:
    return f"tcp:{ctx.variables['api_interface_address']}:{ctx.variables['ovsdb_port']}"


def provider_veth(prefix: str) -> tuple[str, str]:
    """The veth pair standing in for the external NIC: (br-ex's end, the free end).

    Interface names are 15 characters at most, so a deployment's name prefix
    becomes a short hash of it.
    """
    if not prefix:
        return "sy-ext0", "sy-ext1"
    tag = hashlib.sha256(prefix.encode()).hexdigest()[:8]
    return f"sy{tag}e0", f"sy{tag}e1"


def host_public_address(ctx: PlanContext) -> str:
    """The public gateway (CIDR) for the host's end of the veth, on the hosts whose
    routers sit on br-ex (L3 agents), when ``stackyard_public_on_host`` says so."""
    v = ctx.variables
    if not (v.get("enable_neutron") and v.get("stackyard_public_on_host")):
        return ""
    if ctx.host not in ctx.hosts("neutron-l3-agent"):
        return ""
    return day1.public_network(v).gateway_cidr


def plan(ctx: PlanContext) -> Phase:
    v = ctx.variables
    addr, port = v["api_interface_address"], v["ovsdb_port"]
    db_cmd = (f"sh -c 'test -s {DB} || ovsdb-tool create {DB} /usr/share/openvswitch/vswitch.ovsschema; "
              f"exec ovsdb-server {DB} --remote=punix:/run/openvswitch/db.sock "
              f"--remote=ptcp:{port}:{addr} --pidfile=/run/openvswitch/ovsdb-server.pid'")
    ctx.add_config_json("openvswitch-db-server", db_cmd, [])
    vs_cmd = "ovs-vswitchd-start"
    if v.get("tunnel_interface_cidr"):
        vs_cmd += f" {TUNNEL_BRIDGE} {v['tunnel_interface']} {v['tunnel_interface_cidr']}"
    ctx.add_config_json("openvswitch-vswitchd", vs_cmd, [])
    db = ctx.container("openvswitch_db", "openvswitch-db-server", "openvswitch-db-server",
                       volumes=[RUN_VOLUME, "openvswitch_db:/var/lib/openvswitch/"],
                       healthcheck=["healthcheck_socket", "ovsdb-server", "/run/openvswitch/db.sock"])
    vswitchd = ctx.container("openvswitch_vswitchd", "openvswitch-vswitchd", "openvswitch-vswitchd",
                             volumes=[RUN_VOLUME], cap_add=["NET_ADMIN", "SYS_ADMIN", "NET_RAW", "SYS_NICE"],
                             devices=["/dev/net/tun:/dev/net/tun:rwm"],
                             healthcheck=["ovs-appctl", "version"])
    ext = v.get("neutron_external_interface")
    if not ext:
        # no external NIC given: br-ex gets one end of a veth pair attached to
        # nothing (no route off the machine)
        ext, peer = provider_veth(ctx.prefix)
        ctx.resource(ResourceKind.VETH, name=ext, peer=peer, address=host_public_address(ctx))
    bridge = "br-ex"
    return Phase("openvswitch", [
        ctx.host_step(),
        Step(StepKind.CONTAINER, "openvswitch_db", db),
        Step(StepKind.WAIT, "openvswitch_db", params={"timeout": 60}),
        Step(StepKind.CONTAINER, "openvswitch_vswitchd", vswitchd),
        Step(StepKind.WAIT, "openvswitch_vswitchd", params={"timeout": 60}),
        Step(StepKind.EXEC, "br-ex", params={
            "container": "openvswitch_vswitchd",
            "unless": ["sh", "-c", f"ovs-vsctl br-exists {bridge} && "
                       f"[ \"$(ovs-vsctl get bridge {bridge} datapath_type)\" = netdev ] && "
                       f"[ \"$(ovs-vsctl port-to-br {ext})\" = {bridge} ]"],
            "command": ["ovs-vsctl", "--may-exist", "add-br", bridge, "--", "set", "bridge", bridge,
                        "datapath_type=netdev", "--", "--may-exist", "add-port", bridge, ext],
        }),
    ])


SERVICE = Service(
    name="openvswitch",
    summary="Open vSwitch (userspace datapath) for Neutron; follows enable_neutron.",
    enabled="{{ enable_neutron }}",
    groups=(Group("openvswitch", ("network", "compute")),),
    images=("openvswitch-db-server", "openvswitch-vswitchd"),
    options=(Option("ovsdb_port", int, 6640, "OVSDB TCP port (bound to the API address)."),),
    ports=(Port("ovsdb_port", "openvswitch_db"),),
    data_plane=("openvswitch_db", "openvswitch_vswitchd"),
    plan=plan,
)
