"""images/ceph-base/bin/stackyard-ceph-admin with a fake librados cluster."""

from __future__ import annotations

import json

import pytest

from tests.unit.scriptload import IMAGES, load_script

SCRIPT = IMAGES / "ceph-base" / "bin" / "stackyard-ceph-admin"
admin = load_script(SCRIPT)


class FakeIoctx:
    def __init__(self, cluster, pool):
        self.cluster, self.pool = cluster, pool

    def __enter__(self):
        if self.pool not in self.cluster.pools:
            raise OSError(2, f"pool {self.pool} does not exist")
        return self

    def __exit__(self, *exc):
        return False


class FakeCluster:
    def __init__(self, fail: set[str] = frozenset()):
        self.fail = fail
        self.pools = {"images"}
        self.calls = []

    def mon_command(self, cmd, inbuf, timeout=0):
        data = json.loads(cmd)
        self.calls.append((data, inbuf, timeout))
        if data["prefix"] in self.fail:
            return -22, b"", f"{data['prefix']}: invalid"
        return 0, b'{"ok": true}', ""

    def open_ioctx(self, pool):
        return FakeIoctx(self, pool)


class FakeRBD:
    initialised = []

    class RBD:
        def pool_init(self, ioctx, force):
            FakeRBD.initialised.append((ioctx.pool, force))


def test_parse_commands_checks_each_item():
    items = admin.parse_commands('[{"mon": {"prefix": "status"}}, {"rbd_pool_init": "images"}]')
    assert len(items) == 2
    for bad, where in (("", "is not set"), ("{}", "must be a JSON list"),
                       ('[{"mon": {}}]', r"\[0\]"), ('[{"mon": {"prefix": "x"}}, {"x": 1}]', r"\[1\]"),
                       ('[{"mon": {"prefix": "x"}, "inbuf": 3}]', r"\[0\]")):
        with pytest.raises(ValueError, match=where):
            admin.parse_commands(bad)


def test_run_passes_inbuf_and_initialises_pools():
    cluster = FakeCluster()
    FakeRBD.initialised = []
    code, results = admin.run(cluster, FakeRBD, [{"mon": {"prefix": "auth import"}, "inbuf": "[client.x]\n"},
                                                 {"rbd_pool_init": "images"}], 7)
    assert code == 0 and [r["rc"] for r in results] == [0, 0]
    assert cluster.calls == [({"prefix": "auth import"}, b"[client.x]\n", 7)]
    assert results[0]["out"] == '{"ok": true}'
    assert FakeRBD.initialised == [("images", False)]


def test_run_stops_at_the_first_failure():
    cluster = FakeCluster(fail={"osd pool create"})
    code, results = admin.run(cluster, FakeRBD, [{"mon": {"prefix": "osd pool create"}},
                                                 {"mon": {"prefix": "status"}}], 5)
    assert code == 1 and len(results) == 1
    assert results[0] == {"rc": -22, "out": "", "err": "osd pool create: invalid"}
    code, results = admin.run(FakeCluster(), FakeRBD, [{"rbd_pool_init": "missing"}], 5)
    assert code == 1 and results[0]["rc"] == -2 and "rbd pool init missing" in results[0]["err"]


def test_main_refuses_bad_input_before_touching_librados(monkeypatch, capsys):
    monkeypatch.setenv(admin.ENV, "[1]")
    assert admin.main([]) == 2
    assert "STACKYARD_CEPH_COMMANDS[0]" in capsys.readouterr().err
