"""Finding and fetching Debian packages with the host's own apt (thin side-effect layer)."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from stackyard.guest.errors import GuestPackageError, GuestToolError


@dataclass(frozen=True)
class Package:
    """One resolved binary package: what ``apt-cache show`` says about the candidate."""

    name: str
    version: str
    sha256: str
    filename: str  # pool path; its basename is the .deb name
    depends: str = ""
    pre_depends: str = ""

    @property
    def deb_name(self) -> str:
        return self.filename.rsplit("/", 1)[-1]


def parse_show(text: str) -> dict[str, str]:
    """The fields of the first stanza of ``apt-cache show`` output."""
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        if line[0] in " \t" and key:
            fields[key] += "\n" + line.strip()
            continue
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def kernel_dependency(meta: Package) -> str | None:
    """The real ``linux-image-<abi>-<flavour>`` package a meta package like linux-image-cloud-amd64 pulls in."""
    for alt in re.split(r"[,|]", meta.depends):
        name = alt.strip().split(" ", 1)[0]
        if re.fullmatch(r"linux-image-\d[\w.+-]*", name) and name != meta.name:
            return name
    return None


def _run(cmd: list[str], cwd: Path | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    if shutil.which(cmd[0]) is None:
        raise GuestToolError(f"{cmd[0]} not found: the guest image is built from Debian packages with apt and dpkg-deb")
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


#: what decides apt's candidates: the package lists, the sources, pinning and the installed versions
APT_STATE_GLOBS = ("/var/lib/apt/lists/*Packages*", "/etc/apt/sources.list", "/etc/apt/sources.list.d/*",
                   "/etc/apt/preferences", "/etc/apt/preferences.d/*", "/var/lib/dpkg/status")


def apt_state_fingerprint(globs: tuple[str, ...] = APT_STATE_GLOBS) -> str:
    """Path, size and mtime of every file apt's candidate selection reads: when none of
    them changed, ``apt-cache show`` answers what it answered last time."""
    h = hashlib.sha256()
    for pattern in globs:
        for path in sorted(glob.glob(pattern)):
            try:
                st = os.stat(path)
            except OSError:
                continue
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


class Apt:
    """The host's apt: resolve candidates, download .debs, unpack them.

    ``memo_file``: resolutions are kept there with the fingerprint of apt's state
    (:func:`apt_state_fingerprint`) and reused while it is unchanged. Each
    ``apt-cache show`` loads apt's whole cache (most of a second), and a guest
    with its tools' library closure resolves dozens of packages.
    """

    def __init__(self, update: bool = True, memo_file: Path | None = None,
                 fingerprint: Callable[[], str] = apt_state_fingerprint) -> None:
        self._may_update = update
        self._updated = False
        self._memo_file = memo_file
        self._fingerprint = fingerprint
        self._memo: dict[str, dict[str, str]] = {}
        self._memo_changed = False
        if memo_file is not None:
            try:
                doc = json.loads(memo_file.read_text())
                if doc.get("fingerprint") == fingerprint():
                    self._memo = dict(doc.get("packages", {}))
            except (OSError, ValueError, AttributeError):
                pass  # no memo, or an unreadable one: resolve afresh

    def _show(self, name: str) -> subprocess.CompletedProcess:
        return _run(["apt-cache", "show", "--no-all-versions", name])

    def resolve(self, name: str) -> Package:
        known = self._memo.get(name)
        if known is not None:
            return Package(**known)
        res = self._show(name)
        if (res.returncode != 0 or not res.stdout.strip()) and self._may_update and not self._updated:
            self.update()
            res = self._show(name)
        if res.returncode != 0 or not res.stdout.strip():
            raise GuestPackageError(
                f"apt package {name} not found (apt-get update{' ran' if self._updated else ' skipped'};"
                " is a Debian mirror configured in /etc/apt/sources.list?)")
        f = parse_show(res.stdout)
        pkg = Package(f.get("Package", name), f.get("Version", ""), f.get("SHA256", ""),
                      f.get("Filename", ""), f.get("Depends", ""), f.get("Pre-Depends", ""))
        self._memo[name] = asdict(pkg)
        self._memo_changed = True
        return pkg

    def save_memo(self) -> None:
        """Write the resolutions made so far (after an ``apt-get update``, under the new fingerprint)."""
        if self._memo_file is None or not self._memo_changed:
            return
        tmp = self._memo_file.with_name(self._memo_file.name + ".tmp")
        tmp.write_text(json.dumps({"fingerprint": self._fingerprint(), "packages": self._memo},
                                  indent=1, sort_keys=True) + "\n")
        tmp.replace(self._memo_file)
        self._memo_changed = False

    def update(self) -> None:
        res = _run(["apt-get", "update"], timeout=900)
        self._updated = True
        self._memo.clear()  # new lists: what was resolved before may have changed
        self._memo_changed = True
        if res.returncode != 0:
            last = (res.stderr.strip().splitlines() or ["apt-get update failed"])[-1]
            raise GuestPackageError(f"apt-get update failed: {last}")

    def download(self, pkg: Package, dest: Path) -> Path:
        """``dest/<deb>``; reused when present with the right SHA256."""

        dest.mkdir(parents=True, exist_ok=True)
        target = dest / pkg.deb_name
        if target.exists() and (not pkg.sha256 or hashlib.sha256(target.read_bytes()).hexdigest() == pkg.sha256):
            return target
        res = _run(["apt-get", "download", "-o", "APT::Sandbox::User=root", f"{pkg.name}={pkg.version}"], cwd=dest)
        if res.returncode != 0:
            last = (res.stderr.strip().splitlines() or ["apt-get download failed"])[-1]
            raise GuestPackageError(f"apt-get download {pkg.name}={pkg.version} failed: {last}")
        # apt-get names the file after the package, version (':' escaped as %3a) and architecture
        if not target.exists():
            found = sorted(dest.glob(f"{pkg.name}_*.deb"), key=lambda p: p.stat().st_mtime)
            if not found:
                raise GuestPackageError(f"apt-get download {pkg.name} produced no .deb in {dest}")
            found[-1].rename(target)
        if pkg.sha256 and hashlib.sha256(target.read_bytes()).hexdigest() != pkg.sha256:
            target.unlink()
            raise GuestPackageError(f"downloaded {pkg.deb_name} does not match the SHA256 apt announced")
        return target

    @staticmethod
    def extract(deb: Path, dest: Path) -> Path:
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        res = _run(["dpkg-deb", "-x", str(deb), str(dest)])
        if res.returncode != 0:
            raise GuestToolError(f"dpkg-deb -x {deb.name} failed: {res.stderr.strip()[-300:]}")
        return dest
