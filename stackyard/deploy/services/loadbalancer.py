"""HAProxy and keepalived: the internal VIP in front of every API and MariaDB.

keepalived moves ``kolla_internal_vip_address`` to a healthy load-balancer
host (VRRP, unicast between the hosts, so no multicast is needed on the
network); HAProxy on every such host binds the VIP with ``transparent``
(IP_TRANSPARENT, hence NET_ADMIN) so it can bind while another host holds the
address, with no host sysctl that a reboot would reset (kolla-ansible sets
``net.ipv4.ip_nonlocal_bind`` instead), and forwards to the backends, which
come from the same inventory groups that placed the services. The listeners
are the ``frontends`` every enabled service declares.
"""

from __future__ import annotations

from stackyard.agent.model import Phase, Step, StepKind
from stackyard.deploy.context import PlanContext, cfile
from stackyard.deploy.options import Option
from stackyard.deploy.services.base import Group, Password, Port, Service, User


def haproxy_cfg(ctx: PlanContext) -> str:
    v = ctx.variables
    vip = v["kolla_internal_vip_address"]
    out = [
        "global",
        "    maxconn 4000",
        "    log stdout format raw local0 notice",
        "",
        "defaults",
        "    log global",
        "    option redispatch",
        "    retries 3",
        "    timeout connect 10s",
        "    timeout client 1m",
        "    timeout server 1m",
        "    timeout check 10s",
        "",
        "frontend monitor",
        "    mode http",
        f"    bind {v['api_interface_address']}:{v['haproxy_monitor_port']}",
        "    monitor-uri /",
        "",
    ]
    for fe in (f for s in ctx.enabled for f in s.frontends):
        port = v[fe.port]
        out += [f"listen {fe.name}", f"    mode {fe.mode}", f"    bind {vip}:{port} transparent"]
        if fe.mode == "tcp":
            out += ["    option tcplog", "    option clitcpka", "    option srvtcpka",
                    "    timeout client 3600s", "    timeout server 3600s"]
        else:
            out += ["    option httplog", "    option forwardfor", "    balance roundrobin"]
            if fe.check_path:
                out.append(f"    option httpchk GET {fe.check_path}")
                out.append("    http-check expect rstatus ^[2-4]")
        for i, (host, addr) in enumerate(zip(ctx.hosts(fe.group), ctx.addresses(fe.group))):
            backup = " backup" if fe.active_backup and i > 0 else ""
            out.append(f"    server {host} {addr}:{port} check inter 2000 rise 2 fall 3{backup}")
        out.append("")
    return "\n".join(out)


def keepalived_conf(ctx: PlanContext) -> str:
    v = ctx.variables
    me = v["api_interface_address"]
    hosts = ctx.hosts("loadbalancer")
    addrs = ctx.addresses("loadbalancer")
    # earlier hosts win the election; nopreempt keeps the VIP where it is when
    # a higher-priority host comes back (no second failover)
    priority = 250 - hosts.index(ctx.host) if ctx.host in hosts else 100
    peers = "".join(f"        {a}\n" for a in addrs if a != me)
    check = f"healthcheck_curl http://{me}:{v['haproxy_monitor_port']}/"
    return (
        "global_defs {\n"
        "    script_user root\n"
        "    enable_script_security\n"
        "    vrrp_garp_master_refresh 30\n"
        "}\n\n"
        "vrrp_script check_haproxy {\n"
        f"    script \"/usr/local/bin/{check}\"\n"
        "    interval 2\n"
        "    fall 2\n"
        "    rise 2\n"
        "}\n\n"
        f"vrrp_instance kolla_internal_vip_{v['keepalived_virtual_router_id']} {{\n"
        "    state BACKUP\n"
        "    nopreempt\n"
        f"    interface {v['api_interface']}\n"
        f"    virtual_router_id {v['keepalived_virtual_router_id']}\n"
        f"    priority {priority}\n"
        "    advert_int 1\n"
        f"    unicast_src_ip {me}\n"
        "    unicast_peer {\n" + peers + "    }\n"
        "    authentication {\n"
        "        auth_type PASS\n"
        f"        auth_pass {ctx.passwords['keepalived_password'][:8]}\n"
        "    }\n"
        "    virtual_ipaddress {\n"
        f"        {v['kolla_internal_vip_address']}/32 dev {v['api_interface']}\n"
        "    }\n"
        "    track_script {\n"
        "        check_haproxy\n"
        "    }\n"
        "}\n"
    )


def plan(ctx: PlanContext) -> Phase:
    v = ctx.variables
    steps: list[Step] = []
    if v.get("enable_haproxy"):
        ctx.add_file("haproxy", "haproxy.cfg", haproxy_cfg(ctx), mode=0o600)
        ctx.add_config_json("haproxy", "haproxy -W -db -f /etc/haproxy/haproxy.cfg", [
            cfile("haproxy.cfg", "/etc/haproxy/haproxy.cfg", "root", "0600"),
        ])
        haproxy = ctx.container(
            "haproxy", "haproxy", "haproxy", cap_add=["NET_ADMIN"],
            healthcheck=["healthcheck_curl", f"http://{v['api_interface_address']}:{v['haproxy_monitor_port']}/"],
        )
        steps += [Step(StepKind.CONTAINER, "haproxy", haproxy),
                  Step(StepKind.WAIT, "haproxy", params={"timeout": 60})]
    if v.get("enable_keepalived"):
        ctx.add_file("keepalived", "keepalived.conf", keepalived_conf(ctx), mode=0o600, secret=True)
        ctx.add_config_json("keepalived", "keepalived --dont-fork --log-console --log-detail "
                            "--use-file /etc/keepalived/keepalived.conf", [
                                cfile("keepalived.conf", "/etc/keepalived/keepalived.conf", "root", "0600"),
                            ])
        keepalived = ctx.container("keepalived", "keepalived", "keepalived",
                                   cap_add=["NET_ADMIN", "NET_RAW", "NET_BROADCAST"])
        steps.append(Step(StepKind.CONTAINER, "keepalived", keepalived))
    return Phase("loadbalancer", steps)


SERVICE = Service(
    name="loadbalancer",
    summary="HAProxy + keepalived holding kolla_internal_vip_address (multi-host; the all-in-one "
            "binds services on the VIP itself).",
    groups=(Group("loadbalancer", ("network",)),),
    images=("haproxy", "keepalived"),
    profile="infra",
    options=(
        Option("enable_haproxy", bool, "{{ enable_loadbalancer }}", "Deploy HAProxy (follows enable_loadbalancer)."),
        Option("enable_keepalived", bool, "{{ enable_loadbalancer }}",
               "Deploy keepalived (follows enable_loadbalancer)."),
        Option("keepalived_virtual_router_id", int, 51, "VRRP router id of the internal VIP (1-255)."),
        Option("haproxy_monitor_port", int, 31313, "HAProxy health URI port on each host's API address."),
    ),
    passwords=(Password("keepalived_password"),),
    users=(User("haproxy", 42454, "/var/lib/haproxy"),),
    ports=(Port("haproxy_monitor_port", "haproxy"),),
    plan=plan,
)
