"""MariaDB: one bootstrap job that initialises the data volume, then the server.

With more than one host in the ``mariadb`` group the servers form a Galera
cluster: every member lists every other in ``wsrep_cluster_address``; the
first host forms the cluster on the very first deploy (``galera`` step, see
:meth:`stackyard.deploy.hostapply.TargetApplier.do_galera`), the others join
one at a time (the phase is serial), then the first host is restarted as an
ordinary member (``galera_finalize``). Clients reach the cluster through
HAProxy on the internal VIP, one active backend at a time.
"""

from __future__ import annotations

from stackyard.deploy.context import PlanContext, cfile
from stackyard.deploy.model import Phase, Step

SERVER_CNF = """\
[mysqld]
bind-address = {address}
port = {port}
datadir = /var/lib/mysql
skip-name-resolve = 1
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
max_connections = {max_connections}
innodb_buffer_pool_size = {buffer_pool}
innodb_log_file_size = 64M
wait_timeout = 3600
"""

GALERA_CNF = """\
binlog_format = ROW
default_storage_engine = InnoDB
innodb_autoinc_lock_mode = 2
wsrep_on = ON
wsrep_provider = /usr/lib/galera/libgalera_smm.so
wsrep_cluster_name = {cluster_name}
wsrep_cluster_address = gcomm://{members}
wsrep_node_name = {node_name}
wsrep_node_address = {address}:{wsrep_port}
wsrep_provider_options = "gmcast.listen_addr=tcp://{address}:{wsrep_port}; ist.recv_addr={address}:{ist_port}"
wsrep_sst_method = {sst_method}
wsrep_sst_receive_address = {address}:{sst_port}

[sst]
sockopt = ",bind={address}"
"""


def galera_members(ctx: PlanContext) -> list[str]:
    """Cluster members' addresses when MariaDB spans several hosts, else []."""
    return ctx.addresses("mariadb") if len(ctx.hosts("mariadb")) > 1 else []


def plan(ctx: PlanContext) -> Phase:
    v = ctx.variables
    svc = "mariadb"
    addr = v["api_interface_address"]
    members = galera_members(ctx)
    cnf = SERVER_CNF.format(
        address=addr, port=v["database_port"],
        max_connections=v.get("mariadb_max_connections", 1000),
        buffer_pool=v.get("mariadb_innodb_buffer_pool_size", "256M"),
    )
    wsrep_port = int(v["mariadb_wsrep_port"])
    if members:
        # mariabackup needs no wsrep_sst_auth: on the donor it logs in over the
        # unix socket as mysql@localhost (see docs/images.md, Galera)
        sst = v["mariadb_sst_method"]
        cnf += GALERA_CNF.format(
            cluster_name=v["mariadb_cluster_name"], members=",".join(f"{m}:{wsrep_port}" for m in members),
            node_name=ctx.host, address=addr, wsrep_port=wsrep_port, ist_port=v["mariadb_ist_port"],
            sst_port=v["mariadb_sst_port"], sst_method=sst,
        )
    # kolla-ansible's names: config/galera.cnf, then config/mariadb/<host>/galera.cnf
    # (no global.conf: that one is for the OpenStack services' oslo configs)
    ctx.add_ini(svc, "galera.cnf", "galera", cnf, owner="mysql", mode=0o600, secret=False,
                override_files=["galera.cnf", f"mariadb/{ctx.host}/galera.cnf"])
    ctx.add_file(svc, "root-password", ctx.passwords["database_password"], owner="mysql", secret=True)
    ctx.add_config_json(svc, "galera-start" if members else "mariadbd", [
        cfile("galera.cnf", "/etc/mysql/mariadb.conf.d/99-stackyard.cnf", "mysql", "0600"),
        cfile("root-password", "/etc/mysql/root-password", "mysql", "0600"),
    ], permissions=[{"path": "/var/log/kolla/mariadb", "owner": "mysql:mysql", "recurse": True}])
    volumes = ["mariadb:/var/lib/mysql"]
    job = ctx.container("bootstrap_mariadb", "mariadb-server", svc, volumes=volumes,
                        environment={"KOLLA_BOOTSTRAP": "1"}, restart_policy="no",
                        trigger_files=[])
    health = (["galera-health"] if members
              else ["healthcheck_listen", "mariadbd", str(v["database_port"])])
    server = ctx.container("mariadb", "mariadb-server", svc, volumes=volumes, healthcheck=health,
                           stop_timeout=60)
    if not members:
        return Phase(svc, [
            Step("job", "bootstrap_mariadb", job, scope="host"),
            Step("container", "mariadb", server),
            Step("wait", "mariadb", params={"timeout": 120}),
            Step("mysql_ready", "mariadb", params={"timeout": 60}),
        ])
    peers = [f"{m}:{wsrep_port}" for m in members if m != addr]
    first = ctx.hosts("mariadb")[0] == ctx.host
    return Phase(svc, [
        Step("job", "bootstrap_mariadb", job, scope="host"),
        Step("galera", "mariadb", server, params={"peers": peers, "first": first}),
        Step("wait", "mariadb", params={"timeout": 600}),
        Step("galera_finalize", "mariadb", params={"container": "mariadb", "peers": peers, "timeout": 600},
             scope="once"),
        Step("mysql_ready", "mariadb", params={"timeout": 120}),
    ], serial=True)
