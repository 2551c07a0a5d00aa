"""Multi-host plans and waves: placement by group, clusters, VIP, one task per host per wave."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from stackyard.agent.galera import choose_bootstrap_host
from stackyard.agent.model import DEPLOYMENT_LABEL, HostPlan
from stackyard.deploy import multihost
from stackyard.deploy import plan as plan_mod
from stackyard.deploy.inventory import parse_inventory
from stackyard.deploy.passwords import genpwd

NODES = {"node1": "10.250.0.11", "node2": "10.250.0.12", "node3": "10.250.0.13"}
VIP = "10.250.0.250"


def inventory_text(nodes: dict[str, str], compute: list[str] | None = None) -> str:
    lines = []
    for group in ("control", "network", "monitoring", "storage"):
        lines.append(f"[{group}]")
        lines += [f"{h} ansible_host={a} api_interface_address={a}" for h, a in nodes.items()]
        lines.append("")
    lines.append("[compute]")
    lines += [f"{h} ansible_host={nodes[h]} api_interface_address={nodes[h]}" for h in (compute or list(nodes))]
    lines += ["", "[deployment]", "localhost ansible_connection=local", ""]
    # the per-service child groups of the all-in-one file
    from stackyard.deploy.inventory import ALL_IN_ONE

    lines.append(ALL_IN_ONE[ALL_IN_ONE.index("[baremetal:children]"):])
    return "\n".join(lines)


def multinode(tmp_path: Path, nodes: dict[str, str] = NODES, extra: dict | None = None):
    configdir = tmp_path / "etc-kolla"
    configdir.mkdir()
    genpwd(configdir / "passwords.yml")
    # infrastructure and Keystone (kolla-ansible's core services, which follow
    # enable_openstack_core, are asked for by the tests that want them)
    g = {"kolla_internal_vip_address": VIP, "network_interface": "eth0", "enable_loadbalancer": True,
         "docker_registry": "10.250.0.1:5000", "docker_registry_insecure": True, "enable_openstack_core": False}
    g.update(extra or {})
    (configdir / "globals.yml").write_text(yaml.safe_dump(g))
    inv = tmp_path / "multinode"
    inv.write_text(inventory_text(nodes))
    dep = plan_mod.load(configdir, [inv])
    plan_mod.make_plans(dep)
    return dep


def file_text(plan: HostPlan, rel: str) -> str:
    return next(f.content for f in plan.files if f.path == f"{plan.config_root}/{rel}")


def steps(plan: HostPlan, phase: str) -> list[str]:
    return [s.key for p in plan.phases if p.name == phase for s in p.steps]


def test_remote_hosts_render_into_etc_kolla_with_their_own_addresses(tmp_path):
    dep = multinode(tmp_path)
    assert dep.remote_hosts == ["node1", "node2", "node3"]
    assert sorted(dep.plans) == ["node1", "node2", "node3"]
    for host, addr in NODES.items():
        plan = dep.plans[host]
        assert plan.config_root == "/etc/kolla"
        assert f"bind-address = {addr}" in file_text(plan, "mariadb/galera.cnf")
        assert f"http-socket = {addr}:5000" in file_text(plan, "keystone/keystone-uwsgi.ini")
        # images come from the registry
        assert all(s.container.image.startswith("10.250.0.1:5000/stackyard/")
                   for p in plan.phases for s in p.steps if s.container)


def test_galera_lists_every_member_and_the_first_host_forms_the_cluster(tmp_path):
    dep = multinode(tmp_path)
    cnf = file_text(dep.plans["node2"], "mariadb/galera.cnf")
    assert "wsrep_cluster_address = gcomm://10.250.0.11:4567,10.250.0.12:4567,10.250.0.13:4567" in cnf
    assert "wsrep_node_address = 10.250.0.12:4567" in cnf
    phase = next(p for p in dep.plans["node1"].phases if p.name == "mariadb")
    assert phase.serial
    galera = next(s for s in phase.steps if s.kind == "galera")
    assert galera.params == {"peers": ["10.250.0.12:4567", "10.250.0.13:4567"], "first": True}
    galera2 = next(s for p in dep.plans["node2"].phases for s in p.steps if s.kind == "galera")
    assert galera2.params["first"] is False
    config = json.loads(file_text(dep.plans["node1"], "mariadb/config.json"))
    assert config["command"] == "galera-start"


def test_all_in_one_mariadb_is_not_a_galera_cluster(tmp_path):
    configdir = tmp_path / "aio"
    configdir.mkdir()
    genpwd(configdir / "passwords.yml")
    dep = plan_mod.load(configdir)
    plan_mod.make_plans(dep)
    cnf = file_text(dep.plans["localhost"], "mariadb/galera.cnf")
    assert "wsrep" not in cnf
    assert "rabbit@localhost" in file_text(dep.plans["localhost"], "rabbitmq/rabbitmq-env.conf")
    assert "cluster_formation" not in file_text(dep.plans["localhost"], "rabbitmq/rabbitmq.conf")
    assert "loadbalancer" not in [p.name for p in dep.plans["localhost"].phases]


def test_rabbitmq_nodes_cluster_by_name_and_clients_list_every_node(tmp_path):
    dep = multinode(tmp_path)
    conf = file_text(dep.plans["node3"], "rabbitmq/rabbitmq.conf")
    for i, n in enumerate(NODES, 1):
        assert f"cluster_formation.classic_config.nodes.{i} = rabbit@{n}" in conf
    assert "NODENAME=rabbit@node3" in file_text(dep.plans["node3"], "rabbitmq/rabbitmq-env.conf")
    keystone_conf = file_text(dep.plans["node1"], "keystone/keystone.conf")
    assert "@10.250.0.11:5672,keystone:" in keystone_conf and "@10.250.0.13:5672/keystone" in keystone_conf
    assert "memcache_servers = 10.250.0.11:11211,10.250.0.12:11211,10.250.0.13:11211" in keystone_conf
    # the database is reached through the VIP
    assert f"@{VIP}:3306/keystone" in keystone_conf


def test_keystone_keys_are_identical_on_every_host(tmp_path):
    dep = multinode(tmp_path)
    keys = {h: [file_text(p, f"keystone/{r}-key-{i}") for r in ("fernet", "credential") for i in (0, 1)]
            for h, p in dep.plans.items()}
    assert keys["node1"] == keys["node2"] == keys["node3"]
    assert len(set(keys["node1"])) == 4
    import base64

    assert all(len(base64.urlsafe_b64decode(k.strip())) == 32 for k in keys["node1"])


def test_haproxy_fronts_keystone_and_mariadb_on_the_vip(tmp_path):
    dep = multinode(tmp_path)
    cfg = file_text(dep.plans["node2"], "haproxy/haproxy.cfg")
    assert f"bind {VIP}:5000 transparent" in cfg and f"bind {VIP}:3306 transparent" in cfg
    assert "server node1 10.250.0.11:5000 check" in cfg and "server node3 10.250.0.13:5000 check" in cfg
    # Galera: one active backend, the others backups
    mariadb = cfg[cfg.index("listen mariadb"):cfg.index("listen keystone")]
    assert "server node1 10.250.0.11:3306 check inter 2000 rise 2 fall 3\n" in mariadb
    assert "server node2 10.250.0.12:3306 check inter 2000 rise 2 fall 3 backup" in mariadb
    ka = file_text(dep.plans["node2"], "keepalived/keepalived.conf")
    assert f"{VIP}/32 dev eth0" in ka and "unicast_src_ip 10.250.0.12" in ka
    assert "10.250.0.11" in ka and "priority 249" in ka


def test_waves_give_each_host_a_few_tasks_in_dependency_order(tmp_path):
    dep = multinode(tmp_path)
    waves = multihost.compute_waves(dep.plans)
    kinds = [(w.kind, w.serial, w.hosts) for w in waves]
    # prepare + loadbalancer share the first wave on every host
    assert waves[0].prepare and waves[0].hosts == ["node1", "node2", "node3"]
    assert "loadbalancer" in waves[0].select["node2"]
    # galera joins one host at a time, then the first host leaves bootstrap mode
    galera = next(w for w in waves if w.serial and "mariadb" in w.select.get("node1", {}))
    assert galera.select["node1"]["mariadb"] == ["job:bootstrap_mariadb", "galera:mariadb", "wait:mariadb"]
    finalize = waves[waves.index(galera) + 1]
    assert finalize.hosts == ["node1"] and finalize.select == {"node1": {"mariadb": ["galera_finalize:mariadb"]}}
    # keystone bootstrap jobs run once, on node1; API steps on the deploy host
    once = [w for w in waves if w.kind == "target" and w.hosts == ["node1"]]
    assert any("job:bootstrap_keystone" in w.select["node1"].get("keystone", []) for w in once)
    api = [w for w in waves if w.kind == "api"]
    assert [list(w.select["node1"]) for w in api] == [["mariadb"], ["keystone"], ["keystone"]]
    per_host = {h: sum(h in w.hosts for w in waves if w.kind == "target") for h in dep.plans}
    assert per_host["node2"] <= 6 and per_host["node1"] < 10, (per_host, kinds)
    # every step of every host runs exactly once across the waves
    for host, plan in dep.plans.items():
        want = sorted((p.name, s.key) for p in plan.phases for s in p.steps
                      if s.where == "host" or (s.where == "once" and host == "node1"))
        got = sorted((ph, k) for w in waves if w.kind == "target" for ph, keys in w.select.get(host, {}).items()
                     for k in keys)
        assert got == want


def test_tags_restrict_the_waves_to_those_phases(tmp_path):
    dep = multinode(tmp_path)
    waves = multihost.compute_waves(dep.plans, {"keystone"})
    phases = {ph for w in waves for sel in w.select.values() for ph in sel}
    assert phases == {"keystone"}


def test_playbook_has_one_task_per_play_and_ships_the_plan_once(tmp_path):
    dep = multinode(tmp_path)
    waves = multihost.compute_waves(dep.plans)
    plays = yaml.safe_load(multihost.render_playbook(waves, tmp_path / "plans", "/etc/kolla",
                                                     deployment=dep.label))
    assert len(plays) == len(waves)
    assert all(len(p["tasks"]) == 1 for p in plays)
    first = plays[0]["tasks"][0]["stackyard_host"]
    assert first["prepare"] is True and "lookup" in first["plan"] and ".plan" in first["plan"]
    assert sum("plan" in p["tasks"][0].get("stackyard_host", {}) for p in plays) == 1
    # every host task knows which deployment it converges (the label on what it creates)
    host_tasks = [p["tasks"][0]["stackyard_host"] for p in plays if "stackyard_host" in p["tasks"][0]]
    assert host_tasks and all(t["deployment"] == str(dep.configdir.absolute()) for t in host_tasks)
    serial = [p for p in plays if p.get("serial") == 1]
    assert serial and all(p["any_errors_fatal"] for p in plays)
    api = [p["tasks"][0] for p in plays if "stackyard_api" in p["tasks"][0]]
    assert all(t["delegate_to"] == "localhost" and t["run_once"] for t in api)


def test_plan_round_trips_over_the_wire_with_its_secrets(tmp_path):
    dep = multinode(tmp_path)
    plan = dep.plans["node1"]
    wire = json.loads(json.dumps(plan.to_wire()))
    back = HostPlan.from_wire(wire)
    assert back.to_wire() == plan.to_wire()
    assert back.file_hashes() == plan.file_hashes()
    spec = back.containers()[0]
    assert spec.spec_hash("sha256:x", back.file_hashes()) == plan.containers()[0].spec_hash(
        "sha256:x", plan.file_hashes())


def test_plan_files_are_private(tmp_path):
    dep = multinode(tmp_path)
    multihost.write_plan_files(dep, tmp_path / "plans")
    for path in (tmp_path / "plans").iterdir():
        assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "plans").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("seqnos,best", [
    ({"node1": 10, "node2": 12, "node3": 11}, "node2"),
    ({"node1": 12, "node2": 12, "node3": 3}, "node1"),
    ({"node1": -1, "node2": -1, "node3": 0}, "node3"),
])
def test_recovery_bootstraps_from_the_highest_seqno(seqnos, best):
    assert choose_bootstrap_host(["node1", "node2", "node3"], seqnos) == best


class _Played:
    """What a fake ansible-playbook run returns: success, no tasks."""

    rc = 0
    tasks: list = []

    def first_error(self) -> str:
        return ""


def test_run_passes_the_deployment_to_every_host_task(tmp_path, monkeypatch):
    dep = multinode(tmp_path)
    seen: dict = {}

    def fake_run(playbook, inventories, **kw):
        seen["plays"] = yaml.safe_load(Path(playbook).read_text())
        seen["inventories"] = inventories
        return _Played()

    monkeypatch.setattr("stackyard.ansible.runner.run_playbook", fake_run)
    summary = multihost.run(dep, [tmp_path / "multinode"])
    assert summary["error"] == "" and summary["rc"] == 0
    assert seen["inventories"] == [tmp_path / "multinode"]
    host_tasks = [p["tasks"][0]["stackyard_host"] for p in seen["plays"] if "stackyard_host" in p["tasks"][0]]
    assert len(host_tasks) == summary["waves"] - sum("stackyard_api" in p["tasks"][0] for p in seen["plays"])
    assert all(t["deployment"] == dep.label == str(dep.configdir.absolute()) for t in host_tasks)
    # the shipped plans carry the same label, which every container spec has too
    for host in dep.plans:
        wire = json.loads((dep.configdir / ".stackyard" / "hosts" / f"{host}.json").read_text())
        assert wire["deployment"] == dep.label
        back = HostPlan.from_wire(wire)
        assert all(c.labels[DEPLOYMENT_LABEL] == dep.label for c in back.containers())


def test_host_operations_carry_the_deployment(tmp_path, monkeypatch):
    dep = multinode(tmp_path)
    seen: dict = {}

    def fake_run(playbook, inventories, **kw):
        seen["plays"] = yaml.safe_load(Path(playbook).read_text())
        return _Played()

    monkeypatch.setattr("stackyard.ansible.runner.run_playbook", fake_run)
    multihost.run_op(dep, [tmp_path / "multinode"], "stop", ["node2"], args={"names": ["mariadb"]})
    (play,) = seen["plays"]
    assert play["hosts"] == ["node2"]
    task = play["tasks"][0]["stackyard_host"]
    assert task == {"op": "stop", "config_root": "/etc/kolla", "deployment": dep.label, "names": ["mariadb"]}


def cloud_inventory(tmp_path: Path) -> Path:
    """node1, node2: control + network; node3: compute only."""
    from stackyard.deploy.inventory import ALL_IN_ONE

    def line(h: str) -> str:
        return f"{h} ansible_host={NODES[h]} api_interface_address={NODES[h]}"

    text = "\n".join([
        "[control]", line("node1"), line("node2"), "",
        "[network]", line("node1"), line("node2"), "",
        "[compute]", line("node3"), "",
        "[monitoring]", line("node1"), "", "[storage]", line("node1"), "",
        "[deployment]", "localhost ansible_connection=local", "",
        ALL_IN_ONE[ALL_IN_ONE.index("[baremetal:children]"):],
    ])
    inv = tmp_path / "multinode-cloud"
    inv.write_text(text)
    return inv


def test_services_land_on_their_child_groups(tmp_path):
    configdir = tmp_path / "etc-kolla"
    configdir.mkdir()
    genpwd(configdir / "passwords.yml")
    (configdir / "globals.yml").write_text(yaml.safe_dump({
        "kolla_internal_vip_address": VIP, "network_interface": "eth0", "enable_loadbalancer": True,
        "enable_glance": True, "enable_placement": True, "enable_nova": True, "enable_neutron": True,
        "nova_compute_virt_type": "qemu"}))
    dep = plan_mod.load(configdir, [cloud_inventory(tmp_path)])
    plan_mod.make_plans(dep)

    def containers(host: str) -> set[str]:
        return {s.name for s in dep.plans[host].containers()}

    assert {"nova_compute", "nova_libvirt", "neutron_openvswitch_agent", "openvswitch_vswitchd",
            "cron"} <= containers("node3")
    assert not containers("node3") & {"nova_api", "nova_scheduler", "neutron_server", "neutron_l3_agent",
                                      "keystone", "mariadb", "glance_api"}
    assert {"nova_api", "nova_scheduler", "nova_conductor", "neutron_server", "neutron_l3_agent",
            "neutron_dhcp_agent", "keystone", "mariadb"} <= containers("node1")
    assert "nova_compute" not in containers("node1")
    # a compute-only host's wait steps follow their containers
    nova3 = steps(dep.plans["node3"], "nova")
    assert "wait:nova_api" not in nova3 and "wait:nova_libvirt" in nova3
    assert not any(k.startswith(("job:", "database:", "keystone_register:")) for k in nova3)

    waves = multihost.compute_waves(dep.plans)
    # bootstrap_nova runs once, on the first nova-api host
    once = [w for w in waves if any("job:bootstrap_nova" in sel.get("nova", []) for sel in w.select.values())]
    assert len(once) == 1 and list(once[0].select) == ["node1"]
    # the hypervisor wait is an API step taken from node3's plan, after the services started
    api = [w for w in waves if w.kind == "api" and "node3" in w.select]
    assert api and api[0].select["node3"] == {"nova": ["hypervisor_wait:node3"]}
    for host, plan in dep.plans.items():
        want = sorted((p.name, s.key) for p in plan.phases for s in p.steps if s.where == "host")
        got = sorted((ph, k) for w in waves if w.kind == "target" for ph, keys in w.select.get(host, {}).items()
                     for k in keys
                     if next(s for p in plan.phases if p.name == ph for s in p.steps if s.key == k).where == "host")
        assert got == want, host


def test_missing_child_groups_fall_back_to_the_groups_they_are_declared_under(tmp_path):
    """An inventory of roles only (no [nova-compute:children] …) places services as kolla-ansible's would."""
    configdir = tmp_path / "etc-kolla"
    configdir.mkdir()
    genpwd(configdir / "passwords.yml")
    (configdir / "globals.yml").write_text(yaml.safe_dump({
        "kolla_internal_vip_address": VIP, "network_interface": "eth0",
        "enable_glance": True, "enable_placement": True, "enable_nova": True, "enable_neutron": True}))
    text = cloud_inventory(tmp_path).read_text()
    roles_only = tmp_path / "roles-only"
    roles_only.write_text(text[:text.index("[baremetal:children]")])
    dep = plan_mod.load(configdir, [roles_only])
    assert "nova-compute" not in dep.inventory.groups
    plan_mod.make_plans(dep)

    def containers(host: str) -> set[str]:
        return {s.name for s in dep.plans[host].containers()}

    assert {"nova_compute", "nova_libvirt", "neutron_openvswitch_agent", "openvswitch_vswitchd",
            "cron"} <= containers("node3")
    assert not containers("node3") & {"nova_api", "neutron_server", "neutron_l3_agent", "keystone", "mariadb"}
    assert {"nova_api", "neutron_server", "neutron_l3_agent", "keystone", "mariadb"} <= containers("node1")
    assert "nova_compute" not in containers("node1")


