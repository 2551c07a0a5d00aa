"""Glance and Nova on an external Ceph cluster (no engine): the RBD store, the RBD image
backend, Nova's [cinder] section and the libvirt secrets, in kolla-ansible's layout."""

from __future__ import annotations

import json

import pytest

from stackyard.deploy.merge import parse_ini
from stackyard.deploy.services import nova
from stackyard.errors import ConfigError


def conf(files, path):
    return parse_ini(files[path].content)


def dests(files, service):
    return {e["dest"]: e for e in json.loads(files[f"{service}/config.json"].content)["config_files"]}


# ----------------------------------------------------------------------------- Glance
def test_glance_stores_images_in_rbd_and_shows_their_location(tmp_path, ceph):
    _, plan = ceph.plan(ceph.make(tmp_path))
    f = ceph.files(plan)
    c = conf(f, "glance-api/glance-api.conf")
    assert c["DEFAULT"]["enabled_backends"] == ["rbd:rbd"]
    assert c["DEFAULT"]["show_image_direct_url"] == ["true"]
    assert c["glance_store"]["default_backend"] == ["rbd"]
    assert c["rbd"] == {"rbd_store_pool": ["images"], "rbd_store_user": ["glance"],
                        "rbd_store_ceph_conf": ["/etc/ceph/ceph.conf"]}
    assert "file" not in c
    # the staging store stays on the glance volume
    assert c["os_glance_staging_store"]["filesystem_store_datadir"] == ["/var/lib/glance/staging/"]
    d = dests(f, "glance-api")
    assert (d["/etc/ceph/ceph.client.glance.keyring"]["owner"], d["/etc/ceph/ceph.conf"]["owner"]) == ("glance",
                                                                                                        "glance")
    assert f["glance-api/ceph/ceph.client.glance.keyring"].secret


def test_glance_keeps_the_file_store_by_default_exactly_as_before(tmp_path, ceph):
    _, plan = ceph.plan(ceph.make(tmp_path, rbd=False))
    f = ceph.files(plan)
    c = conf(f, "glance-api/glance-api.conf")
    assert c["DEFAULT"]["enabled_backends"] == ["file:file"]
    assert c["DEFAULT"]["show_image_direct_url"] == ["false"]
    assert c["glance_store"] == {"default_backend": ["file"]}
    assert c["file"] == {"filesystem_store_datadir": ["/var/lib/glance/images/"]}
    assert not [d for d in dests(f, "glance-api") if d.startswith("/etc/ceph")]
    assert not any(p.startswith("glance-api/ceph/") for p in f)


def test_glance_with_both_stores_defaults_to_rbd(tmp_path, ceph):
    _, plan = ceph.plan(ceph.make(tmp_path, {"glance_backend_file": True}))
    c = conf(ceph.files(plan), "glance-api/glance-api.conf")
    assert c["DEFAULT"]["enabled_backends"] == ["rbd:rbd,file:file"]
    assert c["glance_store"]["default_backend"] == ["rbd"]


def test_glance_without_a_store_or_with_s3_is_refused(tmp_path, ceph):
    with pytest.raises(ConfigError, match="no image store is enabled"):
        ceph.plan(ceph.make(tmp_path / "a", {"glance_backend_ceph": False, "glance_backend_file": False}))
    with pytest.raises(ConfigError, match="'glance_backend_s3' is True, but the S3 image store is not implemented"):
        ceph.plan(ceph.make(tmp_path / "b", {"glance_backend_s3": True}))


def test_glance_names_the_missing_keyring(tmp_path, ceph):
    configdir = ceph.make(tmp_path, files={"glance/ceph.client.glance.keyring": None})
    with pytest.raises(ConfigError, match=r"glance_backend_ceph is true \(Glance connects as client.glance\), but "
                                          rf"{configdir}/config/glance/ceph.client.glance.keyring is missing"):
        ceph.plan(configdir)


