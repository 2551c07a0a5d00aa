import lzma
import struct
from pathlib import Path

import pytest

from stackyard.guest.errors import GuestImageError
from stackyard.guest.modules import (
    decompress_module, dependency_map, module_depends, module_name, parse_builtin, scan_modules, select_modules,
)

AVAILABLE = {
    "virtio_net": ["net_failover", "virtio", "virtio_ring"],
    "net_failover": ["failover"],
    "failover": [],
    "virtio_pci": ["virtio_pci_modern_dev", "virtio", "virtio_ring"],
    "virtio_pci_modern_dev": [],
    "virtio": [],
    "virtio_ring": [],
    "virtio_blk": ["virtio", "virtio_ring"],
}


def fake_module(depends: str) -> bytes:
    """A minimal 64-bit ELF with .shstrtab and .modinfo sections."""
    shstr = b"\0.shstrtab\0.modinfo\0"
    modinfo = b"license=GPL\0" + f"depends={depends}\0".encode() + b"vermagic=6.1\0"
    data_off = 64
    shoff = data_off + len(shstr) + len(modinfo)
    header = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, 3, 1)
    sections = [struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
                struct.pack("<IIQQQQIIQQ", 1, 3, 0, 0, data_off, len(shstr), 0, 0, 1, 0),
                struct.pack("<IIQQQQIIQQ", 11, 1, 0, 0, data_off + len(shstr), len(modinfo), 0, 0, 1, 0)]
    return header + shstr + modinfo + b"".join(sections)


def test_dependencies_come_first_and_only_once() -> None:
    sel = select_modules(AVAILABLE, set(), required=("virtio_pci", "virtio_net"), optional=("virtio_blk",))
    order = sel.load_order
    assert len(order) == len(set(order)) == 8
    for mod, deps in AVAILABLE.items():
        for dep in deps:
            assert order.index(dep) < order.index(mod)


def test_builtin_modules_are_skipped() -> None:
    sel = select_modules(AVAILABLE, {"virtio", "virtio_ring", "virtio_pci"}, required=("virtio_pci", "virtio_net"),
                         optional=())
    assert sel.load_order == ["failover", "net_failover", "virtio_net"]
    assert sel.builtin == ["virtio_pci"]


def test_missing_optional_is_reported_missing_required_is_an_error() -> None:
    sel = select_modules(AVAILABLE, set(), required=("virtio_net",), optional=("ahci",))
    assert sel.missing_optional == ["ahci"]
    with pytest.raises(GuestImageError, match="virtio_scsi"):
        select_modules(AVAILABLE, set(), required=("virtio_scsi",), optional=())
    with pytest.raises(GuestImageError, match="net_failover"):
        select_modules({"virtio_net": ["net_failover"]}, set(), required=("virtio_net",), optional=())


def test_names_and_builtin_file() -> None:
    assert module_name("kernel/drivers/net/virtio_net.ko.xz") == "virtio_net"
    assert module_name("snd-hda-intel.ko") == "snd_hda_intel"
    assert parse_builtin("kernel/drivers/virtio/virtio.ko\nkernel/fs/ext4/ext4.ko\n") == {"virtio", "ext4"}


def test_depends_read_from_modinfo_plain_and_xz(tmp_path: Path) -> None:
    assert module_depends(fake_module("net_failover,virtio_ring")) == ["net_failover", "virtio_ring"]
    assert module_depends(fake_module("")) == []
    kdir = tmp_path / "6.1.0"
    (kdir / "kernel/net").mkdir(parents=True)
    (kdir / "kernel/net/virtio_net.ko.xz").write_bytes(lzma.compress(fake_module("failover")))
    (kdir / "kernel/net/failover.ko").write_bytes(fake_module(""))
    (kdir / "kernel/net/unused.ko").write_bytes(b"not read")
    (kdir / "modules.builtin").write_text("kernel/drivers/virtio/virtio.ko\n")
    files, builtin = scan_modules(kdir)
    assert builtin == {"virtio"}
    assert decompress_module(files["virtio_net"]).startswith(b"\x7fELF")
    assert dependency_map(files, {"virtio_net"}) == {"virtio_net": ["failover"], "failover": []}
