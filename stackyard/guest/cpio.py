"""A deterministic writer for the "newc" cpio format the Linux kernel unpacks as initramfs.

Plans are data: an archive is a list of :class:`Entry` values; :func:`write_newc`
turns them into bytes. Owners are root, mtimes are fixed, inode numbers are
sequential and entries are sorted, so the same input gives the same bytes.
"""

from __future__ import annotations

import gzip
import io
import stat
from dataclasses import dataclass

TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    """One archive member. ``path`` is relative ("bin/sh"), without a leading slash."""

    path: str
    mode: int  # full st_mode: type bits | permission bits
    data: bytes = b""  # file contents, or the target of a symlink
    rdev: tuple[int, int] = (0, 0)  # (major, minor) for device nodes

    @classmethod
    def dir(cls, path: str, perm: int = 0o755) -> "Entry":
        return cls(path, stat.S_IFDIR | perm)

    @classmethod
    def file(cls, path: str, data: bytes, perm: int = 0o644) -> "Entry":
        return cls(path, stat.S_IFREG | perm, data)

    @classmethod
    def symlink(cls, path: str, target: str) -> "Entry":
        return cls(path, stat.S_IFLNK | 0o777, target.encode())

    @classmethod
    def chardev(cls, path: str, major: int, minor: int, perm: int = 0o600) -> "Entry":
        return cls(path, stat.S_IFCHR | perm, b"", (major, minor))


def _pad4(n: int) -> bytes:
    return b"\0" * ((4 - n % 4) % 4)


def _header(ino: int, mode: int, nlink: int, mtime: int, size: int, rdev: tuple[int, int], namesize: int) -> bytes:
    fields = (ino, mode, 0, 0, nlink, mtime, size, 0, 0, rdev[0], rdev[1], namesize, 0)
    return b"070701" + b"".join(b"%08X" % f for f in fields)


def with_parents(entries: list[Entry]) -> list[Entry]:
    """Add a 0755 directory entry for every missing parent directory."""
    have = {e.path for e in entries}
    out = list(entries)
    for e in entries:
        parts = e.path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in have:
                have.add(d)
                out.append(Entry.dir(d))
    return out


def write_newc(entries: list[Entry], mtime: int = 0) -> bytes:
    """Serialise ``entries`` (sorted by path, parents first) as a newc archive."""
    seen: set[str] = set()
    for e in entries:
        if e.path.startswith("/") or not e.path or e.path in seen:
            raise ValueError(f"bad or duplicate cpio path: {e.path!r}")
        seen.add(e.path)
    buf = io.BytesIO()
    for ino, e in enumerate(sorted(entries, key=lambda x: x.path), start=1):
        name = e.path.encode() + b"\0"
        nlink = 2 if stat.S_ISDIR(e.mode) else 1
        size = len(e.data) if (stat.S_ISREG(e.mode) or stat.S_ISLNK(e.mode)) else 0
        head = _header(ino, e.mode, nlink, mtime, size, e.rdev, len(name))
        buf.write(head + name + _pad4(len(head) + len(name)))
        if size:
            buf.write(e.data + _pad4(size))
    name = TRAILER.encode() + b"\0"
    head = _header(0, 0, 1, 0, 0, (0, 0), len(name))
    buf.write(head + name + _pad4(len(head) + len(name)))
    return buf.getvalue()


def read_newc(blob: bytes) -> list[tuple[str, int, int, bytes, tuple[int, int]]]:
    """Parse a newc archive into (path, mode, mtime, data, rdev) tuples (for tests and inspection)."""
    out = []
    pos = 0
    while True:
        head = blob[pos:pos + 110]
        if head[:6] != b"070701":
            raise ValueError(f"bad cpio magic at offset {pos}")
        f = [int(head[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, mtime, size, rmaj, rmin, namesize = f[1], f[5], f[6], f[9], f[10], f[11]
        name = blob[pos + 110:pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += (4 - pos % 4) % 4
        data = blob[pos:pos + size]
        pos += size
        pos += (4 - pos % 4) % 4
        if name == TRAILER:
            return out
        out.append((name, mode, mtime, data, (rmaj, rmin)))


def gzip_bytes(data: bytes) -> bytes:
    """gzip with no file name and a zero timestamp, so output depends only on input."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()
