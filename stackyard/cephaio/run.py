"""The executor: applies the plan of :mod:`stackyard.cephaio.plan` with the container engine.

Thin on purpose: it reads state (state.json, the engine's containers and
volumes, ``ceph status`` and the auth and pool lists), asks the pure
functions what to do, does it, and reports each change in one line. A second
``up`` on a running cluster therefore finds nothing to do and says so.

Ceph commands run inside the monitor container (which holds client.admin's
key) through ``stackyard-ceph-admin``: one process and one librados
connection per batch of commands, with the commands (and any key in them) in
the exec's environment, never on a command line.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackyard import engine as engine_mod
from stackyard.agent.ops import bind_error
from stackyard.cephaio import plan as P
from stackyard.cephaio import state as S
from stackyard.deploy.config import load_globals
from stackyard.engine import Engine
from stackyard.errors import ConfigError, DeployError, EngineError, ImageNotFoundError

#: stackyard-ceph-admin's input variable and exit statuses
ADMIN = "stackyard-ceph-admin"
ADMIN_ENV = "STACKYARD_CEPH_COMMANDS"
ADMIN_UNREACHABLE = 2
LOG_LINES = 25
#: seconds a ready cluster gets to report HEALTH_OK before up returns with its warnings
HEALTH_GRACE = 20

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# --------------------------------------------------------------------------- inputs
def resolve(configdir: str | Path, namespace: str | None = None, name_prefix: str | None = None, *,
            extra_vars: Mapping[str, Any] | None = None, **settings: Any) -> tuple[P.Settings, P.CephOptions]:
    """The cluster's settings and the kolla options, from ``configdir``'s globals.yml.

    Images follow the deployment (``docker_registry``, ``docker_namespace``,
    ``openstack_tag``) and so does the name prefix (``stackyard_name_prefix``),
    unless ``namespace`` or ``name_prefix`` is given. A missing globals.yml
    means kolla-ansible's defaults. ``settings`` are further
    :class:`~stackyard.cephaio.plan.Settings` fields (ports, OSD size).
    """
    root = Path(configdir).absolute()
    variables, _warnings = load_globals(root, dict(extra_vars or {}))
    tag = str(variables.get("openstack_tag") or variables.get("openstack_release") or "2025.1")
    values = dict(
        configdir=str(root),
        name_prefix=str(variables.get("stackyard_name_prefix") or "") if name_prefix is None else name_prefix,
        registry=str(variables.get("docker_registry") or ""),
        namespace=namespace or str(variables.get("docker_namespace") or "stackyard"),
        tag=tag)
    unknown = sorted(set(settings) - set(P.Settings.__dataclass_fields__) - {"configdir"})
    if unknown:
        raise ConfigError(f"ceph-aio: unknown setting(s) {', '.join(unknown)}")
    values.update({k: v for k, v in settings.items() if v is not None})
    result = P.Settings(**values)
    result.check()
    return result, P.options_from_globals(variables, str(root / "globals.yml"))


def images(settings: P.Settings) -> list[str]:
    """The image references the cluster runs."""
    return [settings.image(f"ceph-{role}") for role in P.ROLES]


def missing_images(engine: Engine, settings: P.Settings) -> list[str]:
    return [ref for ref in images(settings) if engine.image(ref) is None]


# --------------------------------------------------------------------------- results
@dataclass
class UpResult:
    fsid: str
    settings: P.Settings
    options: P.CephOptions
    #: one line per change; empty when the cluster was already as planned
    changed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    health: str = ""
    checks: dict[str, str] = field(default_factory=dict)
    #: the client files of kolla's layout (absolute paths)
    files: list[str] = field(default_factory=list)

    @property
    def nothing_changed(self) -> bool:
        return not self.changed

    def to_dict(self) -> dict[str, Any]:
        return {"fsid": self.fsid, "changed": self.changed, "seconds": round(self.seconds, 1),
                "health": self.health, "checks": self.checks, "files": self.files,
                "pools": self.options.pools, "users": self.options.users,
                "containers": [self.settings.container(r) for r in P.ROLES],
                "mon_host": self.settings.mon_host, "globals": list(P.BACKEND_LINES)}


@dataclass
class DownResult:
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    #: client files left in place because they were changed after ceph-aio wrote them
    kept: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return ([f"removed container {n}" for n in self.containers]
                + [f"removed volume {n}" for n in self.volumes]
                + [f"removed {p}" for p in self.paths]
                + [f"kept {p} (changed since ceph-aio wrote it)" for p in self.kept])


@dataclass
class StatusResult:
    configdir: str
    fsid: str | None
    #: container name -> "running (healthy)", "exited (1)", "missing"
    containers: dict[str, str] = field(default_factory=dict)
    volumes: list[str] = field(default_factory=list)
    health: str = ""
    waiting: str = ""
    checks: dict[str, str] = field(default_factory=dict)
    files: dict[str, bool] = field(default_factory=dict)

    @property
    def up(self) -> bool:
        return bool(self.containers) and all(s.startswith("running") for s in self.containers.values()) \
            and self.waiting == "ready"

    def to_dict(self) -> dict[str, Any]:
        return {"configdir": self.configdir, "fsid": self.fsid, "up": self.up, "containers": self.containers,
                "volumes": self.volumes, "health": self.health, "waiting": self.waiting, "checks": self.checks,
                "files": self.files}


# --------------------------------------------------------------------------- helpers
def _label(settings: P.Settings) -> list[str]:
    return [f"{P.LABEL}={settings.configdir}"]


def write_file(path: Path, text: str, dir_mode: int = 0o755) -> bool:
    """Write ``text`` 0600 unless it is there already (and 0600); True when written."""
    try:
        if path.read_text() == text and (path.stat().st_mode & 0o777) == 0o600:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=dir_mode, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.stackyard-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return True


def admin(engine: Engine, settings: P.Settings, commands: list[P.Command], timeout: int = 30
          ) -> tuple[int, list[dict[str, Any]], str]:
    """Run ``commands`` as client.admin in the monitor container: (exit status, results, output)."""
    code, output = engine.exec(settings.container("mon"), [ADMIN, "--timeout", str(max(1, timeout))],
                               environment={ADMIN_ENV: json.dumps(commands)})
    results: list[dict[str, Any]] = []
    for line in reversed(output.splitlines()):
        if line.startswith("["):
            try:
                results = json.loads(line)
                break
            except ValueError:
                continue
    return code, results, output


def admin_checked(engine: Engine, settings: P.Settings, commands: list[P.Command], timeout: int = 30
                  ) -> list[dict[str, Any]]:
    """:func:`admin`, a failing command raising DeployError with the command and Ceph's message."""
    code, results, output = admin(engine, settings, commands, timeout)
    if code == 0 and len(results) == len(commands):
        return results
    if results and results[-1].get("rc"):
        failed = commands[len(results) - 1]
        raise DeployError(f"ceph-aio: '{P.describe(failed)}' failed in {settings.container('mon')}: "
                          f"{results[-1].get('err') or results[-1].get('rc')}")
    tail = " | ".join(output.strip().splitlines()[-3:])
    raise DeployError(f"ceph-aio: {ADMIN} failed in {settings.container('mon')} (exit {code}): {tail}")


