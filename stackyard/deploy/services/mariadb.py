"""MariaDB: one bootstrap job that initialises the data volume, then the server.

With more than one host in the ``mariadb`` group the servers form a Galera
cluster: every member lists every other in ``wsrep_cluster_address``; the
first host forms the cluster on the very first deploy (``galera`` step, rules
in :mod:`stackyard.agent.galera`), the others join one at a time (the phase is
serial), then the first host is restarted as an ordinary member
(``galera_finalize``). Clients reach the cluster through HAProxy on the
internal VIP, one active backend at a time.
"""

from __future__ import annotations

from stackyard.agent.model import Phase, Step, StepKind
from stackyard.deploy.context import PlanContext, cfile
from stackyard.deploy.merge import IniConf
from stackyard.deploy.options import Option
from stackyard.deploy.services.base import Frontend, Group, Password, Port, Service, User

#: kolla-ansible's names: config/galera.cnf, then config/mariadb/<host>/galera.cnf
#: (no global.conf: that one is for the OpenStack services' oslo configs)
GALERA_OVERRIDES = ("galera.cnf", "mariadb/{host}/galera.cnf")


def galera_members(ctx: PlanContext) -> list[str]:
    """Cluster members' addresses when MariaDB spans several hosts, else []."""
    return ctx.addresses("mariadb") if len(ctx.hosts("mariadb")) > 1 else []


def server_cnf(ctx: PlanContext, members: list[str]) -> IniConf:
    v = ctx.variables
    addr = v["api_interface_address"]
    mysqld: dict = {
        "bind-address": addr,
        "port": v["database_port"],
        "datadir": "/var/lib/mysql",
        "skip-name-resolve": 1,
        "character-set-server": "utf8mb4",
        "collation-server": "utf8mb4_general_ci",
        "max_connections": v["mariadb_max_connections"],
        "innodb_buffer_pool_size": v["mariadb_innodb_buffer_pool_size"],
        "innodb_log_file_size": "64M",
        # MariaDB 11.8 (trixie) turns it on: a REPEATABLE-READ transaction that reads a row
        # another one changed then fails with error 1020 ("Record has changed since last read"),
        # which OpenStack's code does not retry (nova bug 2116186); off, as other deployers set it
        "innodb_snapshot_isolation": "OFF",
        "wait_timeout": 3600,
    }
    conf: IniConf = {"mysqld": mysqld}
    if not members:
        return conf
    # mariabackup needs no wsrep_sst_auth: on the donor it logs in over the
    # unix socket as mysql@localhost (see docs/images.md, Galera)
    wsrep_port = int(v["mariadb_wsrep_port"])
    mysqld.update({
        "binlog_format": "ROW",
        "default_storage_engine": "InnoDB",
        "innodb_autoinc_lock_mode": 2,
        "wsrep_on": "ON",
        "wsrep_provider": "/usr/lib/galera/libgalera_smm.so",
        "wsrep_cluster_name": v["mariadb_cluster_name"],
        "wsrep_cluster_address": "gcomm://" + ",".join(f"{m}:{wsrep_port}" for m in members),
        "wsrep_node_name": ctx.host,
        "wsrep_node_address": f"{addr}:{wsrep_port}",
        "wsrep_provider_options": f"gmcast.listen_addr=tcp://{addr}:{wsrep_port}; "
                                  f"ist.recv_addr={addr}:{v['mariadb_ist_port']}",
        "wsrep_sst_method": v["mariadb_sst_method"],
        "wsrep_sst_receive_address": f"{addr}:{v['mariadb_sst_port']}",
    })
    conf["sst"] = {"sockopt": f",bind={addr}"}
    return conf


def plan(ctx: PlanContext) -> Phase:
    v = ctx.variables
    svc = "mariadb"
    addr = v["api_interface_address"]
    members = galera_members(ctx)
    ctx.add_ini(svc, "galera.cnf", server_cnf(ctx, members), owner="mysql", secret=False,
                overrides=GALERA_OVERRIDES)
    ctx.add_file(svc, "root-password", ctx.passwords["database_password"], owner="mysql", secret=True)
    ctx.add_config_json(svc, "galera-start" if members else "mariadbd", [
        cfile("galera.cnf", "/etc/mysql/mariadb.conf.d/99-stackyard.cnf", "mysql", "0600"),
        cfile("root-password", "/etc/mysql/root-password", "mysql", "0600"),
    ], permissions=[{"path": "/var/log/kolla/mariadb", "owner": "mysql:mysql", "recurse": True}])
    volumes = ["mariadb:/var/lib/mysql"]
    job = ctx.container("bootstrap_mariadb", "mariadb-server", svc, volumes=volumes,
                        environment={"KOLLA_BOOTSTRAP": "1"}, restart_policy="no", trigger_files=[])
    health = (["galera-health"] if members
              else ["healthcheck_listen", "mariadbd", str(v["database_port"])])
    server = ctx.container("mariadb", "mariadb-server", svc, volumes=volumes, healthcheck=health,
                           stop_timeout=60)
    if not members:
        return Phase(svc, [
            Step(StepKind.JOB, "bootstrap_mariadb", job, scope="host"),
            Step(StepKind.CONTAINER, "mariadb", server),
            Step(StepKind.WAIT, "mariadb", params={"timeout": 120}),
            Step(StepKind.MYSQL_READY, "mariadb", params={"timeout": 60}),
        ])
    wsrep_port = int(v["mariadb_wsrep_port"])
    peers = [f"{m}:{wsrep_port}" for m in members if m != addr]
    first = ctx.hosts("mariadb")[0] == ctx.host
    return Phase(svc, [
        Step(StepKind.JOB, "bootstrap_mariadb", job, scope="host"),
        Step(StepKind.GALERA, "mariadb", server, params={"peers": peers, "first": first}),
        Step(StepKind.WAIT, "mariadb", params={"timeout": 600}),
        Step(StepKind.GALERA_FINALIZE, "mariadb", params={"container": "mariadb", "peers": peers, "timeout": 600},
             scope="once"),
        Step(StepKind.MYSQL_READY, "mariadb", params={"timeout": 120}),
    ], serial=True)


SERVICE = Service(
    name="mariadb",
    summary="MariaDB (the SQL database; Galera on several hosts).",
    enabled=True,
    after=("loadbalancer",),
    groups=(Group("mariadb", ("control",)),),
    images=("mariadb-server",),
    profile="infra",
    options=(
        Option("database_port", int, 3306, "MariaDB port."),
        Option("database_user", str, "root", "MariaDB administrative user."),
        Option("mariadb_max_connections", int, 1000, "MariaDB max_connections."),
        Option("mariadb_innodb_buffer_pool_size", str, "256M", "MariaDB innodb_buffer_pool_size."),
        Option("mariadb_cluster_name", str, "openstack", "Galera cluster name (multi-host MariaDB)."),
        Option("mariadb_sst_method", str, "mariabackup",
               "Galera state transfer method for a joining node.", choices=("mariabackup", "rsync")),
        Option("mariadb_wsrep_port", int, 4567, "Galera replication port."),
        Option("mariadb_ist_port", int, 4568, "Galera incremental state transfer port."),
        Option("mariadb_sst_port", int, 4444, "Galera state snapshot transfer port."),
    ),
    passwords=(Password("database_password"),),
    frontends=(Frontend("mariadb", "mariadb", "database_port", mode="tcp", active_backup=True),),
    users=(User("mysql", 42434, "/var/lib/mysql"),),
    ports=(Port("database_port", "mariadb"),),
    project="mariadb",
    overrides=GALERA_OVERRIDES,
    plan=plan,
)
