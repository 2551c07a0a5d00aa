"""stdout callback: one line per host per task, plus a JSON summary file.

The summary (path in STACKYARD_SUMMARY_FILE) is how stackyard reads results
back from ansible-playbook: per-host counters (tasks, changed, failures) and
every task result in order, with the module's own return values.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: stackyard
type: stdout
short_description: compact per-host lines and a JSON summary for stackyard
description: Prints one line per host and task; writes STACKYARD_SUMMARY_FILE.
"""

_MARKUP = re.compile(r"\[/?[a-z ]+\]")


def _plain(text: str) -> str:
    """Drop rich markup ([yellow]...[/yellow]) from lines made for a terminal."""
    return _MARKUP.sub("", str(text))


_HIDDEN = {"invocation", "_ansible_no_log", "_ansible_verbose_always", "_ansible_delegated_vars"}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "stackyard"

    def __init__(self) -> None:
        super().__init__()
        self.summary_file = os.environ.get("STACKYARD_SUMMARY_FILE", "")
        self.quiet = bool(os.environ.get("STACKYARD_QUIET"))
        self.hosts: dict = {}
        self.tasks: list = []
        self.started: dict = {}

    # -- helpers ---------------------------------------------------------------
    def _say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def _host_stats(self, host: str) -> dict:
        return self.hosts.setdefault(host, {"tasks": 0, "changed": 0, "failures": 0, "unreachable": 0,
                                            "skipped": 0})

    def _record(self, result, status: str) -> None:
        host = result._host.get_name()
        task = result._task.get_name()
        res = {k: v for k, v in dict(result._result).items() if k not in _HIDDEN}
        changed = bool(res.get("changed"))
        stats = self._host_stats(host)
        stats["tasks"] += 1
        if status == "skipped":
            stats["skipped"] += 1
        stats["changed"] += int(changed and status == "ok")
        stats["failures"] += int(status == "failed")
        stats["unreachable"] += int(status == "unreachable")
        delegated = (result._result.get("_ansible_delegated_vars") or {}).get("ansible_host")
        self.tasks.append({"host": host, "task": task, "status": status, "changed": changed,
                           "failed": status == "failed", "unreachable": status == "unreachable",
                           "skipped": status == "skipped", "delegated_to": delegated, "result": res})
        t0 = self.started.get(task)
        secs = f" ({time.monotonic() - t0:.1f}s)" if t0 else ""
        if status == "skipped":
            return
        mark = "changed" if changed and status == "ok" else status
        if status in ("failed", "unreachable"):
            detail = res.get("msg") or res.get("stderr") or ""
        else:
            detail = res.get("detail") or ""
        self._say(f"{host}: {task:<34} {mark}{secs} {detail}".rstrip())
        if status in ("failed", "unreachable") or os.environ.get("STACKYARD_VERBOSE"):
            for line in res.get("lines", []):
                self._say(f"{host}:   {_plain(line)}")

    # -- events ----------------------------------------------------------------
    def v2_playbook_on_task_start(self, task, is_conditional) -> None:
        self.started[task.get_name()] = time.monotonic()

    def v2_runner_on_ok(self, result) -> None:
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False) -> None:
        self._record(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_unreachable(self, result) -> None:
        self._record(result, "unreachable")

    def v2_runner_on_skipped(self, result) -> None:
        self._record(result, "skipped")

    def v2_playbook_on_no_hosts_matched(self) -> None:
        self._say("no hosts matched")

    def v2_playbook_on_stats(self, stats) -> None:
        if not self.summary_file:
            return
        with open(self.summary_file, "w", encoding="utf-8") as fh:
            json.dump({"hosts": self.hosts, "tasks": self.tasks}, fh, default=str)