def last_logs(engine: Engine, name: str, lines: int = LOG_LINES) -> str:
    try:
        text = engine.logs(name, tail=lines)
    except Exception as exc:  # the container may be gone; the error message is still worth showing
        return f"(no logs of {name}: {exc})"
    return "\n".join(f"  {name}| {line}" for line in text.rstrip().splitlines())


def _check_running(engine: Engine, settings: P.Settings) -> None:
    """A daemon container that stopped fails ``up`` now, with its last log lines."""
    for role in P.ROLES:
        name = settings.container(role)
        current = engine.container(name)
        if current is None or current.status in ("exited", "dead"):
            how = "is gone" if current is None else f"exited with status {current.exit_code}"
            raise DeployError(f"ceph-aio: {name} {how}; its last log lines:\n{last_logs(engine, name)}")


def ceph_status(engine: Engine, settings: P.Settings, timeout: int = 5) -> dict[str, Any] | None:
    """``ceph status`` as JSON, or None while the monitor does not answer."""
    try:
        code, results, _ = admin(engine, settings, [P.mon("status", format="json")], timeout)
    except EngineError:  # the container is (re)starting; _check_running names one that stopped
        return None
    if code != 0 or not results:
        return None
    try:
        return dict(json.loads(results[0]["out"]))
    except (ValueError, KeyError, TypeError):
        return None


