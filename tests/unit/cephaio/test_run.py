"""The ceph-aio executor against a fake engine whose monitor answers like Ceph."""

from __future__ import annotations

import json
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from stackyard.agent.engine import ContainerState, CreateRequest, ImageInfo
from stackyard.cephaio import plan as P
from stackyard.cephaio import run as R
from stackyard.cephaio import state as S
from stackyard.deploy.merge import parse_ini
from stackyard.errors import ConfigError, DeployError, ImageNotFoundError

READY = {
    "health": {"status": "HEALTH_OK", "checks": {}}, "quorum_names": ["a"], "mgrmap": {"available": True},
    "osdmap": {"num_osds": 1, "num_up_osds": 1, "num_in_osds": 1},
}


class FakeEngine:
    """Containers, volumes and images in dicts; ``exec`` of stackyard-ceph-admin runs a tiny Ceph."""

    def __init__(self, images: list[str]):
        self.refs = set(images)
        self.requests: dict[str, CreateRequest] = {}
        self.state: dict[str, str] = {}
        self.volume_labels: dict[str, dict[str, str]] = {}
        self.calls: list[str] = []
        self.auth: dict[str, dict[str, Any]] = {}
        self.pools: dict[str, dict[str, Any]] = {".mgr": {"mgr": {}}}
        #: a container that stops right after it starts (role -> exit code)
        self.crash: dict[str, int] = {}

    # images, volumes
    def image(self, ref: str) -> ImageInfo | None:
        return ImageInfo(id="sha256:" + ref) if ref in self.refs else None

    def volumes(self, labels: list[str] | None = None) -> list[str]:
        return sorted(v for v, lab in self.volume_labels.items() if _match(lab, labels))

    def volume_exists(self, name: str) -> bool:
        return name in self.volume_labels

    def create_volume(self, name: str, labels: dict[str, str]) -> None:
        self.calls.append(f"create volume {name}")
        self.volume_labels[name] = dict(labels)

    def remove_volume(self, name: str) -> bool:
        self.calls.append(f"remove volume {name}")
        return self.volume_labels.pop(name, None) is not None

    # containers
    def container(self, name: str) -> ContainerState | None:
        if name not in self.requests:
            return None
        req = self.requests[name]
        return ContainerState(name=name, id=name, status=self.state[name], labels=dict(req.labels),
                              exit_code=1 if self.state[name] == "exited" else 0)

    def containers(self, labels: list[str] | None = None, all: bool = True) -> list[ContainerState]:
        return [c for n in sorted(self.requests) if (c := self.container(n)) and _match(c.labels, labels)]

    def create(self, req: CreateRequest) -> str:
        self.calls.append(f"create {req.name}")
        self.requests[req.name] = req
        self.state[req.name] = "created"
        return req.name

    def start(self, name: str) -> None:
        self.calls.append(f"start {name}")
        role = name.rsplit("_", 1)[-1]
        self.state[name] = "exited" if role in self.crash else "running"

    def stop(self, name: str, timeout: int = 30) -> None:
        self.calls.append(f"stop {name}")
        if name in self.state:
            self.state[name] = "exited"

    def remove(self, name: str) -> bool:
        self.calls.append(f"remove {name}")
        self.state.pop(name, None)
        return self.requests.pop(name, None) is not None

    def logs(self, name: str, tail: int | None = None, **_: Any) -> str:
        return "line 1\nosd.0 failed to load the OSD map\n"

    def exec(self, name: str, command: list[str], user: str = "", environment: dict[str, str] | None = None):
        assert command[0] == R.ADMIN and name.endswith("ceph_aio_mon") and self.state[name] == "running"
        results = []
        for item in json.loads((environment or {})[R.ADMIN_ENV]):
            results.append({"rc": 0, "out": self._answer(item), "err": ""})
        return 0, "some librados warning\n" + json.dumps(results) + "\n"

    def _answer(self, item: dict[str, Any]) -> str:
        if "rbd_pool_init" in item:
            self.pools[item["rbd_pool_init"]]["rbd"] = {}
            self.calls.append(f"ceph rbd pool init {item['rbd_pool_init']}")
            return ""
        cmd = item["mon"]
        prefix = cmd["prefix"]
        if prefix == "status":
            return json.dumps({**READY, "pgmap": {"num_pools": len(self.pools), "num_pgs": 8 * len(self.pools),
                                                  "pgs_by_state": [{"state_name": "active+clean",
                                                                    "count": 8 * len(self.pools)}]}})
        if prefix == "auth ls":
            return json.dumps({"auth_dump": [{"entity": e, **v} for e, v in self.auth.items()]})
        if prefix == "osd pool ls":
            return json.dumps([{"pool_name": p, "application_metadata": a} for p, a in self.pools.items()])
        self.calls.append(f"ceph {prefix}")
        if prefix == "auth import":
            for entity, values in parse_ini(item["inbuf"], "import").items():
                self.auth[entity] = {"key": values["key"][0],
                                     "caps": {k.split()[1]: v[0] for k, v in values.items() if k.startswith("caps")}}
        elif prefix == "auth rm":
            self.auth.pop(cmd["entity"])
        elif prefix == "osd pool create":
            self.pools[cmd["pool"]] = {}
        return ""


