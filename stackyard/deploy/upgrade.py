"""``stackyard upgrade`` and ``stackyard rollback``, all-in-one or multi-host.

Upgrade (from the release recorded by the last deploy to the release
globals.yml names now, or to new images of the same release):

1. prechecks: the jump is supported (N to N+1, or SLURP to SLURP: YYYY.1 to
   YYYY+1.1); the new images exist; every container is healthy; MariaDB and
   RabbitMQ hop between versions they support;
2. new passwords the new release needs are generated (and reported);
3. an automatic backup (:mod:`.backup`), whose id is printed;
4. each service in deploy order, the way its own upgrade docs prescribe
   (``Service.upgrade``: jobs with the new image before its containers are
   recreated, the containers in order, jobs after); a service without such
   rules has its containers recreated. A container whose image and config
   did not change is not touched: the infrastructure images are the same
   image across releases, so MariaDB, RabbitMQ, Open vSwitch and libvirt
   (with the servers' QEMU processes) keep running;
5. post-checks: every container healthy and on the new images; the APIs'
   version documents before and after are reported.

Every step is re-runnable: jobs are recorded when they succeed, containers
converge, and a second ``stackyard upgrade`` after a crash resumes with the
backup taken by the first (``.stackyard/upgrade.json``).

Rollback restores the pre-upgrade backup (config and databases; schemas never
run backwards) with the cloud's control plane stopped and its data plane
running, then converges to the old images.

A multi-host deployment runs the same procedure through Ansible: the checks
are ``stackyard_host`` operations on every host, the backup's dump is made on
the first MariaDB host (:mod:`.backup`), and the upgrade plans run with
:func:`.multihost.run` with every phase ``serial``: a service's containers are
recreated host by host, never on every host at once.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from stackyard import releases
from stackyard.agent import ops as agent_ops
from stackyard.agent.hostapply import STATE_DIR, load_plan, write_atomic
from stackyard.agent.model import HostPlan, Phase, Step, StepKind
from stackyard.deploy import backup as backup_mod
from stackyard.deploy import multihost, ops, services, state
from stackyard.deploy.apply import apply_local, flush_memcached
from stackyard.deploy.passwords import genpwd
from stackyard.deploy.plan import Deployment, hosts_for
from stackyard.engine import Engine
from stackyard.errors import DeployError

UPGRADE_STATE = "upgrade.json"
Say = Callable[[str], None]


# ----------------------------------------------------------------------------- rules (pure)
def jump(current: str, target: str) -> str:
    """``update`` (same release, new images), ``upgrade`` (N to N+1, or SLURP to SLURP);
    anything else is refused in one line naming both releases."""
    try:
        a, b = releases.release_index(current), releases.release_index(target)
    except releases.ReleaseNameError as exc:
        raise DeployError(f"upgrade: {exc}") from None
    if b == a:
        return "update"
    if b < a:
        raise DeployError(f"upgrade: {current} -> {target} is a downgrade: use 'stackyard rollback' to go back")
    if b == a + 1 or (b == a + 2 and current.endswith(".1") and target.endswith(".1")):
        return "upgrade"
    raise DeployError(f"upgrade: {current} -> {target} skips a release: upgrade one release at a time, or "
                      f"between SLURP releases (YYYY.1 -> YYYY+1.1)")


def _major_minor(version: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", version)
    if not m:
        raise DeployError(f"upgrade: cannot read the version '{version}'")
    return int(m.group(1)), int(m.group(2))


def version_hop(kind: str, old: str, new: str) -> None:
    """Refuse a MariaDB or RabbitMQ version change its upgrade rules do not allow."""
    a, b = _major_minor(old), _major_minor(new)
    if b == a:
        return
    if b < a:
        raise DeployError(f"upgrade: {dict(mariadb='MariaDB', rabbitmq='RabbitMQ')[kind]} {old} -> {new} "
                          f"is a downgrade")
    if kind == "mariadb" and b[0] - a[0] > 1:
        raise DeployError(f"upgrade: MariaDB {old} -> {new} skips a major series; upgrade through each one")
    if kind == "rabbitmq" and not (b[0] == a[0] and b[1] == a[1] + 1) and not (b[0] == a[0] + 1 and b[1] == 0):
        raise DeployError(f"upgrade: RabbitMQ {old} -> {new}: RabbitMQ upgrades one minor version at a time "
                          f"(and to a new major only from the last minor of the previous one)")


def upgrade_phase(phase: Phase, prefix: str = "", caches: list[str] | None = None) -> Phase:
    """A service's phase, reordered and given its upgrade jobs (see ``Service.upgrade``).

    Every upgraded phase is ``serial``: on a multi-host deployment a service's
    containers are recreated host by host, never on every host at once (the
    all-in-one ignores the flag: it has one host).
    """
    svc = services.ALL.get(phase.name)
    rules = svc.upgrade if svc is not None else None
    if rules is None:
        return Phase(phase.name, [dataclasses.replace(s) for s in phase.steps], serial=True)
    steps = [dataclasses.replace(s) for s in phase.steps]
    containers = {s.name: s for s in steps if s.kind == StepKind.CONTAINER}
    replaced = {prefix + name for name in rules.replaces}
    for s in steps:
        if s.kind == StepKind.JOB and s.name in replaced:
            s.params = dict(s.params, record_only=True)

    def job(j: Any) -> Step:
        base = containers[prefix + j.container].container
        assert base is not None
        name = f"{prefix}upgrade_{phase.name}_{j.name}"
        spec = dataclasses.replace(
            base, name=name, environment=dict(base.environment, KOLLA_UPGRADE="1", STACKYARD_UPGRADE_STEP=j.step,
                                             KOLLA_SERVICE_NAME=name.removeprefix(prefix)),
            healthcheck=None, restart_policy="no", trigger_files=[])
        return Step(StepKind.JOB, name, spec, params={"timeout": 3600}, group=containers[prefix + j.container].group)

    # a job runs on the hosts of its container (not on a compute host for nova-api's db sync)
    here = [j for j in rules.jobs if prefix + j.container in containers]
    before = [job(j) for j in here if j.when == "before"]
    if rules.flush_caches and caches:
        before.insert(0, Step(StepKind.CACHE_FLUSH, "memcached", params={"servers": list(caches)}))
    after = [job(j) for j in here if j.when == "after"]
    order = [prefix + n for n in rules.order]
    ranked = sorted((s for s in steps if s.kind == StepKind.CONTAINER),
                    key=lambda s: order.index(s.name) if s.name in order else len(order))
    first = next((i for i, s in enumerate(steps) if s.kind == StepKind.CONTAINER), len(steps))
    out = steps[:first] + before
    queue = iter(ranked)
    for s in steps[first:]:
        out.append(next(queue) if s.kind == StepKind.CONTAINER else s)
    return Phase(phase.name, out + after, serial=True)


def upgrade_plan(plan: HostPlan, prefix: str = "", caches: list[str] | None = None) -> HostPlan:
    return dataclasses.replace(plan, phases=[upgrade_phase(p, prefix, caches) for p in plan.phases])


def upgrade_plans(plans: dict[str, HostPlan], prefix: str = "", caches: list[str] | None = None
                  ) -> dict[str, HostPlan]:
    """Every host's upgrade plan, with one step order across hosts.

    Hosts hold different subsets of a service's steps; the multi-host waves
    order the union of them by ``Step.seq``. Each phase's upgrade order is
    computed once on that union (every step the service has on any host), and
    every host's steps are numbered and ordered by their place in it.
    """
    out = {h: upgrade_plan(p, prefix, caches) for h, p in plans.items()}
    if len(plans) < 2:
        return out
    names: list[str] = []
    for plan in plans.values():
        names += [p.name for p in plan.phases if p.name not in names]
    for name in names:
        union: dict[str, Step] = {}
        for plan in plans.values():
            for i, s in enumerate(next((p.steps for p in plan.phases if p.name == name), [])):
                union.setdefault(s.key, dataclasses.replace(s, seq=s.seq if s.seq >= 0 else i))
        whole = Phase(name, sorted(union.values(), key=lambda s: s.seq))
        rank = {s.key: i for i, s in enumerate(upgrade_phase(whole, prefix, caches).steps)}
        for plan in out.values():
            for phase in plan.phases:
                if phase.name == name:
                    for s in phase.steps:
                        s.seq = rank[s.key]
                    phase.steps.sort(key=lambda s: s.seq)
    return out


def memcached_servers(dep: Deployment) -> list[str]:
    if not dep.variables.get("enable_memcached"):
        return []
    port = dep.variables["memcached_port"]
    return [f"{dep.host_address(h)}:{port}" for h in hosts_for(dep.inventory, "memcached")]


def describe(plan: HostPlan) -> list[str]:
    """The ordered steps, one line each (``stackyard upgrade --dry-run``)."""
    lines = []
    for phase in plan.phases:
        for s in phase.steps:
            extra = ""
            if s.kind == StepKind.JOB:
                env = s.container.environment if s.container else {}
                if "STACKYARD_UPGRADE_STEP" in env:
                    extra = f" (upgrade step {env['STACKYARD_UPGRADE_STEP']}, image {s.container.image})"
                elif s.params.get("record_only"):
                    extra = " (done by the upgrade steps: recorded, not run)"
            elif s.kind == StepKind.CONTAINER and s.container is not None:
                extra = f" ({s.container.image}; recreated only if its image or config changed)"
            lines.append(f"{phase.name}: {s.kind} {s.name}{extra}")
    return lines


# ----------------------------------------------------------------------------- observing
def api_versions(dep: Deployment) -> dict[str, str]:
    """What each API's version document says (no token needed): the newest version or microversion."""
    v = dep.variables
    host = v["kolla_internal_fqdn"]
    wanted = {"keystone": (v.get("enable_keystone"), f"http://{host}:{v['keystone_public_port']}/v3"),
              "glance": (v.get("enable_glance"), f"http://{host}:{v.get('glance_api_port')}/versions"),
              "placement": (v.get("enable_placement"), f"http://{host}:{v.get('placement_api_port')}/"),
              "nova": (v.get("enable_nova"), f"http://{host}:{v.get('nova_api_port')}/v2.1/"),
              "neutron": (v.get("enable_neutron"), f"http://{host}:{v.get('neutron_server_port')}/")}
    out = {}
    for name, (enabled, url) in wanted.items():
        if not enabled:
            continue
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                doc = json.loads(resp.read().decode())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            out[name] = f"unreachable: {exc}"
            continue
        out[name] = _version_of(doc)
    return out


