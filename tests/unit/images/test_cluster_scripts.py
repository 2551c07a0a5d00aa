"""The clustering helper scripts of the images, on temporary directories.

galera-start, galera-recover, galera-health (mariadb-server) and check-haproxy
(keepalived) run here against fake mariadbd / mariadb programs; the real
servers are exercised by tests/e2e/test_galera_image.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from tests.unit.scriptload import IMAGES, load_script as load

GALERA_BIN = IMAGES / "mariadb-server" / "bin"
UUID = "74271215-ea66-11f1-9316-92c445adda6e"


recover_mod = load(GALERA_BIN / "galera-recover")
health_mod = load(GALERA_BIN / "galera-health")
check_haproxy = load(IMAGES / "keepalived" / "bin" / "check-haproxy")


def fake_program(path: Path, body: str) -> Path:
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)
    return path


def grastate(seqno: int, safe: int = 0, uuid: str = UUID) -> str:
    return ("# GALERA saved state\nversion: 2.1\nuuid:    %s\nseqno:   %d\n"
            "safe_to_bootstrap: %d\n" % (uuid, seqno, safe))


@pytest.fixture
def datadir(tmp_path: Path) -> Path:
    d = tmp_path / "mysql"
    (d / "mysql").mkdir(parents=True)
    return d


# ----------------------------------------------------------------- galera-recover
def test_parse_grastate():
    assert recover_mod.parse_grastate(grastate(42, 1)) == {"uuid": UUID, "seqno": 42, "safe_to_bootstrap": 1}
    # galera 3 files have no safe_to_bootstrap line
    assert recover_mod.parse_grastate("uuid: %s\nseqno: -1\n" % UUID)["safe_to_bootstrap"] == 0
    with pytest.raises(recover_mod.RecoverError, match="malformed"):
        recover_mod.parse_grastate("uuid: x\nseqno: many\n")


def test_parse_recovered_takes_the_last_position():
    log = ("2026-11-27 13:28:53 0 [Note] InnoDB: Starting\n"
           "2026-11-27 13:28:53 0 [Note] WSREP: Recovered position: %s:7\n"
           "2026-11-27 13:28:54 0 [Note] WSREP: Recovered position: %s:9\n" % (UUID, UUID))
    assert recover_mod.parse_recovered(log) == (UUID, 9)
    assert recover_mod.parse_recovered("nothing here") is None


def test_clean_stop_reads_grastate_only(datadir):
    (datadir / "grastate.dat").write_text(grastate(17, 1))

    def boom(*a, **k):
        raise AssertionError("must not run")
    assert recover_mod.recover(str(datadir), configure=boom, run_recover=boom) == \
        {"uuid": UUID, "seqno": 17, "safe_to_bootstrap": 1}


def test_unclean_stop_asks_innodb(datadir):
    (datadir / "grastate.dat").write_text(grastate(-1))
    calls = []
    state = recover_mod.recover(str(datadir), configure=lambda: calls.append("configure"),
                                run_recover=lambda d: calls.append(d) or (UUID, 23))
    assert state == {"uuid": UUID, "seqno": 23, "safe_to_bootstrap": 0}
    assert calls == ["configure", str(datadir)]


def test_no_grastate_asks_innodb(datadir):
    state = recover_mod.recover(str(datadir), configure=lambda: None, run_recover=lambda d: (UUID, 3))
    assert state["seqno"] == 3 and state["uuid"] == UUID


def test_no_data_directory(tmp_path):
    with pytest.raises(recover_mod.RecoverError, match="no MariaDB data directory"):
        recover_mod.recover(str(tmp_path / "nothing"), configure=lambda: None, run_recover=lambda d: None)


def test_wsrep_recover_runs_mariadbd_and_parses_its_log(tmp_path, datadir, monkeypatch):
    args_file = tmp_path / "args"
    fake = fake_program(tmp_path / "mariadbd", """
