"""What a release changes in the plan: Neutron's API under uWSGI from 2025.2, with RPC and
periodic workers in containers of their own; the release name itself is checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from stackyard.agent.model import StepKind
from stackyard.deploy import plan as plan_mod
from stackyard.deploy.config import load_globals
from stackyard.deploy.merge import parse_ini
from stackyard.deploy.passwords import genpwd
from stackyard.errors import ConfigError

NEUTRON = {"kolla_internal_vip_address": "127.0.0.1", "network_interface": "lo", "enable_neutron": True}


def neutron_plan(tmp_path: Path, release: str):
    configdir = tmp_path / release
    configdir.mkdir()
    genpwd(configdir / "passwords.yml")
    (configdir / "globals.yml").write_text(yaml.safe_dump(dict(NEUTRON, openstack_release=release)))
    dep = plan_mod.load(configdir)
    plan = plan_mod.make_plans(dep)["localhost"]
    files = {f.path.removeprefix(str(configdir) + "/"): f.content for f in plan.files}
    phase = next(p for p in plan.phases if p.name == "neutron")
    return files, phase


def test_2025_1_runs_the_eventlet_server(tmp_path: Path) -> None:
    files, phase = neutron_plan(tmp_path, "2025.1")
    containers = [s.name for s in phase.steps if s.kind == StepKind.CONTAINER]
    assert "neutron_rpc_server" not in containers and "neutron_periodic_workers" not in containers
    assert json.loads(files["neutron-server/config.json"])["command"].startswith("neutron-server --config-file")


def test_2026_1_serves_the_api_under_uwsgi_with_rpc_and_periodic_workers_apart(tmp_path: Path) -> None:
    files, phase = neutron_plan(tmp_path, "2026.1")
    server = json.loads(files["neutron-server/config.json"])
    assert server["command"] == "uwsgi --ini /etc/neutron/neutron-api-uwsgi.ini"
    uwsgi = parse_ini(files["neutron-server/neutron-api-uwsgi.ini"])["uwsgi"]
    assert uwsgi["wsgi-file"] == ["/usr/bin/neutron-api"] and uwsgi["http-socket"] == ["127.0.0.1:9696"]
    # neutron.wsgi.api reads these two paths: the config.json must put them there
    dests = {c["dest"] for c in server["config_files"]}
    assert {"/etc/neutron/neutron.conf", "/etc/neutron/plugins/ml2/ml2_conf.ini"} <= dests
    for svc, cmd in (("neutron-rpc-server", "neutron-rpc-server"),
                     ("neutron-periodic-workers", "neutron-periodic-workers")):
        conf = json.loads(files[f"{svc}/config.json"])
        assert conf["command"] == (f"{cmd} --config-file /etc/neutron/neutron.conf "
                                   "--config-file /etc/neutron/plugins/ml2/ml2_conf.ini")
        assert files[f"{svc}/neutron.conf"] == files["neutron-server/neutron.conf"]
    steps = {s.name: s for s in phase.steps if s.kind == StepKind.CONTAINER}
    for name in ("neutron_rpc_server", "neutron_periodic_workers"):
        assert steps[name].group == "neutron-server"
        assert steps[name].container.image == "stackyard/neutron-server:2026.1"


@pytest.mark.parametrize("bad", ["2026", "master", "2026.3", "26.1"])
def test_the_release_must_be_a_release_name(tmp_path: Path, bad: str) -> None:
    (tmp_path / "globals.yml").write_text(yaml.safe_dump({"openstack_release": bad}))
    with pytest.raises(ConfigError, match="openstack_release"):
        load_globals(tmp_path)


def test_up_builds_debians_release_from_packages_and_any_other_from_source() -> None:
    from stackyard.commands.up import install_type_for

    assert install_type_for("2025.1") == "binary"
    assert install_type_for("2026.1") == "source"
    assert install_type_for("zed", "bookworm") == "binary"