def test_hosts_for_walks_declared_parents_then_control():
    inv = parse_inventory("[control]\nc1\n[compute]\nn1\nn2\n[network]\nc1\n", "inv")
    assert plan_mod.hosts_for(inv, "nova-compute") == ["n1", "n2"]  # nova-compute -> compute
    assert plan_mod.hosts_for(inv, "nova-api") == ["c1"]             # nova-api -> nova -> control
    assert plan_mod.hosts_for(inv, "neutron-openvswitch-agent") == ["c1", "n1", "n2"]  # network + compute
    assert plan_mod.hosts_for(inv, "no-such-group") == ["c1"]        # nothing declared: control
    # a group the inventory has is taken as written, even when it differs from the fallback
    inv = parse_inventory("[control]\nc1\n[compute]\nn1\n[nova-compute]\nc1\n", "inv")
    assert plan_mod.hosts_for(inv, "nova-compute") == ["c1"]
    # a role missing altogether falls back to control too
    inv = parse_inventory("[control]\nc1\n", "inv")
    assert plan_mod.hosts_for(inv, "nova-compute") == ["c1"]


def test_waves_keep_the_service_order_across_hosts_with_different_steps(tmp_path):
    configdir = tmp_path / "etc-kolla"
    configdir.mkdir()
    genpwd(configdir / "passwords.yml")
    (configdir / "globals.yml").write_text(yaml.safe_dump({
        "kolla_internal_vip_address": VIP, "network_interface": "eth0",
        "enable_glance": True, "enable_placement": True, "enable_nova": True, "enable_neutron": True}))
    dep = plan_mod.load(configdir, [cloud_inventory(tmp_path)])
    plan_mod.make_plans(dep)
    order = [k for k, _, _ in multihost.step_union(dep.plans, ["node1", "node2", "node3"], "nova")]
    assert order.index("database:nova_api") < order.index("job:bootstrap_nova") < order.index("container:nova_api")
    # the conductor needs the nova user; nova-compute needs the conductor consuming
    assert order.index("keystone_register:nova") < order.index("wait:nova_conductor") \
        < order.index("container:nova_compute") < order.index("hypervisor_wait:node3")
    waves = multihost.compute_waves(dep.plans)
    pos = {k: i for i, w in enumerate(waves) for sel in w.select.values() for keys in sel.values() for k in keys}
    assert pos["database:nova_api"] < pos["job:bootstrap_nova"] < pos["container:nova_compute"] \
        < pos["hypervisor_wait:node3"]


