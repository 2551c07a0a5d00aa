"""DT_NEEDED and PT_INTERP, read from real binaries of this machine and checked against ldd."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stackyard.guest import elf
from stackyard.guest.apt import Package
from stackyard.guest.errors import GuestPackageError
from stackyard.guest.plan import library_closure


def ldd_sonames(path: str) -> set[str]:
    out = subprocess.run(["ldd", path], capture_output=True, text=True, check=True).stdout
    return {line.split()[0].rsplit("/", 1)[-1] for line in out.splitlines() if "vdso" not in line}


@pytest.mark.parametrize("binary", ["/bin/ls", "/bin/mount", os.path.realpath(sys.executable)])
def test_needed_and_interpreter_match_ldd(binary: str) -> None:
    path = shutil.which(binary) or binary
    if not Path(path).exists():
        pytest.fail(f"{binary} is expected on a Debian host")
    data = Path(path).read_bytes()
    interp = elf.interpreter(data)
    assert interp is not None and interp.endswith("ld-linux-x86-64.so.2")
    direct = set(elf.needed(data))
    assert "libc.so.6" in direct
    # ldd lists the whole closure: the direct ones are part of it
    assert direct <= ldd_sonames(path)


def test_shared_library_has_needed_but_no_interpreter_of_its_own() -> None:
    libc = next(Path(d) / "libc.so.6" for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu")
                if (Path(d) / "libc.so.6").exists())
    assert "ld-linux-x86-64.so.2" in elf.needed(libc.read_bytes())


def test_not_elf_is_an_error_naming_it() -> None:
    with pytest.raises(GuestPackageError, match="sudo is not an ELF file"):
        elf.needed(b"#!/bin/sh\n", "sudo")


def test_library_closure_follows_library_dependencies_only() -> None:
    known = {
        "util-linux": Package("util-linux", "2", "s", "p/u.deb", depends="util-linux-extra",
                              pre_depends="libblkid1 (>= 2.37), libc6 (>= 2.34), libmount1"),
        "libblkid1": Package("libblkid1", "2", "s", "p/b.deb", depends="libc6 (>= 2.33)"),
        "libmount1": Package("libmount1", "2", "s", "p/m.deb", depends="libblkid1, libselinux1 | libfoo"),
        "libselinux1": Package("libselinux1", "3", "s", "p/s.deb", depends="libpcre2-8-0"),
        "libpcre2-8-0": Package("libpcre2-8-0", "10", "s", "p/p.deb"),
        "libc6": Package("libc6", "2.36", "s", "p/c.deb", depends="libgcc-s1"),
        "libgcc-s1": Package("libgcc-s1", "12", "s", "p/g.deb", depends="gcc-12-base"),
    }

    def resolve(name: str) -> Package:
        if name not in known:
            raise GuestPackageError(f"apt package {name} not found")
        return known[name]

    names = [p.name for p in library_closure([known["util-linux"]], resolve)]
    assert names == ["libblkid1", "libc6", "libgcc-s1", "libmount1", "libpcre2-8-0", "libselinux1"]
