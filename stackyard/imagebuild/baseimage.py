"""Make the Debian base image when no registry can provide it.

Order: use the image if the engine has it; else try to pull it; else build it
with ``debootstrap --variant=minbase`` from the configured mirror and import it.
The root filesystem is packed with sorted names, fixed owners and a fixed mtime
(``SOURCE_DATE_EPOCH``) so the same tree gives the same tarball. The engine is
reached only through :class:`stackyard.engine.Engine`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from stackyard.engine import Engine
from stackyard.errors import EngineError, MirrorError, StackyardError
from stackyard.imagebuild.config import BuildConfig

BASE_LABEL = "org.stackyard.base"


def check_mirror(mirror: str, suite: str, proxy: str = "", timeout: float = 15.0) -> None:
    """Fail fast, with one line, when the mirror (through the proxy) cannot serve ``suite``."""
    url = f"{mirror.rstrip('/')}/dists/{suite}/Release"
    handlers: list[urllib.request.BaseHandler] = [
        urllib.request.ProxyHandler({"http": proxy, "https": proxy} if proxy else {})
    ]
    opener = urllib.request.build_opener(*handlers)
    try:
        # GET, not HEAD: caching proxies such as apt-cacher-ng answer HEAD for
        # uncached files with an error
        with opener.open(urllib.request.Request(url), timeout=timeout) as resp:
            resp.read(512)
            if resp.status >= 400:
                raise MirrorError(f"mirror {mirror}: {url} answered HTTP {resp.status}")
    except urllib.error.HTTPError as exc:
        raise MirrorError(f"mirror {mirror}: {url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        via = f" via proxy {proxy}" if proxy else ""
        raise MirrorError(f"mirror {mirror} is unreachable{via}: {reason}") from None


def image_present(engine: Engine, ref: str) -> str | None:
    """The engine ID of ``ref``, or None when the engine does not have it."""
    image = engine.image(ref)
    return image.id if image is not None else None


def ensure_base_image(
    engine: Engine,
    config: BuildConfig,
    log: Callable[[str], None] = print,
    *,
    force: bool = False,
) -> str:
    """Return the engine ID of ``base_image:base_tag``, making it if needed.

    A failed pull is not an error: a machine without registry access is what
    the debootstrap path is for, so the pull's reason is only logged.
    """
    ref = config.base_ref
    if not force:
        found = image_present(engine, ref)
        if found:
            return found
        try:
            log(f"base image {ref} not present; trying to pull it")
            return engine.pull(ref)
        except EngineError as exc:
            log(f"cannot pull {ref} ({str(exc).splitlines()[0]}); "
                f"making it with debootstrap from {config.apt_mirror}")
    return debootstrap_image(engine, config, log)


def debootstrap_image(engine: Engine, config: BuildConfig, log: Callable[[str], None] = print) -> str:
    """Debootstrap a minbase root filesystem and import it as ``base_ref``; returns its ID."""
    if config.base_image not in ("debian", "docker.io/library/debian") and "/" not in config.base_image:
        log(f"note: importing a debootstrapped Debian {config.base_tag} as {config.base_ref}")
    if shutil.which("debootstrap") is None:
        raise StackyardError(
            "debootstrap is not installed: run 'apt-get install debootstrap' (needed to make "
            f"{config.base_ref} without a registry)"
        )
    if os.geteuid() != 0:
        raise StackyardError("making the base image with debootstrap needs root")
    check_mirror(config.apt_mirror, config.base_tag, config.apt_proxy)
    work = Path(config.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work, prefix=f"rootfs-{config.base_tag}-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        cmd = [
            "debootstrap", "--variant=minbase",
            f"--include={','.join(config.debootstrap_include)}" if config.debootstrap_include else "",
            config.base_tag, str(rootfs), config.apt_mirror,
        ]
        cmd = [c for c in cmd if c]
        env = dict(os.environ)
        if config.apt_proxy:
            env["http_proxy"] = config.apt_proxy
        log(f"running: {' '.join(cmd)}")
        logfile = config.log_path / f"debootstrap-{config.base_tag}.log"
        logfile.parent.mkdir(parents=True, exist_ok=True)
        with open(logfile, "w") as out:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        if proc.returncode != 0:
            tail = logfile.read_text().strip().splitlines()[-1:] or ["(no output)"]
            raise StackyardError(f"debootstrap {config.base_tag} failed: {tail[0]} (log: {logfile})")
        _slim_rootfs(rootfs)
        tar_path = Path(tmp) / "rootfs.tar"
        _reproducible_tar(rootfs, tar_path)
        log(f"importing {tar_path.stat().st_size // (1 << 20)} MiB as {config.base_ref}")
        try:
            engine.import_image(
                str(tar_path),
                config.base_ref,
                changes=[
                    'CMD ["bash"]',
                    "ENV LANG=C.UTF-8",
                    f"LABEL {BASE_LABEL}=debootstrap-{config.base_tag}",
                ],
            )
        except EngineError as exc:
            raise EngineError(f"importing {config.base_ref} failed: {exc}") from None
    image_id = image_present(engine, config.base_ref)
    if not image_id:
        raise EngineError(f"import of {config.base_ref} reported success but the image is missing")
    return image_id


def _slim_rootfs(rootfs: Path) -> None:
    """Drop apt lists, caches and logs debootstrap leaves behind."""
    for rel in ("var/lib/apt/lists", "var/cache/apt/archives"):
        d = rootfs / rel
        if d.is_dir():
            for child in d.iterdir():
                if child.is_file() and child.name != "lock":
                    child.unlink()
    for rel in ("var/log/bootstrap.log", "var/log/dpkg.log", "var/log/alternatives.log",
                "var/cache/apt/pkgcache.bin", "var/cache/apt/srcpkgcache.bin"):
        p = rootfs / rel
        if p.exists():
            p.unlink()
    for rel in ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale"):
        d = rootfs / rel
        if d.is_dir():
            shutil.rmtree(d)
            d.mkdir()
    # machine-id must be empty in an image
    mid = rootfs / "etc/machine-id"
    if mid.exists():
        mid.write_text("")


def _reproducible_tar(rootfs: Path, out: Path) -> None:
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))

    def norm(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime = epoch
        info.uname = info.gname = ""
        return info

    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            base = Path(dirpath)
            rel_dir = base.relative_to(rootfs)
            if str(rel_dir) != ".":
                tar.add(base, arcname=str(rel_dir), recursive=False, filter=norm)
            for fname in sorted(filenames):
                path = base / fname
                tar.add(path, arcname=str(path.relative_to(rootfs)), recursive=False, filter=norm)
            # symlinked directories are listed in dirnames but not walked
            for dname in list(dirnames):
                if (base / dname).is_symlink():
                    tar.add(base / dname, arcname=str((base / dname).relative_to(rootfs)),
                            recursive=False, filter=norm)
                    dirnames.remove(dname)
