"""The executor and the base/external image steps against a fake engine.

The fake keeps images (with labels and history) in memory and speaks the
adapter's plain data and EngineError, so these tests check the builder's own
decisions: cache hits, retries, failures and what their reasons say.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from stackyard.engine import ImageInfo
from stackyard.errors import EngineError, StackyardError
from stackyard.imagebuild import baseimage, run
from stackyard.imagebuild import engine as engine_mod
from stackyard.imagebuild.catalog import render_all
from stackyard.imagebuild.engine import (BUILT, CACHED, FAILED, PARENT_FAILED, SKIPPED, Builder, Progress)
from stackyard.imagebuild.graph import ImageGraph
from stackyard.imagebuild.plan import HASH_LABEL, PARENT_LABEL, make_plan

BASE_ID = "sha256:" + "b" * 64


def child_of(parent: str, body: str = "") -> str:
    return "FROM {{ image_ref('%s') }}\n%s" % (parent, body)


class FakeEngine:
    """Images by ID with refs pointing at them; builds follow a per-ref script."""

    def __init__(self) -> None:
        self.by_id: dict[str, ImageInfo] = {}
        self.refs: dict[str, str] = {}
        self.history: dict[str, list[dict[str, Any]]] = {}
        #: what a registry holds, ref -> image (pull copies it in)
        self.registry: dict[str, ImageInfo] = {}
        #: ref -> list of attempts, each a list of messages; the default is a clean build
        self.scripts: dict[str, list[list[dict[str, Any]]]] = {}
        self.built: list[str] = []
        self.build_calls: list[dict[str, Any]] = []
        self.pushed: list[str] = []
        self.push_error: str | None = None
        self.pulls: list[str] = []
        self._n = 0

    def add(self, ref: str, image_id: str, labels: dict[str, str] | None = None,
            history: list[dict[str, Any]] | None = None) -> None:
        self.by_id[image_id] = ImageInfo(id=image_id, labels=dict(labels or {}), size=1000)
        self.refs[ref] = image_id
        self.history[image_id] = history or [{"CreatedBy": "/bin/sh -c #(nop) CMD [\"bash\"]"}]

    # the adapter's methods ----------------------------------------------------
    def image(self, ref: str) -> ImageInfo | None:
        return self.by_id.get(self.refs.get(ref, ref))

    def images(self, label: str | None = None) -> list[ImageInfo]:
        return [i for i in self.by_id.values() if label is None or label in i.labels]

    def image_history(self, image_id: str) -> list[dict[str, Any]]:
        if image_id not in self.history:
            raise EngineError(f"history of image {image_id}: no such image")
        return self.history[image_id]

    def pull(self, ref: str) -> str:
        self.pulls.append(ref)
        if ref not in self.registry:
            raise EngineError(f"pull {ref}: manifest unknown")
        img = self.registry[ref]
        self.by_id[img.id] = img
        self.refs[ref] = img.id
        self.history.setdefault(img.id, [{"CreatedBy": "LABEL " + " ".join(
            f"{k}={v}" for k, v in img.labels.items())}])
        return img.id

    def tag(self, image_id: str, ref: str) -> None:
        if image_id not in self.by_id:
            raise EngineError(f"tag {image_id} as {ref}: no such image")
        self.refs[ref] = image_id

    def push(self, ref: str) -> None:
        if self.push_error:
            raise EngineError(f"push {ref}: {self.push_error}")
        self.pushed.append(ref)

    def build(self, context: IO[bytes], tag: str, *, labels: dict[str, str] | None = None,
              nocache: bool = False, buildargs: dict[str, str] | None = None,
              network_mode: str = "host") -> Iterator[dict[str, Any]]:
        self.build_calls.append({"tag": tag, "labels": dict(labels or {}), "nocache": nocache})
        attempts = self.scripts.get(tag)
        messages = attempts.pop(0) if attempts else []
        for msg in messages:
            if isinstance(msg, Exception):
                raise msg
            yield msg
        if any("error" in m for m in messages):
            return
        self._n += 1
        image_id = f"sha256:{self._n:064d}"
        # the builder's LABEL instruction is the newest history entry
        label_line = "LABEL " + " ".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))
        self.add(tag, image_id, labels, [{"CreatedBy": label_line}, {"CreatedBy": "RUN apt-get install"}])
        self.built.append(tag)
        yield {"stream": "Successfully built\n"}
        yield {"aux": {"ID": image_id}}


@pytest.fixture
def fake() -> FakeEngine:
    engine = FakeEngine()
    engine.add("debian:trixie", BASE_ID)
    return engine


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries back off with time.sleep; the tests need not wait."""
    monkeypatch.setattr(engine_mod.time, "sleep", lambda s: None)