def _match(labels: dict[str, str], filters: list[str] | None) -> bool:
    for f in filters or []:
        key, _, value = f.partition("=")
        if key not in labels or (value and labels[key] != value):
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ports() -> dict[str, int]:
    return {"mon_port": free_port(), "mon_v1_port": free_port()}


@pytest.fixture
def configdir(tmp_path: Path) -> Path:
    d = tmp_path / "kolla"
    d.mkdir()
    (d / "globals.yml").write_text("docker_namespace: ns\nstackyard_name_prefix: t-\n")
    return d


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine([f"ns/ceph-{r}:2025.1" for r in P.ROLES])


def up(configdir: Path, engine: FakeEngine, ports: dict[str, int], **kw: Any) -> R.UpResult:
    return R.up(configdir, engine=engine, timeout=5, **ports, **kw)  # type: ignore[arg-type]


def test_resolve_follows_the_deployments_globals(configdir, ports):
    (configdir / "globals.yml").write_text(
        'docker_registry: "127.0.0.1:5000"\ndocker_namespace: ns\nopenstack_tag: t1\n'
        "stackyard_name_prefix: dev-\nceph_glance_user: img\n")
    cfg, opts = R.resolve(configdir, **ports)
    assert cfg.image("ceph-mon") == "127.0.0.1:5000/ns/ceph-mon:t1"
    assert cfg.container("mon") == "dev-ceph_aio_mon" and cfg.configdir == str(configdir)
    assert opts.glance_user == "img"
    cfg, _ = R.resolve(configdir, "other", "", extra_vars={"openstack_tag": "t2"})
    assert cfg.image("ceph-osd") == "127.0.0.1:5000/other/ceph-osd:t2" and cfg.container("osd") == "ceph_aio_osd"
    with pytest.raises(ConfigError, match="unknown setting"):
        R.resolve(configdir, mon_prot=1)


def test_up_makes_the_cluster_and_a_second_up_changes_nothing(configdir, engine, ports):
    first = up(configdir, engine, ports)
    assert not first.nothing_changed and first.health == "HEALTH_OK"
    assert sorted(engine.volume_labels) == ["t-ceph_aio_mon", "t-ceph_aio_osd"]
    assert all(v == {P.LABEL: str(configdir)} for v in engine.volume_labels.values())
    assert [c for c in engine.calls if c.startswith("start")] == [
        "start t-ceph_aio_mon", "start t-ceph_aio_mgr", "start t-ceph_aio_osd"]
    assert sorted(engine.auth) == ["client.cinder", "client.cinder-backup", "client.glance"]
    assert engine.auth["client.cinder"]["caps"]["osd"].startswith("profile rbd pool=volumes")
    assert all("rbd" in engine.pools[p] for p in ("images", "volumes", "vms", "backups"))
    st = S.load(configdir / "ceph-aio" / "state.json")
    assert st is not None and st.secrets.fsid == first.fsid and st.pools == ["images", "volumes", "vms", "backups"]
    for path in first.files:
        assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600, path
    keyring = (configdir / "config/cinder/cinder-volume/ceph.client.cinder.keyring").read_text()
    assert engine.auth["client.cinder"]["key"] in keyring
    assert f"fsid = {first.fsid}" in (configdir / "config/glance/ceph.conf").read_text()

    engine.calls.clear()
    second = up(configdir, engine, ports)
    assert second.nothing_changed, second.changed
    assert second.fsid == first.fsid and engine.calls == []


def test_a_stopped_daemon_is_started_and_a_changed_config_recreates(configdir, engine, ports):
    up(configdir, engine, ports)
    engine.state["t-ceph_aio_mgr"] = "exited"
    result = up(configdir, engine, ports)
    assert result.changed == ["started t-ceph_aio_mgr"]
    engine.calls.clear()
    engine.refs |= {f"ns2/ceph-{r}:2025.1" for r in P.ROLES}
    result = up(configdir, engine, ports, namespace="ns2")
    assert "recreated t-ceph_aio_osd" in result.changed
    assert engine.requests["t-ceph_aio_osd"].image == "ns2/ceph-osd:2025.1"


