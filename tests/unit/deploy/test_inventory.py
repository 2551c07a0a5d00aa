"""Ansible inventories: INI, YAML, the built-in all-in-one."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackyard.deploy.inventory import (
    ALL_IN_ONE_SOURCE,
    expand_hosts,
    load_inventory,
    parse_inventory,
)
from stackyard.errors import ConfigError

MULTINODE = """\
# a comment
[control]
ctl[01:03] ansible_host=10.0.0.1 network_interface=eth1   # trailing comment
[network]
net01 ansible_host=10.0.1.1 ansible_port=2222 api_interface="eth 2"
[compute]
cmp01
cmp02:2200

[storage]

[all:vars]
network_interface=eth0
ansible_user='kolla'

[control:vars]
network_interface=ens3

[nova:children]
control
[nova-api:children]
nova
[nova-compute:children]
compute
[neutron-agents:children]
network
compute
"""


def test_all_in_one_groups():
    inv = load_inventory(None)
    assert inv.source == ALL_IN_ONE_SOURCE
    assert inv.hosts == {"localhost": {"ansible_connection": "local"}}
    for group in ("control", "network", "compute", "storage", "monitoring", "deployment",
                  "mariadb", "memcached", "rabbitmq", "keystone", "cron", "glance",
                  "glance-api", "placement", "placement-api", "nova-api", "nova-scheduler",
                  "nova-conductor", "nova-novncproxy", "nova-compute", "nova-libvirt",
                  "neutron-server", "neutron-dhcp-agent", "neutron-l3-agent",
                  "neutron-metadata-agent", "neutron-openvswitch-agent", "horizon",
                  "all"):
        assert inv.hosts_in(group) == ["localhost"], group
    assert inv.groups["ungrouped"] == []
    assert inv.children["nova-compute"] == ["compute"]
    assert inv.children["nova-api"] == ["nova"] and inv.children["nova"] == ["control"]
    assert inv.children["neutron-server"] == ["control"]
    assert inv.children["neutron-l3-agent"] == ["neutron"]
    assert inv.children["neutron"] == ["network"]
    assert set(inv.children["common"]) == {"control", "network", "compute", "storage",
                                           "monitoring"}
    assert inv.children["cron"] == ["common"]


def test_empty_list_means_all_in_one():
    assert load_inventory([]).hosts_in("keystone") == ["localhost"]


def test_all_in_one_by_name_when_no_such_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_inventory([Path("all-in-one")]).hosts_in("nova-compute") == ["localhost"]


def test_ini_hosts_ranges_vars_and_children(tmp_path):
    path = tmp_path / "multinode"
    path.write_text(MULTINODE)
    inv = load_inventory([path])
    assert inv.hosts_in("control") == ["ctl01", "ctl02", "ctl03"]
    assert inv.hosts_in("nova-api") == ["ctl01", "ctl02", "ctl03"]
    assert inv.hosts_in("nova-compute") == ["cmp01", "cmp02"]
    assert inv.hosts_in("neutron-agents") == ["cmp01", "cmp02", "net01"]
    assert inv.hosts_in("storage") == []
    assert inv.hosts_in("all") == ["cmp01", "cmp02", "ctl01", "ctl02", "ctl03", "net01"]
    # host vars: python literals on host lines, quoted strings unquoted
    assert inv.hosts["net01"]["ansible_port"] == 2222
    assert inv.hosts["net01"]["api_interface"] == "eth 2"
    assert inv.hosts["cmp02"]["ansible_port"] == 2200
    # precedence: all:vars < group vars < host vars
    assert inv.hosts["cmp01"]["network_interface"] == "eth0"
    assert inv.hosts["ctl02"]["network_interface"] == "eth1"
    assert inv.hosts["cmp01"]["ansible_user"] == "kolla"
    assert inv.group_vars["control"] == {"network_interface": "ens3"}
    assert "control" in inv.groups_of("ctl01") and "nova-api" in inv.groups_of("ctl01")


def test_group_vars_layer_parent_before_child():
    inv = parse_inventory("[a]\nh1\n[b:children]\na\n[b:vars]\nx=from-b\n[a:vars]\nx=from-a\n"
                          "[all:vars]\nx=from-all\ny=all\n")
    assert inv.hosts["h1"] == {"x": "from-a", "y": "all"}


def test_vars_section_values_are_strings():
    inv = parse_inventory("[a]\nh1 port=22 flag=True\n[a:vars]\nport2=22\n")
    assert inv.hosts["h1"]["port"] == 22 and inv.hosts["h1"]["flag"] is True
    assert inv.hosts["h1"]["port2"] == "22"


def test_ungrouped_hosts():
    inv = parse_inventory("lonely ansible_host=1.2.3.4\n[g]\nh1\n")
    assert inv.groups["ungrouped"] == ["lonely"]
    assert inv.hosts_in("all") == ["h1", "lonely"]


def test_host_in_several_groups_merges_vars():
    inv = parse_inventory("[a]\nh a=1\n[b]\nh b=2\n")
    assert inv.hosts["h"] == {"a": 1, "b": 2}
    assert inv.hosts_in("a") == inv.hosts_in("b") == ["h"]


def test_nested_children_resolve_recursively():
    inv = parse_inventory("[leaf]\nh1\n[mid:children]\nleaf\n[top:children]\nmid\n"
                          "[top]\nh0\n")
    assert inv.hosts_in("top") == ["h0", "h1"]
    assert inv.hosts_in("mid") == ["h1"]


def test_undefined_child_group_is_empty():
    inv = parse_inventory("[top:children]\nghost\n")
    assert inv.hosts_in("ghost") == [] and inv.hosts_in("top") == []


def test_cycle_is_an_error():
    with pytest.raises(ConfigError, match=r"cycle: (a -> b -> c -> a|b -> c -> a -> b|"
                                          r"c -> a -> b -> c)"):
        parse_inventory("[a:children]\nb\n[b:children]\nc\n[c:children]\na\n", "inv")


def test_self_cycle_is_an_error():
    with pytest.raises(ConfigError, match="inv: inventory group cycle: a -> a"):
        parse_inventory("[a:children]\na\n", "inv")


def test_unknown_group_is_an_error():
    inv = parse_inventory("[a]\nh\n", "myinv")
    with pytest.raises(ConfigError, match="myinv.*'nova-compute'"):
        inv.hosts_in("nova-compute")


@pytest.mark.parametrize("text,fragment", [
    ("# hi\n[a\nh\n", "invalid section header"),
    ("\n[a:weird]\nh\n", "unknown section type"),
    ("[a:vars]\nnovalue\n", "key=value"),
    ("[a]\nh novalue\n", "key=value"),
    ("[a:children]\nb c\n", "one group name"),
    ("[a]\nh x='unterminated\n", "No closing quotation"),
])
def test_ini_errors_name_file_and_line(text, fragment):
    with pytest.raises(ConfigError) as exc:
        parse_inventory(text, "inv")
    assert "inv:2" in str(exc.value) and fragment in str(exc.value)


def test_expand_hosts():
    assert expand_hosts("web[1:3]") == ["web1", "web2", "web3"]
    assert expand_hosts("web[08:10].lan") == ["web08.lan", "web09.lan", "web10.lan"]
    assert expand_hosts("n[0:10:5]") == ["n0", "n5", "n10"]
    assert expand_hosts("db-[a:c]") == ["db-a", "db-b", "db-c"]
    assert expand_hosts("r[1:2]c[1:2]") == ["r1c1", "r1c2", "r2c1", "r2c2"]
    assert expand_hosts("plain") == ["plain"]
    with pytest.raises(ConfigError):
        expand_hosts("bad[1:z]")
    with pytest.raises(ConfigError):
        expand_hosts("bad[3:1]")


YAML_INV = """\
all:
  vars:
    network_interface: eth0
  hosts:
    solo:
  children:
    control:
      hosts:
        ctl[01:02]:
          ansible_host: 10.0.0.1
      vars:
        api_interface: eth1
    compute:
      hosts:
        cmp01:
          network_interface: eth9
    nova:
      children:
        control:
    nova-compute:
      children:
        compute:
