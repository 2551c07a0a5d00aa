import re
from pathlib import Path

import pytest

from stackyard.errors import ConfigError
from stackyard.verify import runner
from stackyard.verify.selection import FULL_REGEX, SMOKE_REGEX, excluded_by, exclude_file_text, select


def test_smoke_full_and_regex() -> None:
    assert select("smoke").args == ("--smoke",)
    assert select("full").args == ("--regex", FULL_REGEX)
    assert select(r"tempest\.scenario\.test_network_basic_ops").args == (
        "--regex", r"tempest\.scenario\.test_network_basic_ops")
    with pytest.raises(ConfigError, match="neither smoke, full nor a regular expression"):
        select("tempest.api(")


IDS = ["tempest.api.compute.servers.test_a.T.test_list[id-1,smoke]",
       "tempest.api.compute.servers.test_a.T.test_slow[id-2,slow]",
       "tempest.api.image.test_i.I.test_plain[id-3]",
       "tempest.scenario.test_stamp_pattern.TestStampPattern.test_stamp_pattern[compute,id-4,image,slow,volume]",
       "tempest.scenario.test_stamp_pattern.TestStampPattern.test_stamp_pattern_two[id-5]"]


def picked(sel) -> list[str]:
    """What stestr runs for a ``--regex`` selection: the ids its regex finds (``re.search``)."""
    flag, regex = sel.args
    assert flag == "--regex"
    return [i for i in IDS if re.search(regex, i)]


def test_several_selections_run_as_one_union() -> None:
    sel = select(["smoke", r"tempest\.scenario\.test_stamp_pattern\.TestStampPattern\.test_stamp_pattern\b"])
    assert sel.name.startswith("smoke ")
    assert picked(sel) == [IDS[0], IDS[3]]
    # full in a union keeps its own meaning (nothing tagged slow); the other part adds its own matches
    assert picked(select(["full", "test_plain"])) == [IDS[0], IDS[2], IDS[4]]
    # the smoke part is what `tempest run --smoke` takes alone
    assert [i for i in IDS if re.search(SMOKE_REGEX, i)] == [IDS[0]]
    with pytest.raises(ConfigError, match="'tempest.api\\(' is neither"):
        select(["smoke", "tempest.api("])
    with pytest.raises(ConfigError, match="no test selection"):
        select([])


def test_exclude_list_needs_a_reason_per_line(tmp_path: Path) -> None:
    good = tmp_path / "known.txt"
    good.write_text("# known issues\n\ntempest\\.api\\.compute\\.test_a  # bug 123: slow under TCG\n"
                    "tempest.scenario.test_b # needs a second compute host\n")
    sel = select("smoke", good)
    assert [(e.regex, e.reason, e.line) for e in sel.exclusions] == [
        (r"tempest\.api\.compute\.test_a", "bug 123: slow under TCG", 3),
        ("tempest.scenario.test_b", "needs a second compute host", 4)]
    assert exclude_file_text(sel.exclusions) == "tempest\\.api\\.compute\\.test_a\ntempest.scenario.test_b\n"
    assert excluded_by("tempest.scenario.test_b.Test.test_x[id-1]", sel.exclusions).line == 4
    assert excluded_by("tempest.api.image.test", sel.exclusions) is None

    bad = tmp_path / "bad.txt"
    bad.write_text("tempest.ok  # fine\ntempest.api.no_reason\n")
    with pytest.raises(ConfigError, match=r"bad.txt:2: 'tempest.api.no_reason' has no reason"):
        select("smoke", bad)
    bad.write_text("tempest.api(  # broken\n")
    with pytest.raises(ConfigError, match=r"bad.txt:1: .* is not a regular expression"):
        select("smoke", bad)
    with pytest.raises(ConfigError, match="cannot read the exclude list"):
        select("smoke", tmp_path / "missing.txt")


def test_tempest_command_line(tmp_path: Path) -> None:
    sel = select("smoke")
    cmd = runner.tempest_command(Path("/v/bin"), tmp_path, sel, 3)
    assert cmd == ["/v/bin/tempest", "run", "--config-file", str(tmp_path / "tempest.conf"), "--smoke",
                   "--concurrency", "3"]
    listed = tmp_path / "l.txt"
    listed.write_text("tempest.x  # why\n")
    cmd = runner.tempest_command(Path("/v/bin"), tmp_path, select("full", listed), 2, list_only=True)
    assert cmd[-3:] == ["--exclude-list", str(tmp_path / "exclude-list.txt"), "--list-tests"]


def test_run_dirs_are_private_and_unique(tmp_path: Path) -> None:
    a, b = runner.new_run_dir(tmp_path), runner.new_run_dir(tmp_path)
    assert a != b and a.parent == b.parent == tmp_path / "runs"
    assert a.stat().st_mode & 0o777 == 0o700
    runner.write_private(a / "tempest.conf", "secret")
    assert (a / "tempest.conf").stat().st_mode & 0o777 == 0o600


def test_a_missing_host_ping_is_named_before_tempest_runs() -> None:
    with pytest.raises(runner.VerifyError, match=r"ping \(apt-get install iputils-ping\)"):
        runner.check_host_programs(which=lambda prog: None)
    runner.check_host_programs(which=lambda prog: f"/usr/bin/{prog}")  # present: no error
