#!/usr/bin/python
"""Ansible module: converge one host to its stackyard plan (host-local steps).

One call per host per wave, not one task per file or container: stackyard has
already computed everything; this module only makes it so and reports back.

ops:
  steps     run the selected steps (``select``: phase -> step keys) of the
            stored plan, in plan order; with ``prepare`` (and ``plan``) first
            store the plan on the host (<config_root>/.stackyard/plan.json,
            mode 0600), write config files, create volumes, pull images
  galera_position   uuid/seqno of the stopped MariaDB member (mariadb-recovery)
  galera_bootstrap  start this member with --wsrep-new-cluster
  stop      stop every stackyard container (``names`` to restrict)
  destroy   remove stackyard containers, rendered config and (``volumes``) volumes
  check     every planned container running and healthy
  prechecks engine answers, ports free (or held by our containers), images
            present or in the registry (``checks``: address, ports, images)
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import zlib
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stackyard_errors import DeployError
from ansible.module_utils.stackyard_hostapply import (
    TargetApplier, container_health, galera_position, host_prechecks, stop_containers,
)
from ansible.module_utils.stackyard_model import MANAGED_LABEL, HostPlan, Step

DOCUMENTATION = r"""
module: stackyard_host
short_description: Apply one host's stackyard plan (files, volumes, images, containers)
options:
  op: {type: str, default: steps}
  prepare: {type: bool, default: false, description: store the plan, write files, volumes, images first}
  plan: {type: str, description: "the host's plan, zlib + base64 JSON (with prepare)"}
  config_root: {type: str, default: /etc/kolla}
  select: {type: dict, description: phase name -> step keys to run}
  pull: {type: str, default: missing, choices: [missing, always, never]}
  names: {type: list, elements: str}
  volumes: {type: bool, default: false}
