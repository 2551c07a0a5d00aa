"""MariaDB: one bootstrap job that initialises the data volume, then the server."""

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


def plan(ctx: PlanContext) -> Phase:
    v = ctx.variables
    svc = "mariadb"
    cnf = SERVER_CNF.format(
        address=v["api_interface_address"], port=v["database_port"],
        max_connections=v.get("mariadb_max_connections", 1000),
        buffer_pool=v.get("mariadb_innodb_buffer_pool_size", "256M"),
    )
    # kolla-ansible's names: config/galera.cnf, then config/mariadb/<host>/galera.cnf
    # (no global.conf: that one is for the OpenStack services' oslo configs)
    ctx.add_ini(svc, "galera.cnf", "galera", cnf, owner="mysql", mode=0o600, secret=False,
                override_files=["galera.cnf", f"mariadb/{ctx.host}/galera.cnf"])
    ctx.add_file(svc, "root-password", ctx.passwords["database_password"], owner="mysql", secret=True)
    ctx.add_config_json(svc, "mariadbd", [
        cfile("galera.cnf", "/etc/mysql/mariadb.conf.d/99-stackyard.cnf", "mysql", "0600"),
        cfile("root-password", "/etc/mysql/root-password", "mysql", "0600"),
    ], permissions=[{"path": "/var/log/kolla/mariadb", "owner": "mysql:mysql", "recurse": True}])
    volumes = ["mariadb:/var/lib/mysql"]
    job = ctx.container("bootstrap_mariadb", "mariadb-server", svc, volumes=volumes,
                        environment={"KOLLA_BOOTSTRAP": "1"}, restart_policy="no",
                        trigger_files=[])
    server = ctx.container(
        "mariadb", "mariadb-server", svc, volumes=volumes,
        healthcheck=["healthcheck_listen", "mariadbd", str(v["database_port"])], stop_timeout=60,
    )
    return Phase(svc, [
        Step("job", "bootstrap_mariadb", job),
        Step("container", "mariadb", server),
        Step("wait", "mariadb", params={"timeout": 120}),
        Step("mysql_ready", "mariadb", params={"timeout": 60}),
    ])