@pytest.fixture
def make_builder(config, tree, tmp_path: Path):
    """``make_builder(engine, selected, **settings)`` over our tree plus 'leaf' (FROM memcached)."""
    dd = tree({"leaf/Dockerfile.j2": child_of("memcached", "RUN true\n")})

    def make(engine: FakeEngine, selected: set[str], **kw: Any) -> Builder:
        cfg = config(docker_dirs=[dd], work_dir=str(tmp_path / "work"), **kw)
        images = render_all(cfg)
        graph = ImageGraph.from_images(images)
        plans = make_plan(cfg, images, graph, {"debian:trixie": BASE_ID})
        return Builder(engine, cfg, plans, graph, selected, Progress(enabled=False, printer=lambda s: None))

    return make


CHAIN = {"base", "memcached", "leaf"}


def statuses(results: dict[str, Any]) -> dict[str, str]:
    return {name: r.status for name, r in results.items()}


# ----------------------------------------------------------------- builds and the cache
def test_builds_parents_first_then_everything_is_cached(fake: FakeEngine, make_builder) -> None:
    first = make_builder(fake, CHAIN)
    assert first.needs_build() == sorted(CHAIN)
    results = first.run()
    assert statuses(results) == {n: BUILT for n in CHAIN}
    assert [c["tag"] for c in fake.build_calls] == [first.plans[n].ref for n in ("base", "memcached", "leaf")]
    # a child is labelled with the IDs of the parents it was built on
    leaf_labels = fake.build_calls[2]["labels"]
    assert leaf_labels[PARENT_LABEL] == results["memcached"].image_id
    assert results["leaf"].size == 1000

    second = make_builder(fake, CHAIN)
    assert second.needs_build() == []
    again = second.run()
    assert statuses(again) == {n: CACHED for n in CHAIN}
    assert {n: r.image_id for n, r in again.items()} == {n: r.image_id for n, r in results.items()}
    assert len(fake.build_calls) == 3


def test_cache_hit_is_retagged(fake: FakeEngine, make_builder) -> None:
    make_builder(fake, {"base"}).run()
    builder = make_builder(fake, {"base"})
    ref = builder.plans["base"].ref
    image_id = fake.refs.pop(ref)  # the tag was removed, the image is still there
    assert builder.run()["base"].status == CACHED
    assert fake.refs[ref] == image_id


def test_inherited_hash_label_is_not_a_cache_hit(fake: FakeEngine, make_builder) -> None:
    builder = make_builder(fake, {"base"})
    plan = builder.plans["base"]
    # an image someone built FROM ours: carries our hash label, but its newest layer is theirs
    fake.add("someone/else:1", "sha256:" + "e" * 64, {HASH_LABEL: plan.hash},
             [{"CreatedBy": "RUN echo theirs"}, {"CreatedBy": f"LABEL {HASH_LABEL}={plan.hash}"}])
    assert builder.run()["base"].status == BUILT


def test_child_is_rebuilt_when_its_parent_image_changed(fake: FakeEngine, make_builder) -> None:
    first = make_builder(fake, CHAIN).run()
    # memcached is rebuilt alone (same hash, new image) and the old image is pruned
    again = make_builder(fake, {"memcached"}, no_cache=True).run()["memcached"]
    assert again.status == BUILT and again.image_id != first["memcached"].image_id
    assert fake.build_calls[-1]["nocache"] is True
    del fake.by_id[first["memcached"].image_id]
    # known before anything runs (a source build serves its wheels only then)
    assert make_builder(fake, CHAIN).needs_build() == ["leaf"]
    results = make_builder(fake, CHAIN).run()
    # leaf's cached image was built on the old memcached: not a hit
    assert statuses(results) == {"base": CACHED, "memcached": CACHED, "leaf": BUILT}
    assert fake.build_calls[-1]["labels"][PARENT_LABEL] == again.image_id


def test_skip_existing(fake: FakeEngine, make_builder) -> None:
    builder = make_builder(fake, {"base"}, skip_existing=True)
    fake.add(builder.plans["base"].ref, "sha256:" + "c" * 64)
    result = builder.run()["base"]
    assert result.status == SKIPPED and result.image_id == "sha256:" + "c" * 64
    assert fake.build_calls == []


def test_unselected_parent_must_exist(fake: FakeEngine, make_builder) -> None:
    results = make_builder(fake, {"leaf"}).run()
    assert results["leaf"].status == FAILED
    assert "parent 'memcached' was not selected" in results["leaf"].reason
    assert fake.build_calls == []