def test_per_host_override_reaches_only_that_host(tmp_path):
    dep = multinode(tmp_path)
    override = dep.configdir / "config" / "keystone" / "node2" / "keystone.conf"
    override.parent.mkdir(parents=True)
    override.write_text("[token]\nexpiration = 1234\n")
    dep = plan_mod.load(dep.configdir, [tmp_path / "multinode"])
    plan_mod.make_plans(dep)
    assert "expiration = 1234" in file_text(dep.plans["node2"], "keystone/keystone.conf")
    assert "expiration = 1234" not in file_text(dep.plans["node1"], "keystone/keystone.conf")
    assert "expiration = 1234" not in file_text(dep.plans["node3"], "keystone/keystone.conf")


def test_interface_addresses_come_from_cached_facts(tmp_path, monkeypatch):
    configdir = tmp_path / "etc-kolla"
    configdir.mkdir()
    genpwd(configdir / "passwords.yml")
    (configdir / "globals.yml").write_text(yaml.safe_dump({"kolla_internal_vip_address": VIP,
                                                          "network_interface": "eth0"}))
    inv = tmp_path / "multinode"
    inv.write_text(inventory_text(NODES).replace(" api_interface_address=", " x_address="))
    cache = configdir / ".stackyard" / "addresses.json"
    cache.parent.mkdir()
    cache.write_text(json.dumps({h: {"eth0": a} for h, a in NODES.items()}))
    dep = plan_mod.load(configdir, [inv])

    def no_ansible(*a, **k):
        raise AssertionError("facts are cached: no playbook may run")

    monkeypatch.setattr("stackyard.ansible.runner.run_playbook", no_ansible)
    multihost.resolve_addresses(dep, [inv])
    plan_mod.make_plans(dep)
    assert "bind-address = 10.250.0.13" in file_text(dep.plans["node3"], "mariadb/galera.cnf")


