"""Source builds against a fake engine: the wheel builder runs first and only when needed,
images read the wheel cache on loopback, a local source is installed at the version built
from it, a failing wheel fails the build naming the package, and versions are recorded."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from stackyard.engine import CreateRequest, ImageInfo
from stackyard.imagebuild import run, wheels
from stackyard.imagebuild.engine import Progress

BASE_ID = "sha256:" + "b" * 64


class SourceEngine:
    """Keeps images by ref, 'runs' the wheel builder and the version probe, records build args."""

    def __init__(self, wheel_failure: str = "") -> None:
        self.images_: dict[str, ImageInfo] = {"debian:trixie": ImageInfo(id=BASE_ID)}
        self.history: dict[str, list[dict[str, Any]]] = {BASE_ID: [{"CreatedBy": "CMD bash"}]}
        self.build_args: dict[str, dict[str, str]] = {}
        self.runs: list[CreateRequest] = []
        self.wheel_failure = wheel_failure
        self.served: list[str] = []
        self._n = 0

    def image(self, ref: str) -> ImageInfo | None:
        return self.images_.get(ref) or next((i for i in self.images_.values() if i.id == ref), None)

    def images(self, label: str | None = None) -> list[ImageInfo]:
        return [i for i in {i.id: i for i in self.images_.values()}.values() if not label or label in i.labels]

    def image_history(self, image_id: str) -> list[dict[str, Any]]:
        return self.history[image_id]

    def tag(self, image_id: str, ref: str) -> None:
        self.images_[ref] = next(i for i in self.images_.values() if i.id == image_id)

    def build(self, context: IO[bytes], tag: str, *, labels: dict[str, str] | None = None, nocache: bool = False,
              buildargs: dict[str, str] | None = None, network_mode: str = "host") -> Iterator[dict[str, Any]]:
        self.build_args[tag] = dict(buildargs or {})
        url = (buildargs or {}).get("STACKYARD_WHEELS")
        if url:  # what pip's --find-links sees: the cache's listing
            with urllib.request.urlopen(url, timeout=5) as resp:
                self.served.append(resp.read().decode())
        self._n += 1
        image_id = f"sha256:{self._n:064d}"
        self.images_[tag] = ImageInfo(id=image_id, labels=dict(labels or {}), size=100)
        self.history[image_id] = [{"CreatedBy": "LABEL " + " ".join(f"{k}={v}" for k, v in
                                                                   sorted((labels or {}).items()))}]
        yield {"aux": {"ID": image_id}}

    def run(self, req: CreateRequest, timeout: float = 600) -> tuple[int, str, str]:
        self.runs.append(req)
        if req.command and req.command[0] == "build-wheels":
            host_dir = Path(req.binds[0].split(":")[0])
            if self.wheel_failure:
                return 1, f"ERROR\nbuild-wheels: failed: {self.wheel_failure}\n", ""
            args = req.command[3:]
            while args and args[0] == "--local":
                name, _path, subdir = args[1].split("=", 2)
                (host_dir / subdir).mkdir(parents=True, exist_ok=True)
                (host_dir / subdir / f"{wheels.normalize(name)}-33.0.3.dev4-py3-none-any.whl").write_text("w")
                args = args[2:]
            for r in args:
                (host_dir / f"{wheels.normalize(r.split('=')[0].split('>')[0])}-1.0-py3-none-any.whl").write_text("w")
            return 0, "build-wheels: ok\n", ""
        return 0, json.dumps({"keystone": "29.1.0", "oslo.config": "10.0.0"}) + "\n", ""


@pytest.fixture(autouse=True)
def no_mirror_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Debian mirror is not contacted by unit tests."""
    monkeypatch.setattr(run, "check_mirror", lambda *a, **k: None)


def session(config, images: list[str], **kw: Any) -> run.BuildSession:
    return run.prepare(config(install_type="source", **kw), images)


