"""Which kernel modules go into the initramfs, and in what order to load them.

Debian's kernel package ships no ``modules.dep`` (depmod writes it on install),
so dependencies are read from each module's ``.modinfo`` ELF section
(``depends=a,b``). Selection itself is a pure function over that data.
"""

from __future__ import annotations

import lzma
import struct
from dataclasses import dataclass, field
from pathlib import Path

from stackyard.guest.errors import GuestImageError

#: Modules the guest cannot work without on Nova/libvirt (virtio NIC on PCI).
REQUIRED_MODULES = ("virtio_pci", "virtio_net")
#: Modules loaded when the kernel has them: disks, config drive (ISO 9660 on
#: IDE/SATA CD-ROM or a virtio disk), entropy, serial console, ACPI power button;
#: the root disk's filesystem and the overlay root on it (without them the guest
#: runs from RAM alone).
OPTIONAL_MODULES = (
    "virtio_blk", "virtio_scsi", "virtio_console", "virtio_rng", "virtio_balloon",
    "ata_piix", "ahci", "sr_mod", "isofs", "vfat", "nls_iso8859_1", "nls_cp437", "nls_utf8", "nls_ascii",
    "button", "evdev", "ext4", "overlay",
)


def module_name(path: str) -> str:
    """``kernel/drivers/net/virtio_net.ko.xz`` → ``virtio_net`` (dashes normalised to underscores)."""
    base = path.rsplit("/", 1)[-1]
    for suffix in (".xz", ".zst", ".gz"):
        base = base.removesuffix(suffix)
    return base.removesuffix(".ko").replace("-", "_")


def parse_builtin(text: str) -> set[str]:
    """Names of built-in modules from a ``modules.builtin`` file."""
    return {module_name(line.strip()) for line in text.splitlines() if line.strip()}


def decompress_module(path: Path) -> bytes:
    """The plain ELF bytes of a module file (``.ko`` or ``.ko.xz``)."""
    raw = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(raw)
    if path.name.endswith(".ko"):
        return raw
    raise GuestImageError(f"kernel module {path.name}: unsupported compression (need .ko or .ko.xz)")


def elf_section(blob: bytes, wanted: str) -> bytes | None:
    """Contents of the named section of a 64-bit little-endian ELF file, or None."""
    if blob[:4] != b"\x7fELF" or blob[4] != 2 or blob[5] != 1:
        raise GuestImageError("kernel module is not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", blob, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", blob, 0x3A)

    def sh(i: int) -> tuple[int, int, int]:
        name, _typ, _flags, _addr, off, size = struct.unpack_from("<IIQQQQ", blob, shoff + i * shentsize)
        return name, off, size

    _, stroff, _ = sh(shstrndx)
    for i in range(shnum):
        name, off, size = sh(i)
        end = blob.index(b"\0", stroff + name)
        if blob[stroff + name:end].decode() == wanted:
            return blob[off:off + size]
    return None


def module_depends(blob: bytes) -> list[str]:
    """The ``depends=`` list of a module's ``.modinfo`` section."""
    info = elf_section(blob, ".modinfo") or b""
    for item in info.split(b"\0"):
        if item.startswith(b"depends="):
            return [d.replace("-", "_") for d in item[8:].decode().split(",") if d]
    return []


@dataclass(frozen=True)
class ModuleSelection:
    """The result of selection: module names in load order, and names found built in."""

    load_order: list[str]
    builtin: list[str] = field(default_factory=list)
    missing_optional: list[str] = field(default_factory=list)


def select_modules(
    available: dict[str, list[str]],
    builtin: set[str],
    required: tuple[str, ...] = REQUIRED_MODULES,
    optional: tuple[str, ...] = OPTIONAL_MODULES,
) -> ModuleSelection:
    """Pick the wanted modules plus their dependencies, dependencies first.

    ``available`` maps each loadable module name to its direct dependencies.
    A required module that is neither loadable nor built in is an error.
    """
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in order or name in builtin:
            return
        if name not in available:
            raise GuestImageError(
                f"kernel module {name} (needed by {' <- '.join(reversed(chain)) or 'the guest'}) is not in the kernel package")
        if name in visiting:
            raise GuestImageError(f"kernel module dependency cycle at {name}")
        visiting.add(name)
        for dep in available[name]:
            visit(dep, chain + (name,))
        visiting.discard(name)
        order.append(name)

    found_builtin = []
    missing = []
    for name in required:
        if name in builtin:
            found_builtin.append(name)
        elif name not in available:
            raise GuestImageError(f"kernel module {name} is neither built in nor shipped by the kernel package")
        visit(name, ())
    for name in optional:
        if name in builtin:
            found_builtin.append(name)
        elif name in available:
            visit(name, ())
        else:
            missing.append(name)
    return ModuleSelection(order, found_builtin, missing)


def scan_modules(modules_dir: Path) -> tuple[dict[str, Path], set[str]]:
    """Map module name → file under ``lib/modules/<kver>``, and the built-in names."""
    files: dict[str, Path] = {}
    for p in sorted(modules_dir.rglob("*.ko*")):
        if p.is_file():
            files.setdefault(module_name(p.name), p)
    builtin_file = modules_dir / "modules.builtin"
    builtin = parse_builtin(builtin_file.read_text()) if builtin_file.exists() else set()
    return files, builtin


def dependency_map(files: dict[str, Path], names: set[str] | None = None) -> dict[str, list[str]]:
    """Read ``depends=`` of the given modules and, transitively, of their dependencies."""
    todo = sorted(names if names is not None else files)
    deps: dict[str, list[str]] = {}
    while todo:
        name = todo.pop()
        if name in deps or name not in files:
            continue
        deps[name] = module_depends(decompress_module(files[name]))
        todo.extend(d for d in deps[name] if d not in deps)
    return deps