echo "$@" > %s
for a in "$@"; do case $a in --log-error=*) log=${a#--log-error=};; esac; done
echo "[Note] WSREP: Recovered position: %s:31" >> "$log"
""" % (args_file, UUID))
    monkeypatch.setattr(recover_mod, "MARIADBD", str(fake))
    assert recover_mod.wsrep_recover(str(datadir)) == (UUID, 31)
    args = args_file.read_text().split()
    assert args[0] == "--wsrep-recover" and "--datadir=%s" % datadir in args
    log = [a for a in args if a.startswith("--log-error=")][0].split("=", 1)[1]
    assert not os.path.exists(log), "the temp log is removed"


def test_wsrep_recover_without_position_says_why(tmp_path, datadir, monkeypatch):
    fake = fake_program(tmp_path / "mariadbd", "echo '[ERROR] InnoDB: Unable to lock ./ibdata1' >&2; exit 1\n")
    monkeypatch.setattr(recover_mod, "MARIADBD", str(fake))
    with pytest.raises(recover_mod.RecoverError, match="no recovered position.*Unable to lock"):
        recover_mod.wsrep_recover(str(datadir))


def test_main_prints_one_json_line(datadir, monkeypatch, capsys):
    (datadir / "grastate.dat").write_text(grastate(5))
    monkeypatch.setattr(recover_mod, "DATADIR", str(datadir))
    assert recover_mod.main() == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and json.loads(out) == {"uuid": UUID, "seqno": 5, "safe_to_bootstrap": 0}


def test_main_fails_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(recover_mod, "DATADIR", str(tmp_path / "none"))
    assert recover_mod.main() == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("galera-recover: no MariaDB data directory")


# ----------------------------------------------------------------- galera-health
def test_health_single_node_is_healthy():
    assert "wsrep off" in health_mod.judge(health_mod.parse("WSREP_ON\tOFF\n"))


def test_health_synced_member_is_healthy():
    values = health_mod.parse("WSREP_ON\tON\nWSREP_READY\tON\nWSREP_LOCAL_STATE_COMMENT\tSynced\n"
                              "WSREP_CLUSTER_SIZE\t3\nWSREP_CLUSTER_STATUS\tPrimary\n")
    line = health_mod.judge(values)
    assert "state=Synced" in line and "cluster_size=3" in line and "cluster_status=Primary" in line


@pytest.mark.parametrize("ready, state", [("OFF", "Synced"), ("ON", "Donor/Desynced"), ("ON", "Joining")])
def test_health_unready_member_is_unhealthy(ready, state):
    values = {"wsrep_on": "ON", "wsrep_ready": ready, "wsrep_local_state_comment": state}
    with pytest.raises(health_mod.Unhealthy, match="not ready"):
        health_mod.judge(values)


def test_health_main_with_a_fake_client(tmp_path, monkeypatch, capsys):
    args_file = tmp_path / "args"
    fake = fake_program(tmp_path / "mariadb", "echo \"$@\" > %s\nprintf 'WSREP_ON\\tON\\nWSREP_READY\\tON\\n"
                                              "WSREP_LOCAL_STATE_COMMENT\\tSynced\\n'\n" % args_file)
    monkeypatch.setattr(health_mod, "CLIENT", str(fake))
    assert health_mod.main() == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("galera-health: healthy")
    args = args_file.read_text()
    assert "--protocol=socket" in args and "--user=mysql" in args


def test_health_server_down_is_one_line(tmp_path, monkeypatch, capsys):
    fake = fake_program(tmp_path / "mariadb", "echo 'ERROR 2002 (HY000): Can'\"'\"'t connect to local server "
                                              "through socket' >&2\nexit 1\n")
    monkeypatch.setattr(health_mod, "CLIENT", str(fake))
    assert health_mod.main() == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("galera-health: server does not answer: ERROR 2002")


# ----------------------------------------------------------------- galera-start
def run_start(tmp_path: Path, datadir: Path, new_cluster: str | None, *args: str) -> list[str]:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    fake_program(bindir / "mariadbd", "printf '%s\\n' \"$@\"\n")
    env = {"PATH": "%s:/usr/bin:/bin" % bindir, "GALERA_DATADIR": str(datadir)}
    if new_cluster is not None:
        env["STACKYARD_GALERA_NEW_CLUSTER"] = new_cluster
    r = subprocess.run([str(GALERA_BIN / "galera-start"), *args], env=env, capture_output=True,
                       text=True, check=True)
    return r.stdout.split()


def test_start_new_cluster_forces_safe_to_bootstrap(tmp_path, datadir):
    (datadir / "grastate.dat").write_text(grastate(12, 0))
    assert run_start(tmp_path, datadir, "1", "--verbose") == ["--wsrep-new-cluster", "--verbose"]
    assert recover_mod.parse_grastate((datadir / "grastate.dat").read_text()) == \
        {"uuid": UUID, "seqno": 12, "safe_to_bootstrap": 1}


def test_start_new_cluster_without_grastate(tmp_path, datadir):
    assert run_start(tmp_path, datadir, "1") == ["--wsrep-new-cluster"]
    assert not (datadir / "grastate.dat").exists()


@pytest.mark.parametrize("flag", [None, "0", ""])
def test_start_joins_otherwise(tmp_path, datadir, flag):
    (datadir / "grastate.dat").write_text(grastate(12, 0))
    assert run_start(tmp_path, datadir, flag, "--a", "b") == ["--a", "b"]
    assert "safe_to_bootstrap: 0" in (datadir / "grastate.dat").read_text()


# ----------------------------------------------------------------- check-haproxy
def serve_once(path: Path, answer: bytes) -> threading.Thread:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(1)

    def run():
        conn, _ = srv.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(answer)
        srv.close()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_check_haproxy_alive(tmp_path):
    sock = tmp_path / "admin.sock"
    t = serve_once(sock, b"Name: HAProxy\nVersion: 3.0.11\nPid: 7\n")
    assert check_haproxy.main(["check-haproxy", str(sock)]) == 0
    t.join(5)


def test_check_haproxy_wrong_answer(tmp_path, capsys):
    sock = tmp_path / "admin.sock"
    serve_once(sock, b"Unknown command\n")
    assert check_haproxy.main(["check-haproxy", str(sock)]) == 1
    assert "unexpected answer" in capsys.readouterr().err


def test_check_haproxy_no_socket(tmp_path, capsys):
    assert check_haproxy.main(["check-haproxy", str(tmp_path / "missing.sock")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.sock" in err
