"""Command-line inputs of the deployer commands: ``-e`` extra vars as Ansible reads
them, and a relative ``--configdir`` meaning the same directory everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from stackyard import cli
from stackyard.commands.common import extra_vars
from stackyard.deploy.config import load_globals
from stackyard.deploy.passwords import genpwd
from stackyard.errors import ConfigError, DeployError


@pytest.mark.parametrize("item, expected", [
    # key=value values are strings, as Ansible keeps them: a template stays a template
    ("key={{ foo }}", {"key": "{{ foo }}"}),
    ("enable_heat=yes", {"enable_heat": "yes"}),
    ("openstack_release=2025.1", {"openstack_release": "2025.1"}),
    ("a=b=c", {"a": "b=c"}),
    ("empty=", {"empty": ""}),
    ("list=[1, 2]", {"list": "[1, 2]"}),
    # a YAML/JSON mapping keeps its types
    ('{"nova_compute_virt_type": "qemu", "ports": [1, 2]}', {"nova_compute_virt_type": "qemu", "ports": [1, 2]}),
])
def test_extra_vars(item, expected):
    assert extra_vars([item]) == expected


@pytest.mark.parametrize("item, fragment", [
    ("novalue", "expected key=value"),
    ("{a: [", "invalid YAML/JSON"),
    ("[1, 2]", "must be a mapping"),
])
def test_bad_extra_vars_are_one_line_errors(item, fragment):
    with pytest.raises(ConfigError, match=fragment) as exc:
        extra_vars([item])
    assert "\n" not in str(exc.value)


def test_extra_vars_file(tmp_path):
    path = tmp_path / "vars.yml"
    path.write_text("enable_heat: true\nports: [1]\n")
    assert extra_vars([f"@{path}"]) == {"enable_heat": True, "ports": [1]}
    path.write_text("- a\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        extra_vars([f"@{path}"])


def test_a_templated_extra_var_renders_like_globals_and_typed_options_are_typed(tmp_path):
    variables, _ = load_globals(tmp_path, extra_vars(["kolla_internal_fqdn={{ kolla_internal_vip_address }}",
                                                      "kolla_internal_vip_address=10.0.0.5", "enable_heat=yes"]))
    assert variables["kolla_internal_fqdn"] == "10.0.0.5"
    assert variables["enable_heat"] is True


def test_an_undefined_variable_in_an_extra_var_is_one_clear_line(tmp_path, capsys):
    assert cli.main(["genconfig", "--configdir", str(tmp_path), "-e", "key={{ foo }}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'foo' is undefined" in err and "extra vars" in err


def test_configdir_is_made_absolute_before_any_command_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["genpwd", "--configdir", "etc-kolla"]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'etc-kolla' / 'passwords.yml'}: generated ")


def test_a_relative_configdir_gives_ansible_absolute_plan_paths(tmp_path, monkeypatch):
    """`deploy -i multinode --configdir <relative>`: Ansible looks the per-host plan
    files up relative to the playbook, so their directory must be absolute."""
    configdir = tmp_path / "etc-kolla"
    configdir.mkdir()
    genpwd(configdir / "passwords.yml")
    (configdir / "globals.yml").write_text(yaml.safe_dump({"kolla_internal_vip_address": "10.0.0.10",
                                                           "network_interface": "eth0"}))
    hosts = "node1 ansible_host=10.0.0.11 api_interface_address=10.0.0.11"
    (tmp_path / "multinode").write_text("".join(f"[{g}]\n{hosts}\n" for g in
                                                ("control", "network", "compute", "storage", "monitoring")))
    seen: dict[str, Any] = {}

    def fake_run(playbook: Path, inventories: list[Path], **kw: Any) -> None:
        plays = yaml.safe_load(Path(playbook).read_text())
        seen["plan_dirs"] = {t["vars"]["stackyard_plan_dir"] for p in plays for t in p["tasks"]
                             if "stackyard_plan_dir" in t.get("vars", {})}
        raise DeployError("stop here")

    monkeypatch.setattr("stackyard.ansible.runner.run_playbook", fake_run)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["deploy", "-i", "multinode", "--configdir", "etc-kolla"]) == 2
    (plan_dir,) = seen["plan_dirs"]
    assert Path(plan_dir).is_absolute() and (Path(plan_dir) / "node1.plan").is_file()