def test_nova_bootstrap_reruns_when_cell1_urls_change(tmp_path):
    """cell1's mapping keeps the bus URL it was made with: its change re-runs bootstrap_nova."""
    cloud = {"enable_glance": True, "enable_placement": True, "enable_nova": True, "enable_neutron": True}
    dep = multinode(tmp_path, extra=cloud)
    globals_path = dep.configdir / "globals.yml"

    def bootstrap_hash(extra: dict) -> str:
        g = yaml.safe_load(globals_path.read_text())
        g.pop("rabbitmq_port", None)
        g.update(extra)
        globals_path.write_text(yaml.safe_dump(g))
        d = plan_mod.load(dep.configdir, [tmp_path / "multinode"])
        plan = plan_mod.make_plans(d)["node1"]
        spec = next(s.container for p in plan.phases for s in p.steps if s.key == "job:bootstrap_nova")
        assert spec.trigger_files == [f"{plan.config_root}/nova-api/cell1-mapping"]
        assert "@10.250.0.12:" in file_text(plan, "nova-api/cell1-mapping")
        return spec.spec_hash("sha256:x", plan.file_hashes())

    assert bootstrap_hash({}) == bootstrap_hash({})
    assert bootstrap_hash({}) != bootstrap_hash({"rabbitmq_port": 5673})


