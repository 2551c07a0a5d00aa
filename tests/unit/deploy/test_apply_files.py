"""Host-side file sync and job state (no engine: a temp dir stands in for the host)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from stackyard.agent.hostapply import JobState, file_differs, sync_files
from stackyard.agent.model import ConfigFile, HostPlan
from stackyard.errors import DeployError

UID = 42425
GID = 42425


def make_plan(root: Path, mode: int = 0o600, content: str = "[token]\nexpiration = 1\n") -> HostPlan:
    return HostPlan(host="localhost", config_root=str(root), files=[
        ConfigFile(path=f"{root}/keystone/keystone.conf", content=content, mode=mode,
                   uid=UID, gid=GID, secret=True),
        ConfigFile(path=f"{root}/keystone/config.json", content='{"command": "true"}\n', mode=0o600),
        ConfigFile(path=f"{root}/cron/logrotate.conf", content="daily\n", mode=0o644),
    ])


def test_sync_writes_files_with_mode_and_owner(tmp_path):
    plan = make_plan(tmp_path)
    changed = sync_files(plan)
    assert changed == [f.path for f in plan.files]
    for f in plan.files:
        st = os.stat(f.path)
        assert stat.S_IMODE(st.st_mode) == f.mode, f.path
        assert (st.st_uid, st.st_gid) == (f.uid, f.gid), f.path
        assert Path(f.path).read_text() == f.content
    # directories are created readable so containers can mount them
    assert stat.S_IMODE(os.stat(tmp_path / "keystone").st_mode) == 0o755
    # no temp files left behind by the atomic write
    assert sorted(p.name for p in (tmp_path / "keystone").iterdir()) == ["config.json", "keystone.conf"]


def test_second_sync_changes_nothing(tmp_path):
    plan = make_plan(tmp_path)
    sync_files(plan)
    mtimes = {f.path: os.stat(f.path).st_mtime_ns for f in plan.files}
    assert sync_files(plan) == []
    assert not any(file_differs(f) for f in plan.files)
    assert {f.path: os.stat(f.path).st_mtime_ns for f in plan.files} == mtimes


def test_mode_change_alone_is_detected_and_fixed(tmp_path):
    sync_files(make_plan(tmp_path, mode=0o600))
    plan = make_plan(tmp_path, mode=0o640)
    conf = plan.files[0]
    assert file_differs(conf)
    assert sync_files(plan) == [conf.path]
    assert stat.S_IMODE(os.stat(conf.path).st_mode) == 0o640
    assert sync_files(plan) == []


def test_tampered_mode_owner_or_content_is_detected(tmp_path):
    plan = make_plan(tmp_path)
    sync_files(plan)
    conf = plan.files[0]
    os.chmod(conf.path, 0o644)
    assert sync_files(plan, dry_run=True) == [conf.path]
    assert stat.S_IMODE(os.stat(conf.path).st_mode) == 0o644  # dry run wrote nothing
    assert sync_files(plan) == [conf.path]
    os.chown(conf.path, 0, 0)
    assert sync_files(plan) == [conf.path]
    assert os.stat(conf.path).st_uid == UID
    Path(conf.path).write_text("edited by hand\n")
    os.chown(conf.path, UID, GID)
    os.chmod(conf.path, conf.mode)
    assert sync_files(plan) == [conf.path]
    assert Path(conf.path).read_text() == conf.content


def test_content_change_is_detected(tmp_path):
    sync_files(make_plan(tmp_path))
    plan = make_plan(tmp_path, content="[token]\nexpiration = 2\n")
    assert sync_files(plan) == [plan.files[0].path]


def test_dry_run_on_empty_host_writes_nothing(tmp_path):
    plan = make_plan(tmp_path)
    assert len(sync_files(plan, dry_run=True)) == 3
    assert not (tmp_path / "keystone").exists()


def test_job_state_round_trip(tmp_path):
    state = JobState(str(tmp_path))
    assert state.get("bootstrap_keystone") is None
    state.record("bootstrap_keystone", "h1")
    state.record("bootstrap_mariadb", "m1")
    assert state.get("bootstrap_keystone") == "h1"

    again = JobState(str(tmp_path))
    assert again.get("bootstrap_keystone") == "h1"
    assert again.get("bootstrap_mariadb") == "m1"
    assert again.get("bootstrap_keystone") != "h2"  # a changed spec reruns the job
    assert again.get("keystone_bootstrap_admin") is None
    path = tmp_path / ".stackyard" / "jobs.json"
    assert json.loads(path.read_text()) == {"bootstrap_keystone": "h1", "bootstrap_mariadb": "m1"}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # a changed spec replaces the recorded hash
    again.record("bootstrap_keystone", "h2")
    assert JobState(str(tmp_path)).get("bootstrap_keystone") == "h2"


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_corrupt_job_state_is_an_error_naming_the_file(tmp_path, text):
    # never an empty state: the file also guards against forming a second Galera cluster
    path = tmp_path / ".stackyard" / "jobs.json"
    path.parent.mkdir()
    path.write_text(text)
    with pytest.raises(DeployError) as exc:
        JobState(str(tmp_path))
    assert str(path) in str(exc.value)
    assert path.read_text() == text  # left as found, for the operator to repair
