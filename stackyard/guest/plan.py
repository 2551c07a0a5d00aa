"""What to build, as data: the spec, the resolved packages, the cache key, the initramfs entries.

Nothing here touches the network or the disk except through arguments, so the
plan is cheap to compute and easy to test; :mod:`stackyard.guest.build` executes it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from stackyard.guest import initscript
from stackyard.guest.apt import Package, kernel_dependency
from stackyard.guest.cpio import Entry, with_parents
from stackyard.guest.errors import GuestPackageError
from stackyard.guest.modules import OPTIONAL_MODULES, REQUIRED_MODULES

#: Bump when the layout of the artefacts changes, so old caches are not reused.
FORMAT_VERSION = 2


@dataclass(frozen=True)
class Tool:
    """A Debian binary copied into the guest, with exactly the libraries it links (its DT_NEEDED closure)."""

    package: str
    #: its file name in the package (looked up in bin, sbin, usr/bin and usr/sbin)
    name: str
    #: where it goes in the guest
    dest: str
    #: more names for it in the guest (symlinks), e.g. mkfs.ext4 for mke2fs
    links: tuple[str, ...] = ()


#: the SSH server (key-only root logins)
SSH_TOOLS = (Tool("dropbear-bin", "dropbear", "usr/sbin/dropbear"),)
#: disks: the root disk's filesystem (made on first boot), and what Tempest runs on volumes
#: (lsblk, blkid, ``mkfs -t vfat|ext4``); busybox has none of them, or only ext2
DISK_TOOLS = (
    Tool("util-linux", "lsblk", "usr/bin/lsblk"),
    Tool("util-linux", "blkid", "usr/sbin/blkid"),
    Tool("util-linux", "mkfs", "usr/sbin/mkfs"),
    Tool("e2fsprogs", "mke2fs", "usr/sbin/mke2fs",
         links=("usr/sbin/mkfs.ext2", "usr/sbin/mkfs.ext3", "usr/sbin/mkfs.ext4")),
    Tool("dosfstools", "mkfs.fat", "usr/sbin/mkfs.fat", links=("usr/sbin/mkfs.vfat", "usr/sbin/mkdosfs")),
)
LIB_DIR = "lib/x86_64-linux-gnu"

#: Applets the init script relies on: created even if ``busybox --list-full`` cannot be run.
CORE_APPLETS = (
    "bin/sh", "bin/mount", "bin/umount", "bin/mkdir", "bin/cat", "bin/echo", "bin/ls", "bin/grep", "bin/sed",
    "bin/sleep", "bin/hostname", "bin/chmod", "bin/uname", "bin/cttyhack", "bin/ping", "bin/rm", "bin/sync",
    "bin/dd", "bin/kill", "bin/id", "usr/sbin/chroot", "usr/bin/wc", "usr/bin/awk",
    "sbin/ip", "sbin/insmod", "sbin/udhcpc", "sbin/acpid", "sbin/poweroff", "sbin/reboot",
    "usr/bin/wget", "usr/bin/timeout", "usr/bin/setsid", "usr/bin/tr", "usr/bin/cut", "usr/bin/head", "usr/bin/printf",
)

DEFAULT_CMDLINE = "console=tty0 console=ttyS0"


@dataclass(frozen=True)
class GuestSpec:
    """What the operator asks for. Every field feeds the cache key."""

    kernel_package: str = "linux-image-cloud-amd64"
    busybox_package: str = "busybox-static"
    ssh: bool = True  # dropbear from dropbear-bin, with the libraries it links
    default_hostname: str = "stackyard-guest"
    cmdline: str = DEFAULT_CMDLINE
    required_modules: tuple[str, ...] = REQUIRED_MODULES
    optional_modules: tuple[str, ...] = OPTIONAL_MODULES
    disk_size: int = 1024 * 1024  # the "ami" machine image: zeros, only a placeholder root disk

    @property
    def tools(self) -> tuple[Tool, ...]:
        return (SSH_TOOLS if self.ssh else ()) + DISK_TOOLS

    def tool_packages(self) -> list[str]:
        return list(dict.fromkeys(t.package for t in self.tools))


@dataclass(frozen=True)
class BuildPlan:
    spec: GuestSpec
    kernel_meta: Package | None  # the meta package (linux-image-cloud-amd64), if one was named
    kernel: Package  # the package that holds vmlinuz and the modules
    busybox: Package
    extra: tuple[Package, ...] = field(default_factory=tuple)
    key: str = ""

    @property
    def packages(self) -> tuple[Package, ...]:
        return (self.kernel, self.busybox, *self.extra)

    def out_dir(self, work_dir: Path) -> Path:
        return work_dir / f"guest-{self.key[:16]}"


def cache_key(spec: GuestSpec, packages: tuple[Package, ...]) -> str:
    blob = json.dumps({
        "format": FORMAT_VERSION,
        "spec": asdict(spec),
        "tools": [asdict(t) for t in spec.tools],
        "packages": [[p.name, p.version, p.sha256] for p in packages],
        "init": hashlib.sha256((initscript.render_init([]) + initscript.render_stage2("")
                                + initscript.render_udhcpc_script() + initscript.ACPI_POWER
                                + initscript.SUDO + initscript.CURL).encode()).hexdigest(),
    }, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _dependency_names(pkg: Package) -> list[list[str]]:
    """``Pre-Depends`` then ``Depends`` of ``pkg``: one list of alternatives per dependency."""
    groups = []
    for field_text in (pkg.pre_depends, pkg.depends):
        for group in field_text.split(","):
            alts = [a.strip().split(" ", 1)[0].split(":", 1)[0] for a in group.split("|")]
            alts = [a for a in alts if a]
            if alts:
                groups.append(alts)
    return groups


def is_library_package(name: str) -> bool:
    """Debian's shared-library packages (where a binary's DT_NEEDED sonames live)."""
    return name.startswith("lib") or name == "zlib1g"


def library_closure(roots: list[Package], resolve: Callable[[str], Package]) -> tuple[Package, ...]:
    """Every library package ``roots`` depend on, directly or not (the first alternative apt knows).

    Only library packages are followed: the guest takes binaries and the
    shared objects they load, never a package's scripts or data.
    """
    seen = {p.name for p in roots}
    out: list[Package] = []
    queue = list(roots)
    while queue:
        pkg = queue.pop(0)
        for alts in _dependency_names(pkg):
            libs = [a for a in alts if is_library_package(a)]
            if not libs or any(a in seen for a in libs):
                continue
            for name in libs:
                try:
                    dep = resolve(name)
                except GuestPackageError:
                    continue  # a virtual package or another architecture: try the next alternative
                seen.add(name)
                seen.add(dep.name)
                out.append(dep)
                queue.append(dep)
                break
    return tuple(sorted(out, key=lambda p: p.name))


def plan_build(spec: GuestSpec, resolve: Callable[[str], Package]) -> BuildPlan:
    """Resolve every package the spec names (a meta kernel package to its real one) and key the build."""
    kernel = resolve(spec.kernel_package)
    meta = None
    if not kernel.name.startswith("linux-image-"):
        raise GuestPackageError(f"kernel package {spec.kernel_package} is not a linux-image-* package")
    real = kernel_dependency(kernel)
    if real:  # a meta package: take the image it depends on
        meta, kernel = kernel, resolve(real)
    busybox = resolve(spec.busybox_package)
    tools = tuple(resolve(n) for n in spec.tool_packages())
    extra = tools + library_closure(list(tools), resolve)
    plan = BuildPlan(spec, meta, kernel, busybox, extra)
    return BuildPlan(spec, meta, kernel, busybox, extra, cache_key(spec, plan.packages))


def initramfs_entries(
    *,
    busybox: bytes,
    applets: list[str],
    kernel_version: str,
    modules: list[tuple[str, bytes]],
    default_hostname: str = "stackyard-guest",
    tools: dict[str, bytes] | None = None,
    links: dict[str, str] | None = None,
    libs: dict[str, bytes] | None = None,
) -> list[Entry]:
    """Every member of the initramfs. ``modules`` are (path under lib/modules/<kver>, bytes) in load order;
    ``tools`` guest path -> binary, ``links`` guest path -> the tool it names, ``libs`` soname -> bytes."""
    tools, links = tools or {}, links or {}
    entries = [
        Entry.file("init", initscript.render_init([p for p, _ in modules]).encode(), 0o755),
        Entry.file("sbin/stackyard-init", initscript.render_stage2(default_hostname).encode(), 0o755),
        Entry.file("bin/busybox", busybox, 0o755),
        Entry.file("usr/share/udhcpc/default.script", initscript.render_udhcpc_script().encode(), 0o755),
        Entry.file("usr/bin/sudo", initscript.SUDO.encode(), 0o755),
        Entry.file("usr/bin/curl", initscript.CURL.encode(), 0o755),
        Entry.file("etc/acpi/PWRF/00000080", initscript.ACPI_POWER.encode(), 0o755),
        Entry.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
        Entry.file("etc/group", b"root:x:0:\n"),
        Entry.file("etc/shadow", b"root:*:19000:0:99999:7:::\n", 0o600),
        Entry.file("etc/shells", b"/bin/sh\n"),
        Entry.file("etc/hosts", b"127.0.0.1 localhost\n"),
        Entry.file("etc/profile", b'export PATH=/sbin:/bin:/usr/sbin:/usr/bin\nPS1="$(hostname)# "\n'),
        Entry.file("etc/os-release", b'NAME="stackyard guest"\nID=stackyard-guest\nPRETTY_NAME="stackyard guest (busybox)"\n'),
        Entry.file("etc/fstab", b"# the root is an overlay: this initramfs below, the root disk's upper/ above\n"),
        Entry.dir("root", 0o700),
        Entry.dir("root/.ssh", 0o700),
        Entry.dir("tmp", 0o1777),
        Entry.dir("proc", 0o555),
        Entry.dir("sys", 0o555),
        Entry.dir("dev"),
        Entry.dir("run"),
        Entry.symlink("var/run", "/run"),
        Entry.dir("var/log"),
        Entry.dir("mnt"),
        Entry.dir("media/root"),
        Entry.dir("newroot"),
        Entry.dir("etc/dropbear", 0o700),
        Entry.chardev("dev/console", 5, 1, 0o600),
        Entry.chardev("dev/null", 1, 3, 0o666),
        Entry.chardev("dev/ttyS0", 4, 64, 0o600),
    ]
    for path, data in modules:
        entries.append(Entry.file(f"lib/modules/{kernel_version}/{path}", data, 0o644))
    taken = {e.path for e in entries}
    # a Debian tool replaces busybox's applet of the same name (PATH puts /sbin before /usr/sbin)
    shadowed = {Path(p).name for p in (*tools, *links)}
    for applet in sorted(set(applets) | set(CORE_APPLETS)):
        applet = applet.strip("/")
        if applet and applet not in taken and applet != "bin/busybox" and Path(applet).name not in shadowed:
            entries.append(Entry.symlink(applet, "/bin/busybox"))
            taken.add(applet)
    for dest, data in sorted(tools.items()):
        entries.append(Entry.file(dest, data, 0o755))
    for link, target in sorted(links.items()):
        entries.append(Entry.symlink(link, "/" + target))
    if libs:
        for soname, data in sorted(libs.items()):
            entries.append(Entry.file(f"{LIB_DIR}/{soname}", data, 0o755))
        entries.append(Entry.symlink("lib64", "lib/x86_64-linux-gnu"))
    return with_parents(entries)
