"""Make one host look like its plan: the executor that runs ON that host.

Files, volumes, images, host resources, containers, one-shot jobs, health
waits, Galera membership. For each step it observes the engine, asks
:mod:`.decide` or :mod:`.galera` what to do (pure), then does it; a dry run
stops after the decision. API steps (databases, Keystone) run on the deploy
host instead (:mod:`stackyard.deploy.apply` adds them to this executor).

Rules: files are written only when content, mode or owner differ; a container
is created or recreated only when its spec hash (spec + image ID + hashes of
the config files it mounts) changed; a one-shot job runs only when its own
spec hash changed since its last success (recorded on the host). Everything
else is left running untouched, so a re-run with no change changes nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import galera, resources
from .decide import Act, Action, container_action, create_request, foreign, job_action
from .engine import Engine
from .errors import DeployError, EngineError
from .model import SPEC_LABEL, ConfigFile, ContainerSpec, HostPlan, Step, StepKind

CHANGED, UNCHANGED, FAILED = "changed", "unchanged", "failed"
STATE_DIR = ".stackyard"

Printer = Callable[[str], None]
Handler = Callable[[Step], tuple[str, str]]


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


def write_atomic(path: Path, text: str, mode: int = 0o600, uid: int = -1, gid: int = -1) -> None:
    """Write ``text`` to a temporary file beside ``path`` (mode and owner set first), then rename.

    A crash leaves either the old file or the new one, never half of one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            os.fchmod(fh.fileno(), mode)
            if uid >= 0 or gid >= 0:
                os.fchown(fh.fileno(), uid, gid)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_file(f: ConfigFile) -> None:
    p = Path(f.path)
    p.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(p.parent, 0o755)
    write_atomic(p, f.content, f.mode, f.uid, f.gid)


def sync_files(plan: HostPlan, dry_run: bool = False) -> list[str]:
    changed = [f.path for f in plan.files if file_differs(f)]
    if not dry_run:
        for f in plan.files:
            if f.path in changed:
                write_file(f)
    return changed


def has_registry(ref: str) -> bool:
    """Docker's rule: the first path component names a registry if it has a dot,
    a port or is localhost (``10.0.0.1:5000/stackyard/keystone:2025.1``)."""
    first, sep, _ = ref.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


# ----------------------------------------------------------------------------- state
class JobState:
    """Spec hashes of one-shot jobs that succeeded on this host (``<root>/.stackyard/jobs.json``).

    Written atomically; a file that does not parse is an error, never an empty
    state: it also holds the guard against forming a second Galera cluster.
    """

    def __init__(self, root: str):
        self.path = Path(root) / STATE_DIR / "jobs.json"
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError) as exc:
            raise DeployError(f"{self.path}: unreadable job state ({exc}); it records which bootstrap "
                              f"jobs ran and whether this host formed a Galera cluster: restore it "
                              f"from a backup or fix it by hand") from None
        if not isinstance(data, dict):
            raise DeployError(f"{self.path}: job state must be a JSON object")
        self.data: dict[str, str] = data

    def get(self, name: str) -> str | None:
        return self.data.get(name)

    def record(self, name: str, spec_hash: str) -> None:
        self.data[name] = spec_hash
        write_atomic(self.path, json.dumps(self.data, indent=2, sort_keys=True) + "\n", 0o600)


def plan_path(root: str) -> Path:
    return Path(root) / STATE_DIR / "plan.json"


def store_plan(plan: HostPlan) -> bool:
    """Keep the applied plan on the host (0600, it holds secrets): ``stop``,
    ``check``, ``destroy`` and later steps read it. Returns whether it changed."""
    path = plan_path(plan.config_root)
    text = json.dumps(plan.to_wire(), sort_keys=True)
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    write_atomic(path, text, 0o600)
    return True


