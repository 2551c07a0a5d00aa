"""Run ``ansible-playbook`` with stackyard's modules, callback and settings.

Why a subprocess and not Ansible's Python API: the API is not a stable
interface, and a subprocess is exactly what an operator would run by hand
(``--verbose`` prints the command line). Results come back through our
callback plugin, which writes a JSON summary file next to its live output.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackyard.errors import DeployError

HERE = Path(__file__).resolve().parent
LIBRARY = HERE / "library"
CALLBACKS = HERE / "callback_plugins"
PLAYBOOKS = HERE / "playbooks"
#: the package Ansible ships to every target (stdlib + docker only)
AGENT = HERE.parent / "agent"
#: its name under ansible.module_utils, as the modules import it
AGENT_NAME = "stackyard_agent"


@dataclass
class PlaybookResult:
    """What happened, per host, as reported by the stackyard callback."""

    rc: int
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: task results in execution order: {host, task, changed, failed, unreachable, skipped, result}
    tasks: list[dict[str, Any]] = field(default_factory=list)
    command: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return sum(h.get("changed", 0) for h in self.hosts.values())

    @property
    def failed_hosts(self) -> list[str]:
        return sorted(h for h, s in self.hosts.items() if s.get("failures") or s.get("unreachable"))

    def first_error(self) -> str:
        for t in self.tasks:
            if t.get("failed") or t.get("unreachable"):
                msg = (t.get("result") or {}).get("msg") or "failed"
                return f"host {t['host']}: {t['task']}: {msg}"
        return ""


def ansible_bin(name: str) -> str:
    """The ansible tool installed beside this Python (the venv), else on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise DeployError(f"{name} is not installed: pip install ansible-core")
    return found


def stage_module_utils(dest: Path) -> Path:
    """A module_utils directory holding the agent package as ``stackyard_agent``.

    A copy of the package's modules, made per run: Ansible bundles what the
    modules import from it into each module call (the agent's modules import
    each other relatively, so the package works under either name).
    """
    pkg = dest / AGENT_NAME
    pkg.mkdir(parents=True, exist_ok=True)
    for src in sorted(AGENT.glob("*.py")):
        shutil.copy2(src, pkg / src.name)
    return dest


def ansible_env(summary_file: Path, module_utils: Path, forks: int = 10, quiet: bool = False) -> dict[str, str]:
    """Environment for ansible-playbook: our plugins, fast SSH, no retry files.

    SSH host keys are checked (Ansible's default): a host's plan holds the
    database root password, so it goes only to a host whose key is known.
    """
    env = dict(os.environ)
    env.update({
        "ANSIBLE_LIBRARY": str(LIBRARY),
        "ANSIBLE_MODULE_UTILS": str(module_utils),
        "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
        "ANSIBLE_STDOUT_CALLBACK": "stackyard",
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_FORKS": str(forks),
        "ANSIBLE_PYTHON_INTERPRETER": env.get("ANSIBLE_PYTHON_INTERPRETER", "auto_silent"),
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        # kolla-ansible's group names have dashes (nova-compute): accept them quietly
        "ANSIBLE_TRANSFORM_INVALID_GROUP_CHARS": "ignore",
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=120s -o ServerAliveInterval=15",
        "ANSIBLE_NOCOLOR": env.get("ANSIBLE_NOCOLOR", "1"),
        "STACKYARD_SUMMARY_FILE": str(summary_file),
        "STACKYARD_QUIET": "1" if quiet else "",
    })
    return env


def run_playbook(playbook: Path, inventories: list[Path], *, limit: str | None = None,
                 extra_vars: dict[str, Any] | None = None, check: bool = False,
                 forks: int = 10, quiet: bool = False, verbose: bool = False) -> PlaybookResult:
    """Run one playbook; returns the callback's summary (never raises on task failure)."""
    with tempfile.TemporaryDirectory(prefix="stackyard-ansible-") as tmp:
        summary_file = Path(tmp) / "summary.json"
        cmd = [ansible_bin("ansible-playbook")]
        for inv in inventories:
            cmd += ["-i", str(inv)]
        if limit:
            cmd += ["--limit", limit]
        if check:
            cmd.append("--check")
        if extra_vars:
            vars_file = Path(tmp) / "extra-vars.json"
            vars_file.write_text(json.dumps(extra_vars))
            os.chmod(vars_file, 0o600)
            cmd += ["-e", f"@{vars_file}"]
        if verbose:
            cmd.append("-v")
        cmd.append(str(playbook))
        if verbose:
            print("+ " + shlex.join(cmd), file=sys.stderr)
        module_utils = stage_module_utils(Path(tmp) / "module_utils")
        proc = subprocess.run(cmd, env=ansible_env(summary_file, module_utils, forks, quiet),
                              stdin=subprocess.DEVNULL)
        result = PlaybookResult(rc=proc.returncode, command=cmd)
        if summary_file.exists():
            data = json.loads(summary_file.read_text())
            result.hosts = data.get("hosts", {})
            result.tasks = data.get("tasks", [])
        elif proc.returncode != 0:
            raise DeployError(f"ansible-playbook {playbook.name} failed (rc {proc.returncode}) before "
                              f"running any task: check the inventory and the output above")
        return result