def _gathered(monkeypatch, facts: dict[str, dict]) -> list[str]:
    """Make the facts playbook return ``facts`` per host; returns the limits it was run with."""
    from stackyard.ansible.runner import PlaybookResult

    calls: list[str] = []

    def fake_run(playbook, inventories, limit=None, **kwargs):
        calls.append(limit)
        tasks = [{"host": h, "result": {"ansible_facts": f}} for h, f in facts.items() if h in limit.split(",")]
        return PlaybookResult(rc=0, tasks=tasks)

    monkeypatch.setattr("stackyard.ansible.runner.run_playbook", fake_run)
    return calls


def _ipv4(addr: str) -> dict:
    return {"ipv4": {"address": addr, "netmask": "255.255.255.0", "prefix": "24"}}


def test_a_tunnel_nic_of_its_own_moves_into_br_phy_and_is_local_ip(tmp_path, monkeypatch):
    """Open vSwitch hosts tunnel from tunnel_interface's address, held by the br-phy bridge."""
    cloud = {"enable_glance": True, "enable_placement": True, "enable_nova": True, "enable_neutron": True,
             "tunnel_interface": "eth1"}
    dep = multinode(tmp_path, extra=cloud)
    inv = tmp_path / "multinode"
    inv.write_text(inventory_text(NODES, compute=["node3"]))
    dep = plan_mod.load(dep.configdir, [inv])
    facts = {h: {"ansible_eth0": _ipv4(a), "ansible_eth1": _ipv4(a.replace(".0.", ".1."))} for h, a in NODES.items()}
    # node2 has been deployed before: eth1's address already sits on br-phy
    facts["node2"] = {"ansible_eth0": _ipv4(NODES["node2"]), "ansible_eth1": {"ipv4": None},
                      "ansible_br_phy": _ipv4("10.250.1.12")}
    calls = _gathered(monkeypatch, facts)
    multihost.resolve_addresses(dep, [inv])
    plan_mod.make_plans(dep)
    assert calls == ["node1,node2,node3"]
    for host, tunnel in (("node1", "10.250.1.11"), ("node2", "10.250.1.12"), ("node3", "10.250.1.13")):
        plan = dep.plans[host]
        assert f"local_ip = {tunnel}\n" in file_text(plan, "neutron-openvswitch-agent/openvswitch_agent.ini")
        command = json.loads(file_text(plan, "openvswitch-vswitchd/config.json"))["command"]
        assert command == f"ovs-vswitchd-start br-phy eth1 {tunnel}/24"
        # the management address stays where it is
        assert f"of_listen_address = {NODES[host]}" in file_text(plan, "neutron-openvswitch-agent/openvswitch_agent.ini")
    assert not dep.warnings
    # cached: the next run gathers nothing
    dep = plan_mod.load(dep.configdir, [inv])
    calls.clear()
    multihost.resolve_addresses(dep, [inv])
    plan_mod.make_plans(dep)
    assert calls == []
    assert "local_ip = 10.250.1.12\n" in file_text(dep.plans["node2"], "neutron-openvswitch-agent/openvswitch_agent.ini")


