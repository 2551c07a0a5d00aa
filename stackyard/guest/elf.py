"""The shared libraries an ELF executable links (DT_NEEDED) and its loader (PT_INTERP): pure.

The guest copies a few Debian binaries (dropbear, lsblk, mke2fs …) into its
initramfs with exactly the libraries they load, found by reading their
dynamic section, so no ``ldd`` (which would run the binary) is needed.
Only 64-bit little-endian ELF files are read (the guest is x86_64).
"""

from __future__ import annotations

import struct

from stackyard.guest.errors import GuestPackageError

PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB = 0, 1, 5


def _check(data: bytes, what: str) -> None:
    if data[:4] != b"\x7fELF":
        raise GuestPackageError(f"{what} is not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise GuestPackageError(f"{what} is not a 64-bit little-endian ELF file")


def _segments(data: bytes) -> list[tuple[int, int, int, int, int]]:
    """(type, offset, vaddr, filesz, memsz) of every program header."""
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    out = []
    for i in range(phnum):
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, _align = struct.unpack_from(
            "<IIQQQQQQ", data, phoff + i * phentsize)
        out.append((p_type, p_offset, p_vaddr, p_filesz, p_memsz))
    return out


def _file_offset(segments: list[tuple[int, int, int, int, int]], vaddr: int) -> int:
    for p_type, offset, start, filesz, _memsz in segments:
        if p_type == PT_LOAD and start <= vaddr < start + filesz:
            return offset + (vaddr - start)
    raise GuestPackageError(f"address {vaddr:#x} is in no loaded segment")


def _cstring(data: bytes, offset: int) -> str:
    end = data.index(b"\0", offset)
    return data[offset:end].decode()


def interpreter(data: bytes, what: str = "binary") -> str | None:
    """The program loader's path (``/lib64/ld-linux-x86-64.so.2``), None for a static binary or a library."""
    _check(data, what)
    for p_type, offset, _vaddr, filesz, _memsz in _segments(data):
        if p_type == PT_INTERP:
            return data[offset:offset + filesz].rstrip(b"\0").decode()
    return None


def needed(data: bytes, what: str = "binary") -> list[str]:
    """The sonames ``data`` links, in the order of its dynamic section."""
    _check(data, what)
    segments = _segments(data)
    dynamic = next(((off, size) for t, off, _v, size, _m in segments if t == PT_DYNAMIC), None)
    if dynamic is None:
        return []  # statically linked
    off, size = dynamic
    entries: list[tuple[int, int]] = []
    for pos in range(off, off + size, 16):
        tag, value = struct.unpack_from("<qQ", data, pos)
        if tag == DT_NULL:
            break
        entries.append((tag, value))
    strtab = next((v for t, v in entries if t == DT_STRTAB), None)
    if strtab is None:
        raise GuestPackageError(f"{what}: dynamic section without a string table")
    base = _file_offset(segments, strtab)
    return [_cstring(data, base + v) for t, v in entries if t == DT_NEEDED]