# ----------------------------------------------------------------------------- Nova
def test_nova_compute_puts_disks_in_rbd_with_kollas_options(tmp_path, ceph):
    dep, plan = ceph.plan(ceph.make(tmp_path))
    f = ceph.files(plan)
    lib = conf(f, "nova-compute/nova.conf")["libvirt"]
    assert lib["images_type"] == ["rbd"] and lib["images_rbd_pool"] == ["vms"]
    assert lib["images_rbd_ceph_conf"] == ["/etc/ceph/ceph.conf"]
    # ceph_nova_user follows ceph_cinder_user, as in kolla-ansible
    assert lib["rbd_user"] == ["cinder"] and lib["rbd_secret_uuid"] == [dep.passwords["rbd_secret_uuid"]]
    # only nova-compute's file changes: the other services keep theirs (and are not restarted)
    assert "images_type" not in conf(f, "nova-api/nova.conf")["libvirt"]
    d = dests(f, "nova-compute")
    assert {k for k in d if k.startswith("/etc/ceph/")} == {"/etc/ceph/ceph.conf", "/etc/ceph/ceph.client.cinder.keyring"}
    assert d["/etc/ceph/ceph.client.cinder.keyring"]["owner"] == "nova"


def test_libvirt_gets_secrets_for_novas_and_cinders_keys_as_kolla_writes_them(tmp_path, ceph):
    dep, plan = ceph.plan(ceph.make(tmp_path))
    f = ceph.files(plan)
    nova_uuid, cinder_uuid = dep.passwords["rbd_secret_uuid"], dep.passwords["cinder_rbd_secret_uuid"]
    assert nova_uuid != cinder_uuid
    for uuid, usage in ((nova_uuid, "client.nova secret"), (cinder_uuid, "client.cinder secret")):
        xml = f[f"nova-libvirt/secrets/{uuid}.xml"].content
        assert f"<uuid>{uuid}</uuid>" in xml and f"<name>{usage}</name>" in xml and "type='ceph'" in xml
        assert "ephemeral='no'" in xml and "private='no'" in xml
        # ceph_nova_user is cinder: both secrets hold cinder's key
        value = f[f"nova-libvirt/secrets/{uuid}.base64"]
        assert value.content == ceph.KEYS["cinder"] and value.secret and value.mode == 0o600
    d = dests(f, "nova-libvirt")
    for uuid in (nova_uuid, cinder_uuid):
        for suffix in ("xml", "base64"):
            assert (d[f"/etc/libvirt/secrets/{uuid}.{suffix}"]["owner"],
                    d[f"/etc/libvirt/secrets/{uuid}.{suffix}"]["perm"]) == ("root", "0600")
    # QEMU runs as qemu and reads ceph.conf (its keys come from the secrets)
    assert (d["/etc/ceph/ceph.conf"]["owner"], d["/etc/ceph/ceph.conf"]["perm"]) == ("root:qemu", "0640")
    assert ceph.KEYS["cinder"] not in json.dumps(plan.to_dict())


def test_the_same_config_twice_is_the_same_plan(tmp_path, ceph):
    """Secrets are plan data: defining them again is no change (what makes them idempotent)."""
    configdir = ceph.make(tmp_path)
    _, first = ceph.plan(configdir)
    _, second = ceph.plan(configdir)
    assert [(f.path, f.hash) for f in first.files] == [(f.path, f.hash) for f in second.files]


def test_a_separate_nova_user_has_its_own_keyring_and_secret(tmp_path, ceph):
    configdir = ceph.make(tmp_path, {"ceph_nova_user": "nova", "ceph_nova_keyring": "client.nova.keyring"},
                          files={"nova/ceph.client.nova.keyring": ceph.keyring("nova")})
    dep, plan = ceph.plan(configdir)
    f = ceph.files(plan)
    assert conf(f, "nova-compute/nova.conf")["libvirt"]["rbd_user"] == ["nova"]
    assert f[f"nova-libvirt/secrets/{dep.passwords['rbd_secret_uuid']}.base64"].content == ceph.KEYS["nova"]
    assert f[f"nova-libvirt/secrets/{dep.passwords['cinder_rbd_secret_uuid']}.base64"].content == ceph.KEYS["cinder"]
    assert {k for k in dests(f, "nova-compute") if k.startswith("/etc/ceph/")} == {
        "/etc/ceph/ceph.conf", "/etc/ceph/ceph.client.nova.keyring", "/etc/ceph/ceph.client.cinder.keyring"}
    # libvirt gets nova's keyring (kolla-ansible copies it), not cinder's
    assert "/etc/ceph/ceph.client.nova.keyring" in dests(f, "nova-libvirt")