# --------------------------------------------------------------------------- up
def up(configdir: str | Path, namespace: str | None = None, name_prefix: str | None = None, *,
       extra_vars: Mapping[str, Any] | None = None, engine: Engine | None = None, timeout: float = 180,
       say: Say = _quiet, **settings: Any) -> UpResult:
    """Make (or converge) the cluster of ``configdir`` and wait until it is ready; see the package doc."""
    started = time.monotonic()
    deadline = started + timeout
    cfg, opts = resolve(configdir, namespace, name_prefix, extra_vars=extra_vars, **settings)
    eng = engine or engine_mod.connect()
    missing = missing_images(eng, cfg)
    if missing:
        raise ImageNotFoundError(
            f"ceph-aio: image(s) {', '.join(missing)} not found; build them with `stackyard build "
            f"--namespace {cfg.namespace} --tag {cfg.tag} {' '.join(P.IMAGES)}` (`stackyard ceph-aio up` "
            f"builds missing images itself)")
    result = UpResult(fsid="", settings=cfg, options=opts)
    changed = result.changed

    st = _prepare_state(eng, cfg, opts, changed)
    result.fsid = st.secrets.fsid
    spath = S.state_path(cfg.state_dir)
    S.save(spath, st)

    daemons = P.daemons(cfg, st.secrets)
    for d in daemons:
        for name, text in d.files.items():
            if write_file(P.config_dir(cfg, d.role) / name, text, dir_mode=0o700):
                changed.append(f"wrote {P.config_dir(cfg, d.role) / name}")
    result.files = _write_client_files(cfg, opts, st, changed)
    S.save(spath, st)

    for d in daemons:
        for volume in d.volumes:
            if not eng.volume_exists(volume):
                eng.create_volume(volume, {P.LABEL: cfg.configdir})
                changed.append(f"created volume {volume}")
    for d in daemons:
        _converge_container(eng, cfg, d, changed, say)

    say("waiting for the monitor")
    status = _wait(eng, cfg, deadline, lambda s: s is not None and P.MON_ID in (s.get("quorum_names") or []),
                   "mon", "the monitor to form a quorum")
    commands = _converge_commands(eng, cfg, opts, st)
    if commands:
        say("creating pools and users")
        admin_checked(eng, cfg, commands, timeout=max(5, int(deadline - time.monotonic())))
        changed += [P.describe(c) for c in commands]
    st.users = sorted(P.client_caps(opts))
    st.pools = list(dict.fromkeys(st.pools + opts.pools))
    S.save(spath, st)

    expected = len(opts.pools)
    assert status is not None
    if commands or not P.readiness(status, expected).ready:
        say("waiting for the OSD and the placement groups")
        status = _wait(eng, cfg, deadline, lambda s: s is not None and P.readiness(s, expected).ready,
                       "osd", "the cluster to be ready")
        assert status is not None
    ready = P.readiness(status, expected)
    if ready.health != "HEALTH_OK":
        # health lags the maps by a manager tick or two (a pool just initialised still counts as
        # without application): give it a moment, then report what is left rather than fail
        grace = min(deadline, time.monotonic() + HEALTH_GRACE)
        while ready.health != "HEALTH_OK" and time.monotonic() < grace:
            time.sleep(0.5)
            status = ceph_status(eng, cfg) or status
            ready = P.readiness(status, expected)
    result.health, result.checks = ready.health, ready.checks
    result.seconds = time.monotonic() - started
    return result


