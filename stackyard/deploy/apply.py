"""Steps that talk to the cloud's APIs (MariaDB, Keystone, Nova, Neutron), and
the all-in-one applier that runs a whole plan on this machine.

The host-local part (files, containers, jobs, waits) is the agent's executor
(:mod:`stackyard.agent.hostapply`), which Ansible also ships to remote hosts;
the API steps here run on the deploy host, which reaches every API through
the internal VIP.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import pymysql

from stackyard.agent.hostapply import CHANGED, UNCHANGED, Handler, Printer, TargetApplier
from stackyard.agent.model import HostPlan, Step, StepKind
from stackyard.deploy.plan import Deployment
from stackyard.engine import Engine
from stackyard.errors import DeployError


class HostApplier(TargetApplier):
    """Applies one HostPlan: host-local steps through ``engine``, API steps directly.

    ``engine`` may be None when the plan holds API steps only (multi-host
    deploys run those on the deploy host).
    """

    def __init__(self, engine: Engine | None, plan: HostPlan, passwords: dict[str, Any],
                 variables: dict[str, Any], printer: Printer, dry_run: bool = False):
        super().__init__(engine, plan, printer, dry_run=dry_run)
        self.passwords = passwords
        self.variables = variables

    def handlers(self) -> dict[StepKind, Handler]:
        h = super().handlers()
        h.update({
            StepKind.DATABASE: self.do_database, StepKind.MYSQL_READY: self.do_mysql_ready,
            StepKind.KEYSTONE_CHECK: self.do_keystone_check, StepKind.KEYSTONE_REGISTER: self.do_keystone_register,
            StepKind.KEYSTONE_DOMAIN: self.do_keystone_domain, StepKind.KEYSTONE_ROLE: self.do_keystone_role,
            StepKind.HYPERVISOR_WAIT: self.do_hypervisor_wait, StepKind.AGENTS_WAIT: self.do_agents_wait,
            StepKind.VOLUME_SERVICES_WAIT: self.do_volume_services_wait,
            StepKind.CACHE_FLUSH: self.do_cache_flush,
        })
        return h

    def _mysql(self, **kw: Any) -> Any:
        v = self.variables
        return pymysql.connect(
            host=v["kolla_internal_fqdn"], port=int(v["database_port"]), user=v["database_user"],
            password=self.passwords["database_password"], connect_timeout=5, autocommit=True, **kw,
        )

    def do_mysql_ready(self, step: Step) -> tuple[str, str]:
        if self.dry_run:
            return UNCHANGED, "skipped (dry run)"
        deadline = time.monotonic() + float(step.params.get("timeout", 60))
        while True:
            try:
                self._mysql().close()
                return UNCHANGED, "accepting connections"
            except pymysql.MySQLError as exc:
                if time.monotonic() > deadline:
                    raise DeployError(f"host {self.plan.host}: cannot log in to MariaDB as "
                                      f"{self.variables['database_user']}: {exc.args[-1]}") from None
                time.sleep(1)

    def do_database(self, step: Step) -> tuple[str, str]:
        """Create a database and its user, idempotently, straight through the MySQL protocol."""
        if self.dry_run:
            return UNCHANGED, "checked at apply time"
        db, user = step.params["database"], step.params["user"]
        password = self.passwords[step.params["password_key"]]
        changed: list[str] = []
        try:
            conn = self._mysql()
        except pymysql.MySQLError as exc:
            raise DeployError(f"host {self.plan.host}: database {db}: cannot connect: {exc.args[-1]}") from None
        with conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name=%s", (db,))
            if not cur.fetchone():
                cur.execute(f"CREATE DATABASE `{db}`")
                changed.append("database created")
            cur.execute("SELECT 1 FROM mysql.user WHERE user=%s AND host='%%'", (user,))
            if not cur.fetchone():
                cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
                changed.append("user created")
            else:
                # a password change in passwords.yml must reach the server too
                try:
                    self._mysql_check_login(user, password)
                except pymysql.MySQLError:
                    cur.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (user, password))
                    changed.append("password updated")
            cur.execute("SHOW GRANTS FOR %s@'%%'", (user,))
            grants = " ".join(r[0] for r in cur.fetchall())
            if f"ON `{db}`.*" not in grants:
                cur.execute(f"GRANT ALL PRIVILEGES ON `{db}`.* TO %s@'%%'", (user,))
                changed.append("privileges granted")
        return (CHANGED, ", ".join(changed)) if changed else (UNCHANGED, "present")

    def _mysql_check_login(self, user: str, password: str) -> None:
        v = self.variables
        pymysql.connect(host=v["kolla_internal_fqdn"], port=int(v["database_port"]), user=user,
                        password=password, connect_timeout=5).close()

    def do_keystone_check(self, step: Step) -> tuple[str, str]:
        """The admin can get a token: proof that bootstrap and the API both work."""
        if self.dry_run:
            return UNCHANGED, "skipped (dry run)"
        from keystoneauth1 import exceptions as ks_exc
        from keystoneauth1 import session as ks_session
        from keystoneauth1.identity import v3

        v = self.variables
        auth = v3.Password(auth_url=step.params["auth_url"], username=v["keystone_admin_user"],
                           password=self.passwords["keystone_admin_password"],
                           project_name=v["keystone_admin_project"], user_domain_id="default",
                           project_domain_id="default")
        deadline = time.monotonic() + 60
        while True:
            try:
                ks_session.Session(auth=auth, timeout=10).get_token()
                return UNCHANGED, "admin token issued"
            except ks_exc.ClientException as exc:
                if time.monotonic() > deadline:
                    raise DeployError(f"host {self.plan.host}: keystone admin cannot get a token: {exc}") from None
                time.sleep(1)

    def _openstack(self) -> Any:
        """An admin openstacksdk connection (created once per host apply)."""
        if getattr(self, "_conn", None) is None:
            import openstack

            v = self.variables
            self._conn = openstack.connect(
                auth_url=f"http://{v['kolla_internal_fqdn']}:{v['keystone_public_port']}/v3",
                username=v["keystone_admin_user"], password=self.passwords["keystone_admin_password"],
                project_name=v["keystone_admin_project"], user_domain_name="Default",
                project_domain_name="Default", region_name=v["openstack_region_name"],
                interface="internal", identity_api_version="3", load_yaml_config=False,
                load_envvars=False,
            )
        return self._conn

    def do_keystone_register(self, step: Step) -> tuple[str, str]:
        """Service, endpoints, service user and its role, straight through Keystone's API."""
        if self.dry_run:
            return UNCHANGED, "checked at apply time"
        from keystoneauth1 import exceptions as ks_exc
        from keystoneauth1 import session as ks_session
        from keystoneauth1.identity import v3

        p, v = step.params, self.variables
        conn = self._openstack()
        ident = conn.identity
        changed: list[str] = []
        region = v["openstack_region_name"]
        svc = next((s for s in ident.services() if s.name == p["name"] and s.type == p["type"]), None)
        if svc is None:
            svc = ident.create_service(name=p["name"], type=p["type"], description=p.get("description", ""),
                                       is_enabled=True)
            changed.append("service created")
        existing = {e.interface: e for e in ident.endpoints(service_id=svc.id) if e.region_id == region}
        for interface, url in sorted(p["endpoints"].items()):
            ep = existing.get(interface)
            if ep is None:
                ident.create_endpoint(service_id=svc.id, interface=interface, url=url, region_id=region,
                                      is_enabled=True)
                changed.append(f"{interface} endpoint created")
            elif ep.url != url:
                ident.update_endpoint(ep, url=url)
                changed.append(f"{interface} endpoint updated")
        user_name = p.get("user")
        if user_name:
            password = self.passwords[p["password_key"]]
            project = ident.find_project("service", domain_id="default")
            if project is None:
                project = ident.create_project(name="service", domain_id="default",
                                               description="OpenStack service users")
                changed.append("project service created")
            user = ident.find_user(user_name, domain_id="default")
            if user is None:
                user = ident.create_user(name=user_name, password=password, domain_id="default",
                                         default_project_id=project.id)
                changed.append("user created")
            else:
                auth = v3.Password(auth_url=conn.auth["auth_url"], username=user_name, password=password,
                                   user_domain_id="default", project_id=project.id)
                try:
                    ks_session.Session(auth=auth, timeout=10).get_token()
                except ks_exc.Unauthorized:
                    ident.update_user(user, password=password)
                    changed.append("password updated")
            for role_name in p.get("roles", ["admin"]):
                role = ident.find_role(role_name)
                if role is None:
                    role = ident.create_role(name=role_name)
                    changed.append(f"role {role_name} created")
                if not ident.validate_user_has_project_role(project, user, role):
                    ident.assign_project_role_to_user(project, user, role)
                    changed.append(f"role {role_name} granted")
        if changed:
            self._conn = None  # the next token must carry the new catalog entries
            return CHANGED, ", ".join(changed)
        return UNCHANGED, "registered"

    def _password_works(self, user_name: str, password: str, **scope: str) -> bool:
        """Whether Keystone issues ``user_name`` a token with ``password`` (unscoped unless
        ``scope`` names a project): how a password changed in passwords.yml is noticed."""
        from keystoneauth1 import exceptions as ks_exc
        from keystoneauth1 import session as ks_session
        from keystoneauth1.identity import v3

        auth = v3.Password(auth_url=self._openstack().auth["auth_url"], username=user_name, password=password,
                           **scope)
        try:
            ks_session.Session(auth=auth, timeout=10).get_token()
        except ks_exc.Unauthorized:
            return False
        return True

    def do_keystone_domain(self, step: Step) -> tuple[str, str]:
        """A domain and its admin user, who holds ``admin`` on that domain (Heat's stack user
        domain and ``heat_domain_admin``), idempotently."""
        if self.dry_run:
            return UNCHANGED, "checked at apply time"
        p = step.params
        ident = self._openstack().identity
        changed: list[str] = []
        domain = ident.find_domain(step.name)
        if domain is None:
            domain = ident.create_domain(name=step.name, description=p.get("description", ""), is_enabled=True)
            changed.append("domain created")
        elif not domain.is_enabled:
            raise DeployError(f"host {self.plan.host}: Keystone domain {step.name} is disabled: enable it "
                              f"(openstack domain set --enable {step.name})")
        user_name = p.get("user")
        if user_name:
            password = self.passwords[p["password_key"]]
            user = ident.find_user(user_name, domain_id=domain.id)
            if user is None:
                user = ident.create_user(name=user_name, password=password, domain_id=domain.id)
                changed.append(f"user {user_name} created")
            elif not self._password_works(user_name, password, user_domain_id=domain.id):
                ident.update_user(user, password=password)
                changed.append(f"user {user_name} password updated")
            role = ident.find_role("admin")
            if role is None:
                raise DeployError(f"host {self.plan.host}: Keystone has no 'admin' role for {user_name} "
                                  f"(keystone's bootstrap makes it)")
            if not ident.validate_user_has_domain_role(domain, user, role):
                ident.assign_domain_role_to_user(domain, user, role)
                changed.append(f"role admin on {step.name} granted to {user_name}")
        return (CHANGED, ", ".join(changed)) if changed else (UNCHANGED, "present")

    def do_keystone_role(self, step: Step) -> tuple[str, str]:
        """A role (Heat's ``heat_stack_owner``), and with ``grant_admin`` the cloud admin
        holding it in the admin project, as kolla-ansible grants it."""
        if self.dry_run:
            return UNCHANGED, "checked at apply time"
        v = self.variables
        ident = self._openstack().identity
        changed: list[str] = []
        role = ident.find_role(step.name)
        if role is None:
            role = ident.create_role(name=step.name)
            changed.append("role created")
        if step.params.get("grant_admin"):
            user = ident.find_user(v["keystone_admin_user"], domain_id="default")
            project = ident.find_project(v["keystone_admin_project"], domain_id="default")
            if user is None or project is None:
                raise DeployError(f"host {self.plan.host}: role {step.name}: the admin user "
                                  f"{v['keystone_admin_user']} or project {v['keystone_admin_project']} is "
                                  f"missing from Keystone's default domain")
            if not ident.validate_user_has_project_role(project, user, role):
                ident.assign_project_role_to_user(project, user, role)
                changed.append(f"granted to {user.name} in {project.name}")
        if changed:
            self._conn = None  # the admin's token predates its new role
            return CHANGED, ", ".join(changed)
        return UNCHANGED, "present"

    def do_cache_flush(self, step: Step) -> tuple[str, str]:
        """Empty every memcached server: what one release cached (Horizon's rendered
        fragments, sessions) is not for another."""
        if self.dry_run:
            return CHANGED, "would flush"
        for server in step.params["servers"]:
            flush_memcached(server)
        return CHANGED, f"flushed {', '.join(step.params['servers'])}"

    def do_hypervisor_wait(self, step: Step) -> tuple[str, str]:
        """nova-compute registered and discovered: the hypervisor is listed and up."""
        if self.dry_run:
            return UNCHANGED, "skipped (dry run)"
        deadline = time.monotonic() + float(step.params.get("timeout", 300))
        host = step.name
        last = "no hypervisor yet"
        while True:
            try:
                conn = self._openstack()
                for hv in conn.compute.hypervisors(details=True):
                    service_host = (hv.service_details or {}).get("host")
                    if service_host == host and (hv.state or "up") == "up":
                        return UNCHANGED, f"hypervisor {hv.name} of {host} up"
            except Exception as exc:  # noqa: BLE001 - API still starting: keep polling
                last = str(exc).splitlines()[0]
                self._conn = None  # a token from before the service was registered lacks it
            if time.monotonic() > deadline:
                raise DeployError(f"host {self.plan.host}: nova-compute on {host} never registered: {last}")
            time.sleep(2)

    def do_agents_wait(self, step: Step) -> tuple[str, str]:
        """Every expected Neutron agent on this host reports alive."""
        if self.dry_run:
            return UNCHANGED, "skipped (dry run)"
        wanted = set(step.params["agents"])
        deadline = time.monotonic() + float(step.params.get("timeout", 180))
        missing = wanted
        while True:
            try:
                conn = self._openstack()
                alive = {a.agent_type for a in conn.network.agents() if a.is_alive}
                missing = wanted - alive
                if not missing:
                    return UNCHANGED, f"{len(wanted)} agents alive"
            except Exception:  # noqa: BLE001 - server still starting: keep polling
                self._conn = None
            if time.monotonic() > deadline:
                raise DeployError(f"host {self.plan.host}: neutron agents not alive after "
                                  f"{step.params.get('timeout', 180)}s: {', '.join(sorted(missing))}")
            time.sleep(2)


    def do_volume_services_wait(self, step: Step) -> tuple[str, str]:
        """Cinder's services are up in its service list: a volume service reports only once its
        driver connected to the backend, so a wrong ceph.conf or keyring fails here, by name,
        instead of as "No valid backend" at the first volume."""
        if self.dry_run:
            return UNCHANGED, "skipped (dry run)"
        wanted = {binary: host for binary, host in step.params["services"].items()}
        timeout = float(step.params.get("timeout", 180))
        deadline = time.monotonic() + timeout
        last = "no service listed yet"
        while True:
            try:
                up = {(s.binary, s.host) for s in self._openstack().block_storage.services() if s.state == "up"}
                missing = sorted(b for b, h in wanted.items() if not any(ub == b and (not h or uh == h)
                                                                         for ub, uh in up))
                if not missing:
                    return UNCHANGED, f"{', '.join(sorted(wanted))} up"
                last = "down or missing: " + ", ".join(f"{b}{'@' + wanted[b].split('@')[-1] if wanted[b] else ''}"
                                                       for b in missing)
            except Exception as exc:  # noqa: BLE001 - API still starting: keep polling
                last = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                self._conn = None
            if time.monotonic() > deadline:
                raise DeployError(f"host {self.plan.host}: cinder services not up after {timeout:.0f}s ({last}); "
                                  f"their logs say why (docker logs <prefix>cinder_volume): a cinder-volume "
                                  f"whose driver cannot reach the backend never reports up")
            time.sleep(2)