def test_wheels_first_then_images_reading_the_cache_then_versions(config, tmp_path: Path) -> None:
    engine = SourceEngine()
    out = run.execute(session(config, ["keystone"], work_dir=str(tmp_path)), engine, Progress(enabled=False))
    assert out["failed"] == [] and set(out["built"]) >= {"base", "openstack-builder", "openstack-base", "keystone"}
    builder_runs = [r for r in engine.runs if r.command[0] == "build-wheels"]
    assert len(builder_runs) == 1
    req = builder_runs[0]
    assert "keystone==29.1.0" in req.command and "oslo.config" in req.command
    assert req.binds[0].startswith(str(tmp_path / "wheels" / "2026.1")) and req.network_mode == "host"
    # the images got the cache's URL (loopback) as a build argument, and pip's listing held the wheels
    url = engine.build_args["stackyard/keystone:2026.1"]["STACKYARD_WHEELS"]
    assert url.startswith("http://127.0.0.1:")
    assert any("keystone-1.0-py3-none-any.whl" in page for page in engine.served)
    assert "STACKYARD_WHEELS" not in engine.build_args["stackyard/openstack-builder:2026.1"]
    assert out["installed"]["keystone"]["keystone"] == "29.1.0"
    assert set(out["installed"]) == {"openstack-base", "keystone"}  # only images with a virtualenv


def test_an_unchanged_rebuild_runs_no_wheel_builder(config, tmp_path: Path) -> None:
    engine = SourceEngine()
    run.execute(session(config, ["keystone"], work_dir=str(tmp_path)), engine, Progress(enabled=False))
    engine.runs.clear()
    out = run.execute(session(config, ["keystone"], work_dir=str(tmp_path)), engine, Progress(enabled=False))
    assert out["built"] == [] and "keystone" in out["cached"]
    assert engine.runs == []  # no wheel builder, and versions read from the work dir's record


def test_a_kept_wheel_cache_skips_the_builder_when_images_are_rebuilt(config, tmp_path: Path) -> None:
    run.execute(session(config, ["keystone"], work_dir=str(tmp_path)), SourceEngine(), Progress(enabled=False))
    fresh = SourceEngine()  # the images are gone, the work dir (wheel cache) is kept
    out = run.execute(session(config, ["keystone"], work_dir=str(tmp_path)), fresh, Progress(enabled=False))
    assert "keystone" in out["built"]
    assert not [r for r in fresh.runs if r.command[0] == "build-wheels"]
    # nor is the builder image made: nothing needs it
    assert "openstack-builder" not in out["built"] and "stackyard/openstack-builder:2026.1" not in fresh.images_


def test_a_failing_wheel_fails_the_images_naming_the_package_and_tags_nothing(config, tmp_path: Path) -> None:
    engine = SourceEngine(wheel_failure="libvirt-python")
    out = run.execute(session(config, ["keystone"], work_dir=str(tmp_path)), engine, Progress(enabled=False))
    assert {"openstack-base", "keystone"} <= set(out["failed"])
    assert "libvirt-python" in out["failed_reasons"]["keystone"]
    assert "stackyard/keystone:2026.1" not in engine.images_
    assert not (tmp_path / "wheels" / "2026.1" / ".done-x").exists()
    assert not list((tmp_path / "wheels" / "2026.1").glob(".done-*"))


def test_a_local_checkout_is_built_apart_and_installed_at_its_version(config, tmp_path: Path) -> None:
    checkout = tmp_path / "nova"
    checkout.mkdir()
    (checkout / "setup.py").write_text("# nova\n")
    engine = SourceEngine()
    out = run.execute(session(config, ["nova-api"], work_dir=str(tmp_path / "work"),
                              sources={"nova": {"type": "local", "location": str(checkout)}}),
                      engine, Progress(enabled=False))
    assert out["failed"] == []
    req = next(r for r in engine.runs if r.command[0] == "build-wheels")
    local = req.command[req.command.index("--local") + 1]
    assert local.startswith("nova=/src/nova=local/nova-")
    assert f"{checkout}:/src/nova:ro" in req.binds
    assert engine.build_args["stackyard/nova-base:2026.1"]["STACKYARD_LOCAL_NOVA"] == "nova==33.0.3.dev4"


def test_local_sources_change_the_image_hash(config, tmp_path: Path) -> None:
    from stackyard.imagebuild.catalog import render_all

    checkout = tmp_path / "keystone"
    checkout.mkdir()
    (checkout / "setup.py").write_text("v1\n")
    first = render_all(config(install_type="source", sources={"keystone": {"type": "local",
                                                                          "location": str(checkout)}}))
    (checkout / "setup.py").write_text("v2\n")
    second = render_all(config(install_type="source", sources={"keystone": {"type": "local",
                                                                           "location": str(checkout)}}))
    assert first["keystone"].dockerfile != second["keystone"].dockerfile
    assert first["keystone"].local_projects == ["keystone"] and "keystone" not in " ".join(
        first["keystone"].pip_requirements)