def load_plan(root: str) -> HostPlan | None:
    """The plan last applied on this host, or None when none was stored."""
    try:
        return HostPlan.from_wire(json.loads(plan_path(root).read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DeployError(f"{plan_path(root)}: unreadable stored plan: {exc}") from None


# ----------------------------------------------------------------------------- health
def run_healthcheck(engine: Engine, name: str, test: list[str]) -> tuple[bool, str]:
    """Run a container's healthcheck test now (the engine's first check waits an interval)."""
    cmd = ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else list(test[1:])
    try:
        code, out = engine.exec(name, cmd)
    except EngineError as exc:  # e.g. restarting between two calls
        return False, str(exc)
    lines = out.strip().splitlines()
    return code == 0, lines[-1] if lines else ""


def container_health(engine: Engine, spec: ContainerSpec) -> tuple[str, str]:
    """A planned container's health: (verdict, "status, health X[: output]").

    The verdict is ``healthy`` (running, and its healthcheck passes or it has
    none), ``starting`` (its first check has not run yet and running it now
    fails), ``unhealthy`` or ``missing``/``stopped``. A container still
    "starting" gets its check run now rather than reported as not ready.
    """
    c = engine.container(spec.name)
    if c is None:
        return "missing", "missing"
    if not c.running:
        return "stopped", f"{c.status} (exit {c.exit_code})"
    health, output = c.health, ""
    if health == "starting" and spec.healthcheck:
        ok, output = run_healthcheck(engine, spec.name, spec.healthcheck.test)
        health = "healthy" if ok else "starting"
    elif health == "unhealthy" and spec.healthcheck:
        output = run_healthcheck(engine, spec.name, spec.healthcheck.test)[1]
    verdict = "healthy" if health in ("healthy", "none") else health
    return verdict, f"{c.status}, health {health}" + (f": {output}" if output and verdict != "healthy" else "")


# ----------------------------------------------------------------------------- executor
class TargetApplier:
    """Applies the host-local steps of one HostPlan on ``engine``."""

    def __init__(self, engine: Engine | None, plan: HostPlan, printer: Printer, dry_run: bool = False,
                 pull: str = "missing"):
        self.engine = engine
        self.plan = plan
        self.say = printer
        self.dry_run = dry_run
        #: ``missing``: pull an image only when the engine lacks it; ``always``; ``never``
        self.pull = pull
        self.report = ApplyReport()
        self.file_hashes = plan.file_hashes()
        self._jobs: JobState | None = None
        self._image_ids: dict[str, str] = {}

    @property
    def jobs(self) -> JobState:
        if self._jobs is None:
            self._jobs = JobState(self.plan.config_root)
        return self._jobs

    @property
    def eng(self) -> Engine:
        if self.engine is None:
            raise DeployError(f"host {self.plan.host}: no container engine for host-local steps")
        return self.engine

    def handlers(self) -> dict[StepKind, Handler]:
        return {StepKind.CONTAINER: self.do_container, StepKind.JOB: self.do_job, StepKind.WAIT: self.do_wait,
                StepKind.HOST: self.do_host, StepKind.EXEC: self.do_exec, StepKind.GALERA: self.do_galera,
                StepKind.GALERA_FINALIZE: self.do_galera_finalize}

    # -- observing ------------------------------------------------------------------
    def image_id(self, ref: str) -> str:
        if ref not in self._image_ids:
            found = self.eng.image_id(ref)
            if found is None:
                raise DeployError(f"host {self.plan.host}: image {ref} is not present; run 'stackyard build' "
                                  f"(or push it to docker_registry)")
            self._image_ids[ref] = found
        return self._image_ids[ref]

    def spec_hash(self, spec: ContainerSpec) -> str:
        return spec.spec_hash(self.image_id(spec.image), self.file_hashes)

    # -- acting -----------------------------------------------------------------------
    def create(self, spec: ContainerSpec, spec_hash: str, extra_env: dict[str, str] | None = None,
               extra_labels: dict[str, str] | None = None) -> None:
        self.eng.create(create_request(spec, spec_hash, extra_env=extra_env, extra_labels=extra_labels))

    def replace(self, spec: ContainerSpec, spec_hash: str, action: Action, **extra: Any) -> None:
        """Perform a container action: start, or (re)create and start."""
        if action.act == Act.START:
            self.eng.start(spec.name)
            return
        if action.act == Act.RECREATE:
            self.eng.stop(spec.name, spec.stop_timeout)
            self.eng.remove(spec.name)
        self.create(spec, spec_hash, **extra)
        self.eng.start(spec.name)

    def ensure_images(self) -> list[str]:
        """Pull the plan's images from their registry as the pull policy says."""
        pulled = []
        for ref in self.plan.images():
            if self.pull == "never" or not has_registry(ref):
                continue  # no registry in the reference: images come from a local build
            before = self.eng.image_id(ref)
            if self.pull == "missing" and before is not None:
                continue
            if self.dry_run:
                pulled.append(ref)
                continue
            try:
                after = self.eng.pull(ref)
            except EngineError as exc:
                raise DeployError(f"host {self.plan.host}: cannot pull {ref}: {exc}") from None
            if after != before:
                pulled.append(ref)
        return pulled

    def ensure_volumes(self) -> list[str]:
        made = []
        for vol in self.plan.volumes:
            if not self.eng.volume_exists(vol):
                if not self.dry_run:
                    self.eng.create_volume(vol, resources.volume_labels(self.plan))
                made.append(vol)
        return made

    # -- steps ------------------------------------------------------------------------
    def do_container(self, step: Step) -> tuple[str, str]:
        spec = step.container
        assert spec is not None
        want = self.spec_hash(spec)
        action = container_action(want, self.eng.container(spec.name), self.plan.deployment)
        return self._perform(spec, want, action)

    def _perform(self, spec: ContainerSpec, want: str, action: Action, **extra: Any) -> tuple[str, str]:
        if action.act == Act.FAIL:
            raise DeployError(f"host {self.plan.host}: {action.detail}")
        if not action.changes:
            return UNCHANGED, action.detail
        if not self.dry_run:
            self.replace(spec, want, action, **extra)
        return CHANGED, action.describe(self.dry_run)

    def do_job(self, step: Step) -> tuple[str, str]:
        spec = step.container
        assert spec is not None
        want = self.spec_hash(spec)
        action = job_action(want, self.jobs.get(spec.name))
        if action.changes and step.params.get("record_only"):
            # an upgrade did this job's work with its own steps: remember it as done
            if not self.dry_run:
                self.jobs.record(spec.name, want)
            return CHANGED, "recorded as done by the upgrade"
        if not action.changes or self.dry_run:
            return (CHANGED if action.changes else UNCHANGED), action.describe(self.dry_run)
        refusal = foreign(self.eng.container(spec.name), self.plan.deployment)
        if refusal is not None:
            raise DeployError(f"host {self.plan.host}: {refusal.detail}")
        self.eng.remove(spec.name)
        self.create(spec, want)
        self.eng.start(spec.name)
        code = self.eng.wait(spec.name, float(step.params.get("timeout", 1800)))
        output = self.eng.logs(spec.name)
        log_path = Path(self.plan.config_root) / STATE_DIR / "logs" / f"{spec.name}.log"
        write_atomic(log_path, output, 0o600)
        self.eng.remove(spec.name)
        if code != 0:
            lines = output.strip().splitlines()
            raise DeployError(f"host {self.plan.host}: job {spec.name} exited {code}: "
                              f"{lines[-1] if lines else '(no output)'} (log: {log_path})")
        self.jobs.record(spec.name, want)
        return CHANGED, action.describe(False)

    def do_wait(self, step: Step) -> tuple[str, str]:
        """Wait for a container's healthcheck, then for its ``ready`` check if the step has one.

        ``ready`` is a command (argv) run in the container for what the container's own check
        does not cover but the next steps need: neutron-server's API answers
        before its RPC workers consume, and an agent started before that loses
        its first call (a 60 s RPC timeout).
        """
        if self.dry_run:
            return UNCHANGED, "skipped (dry run)"
        name = step.name
        timeout = float(step.params.get("timeout", 120))
        deadline = time.monotonic() + timeout
        spec = self.plan.spec_of(name)
        test = spec.healthcheck.test if spec and spec.healthcheck else None
        ready = list(step.params.get("ready") or [])
        state, last = "", ""
        while True:
            c = self.eng.container(name)
            if c is None:
                raise DeployError(f"host {self.plan.host}: container {name} vanished while waiting for it")
            if not c.running:
                if c.status not in ("restarting", "created"):
                    tail = self.eng.logs(name, tail=5).strip().splitlines()
                    raise DeployError(f"host {self.plan.host}: container {name} is {c.status} "
                                      f"(exit {c.exit_code}): {tail[-1] if tail else 'no output'}")
            elif c.health == "healthy":
                state = "healthy"
            elif test is None:
                state = "running"
            else:
                ok, last = run_healthcheck(self.eng, name, test)
                state = "healthy" if ok else ""
            if state and not ready:
                return UNCHANGED, state
            if state:
                ok, last = run_healthcheck(self.eng, name, ["CMD", *ready])
                if ok:
                    return UNCHANGED, f"{state}, {last.strip() or 'ready'}"
            if time.monotonic() > deadline:
                raise DeployError(f"host {self.plan.host}: {name} not healthy after {timeout:.0f}s: {last}")
            time.sleep(1)

    def do_galera(self, step: Step) -> tuple[str, str]:
        """A Galera member: join the running cluster, or form it (rules in :mod:`.galera`)."""
        spec = step.container
        assert spec is not None
        want = self.spec_hash(spec)
        current = self.eng.container(spec.name)
        refusal = foreign(current, self.plan.deployment)
        if refusal is not None:
            raise DeployError(f"host {self.plan.host}: {refusal.detail}")
        peers = list(step.params.get("peers", []))
        running = current is not None and current.running and current.labels.get(SPEC_LABEL) == want
        obs = galera.Observed(want=want, current=current, peers=peers,
                              peers_up=[] if running else [p for p in peers if resources.tcp_open(p)],
                              first=bool(step.params.get("first")),
                              formed_before=self.jobs.get(galera.FORMED_KEY) is not None)
        action = galera.member_action(obs)
        if action.act != Act.FORM:
            return self._perform(spec, want, action)
        if not self.dry_run:
            self.bootstrap_cluster(spec, want)
        return CHANGED, action.describe(self.dry_run)

    def bootstrap_cluster(self, spec: ContainerSpec, want: str) -> None:
        """Start this member with --wsrep-new-cluster (galera-start reads the env)."""
        if self.eng.container(spec.name) is not None:
            self.eng.stop(spec.name, spec.stop_timeout)
            self.eng.remove(spec.name)
        self.create(spec, want, extra_env={galera.NEW_CLUSTER_ENV: "1"},
                    extra_labels={galera.BOOTSTRAP_LABEL: "true"})
        self.eng.start(spec.name)
        self.jobs.record(galera.FORMED_KEY, "1")

    def do_galera_finalize(self, step: Step) -> tuple[str, str]:
        name = step.params["container"]
        current = self.eng.container(name)
        peers_up = [p for p in step.params.get("peers", []) if resources.tcp_open(p)]
        action = galera.finalize_action(current, peers_up)
        if not action.changes:
            return UNCHANGED, action.detail
        if self.dry_run:
            return CHANGED, "would restart as a member"
        spec = self.plan.spec_of(name)
        assert spec is not None
        self.replace(spec, self.spec_hash(spec), action)
        self.do_wait(Step(StepKind.WAIT, name, params={"timeout": step.params.get("timeout", 300)}))
        return CHANGED, "restarted as a cluster member"

    def do_exec(self, step: Step) -> tuple[str, str]:
        """Run a command in a container unless a check command already succeeds."""
        p = step.params
        if self.eng.container(p["container"]) is None:
            if self.dry_run:
                return CHANGED, f"would run in {p['container']}"
            raise DeployError(f"host {self.plan.host}: container {p['container']} is missing for {step.name}")
        if p.get("unless") and self.eng.exec(p["container"], p["unless"])[0] == 0:
            return UNCHANGED, "in place"
        if self.dry_run:
            return CHANGED, "would run"
        code, out = self.eng.exec(p["container"], p["command"])
        if code != 0:
            lines = out.strip().splitlines()
            raise DeployError(f"host {self.plan.host}: {step.name}: {' '.join(p['command'])} exited "
                              f"{code}: {lines[-1] if lines else ''}")
        return CHANGED, "applied"

    def do_host(self, step: Step) -> tuple[str, str]:
        """The host resources a service's containers rely on (declared in the plan)."""
        owned = [r for r in self.plan.resources if r.service == step.params.get("service")]
        changed = resources.ensure(owned, self.dry_run)
        return (CHANGED, ", ".join(changed)) if changed else (UNCHANGED, "ready")

    # -- driver -------------------------------------------------------------------------
    def prepare(self) -> None:
        """Volumes, config files, images and the stored plan: what every later step relies on."""
        host = self.plan.host
        for vol in self.ensure_volumes():
            self.say(f"{host}: volume {vol} {'would be created' if self.dry_run else 'created'}")
        self.report.files_changed = sync_files(self.plan, self.dry_run)
        for path in self.report.files_changed:
            self.say(f"{host}: file {path} {'would change' if self.dry_run else 'written'}")
        if not self.dry_run:
            store_plan(self.plan)
        for ref in self.ensure_images():
            self.say(f"{host}: image {ref} {'would be pulled' if self.dry_run else 'pulled'}")
            self.report.results.append(StepResult(host, "prepare", "pull", ref, CHANGED))

    def run_steps(self, only_phases: set[str] | None = None,
                  select: dict[str, list[str]] | None = None) -> None:
        """Run the plan's steps in order, deferred ones last; ``select`` maps phase -> step keys to run."""
        handlers = self.handlers()
        deferred: list[tuple[str, Step]] = []
        for phase in self.plan.phases:
            if only_phases is not None and phase.name not in only_phases:
                continue
            if select is not None and phase.name not in select:
                continue
            wanted = set(select[phase.name]) if select is not None else None
            for step in phase.steps:
                if wanted is not None and step.key not in wanted:
                    continue
                if step.deferred:
                    deferred.append((phase.name, step))
                    continue
                self._run_step(handlers, phase.name, step)
        # readiness checks nothing in between relied on: their waits overlapped with the later phases
        for phase_name, step in deferred:
            self._run_step(handlers, phase_name, step)

    def _run_step(self, handlers: dict[StepKind, Handler], phase: str, step: Step) -> None:
        t0 = time.monotonic()
        handler = handlers.get(step.kind)
        if handler is None:
            raise DeployError(f"host {self.plan.host}: {phase}/{step.name}: step kind "
                              f"'{step.kind}' cannot run here")
        try:
            status, detail = handler(step)
        except DeployError as exc:
            self._record(phase, step, FAILED, t0, str(exc))
            raise
        except EngineError as exc:
            msg = f"host {self.plan.host}: {phase}/{step.name}: {exc}"
            self._record(phase, step, FAILED, t0, msg)
            raise DeployError(msg) from None
        self._record(phase, step, status, t0, detail)

    def run(self, only_phases: set[str] | None = None) -> ApplyReport:
        start = time.monotonic()
        self.prepare()
        self.run_steps(only_phases)
        self.report.seconds = time.monotonic() - start
        return self.report

    def _record(self, phase: str, step: Step, status: str, t0: float, detail: str) -> None:
        r = StepResult(self.plan.host, phase, str(step.kind), step.name, status,
                       round(time.monotonic() - t0, 2), detail)
        self.report.results.append(r)
        mark = {"changed": "[yellow]changed[/yellow]", "unchanged": "[green]ok[/green]",
                "failed": "[bold red]failed[/bold red]"}[status]
        self.say(f"{r.host}: {phase:<10} {r.kind:<14} {step.name:<26} {mark} {detail} ({r.seconds:.1f}s)")
