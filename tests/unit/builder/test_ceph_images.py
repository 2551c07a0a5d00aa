"""The ceph-aio images: Debian's Ceph packages, the same recipe for every install type, not in core."""

from __future__ import annotations

from stackyard.deploy import services
from stackyard.imagebuild.catalog import render_all
from stackyard.imagebuild.plan import check_install_type

CEPH = ("ceph-base", "ceph-mon", "ceph-mgr", "ceph-osd")


def test_ceph_images_are_built_from_ceph_base_and_base(config):
    images = render_all(config())
    assert images["ceph-base"].parents == ["base"]
    for name in ("ceph-mon", "ceph-mgr", "ceph-osd"):
        assert images[name].parents == ["ceph-base"], name
        assert "hooks/prestart" in images[name].files, name
        assert images[name].dockerfile.rstrip().endswith("USER ceph"), name
    assert "bin/stackyard-ceph-admin" in images["ceph-base"].files


def test_a_source_build_renders_them_unchanged_and_accepts_them(config):
    """Debian packages in both install types (like MariaDB): no source recipe is needed or refused."""
    binary, source = render_all(config()), render_all(config(install_type="source"))
    for name in CEPH:
        assert source[name].dockerfile.replace("2026.1", "X") == binary[name].dockerfile.replace("2025.1", "X")
        assert not source[name].binary_only
        assert not source[name].pip_requirements
    check_install_type(config(install_type="source"), source, set(CEPH))


def test_the_core_profile_does_not_need_them():
    profiles = services.build_profiles()
    assert not set(CEPH) & set(profiles["core"])
    assert not set(CEPH) & set(profiles["infra"])


def test_the_ceph_user_keeps_debians_number_and_the_disk_tools_are_placeholders(config):
    base = render_all(config())["ceph-base"].dockerfile
    assert "--uid 64045 --gid 64045" in base and "--groups kolla ceph" in base
    assert "--no-install-recommends ceph-common ceph-base" in base
    assert "ceph-volume (= %s)" in base
    for tool in ("lvm2", "smartmontools", "nvme-cli", "xfsprogs"):
        assert tool in base.split("Provides: ")[1].split("\\n")[0], tool
    # the packages are customizable like every other image's
    custom = render_all(config(template_vars={"ceph_base_dummies_remove": ["lvm2"]}))["ceph-base"].dockerfile
    assert "lvm2" not in custom.split("Provides: ")[1].split("\\n")[0]


def test_the_mgr_loads_bcrypt_only_where_it_hashes_a_password(config):
    mgr = render_all(config())["ceph-mgr"].dockerfile
    assert "sed -i -e '/^import bcrypt$/d'" in mgr
    assert "ast.parse" in mgr