def test_renamed_users_and_pools_converge(configdir, engine, ports):
    up(configdir, engine, ports)
    old = configdir / "config/glance/ceph.client.glance.keyring"
    assert old.exists()
    result = up(configdir, engine, ports, extra_vars={"ceph_glance_user": "img", "ceph_glance_pool_name": "pics"})
    assert "client.glance" not in engine.auth and "client.img" in engine.auth
    assert engine.auth["client.img"]["caps"]["osd"] == "profile rbd pool=pics"
    assert "rbd" in engine.pools["pics"] and "images" in engine.pools  # an old pool keeps its data
    assert not old.exists() and (configdir / "config/glance/ceph.client.img.keyring").exists()
    assert "auth rm client.glance" in result.changed


def test_a_file_ceph_aio_did_not_write_is_refused(configdir, engine, ports):
    mine = configdir / "config/glance/ceph.conf"
    mine.parent.mkdir(parents=True)
    mine.write_text("[global]\nfsid = another-cluster\n")
    with pytest.raises(ConfigError, match=f"{mine}.*did not write"):
        up(configdir, engine, ports)
    assert engine.calls == [] and mine.read_text().endswith("another-cluster\n")


def test_missing_images_are_named_with_the_build_command(configdir, ports):
    with pytest.raises(ImageNotFoundError, match=r"ns/ceph-mon:2025.1.*stackyard build --namespace ns"):
        up(configdir, FakeEngine([]), ports)


def test_a_daemon_that_stops_fails_with_its_last_log_lines(configdir, engine, ports):
    engine.crash["osd"] = 1
    with pytest.raises(DeployError, match=r"(?s)t-ceph_aio_osd exited with status 1; its last log lines:\n.*osd\.0 failed to load the OSD map"):
        up(configdir, engine, ports)


def test_a_monitor_port_in_use_is_named(configdir, engine, ports):
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports["mon_v1_port"]))
        s.listen()
        with pytest.raises(DeployError, match=f"127.0.0.1:{ports['mon_v1_port']} is in use"):
            up(configdir, engine, ports)
    assert "t-ceph_aio_mon" not in engine.requests


def test_volumes_without_state_and_changed_fixed_settings_are_refused(configdir, engine, ports):
    up(configdir, engine, ports)
    with pytest.raises(ConfigError, match="made with other settings.*mon_port"):
        up(configdir, engine, {**ports, "mon_port": free_port()})
    (configdir / "ceph-aio" / "state.json").unlink()
    with pytest.raises(DeployError, match="t-ceph_aio_mon, t-ceph_aio_osd of a cluster exist but its state"):
        up(configdir, engine, ports)


def test_a_container_of_another_cluster_is_not_taken_over(configdir, engine, ports, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "globals.yml").write_text("docker_namespace: ns\nstackyard_name_prefix: t-\n")
    up(other, engine, {"mon_port": free_port(), "mon_v1_port": free_port()})
    with pytest.raises(DeployError, match=f"t-ceph_aio_mon exists and is not this cluster's \\({other}\\)"):
        up(configdir, engine, ports)


def test_down_keeps_data_and_files_unless_asked(configdir, engine, ports):
    first = up(configdir, engine, ports)
    user_file = configdir / "config/glance/glance-api.conf"
    user_file.write_text("[glance_store]\n")

    gone = R.down(configdir, engine=engine)
    assert gone.containers == ["t-ceph_aio_osd", "t-ceph_aio_mgr", "t-ceph_aio_mon"]
    assert engine.requests == {} and len(engine.volume_labels) == 2 and gone.volumes == []
    assert all(Path(p).exists() for p in first.files)

    again = up(configdir, engine, ports)   # the same cluster comes back
    assert again.fsid == first.fsid

    edited = configdir / "config/nova/ceph.conf"
    edited.write_text(edited.read_text() + "rbd_cache = true\n")
    with pytest.raises(ConfigError, match=r"config/nova/ceph.conf exist\(s\) and ceph-aio did not write them"):
        up(configdir, engine, ports)   # an operator's edit is never overwritten

    gone = R.down(configdir, engine=engine, include_volumes=True)
    assert gone.volumes == ["t-ceph_aio_mon", "t-ceph_aio_osd"] and engine.volume_labels == {}
    assert gone.kept == [str(edited)] and edited.exists()
    assert user_file.exists() and not (configdir / "config/glance/ceph.conf").exists()
    assert not (configdir / "config/cinder").exists()   # emptied: pruned
    assert not (configdir / "ceph-aio").exists()
    assert R.down(configdir, engine=engine, include_volumes=True).lines() == []


def test_status_reports_containers_health_and_files(configdir, engine, ports):
    assert R.status(configdir, engine=engine).fsid is None
    up(configdir, engine, ports)
    st = R.status(configdir, engine=engine)
    assert st.up and st.health == "HEALTH_OK" and st.waiting == "ready"
    assert set(st.containers.values()) == {"running"} and all(st.files.values())
    engine.state["t-ceph_aio_osd"] = "exited"
    st = R.status(configdir, engine=engine)
    assert not st.up and st.containers["t-ceph_aio_osd"] == "exited (1)"