"""


@pytest.mark.parametrize("name", ["inv.yml", "inventory"])
def test_yaml_inventory(tmp_path, name):
    path = tmp_path / name
    path.write_text(YAML_INV)
    inv = load_inventory([path])
    assert inv.hosts_in("control") == ["ctl01", "ctl02"]
    assert inv.hosts_in("nova") == ["ctl01", "ctl02"]
    assert inv.hosts_in("nova-compute") == ["cmp01"]
    assert inv.hosts_in("all") == ["cmp01", "ctl01", "ctl02", "solo"]
    assert inv.groups["ungrouped"] == ["solo"]
    assert inv.hosts["ctl01"] == {"network_interface": "eth0", "api_interface": "eth1",
                                  "ansible_host": "10.0.0.1"}
    assert inv.hosts["cmp01"]["network_interface"] == "eth9"


def test_yaml_cycle_is_an_error():
    with pytest.raises(ConfigError, match="cycle"):
        parse_inventory("a:\n  children:\n    b:\n      children:\n        a:\n",
                        yaml_format=True)


@pytest.mark.parametrize("text,fragment", [
    ("- a\n", "mapping of groups"),
    ("g:\n  host:\n    h1:\n", "unknown key"),
    ("g:\n  hosts: [h1]\n", "'hosts' of group 'g'"),
    ("g:\n  hosts:\n    h1: 3\n", "host 'h1'"),
    ("g: [1]\n", "group 'g'"),
    ("g:\n  hosts: {a: 1\n", "invalid YAML"),
])
def test_yaml_errors(tmp_path, text, fragment):
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_inventory([path])
    assert str(path) in str(exc.value) and fragment in str(exc.value)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="nope.*not found"):
        load_inventory([tmp_path / "nope"])


def test_several_files_and_directories_merge(tmp_path):
    (tmp_path / "a").write_text("[control]\nc1\n")
    d = tmp_path / "dir"
    d.mkdir()
    (d / "10-compute").write_text("[compute]\nn1\n")
    (d / "20-more.yml").write_text("compute:\n  hosts:\n    n2:\n")
    (d / "skip.retry").write_text("garbage [[[\n")
    (d / ".hidden").write_text("garbage [[[\n")
    inv = load_inventory([tmp_path / "a", d])
    assert inv.hosts_in("compute") == ["n1", "n2"]
    assert inv.hosts_in("control") == ["c1"]
