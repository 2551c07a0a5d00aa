"""The thin executor: download, unpack, assemble, write. Same inputs → the existing output is reused."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from stackyard.guest.apt import Apt
from stackyard.guest.cpio import gzip_bytes, write_newc
from stackyard.guest.errors import GuestImageError, GuestPackageError
from stackyard.guest.modules import dependency_map, decompress_module, scan_modules, select_modules
from stackyard.guest import elf
from stackyard.guest.initscript import blank_disk_header
from stackyard.guest.plan import BuildPlan, GuestSpec, Tool, initramfs_entries, plan_build

DEFAULT_WORK_DIR = Path("/var/lib/stackyard/guest")
#: apt resolutions kept between builds (see :class:`~stackyard.guest.apt.Apt`)
APT_MEMO_FILE = "apt-resolved.json"
KERNEL_FILE, RAMDISK_FILE, DISK_FILE, MANIFEST_FILE = "vmlinuz", "initrd.img", "disk.img", "manifest.json"


@dataclass(frozen=True)
class GuestArtifacts:
    """The built guest: a kernel, an initramfs and a placeholder machine disk (AKI/ARI/AMI)."""

    kernel: Path
    ramdisk: Path
    disk: Path
    kernel_version: str
    cmdline: str
    key: str
    packages: dict[str, str] = field(default_factory=dict)  # name → version
    modules: list[str] = field(default_factory=list)
    reused: bool = False

    def to_json(self) -> dict:
        return {"kernel": str(self.kernel), "ramdisk": str(self.ramdisk), "disk": str(self.disk),
                "kernel_version": self.kernel_version, "cmdline": self.cmdline, "key": self.key,
                "packages": self.packages, "modules": self.modules, "reused": self.reused}


def _load(out: Path) -> GuestArtifacts | None:
    try:
        m = json.loads((out / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None
    files = [out / KERNEL_FILE, out / RAMDISK_FILE, out / DISK_FILE]
    if not all(f.is_file() for f in files):
        return None
    return GuestArtifacts(*files, m["kernel_version"], m["cmdline"], m["key"], m["packages"], m["modules"], True)


def _one(paths: list[Path], what: str, pkg: str) -> Path:
    if not paths:
        raise GuestPackageError(f"package {pkg} has no {what}")
    return sorted(paths)[-1]


def _busybox_applets(busybox: Path) -> list[str]:
    try:
        res = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True, timeout=30)
        return res.stdout.split() if res.returncode == 0 else []
    except OSError:  # another architecture: fall back to the core applet list
        return []


LIB_SEARCH = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "usr/lib64", "lib", "usr/lib")
TOOL_SEARCH = ("usr/sbin", "usr/bin", "sbin", "bin")


def _find_lib(roots: list[Path], soname: str, needed_by: str) -> bytes:
    for root in roots:
        for d in LIB_SEARCH:
            p = root / d / soname
            if p.exists() or p.is_symlink():
                return _read_link_in(root, p)
    raise GuestPackageError(f"shared library {soname} (needed by {needed_by}) is in none of the downloaded "
                            "packages")


def _find_tool(tree: Path, tool: Tool) -> bytes:
    for d in TOOL_SEARCH:
        p = tree / d / tool.name
        if p.exists() or p.is_symlink():
            return _read_link_in(tree, p)
    raise GuestPackageError(f"package {tool.package} has no {tool.name} in {', '.join(TOOL_SEARCH)}")


def library_closure(binaries: dict[str, bytes], roots: list[Path]) -> dict[str, bytes]:
    """soname -> bytes of every shared object the binaries load (their loader included), transitively."""
    libs: dict[str, bytes] = {}
    queue = [(name, data) for name, data in binaries.items()]
    while queue:
        name, data = queue.pop(0)
        wanted = list(elf.needed(data, name))
        interp = elf.interpreter(data, name)
        if interp:
            wanted.insert(0, interp.rsplit("/", 1)[-1])
        for soname in wanted:
            if soname not in libs:
                libs[soname] = _find_lib(roots, soname, name)
                queue.append((soname, libs[soname]))
    return libs


def _read_link_in(root: Path, p: Path) -> bytes:
    """Read ``p``, following symlinks inside the unpacked tree ``root`` (absolute links are rooted there)."""
    for _ in range(10):
        if not p.is_symlink():
            return p.read_bytes()
        target = Path(str(p.readlink()))
        p = root / str(target).lstrip("/") if target.is_absolute() else p.parent / target
    raise GuestPackageError(f"symlink loop at {p}")


def write_blank_disk(path: Path, size: int) -> None:
    """The placeholder root disk: the marker, then zeros up to ``size`` (sparse). Not all zeros,
    which Python's tarfile (and so Tempest's image upload) takes for an empty tar archive."""
    header = blank_disk_header()
    if size < len(header):
        raise GuestImageError(f"guest disk_size {size} is smaller than its {len(header)}-byte header")
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(size)


def execute(plan: BuildPlan, work_dir: Path, apt: Apt) -> GuestArtifacts:
    spec = plan.spec
    debs = work_dir / "debs"
    out = plan.out_dir(work_dir)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=work_dir) as tmp_s:
        tmp = Path(tmp_s)
        trees: dict[str, Path] = {}
        for pkg in plan.packages:
            trees[pkg.name] = apt.extract(apt.download(pkg, debs), tmp / "pkg" / pkg.name)

        ktree = trees[plan.kernel.name]
        vmlinuz = _one(list((ktree / "boot").glob("vmlinuz-*")), "boot/vmlinuz-*", plan.kernel.name)
        mod_root = next((ktree / d for d in ("lib/modules", "usr/lib/modules") if (ktree / d).is_dir()), None)
        if mod_root is None:
            raise GuestPackageError(f"package {plan.kernel.name} has no lib/modules directory")
        kdir = _one([d for d in mod_root.iterdir() if d.is_dir()], "lib/modules/<version>", plan.kernel.name)
        kver = kdir.name
        files, builtin = scan_modules(kdir)
        wanted = {n for n in (*spec.required_modules, *spec.optional_modules) if n in files}
        selection = select_modules(dependency_map(files, wanted), builtin,
                                   spec.required_modules, spec.optional_modules)
        modules = []
        for name in selection.load_order:
            rel = files[name].relative_to(kdir).as_posix()
            for suffix in (".xz", ".zst", ".gz"):
                rel = rel.removesuffix(suffix)
            modules.append((rel, decompress_module(files[name])))

        bb = _one([p for p in (trees[plan.busybox.name] / d / "busybox" for d in ("bin", "usr/bin")) if p.exists()],
                  "busybox binary", plan.busybox.name)
        tools: dict[str, bytes] = {}
        links: dict[str, str] = {}
        for tool in spec.tools:
            tools[tool.dest] = _find_tool(trees[tool.package], tool)
            links.update({link: tool.dest for link in tool.links})
        libs = library_closure(tools, [trees[p.name] for p in plan.extra])

        entries = initramfs_entries(busybox=bb.read_bytes(), applets=_busybox_applets(bb), kernel_version=kver,
                                    modules=modules, default_hostname=spec.default_hostname,
                                    tools=tools, links=links, libs=libs)
        stage = tmp / "out"
        stage.mkdir()
        shutil.copyfile(vmlinuz, stage / KERNEL_FILE)
        (stage / RAMDISK_FILE).write_bytes(gzip_bytes(write_newc(entries)))
        write_blank_disk(stage / DISK_FILE, spec.disk_size)
        versions = {p.name: p.version for p in plan.packages}
        manifest = {"key": plan.key, "kernel_version": kver, "cmdline": spec.cmdline, "packages": versions,
                    "modules": selection.load_order, "builtin_modules": selection.builtin}
        (stage / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if out.exists():
            shutil.rmtree(out)
        stage.rename(out)
    return GuestArtifacts(out / KERNEL_FILE, out / RAMDISK_FILE, out / DISK_FILE, kver, spec.cmdline, plan.key,
                          versions, selection.load_order, False)


def build_guest(work_dir: Path | str = DEFAULT_WORK_DIR, spec: GuestSpec | None = None, *,
                apt: Apt | None = None, force: bool = False) -> GuestArtifacts:
    """Build (or reuse) the guest kernel, initramfs and machine disk under ``work_dir``."""
    work_dir = Path(work_dir)
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GuestImageError(f"cannot create work dir {work_dir}: {exc.strerror}") from None
    spec = spec or GuestSpec()
    apt = apt or Apt(memo_file=work_dir / APT_MEMO_FILE)
    plan = plan_build(spec, apt.resolve)
    try:
        apt.save_memo()
    except OSError:
        pass  # only a speed-up: the next build resolves again
    if not force:
        existing = _load(plan.out_dir(work_dir))
        if existing is not None and existing.key == plan.key:
            return existing
    return execute(plan, work_dir, apt)
