#!/usr/bin/python
"""Ansible module: converge one host to its stackyard plan, or run an operation on it.

One call per host per wave, not one task per file or container: stackyard has
already computed everything; this module only makes it so and reports back.
The work is done by the agent package (``ansible.module_utils.stackyard_agent``,
which is ``stackyard.agent`` shipped by the runner): the same executor and the
same operations the local CLI uses.

ops:
  steps     run the selected steps (``select``: phase -> step keys) of the
            stored plan, in plan order; with ``prepare`` (and ``plan``) first
            store the plan on the host (<config_root>/.stackyard/plan.json,
            mode 0600), write config files, create volumes, pull images
  galera_position   uuid/seqno of the stopped MariaDB member (mariadb-recovery)
  galera_bootstrap  start this member with --wsrep-new-cluster
  stop      stop the deployment's containers (``names`` to restrict)
  prune     remove the deployment's containers the stored plan no longer has
  destroy   remove the deployment's containers, rendered config, host resources
            and (``volumes``) volumes
  check     every planned container running and healthy; ``images``: what
            each runs (reference, image ID, the ID the reference names now)
  db_dump   mariadb-dump (``databases`` that exist) in the MariaDB
            ``container`` into <config_root>/.stackyard/backup-<backup_id>.sql.gz
            (gzip, 0600); returns its path, sha256 and the databases in it
  db_load   load the dump file ``path`` into the MariaDB ``container``
  image_version   MariaDB's or RabbitMQ's (``kind``) version in each of ``refs``
  prechecks engine answers, ports free (or held by our containers), images
            present or in the registry (``checks``: address, ports, images)
"""

from __future__ import annotations

import base64
import json
import zlib

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stackyard_agent import ops
from ansible.module_utils.stackyard_agent.engine import Engine
from ansible.module_utils.stackyard_agent.errors import StackyardError
from ansible.module_utils.stackyard_agent.hostapply import TargetApplier, load_plan
from ansible.module_utils.stackyard_agent.model import HostPlan, Step, StepKind

DOCUMENTATION = r"""
module: stackyard_host
short_description: Apply one host's stackyard plan, or stop, destroy, check it
options:
  op: {type: str, default: steps}
  prepare: {type: bool, default: false, description: store the plan, write files, volumes, images first}
  plan: {type: str, description: "the host's plan, zlib + base64 JSON (with prepare)"}
  config_root: {type: str, default: /etc/kolla}
  deployment: {type: str, description: "deployment label (the deploy host's config dir)"}
  select: {type: dict, description: phase name -> step keys to run}
  pull: {type: str, default: missing, choices: [missing, always, never]}
  names: {type: list, elements: str}
  volumes: {type: bool, default: false}
  checks: {type: dict}
  container: {type: str, description: the MariaDB container (db_dump, db_load)}
  user: {type: str, description: the database user (db_dump, db_load)}
  password: {type: str, description: its password (reaches the client through MYSQL_PWD)}
  databases: {type: list, elements: str, description: the databases to dump (those that exist)}
  backup_id: {type: str, description: names the dump file (db_dump)}
  path: {type: str, description: the dump file to load (db_load)}
  kind: {type: str, choices: [mariadb, rabbitmq]}
  refs: {type: list, elements: str, description: images or image IDs (image_version)}
"""


def decode_plan(text: str) -> dict:
    """Inverse of stackyard.deploy.multihost.encode_plan (zlib + base64 JSON)."""
    return json.loads(zlib.decompress(base64.b64decode(text)).decode())


def stored_plan(root: str) -> HostPlan:
    plan = load_plan(root)
    if plan is None:
        raise StackyardError(f"{root}/.stackyard/plan.json is missing: no deploy ran on this host")
    return plan


