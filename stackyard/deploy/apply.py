"""Make one host look like its plan, through the Docker Engine API.

Rules: files are written only when content, mode or owner differ; a container
is created or recreated only when its spec hash (spec + image ID + hashes of the
config files it mounts) changed; a one-shot job runs only when its own spec
hash changed since its last success (recorded on the host). Everything else is
left running untouched, so a re-run with no change changes nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import docker
import docker.errors

from stackyard.deploy.model import (
    MANAGED_LABEL, SERVICE_LABEL, SPEC_LABEL, ConfigFile, ContainerSpec, HostPlan, Step,
)
from stackyard.errors import DeployError

CHANGED, UNCHANGED, FAILED = "changed", "unchanged", "failed"
#: the engine's read-only /proc paths for unprivileged containers (moby's defaults)
DEFAULT_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


@dataclass
class StepResult:
    host: str
    phase: str
    kind: str
    name: str
    status: str
    seconds: float = 0.0
    detail: str = ""


@dataclass
class ApplyReport:
    results: list[StepResult] = field(default_factory=list)
    files_changed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def changed(self) -> int:
        return sum(r.status == CHANGED for r in self.results) + len(self.files_changed)

    @property
    def failed(self) -> int:
        return sum(r.status == FAILED for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "unchanged": sum(r.status == UNCHANGED for r in self.results),
            "failed": self.failed,
            "seconds": round(self.seconds, 2),
            "files_changed": self.files_changed,
            "steps": [asdict(r) for r in self.results],
        }


Printer = Callable[[str], None]


# ----------------------------------------------------------------------------- files
def file_differs(f: ConfigFile) -> bool:
    p = Path(f.path)
    try:
        st = p.stat()
    except FileNotFoundError:
        return True
    if (st.st_mode & 0o7777) != f.mode or st.st_uid != f.uid or st.st_gid != f.gid:
        return True
    return p.read_text() != f.content


def write_file(f: ConfigFile) -> None:
    """Atomic write with the final mode and owner set before the rename."""
    p = Path(f.path)
    p.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(p.parent, 0o755)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(f.content)
        os.chown(tmp, f.uid, f.gid)
        os.chmod(tmp, f.mode)
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def sync_files(plan: HostPlan, dry_run: bool = False) -> list[str]:
    changed = [f.path for f in plan.files if file_differs(f)]
    if not dry_run:
        for f in plan.files:
            if f.path in changed:
                write_file(f)
    return changed


def run_healthcheck(container: Any, test: list[str]) -> tuple[bool, str]:
    """Run a container's healthcheck test now (the engine's first check waits an interval)."""
    cmd = test[1] if test[0] == "CMD-SHELL" else test[1:]
    try:
        res = container.exec_run(["/bin/sh", "-c", cmd] if isinstance(cmd, str) else cmd)
    except docker.errors.APIError as exc:  # e.g. restarting between two calls
        return False, str(exc.explanation or exc)
    lines = res.output.decode(errors="replace").strip().splitlines()
    return res.exit_code == 0, lines[-1] if lines else ""


# ----------------------------------------------------------------------------- state
class JobState:
    """Spec hashes of one-shot jobs that succeeded on this host."""

    def __init__(self, root: str):
        self.path = Path(root) / ".stackyard" / "jobs.json"
        try:
            self.data: dict[str, str] = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            self.data = {}

    def done(self, name: str, spec_hash: str) -> bool:
        return self.data.get(name) == spec_hash

    def record(self, name: str, spec_hash: str) -> None:
        self.data[name] = spec_hash
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=2, sort_keys=True) + "\n")
        os.chmod(self.path, 0o600)


# ----------------------------------------------------------------------------- engine
class HostApplier:
    """Applies one HostPlan on the engine ``client`` points at."""

    def __init__(self, client: docker.DockerClient, plan: HostPlan, passwords: dict[str, Any],
                 variables: dict[str, Any], printer: Printer, dry_run: bool = False):
        self.client = client
        self.plan = plan
        self.passwords = passwords
        self.variables = variables
        self.say = printer
        self.dry_run = dry_run
        self.report = ApplyReport()
        self.file_hashes = plan.file_hashes()
        self.jobs = JobState(plan.config_root)
        self._image_ids: dict[str, str] = {}

    # -- helpers ----------------------------------------------------------------
    def image_id(self, ref: str) -> str:
        if ref not in self._image_ids:
            try:
                self._image_ids[ref] = self.client.images.get(ref).id
            except docker.errors.ImageNotFound:
                raise DeployError(
                    f"host {self.plan.host}: image {ref} is not present; run 'stackyard build' "
                    f"(or pull it from docker_registry)") from None
        return self._image_ids[ref]

    def spec_hash(self, spec: ContainerSpec) -> str:
        return spec.spec_hash(self.image_id(spec.image), self.file_hashes)

    def find(self, name: str) -> Any | None:
        try:
            return self.client.containers.get(name)
        except docker.errors.NotFound:
            return None

    def create(self, spec: ContainerSpec, spec_hash: str) -> Any:
        labels = dict(spec.labels)
        labels.update({SPEC_LABEL: spec_hash, SERVICE_LABEL: spec.service, MANAGED_LABEL: "true"})
        restart = {"Name": spec.restart_policy} if spec.restart_policy != "no" else None
        kwargs: dict[str, Any] = dict(
            image=spec.image, name=spec.name, environment=spec.environment, volumes=spec.volumes,
            network_mode=spec.network_mode, labels=labels, cap_add=spec.cap_add or None,
            stop_signal="SIGTERM", detach=True,
        )
        if restart:
            kwargs["restart_policy"] = restart
        if spec.command:
            kwargs["command"] = spec.command
        if spec.user:
            kwargs["user"] = spec.user
        if spec.devices:
            kwargs["devices"] = spec.devices
        if spec.healthcheck:
            kwargs["healthcheck"] = spec.healthcheck.to_docker()
        if not spec.writable_proc_sys:
            return self.client.containers.create(**kwargs)
        # The SDK has no ReadonlyPaths: build the request ourselves and keep the
        # engine's defaults except /proc/sys (masked paths stay masked)
        from docker.models.containers import _create_container_args

        create_kwargs = _create_container_args(dict(kwargs, version=self.client.api._version))
        create_kwargs["host_config"]["ReadonlyPaths"] = [p for p in DEFAULT_READONLY_PATHS if p != "/proc/sys"]
        created = self.client.api.create_container(**create_kwargs)
        return self.client.containers.get(created["Id"])

    def remove(self, container: Any, timeout: int = 30) -> None:
        try:
            container.stop(timeout=timeout)
        except docker.errors.APIError:
            pass
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass

    # -- steps ------------------------------------------------------------------
    def do_container(self, step: Step) -> tuple[str, str]:
        spec = step.container
        assert spec is not None
        want = self.spec_hash(spec)
        current = self.find(spec.name)
        if current is not None and current.labels.get(SPEC_LABEL) == want:
            if current.status == "running":
                return UNCHANGED, "running"
            if self.dry_run:
                return CHANGED, "would start"
            current.start()
            return CHANGED, "started"
        if self.dry_run:
            return CHANGED, "would create" if current is None else "would recreate"
        if current is not None:
            self.remove(current, spec.stop_timeout)
        self.create(spec, want).start()
        return CHANGED, "created" if current is None else "recreated"

    def do_job(self, step: Step) -> tuple[str, str]:
        spec = step.container
        assert spec is not None
        want = self.spec_hash(spec)
        if self.jobs.done(spec.name, want):
            return UNCHANGED, "done before"
        if self.dry_run:
            return CHANGED, "would run"
        old = self.find(spec.name)
        if old is not None:
            self.remove(old, 5)
        container = self.create(spec, want)
        container.start()
        status = container.wait(timeout=step.params.get("timeout", 1800))
        code = int(status.get("StatusCode", 1))
        logs = container.logs(tail=20).decode(errors="replace").strip()
        log_path = Path(self.plan.config_root) / ".stackyard" / "logs" / f"{spec.name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(container.logs().decode(errors="replace"))
        os.chmod(log_path, 0o600)
        container.remove(force=True)
        if code != 0:
            last = logs.splitlines()[-1] if logs else "(no output)"
            raise DeployError(f"host {self.plan.host}: job {spec.name} exited {code}: {last} (log: {log_path})")
        self.jobs.record(spec.name, want)
        return CHANGED, "ran"

    def do_wait(self, step: Step) -> tuple[str, str]:
        if self.dry_run:
            return UNCHANGED, "skipped (dry run)"
        name = step.name
        timeout = float(step.params.get("timeout", 120))
        deadline = time.monotonic() + timeout
        spec = next((s.container for p in self.plan.phases for s in p.steps
                     if s.kind == "container" and s.container and s.container.name == name), None)
        test = spec.healthcheck.test if spec and spec.healthcheck else None
        last = ""
        while True:
            c = self.find(name)
            if c is None:
                raise DeployError(f"host {self.plan.host}: container {name} vanished while waiting for it")
            state = c.attrs.get("State", {})
            if state.get("Health", {}).get("Status") == "healthy":
                return UNCHANGED, "healthy"
            if not state.get("Running"):
                if state.get("Restarting") or state.get("Status") in ("created",):
                    pass
                else:
                    tail = c.logs(tail=5).decode(errors="replace").strip().splitlines()
                    raise DeployError(f"host {self.plan.host}: container {name} is {state.get('Status')} "
                                      f"(exit {state.get('ExitCode')}): {tail[-1] if tail else 'no output'}")
            elif test is None:
                return UNCHANGED, "running"
            else:
                ok, last = run_healthcheck(c, test)
                if ok:
                    return UNCHANGED, "healthy"
            if time.monotonic() > deadline:
                raise DeployError(f"host {self.plan.host}: {name} not healthy after {timeout:.0f}s: {last}")
            time.sleep(1)

    def _mysql(self, **kw: Any) -> Any:
        import pymysql

        v = self.variables
        return pymysql.connect(
            host=v["kolla_internal_fqdn"], port=int(v["database_port"]), user=v["database_user"],
            password=self.passwords["database_password"], connect_timeout=5, autocommit=True, **kw,
        )

    def do_mysql_ready(self, step: Step) -> tuple[str, str]:
        if self.dry_run:
            return UNCHANGED, "skipped (dry run)"
        import pymysql

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
        import pymysql

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
        import pymysql

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

    def do_exec(self, step: Step) -> tuple[str, str]:
        """Run a command in a container unless a check command already succeeds."""
        p = step.params
        c = self.find(p["container"])
        if c is None:
            if self.dry_run:
                return CHANGED, f"would run in {p['container']}"
            raise DeployError(f"host {self.plan.host}: container {p['container']} is missing for {step.name}")
        if p.get("unless") and c.exec_run(p["unless"]).exit_code == 0:
            return UNCHANGED, "in place"
        if self.dry_run:
            return CHANGED, "would run"
        res = c.exec_run(p["command"])
        if res.exit_code != 0:
            out = res.output.decode(errors="replace").strip().splitlines()
            raise DeployError(f"host {self.plan.host}: {step.name}: {' '.join(p['command'])} exited "
                              f"{res.exit_code}: {out[-1] if out else ''}")
        return CHANGED, "applied"

    def do_host(self, step: Step) -> tuple[str, str]:
        """Host preparation the containers rely on (all-in-one host only)."""
        import subprocess

        changed: list[str] = []
        for path in step.params.get("shared_mounts", []):
            if self.dry_run:
                continue
            os.makedirs(path, exist_ok=True)
            if subprocess.run(["mountpoint", "-q", path]).returncode != 0:
                subprocess.run(["mount", "--bind", path, path], check=True)
                changed.append(f"{path} bind-mounted")
            info = Path("/proc/self/mountinfo").read_text().splitlines()
            line = next((ln for ln in reversed(info) if ln.split()[4] == path), "")
            if "shared:" not in line:
                subprocess.run(["mount", "--make-shared", path], check=True)
                changed.append(f"{path} shared")
        for pair in step.params.get("veth", []):
            name, peer = pair["name"], pair["peer"]
            exists = subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0
            if not exists:
                if not self.dry_run:
                    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", peer], check=True)
                changed.append(f"veth {name}/{peer} created")
            if not self.dry_run:
                for dev in (name, peer):
                    subprocess.run(["ip", "link", "set", dev, "up"], check=True)
        return (CHANGED, ", ".join(changed)) if changed else (UNCHANGED, "ready")

    # -- driver -------------------------------------------------------------------
    def run(self, only_phases: set[str] | None = None) -> ApplyReport:
        start = time.monotonic()
        host = self.plan.host
        for vol in self.plan.volumes:
            if not self.dry_run:
                try:
                    self.client.volumes.get(vol)
                except docker.errors.NotFound:
                    self.client.volumes.create(vol, labels={MANAGED_LABEL: "true"})
        self.report.files_changed = sync_files(self.plan, self.dry_run)
        for path in self.report.files_changed:
            self.say(f"{host}: file {path} {'would change' if self.dry_run else 'written'}")
        handlers = {
            "container": self.do_container, "job": self.do_job, "wait": self.do_wait,
            "database": self.do_database, "mysql_ready": self.do_mysql_ready,
            "keystone_check": self.do_keystone_check,
            "keystone_register": self.do_keystone_register, "host": self.do_host,
            "hypervisor_wait": self.do_hypervisor_wait, "agents_wait": self.do_agents_wait,
            "exec": self.do_exec,
        }
        for phase in self.plan.phases:
            if only_phases is not None and phase.name not in only_phases:
                continue
            for step in phase.steps:
                t0 = time.monotonic()
                try:
                    status, detail = handlers[step.kind](step)
                except DeployError as exc:
                    self._record(phase.name, step, FAILED, t0, str(exc))
                    raise
                except docker.errors.DockerException as exc:
                    msg = f"host {host}: {phase.name}/{step.name}: engine error: {exc}"
                    self._record(phase.name, step, FAILED, t0, msg)
                    raise DeployError(msg) from None
                self._record(phase.name, step, status, t0, detail)
        self.report.seconds = time.monotonic() - start
        return self.report

    def _record(self, phase: str, step: Step, status: str, t0: float, detail: str) -> None:
        r = StepResult(self.plan.host, phase, step.kind, step.name, status,
                       round(time.monotonic() - t0, 2), detail)
        self.report.results.append(r)
        mark = {"changed": "[yellow]changed[/yellow]", "unchanged": "[green]ok[/green]",
                "failed": "[bold red]failed[/bold red]"}[status]
        self.say(f"{r.host}: {phase:<10} {step.kind:<14} {step.name:<26} {mark} {detail} ({r.seconds:.1f}s)")
