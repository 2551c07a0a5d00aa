from dataclasses import dataclass, field
from pathlib import Path

import pytest

from stackyard.guest.apt import Package, kernel_dependency, parse_show
from stackyard.guest.build import GuestArtifacts
from stackyard.guest.errors import GuestPackageError, GuestUploadError
from stackyard.guest.plan import GuestSpec, plan_build
from stackyard.guest.upload import md5_file, upload_guest

SHOW = """Package: linux-image-cloud-amd64
Source: linux-signed-amd64 (6.1.192+2)
Version: 6.1.192-2
Depends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)
Filename: pool/main/l/linux-signed-amd64/linux-image-cloud-amd64_6.1.192-2_amd64.deb
SHA256: abc
Description: Linux for x86-64 cloud
 second line

Package: linux-image-cloud-amd64
Version: 6.1.176-1
"""


def resolver(overrides: dict[str, str] | None = None):
    def resolve(name: str) -> Package:
        if name == "linux-image-cloud-amd64":
            return Package(name, "6.1.192-2", "m", "pool/x.deb", "linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)")
        if name == "nope":
            raise GuestPackageError("apt package nope not found")
        return Package(name, (overrides or {}).get(name, "1.0"), "s-" + name, f"pool/{name}_1.0_amd64.deb")
    return resolve


def test_parse_show_takes_first_stanza_and_kernel_meta_dependency() -> None:
    f = parse_show(SHOW)
    assert f["Version"] == "6.1.192-2" and f["Description"].endswith("second line")
    pkg = Package(f["Package"], f["Version"], f["SHA256"], f["Filename"], f["Depends"])
    assert kernel_dependency(pkg) == "linux-image-6.1.0-56-cloud-amd64"
    assert pkg.deb_name == "linux-image-cloud-amd64_6.1.192-2_amd64.deb"


def test_plan_resolves_meta_kernel_and_keys_on_package_versions() -> None:
    plan = plan_build(GuestSpec(), resolver())
    assert plan.kernel.name == "linux-image-6.1.0-56-cloud-amd64" and plan.kernel_meta.name == "linux-image-cloud-amd64"
    assert [p.name for p in plan.extra][0] == "dropbear-bin"
    assert plan_build(GuestSpec(), resolver()).key == plan.key
    assert plan_build(GuestSpec(), resolver({"busybox-static": "1.1"})).key != plan.key
    assert plan_build(GuestSpec(ssh=False), resolver()).key != plan.key
    assert plan.out_dir(Path("/w")) == Path(f"/w/guest-{plan.key[:16]}")


def test_plan_errors_name_the_package() -> None:
    with pytest.raises(GuestPackageError, match="nope"):
        plan_build(GuestSpec(busybox_package="nope"), resolver())
    with pytest.raises(GuestPackageError, match="busybox-static is not a linux-image"):
        plan_build(GuestSpec(kernel_package="busybox-static"), resolver())


# ---------------------------------------------------------------- upload idempotence (fake connection)
@dataclass
class FakeImage:
    id: str
    name: str
    checksum: str
    disk_format: str
    container_format: str
    visibility: str = "public"
    status: str = "active"
    properties: dict = field(default_factory=dict)

    def __getattr__(self, key):  # kernel_id, ramdisk_id, os_command_line … like openstacksdk's Image
        if key.startswith("_"):
            raise AttributeError(key)
        return self.properties.get(key)


class FakeImageProxy:
    def __init__(self) -> None:
        self.store: list[FakeImage] = []
        self.created: list[str] = []
        self.updated: list[tuple[str, dict]] = []

    def images(self, name=None):
        return [i for i in self.store if name is None or i.name == name]

    def create_image(self, name, *, filename, disk_format, container_format, visibility, **props):
        props = {k: v for k, v in props.items() if k not in ("allow_duplicates", "validate_checksum", "wait")}
        image = FakeImage(f"id-{len(self.store)}", name, md5_file(Path(filename)), disk_format, container_format,
                          visibility, properties=props)
        self.store.append(image)
        self.created.append(name)
        return image

    def update_image(self, image, **changes):
        for k, v in changes.items():
            if k == "visibility":
                image.visibility = v
            else:
                image.properties[k] = v
        self.updated.append((image.name, changes))
        return image


class FakeConn:
    def __init__(self) -> None:
        self.image = FakeImageProxy()


@pytest.fixture()
def art(tmp_path: Path) -> GuestArtifacts:
    for n, data in (("vmlinuz", b"K"), ("initrd.img", b"R"), ("disk.img", b"\0" * 16)):
        (tmp_path / n).write_bytes(data)
    return GuestArtifacts(tmp_path / "vmlinuz", tmp_path / "initrd.img", tmp_path / "disk.img", "6.1", "console=ttyS0",
                          "key")


def test_upload_creates_aki_ari_ami_then_is_a_noop(art: GuestArtifacts) -> None:
    conn = FakeConn()
    image_id = upload_guest(conn, art, "g")
    assert conn.image.created == ["g-kernel", "g-ramdisk", "g"]
    by_name = {i.name: i for i in conn.image.store}
    assert (by_name["g-kernel"].disk_format, by_name["g-ramdisk"].disk_format, by_name["g"].disk_format) == (
        "aki", "ari", "ami")
    machine = by_name["g"]
    assert image_id == machine.id and machine.visibility == "public"
    assert machine.kernel_id == by_name["g-kernel"].id and machine.ramdisk_id == by_name["g-ramdisk"].id
    assert machine.os_command_line == "console=ttyS0"

    assert upload_guest(conn, art, "g") == image_id
    assert conn.image.created == ["g-kernel", "g-ramdisk", "g"] and conn.image.updated == []


def test_changed_ramdisk_uploads_only_the_ramdisk_and_repoints_the_machine_image(art: GuestArtifacts) -> None:
    conn = FakeConn()
    first = upload_guest(conn, art, "g")
    art.ramdisk.write_bytes(b"R2")
    assert upload_guest(conn, art, "g") == first
    assert conn.image.created == ["g-kernel", "g-ramdisk", "g", "g-ramdisk"]
    new_ramdisk = conn.image.store[-1].id
    assert conn.image.updated == [("g", {"ramdisk_id": new_ramdisk})]


def test_same_name_other_checksum_or_private_image(art: GuestArtifacts) -> None:
    conn = FakeConn()
    conn.image.store.append(FakeImage("old", "g-kernel", "0" * 32, "aki", "aki"))
    conn.image.store.append(FakeImage("priv", "g-ramdisk", md5_file(art.ramdisk), "ari", "ari", visibility="private"))
    upload_guest(conn, art, "g")
    assert conn.image.created == ["g-kernel", "g"]  # other checksum → new upload; same checksum → reused
    assert ("g-ramdisk", {"visibility": "public"}) in conn.image.updated


def test_sdk_errors_become_one_line_upload_errors(art: GuestArtifacts) -> None:
    import openstack.exceptions

    class Broken(FakeConn):
        def __init__(self) -> None:
            super().__init__()

            def boom(**kw):
                raise openstack.exceptions.HttpException("403 Forbidden: not allowed\nmore")
            self.image.images = boom

    with pytest.raises(GuestUploadError, match="glance upload of g failed: 403 Forbidden"):
        upload_guest(Broken(), art, "g")