def galera_spec(plan: HostPlan):
    spec = next((s.container for ph in plan.phases for s in ph.steps if s.kind == StepKind.GALERA), None)
    if spec is None:
        raise StackyardError("this host runs no Galera member")
    return spec


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            op=dict(type="str", default="steps"),
            prepare=dict(type="bool", default=False),
            plan=dict(type="str", no_log=True),
            config_root=dict(type="str", default="/etc/kolla"),
            deployment=dict(type="str"),
            select=dict(type="dict"),
            pull=dict(type="str", default="missing", choices=["missing", "always", "never"]),
            names=dict(type="list", elements="str"),
            volumes=dict(type="bool", default=False),
            checks=dict(type="dict"),
            container=dict(type="str"),
            user=dict(type="str"),
            password=dict(type="str", no_log=True),
            databases=dict(type="list", elements="str", default=[]),
            backup_id=dict(type="str"),
            path=dict(type="str"),
            kind=dict(type="str", choices=["mariadb", "rabbitmq"]),
            refs=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    check_mode = module.check_mode
    lines: list[str] = []
    applier = None
    try:
        engine = Engine.connect(timeout=300)
        op = p["op"]
        if op == "steps":
            if p["prepare"] and not p["plan"]:
                module.fail_json(msg="prepare needs the host's plan")
            plan = HostPlan.from_wire(decode_plan(p["plan"])) if p["prepare"] else stored_plan(p["config_root"])
            applier = TargetApplier(engine, plan, lines.append, dry_run=check_mode, pull=p["pull"])
            if p["prepare"]:
                applier.prepare()
            applier.run_steps(select=p["select"] or {})
            rep = applier.report
            changes = [f"{r.name} {r.detail}" for r in rep.results if r.status == "changed"]
            changes += [f"file {f}" for f in rep.files_changed]
            module.exit_json(changed=bool(changes), lines=lines, report=rep.to_dict(),
                             detail=("; ".join(changes)) if changes else f"{len(rep.results)} steps ok")
        elif op == "galera_position":
            spec = galera_spec(stored_plan(p["config_root"]))
            current = engine.container(spec.name)
            if current is not None and current.running:
                module.exit_json(changed=False, running=True, detail="running")
            pos = ops.galera_position(engine, spec)
            module.exit_json(changed=False, running=False, position=pos,
                             detail=f"seqno {pos.get('seqno')} uuid {pos.get('uuid')}")
        elif op == "galera_bootstrap":
            plan = stored_plan(p["config_root"])
            spec = galera_spec(plan)
            applier = TargetApplier(engine, plan, lines.append, dry_run=check_mode)
            if not check_mode:
                applier.bootstrap_cluster(spec, applier.spec_hash(spec))
                applier.do_wait(Step(StepKind.WAIT, spec.name, params={"timeout": 300}))
            module.exit_json(changed=True, detail="cluster restarted from this member")
        elif op == "stop":
            stopped = ops.stop(engine, p["deployment"], p["names"], dry_run=check_mode)
            module.exit_json(changed=bool(stopped), detail=f"stopped {', '.join(stopped) or 'nothing'}")
        elif op == "prune":
            gone = ops.prune(engine, p["deployment"], stored_plan(p["config_root"]), dry_run=check_mode)
            module.exit_json(changed=bool(gone), removed=gone,
                             detail=f"removed {', '.join(gone)}" if gone else "nothing to remove")
        elif op == "destroy":
            gone = ops.destroy(engine, p["deployment"], load_plan(p["config_root"]), p["config_root"],
                               include_volumes=p["volumes"], dry_run=check_mode)
            module.exit_json(changed=bool(gone.lines()), lines=gone.lines(), removed=gone.containers,
                             volumes=gone.volumes,
                             detail=f"removed {len(gone.containers)} containers, {len(gone.volumes)} volumes")
        elif op == "prechecks":
            checks = p["checks"] or {}
            problems = ops.prechecks(engine, checks.get("address", "0.0.0.0"),
                                     {int(k): v for k, v in (checks.get("ports") or {}).items()},
                                     checks.get("images") or [], p["deployment"] or "")
            lines += [f"FAIL {problem}" for problem in problems]
            if problems:
                module.fail_json(msg="; ".join(problems), lines=lines)
            module.exit_json(changed=False, lines=lines, detail="engine, ports and images ok")
        elif op == "check":
            plan = stored_plan(p["config_root"])
            health = ops.check(engine, plan)
            images = ops.running_images(engine, plan)
            lines += [h.line() for h in health]
            bad = [f"{h.name}: {h.verdict} ({h.state})" for h in health if not h.ok]
            if bad:
                module.fail_json(msg="; ".join(bad), lines=lines, images=images)
            module.exit_json(changed=False, lines=lines, images=images, detail=f"{len(health)} containers healthy")
        elif op in ("db_dump", "db_load"):
            missing = [k for k in ("container", "user", "password", "backup_id" if op == "db_dump" else "path")
                       if not p[k]]
            if missing:
                module.fail_json(msg=f"{op} needs {', '.join(missing)}")
            if check_mode:
                module.exit_json(changed=False, skipped=True, detail=f"{op} skipped in check mode")
            if op == "db_dump":
                dumped = ops.db_dump(engine, p["container"], p["user"], p["password"], p["databases"],
                                     p["config_root"], p["backup_id"])
                module.exit_json(changed=True, detail=f"{len(dumped['databases'])} databases, "
                                                      f"{dumped['size']} bytes in {dumped['path']}", **dumped)
            size = ops.db_load(engine, p["container"], p["user"], p["password"], p["path"])
            module.exit_json(changed=True, detail=f"loaded {p['path']} ({size} bytes) into {p['container']}")
        elif op == "image_version":
            if not p["kind"]:
                module.fail_json(msg="image_version needs kind")
            versions = {ref: ops.image_version(engine, ref, p["kind"]) for ref in p["refs"]}
            module.exit_json(changed=False, versions=versions,
                             detail=", ".join(f"{r}: {v}" for r, v in versions.items()))
        else:
            module.fail_json(msg=f"unknown op {op}")
    except StackyardError as exc:
        module.fail_json(msg=str(exc), lines=lines,
                         **({"report": applier.report.to_dict()} if applier is not None else {}))


if __name__ == "__main__":
    main()