def test_ceph_nova_user_without_its_keyring_is_caught_before_libvirt_gets_a_wrong_key(tmp_path, ceph):
    """ceph_nova_keyring follows ceph_cinder_keyring: a nova user with cinder's keyring is refused."""
    configdir = ceph.make(tmp_path, {"ceph_nova_user": "nova"})
    with pytest.raises(ConfigError, match=r"ceph.client.cinder.keyring: no \[client.nova\] section"):
        ceph.plan(configdir)


def test_a_hosts_own_keyring_wins(tmp_path, ceph):
    configdir = ceph.make(tmp_path, files={"nova/localhost/ceph.client.cinder.keyring":
                                           ceph.keyring("cinder", "AQBthishostthishostthishost==")})
    dep, plan = ceph.plan(configdir)
    f = ceph.files(plan)
    assert "AQBthishost" in f["nova-compute/ceph/ceph.client.cinder.keyring"].content
    assert f[f"nova-libvirt/secrets/{dep.passwords['cinder_rbd_secret_uuid']}.base64"].content.startswith("AQBthis")
    # the shared copy is then not read by this host: reported, as every unread override
    assert any("nova/ceph.client.cinder.keyring" in w for w in dep.warnings)


def test_cinder_on_rbd_with_local_disks_needs_only_cinders_secret(tmp_path, ceph):
    dep, plan = ceph.plan(ceph.make(tmp_path, {"nova_backend_ceph": False}))
    f = ceph.files(plan)
    assert "images_type" not in conf(f, "nova-compute/nova.conf")["libvirt"]
    secrets = sorted(p for p in f if p.startswith("nova-libvirt/secrets/"))
    uuid = dep.passwords["cinder_rbd_secret_uuid"]
    assert secrets == [f"nova-libvirt/secrets/{uuid}.base64", f"nova-libvirt/secrets/{uuid}.xml"]
    assert "/etc/ceph/ceph.client.cinder.keyring" in dests(f, "nova-compute")


def test_nova_without_ceph_has_no_ceph_files_nor_secrets(tmp_path, ceph):
    _, plan = ceph.plan(ceph.make(tmp_path, rbd=False))
    f = ceph.files(plan)
    assert not [p for p in f if p.startswith(("nova-compute/ceph/", "nova-libvirt/ceph/", "nova-libvirt/secrets/"))]
    assert "images_type" not in conf(f, "nova-compute/nova.conf")["libvirt"]


def test_nova_is_configured_for_cinder(tmp_path, ceph):
    _, plan = ceph.plan(ceph.make(tmp_path))
    f = ceph.files(plan)
    for svc in ("nova-api", "nova-compute", "nova-conductor"):
        c = conf(f, f"{svc}/nova.conf")["cinder"]
        assert c["catalog_info"] == ["block-storage:cinder:internalURL"], svc
        assert c["os_region_name"] == ["RegionOne"] and c["username"] == ["nova"]
        assert c["auth_url"] == ["http://127.0.0.1:5000"] and c["auth_type"] == ["password"]


def test_nova_names_its_missing_files(tmp_path, ceph):
    configdir = ceph.make(tmp_path, files={"nova/ceph.conf": None})
    with pytest.raises(ConfigError, match=rf"nova_backend_ceph is true, but {configdir}/config/nova/localhost/"
                                          rf"ceph.conf or {configdir}/config/nova/ceph.conf is missing"):
        ceph.plan(configdir)
    configdir = ceph.make(tmp_path / "b", {"nova_backend_ceph": False}, files={"nova/ceph.client.cinder.keyring": None})
    with pytest.raises(ConfigError, match=r"cinder_backend_ceph is true \(Nova attaches volumes as client.cinder\)"):
        ceph.plan(configdir)


def test_libvirt_secret_xml_is_kollas():
    s = nova.LibvirtSecret("0000-1", "client.nova secret", "AQB==")
    assert s.xml() == ("<secret ephemeral='no' private='no'>\n  <uuid>0000-1</uuid>\n  <usage type='ceph'>\n"
                       "    <name>client.nova secret</name>\n  </usage>\n</secret>\n")


def test_the_whole_rbd_cloud_reads_every_ceph_file_and_warns_of_nothing(tmp_path, ceph):
    dep, _ = ceph.plan(ceph.make(tmp_path))
    assert dep.warnings == []
