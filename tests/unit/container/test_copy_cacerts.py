"""kolla_copy_cacerts on temporary directories."""

import importlib.util
import os
import pathlib
import stat

SCRIPT = pathlib.Path(__file__).resolve().parents[3] / "stackyard" / "container" / "copy_cacerts.py"


def _load():
    spec = importlib.util.spec_from_file_location("copy_cacerts_under_test", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


cc = _load()


def _fake_update(tmp_path, rc=0):
    marker = tmp_path / "update-ran"
    exe = tmp_path / "update-ca-certificates"
    exe.write_text("#!/bin/sh\necho \"$PATH\" > %s\nexit %d\n" % (marker, rc))
    exe.chmod(0o755)
    return (str(exe),), marker


def test_copies_crt_files_and_runs_update(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "root-ca.crt").write_text("CERT")
    (src / "notes.txt").write_text("ignored")
    os.chmod(src / "root-ca.crt", 0o600)
    dest = tmp_path / "dest"
    update, marker = _fake_update(tmp_path)
    assert cc.copy_cacerts(str(src), str(dest), update) == 0
    assert sorted(os.listdir(dest)) == ["root-ca.crt"]
    st = os.stat(dest / "root-ca.crt")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o644)
    assert (dest / "root-ca.crt").read_text() == "CERT"
    assert marker.exists()
    assert "/usr/sbin" in marker.read_text()  # a fixed PATH, not the caller's


def test_nothing_to_do_is_silent(tmp_path, capsys):
    update, marker = _fake_update(tmp_path)
    assert cc.copy_cacerts(str(tmp_path / "absent"), str(tmp_path / "dest"), update) == 0
    (tmp_path / "empty").mkdir()
    assert cc.copy_cacerts(str(tmp_path / "empty"), str(tmp_path / "dest"), update) == 0
    assert not marker.exists()
    assert not (tmp_path / "dest").exists()
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_update_failure_is_reported(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.crt").write_text("CERT")
    update, _ = _fake_update(tmp_path, rc=3)
    assert cc.copy_cacerts(str(src), str(tmp_path / "dest"), update) == 1
    assert cc.copy_cacerts(str(src), str(tmp_path / "dest"), ("/nonexistent/update",)) == 1


def test_constants():
    assert cc.CA_SOURCE_DIR == "/var/lib/kolla/config_files/ca-certificates"
    assert cc.CA_DEST_DIR == "/usr/local/share/ca-certificates"