"""


def decode_plan(text: str) -> dict:
    """Inverse of stackyard.deploy.multihost.encode_plan (zlib + base64 JSON)."""
    return json.loads(zlib.decompress(base64.b64decode(text)).decode())


def plan_path(root: str) -> Path:
    return Path(root) / ".stackyard" / "plan.json"


def load_plan(root: str) -> HostPlan:
    try:
        return HostPlan.from_wire(json.loads(plan_path(root).read_text()))
    except FileNotFoundError:
        raise DeployError(f"{plan_path(root)} is missing: the prepare step did not run on this host") from None


def store_plan(root: str, data: dict) -> bool:
    path = plan_path(root)
    text = json.dumps(data, sort_keys=True)
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(text)
    os.replace(tmp, path)
    return True


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            op=dict(type="str", default="steps"),
            prepare=dict(type="bool", default=False),
            plan=dict(type="str", no_log=True),
            config_root=dict(type="str", default="/etc/kolla"),
            select=dict(type="dict"),
            pull=dict(type="str", default="missing", choices=["missing", "always", "never"]),
            names=dict(type="list", elements="str"),
            volumes=dict(type="bool", default=False),
            checks=dict(type="dict"),
        ),
        supports_check_mode=True,
    )
    import docker

    p = module.params
    lines: list[str] = []
    try:
        client = docker.from_env(timeout=300)
        op = p["op"]
        if op == "steps":
            stored = False
            if p["prepare"]:
                if not p["plan"]:
                    module.fail_json(msg="prepare needs the host's plan")
                wire = decode_plan(p["plan"])
                stored = False if module.check_mode else store_plan(p["config_root"], wire)
                plan = HostPlan.from_wire(wire)
            else:
                plan = load_plan(p["config_root"])
            applier = TargetApplier(client, plan, lines.append, dry_run=module.check_mode, pull=p["pull"])
            try:
                if p["prepare"]:
                    applier.prepare()
                applier.run_steps(select=p["select"] or {})
            except DeployError as exc:
                module.fail_json(msg=str(exc), lines=lines, report=applier.report.to_dict())
            rep = applier.report
            changes = [f"{r.name} {r.detail}" for r in rep.results if r.status == "changed"]
            changes += [f"file {f}" for f in rep.files_changed]
            module.exit_json(changed=bool(changes), plan_stored=stored, lines=lines, report=rep.to_dict(),
                             detail=("; ".join(changes)) if changes else f"{len(rep.results)} steps ok")
        elif op == "galera_position":
            plan = load_plan(p["config_root"])
            spec = next((s.container for ph in plan.phases for s in ph.steps if s.kind == "galera"), None)
            if spec is None:
                module.fail_json(msg="this host runs no Galera member")
            c = None
            try:
                c = client.containers.get(spec.name)
            except docker.errors.NotFound:
                pass
            if c is not None and c.status == "running":
                module.exit_json(changed=False, running=True, detail="running")
            pos = galera_position(client, spec)
            module.exit_json(changed=False, running=False, position=pos,
                             detail=f"seqno {pos.get('seqno')} uuid {pos.get('uuid')}")
        elif op == "galera_bootstrap":
            plan = load_plan(p["config_root"])
            applier = TargetApplier(client, plan, lines.append, dry_run=module.check_mode)
            spec = next((s.container for ph in plan.phases for s in ph.steps if s.kind == "galera"), None)
            if spec is None:
                module.fail_json(msg="this host runs no Galera member")
            if not module.check_mode:
                current = applier.find(spec.name)
                applier.bootstrap_cluster(spec, applier.spec_hash(spec), existing=current)
                applier.do_wait(Step("wait", spec.name, params={"timeout": 300}))
            module.exit_json(changed=True, detail="cluster restarted from this member")
        elif op == "stop":
            stopped = [] if module.check_mode else stop_containers(client, p["names"])
            module.exit_json(changed=bool(stopped), detail=f"stopped {', '.join(stopped) or 'nothing'}")
        elif op == "destroy":
            removed = []
            for c in client.containers.list(all=True, filters={"label": MANAGED_LABEL}):
                if not module.check_mode:
                    c.remove(force=True)
                removed.append(c.name)
            root = Path(p["config_root"])
            plan_dirs = set()
            if plan_path(p["config_root"]).exists():
                plan = load_plan(p["config_root"])
                plan_dirs = {Path(f.path).parent for f in plan.files}
            for d in sorted(plan_dirs | {root / ".stackyard"}):
                if d.is_dir() and not module.check_mode:
                    shutil.rmtree(d)
            vols = []
            if p["volumes"]:
                for v in client.volumes.list(filters={"label": MANAGED_LABEL}):
                    if not module.check_mode:
                        v.remove(force=True)
                    vols.append(v.name)
            module.exit_json(changed=bool(removed or vols), removed=removed, volumes=vols,
                             detail=f"removed {len(removed)} containers, {len(vols)} volumes")
        elif op == "prechecks":
            checks = p["checks"] or {}
            client.ping()
            problems = host_prechecks(client, checks.get("address", "0.0.0.0"),
                                      {int(k): v for k, v in (checks.get("ports") or {}).items()},
                                      checks.get("images") or [])
            for problem in problems:
                lines.append(f"FAIL {problem}")
            if problems:
                module.fail_json(msg="; ".join(problems), lines=lines)
            module.exit_json(changed=False, lines=lines, detail="engine, ports and images ok")
        elif op == "check":
            plan = load_plan(p["config_root"])
            bad = []
            for spec in plan.containers():
                ok, state = container_health(client, spec)
                lines.append(f"{'ok  ' if ok else 'FAIL'} {spec.name}: {state}")
                if not ok:
                    bad.append(f"{spec.name}: {state}")
            if bad:
                module.fail_json(msg="; ".join(bad), lines=lines)
            module.exit_json(changed=False, lines=lines, detail=f"{len(lines)} containers healthy")
        else:
            module.fail_json(msg=f"unknown op {op}")
    except DeployError as exc:
        module.fail_json(msg=str(exc), lines=lines)
    except docker.errors.DockerException as exc:
        module.fail_json(msg=f"container engine: {exc}", lines=lines)


if __name__ == "__main__":
    main()