def _prepare_state(eng: Engine, cfg: P.Settings, opts: P.CephOptions, changed: list[str]) -> S.State:
    """The cluster's state: the recorded one, or a new identity when there is no cluster."""
    spath = S.state_path(cfg.state_dir)
    st = S.load(spath)
    volumes = eng.volumes(_label(cfg))
    if st is None:
        if volumes:
            raise DeployError(
                f"ceph-aio: volume(s) {', '.join(volumes)} of a cluster exist but its state ({spath}) is "
                f"gone, so its keys are unknown; remove that cluster with `stackyard ceph-aio down "
                f"--configdir {cfg.configdir} --include-volumes` first")
        st = S.State(secrets=S.new_secrets(), settings=cfg.to_dict())
        changed.append(f"new cluster {st.secrets.fsid}")
    elif volumes:
        problems = P.changed_fixed_settings(st.settings, cfg)
        if problems:
            raise ConfigError(f"ceph-aio: the cluster in {cfg.configdir} was made with other settings ("
                              + "; ".join(problems) + "); `stackyard ceph-aio down --include-volumes` "
                              "removes it so `up` can make a new one")
    else:
        # the volumes are gone (removed by hand): the same identity is made again, with today's settings
        st.settings = cfg.to_dict()
    made = S.add_keys(st.secrets, P.missing_entities(st.secrets, opts), created=int(time.time()))
    if made and st.users:
        changed.append("new key(s) for " + ", ".join(made))
    return st


def _write_client_files(cfg: P.Settings, opts: P.CephOptions, st: S.State, changed: list[str]) -> list[str]:
    """Write kolla's external Ceph files; a file ceph-aio did not write (or that was edited) is refused."""
    files = P.client_files(cfg, opts, st.secrets)
    refused = []
    for rel, text in files.items():
        path = cfg.overrides_dir / rel
        try:
            current = path.read_text()
        except FileNotFoundError:
            continue
        if current != text and st.files.get(str(path)) != S.digest(current):
            refused.append(str(path))
    if refused:
        raise ConfigError("ceph-aio: " + ", ".join(refused) + " exist(s) and ceph-aio did not write them (or "
                          "they were changed since): move them away to use the test cluster")
    out = []
    for rel, text in files.items():
        path = cfg.overrides_dir / rel
        if write_file(path, text):
            changed.append(f"wrote {path}")
        st.files[str(path)] = S.digest(text)
        out.append(str(path))
    # a user or cluster renamed in globals.yml: the old user's keyring goes (if still as written)
    for path_text in sorted(set(st.files) - set(out)):
        path = Path(path_text)
        try:
            current = path.read_text()
        except FileNotFoundError:
            current = None
        if current is not None and S.digest(current) == st.files[path_text]:
            path.unlink()
            _prune_empty(path.parent, cfg.overrides_dir)
            changed.append(f"removed {path} (no longer in the layout)")
        del st.files[path_text]
    return out


def _converge_container(eng: Engine, cfg: P.Settings, d: P.DaemonPlan, changed: list[str], say: Say) -> None:
    current = eng.container(d.name)
    if current is not None and current.labels.get(P.LABEL) != cfg.configdir:
        owner = current.labels.get(P.LABEL) or "not ceph-aio"
        raise DeployError(f"ceph-aio: a container named {d.name} exists and is not this cluster's "
                          f"({owner}); choose another name prefix")
    if current is not None and current.labels.get(P.SPEC_LABEL) == d.request.labels[P.SPEC_LABEL]:
        if not current.running:
            eng.start(d.name)
            changed.append(f"started {d.name}")
        return
    if d.role == "mon" and (current is None or not current.running):
        for port in (cfg.mon_port, cfg.mon_v1_port):
            if bind_error(cfg.address, port):
                raise DeployError(f"ceph-aio: {cfg.address}:{port} is in use by another program (another "
                                  f"Ceph monitor?); the monitor of {d.name} needs it (choose other ports "
                                  f"with --mon-port/--mon-v1-port)")
    if current is not None:
        eng.stop(d.name, timeout=30)
        eng.remove(d.name)
    say(f"starting {d.name}")
    eng.create(d.request)
    eng.start(d.name)
    changed.append(("recreated " if current is not None else "started new ") + d.name)


def _wait(eng: Engine, cfg: P.Settings, deadline: float, done: Callable[[dict[str, Any] | None], bool],
          blame: str, what: str) -> dict[str, Any] | None:
    """Poll ``ceph status`` until ``done``; a stopped daemon or the deadline fails with its logs."""
    status: dict[str, Any] | None = None
    while True:
        _check_running(eng, cfg)
        status = ceph_status(eng, cfg, timeout=max(1, min(5, int(deadline - time.monotonic()))))
        if done(status):
            return status
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if status is None:
        detail, role = "the monitor does not answer", "mon"
    else:
        ready = P.readiness(status, 0)
        detail = ready.summary()
        role = ready.waiting[0][0] if ready.waiting else blame
    name = cfg.container(role)
    raise DeployError(f"ceph-aio: timed out waiting for {what}: {detail}. Last log lines of {name}:\n"
                      f"{last_logs(eng, name)}")


