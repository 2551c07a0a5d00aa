"""Source builds: releases, series, pins and the operator's overrides, all checked before building."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackyard.errors import ConfigError
from stackyard.imagebuild import sources


def test_series_follow_the_release() -> None:
    assert sources.series_major("keystone", "2025.1") == 27
    assert sources.series_major("keystone", "2026.1") == 29
    assert sources.series_major("nova", "2026.1") == 33
    assert sources.series_major("neutron", "2026.1") == 28
    assert sources.series_major("glance", "2026.1") == 32
    assert sources.series_major("openstack-placement", "2026.1") == 15
    assert sources.series_major("nova", "2026.2") == 34


def test_tested_release_installs_its_pins_and_horizon_from_the_constraints() -> None:
    got = sources.resolve("2026.1", {})
    assert got["keystone"].requirement() == "keystone==29.1.0"
    assert got["nova"].requirement() == "nova==33.0.2"
    assert got["horizon"].requirement() == "horizon==25.7.3"
    for project, src in got.items():
        if src.version and project != "horizon":
            assert src.version.startswith(f"{sources.series_major(project, '2026.1')}.")


def test_a_release_with_only_a_constraints_file_takes_the_newest_of_each_series(tmp_path, monkeypatch) -> None:
    (tmp_path / "upper-constraints-2026.2.txt").write_text("horizon===26.0.0\noslo.config===10.0.0\n")
    monkeypatch.setattr(sources, "RELEASES_DIR", tmp_path)
    got = sources.resolve("2026.2", {})
    assert got["nova"].requirement() == "nova>=34,<35"
    assert got["horizon"].requirement() == "horizon==26.0.0"


@pytest.mark.parametrize("release, overrides, message", [
    ("2031.1", {}, "no upper constraints for '2031.1'.*2025.1, 2026.1"),
    ("2026", {}, "not a release name"),
    ("2026.1", {"keystone": {"version": "30.0.0"}}, r"sources.keystone.version: '30.0.0' is outside the 2026.1 "
                                                     r"series \(keystone 29.x\)"),
    ("2026.1", {"horizon": {"version": "26.0.0"}}, "differs from 2026.1's upper constraints"),
    ("2026.1", {"nova": {"type": "local", "location": "/no/such/nova"}}, "sources.nova.location: '/no/such/nova'"),
    ("2026.1", {"nova": {"type": "local"}}, "sources.nova.location: required"),
    ("2026.1", {"nova": {"type": "git"}}, "sources.nova.type: 'git'"),
    ("2026.1", {"nova": {"branch": "x"}}, "sources.nova: unknown key 'branch'"),
    ("2026.1", {"swift": {"version": "1"}}, "sources: unknown project 'swift'"),
])
def test_bad_input_is_one_line_naming_the_option(release, overrides, message) -> None:
    with pytest.raises(ConfigError, match=message) as exc:
        sources.resolve(release, overrides)
    assert "\n" not in str(exc.value)


def test_an_operator_version_in_the_series_wins() -> None:
    assert sources.resolve("2026.1", {"keystone": {"version": "29.0.2"}})["keystone"].requirement() == \
        "keystone==29.0.2"


def test_a_local_checkout_is_installed_from_its_path_and_its_content_decides(tmp_path: Path) -> None:
    checkout = tmp_path / "nova"
    (checkout / ".git").mkdir(parents=True)
    (checkout / "setup.py").write_text("print('v1')\n")
    (checkout / ".git" / "HEAD").write_text("ref: a\n")
    first = sources.resolve("2026.1", {"nova": {"type": "local", "location": str(checkout)}})["nova"]
    assert first.requirement() == str(checkout) and first.kind == "local"
    (checkout / ".git" / "HEAD").write_text("ref: b\n")  # git metadata does not count
    assert sources.resolve("2026.1", {"nova": {"type": "local", "location": str(checkout)}})["nova"] == first
    (checkout / "setup.py").write_text("print('v2')\n")
    second = sources.resolve("2026.1", {"nova": {"type": "local", "location": str(checkout)}})["nova"]
    assert second.digest != first.digest and second.describe() != first.describe()