def test_tunnels_over_the_management_nic_warn_and_make_no_bridge(tmp_path):
    cloud = {"enable_glance": True, "enable_placement": True, "enable_nova": True, "enable_neutron": True}
    dep = multinode(tmp_path, extra=cloud)
    dep = plan_mod.load(dep.configdir, [tmp_path / "multinode"])
    multihost.resolve_addresses(dep, [tmp_path / "multinode"])  # addresses are in the inventory
    plan_mod.make_plans(dep)
    plan = dep.plans["node2"]
    assert json.loads(file_text(plan, "openvswitch-vswitchd/config.json"))["command"] == "ovs-vswitchd-start"
    assert "local_ip = 10.250.0.12\n" in file_text(plan, "neutron-openvswitch-agent/openvswitch_agent.ini")
    assert any("tunnel_interface is api_interface" in w for w in dep.warnings)


def test_a_host_without_the_tunnel_address_is_named(tmp_path, monkeypatch):
    from stackyard.errors import DeployError

    cloud = {"enable_neutron": True, "tunnel_interface": "eth1"}
    dep = multinode(tmp_path, extra=cloud)
    dep = plan_mod.load(dep.configdir, [tmp_path / "multinode"])
    facts = {h: {"ansible_eth1": _ipv4(a.replace(".0.", ".1."))} for h, a in NODES.items()}
    facts["node3"] = {"ansible_eth1": {}}
    _gathered(monkeypatch, facts)
    with pytest.raises(DeployError, match=r"host node3: interface eth1 \(tunnel_interface\) has no IPv4"):
        multihost.resolve_addresses(dep, [tmp_path / "multinode"])


