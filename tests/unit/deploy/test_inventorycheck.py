"""Inventory sanity: enabled services without hosts and misspelt groups stop the run
(stackyard.deploy.inventorycheck), kolla-ansible's own inventories pass."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stackyard.deploy import inventorycheck, services
from stackyard.deploy import plan as plan_mod
from stackyard.deploy.inventory import load_inventory, parse_inventory
from stackyard.deploy.passwords import genpwd
from stackyard.errors import ConfigError

ROLES = "".join(f"[{role}]\nnode1\n\n" for role in services.ROLES)


def problems(text: str, enabled: list[str] | None = None) -> list[str]:
    """The problems of an INI inventory, with ``enabled`` services (default: all of them)."""
    inventory = parse_inventory(text, "inv")
    chosen = list(services.ALL.values()) if enabled is None else [services.get(n) for n in enabled]
    return inventorycheck.problems(inventory, chosen, lambda groups: plan_mod.hosts_for_groups(inventory, groups))


@pytest.mark.parametrize("a, b, n", [
    ("control", "control", 0), ("contrl", "control", 1), ("contorl", "control", 1),
    ("controler", "control", 2), ("cotnrol", "control", 1), ("", "abc", 3), ("nova", "zun", 4),
])
def test_edits(a, b, n):
    assert inventorycheck.edits(a, b) == n == inventorycheck.edits(b, a)


@pytest.mark.parametrize("group, typo_of", [
    ("contrl", "control"), ("comptue", "compute"), ("netwrok", "network"), ("nova-compte", "nova-compute"),
    ("neutron-sever", "neutron-server"), ("cinder-volumes", "cinder-volume"),
    # kolla-ansible's groups for services stackyard does not deploy are no typos
    ("nova-compute-ironic", None), ("neutron-ovn-metadata-agent", None), ("neutron-ovn-agent", None),
    ("trove-conductor", None), ("manila-scheduler", None), ("zun-compute", None), ("db", None),
])
def test_typo_of(group, typo_of):
    assert inventorycheck.typo_of(group, inventorycheck.known_groups()) == typo_of


def test_a_misspelt_role_is_reported_with_the_services_it_starves():
    text = ROLES.replace("[control]", "[contrl]")
    found = problems(text, ["mariadb", "keystone", "nova"])
    assert found[0] == "unknown inventory group 'contrl': did you mean 'control'? ('control' is missing)"
    assert found[1:] == [
        "enabled service 'mariadb' has no host: inventory group 'mariadb' has no host "
        "(add one, or set enable_mariadb: no)",
        "enabled service 'keystone' has no host: inventory group 'keystone' has no host "
        "(add one, or set enable_keystone: no)",
    ]  # nova still runs its compute part on the compute hosts


def test_a_typo_is_reported_when_the_group_it_misses_is_empty():
    text = ROLES.replace("[compute]\nnode1", "[compute]\n[comptue]\nnode1")
    assert problems(text, ["cron"]) == [
        "unknown inventory group 'comptue': did you mean 'compute'? ('compute' has no host)"]


def test_a_service_group_typo_is_reported_even_when_its_parents_would_fill_it():
    """nova-compute falls back to compute; the hosts meant for nova-compte would be lost."""
    assert problems(ROLES + "[nova-compte]\nnode1\n", ["cron"]) == [
        "unknown inventory group 'nova-compte': did you mean 'nova-compute'? ('nova-compute' is missing)"]


def test_groups_nothing_reads_are_no_typo_targets():
    """kolla-ansible 2026.1 spells kolla_toolbox with an underscore; stackyard reads no
    such group, so neither spelling matters. A group stackyard reads does."""
    assert problems(ROLES + "[kolla_toolbox:children]\ncommon\n[kolla_logs:children]\ncommon\n") == []
    assert problems(ROLES + "[nova_api:children]\ncontrol\n", ["cron"]) == [
        "unknown inventory group 'nova_api': did you mean 'nova-api'? ('nova-api' is missing)"]


def test_a_near_name_beside_its_populated_group_is_a_group_of_its_own():
    assert problems(ROLES + "[compute2]\nnode1\n[nova-compute-ironic:children]\ncompute\n") == []


def test_an_empty_group_of_a_disabled_service_is_fine():
    text = ROLES + "[heat-api]\n[heat-api-cfn]\n[heat-engine]\n"
    assert problems(text, ["mariadb", "keystone"]) == []
    assert problems(text, ["mariadb", "keystone", "heat"]) == [
        "enabled service 'heat' has no host: inventory groups 'heat-api', 'heat-api-cfn', 'heat-engine' "
        "have no host (add one, or set enable_heat: no)"]


@pytest.mark.parametrize("name", ["all-in-one", "multinode"])
def test_kolla_ansibles_own_inventories_pass(kolla, name):
    inventory = load_inventory([kolla.inventory / name])
    assert len(inventory.groups) > 100  # really kolla's, with a group per service it deploys
    assert inventorycheck.problems(inventory, services.ALL.values(),
                                   lambda groups: plan_mod.hosts_for_groups(inventory, groups)) == []


def test_the_built_in_all_in_one_passes():
    inventory = load_inventory(None)
    assert inventorycheck.problems(inventory, services.ALL.values(),
                                   lambda groups: plan_mod.hosts_for_groups(inventory, groups)) == []


def configdir(tmp_path: Path) -> Path:
    path = tmp_path / "etc-kolla"
    path.mkdir()
    genpwd(path / "passwords.yml")
    (path / "globals.yml").write_text(yaml.safe_dump({"kolla_internal_vip_address": "127.0.0.1",
                                                      "network_interface": "lo"}))
    return path


def test_the_deploy_stops_on_a_misspelt_inventory_naming_file_and_group(tmp_path):
    inventory = tmp_path / "multinode"
    inventory.write_text(ROLES.replace("[control]", "[contrl]").replace("node1", "localhost ansible_connection=local"))
    with pytest.raises(ConfigError) as exc:
        plan_mod.load(configdir(tmp_path), [inventory])
    lines = str(exc.value).splitlines()
    assert lines[0] == f"{inventory}: unknown inventory group 'contrl': did you mean 'control'? ('control' is missing)"
    assert all(line.startswith(f"{inventory}: enabled service '") for line in lines[1:]) and lines[1:]


def test_the_deploy_plans_kollas_multinode(kolla, tmp_path):
    dep = plan_mod.load(configdir(tmp_path), [kolla.inventory / "multinode"])
    plans = plan_mod.make_plans(dep)
    assert {"control01", "compute01", "network01"} <= set(plans)
