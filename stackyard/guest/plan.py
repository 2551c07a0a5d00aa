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
FORMAT_VERSION = 1

DROPBEAR_PACKAGES = ("dropbear-bin", "libc6", "libcrypt1", "libtomcrypt1", "libtommath1", "libgmp10", "zlib1g")
#: Shared objects dropbear needs (its DT_NEEDED closure on Debian 12/13), with the loader first.
DROPBEAR_LIBS = ("ld-linux-x86-64.so.2", "libc.so.6", "libcrypt.so.1", "libtomcrypt.so.1",
                 "libtommath.so.1", "libgmp.so.10", "libz.so.1")
LIB_DIR = "lib/x86_64-linux-gnu"

#: Applets the init script relies on: created even if ``busybox --list-full`` cannot be run.
CORE_APPLETS = (
    "bin/sh", "bin/mount", "bin/umount", "bin/mkdir", "bin/cat", "bin/echo", "bin/ls", "bin/grep", "bin/sed",
    "bin/sleep", "bin/hostname", "bin/chmod", "bin/uname", "bin/cttyhack", "bin/ping", "bin/rm", "bin/sync",
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

    def package_names(self) -> list[str]:
        return [self.kernel_package, self.busybox_package, *(DROPBEAR_PACKAGES if self.ssh else ())]


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
        "packages": [[p.name, p.version, p.sha256] for p in packages],
        "init": hashlib.sha256((initscript.render_init([]) + initscript.render_udhcpc_script()
                                + initscript.ACPI_POWER).encode()).hexdigest(),
    }, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


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
    extra = tuple(resolve(n) for n in (DROPBEAR_PACKAGES if spec.ssh else ()))
    plan = BuildPlan(spec, meta, kernel, busybox, extra)
    return BuildPlan(spec, meta, kernel, busybox, extra, cache_key(spec, plan.packages))


def initramfs_entries(
    *,
    busybox: bytes,
    applets: list[str],
    kernel_version: str,
    modules: list[tuple[str, bytes]],
    default_hostname: str = "stackyard-guest",
    dropbear: bytes | None = None,
    libs: dict[str, bytes] | None = None,
) -> list[Entry]:
    """Every member of the initramfs. ``modules`` are (path under lib/modules/<kver>, bytes) in load order."""
    entries = [
        Entry.file("init", initscript.render_init([p for p, _ in modules], default_hostname).encode(), 0o755),
        Entry.file("bin/busybox", busybox, 0o755),
        Entry.file("usr/share/udhcpc/default.script", initscript.render_udhcpc_script().encode(), 0o755),
        Entry.file("etc/acpi/PWRF/00000080", initscript.ACPI_POWER.encode(), 0o755),
        Entry.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
        Entry.file("etc/group", b"root:x:0:\n"),
        Entry.file("etc/shadow", b"root:*:19000:0:99999:7:::\n", 0o600),
        Entry.file("etc/shells", b"/bin/sh\n"),
        Entry.file("etc/hosts", b"127.0.0.1 localhost\n"),
        Entry.file("etc/profile", b'export PATH=/sbin:/bin:/usr/sbin:/usr/bin\nPS1="$(hostname)# "\n'),
        Entry.file("etc/os-release", b'NAME="stackyard guest"\nID=stackyard-guest\nPRETTY_NAME="stackyard guest (busybox)"\n'),
        Entry.dir("root", 0o700),
        Entry.dir("root/.ssh", 0o700),
        Entry.dir("tmp", 0o1777),
        Entry.dir("proc", 0o555),
        Entry.dir("sys", 0o555),
        Entry.dir("dev"),
        Entry.dir("run"),
        Entry.dir("mnt"),
        Entry.dir("etc/dropbear", 0o700),
        Entry.chardev("dev/console", 5, 1, 0o600),
        Entry.chardev("dev/null", 1, 3, 0o666),
        Entry.chardev("dev/ttyS0", 4, 64, 0o600),
    ]
    for path, data in modules:
        entries.append(Entry.file(f"lib/modules/{kernel_version}/{path}", data, 0o644))
    taken = {e.path for e in entries}
    for applet in sorted(set(applets) | set(CORE_APPLETS)):
        applet = applet.strip("/")
        if applet and applet not in taken and applet != "bin/busybox":
            entries.append(Entry.symlink(applet, "/bin/busybox"))
            taken.add(applet)
    if dropbear is not None:
        entries.append(Entry.file("usr/sbin/dropbear", dropbear, 0o755))
        for soname, data in sorted((libs or {}).items()):
            entries.append(Entry.file(f"{LIB_DIR}/{soname}", data, 0o755))
        entries.append(Entry.symlink("lib64", "lib/x86_64-linux-gnu"))
    return with_parents(entries)