def _converge_commands(eng: Engine, cfg: P.Settings, opts: P.CephOptions, st: S.State) -> list[P.Command]:
    auth, pools = (json.loads(r["out"] or "null") for r in admin_checked(eng, cfg, P.observe_commands()))
    dump = (auth or {}).get("auth_dump") or []
    return (P.user_commands(P.wanted_users(opts, st.secrets), dump, st.users)
            + P.pool_commands(opts.pools, pools or []))


# --------------------------------------------------------------------------- down / status
def down(configdir: str | Path, *, include_volumes: bool = False, engine: Engine | None = None) -> DownResult:
    """Remove the cluster's containers; ``include_volumes`` also its data, state and client files.

    Only what carries this config dir's label goes: other clusters (another
    config dir) and the deployment's own containers are not touched. Without
    ``include_volumes`` the data, the keys and the client files stay, and the
    next ``up`` brings the same cluster back.
    """
    root = str(Path(configdir).absolute())
    eng = engine or engine_mod.connect()
    out = DownResult()
    label = [f"{P.LABEL}={root}"]
    found = {c.name: c for c in eng.containers(label)}
    # the OSD first (it reports to the monitor as it goes), the monitor last
    order = sorted(found, key=lambda n: next((i for i, r in enumerate(("osd", "mgr", "mon")) if n.endswith(r)), 9))
    for name in order:
        eng.stop(name, timeout=30)
        eng.remove(name)
        out.containers.append(name)
    if not include_volumes:
        return out
    for volume in eng.volumes(label):
        eng.remove_volume(volume)
        out.volumes.append(volume)
    state_dir = Path(root) / P.STATE_DIRNAME
    st = S.load(S.state_path(state_dir)) if state_dir.is_dir() else None
    for path_text, written in sorted((st.files if st else {}).items()):
        path = Path(path_text)
        try:
            current = path.read_text()
        except FileNotFoundError:
            continue
        if S.digest(current) == written:
            path.unlink()
            out.paths.append(str(path))
            _prune_empty(path.parent, Path(root) / "config")
        else:
            out.kept.append(str(path))
    if state_dir.is_dir():
        shutil.rmtree(state_dir)
        out.paths.append(str(state_dir))
    return out


def _prune_empty(directory: Path, stop: Path) -> None:
    """Remove ``directory`` and its parents up to (not including) ``stop`` while they are empty."""
    while directory != stop and stop in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


def status(configdir: str | Path, *, engine: Engine | None = None) -> StatusResult:
    """What runs (containers, volumes), what Ceph says and which client files are there."""
    root = str(Path(configdir).absolute())
    eng = engine or engine_mod.connect()
    st = S.load(S.state_path(Path(root) / P.STATE_DIRNAME))
    out = StatusResult(configdir=root, fsid=st.secrets.fsid if st else None)
    label = [f"{P.LABEL}={root}"]
    for c in eng.containers(label):
        full = eng.container(c.name) or c
        if full.running:
            out.containers[c.name] = f"running ({full.health})" if full.health != "none" else "running"
        else:
            out.containers[c.name] = f"{full.status} ({full.exit_code})"
    out.volumes = eng.volumes(label)
    if st:
        out.files = {p: Path(p).exists() for p in sorted(st.files)}
        cfg = P.Settings(**{**st.settings, "configdir": root}) if st.settings else None
        mon_name = cfg.container("mon") if cfg else None
        if cfg and mon_name and out.containers.get(mon_name, "").startswith("running"):
            ceph = ceph_status(eng, cfg)
            if ceph is None:
                out.waiting = "the monitor does not answer"
            else:
                ready = P.readiness(ceph, len(st.pools))
                out.health, out.checks = ready.health, ready.checks
                out.waiting = ready.summary()
    return out
