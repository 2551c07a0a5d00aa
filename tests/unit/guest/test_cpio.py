import gzip
import stat

import pytest

from stackyard.guest.cpio import Entry, gzip_bytes, read_newc, with_parents, write_newc
from stackyard.guest.plan import initramfs_entries


def test_newc_roundtrip_modes_devices_and_fixed_mtime() -> None:
    entries = with_parents([
        Entry.file("init", b"#!/bin/sh\n", 0o755),
        Entry.symlink("bin/sh", "/bin/busybox"),
        Entry.chardev("dev/console", 5, 1),
        Entry.dir("tmp", 0o1777),
    ])
    blob = write_newc(entries)
    assert blob[:6] == b"070701" and len(blob) % 4 == 0
    parsed = {name: (mode, mtime, data, rdev) for name, mode, mtime, data, rdev in read_newc(blob)}
    assert list(parsed) == sorted(parsed)  # sorted: stable output
    assert set(parsed) == {"bin", "bin/sh", "dev", "dev/console", "init", "tmp"}
    assert parsed["init"] == (stat.S_IFREG | 0o755, 0, b"#!/bin/sh\n", (0, 0))
    assert parsed["bin/sh"][0] == stat.S_IFLNK | 0o777 and parsed["bin/sh"][2] == b"/bin/busybox"
    assert parsed["dev/console"][0] == stat.S_IFCHR | 0o600 and parsed["dev/console"][3] == (5, 1)
    assert parsed["tmp"][0] == stat.S_IFDIR | 0o1777
    assert all(v[1] == 0 for v in parsed.values())


def test_same_input_same_bytes() -> None:
    entries = [Entry.file("b", b"2"), Entry.file("a", b"1")]
    assert write_newc(entries) == write_newc(list(reversed(entries)))
    assert gzip_bytes(write_newc(entries)) == gzip_bytes(write_newc(entries))
    assert gzip.decompress(gzip_bytes(b"x")) == b"x"


def test_duplicate_or_absolute_paths_are_rejected() -> None:
    with pytest.raises(ValueError):
        write_newc([Entry.file("a", b""), Entry.file("a", b"")])
    with pytest.raises(ValueError):
        write_newc([Entry.file("/a", b"")])


def test_initramfs_layout() -> None:
    entries = initramfs_entries(busybox=b"BB", applets=["bin/sh", "sbin/udhcpc", "usr/bin/wget", "sbin/mke2fs"],
                                kernel_version="6.1.0-1-cloud-amd64",
                                modules=[("kernel/drivers/net/virtio_net.ko", b"KO")],
                                tools={"usr/sbin/dropbear": b"DB", "usr/sbin/mke2fs": b"ME"},
                                links={"usr/sbin/mkfs.ext4": "usr/sbin/mke2fs"},
                                libs={"libc.so.6": b"C", "ld-linux-x86-64.so.2": b"LD"})
    parsed = {name: (mode, data) for name, mode, _, data, _ in read_newc(write_newc(entries))}
    assert parsed["init"][0] == stat.S_IFREG | 0o755
    assert b"kernel/drivers/net/virtio_net.ko" in parsed["init"][1]
    assert parsed["bin/busybox"] == (stat.S_IFREG | 0o755, b"BB")
    assert parsed["sbin/udhcpc"] == (stat.S_IFLNK | 0o777, b"/bin/busybox")
    assert parsed["bin/cttyhack"][1] == b"/bin/busybox"  # core applets even without --list-full
    assert parsed["lib/modules/6.1.0-1-cloud-amd64/kernel/drivers/net/virtio_net.ko"][1] == b"KO"
    assert parsed["usr/share/udhcpc/default.script"][0] == stat.S_IFREG | 0o755
    assert parsed["dev/console"][0] == stat.S_IFCHR | 0o600
    assert parsed["usr/sbin/dropbear"][1] == b"DB"
    # a Debian tool replaces busybox's applet of that name (/sbin comes first in PATH)
    assert "sbin/mke2fs" not in parsed and parsed["usr/sbin/mke2fs"][1] == b"ME"
    assert parsed["usr/sbin/mkfs.ext4"] == (stat.S_IFLNK | 0o777, b"/usr/sbin/mke2fs")
    assert parsed["var/run"] == (stat.S_IFLNK | 0o777, b"/run")  # Tempest reads /var/run/udhcpc.<if>.pid
    assert parsed["sbin/stackyard-init"][0] == stat.S_IFREG | 0o755
    assert parsed["usr/bin/sudo"][0] == stat.S_IFREG | 0o755
    assert parsed["lib64"] == (stat.S_IFLNK | 0o777, b"lib/x86_64-linux-gnu")
    assert parsed["lib/x86_64-linux-gnu/libc.so.6"][1] == b"C"
    assert parsed["root/.ssh"][0] == stat.S_IFDIR | 0o700
    for name in parsed:  # every parent directory is present
        parent = name.rpartition("/")[0]
        assert not parent or parent in parsed, name
