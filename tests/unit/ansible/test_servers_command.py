"""bootstrap-servers: extra vars from globals, CLI wiring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stackyard.commands import servers
from stackyard.cli import make_parser
from stackyard.errors import DeployError


def test_extra_vars_insecure_registry() -> None:
    got = servers.bootstrap_extra_vars({"docker_registry": "10.250.0.1:5000", "docker_registry_insecure": True,
                                    "api_interface": "eth0", "network_interface": "eth0"})
    assert got == {"docker_registry": "10.250.0.1:5000", "docker_registry_insecure": True,
                   "stackyard_default_interface": "eth0"}


def test_extra_vars_never_override_host_interfaces() -> None:
    got = servers.bootstrap_extra_vars({"api_interface": "ens3", "network_interface": "ens3"})
    assert "api_interface" not in got and "network_interface" not in got
    assert got["stackyard_default_interface"] == "ens3"


def test_insecure_without_registry_is_off() -> None:
    got = servers.bootstrap_extra_vars({"docker_registry": "", "docker_registry_insecure": True})
    assert got["docker_registry_insecure"] is False


def test_command_loads_globals_and_runs_playbook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "globals.yml").write_text("docker_registry: reg.example:5000\ndocker_registry_insecure: true\n")
    calls: dict[str, Any] = {}

    class Result:
        rc = 0
        changed = 0
        hosts = {"node1": {"changed": 0}}
        failed_hosts: list[str] = []

        def first_error(self) -> str:
            return ""

    def fake_run(playbook: Path, inventories: list[Path], **kw: Any) -> Result:
        calls.update(playbook=playbook, inventories=inventories, **kw)
        return Result()

    from stackyard.ansible import runner
    monkeypatch.setattr(runner, "run_playbook", fake_run)
    args = make_parser().parse_args(["bootstrap-servers", "--configdir", str(tmp_path), "-i", "inv",
                                     "-e", "docker_registry=10.0.0.1:5000", "--limit", "node1"])
    assert args.func(args) == 0
    assert calls["playbook"].name == "bootstrap-servers.yml" and calls["playbook"].exists()
    assert calls["inventories"] == [Path("inv")]
    assert calls["limit"] == "node1"
    assert calls["extra_vars"]["docker_registry"] == "10.0.0.1:5000"   # -e beats globals.yml
    assert calls["extra_vars"]["docker_registry_insecure"] is True


def test_inventory_required(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_playbook(*a: Any, **kw: Any) -> None:
        raise AssertionError("no playbook may run without an inventory")

    from stackyard.ansible import runner
    monkeypatch.setattr(runner, "run_playbook", no_playbook)
    args = make_parser().parse_args(["bootstrap-servers", "--configdir", str(tmp_path)])
    with pytest.raises(DeployError, match="inventory"):
        args.func(args)


def test_failed_playbook_is_a_deploy_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Failed:
        rc = 2
        changed = 0
        hosts = {"node1": {"changed": 0}}
        failed_hosts = ["node1"]

        def first_error(self) -> str:
            return "node1: apt failed"

    from stackyard.ansible import runner
    monkeypatch.setattr(runner, "run_playbook", lambda *a, **kw: Failed())
    args = make_parser().parse_args(["bootstrap-servers", "--configdir", str(tmp_path), "-i", "inv"])
    with pytest.raises(DeployError, match="bootstrap-servers failed: node1: apt failed"):
        args.func(args)