def flush_memcached(server: str, timeout: float = 10) -> None:
    """memcached's ``flush_all`` on ``host:port``; DeployError naming it when it does not answer OK."""
    host, _, port = server.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            sock.sendall(b"flush_all\r\n")
            answer = sock.recv(64)
    except OSError as exc:
        raise DeployError(f"memcached {server}: cannot flush: {exc}") from None
    if not answer.startswith(b"OK"):
        raise DeployError(f"memcached {server}: flush_all answered {answer!r}")


def apply_local(dep: Deployment, engine: Engine, say: Printer, dry_run: bool = False,
                only_phases: set[str] | None = None) -> dict[str, Any]:
    """Apply every host plan of an all-in-one deployment on ``engine``; returns the summary.

    Stops at the first failing host; the summary's ``error`` says why (the
    caller raises it after printing what did happen).
    """
    reports = {}
    start = time.monotonic()
    failed_msg = ""
    for host, plan in dep.plans.items():
        applier = HostApplier(engine, plan, dep.passwords, dep.variables, say, dry_run=dry_run)
        try:
            reports[host] = applier.run(only_phases)
        except DeployError as exc:
            reports[host] = applier.report
            failed_msg = str(exc)
            break
    return {
        "dry_run": dry_run,
        "seconds": round(time.monotonic() - start, 2),
        "hosts": {h: r.to_dict() for h, r in reports.items()},
        "changed": sum(r.changed for r in reports.values()),
        "unchanged": sum(r.to_dict()["unchanged"] for r in reports.values()),
        "failed": sum(r.failed for r in reports.values()),
        "error": failed_msg,
    }
