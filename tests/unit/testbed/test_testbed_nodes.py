"""Node image and node containers against a fake engine (no container engine needed).

The fake has the adapter's method names and answers with the adapter's plain
data (ImageInfo, ContainerState) and EngineError, so these tests exercise the
test bed's decisions: when to build, create, start, and what an error says.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from stackyard.engine import ContainerState, CreateRequest, ImageInfo
from stackyard.errors import EngineError, TestbedError
from stackyard.testbed import bed, nodes
from stackyard.testbed.config import LABEL, TestbedConfig

CFG = TestbedConfig(state_dir=Path("/srv/tb"), prefix="sytbn")


class FakeEngine:
    """An in-memory engine: images by ref, containers by name, volumes by name."""

    def __init__(self) -> None:
        self.images: dict[str, ImageInfo] = {}
        self.containers_: dict[str, ContainerState] = {}
        self.volumes: set[str] = set()
        self.created: list[CreateRequest] = []
        self.builds: list[dict[str, Any]] = []
        #: messages the next build yields (default: a successful build)
        self.build_messages: list[dict[str, Any]] | None = None
        #: a container that stops right after start (status "exited")
        self.crashes: set[str] = set()
        self.exec_results: dict[str, tuple[int, str]] = {}
        self.execs: list[tuple[str, list[str]]] = []
        self.stopped: list[tuple[str, int]] = []
        self.closed = False

    # images
    def image(self, ref: str) -> ImageInfo | None:
        return self.images.get(ref)

    def build(self, context: IO[bytes], tag: str, *, labels: dict[str, str] | None = None,
              nocache: bool = False, buildargs: dict[str, str] | None = None,
              network_mode: str = "host") -> Iterator[dict[str, Any]]:
        self.builds.append({"tag": tag, "labels": dict(labels or {}), "nocache": nocache,
                            "context": context.read()})
        messages = self.build_messages or [{"stream": "Step 1/1\n"}, {"aux": {"ID": "sha256:node"}}]
        for msg in messages:
            yield msg
        if not any("error" in m for m in messages):
            self.images[tag] = ImageInfo(id="sha256:node", labels=dict(labels or {}))

    def tag(self, image_id: str, ref: str) -> None:
        source = self.images.get(image_id)
        if source is None:
            raise EngineError(f"tag {image_id} as {ref}: no such image")
        self.images[ref] = source

    # containers
    def create(self, req: CreateRequest) -> str:
        if req.name in self.containers_:
            raise EngineError(f"create container {req.name}: name in use")
        if req.image not in self.images:
            raise EngineError(f"create container {req.name}: no such image: {req.image}")
        self.created.append(req)
        self.containers_[req.name] = ContainerState(name=req.name, id=f"id-{req.name}",
                                                    image_id=self.images[req.image].id, status="created",
                                                    labels=dict(req.labels))
        return f"id-{req.name}"

    def container(self, name: str) -> ContainerState | None:
        return self.containers_.get(name)

    def containers(self, labels: list[str] | None = None, all: bool = True) -> list[ContainerState]:
        def match(c: ContainerState) -> bool:
            for f in labels or []:
                key, _, value = f.partition("=")
                if key not in c.labels or (value and c.labels[key] != value):
                    return False
            return True

        return sorted((c for c in self.containers_.values() if match(c)), key=lambda c: c.name)

    def start(self, name: str) -> None:
        c = self.containers_[name]
        if name in self.crashes:
            c.status, c.exit_code, c.pid = "exited", 1, 0
        else:
            c.status, c.pid = "running", 4242

    def stop(self, name: str, timeout: int = 30) -> None:
        self.stopped.append((name, timeout))
        if name in self.containers_:
            self.containers_[name].status, self.containers_[name].pid = "exited", 0

    def remove(self, name: str) -> bool:
        return self.containers_.pop(name, None) is not None

    def logs(self, name: str, tail: int | None = None) -> str:
        return "node-init: cannot mount /sys/fs/cgroup\n"

    def exec(self, name: str, command: list[str]) -> tuple[int, str]:
        self.execs.append((name, command))
        return self.exec_results.get(command[0], (0, ""))

    # volumes
    def remove_volume(self, name: str) -> bool:
        if name in self.volumes:
            self.volumes.discard(name)
            return True
        return False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


def _logs() -> tuple[list[str], Any]:
    lines: list[str] = []
    return lines, lines.append


# ----------------------------------------------------------------- node image
def test_image_is_built_labelled_and_tagged_latest(engine: FakeEngine) -> None:
    lines, log = _logs()
    ref = nodes.ensure_image(engine, log)
    digest = nodes.context_hash()
    assert ref == nodes.image_ref(digest)
    [build] = engine.builds
    assert build["tag"] == ref and build["labels"][nodes.HASH_LABEL] == digest
    assert build["context"], "the node directory is sent as the build context"
    assert engine.images[f"{nodes.IMAGE_REPO}:latest"].id == engine.images[ref].id
    assert any("building node image" in line for line in lines)


def test_current_image_is_not_rebuilt(engine: FakeEngine) -> None:
    ref = nodes.ensure_image(engine, lambda _: None)
    assert nodes.ensure_image(engine, lambda _: None) == ref
    assert len(engine.builds) == 1
    # --rebuild-image builds again, without the layer cache
    nodes.ensure_image(engine, lambda _: None, force=True)
    assert len(engine.builds) == 2 and engine.builds[1]["nocache"] is True


def test_image_with_a_foreign_hash_label_is_rebuilt(engine: FakeEngine) -> None:
    ref = nodes.image_ref(nodes.context_hash())
    engine.images[ref] = ImageInfo(id="sha256:old", labels={nodes.HASH_LABEL: "something-else"})
    nodes.ensure_image(engine, lambda _: None)
    assert len(engine.builds) == 1


def test_image_build_error_names_the_step(engine: FakeEngine) -> None:
    engine.build_messages = [{"stream": "Step 2/5 : RUN apt-get install docker.io\n"},
                             {"error": "E: Unable to locate package docker.io\n"}]
    with pytest.raises(TestbedError) as err:
        nodes.ensure_image(engine, lambda _: None)
    msg = str(err.value)
    assert msg.startswith("node image build failed: E: Unable to locate package docker.io")
    assert "Step 2/5" in msg
    assert f"{nodes.IMAGE_REPO}:latest" not in engine.images


def test_engine_error_during_build_is_a_testbed_error(engine: FakeEngine) -> None:
    def broken(*args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        raise EngineError("build stackyard/testbed-node:x: connection refused")
        yield {}  # a generator, like the adapter's

    engine.build = broken  # type: ignore[method-assign]
    with pytest.raises(TestbedError, match="node image build failed: .*connection refused"):
        nodes.ensure_image(engine, lambda _: None)


# ----------------------------------------------------------------- node containers
def test_ensure_running_creates_and_starts(engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nodes.os.path, "exists", lambda p: False)
    engine.images["img:1"] = ImageInfo(id="sha256:img")
    state, was_running = nodes.ensure_running(engine, CFG, 2, "img:1")
    assert was_running is False
    assert state.running and state.name == CFG.container(2)
    assert engine.created == [nodes.container_spec(CFG, 2, "img:1")]
    # a second call finds it running and changes nothing
    again, was_running = nodes.ensure_running(engine, CFG, 2, "img:1")
    assert was_running is True and again.name == state.name and len(engine.created) == 1


def test_ensure_running_starts_a_stopped_node_without_recreating(engine: FakeEngine) -> None:
    engine.images["img:1"] = ImageInfo(id="sha256:img")
    nodes.ensure_running(engine, CFG, 1, "img:1")
    engine.stop(CFG.container(1))
    state, was_running = nodes.ensure_running(engine, CFG, 1, "img:2")  # a newer image is not used
    assert state.running and was_running is False
    assert len(engine.created) == 1 and state.image_id == "sha256:img"


def test_node_that_exits_at_once_shows_its_logs(engine: FakeEngine) -> None:
    engine.images["img:1"] = ImageInfo(id="sha256:img")
    engine.crashes.add(CFG.container(1))
    with pytest.raises(TestbedError) as err:
        nodes.ensure_running(engine, CFG, 1, "img:1")
    assert f"node1: container {CFG.container(1)} exited at once" in str(err.value)
    assert "cannot mount /sys/fs/cgroup" in str(err.value)


def test_engine_error_on_create_names_the_node(engine: FakeEngine) -> None:
    with pytest.raises(TestbedError) as err:
        nodes.ensure_running(engine, CFG, 3, "missing:image")
    assert str(err.value).startswith(f"node3: cannot start container {CFG.container(3)}: ")
    assert "no such image" in str(err.value)


def test_list_nodes_by_index_of_this_bed_only(engine: FakeEngine) -> None:
    engine.images["img:1"] = ImageInfo(id="sha256:img")
    for index in (3, 1):
        nodes.ensure_running(engine, CFG, index, "img:1")
    other = TestbedConfig(state_dir=Path("/srv/other"), prefix="other")
    nodes.ensure_running(engine, other, 2, "img:1")
    engine.containers_["stray"] = ContainerState(name="stray", id="x", labels={LABEL: CFG.prefix,
                                                                                f"{LABEL}.node": "n/a"})
    found = nodes.list_nodes(engine, CFG)
    assert list(found) == [1, 3]
    assert found[3].name == CFG.container(3)


def test_pid_of(engine: FakeEngine) -> None:
    engine.images["img:1"] = ImageInfo(id="sha256:img")
    nodes.ensure_running(engine, CFG, 1, "img:1")
    assert nodes.pid_of(engine, CFG.container(1)) == 4242
    engine.stop(CFG.container(1))
    with pytest.raises(TestbedError, match="is not running"):
        nodes.pid_of(engine, CFG.container(1))
    with pytest.raises(TestbedError, match="is not running"):
        nodes.pid_of(engine, "no-such-node")


def test_exec_in_and_write_file(engine: FakeEngine) -> None:
    engine.exec_results["cat"] = (0, "127.0.0.1 localhost\n")
    assert nodes.exec_in(engine, "n1", ["cat", "/etc/hosts"]) == "127.0.0.1 localhost\n"
    nodes.write_file(engine, "n1", "/etc/hosts", "x y\n")
    name, cmd = engine.execs[-1]
    # the text and path are arguments, never spliced into the shell script
    assert name == "n1" and cmd[-2:] == ["x y\n", "/etc/hosts"]
    engine.exec_results["false"] = (1, "boom\n")
    with pytest.raises(TestbedError, match=r"n1: 'false' failed \(rc 1\): boom"):
        nodes.exec_in(engine, "n1", ["false"])
    engine.exec_results["sh"] = (2, "read-only file system\n")
    with pytest.raises(TestbedError, match="n1: cannot write /etc/hosts: read-only file system"):
        nodes.write_file(engine, "n1", "/etc/hosts", "x")


def test_remove_node_removes_container_and_volume(engine: FakeEngine) -> None:
    engine.images["img:1"] = ImageInfo(id="sha256:img")
    state, _ = nodes.ensure_running(engine, CFG, 1, "img:1")
    engine.volumes.add(CFG.volume(1))
    nodes.remove_node(engine, CFG, 1, state)
    assert engine.container(CFG.container(1)) is None and not engine.volumes
    nodes.remove_node(engine, CFG, 1, state)  # again: nothing left, no error


# ----------------------------------------------------------------- bed operations
def test_stop_node_stops_with_the_node_timeout(engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    engine.images["img:1"] = ImageInfo(id="sha256:img")
    nodes.ensure_running(engine, CFG, 2, "img:1")
    unplumbed: list[int] = []
    monkeypatch.setattr(bed, "connect", lambda: engine)
    monkeypatch.setattr(bed.net, "unplumb", lambda cfg, index: unplumbed.append(index))
    bed.stop_node(CFG, 2, lambda _: None)
    assert engine.stopped == [(CFG.container(2), nodes.STOP_TIMEOUT)]
    assert unplumbed == [2] and engine.closed


def test_stop_unknown_node_is_an_operator_error(engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bed, "connect", lambda: engine)
    with pytest.raises(TestbedError, match="node5 is not part of test bed 'sytbn'"):
        bed.stop_node(CFG, 5, lambda _: None)
    assert engine.closed and not engine.stopped