# ----------------------------------------------------------------- failures
def test_package_error_fails_at_once_and_fails_descendants(fake: FakeEngine, make_builder) -> None:
    builder = make_builder(fake, CHAIN)
    fake.scripts[builder.plans["memcached"].ref] = [[
        {"stream": "Step 3/5 : RUN apt-get install memcachedd\n"},
        {"stream": "E: Unable to locate package memcachedd\n"},
        {"error": "The command '/bin/sh -c apt-get install memcachedd' returned a non-zero code: 100"},
    ]]
    results = builder.run()
    assert statuses(results) == {"base": BUILT, "memcached": FAILED, "leaf": PARENT_FAILED}
    reason = results["memcached"].reason
    assert reason.startswith("The command '/bin/sh -c apt-get install memcachedd' returned a non-zero code: 100: "
                             "E: Unable to locate package memcachedd")
    assert results["memcached"].attempts == 1
    log = Path(reason.split("(log: ")[1].rstrip(")"))
    assert "Unable to locate package" in log.read_text()
    assert results["leaf"].reason == "parent 'memcached' failed"


def test_transient_error_is_retried(fake: FakeEngine, make_builder) -> None:
    builder = make_builder(fake, {"base"}, retries=2)
    fake.scripts[builder.plans["base"].ref] = [[
        {"stream": "Err:1 http://deb.debian.org/debian trixie InRelease\n"},
        {"stream": "  Temporary failure resolving 'deb.debian.org'\n"},
        {"error": "The command '/bin/sh -c apt-get update' returned a non-zero code: 100"},
    ]]
    result = builder.run()["base"]
    assert result.status == BUILT and result.attempts == 2


def test_transient_errors_give_up_after_retries(fake: FakeEngine, make_builder) -> None:
    builder = make_builder(fake, {"base"}, retries=1)
    failing = [{"stream": "Could not resolve 'deb.debian.org'\n"}, {"error": "returned a non-zero code: 100"}]
    fake.scripts[builder.plans["base"].ref] = [list(failing), list(failing), list(failing)]
    result = builder.run()["base"]
    assert result.status == FAILED and result.attempts == 2


def test_engine_refusing_the_build_is_a_failed_image(fake: FakeEngine, make_builder) -> None:
    builder = make_builder(fake, {"base"}, retries=0)
    fake.scripts[builder.plans["base"].ref] = [[EngineError("build stackyard/base:2025.1: no space left on device")]]
    result = builder.run()["base"]
    assert result.status == FAILED
    assert "no space left on device" in result.reason


def test_engine_error_outside_the_build_fails_only_that_image(fake: FakeEngine, make_builder) -> None:
    builder = make_builder(fake, {"base"})

    def broken_tag(image_id: str, ref: str) -> None:
        raise EngineError(f"tag {image_id} as {ref}: engine went away")

    make_builder(fake, {"base"}).run()
    fake.tag = broken_tag  # type: ignore[method-assign]
    result = builder.run()["base"]
    assert result.status == FAILED and result.reason.startswith("engine error: tag ")


# ----------------------------------------------------------------- push
def test_push_after_build_and_on_cache_hit(fake: FakeEngine, make_builder) -> None:
    builder = make_builder(fake, {"base"}, push=True)
    builder.run()
    ref = builder.plans["base"].ref
    assert fake.pushed == [ref]
    assert make_builder(fake, {"base"}, push=True).run()["base"].status == CACHED
    assert fake.pushed == [ref, ref]


def test_push_failure_fails_the_image(fake: FakeEngine, make_builder) -> None:
    fake.push_error = "unauthorized: authentication required"
    result = make_builder(fake, {"base"}, push=True).run()["base"]
    assert result.status == FAILED
    assert "push of" in result.reason and "authentication required" in result.reason


def test_registry_image_with_our_hash_is_a_hit(fake: FakeEngine, make_builder) -> None:
    builder = make_builder(fake, {"base"}, push=True)
    plan = builder.plans["base"]
    fake.registry[plan.ref] = ImageInfo(id="sha256:" + "f" * 64, labels={HASH_LABEL: plan.hash})
    result = builder.run()["base"]
    assert result.status == CACHED and result.image_id == "sha256:" + "f" * 64
    assert fake.build_calls == [] and fake.pulls == [plan.ref]


def test_registry_miss_builds(fake: FakeEngine, make_builder) -> None:
    builder = make_builder(fake, {"base"}, push=True)
    assert builder.run()["base"].status == BUILT
    assert fake.pulls == [builder.plans["base"].ref]