def test_upgrade_waves_recreate_control_services_host_by_host(tmp_path):
    """Upgrade plans: keystone on node1 then node2, computes one by one, db syncs once on node1 first."""
    from stackyard.deploy.upgrade import upgrade_plans

    configdir = tmp_path / "etc-kolla"
    configdir.mkdir()
    genpwd(configdir / "passwords.yml")
    (configdir / "globals.yml").write_text(yaml.safe_dump({
        "kolla_internal_vip_address": VIP, "network_interface": "eth0", "enable_loadbalancer": True,
        "docker_registry": "10.250.0.1:5000", "nova_compute_virt_type": "qemu", "enable_glance": True,
        "enable_placement": True, "enable_nova": True, "enable_neutron": True}))
    dep = plan_mod.load(configdir, [cloud_inventory(tmp_path)])
    plan_mod.make_plans(dep)
    plans = upgrade_plans(dep.plans, "", [])
    assert all(ph.serial for p in plans.values() for ph in p.phases)
    # upgrade jobs only where their container runs; one step order on every host
    assert "job:upgrade_nova_db" in steps(plans["node1"], "nova")
    assert "job:upgrade_nova_db" not in steps(plans["node3"], "nova")
    for plan in plans.values():
        for ph in plan.phases:
            assert [s.seq for s in ph.steps] == sorted({s.seq for s in ph.steps})
    assert all(s.seq >= 0 for s in dep.plans["node1"].phases[0].steps)  # the deploy plans are untouched
    waves = multihost.compute_waves(plans)

    def holding(phase: str, key: str) -> list[multihost.Wave]:
        return [w for w in waves if w.kind == "target" and any(key in sel.get(phase, []) for sel in w.select.values())]

    (keystone,) = holding("keystone", "container:keystone")
    assert keystone.serial and keystone.hosts == ["node1", "node2"]
    (expand,) = holding("keystone", "job:upgrade_keystone_expand")
    assert expand.hosts == ["node1"] and not expand.serial
    assert waves.index(expand) < waves.index(keystone)
    (contract,) = holding("keystone", "job:upgrade_keystone_contract")
    assert waves.index(contract) > waves.index(keystone) and contract.hosts == ["node1"]
    (db,) = holding("nova", "job:upgrade_nova_db")
    (conductor,) = holding("nova", "container:nova_conductor")
    assert db.hosts == ["node1"] and waves.index(db) < waves.index(conductor) and conductor.serial
    (compute,) = holding("nova", "container:nova_compute")
    # computes last: the controllers' nova containers first, one host at a time, then node3's
    # (nova-compute waits for the conductors to consume: a wave of its own, node3 alone here)
    assert compute.hosts == ["node3"] and waves.index(compute) > waves.index(conductor)
    plays = yaml.safe_load(multihost.render_playbook(waves, tmp_path / "plans", "/etc/kolla"))
    by_name = {p["name"].split(" ", 1)[1]: p for p in plays}
    assert by_name[keystone.name]["serial"] == 1 and "serial" not in by_name[expand.name]
    # every step of every host still runs exactly once
    for host, plan in plans.items():
        want = sorted((p.name, s.key) for p in plan.phases for s in p.steps
                      if s.where == "host" or (s.where == "once" and host == "node1"))
        got = sorted((ph, k) for w in waves if w.kind == "target" for ph, keys in w.select.get(host, {}).items()
                     for k in keys)
        assert got == want


