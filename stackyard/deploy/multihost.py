"""Multi-host deploys: every host's plan, shipped and applied through Ansible.

stackyard renders every host's plan on the deploy host (pure, as for the
all-in-one), cuts the phases into *waves* and writes a playbook with one play
per wave and one task per play: a host runs a handful of tasks per deploy, not
one per file or container. The waves keep the all-in-one's ordering across
hosts:

* host-local steps of consecutive phases share one wave (one module call per
  host), unless a phase is ``serial`` (clustered services restart member by
  member) or the steps must run ``once`` on the service's first host
  (bootstrap jobs), which get waves of their own;
* ``deploy`` steps (databases, Keystone registrations) run on the deploy host,
  which reaches every API through the internal VIP.

Everything here but :func:`run` and :func:`resolve_addresses` is pure.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import zlib
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

import yaml

from stackyard.agent.galera import choose_bootstrap_host, same_cluster
from stackyard.agent.model import HostPlan, Phase, StepKind
from stackyard.ansible import runner
from stackyard.deploy.plan import Deployment, hosts_for
from stackyard.deploy.services.openvswitch import TUNNEL_BRIDGE
from stackyard.errors import DeployError

STATE_DIR = ".stackyard"


@dataclass
class Wave:
    """One play: the same module call on ``hosts`` (one at a time when serial)."""

    name: str
    kind: str  # "target": stackyard_host on each host; "api": stackyard_api on the deploy host
    hosts: list[str]
    #: host -> phase -> step keys to run there (api waves: the phase's first host's plan)
    select: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    serial: bool = False
    prepare: bool = False
    mergeable: bool = True
    #: a ``once`` wave may take in the next plain wave of another phase: that
    #: wave's steps do not wait for these (the same phase's later steps do)
    absorbs_next: bool = False

    @property
    def phases(self) -> set[str]:
        return {ph for sel in self.select.values() for ph in sel}


def _phase(plan: HostPlan, name: str) -> Phase | None:
    return next((p for p in plan.phases if p.name == name), None)


def phase_order(plans: dict[str, HostPlan]) -> list[str]:
    """Phase names in deploy order (every host's phases follow the service order)."""
    order: list[str] = []
    for plan in plans.values():
        for p in plan.phases:
            if p.name not in order:
                order.append(p.name)
    return order


def step_union(plans: dict[str, HostPlan], hosts: list[str], name: str) -> list[tuple[str, str, list[str]]]:
    """Every step key of phase ``name`` across ``hosts``: (key, where, hosts having it), in plan order.

    Hosts run different subsets of a service's steps (nova-compute only on
    compute hosts); every step keeps its position in the service's full list
    (``Step.seq``), which orders the union.
    """
    seq: dict[str, int] = {}
    where: dict[str, str] = {}
    holders: dict[str, list[str]] = {}
    for h in hosts:
        phase = _phase(plans[h], name)
        for i, step in enumerate(phase.steps if phase else []):
            seq.setdefault(step.key, step.seq if step.seq >= 0 else i)
            where.setdefault(step.key, step.where)
            holders.setdefault(step.key, []).append(h)
    order = sorted(seq, key=lambda k: seq[k])
    return [(k, where[k], holders[k]) for k in order]


def _label(name: str, keys: list[str]) -> str:
    short = [k.split(":", 1)[1] if k.startswith(("job:", "container:")) else k for k in keys]
    return f"{name}: {', '.join(dict.fromkeys(short))}"


def _deferred_keys(plans: dict[str, HostPlan], hosts: list[str], name: str) -> set[str]:
    """Keys of phase ``name``'s deferred steps (:attr:`Step.deferred`) on any of ``hosts``."""
    return {s.key for h in hosts if (p := _phase(plans[h], name)) for s in p.steps if s.deferred}


def _barrier_keys(plans: dict[str, HostPlan], hosts: list[str], name: str) -> set[str]:
    """Keys of phase ``name``'s waits with a ``ready`` check: what follows needs it on every host."""
    return {s.key for h in hosts if (p := _phase(plans[h], name)) for s in p.steps
            if s.kind == StepKind.WAIT and s.params.get("ready")}


def _runs(items: list[tuple[str, str, list[str]]], barriers: set[str]) -> list[list[tuple[str, str, list[str]]]]:
    """``items`` cut where ``where`` changes and after each barrier step."""
    runs: list[list[tuple[str, str, list[str]]]] = []
    for _where, group in groupby(items, key=lambda item: item[1]):
        runs.append([])
        for item in group:
            runs[-1].append(item)
            if item[0] in barriers:
                runs.append([])
    return [r for r in runs if r]


def _waves_of(name: str, items: list[tuple[str, str, list[str]]], hosts: list[str], serial: bool,
              barriers: frozenset[str] | set[str] = frozenset()) -> list[Wave]:
    """The waves of a run of phase ``name``'s steps, cut where the steps change ``where``.

    A wave that follows a barrier (a wait with a ``ready`` check) starts only
    once every host finished it: it is never merged into the barrier's wave.
    """
    waves: list[Wave] = []
    after_barrier = False
    for run in _runs(items, barriers):
        where = run[0][1]
        keys = [k for k, _, _ in run]
        if where == "deploy":
            # API steps run from the plan of the first host that has them
            for src, chunk in groupby(run, key=lambda item: item[2][0]):
                ks = [k for k, _, _ in chunk]
                waves.append(Wave(_label(name, ks), "api", hosts, {src: {name: ks}}, mergeable=False))
        elif where == "once":
            select: dict[str, dict[str, list[str]]] = {}
            for k, _, holders in run:
                select.setdefault(holders[0], {}).setdefault(name, []).append(k)
            waves.append(Wave(_label(name, keys), "target", [h for h in hosts if h in select], select,
                              mergeable=False, absorbs_next=True))
        else:
            select = {}
            for k, _, holders in run:
                for h in holders:
                    select.setdefault(h, {}).setdefault(name, []).append(k)
            # one host at a time only means something with more than one host
            one_by_one = serial and len(select) > 1
            waves.append(Wave(_label(name, keys), "target", [h for h in hosts if h in select], select,
                              serial=one_by_one, mergeable=not one_by_one and not after_barrier))
        after_barrier = run[-1][0] in barriers
    return waves


def compute_waves(plans: dict[str, HostPlan], only_phases: set[str] | None = None) -> list[Wave]:
    """Cut the plans into waves, in order, then merge neighbours that may run together.

    Deferred steps (readiness checks nothing later relies on) become waves of
    their own after every phase, as the all-in-one applier runs them.
    """
    hosts_all = list(plans)
    waves = [Wave("prepare", "target", hosts_all, {h: {} for h in hosts_all}, prepare=True)]
    later: list[Wave] = []
    for name in phase_order(plans):
        if only_phases is not None and name not in only_phases:
            continue
        hosts = [h for h in hosts_all if _phase(plans[h], name)]
        serial = any(p.serial for h in hosts for p in plans[h].phases if p.name == name)
        deferred = _deferred_keys(plans, hosts, name)
        items = step_union(plans, hosts, name)
        waves += _waves_of(name, [i for i in items if i[0] not in deferred], hosts, serial,
                           _barrier_keys(plans, hosts, name))
        later += _waves_of(name, [i for i in items if i[0] in deferred], hosts, serial)
    waves += later
    merged: list[Wave] = []
    for w in waves:
        last = merged[-1] if merged else None
        joinable = last is not None and last.kind == w.kind == "target" and w.mergeable and (
            last.mergeable or (last.absorbs_next and not (last.phases & w.phases)))
        if joinable:
            assert last is not None
            last.absorbs_next = False
            last.name = f"{last.name}; {w.name}"
            last.hosts = [h for h in hosts_all if h in last.hosts or h in w.hosts]
            for h, sel in w.select.items():
                dest = last.select.setdefault(h, {})
                for phase, keys in sel.items():
                    dest.setdefault(phase, []).extend(keys)
        else:
            merged.append(w)
    return merged


def render_playbook(waves: list[Wave], plan_dir: Path, config_root: str, pull: str = "missing",
                    deployment: str = "") -> str:
    """The playbook: one play per wave, one task per play."""
    plays = []
    for i, w in enumerate(waves, 1):
        play: dict[str, Any] = {
            "name": f"{i}/{len(waves)} {w.name}",
            "hosts": w.hosts,
            "gather_facts": False,
            "any_errors_fatal": True,
        }
        if w.serial:
            play["serial"] = 1
        if w.kind == "target":
            args: dict[str, Any] = {"op": "steps", "config_root": config_root, "deployment": deployment,
                                    "select": "{{ stackyard_select[inventory_hostname] | default({}) }}"}
            if w.prepare:
                args.update({"prepare": True, "pull": pull,
                             "plan": "{{ lookup('ansible.builtin.file', stackyard_plan_dir ~ '/' ~ "
                                     "inventory_hostname ~ '.plan') }}"})
            task = {"name": w.name, "stackyard_host": args,
                    "vars": {"stackyard_select": w.select, "stackyard_plan_dir": str(plan_dir)}}
        else:
            (first, select), = w.select.items()
            task = {
                "name": w.name,
                "stackyard_api": {"plan_file": str(plan_dir / f"{first}.json"),
                                  "state_file": str(plan_dir / "deploy.json"), "select": select},
                "delegate_to": "localhost",
                "run_once": True,
                "vars": {"ansible_connection": "local",
                         "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
            }
        play["tasks"] = [task]
        plays.append(play)
    return yaml.safe_dump(plays, sort_keys=False, width=1000)


def encode_plan(wire: dict[str, Any]) -> str:
    """The plan as one opaque string (zlib + base64) for the module's no_log ``plan`` argument.

    Ansible masks every value of a no_log argument wherever it appears in the
    module's output; a plan passed as a dict would mask every "0", "1" or
    "root" in the results. One opaque string masks only itself (and is
    smaller on the wire).
    """
    return base64.b64encode(zlib.compress(json.dumps(wire, sort_keys=True).encode(), 6)).decode()


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.touch(mode=0o600)
    os.chmod(tmp, 0o600)
    tmp.write_text(text)
    os.replace(tmp, path)


def write_plan_files(dep: Deployment, plan_dir: Path) -> None:
    """Per-host plans (secrets included, mode 0600) and the deploy host's state."""
    for host, plan in dep.plans.items():
        wire = plan.to_wire()
        write_private(plan_dir / f"{host}.json", json.dumps(wire, sort_keys=True))
        write_private(plan_dir / f"{host}.plan", encode_plan(wire))
    state = {"variables": dep.variables, "passwords": dep.passwords}
    write_private(plan_dir / "deploy.json", json.dumps(state, sort_keys=True, default=str))


# ----------------------------------------------------------------------------- running
def run(dep: Deployment, inventories: list[Path], *, only_phases: set[str] | None = None,
        limit: str | None = None, check: bool = False, pull: str = "missing", quiet: bool = False
        ) -> dict[str, Any]:
    """Write plans and playbook, run it, and summarise what changed per host."""
    plan_dir = dep.configdir / STATE_DIR / "hosts"
    write_plan_files(dep, plan_dir)
    waves = compute_waves(dep.plans, only_phases)
    root = dep.variables["node_config_directory"]
    playbook = dep.configdir / STATE_DIR / "deploy.yml"
    write_private(playbook, render_playbook(waves, plan_dir, root, pull, dep.label))
    result = runner.run_playbook(playbook, inventories, limit=limit, check=check, forks=max(5, len(dep.plans) + 1),
                          quiet=quiet)
    return summarise(result, waves)


def summarise(result: Any, waves: list[Wave]) -> dict[str, Any]:
    hosts: dict[str, dict[str, Any]] = {}
    for t in result.tasks:
        if t.get("skipped"):
            continue
        h = hosts.setdefault(t["host"], {"tasks": 0, "deploy_host_tasks": 0, "changed": 0, "failed": 0,
                                         "changes": []})
        # API steps run on the deploy host on behalf of the play's first host
        h["deploy_host_tasks" if t.get("delegated_to") else "tasks"] += 1
        res = t.get("result") or {}
        report = res.get("report") or {}
        n_changed = int(report.get("changed", 1 if t.get("changed") else 0))
        h["changed"] += n_changed
        h["failed"] += int(bool(t.get("failed") or t.get("unreachable")))
        for step in report.get("steps", []):
            if step.get("status") == "changed":
                h["changes"].append(f"{step['phase']}/{step['kind']}:{step['name']} {step.get('detail', '')}".strip())
        for path in report.get("files_changed", []):
            h["changes"].append(f"file {path}")
    error = result.first_error() if result.rc != 0 else ""
    if result.rc != 0 and not error:
        error = f"ansible-playbook failed (rc {result.rc})"
    return {
        "hosts": hosts,
        "changed": sum(h["changed"] for h in hosts.values()),
        "failed": sum(h["failed"] for h in hosts.values()),
        "waves": len(waves),
        "error": error,
        "rc": result.rc,
    }


def host_interface(dep: Deployment, hostvars: dict[str, Any], key: str) -> str:
    """The interface ``key`` (api_interface, tunnel_interface) names on one host.

    Globals are rendered once, so a host's own ``network_interface`` only
    reaches ``key`` here: it applies when ``key`` is left at its default
    (the global network_interface), as in kolla-ansible.
    """
    if hostvars.get(key):
        return str(hostvars[key])
    if hostvars.get("network_interface") and dep.variables.get(key) == dep.variables.get("network_interface"):
        return str(hostvars["network_interface"])
    return str(dep.variables.get(key) or dep.variables["network_interface"])


def _ipv4_cidr(facts: dict[str, Any], iface: str) -> str:
    """``address/prefix`` of ``iface`` in Ansible's network facts, or ''."""
    info = (facts.get(f"ansible_{iface.replace('-', '_')}") or {}).get("ipv4") or {}
    if not info.get("address"):
        return ""
    prefix = info.get("prefix") or ipaddress.IPv4Network(f"0.0.0.0/{info.get('netmask', '255.255.255.255')}").prefixlen
    return f"{info['address']}/{prefix}"


def resolve_addresses(dep: Deployment, inventories: list[Path]) -> None:
    """Give every remote host its api_interface_address (inventory, cache, or facts),
    and its tunnel_interface_address when tunnels use a NIC of their own.

    kolla-ansible reads these addresses from Ansible's facts on every run; we
    gather them once and cache them beside the config
    (``.stackyard/addresses.json``) so a no-op deploy does not pay for it.

    A tunnel NIC other than api_interface, on a host running Open vSwitch,
    becomes the tunnel endpoint: its address moves into the ``br-phy``
    bridge (userspace tunnelling), so the host gets ``tunnel_interface``,
    ``tunnel_interface_address`` and ``tunnel_interface_cidr``. Facts look for
    the address on ``br-phy`` once it has moved there.
    """
    cache_path = dep.configdir / STATE_DIR / "addresses.json"
    try:
        cache: dict[str, dict[str, str]] = json.loads(cache_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        cache = {}
    ovs_hosts = set(hosts_for(dep.inventory, "openvswitch")) if "openvswitch" in dep.enabled else set()
    wanted: dict[str, dict[str, str]] = {}  # host -> {role: interface}
    for host in dep.remote_hosts:
        hv = dep.inventory.hosts[host]
        api = host_interface(dep, hv, "api_interface")
        roles = {} if hv.get("api_interface_address") else {"api": api}
        tunnel = host_interface(dep, hv, "tunnel_interface")
        if host in ovs_hosts and tunnel != api:
            roles["tunnel"] = tunnel
        wanted[host] = roles
    shared = sorted(h for h in ovs_hosts & set(dep.remote_hosts) if "tunnel" not in wanted[h])
    if len(ovs_hosts) > 1 and shared:
        dep.warnings.append(
            f"tunnel_interface is api_interface on {', '.join(shared)}: tenant (VXLAN) networks will not reach "
            f"other hosts on Open vSwitch's userspace datapath; give tunnels a NIC of their own")

    def apply(host: str, role: str, cidr: str) -> None:
        hv = dep.inventory.hosts[host]
        addr = cidr.split("/")[0]
        if role == "api":
            hv["api_interface_address"] = addr
        else:
            hv["tunnel_interface"] = wanted[host]["tunnel"]
            hv["tunnel_interface_address"] = addr
            hv["tunnel_interface_cidr"] = cidr

    missing: dict[str, dict[str, str]] = {}
    for host, roles in wanted.items():
        for role, iface in roles.items():
            cached = cache.get(host, {}).get(iface, "")
            if cached and (role == "api" or "/" in cached):
                apply(host, role, cached)
            else:
                missing.setdefault(host, {})[role] = iface
    if not missing:
        return
    result = runner.run_playbook(runner.PLAYBOOKS / "gather-addresses.yml", inventories, limit=",".join(sorted(missing)),
                          quiet=True)
    seen: set[str] = set()
    for t in result.tasks:
        facts = (t.get("result") or {}).get("ansible_facts") or {}
        host = t["host"]
        if host not in missing or not facts:
            continue
        seen.add(host)
        for role, iface in missing[host].items():
            cidr = _ipv4_cidr(facts, iface) or (_ipv4_cidr(facts, TUNNEL_BRIDGE) if role == "tunnel" else "")
            if not cidr:
                raise DeployError(f"host {host}: interface {iface} ({role}_interface) has no IPv4 address")
            cache.setdefault(host, {})[iface] = cidr
            apply(host, role, cidr)
    unresolved = sorted(set(missing) - seen)
    if unresolved:
        raise DeployError(f"cannot read the interface addresses of {', '.join(unresolved)}: "
                          f"{result.first_error() or 'no facts returned'}")
    write_private(cache_path, json.dumps(cache, indent=2, sort_keys=True) + "\n")


def render_op_playbook(hosts: list[str], op: str, config_root: str, args: dict[str, Any] | None = None,
                       serial: bool = False, name: str = "", task_vars: dict[str, Any] | None = None,
                       deployment: str = "") -> str:
    """A one-play playbook running one stackyard_host operation on ``hosts``."""
    play: dict[str, Any] = {"name": name or op, "hosts": hosts, "gather_facts": False}
    if serial:
        play["serial"] = 1
    task_args = {"op": op, "config_root": config_root, "deployment": deployment}
    task_args.update(args or {})
    task: dict[str, Any] = {"name": name or op, "stackyard_host": task_args}
    if task_vars:
        task["vars"] = task_vars
    play["tasks"] = [task]
    return yaml.safe_dump([play], sort_keys=False, width=1000)


def run_op(dep: Deployment, inventories: list[Path], op: str, hosts: list[str] | None = None, *,
           args: dict[str, Any] | None = None, limit: str | None = None, check: bool = False,
           serial: bool = False, quiet: bool = False, task_vars: dict[str, Any] | None = None) -> Any:
    """Run one stackyard_host operation on every planned host (or ``hosts``)."""
    playbook = dep.configdir / STATE_DIR / f"{op}.yml"
    write_private(playbook, render_op_playbook(hosts or list(dep.plans), op,
                                               dep.variables["node_config_directory"], args, serial,
                                               task_vars=task_vars, deployment=dep.label))
    return runner.run_playbook(playbook, inventories, limit=limit, check=check, quiet=quiet,
                        forks=max(5, len(dep.plans) + 1))


def recover_galera(dep: Deployment, inventories: list[Path], say: Any) -> dict[str, Any]:
    """Restart a fully stopped Galera cluster from its most advanced member.

    Stops whatever member still runs (a half-up cluster cannot be bootstrapped
    safely), reads every member's last committed seqno from its data, starts
    the highest one with --wsrep-new-cluster, then runs the mariadb phase so
    the others join and the bootstrap node becomes an ordinary member.
    """
    hosts = [h for h, p in dep.plans.items() if any(s.kind == StepKind.GALERA for ph in p.phases for s in ph.steps)]
    if not hosts:
        raise DeployError("mariadb-recovery: no Galera cluster in this deployment "
                          "(MariaDB runs on a single host; restart it with 'stackyard deploy')")
    stopped = run_op(dep, inventories, "stop", hosts, args={"names": ["mariadb"]}, quiet=True)
    if stopped.rc != 0:
        raise DeployError(f"mariadb-recovery: stopping mariadb failed: {stopped.first_error()}")
    positions = run_op(dep, inventories, "galera_position", hosts, quiet=True)
    if positions.rc != 0:
        raise DeployError(f"mariadb-recovery: reading seqnos failed: {positions.first_error()}")
    seqnos: dict[str, int] = {}
    uuids: dict[str, str] = {}
    for t in positions.tasks:
        pos = (t.get("result") or {}).get("position") or {}
        if "seqno" in pos:
            seqnos[t["host"]] = int(pos["seqno"])
            uuids[t["host"]] = str(pos.get("uuid", ""))
    missing = [h for h in hosts if h not in seqnos]
    if missing:
        raise DeployError(f"mariadb-recovery: no seqno from {', '.join(missing)}")
    if not same_cluster(uuids):
        raise DeployError(f"mariadb-recovery: members belong to different clusters: {uuids}; "
                          f"refusing to pick one")
    best = choose_bootstrap_host(hosts, seqnos)
    for h in hosts:
        say(f"{h}: seqno {seqnos[h]}{'  <- most advanced: bootstraps the cluster' if h == best else ''}")
    boot = run_op(dep, inventories, "galera_bootstrap", [best])
    if boot.rc != 0:
        raise DeployError(f"mariadb-recovery: bootstrap on {best} failed: {boot.first_error()}")
    summary = run(dep, inventories, only_phases={"mariadb"})
    if summary["error"]:
        raise DeployError(f"mariadb-recovery: members did not rejoin: {summary['error']}")
    return {"bootstrap_host": best, "seqnos": seqnos, "rejoin": summary}
