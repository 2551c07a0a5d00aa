#!/usr/bin/python
"""Ansible module: run a plan's API steps (databases, Keystone) on the deploy host.

Delegated to localhost and run with the Python that runs Ansible (stackyard's
own environment), so it uses stackyard's code, openstacksdk and PyMySQL
directly; the plan and secrets are read from files the deploy wrote (mode 0600).
"""

from __future__ import annotations

import json

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: stackyard_api
short_description: Run stackyard API steps (databases, Keystone registrations) on the deploy host
options:
  plan_file: {type: path, required: true}
  state_file: {type: path, required: true}
  select: {type: dict, required: true}
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(plan_file=dict(type="path", required=True),
                           state_file=dict(type="path", required=True),
                           select=dict(type="dict", required=True)),
        supports_check_mode=True,
    )
    try:
        from stackyard.deploy.apply import HostApplier
        from stackyard.agent.model import HostPlan
        from stackyard.errors import StackyardError
    except ImportError as exc:
        module.fail_json(msg=f"stackyard is not importable by {__import__('sys').executable}: {exc}")
    p = module.params
    with open(p["plan_file"], encoding="utf-8") as fh:
        plan = HostPlan.from_wire(json.load(fh))
    with open(p["state_file"], encoding="utf-8") as fh:
        state = json.load(fh)
    lines: list[str] = []
    applier = HostApplier(None, plan, state["passwords"], state["variables"], lines.append,
                          dry_run=module.check_mode)
    try:
        applier.run_steps(select=p["select"])
    except StackyardError as exc:
        module.fail_json(msg=str(exc), report=applier.report.to_dict())
    rep = applier.report
    changes = [f"{r.name} {r.detail}" for r in rep.results if r.status == "changed"]
    module.exit_json(changed=bool(changes), report=rep.to_dict(),
                     detail="; ".join(changes) if changes else f"{len(rep.results)} steps ok")


if __name__ == "__main__":
    main()