def test_a_serial_phase_on_one_host_needs_no_play_of_its_own(tmp_path):
    dep = multinode(tmp_path, {"node1": NODES["node1"]})
    plans = {h: plan_mod.HostPlan(**{**p.__dict__, "phases": [dataclasses.replace(ph, serial=True)
                                                               for ph in p.phases]})
             for h, p in dep.plans.items()}
    assert not any(w.serial for w in multihost.compute_waves(plans))
    assert len(multihost.compute_waves(plans)) == len(multihost.compute_waves(dep.plans))


def test_deferred_readiness_waits_run_after_every_phase(tmp_path):
    """Neutron's agents and the hypervisor are waited for last, across hosts, so their wait
    overlaps with the services deployed after them; everything else keeps the service order."""
    configdir = tmp_path / "etc-kolla"
    configdir.mkdir()
    genpwd(configdir / "passwords.yml")
    (configdir / "globals.yml").write_text(yaml.safe_dump({
        "kolla_internal_vip_address": VIP, "network_interface": "eth0",
        "enable_glance": True, "enable_placement": True, "enable_nova": True, "enable_neutron": True,
        "enable_horizon": True}))
    dep = plan_mod.load(configdir, [cloud_inventory(tmp_path)])
    plan_mod.make_plans(dep)
    waves = multihost.compute_waves(dep.plans)
    pos = {k: i for i, w in enumerate(waves) for sel in w.select.values() for keys in sel.values() for k in keys}
    last_regular = max(i for k, i in pos.items() if k not in ("agents_wait:neutron", "hypervisor_wait:node3"))
    assert pos["container:horizon"] < pos["agents_wait:neutron"] < pos["hypervisor_wait:node3"]
    assert last_regular < pos["agents_wait:neutron"]
    # each deferred wait is an API wave of its own, run once from the deploy host
    assert [w.kind for w in waves[-2:]] == ["api", "api"]
    # the agents start after the server's RPC is ready; nova-compute after the conductor's
    assert pos["wait:neutron_server"] < pos["container:neutron_l3_agent"]
    assert pos["wait:nova_conductor"] < pos["container:nova_compute"]
