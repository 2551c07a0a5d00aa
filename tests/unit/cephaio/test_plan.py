"""The ceph-aio plan: options from globals, caps, files, containers, converge commands, readiness."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import pytest

from stackyard.cephaio import plan as P
from stackyard.deploy.merge import parse_ini
from stackyard.errors import ConfigError

SECRETS = P.Secrets(fsid="11111111-2222-4333-8444-555555555555", osd_uuid="66666666-7777-4888-9999-000000000000",
                    keys={e: P.cephx_key(bytes([n]) * 16) for n, e in enumerate(
                        [*P.DAEMON_CAPS, "osd.0", "client.glance", "client.cinder", "client.cinder-backup",
                         "client.nova"], start=1)})


def settings(**kw) -> P.Settings:
    kw.setdefault("configdir", "/etc/kolla")
    return P.Settings(**kw)


# ----------------------------------------------------------------- options
def test_kolla_defaults_without_globals():
    opts = P.options_from_globals({})
    assert opts == P.CephOptions()
    assert opts.pools == ["images", "volumes", "vms", "backups"]
    # ceph_nova_user defaults to the Cinder user, as in kolla-ansible
    assert opts.nova_user == "cinder" and opts.users == ["glance", "cinder", "cinder-backup"]


def test_globals_name_pools_users_and_cluster():
    opts = P.options_from_globals({
        "ceph_cluster": "ceph2", "ceph_glance_user": "img", "ceph_cinder_user": "blk",
        "ceph_cinder_backup_user": "bak", "ceph_glance_pool_name": "g", "ceph_cinder_pool_name": "c",
        "ceph_nova_pool_name": "n", "ceph_cinder_backup_pool_name": "b"})
    assert (opts.cluster, opts.glance_user, opts.cinder_user, opts.nova_user) == ("ceph2", "img", "blk", "blk")
    assert opts.pools == ["g", "c", "n", "b"]
    assert P.options_from_globals({"ceph_nova_user": "nova"}).nova_user == "nova"


@pytest.mark.parametrize("value", ["with space", "", None, 3, "../x"])
def test_a_bad_name_names_the_file_and_key(value):
    if value in ("", None):  # unset or empty means kolla's default
        assert P.options_from_globals({"ceph_glance_user": value}).glance_user == "glance"
        return
    with pytest.raises(ConfigError, match=r"/etc/kolla/globals.yml: 'ceph_glance_user' is"):
        P.options_from_globals({"ceph_glance_user": value}, "/etc/kolla/globals.yml")


def test_backend_lists_must_name_the_one_cluster():
    same = {"cinder_ceph_backends": [{"name": "rbd-1", "cluster": "ceph", "user": "cinder", "pool": "volumes",
                                      "enabled": True}],
            "glance_ceph_backends": [{"name": "ceph-rbd", "cluster": "ceph", "user": "glance", "pool": "images"}],
            "cinder_backup_ceph_backend": {"cluster": "ceph", "user": "cinder-backup", "pool": "backups"}}
    P.options_from_globals(same)
    other = {"cinder_ceph_backends": same["cinder_ceph_backends"] + [
        {"name": "rbd-2", "cluster": "ceph2", "user": "cinder", "pool": "volumes", "enabled": True}]}
    with pytest.raises(ConfigError, match=r"'cinder_ceph_backends\[1\].cluster' is 'ceph2'.*one test cluster"):
        P.options_from_globals(other)
    disabled = {"cinder_ceph_backends": [{"cluster": "ceph2", "enabled": False}]}
    P.options_from_globals(disabled)
    with pytest.raises(ConfigError, match="must be a list of mappings"):
        P.options_from_globals({"glance_ceph_backends": "ceph"})


# ----------------------------------------------------------------- caps
def test_caps_follow_cephs_openstack_guide():
    caps = P.client_caps(P.CephOptions())
    assert caps == {
        "client.glance": P.Caps(mon="profile rbd", osd="profile rbd pool=images", mgr="profile rbd pool=images"),
        "client.cinder": P.Caps(
            mon="profile rbd",
            osd="profile rbd pool=volumes, profile rbd pool=vms, profile rbd-read-only pool=images",
            mgr="profile rbd pool=volumes, profile rbd pool=vms"),
        "client.cinder-backup": P.Caps(mon="profile rbd", osd="profile rbd pool=backups",
                                       mgr="profile rbd pool=backups"),
    }


def test_a_separate_nova_user_gets_vms_and_reads_images():
    caps = P.client_caps(P.CephOptions(nova_user="nova"))
    assert caps["client.nova"].osd == "profile rbd pool=vms, profile rbd-read-only pool=images"
    assert caps["client.nova"].mgr == "profile rbd pool=vms"


def test_one_user_for_two_services_gets_the_union_and_no_read_only_duplicate():
    caps = P.client_caps(P.CephOptions(glance_user="cinder"))
    assert list(caps) == ["client.cinder", "client.cinder-backup"]
    assert caps["client.cinder"].osd == "profile rbd pool=images, profile rbd pool=volumes, profile rbd pool=vms"


# ----------------------------------------------------------------- keys
def test_cephx_key_has_cephs_encoding():
    # a key made by ceph-mon itself (client.bootstrap-mds of a Reef cluster)
    raw = base64.b64decode("AQAfSRZrKatbIhAAMTy9OrfZJoMEtjTGjDWQiA==")
    ktype, _sec, _nsec, length = struct.unpack("<hIIH", raw[:12])
    assert (ktype, length, len(raw)) == (1, 16, 28)
    ours = base64.b64decode(P.cephx_key(b"k" * 16, created=1796622623))
    assert struct.unpack("<hIIH", ours[:12]) == (1, 1796622623, 0, 16) and ours[12:] == b"k" * 16
    with pytest.raises(ValueError):
        P.cephx_key(b"short")


def test_missing_entities_are_the_daemons_and_the_wanted_users():
    empty = P.Secrets(fsid="f", osd_uuid="u")
    assert P.missing_entities(empty, P.CephOptions()) == [
        "mon.", "client.admin", "client.bootstrap-osd", "mgr.x", "osd.0",
        "client.glance", "client.cinder", "client.cinder-backup"]
    assert P.missing_entities(SECRETS, P.CephOptions()) == []
    with pytest.raises(ConfigError, match="no key for client.other"):
        SECRETS.key("client.other")


# ----------------------------------------------------------------- client files
def test_the_files_are_kolla_ansibles_external_ceph_layout():
    layout = P.client_file_layout(P.CephOptions())
    assert sorted(layout) == [
        "cinder/ceph.conf",
        "cinder/cinder-backup/ceph.client.cinder-backup.keyring",
        "cinder/cinder-backup/ceph.client.cinder.keyring",
        "cinder/cinder-volume/ceph.client.cinder.keyring",
        "glance/ceph.client.glance.keyring",
        "glance/ceph.conf",
        "nova/ceph.client.cinder.keyring",  # Nova's user is Cinder's: one file
        "nova/ceph.conf",
    ]
    custom = P.client_file_layout(P.CephOptions(cluster="lab", nova_user="nova"))
    assert "nova/lab.client.nova.keyring" in custom and "nova/lab.client.cinder.keyring" in custom
    assert "glance/lab.conf" in custom and len(custom) == 9


def test_client_conf_and_keyrings_parse_as_kolla_reads_them():
    files = P.client_files(settings(), P.CephOptions(), SECRETS)
    conf = parse_ini(files["nova/ceph.conf"], "nova/ceph.conf")
    assert conf == {"global": {"fsid": [SECRETS.fsid], "mon_host": ["[v2:127.0.0.1:3300/0,v1:127.0.0.1:6789/0]"],
                               "auth_cluster_required": ["cephx"], "auth_service_required": ["cephx"],
                               "auth_client_required": ["cephx"]}}
    assert files["glance/ceph.conf"] == files["cinder/ceph.conf"] == files["nova/ceph.conf"]
    for rel, text in files.items():
        assert not any(line[:1].isspace() for line in text.splitlines()), rel
        if rel.endswith(".keyring"):
            user = rel.rsplit("/", 1)[-1].removeprefix("ceph.client.").removesuffix(".keyring")
            assert parse_ini(text, rel) == {f"client.{user}": {"key": [SECRETS.keys[f"client.{user}"]]}}
    assert SECRETS.keys["client.admin"] not in "".join(files.values())


def test_other_ports_reach_mon_host():
    conf = P.client_conf(settings(mon_port=3310, mon_v1_port=6799), "f")
    assert "mon_host = [v2:127.0.0.1:3310/0,v1:127.0.0.1:6799/0]" in conf


# ----------------------------------------------------------------- daemons
def test_daemon_conf_is_a_one_copy_cluster_with_bluestore_in_a_file():
    conf = parse_ini(P.daemon_conf(settings(osd_block_size=8 * P.GiB), SECRETS.fsid), "ceph.conf")
    g = {k: v[0] for k, v in conf["global"].items()}
    assert g["fsid"] == SECRETS.fsid and g["mon_initial_members"] == "a"
    assert g["public_addr"] == g["cluster_addr"] == "127.0.0.1"
    assert (g["osd_pool_default_size"], g["mon_allow_pool_size_one"], g["osd_crush_chooseleaf_type"]) == ("1", "true", "0")
    assert g["mon_warn_on_pool_no_redundancy"] == "false"
    assert (g["ms_bind_port_min"], g["ms_bind_port_max"]) == ("6800", "7300")
    osd = {k: v[0] for k, v in conf["osd"].items()}
    assert osd["bluestore_block_create"] == "true" and osd["bluestore_block_size"] == str(8 * P.GiB)
    assert osd["keyring"] == "/etc/ceph/$cluster.$name.keyring"


def test_three_daemons_without_privileges_on_the_host_network():
    cfg = settings(configdir="/srv/k", name_prefix="t-", namespace="ns", registry="127.0.0.1:5000", tag="2025.1")
    plans = P.daemons(cfg, SECRETS)
    assert [d.name for d in plans] == ["t-ceph_aio_mon", "t-ceph_aio_mgr", "t-ceph_aio_osd"]
    for d in plans:
        r = d.request
        assert r.image == f"127.0.0.1:5000/ns/ceph-{d.role}:2025.1"
        assert r.network_mode == "host" and r.cap_drop == ["ALL"]
        assert r.cap_add == ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"]
        assert not r.devices and not r.security_opt and r.user is None
        assert r.labels[P.LABEL] == "/srv/k" and r.restart_policy == "unless-stopped"
        assert r.binds[0] == f"/srv/k/ceph-aio/t-ceph_aio_{d.role}:/var/lib/kolla/config_files:ro"
        config = json.loads(d.files["config.json"])
        assert sorted(e["dest"] for e in config["config_files"]) == sorted(
            f"/etc/ceph/{f}" for f in d.files if f != "config.json")
        assert all(e["owner"] == "ceph" and e["perm"] == "0600" for e in config["config_files"])
        assert r.healthcheck and r.healthcheck["test"][0] == "CMD"
    mon, mgr, osd = plans
    assert mon.volumes == {"t-ceph_aio_mon": "/var/lib/ceph/mon"} and not mgr.volumes
    assert osd.volumes == {"t-ceph_aio_osd": "/var/lib/ceph/osd"}
    assert osd.request.environment["CEPH_OSD_UUID"] == SECRETS.osd_uuid
    assert json.loads(mon.files["config.json"])["command"] == "ceph-mon -f -i a"


def test_the_mkfs_keyring_holds_every_daemon_key_with_its_caps():
    mon = P.daemons(settings(), SECRETS)[0]
    parsed = parse_ini(mon.files["ceph.mon-mkfs.keyring"], "mkfs")
    assert set(parsed) == {"mon.", "client.admin", "client.bootstrap-osd", "mgr.x"}
    assert parsed["client.bootstrap-osd"]["caps mon"] == ['allow profile bootstrap-osd']
    assert parsed["mgr.x"]["key"] == [SECRETS.keys["mgr.x"]]
    # the OSD's key is registered by its first start, not at mkfs; no client user is a daemon
    assert "osd.0" not in parsed and "client.glance" not in parsed


def test_the_spec_hash_follows_the_config_files():
    one = {d.role: d.request.labels[P.SPEC_LABEL] for d in P.daemons(settings(), SECRETS)}
    again = {d.role: d.request.labels[P.SPEC_LABEL] for d in P.daemons(settings(), SECRETS)}
    bigger = {d.role: d.request.labels[P.SPEC_LABEL] for d in P.daemons(settings(osd_block_size=9 * P.GiB), SECRETS)}
    assert one == again
    assert all(one[r] != bigger[r] for r in P.ROLES)  # ceph.conf is every daemon's


@pytest.mark.parametrize(("kw", "message"), [
    ({"mon_port": 6800}, "inside the OSD and manager port range"),
    ({"mon_v1_port": 70000}, "is not a TCP port"),
    ({"mon_port": 6789}, "must differ"),
    ({"osd_block_size": P.GiB}, "below 2 GiB"),
    ({"name_prefix": "-x"}, "not a valid container name"),
])
def test_settings_ceph_cannot_run_with_are_refused(kw, message):
    with pytest.raises(ConfigError, match=message):
        settings(**kw).check()


def test_fixed_settings_must_stay_as_the_cluster_was_made():
    made = settings().to_dict()
    assert P.changed_fixed_settings(made, settings(namespace="other")) == []
    assert P.changed_fixed_settings(made, settings(mon_port=3310)) == ["mon_port: made with 3300, asked for 3310"]


def test_settings_paths():
    cfg = settings(configdir="/srv/k")
    assert cfg.state_dir == Path("/srv/k/ceph-aio") and cfg.overrides_dir == Path("/srv/k/config")
    assert cfg.image("ceph-mon") == "stackyard/ceph-mon:2025.1"


# ----------------------------------------------------------------- pools and users
def pool(name: str, apps: dict | None = None) -> dict:
    return {"pool_name": name, "application_metadata": apps or {}}


def test_new_pools_are_all_created_before_they_are_initialised():
    cmds = P.pool_commands(["images", "volumes"], [pool(".mgr", {"mgr": {}})])
    assert cmds == [P.mon("osd pool create", pool="images", pg_num=8, pgp_num=8),
                    P.mon("osd pool create", pool="volumes", pg_num=8, pgp_num=8),
                    {"rbd_pool_init": "images"}, {"rbd_pool_init": "volumes"}]


def test_initialised_pools_are_left_alone_and_uninitialised_ones_initialised():
    assert P.pool_commands(["images"], [pool("images", {"rbd": {}})]) == []
    assert P.pool_commands(["images"], [pool("images")]) == [{"rbd_pool_init": "images"}]


def wanted() -> dict:
    return P.wanted_users(P.CephOptions(), SECRETS)


def auth(entity: str, key: str, caps: P.Caps) -> dict:
    return {"entity": entity, "key": key, "caps": caps.as_dict()}


def test_missing_users_are_imported_with_key_and_caps_in_one_command():
    cmds = P.user_commands(wanted(), [], [])
    assert len(cmds) == 1 and cmds[0]["mon"] == {"prefix": "auth import"}
    parsed = parse_ini(cmds[0]["inbuf"], "import")
    assert set(parsed) == {"client.glance", "client.cinder", "client.cinder-backup"}
    assert parsed["client.glance"]["caps osd"] == ['profile rbd pool=images']
    assert P.describe(cmds[0]) == "set key and caps of client.glance, client.cinder, client.cinder-backup"
    assert SECRETS.keys["client.glance"] not in P.describe(cmds[0])


def test_users_as_wanted_need_nothing_and_a_changed_cap_is_reimported_alone():
    observed = [auth(e, k, c) for e, (k, c) in wanted().items()]
    assert P.user_commands(wanted(), observed, list(wanted())) == []
    observed[0]["caps"]["osd"] = "allow *"
    cmds = P.user_commands(wanted(), observed, list(wanted()))
    assert list(parse_ini(cmds[0]["inbuf"], "import")) == ["client.glance"]


def test_only_users_ceph_aio_made_are_removed_when_globals_stop_naming_them():
    observed = [auth(e, k, c) for e, (k, c) in wanted().items()]
    observed += [auth("client.old", "k", P.Caps("", "", "")), auth("client.someone", "k", P.Caps("", "", ""))]
    cmds = P.user_commands(wanted(), observed, [*wanted(), "client.old"])
    assert cmds == [P.mon("auth rm", entity="client.old")]


# ----------------------------------------------------------------- readiness
STATUS = {
    "health": {"status": "HEALTH_OK", "checks": {}},
    "quorum_names": ["a"],
    "osdmap": {"num_osds": 1, "num_up_osds": 1, "num_in_osds": 1},
    "pgmap": {"pgs_by_state": [{"state_name": "active+clean", "count": 33}], "num_pgs": 33, "num_pools": 5},
    "mgrmap": {"available": True},
}


def with_(**parts) -> dict:
    return json.loads(json.dumps({**STATUS, **parts}))


def test_ready_when_quorum_manager_osd_and_every_pg_are():
    r = P.readiness(STATUS, 4)
    assert r.ready and r.summary() == "ready" and r.health == "HEALTH_OK"


@pytest.mark.parametrize(("status", "blame", "text"), [
    (with_(quorum_names=[]), "mon", "mon.a not in quorum"),
    (with_(mgrmap={"available": False}), "mgr", "mgr.x not available"),
    (with_(osdmap={"num_osds": 1, "num_up_osds": 0, "num_in_osds": 1}), "osd", "OSDs up 0/1, in 1/1"),
    (with_(osdmap={"num_osds": 0}), "osd", "OSDs up 0/1"),
    (with_(pgmap={"pgs_by_state": [{"state_name": "active+clean", "count": 30},
                                   {"state_name": "creating+peering", "count": 3}], "num_pgs": 33, "num_pools": 5}),
     "osd", "PGs active+clean 30/33 in 5 pools (30 active+clean, 3 creating+peering)"),
    (with_(pgmap={"pgs_by_state": [{"state_name": "active+clean", "count": 1}], "num_pgs": 1, "num_pools": 1}),
     "osd", "PGs active+clean 1/1 in 1 pools"),
])
def test_not_ready_says_what_and_whom_it_waits_for(status, blame, text):
    r = P.readiness(status, 4)
    assert not r.ready
    assert r.waiting[0][0] == blame and text in r.summary()


def test_health_checks_are_reported_by_name():
    status = with_(health={"status": "HEALTH_WARN", "checks": {
        "POOL_APP_NOT_ENABLED": {"summary": {"message": "1 pool(s) do not have an application enabled"}}}})
    r = P.readiness(status, 4)
    assert r.ready and r.health == "HEALTH_WARN"
    assert r.checks == {"POOL_APP_NOT_ENABLED": "1 pool(s) do not have an application enabled"}
