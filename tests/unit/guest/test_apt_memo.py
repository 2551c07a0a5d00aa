"""apt resolutions are reused while apt's state is unchanged, and only then."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stackyard.guest import apt as apt_mod
from stackyard.guest.apt import Apt, apt_state_fingerprint

SHOW = "Package: libfoo1\nVersion: 1.2-3\nSHA256: abc\nFilename: pool/main/f/foo/libfoo1_1.2-3_amd64.deb\nDepends: libc6\n\n"


class CountingApt(Apt):
    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.shown: list[str] = []

    def _show(self, name: str) -> subprocess.CompletedProcess:
        self.shown.append(name)
        return subprocess.CompletedProcess([], 0, SHOW, "")


def test_second_resolve_reads_the_memo_while_apt_state_is_unchanged(tmp_path: Path) -> None:
    memo = tmp_path / "apt-resolved.json"
    first = CountingApt(memo_file=memo, fingerprint=lambda: "state-1")
    pkg = first.resolve("libfoo1")
    first.save_memo()
    assert first.shown == ["libfoo1"] and pkg.version == "1.2-3" and pkg.depends == "libc6"

    again = CountingApt(memo_file=memo, fingerprint=lambda: "state-1")
    assert again.resolve("libfoo1") == pkg and again.shown == []

    changed = CountingApt(memo_file=memo, fingerprint=lambda: "state-2")  # apt-get update ran since
    assert changed.resolve("libfoo1") == pkg and changed.shown == ["libfoo1"]


def test_a_corrupt_memo_is_ignored(tmp_path: Path) -> None:
    memo = tmp_path / "apt-resolved.json"
    memo.write_text("{not json")
    a = CountingApt(memo_file=memo, fingerprint=lambda: "x")
    a.resolve("libfoo1")
    assert a.shown == ["libfoo1"]


def test_fingerprint_follows_the_package_lists(tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "deb.debian.org_dists_trixie_main_binary-amd64_Packages").write_text("a")
    globs = (str(lists / "*Packages*"),)
    before = apt_state_fingerprint(globs)
    assert apt_state_fingerprint(globs) == before
    (lists / "deb.debian.org_dists_trixie_main_binary-amd64_Packages").write_text("ab")
    assert apt_state_fingerprint(globs) != before


def test_update_forgets_the_memo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apt_mod, "_run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 0, "", ""))
    a = CountingApt(memo_file=tmp_path / "m.json", fingerprint=lambda: "x")
    a.resolve("libfoo1")
    a.update()
    a.resolve("libfoo1")
    assert a.shown == ["libfoo1", "libfoo1"]