def _version_of(doc: dict[str, Any]) -> str:
    versions = doc.get("versions") or []
    if isinstance(versions, dict):  # keystone's /v3 root and others nest it
        versions = versions.get("values", [])
    one = doc.get("version")
    if isinstance(one, dict):
        versions = [one]
    current = [x for x in versions if x.get("status", "").upper() in ("CURRENT", "STABLE")] or versions
    if not current:
        return "unknown"
    best = current[-1] if len(current) > 1 else current[0]
    micro = best.get("max_version") or best.get("version") or ""
    return f"{best.get('id', '?')}{' max ' + micro if micro else ''}"


def image_version(engine: Engine, ref: str, kind: str) -> str:
    """MariaDB's or RabbitMQ's version in an image (a one-off container)."""
    try:
        return agent_ops.image_version(engine, ref, kind)
    except DeployError as exc:
        raise DeployError(f"upgrade: {exc}") from None


# ----------------------------------------------------------------------------- the procedures
@dataclass
class UpgradeState:
    source: str
    target: str
    backup: str
    started: float
    status: str = "running"   # running, done, rolled-back
    finished: float = 0.0
    versions_before: dict[str, str] = field(default_factory=dict)

    def save(self, dep: Deployment) -> None:
        write_atomic(dep.configdir / STATE_DIR / UPGRADE_STATE,
                     json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n", 0o600)


def load_state(dep: Deployment) -> UpgradeState | None:
    try:
        return UpgradeState(**json.loads((dep.configdir / STATE_DIR / UPGRADE_STATE).read_text()))
    except FileNotFoundError:
        return None


def remote_check(dep: Deployment, inventories: list[Path]) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The ``check`` op on every host: the problems (each naming its host) and, per
    host, what each container runs (see :func:`stackyard.agent.ops.running_images`)."""
    result = multihost.run_op(dep, inventories, "check", quiet=True)
    problems: list[str] = []
    running: dict[str, dict[str, Any]] = {}
    for t in result.tasks:
        res = t.get("result") or {}
        if isinstance(res.get("images"), dict):
            running[t["host"]] = res["images"]
        if t.get("failed") or t.get("unreachable"):
            problems.append(f"{t['host']}: {res.get('msg') or 'failed'}")
    if result.rc != 0 and not problems:
        problems.append(result.first_error() or f"check failed (rc {result.rc})")
    return problems, running


def image_problems(running: dict[str, dict[str, Any]]) -> list[str]:
    """Containers not running the image their reference names now (host -> container ->
    {ref, id, ref_id}, as the ``check`` op reports it)."""
    return [f"{host}: {name} does not run {img['ref']}"
            for host, images in sorted(running.items()) for name, img in sorted(images.items())
            if img.get("id") != img.get("ref_id")]


def _remote_versions(dep: Deployment, inventories: list[Path], host: str, kind: str, refs: list[str]
                     ) -> dict[str, str]:
    result = multihost.run_op(dep, inventories, "image_version", [host], args={"kind": kind, "refs": refs},
                              quiet=True)
    versions = next(((t.get("result") or {}).get("versions") for t in result.tasks
                     if t["host"] == host and (t.get("result") or {}).get("versions")), None)
    if result.rc != 0 or not versions:
        raise DeployError(f"upgrade: reading the {kind} versions on {host} failed: "
                          f"{result.first_error() or 'no versions reported'}")
    return {str(k): str(v) for k, v in versions.items()}


def prechecks(dep: Deployment, engine: Engine | None, say: Say, resuming: bool,
              inventories: list[Path] | None = None) -> tuple[str, str, str]:
    """(current release, target release, kind); raises DeployError naming what fails.

    An all-in-one is checked through ``engine``; a multi-host deployment through
    the ``stackyard_host`` operations on every host (``inventories``).
    """
    remote = bool(dep.remote_hosts)
    deployed = state.load(dep.configdir)
    if deployed is None:
        raise DeployError("upgrade: no deployed release is recorded for this config dir: deploy it first")
    target = str(dep.variables["openstack_release"])
    kind = jump(deployed.release, target)
    say(f"prechecks: {deployed.release} -> {target} ({kind})")
    if remote:
        found = ops.prechecks(dep, None, inventories or [], ports=False)
        if not found.ok:
            raise DeployError("upgrade: the new images are not all there: " + "; ".join(found.problems))
    else:
        assert engine is not None
        for plan in dep.plans.values():
            problems = agent_ops.prechecks(engine, dep.host_address(plan.host), {}, plan.images(), dep.label)
            if problems:
                raise DeployError("upgrade: the new images are not all there: " + "; ".join(problems))
    say("prechecks: every image of the target is present" + (" on every host" if remote else ""))
    running: dict[str, dict[str, Any]] = {}
    if not resuming:
        if remote:
            bad, running = remote_check(dep, inventories or [])
        else:
            assert engine is not None
            bad = []
            for plan in dep.plans.values():
                stored = load_plan(plan.config_root)
                bad += [f"{h.name}: {h.verdict}" for h in (agent_ops.check(engine, stored) if stored else [])
                        if not h.ok]
        if bad:
            raise DeployError("upgrade: the cloud is not healthy, fix it first: " + "; ".join(bad))
        say("prechecks: every container is healthy")
    prefix = str(dep.variables.get("stackyard_name_prefix") or "")
    for kind_, container in (("mariadb", "mariadb"), ("rabbitmq", "rabbitmq")):
        name = prefix + container
        old = deployed.images.get(name)
        new_spec = next((p.spec_of(name) for p in dep.plans.values() if p.spec_of(name)), None)
        if not old or new_spec is None:
            continue
        if remote:
            # on the first host running it: the image it runs now, else the one recorded
            host = backup_mod.host_running(dep, name, container)
            old_ref = str((running.get(host, {}).get(name) or {}).get("id") or old.get("id") or old["ref"])
            if old_ref == new_spec.image:
                say(f"prechecks: {kind_}: same image, not restarted")
                continue
            versions = _remote_versions(dep, inventories or [], host, kind_, [old_ref, new_spec.image])
            version_hop(kind_, versions[old_ref], versions[new_spec.image])
        else:
            assert engine is not None
            new_id = engine.image_id(new_spec.image)
            if new_id == old["id"]:
                say(f"prechecks: {kind_}: same image, not restarted")
                continue
            version_hop(kind_, image_version(engine, old["id"], kind_), image_version(engine, new_spec.image, kind_))
        say(f"prechecks: {kind_} version hop allowed")
    return deployed.release, target, kind


def describe_waves(plans: dict[str, HostPlan]) -> list[str]:
    """The plays a multi-host upgrade runs, one line each, with their hosts."""
    lines = []
    for w in multihost.compute_waves(plans):
        where = "the deploy host" if w.kind == "api" else ", ".join(w.hosts)
        lines.append(f"{w.name} on {where}{' (one host at a time)' if w.serial else ''}")
    return lines


def upgrade(dep: Deployment, engine: Engine | None, say: Say, dry_run: bool = False,
            inventories: list[Path] | None = None) -> dict[str, Any]:
    """Run the upgrade (see the module docstring); returns a summary.

    ``engine`` drives an all-in-one; a multi-host deployment runs through
    Ansible on ``inventories`` (``engine`` None).
    """
    remote = bool(dep.remote_hosts)
    start = time.monotonic()
    previous = load_state(dep)
    target = str(dep.variables["openstack_release"])
    resuming = previous is not None and previous.status == "running" and previous.target == target
    if resuming:
        assert previous is not None
        say(f"resuming the upgrade {previous.source} -> {previous.target} started "
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(previous.started))} (backup {previous.backup})")
    source, target, kind = prechecks(dep, engine, say, resuming, inventories)
    prefix = str(dep.variables.get("stackyard_name_prefix") or "")
    plans = upgrade_plans(dep.plans, prefix, memcached_servers(dep))
    if dry_run:
        planned = describe_waves(plans) if remote else [ln for p in plans.values() for ln in describe(p)]
        steps = ["prechecks", "new passwords (genpwd)", "backup"] + planned \
            + ["remove the containers the new release no longer has",
               "post-checks: every container healthy and on the new images; API versions"]
        return {"from": source, "to": target, "kind": kind, "dry_run": True, "steps": steps}
    added = genpwd(dep.configdir / "passwords.yml")
    if added:
        say(f"passwords: generated {', '.join(sorted(added))} (the new release needs them)")
    if resuming:
        assert previous is not None
        upgrade_state = previous
    else:
        taken = backup_mod.create(dep, engine, f"before the {kind} {source} -> {target}", say, inventories)
        say(f"backup: {taken.id}")
        upgrade_state = UpgradeState(source=source, target=target, backup=taken.id, started=time.time(),
                                     versions_before=api_versions(dep))
        upgrade_state.save(dep)
    staged = Deployment(dep.configdir, dep.variables, dep.passwords, dep.inventory, dep.warnings, plans)
    if remote:
        result = multihost.run(staged, inventories or [])
    else:
        assert engine is not None
        result = apply_local(staged, engine, say)
    if result["error"]:
        raise DeployError(f"upgrade stopped: {result['error']}; run 'stackyard upgrade' again to finish it, or "
                          f"'stackyard rollback' to go back to {source} (backup {upgrade_state.backup})")
    prune(dep, engine, say, inventories)
    post = postchecks(dep, engine, inventories)
    state.record(dep, engine, post.get("running"))
    upgrade_state.status, upgrade_state.finished = "done", time.time()
    upgrade_state.save(dep)
    return {"from": source, "to": target, "kind": kind, "backup": upgrade_state.backup,
            "seconds": round(time.monotonic() - start, 1), "changed": result["changed"],
            "versions_before": upgrade_state.versions_before, "versions_after": post["versions"],
            "passwords_added": sorted(added)}


def prune(dep: Deployment, engine: Engine | None, say: Say, inventories: list[Path] | None = None) -> list[str]:
    """Remove, on every host, the deployment's containers its plan no longer has (the
    release left behind ran services this one does not); returns ``host: name`` lines."""
    gone: list[str] = []
    if dep.remote_hosts:
        result = multihost.run_op(dep, inventories or [], "prune", quiet=True)
        if result.rc != 0:
            raise DeployError(f"removing the containers the plan no longer has failed: "
                              f"{result.first_error() or f'rc {result.rc}'}")
        gone = [f"{t['host']}: {n}" for t in result.tasks for n in (t.get("result") or {}).get("removed", [])]
    else:
        assert engine is not None
        for host, plan in dep.plans.items():
            gone += [f"{host}: {n}" for n in agent_ops.prune(engine, dep.label, plan)]
    if gone:
        say("removed (not part of this release): " + ", ".join(gone))
    return gone


def postchecks(dep: Deployment, engine: Engine | None, inventories: list[Path] | None = None) -> dict[str, Any]:
    problems = []
    running: dict[str, dict[str, Any]] = {}
    if dep.remote_hosts:
        problems, running = remote_check(dep, inventories or [])
        problems += image_problems(running)
    else:
        assert engine is not None
        for plan in dep.plans.values():
            problems += [f"{h.name}: {h.verdict} ({h.state})" for h in agent_ops.check(engine, plan) if not h.ok]
            for spec in plan.containers():
                current = engine.container(spec.name)
                if current is not None and current.image_id != engine.image_id(spec.image):
                    problems.append(f"{spec.name} does not run {spec.image}")
    if problems:
        raise DeployError("upgrade post-checks failed: " + "; ".join(problems))
    return {"versions": api_versions(dep), "running": running}


def control_plane(dep: Deployment) -> list[str]:
    """The OpenStack services' containers (they read and write the databases and caches a
    restore replaces), minus their data plane (Open vSwitch, libvirt with the servers)."""
    prefix = str(dep.variables.get("stackyard_name_prefix") or "")
    out = []
    for svc in dep.services:
        if svc.profile == "infra":
            continue
        keep = {prefix + n for n in svc.data_plane}
        for plan in dep.plans.values():
            phase = next((p for p in plan.phases if p.name == svc.name), None)
            for s in phase.steps if phase else []:
                if s.kind == StepKind.CONTAINER and s.name not in keep:
                    out.append(s.name)
    return out


def stop_control_plane(dep: Deployment, engine: Engine | None, inventories: list[Path] | None = None) -> str:
    """Stop the control plane (:func:`control_plane`) on every host; says what was stopped."""
    names = list(dict.fromkeys(control_plane(dep)))
    if not dep.remote_hosts:
        assert engine is not None
        stopped = agent_ops.stop(engine, dep.label, names)
        return f"stopped {len(stopped)} control-plane containers"
    result = multihost.run_op(dep, inventories or [], "stop", args={"names": names}, quiet=True)
    if result.rc != 0:
        raise DeployError(f"stopping the control plane failed: {result.first_error() or f'rc {result.rc}'}")
    per_host = [f"{t['host']} {(t.get('result') or {}).get('detail', '')}" for t in result.tasks
                if not t.get("skipped")]
    return "control plane stopped on every host (" + "; ".join(per_host) + ")"


def restore(dep: Deployment, engine: Engine | None, backup_id: str, say: Say,
            reload: Callable[[], Deployment], inventories: list[Path] | None = None) -> dict[str, Any]:
    """Put a backup back and converge to it; ``reload`` loads the deployment from the restored config.

    Multi-host (``engine`` None): the control plane stops on every host, the
    dump is loaded on the MariaDB host, and the hosts converge through Ansible.
    """
    start = time.monotonic()
    taken = backup_mod.get(dep.configdir, backup_id)
    backup_mod.check_matches(dep, taken)
    stopped_at = time.monotonic()  # the APIs are down from here until the converge is healthy
    try:
        stopped = stop_control_plane(dep, engine, inventories)
    except DeployError as exc:
        raise DeployError(f"restore of {taken.id}: {exc}") from None
    say(f"restore {taken.id}: {stopped}; servers and networks keep running")
    backup_mod.restore_config(dep.configdir, taken)
    restored = reload()
    backup_mod.restore_databases(restored, engine, taken, inventories)
    for server in memcached_servers(restored):
        flush_memcached(server)  # nothing cached by the release we leave behind
    say(f"restore {taken.id}: config and {len(taken.databases)} databases of release {taken.release} put back")
    running: dict[str, dict[str, Any]] = {}
    if restored.remote_hosts:
        result = multihost.run(restored, inventories or [])
    else:
        assert engine is not None
        result = apply_local(restored, engine, say)
    if result["error"]:
        raise DeployError(f"restore of {taken.id}: {result['error']}; run the same command again")
    prune(restored, engine, say, inventories)
    downtime = round(time.monotonic() - stopped_at, 1)
    if restored.remote_hosts:
        problems, running = remote_check(restored, inventories or [])
        for problem in problems:
            say(f"restore {taken.id}: warning: {problem}")
    state.record(restored, engine if not restored.remote_hosts else None, running)
    return {"backup": taken.id, "release": taken.release, "seconds": round(time.monotonic() - start, 1),
            "api_downtime_seconds": downtime, "changed": result["changed"]}


def rollback(dep: Deployment, engine: Engine | None, say: Say, reload: Callable[[], Deployment],
             backup_id: str | None = None, inventories: list[Path] | None = None) -> dict[str, Any]:
    """Back to the release before the last upgrade: its backup restored, its images running."""
    current = load_state(dep)
    if backup_id is None:
        if current is None or current.status == "rolled-back":
            raise DeployError("rollback: no upgrade to roll back (give a backup id: stackyard backup --list)")
        backup_id = current.backup
    out = restore(dep, engine, backup_id, say, reload, inventories)
    if current is not None and current.backup == backup_id:
        current.status, current.finished = "rolled-back", time.time()
        current.save(reload())
    return out
