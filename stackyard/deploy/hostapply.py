"""Make one host look like its plan: the part that runs ON that host.

Files, volumes, images, containers, one-shot jobs, health waits, Galera
membership. Only the standard library and the Docker SDK are used, because
this module is also shipped by Ansible to remote hosts (as
``ansible.module_utils.stackyard_hostapply``) where stackyard is not installed.
API steps (databases, Keystone) live in :mod:`stackyard.deploy.apply`, which
runs on the deploy host.

Rules: files are written only when content, mode or owner differ; a container
is created or recreated only when its spec hash (spec + image ID + hashes of
the config files it mounts) changed; a one-shot job runs only when its own
spec hash changed since its last success (recorded on the host). Everything
else is left running untouched, so a re-run with no change changes nothing.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import docker
import docker.errors

try:
    from stackyard.deploy.model import (
        MANAGED_LABEL, SERVICE_LABEL, SPEC_LABEL, ConfigFile, ContainerSpec, HostPlan, Step,
    )
    from stackyard.errors import DeployError
except ImportError:  # on a remote host, shipped by Ansible with the stackyard_host module
    from ansible.module_utils.stackyard_model import (  # type: ignore[no-redef]
        MANAGED_LABEL, SERVICE_LABEL, SPEC_LABEL, ConfigFile, ContainerSpec, HostPlan, Step,
    )
    from ansible.module_utils.stackyard_errors import DeployError  # type: ignore[no-redef]

CHANGED, UNCHANGED, FAILED = "changed", "unchanged", "failed"
#: the engine's read-only /proc paths for unprivileged containers (moby's defaults)
DEFAULT_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
#: set on a Galera node started with --wsrep-new-cluster; finalize restarts it as a member
GALERA_BOOTSTRAP_LABEL = "org.stackyard.galera-bootstrap"
GALERA_NEW_CLUSTER_ENV = "STACKYARD_GALERA_NEW_CLUSTER"
#: the job-state key recording that this host formed a Galera cluster once
GALERA_FORMED = "galera-cluster-formed"


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


def has_registry(ref: str) -> bool:
    """Docker's rule: the first path component names a registry if it has a dot,
    a port or is localhost (``10.0.0.1:5000/stackyard/keystone:2025.1``)."""
    first, sep, _ = ref.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


def tcp_open(address: str, timeout: float = 1.0) -> bool:
    """``host:port`` accepts TCP connections (a Galera peer is up)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


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
class TargetApplier:
    """Applies the host-local steps of one HostPlan on the engine ``client`` points at."""

    #: step kinds this class executes; subclasses add API steps
    def __init__(self, client: Any, plan: HostPlan, printer: Printer, dry_run: bool = False,
                 pull: str = "missing"):
        self.client = client
        self.plan = plan
        self.say = printer
        self.dry_run = dry_run
        #: ``missing``: pull an image only when the engine lacks it; ``always``; ``never``
        self.pull = pull
        self.report = ApplyReport()
        self.file_hashes = plan.file_hashes()
        self.jobs = JobState(plan.config_root)
        self._image_ids: dict[str, str] = {}

    def handlers(self) -> dict[str, Callable[[Step], tuple[str, str]]]:
        return {"container": self.do_container, "job": self.do_job, "wait": self.do_wait,
                "host": self.do_host, "exec": self.do_exec, "galera": self.do_galera,
                "galera_finalize": self.do_galera_finalize}

    # -- helpers ----------------------------------------------------------------
    def image_id(self, ref: str) -> str:
        if ref not in self._image_ids:
            try:
                self._image_ids[ref] = self.client.images.get(ref).id
            except docker.errors.ImageNotFound:
                raise DeployError(
                    f"host {self.plan.host}: image {ref} is not present; run 'stackyard build' "
                    f"(or push it to docker_registry)") from None
        return self._image_ids[ref]

    def spec_hash(self, spec: ContainerSpec) -> str:
        return spec.spec_hash(self.image_id(spec.image), self.file_hashes)

    def find(self, name: str) -> Any | None:
        try:
            return self.client.containers.get(name)
        except docker.errors.NotFound:
            return None

    def images(self) -> list[str]:
        return sorted({s.container.image for p in self.plan.phases for s in p.steps if s.container})

    def ensure_images(self) -> list[str]:
        """Pull the plan's images from their registry as the pull policy says."""
        pulled = []
        for ref in self.images():
            if self.pull == "never" or not has_registry(ref):
                continue  # no registry in the reference: images come from a local build
            if self.pull == "missing":
                try:
                    self.client.images.get(ref)
                    continue
                except docker.errors.ImageNotFound:
                    pass
            if self.dry_run:
                pulled.append(ref)
                continue
            repo, _, tag = ref.rpartition(":")
            before = None
            try:
                before = self.client.images.get(ref).id
            except docker.errors.ImageNotFound:
                pass
            try:
                after = self.client.images.pull(repo, tag=tag).id
            except docker.errors.APIError as exc:
                raise DeployError(f"host {self.plan.host}: cannot pull {ref}: "
                                  f"{exc.explanation or exc}") from None
            if after != before:
                pulled.append(ref)
        return pulled

    def ensure_volumes(self) -> list[str]:
        made = []
        for vol in self.plan.volumes:
            try:
                self.client.volumes.get(vol)
            except docker.errors.NotFound:
                if not self.dry_run:
                    self.client.volumes.create(vol, labels={MANAGED_LABEL: "true"})
                made.append(vol)
        return made

    def create(self, spec: ContainerSpec, spec_hash: str, extra_env: dict[str, str] | None = None,
               extra_labels: dict[str, str] | None = None) -> Any:
        labels = dict(spec.labels)
        labels.update({SPEC_LABEL: spec_hash, SERVICE_LABEL: spec.service, MANAGED_LABEL: "true"})
        labels.update(extra_labels or {})
        restart = {"Name": spec.restart_policy} if spec.restart_policy != "no" else None
        kwargs: dict[str, Any] = dict(
            image=spec.image, name=spec.name, environment=dict(spec.environment, **(extra_env or {})),
            volumes=spec.volumes, network_mode=spec.network_mode, labels=labels,
            cap_add=spec.cap_add or None, stop_signal="SIGTERM", detach=True,
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

    def spec_of(self, name: str) -> ContainerSpec | None:
        return next((s.container for p in self.plan.phases for s in p.steps
                     if s.kind in ("container", "galera") and s.container and s.container.name == name), None)

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
        spec = self.spec_of(name)
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

    def do_galera(self, step: Step) -> tuple[str, str]:
        """A Galera member: join the running cluster, or form it on the first host.

        A new cluster is formed only by the first host, only when no peer
        answers and only if this host never formed one before; otherwise the
        cluster is down and must be restarted from its most advanced node
        (``stackyard mariadb-recovery``), never from whichever host runs first.
        """
        spec = step.container
        assert spec is not None
        want = self.spec_hash(spec)
        current = self.find(spec.name)
        if current is not None and current.labels.get(SPEC_LABEL) == want and current.status == "running":
            return UNCHANGED, "running"
        peers = [p for p in step.params.get("peers", []) if tcp_open(p)]
        if current is not None and current.labels.get(SPEC_LABEL) == want:
            if self.dry_run:
                return CHANGED, "would start"
            if not peers and step.params.get("peers"):
                raise DeployError(f"host {self.plan.host}: mariadb is stopped and no Galera peer is up: "
                                  f"the cluster is down; run 'stackyard mariadb-recovery'")
            current.start()
            return CHANGED, "started (joins the cluster)"
        if peers or not step.params.get("peers"):
            if self.dry_run:
                return CHANGED, "would create" if current is None else "would recreate"
            if current is not None:
                self.remove(current, spec.stop_timeout)
            self.create(spec, want).start()
            return CHANGED, ("joined the cluster via " + peers[0]) if peers else "created"
        if not step.params.get("first"):
            raise DeployError(f"host {self.plan.host}: no Galera peer answers "
                              f"({', '.join(step.params['peers'])}); the first mariadb host forms the "
                              f"cluster: deploy it first, or run 'stackyard mariadb-recovery'")
        if GALERA_FORMED in self.jobs.data or current is not None:
            raise DeployError(f"host {self.plan.host}: the Galera cluster this host belongs to is down; "
                              f"run 'stackyard mariadb-recovery' to restart it from the most advanced node")
        if self.dry_run:
            return CHANGED, "would form a new cluster"
        self.bootstrap_cluster(spec, want)
        return CHANGED, "formed a new cluster"

    def bootstrap_cluster(self, spec: ContainerSpec, want: str, existing: Any = None) -> None:
        """Start this member with --wsrep-new-cluster (galera-start reads the env)."""
        if existing is not None:
            self.remove(existing, spec.stop_timeout)
        self.create(spec, want, extra_env={GALERA_NEW_CLUSTER_ENV: "1"},
                    extra_labels={GALERA_BOOTSTRAP_LABEL: "true"}).start()
        self.jobs.record(GALERA_FORMED, "1")

    def do_galera_finalize(self, step: Step) -> tuple[str, str]:
        """Restart the node that formed the cluster as an ordinary member.

        Left in bootstrap mode, a later restart of that container would form
        a second, empty cluster; restarted now, it rejoins the others by IST.
        """
        name = step.params["container"]
        current = self.find(name)
        if current is None or current.labels.get(GALERA_BOOTSTRAP_LABEL) != "true":
            return UNCHANGED, "member"
        if not any(tcp_open(p) for p in step.params.get("peers", [])):
            return UNCHANGED, "no other member yet: stays the bootstrap node"
        if self.dry_run:
            return CHANGED, "would restart as a member"
        spec = self.spec_of(name)
        assert spec is not None
        self.remove(current, spec.stop_timeout)
        self.create(spec, self.spec_hash(spec)).start()
        self.do_wait(Step("wait", name, params={"timeout": step.params.get("timeout", 300)}))
        return CHANGED, "restarted as a cluster member"

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
        """Host preparation the containers rely on: shared mounts, veths."""
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
    def prepare(self) -> None:
        """Volumes, config files and images: what every later step relies on."""
        host = self.plan.host
        made = self.ensure_volumes()
        for vol in made:
            self.say(f"{host}: volume {vol} {'would be created' if self.dry_run else 'created'}")
        self.report.files_changed = sync_files(self.plan, self.dry_run)
        for path in self.report.files_changed:
            self.say(f"{host}: file {path} {'would change' if self.dry_run else 'written'}")
        for ref in self.ensure_images():
            self.say(f"{host}: image {ref} {'would be pulled' if self.dry_run else 'pulled'}")
            self.report.results.append(StepResult(host, "prepare", "pull", ref, CHANGED))

    def run_steps(self, only_phases: set[str] | None = None,
                  select: dict[str, list[str]] | None = None) -> None:
        """Run the plan's steps in order; ``select`` maps phase -> step keys to run."""
        handlers = self.handlers()
        for phase in self.plan.phases:
            if only_phases is not None and phase.name not in only_phases:
                continue
            if select is not None and phase.name not in select:
                continue
            wanted = set(select[phase.name]) if select is not None else None
            for step in phase.steps:
                if wanted is not None and step.key not in wanted:
                    continue
                t0 = time.monotonic()
                handler = handlers.get(step.kind)
                if handler is None:
                    raise DeployError(f"host {self.plan.host}: {phase.name}/{step.name}: step kind "
                                      f"'{step.kind}' cannot run here")
                try:
                    status, detail = handler(step)
                except DeployError as exc:
                    self._record(phase.name, step, FAILED, t0, str(exc))
                    raise
                except docker.errors.DockerException as exc:
                    msg = f"host {self.plan.host}: {phase.name}/{step.name}: engine error: {exc}"
                    self._record(phase.name, step, FAILED, t0, msg)
                    raise DeployError(msg) from None
                self._record(phase.name, step, status, t0, detail)

    def run(self, only_phases: set[str] | None = None) -> ApplyReport:
        start = time.monotonic()
        self.prepare()
        self.run_steps(only_phases)
        self.report.seconds = time.monotonic() - start
        return self.report

    def _record(self, phase: str, step: Step, status: str, t0: float, detail: str) -> None:
        r = StepResult(self.plan.host, phase, step.kind, step.name, status,
                       round(time.monotonic() - t0, 2), detail)
        self.report.results.append(r)
        mark = {"changed": "[yellow]changed[/yellow]", "unchanged": "[green]ok[/green]",
                "failed": "[bold red]failed[/bold red]"}[status]
        self.say(f"{r.host}: {phase:<10} {step.kind:<14} {step.name:<26} {mark} {detail} ({r.seconds:.1f}s)")


# ----------------------------------------------------------------------------- operations
def galera_position(client: Any, spec: ContainerSpec) -> dict[str, Any]:
    """uuid/seqno of a stopped member's data, read by galera-recover in a one-off
    container on the member's volume and config (it may need mariadbd --wsrep-recover)."""
    try:
        out = client.containers.run(spec.image, ["galera-recover"], volumes=spec.volumes,
                                    environment={"KOLLA_CONFIG_STRATEGY": "COPY_ALWAYS"},
                                    network_mode="host", remove=True, stderr=False)
    except docker.errors.ContainerError as exc:
        raise DeployError(f"galera-recover failed: {exc.stderr.decode(errors='replace').strip() if exc.stderr else exc}")
    lines = out.decode(errors="replace").strip().splitlines()
    return json.loads(lines[-1])


def container_health(client: Any, spec: ContainerSpec) -> tuple[bool, str]:
    """Is a planned container running and healthy? Returns (ok, "status, health X").

    A container still "starting" gets its healthcheck run now rather than
    reported as not ready (the engine's first check waits a whole interval).
    """
    try:
        c = client.containers.get(spec.name)
    except docker.errors.NotFound:
        return False, "missing"
    state = c.attrs["State"]
    health = state.get("Health", {}).get("Status", "none")
    if state.get("Running") and health == "starting" and spec.healthcheck:
        health = "healthy" if run_healthcheck(c, spec.healthcheck.test)[0] else "unhealthy"
    ok = bool(state.get("Running")) and health in ("healthy", "none")
    return ok, f"{state.get('Status')}, health {health}"


def host_prechecks(client: Any, address: str, ports: dict[int, str], images: list[str]) -> list[str]:
    """Before a deploy: each port free on ``address`` unless its owning container
    (``ports``: port -> container name) already holds it, and every image on the
    host or, for an image named with a registry, in that registry."""
    problems = []
    running = {c.name for c in client.containers.list(filters={"label": MANAGED_LABEL})}
    for port, owner in sorted(ports.items()):
        if owner in running:
            continue  # ours already holds it
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((address, port))
            except OSError as exc:
                problems.append(f"port {address}:{port} for {owner} is in use ({exc.strerror})")
    for ref in images:
        try:
            client.images.get(ref)
            continue
        except docker.errors.ImageNotFound:
            pass
        if not has_registry(ref):
            problems.append(f"image {ref} is missing (run 'stackyard build')")
            continue
        try:
            client.images.get_registry_data(ref)
        except docker.errors.APIError as exc:
            problems.append(f"image {ref} is neither on the host nor in its registry "
                            f"({exc.explanation or exc}): push it with 'stackyard build --push'")
    return problems


def stop_containers(client: Any, names: list[str] | None = None, timeout: int = 60) -> list[str]:
    """Stop stackyard's containers (all, or those named); returns the names stopped."""
    stopped = []
    for c in client.containers.list(filters={"label": MANAGED_LABEL}):
        if names is None or c.name in names:
            c.stop(timeout=timeout)
            stopped.append(c.name)
    return stopped