# ----------------------------------------------------------------- base and external images
def test_base_image_present(fake: FakeEngine, config) -> None:
    assert baseimage.ensure_base_image(fake, config(), log=lambda m: None) == BASE_ID
    assert fake.pulls == []


def test_base_image_pulled_when_missing(config) -> None:
    engine = FakeEngine()
    engine.registry["debian:trixie"] = ImageInfo(id=BASE_ID)
    assert baseimage.ensure_base_image(engine, config(), log=lambda m: None) == BASE_ID
    assert engine.pulls == ["debian:trixie"]


def test_base_image_debootstrapped_when_pull_fails(config, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FakeEngine()
    made: list[Any] = []
    monkeypatch.setattr(baseimage, "debootstrap_image",
                        lambda e, c, log: made.append((e, c.base_ref)) or "sha256:made")
    lines: list[str] = []
    assert baseimage.ensure_base_image(engine, config(), log=lines.append) == "sha256:made"
    assert made == [(engine, "debian:trixie")]
    assert any(line.startswith("cannot pull debian:trixie (") and "manifest unknown" in line
               and "debootstrap" in line for line in lines)


def test_force_skips_present_image(fake: FakeEngine, config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(baseimage, "debootstrap_image", lambda e, c, log: "sha256:fresh")
    assert baseimage.ensure_base_image(fake, config(), log=lambda m: None, force=True) == "sha256:fresh"


def test_external_image_that_cannot_be_pulled(config, tree) -> None:
    dd = tree({"ext/Dockerfile.j2": "FROM example.org/nothing:1\n"})
    session = run.prepare(config(docker_dirs=[dd]), ["ext"])
    with pytest.raises(EngineError) as err:
        run.execute(session, FakeEngine(), Progress(enabled=False, printer=lambda s: None))
    msg = str(err.value)
    assert msg.startswith("base image example.org/nothing:1 is not present and cannot be pulled")
    assert "manifest unknown" in msg


def test_execute_builds_and_summarises(fake: FakeEngine, config, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    mirror_checks: list[str] = []
    monkeypatch.setattr(run, "check_mirror", lambda mirror, suite, proxy="": mirror_checks.append(suite))
    session = run.prepare(config(work_dir=str(tmp_path)), ["memcached"])
    out = run.execute(session, fake, Progress(enabled=False, printer=lambda s: None))
    assert out["built"] == ["base", "memcached"] and out["failed"] == []
    assert mirror_checks == ["trixie"]
    # nothing to build: the mirror is not needed
    out = run.execute(session, fake, Progress(enabled=False, printer=lambda s: None))
    assert out["cached"] == ["base", "memcached"] and mirror_checks == ["trixie"]


def test_debootstrap_needs_the_tool(fake: FakeEngine, config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(baseimage.shutil, "which", lambda name: None)
    with pytest.raises(StackyardError, match="debootstrap is not installed"):
        baseimage.debootstrap_image(fake, config(), log=lambda m: None)


def test_intermediate_layer_of_a_child_build_is_not_a_cache_hit(fake: FakeEngine, make_builder) -> None:
    """While a child builds FROM base, its first layers are Dockerfile LABELs on top of base's own
    label layers, and the engine lists that layer as an image: taking it for base (and tagging it)
    would make every other child of base look built on another parent, and rebuild."""
    builder = make_builder(fake, {"base"})
    plan = builder.plans["base"]
    fake.add("", "sha256:" + "d" * 64, {HASH_LABEL: plan.hash},
             [{"CreatedBy": "/bin/sh -c #(nop)  LABEL org.stackyard.role=builder"},
              {"CreatedBy": f"/bin/sh -c #(nop)  LABEL {HASH_LABEL}={plan.hash}"}])
    assert builder.run()["base"].status == BUILT
    # base's own image, whose newest layers are the builder's labels, is a hit
    again = make_builder(fake, {"base"}).run()["base"]
    assert again.status == CACHED and again.image_id != "sha256:" + "d" * 64


def test_of_two_images_with_one_hash_the_one_on_the_current_parents_is_the_hit(
        fake: FakeEngine, make_builder) -> None:
    first = make_builder(fake, CHAIN).run()
    make_builder(fake, {"memcached"}, no_cache=True).run()
    rebuilt = make_builder(fake, CHAIN).run()["leaf"]  # on the new memcached: a second leaf image
    assert rebuilt.status == BUILT and first["leaf"].image_id in fake.by_id  # the old one is still there
    assert make_builder(fake, CHAIN).needs_build() == []
    again = make_builder(fake, CHAIN).run()
    assert statuses(again) == {"base": CACHED, "memcached": CACHED, "leaf": CACHED}
    assert again["leaf"].image_id == rebuilt.image_id
