"""The thin executor: turns a build plan into images through the engine adapter.

Scheduling: a pool of ``threads`` workers; an image is submitted as soon as all
of its selected parents are done, so a child starts while unrelated siblings
are still building. A failed image marks every selected descendant
"parent failed" without attempting it. Only transient network failures are
retried; a template or package error fails at once.

Every engine call goes through :class:`stackyard.engine.Engine`, which deals in
plain data and raises :class:`~stackyard.errors.EngineError` only, so this
module never sees the engine's SDK.
"""

from __future__ import annotations

import io
import re
import tarfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Iterator

from rich.console import Console

from stackyard.engine import Engine
from stackyard.errors import EngineError
from stackyard.imagebuild.config import BuildConfig
from stackyard.imagebuild.graph import ImageGraph
from stackyard.imagebuild.plan import HASH_LABEL, NAME_LABEL, PARENT_LABEL, ImagePlan

BUILT, CACHED, FAILED, PARENT_FAILED, SKIPPED, UNMATCHED = (
    "built", "cached", "failed", "parent_failed", "skipped", "unmatched",
)

_TRANSIENT = re.compile(
    r"Temporary failure (resolving|in name resolution)|Could not resolve|Connection timed out|"
    r"Connection refused|Network is unreachable|Unable to connect to|Connection reset by peer|"
    r"Failed to fetch \S+\s+(50[0-9]|Connection|Could not|Temporary)|Hash Sum mismatch|"
    r"Undetermined Error|TLS handshake timeout|i/o timeout|unexpected EOF",
    re.IGNORECASE,
)

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: the labels this builder hands the engine with each build (they end up as the newest layers)
_BUILD_LABELS = frozenset({HASH_LABEL, NAME_LABEL, PARENT_LABEL})
_LABEL_ENTRY = re.compile(r"(?:^|\s)LABEL\s+(.*)$")


def _label_keys(created_by: str) -> set[str]:
    """The label keys of a history entry's LABEL instruction (empty when it is something else)."""
    m = _LABEL_ENTRY.search(created_by)
    if not m:
        return set()
    return {word.split("=", 1)[0].strip('"') for word in m.group(1).split() if "=" in word}


@dataclass
class ImageResult:
    name: str
    status: str
    ref: str = ""
    hash: str = ""
    image_id: str = ""
    seconds: float = 0.0
    reason: str = ""
    attempts: int = 0
    size: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class BuildFailed(Exception):
    def __init__(self, reason: str, transient: bool):
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


def is_transient(text: str) -> bool:
    """Network trouble worth retrying; 404s and package errors are not."""
    if re.search(r"\b404\b|Unable to locate package|has no installation candidate", text):
        return False
    return bool(_TRANSIENT.search(text))


def make_context(plan: ImagePlan) -> io.BytesIO:
    """A reproducible tar build context: fixed mtimes and owners, sorted entries."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def add(name: str, data: bytes, mode: int) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))

        add("Dockerfile", plan.dockerfile.encode(), 0o644)
        for rel, path in sorted(plan.files.items()):
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            add(rel, path.read_bytes(), mode)
    buf.seek(0)
    return buf


class Progress:
    """Prints one line per state change (building, built, cached, failed) with times."""

    def __init__(self, enabled: bool = True, printer: Callable[[str], None] | None = None):
        self.enabled = enabled
        self._lock = threading.Lock()
        self._start = time.monotonic()
        if printer is None:
            console = Console(stderr=True, highlight=False)
            printer = console.print
        self._print = printer

    def event(self, name: str, status: str, detail: str = "") -> None:
        if not self.enabled:
            return
        style = {
            BUILT: "green", CACHED: "cyan", FAILED: "bold red", PARENT_FAILED: "red",
            SKIPPED: "yellow", "building": "blue", "retrying": "yellow",
        }.get(status, "")
        elapsed = time.monotonic() - self._start
        text = f"[{elapsed:7.1f}s] {name:<24} {status}"
        if detail:
            text += f"  {detail}"
        with self._lock:
            self._print(f"[{style}]{text}[/{style}]" if style else text)


class Builder:
    """Executes a plan against one engine."""

    def __init__(
        self,
        engine: Engine,
        config: BuildConfig,
        plans: dict[str, ImagePlan],
        graph: ImageGraph,
        selected: set[str],
        progress: Progress,
    ):
        self.engine = engine
        self.config = config
        self.plans = plans
        self.graph = graph
        self.selected = selected
        self.progress = progress
        self.results: dict[str, ImageResult] = {}
        #: build arguments given to every build but kept out of the content hash
        #: (where the wheel cache is served this time, a local source's exact version)
        self.extra_args: dict[str, str] = {}
        #: every image built by us for a content hash (several: the same hash on other parents)
        self._by_hash: dict[str, list[str]] = {}
        self._indexed = False
        self._lock = threading.Lock()

    def needs_build(self) -> list[str]:
        """Selected images that no cache hit will cover (before anything runs).

        The same test as :meth:`_build_one`: no image with the image's hash, or
        one built on other parent images than this build will use (a parent
        rebuilt with --no-cache has the same hash and a new ID), or a parent
        that is built. A source build serves the wheel cache only when this
        says something is built: the two must agree.
        """
        self._index_local()
        pending: set[str] = set()
        for name in self.graph.order():
            if name not in self.selected:
                continue
            plan = self.plans[name]
            if any(p in pending for p in plan.parents) or self._cache_hit(plan) is None:
                pending.add(name)
        return sorted(pending)

    # -- cache lookups -----------------------------------------------------
    def _index_local(self) -> None:
        """One engine call lists every image carrying a hash label.

        Labels are inherited: an image someone builds FROM ours carries our hash
        too. Only an image whose newest history entry is the LABEL instruction our
        builder added is the image itself; the others are ignored.
        """
        if self._indexed:
            return
        self._indexed = True
        candidates: dict[str, list[str]] = {}
        for img in self.engine.images(label=HASH_LABEL):
            h = img.labels.get(HASH_LABEL)
            if h:
                candidates.setdefault(h, []).append(img.id)
        for h, ids in candidates.items():
            ours = [image_id for image_id in ids if self._built_by_us(image_id, h)]
            if ours:
                self._by_hash[h] = ours

    def _cache_hit(self, plan: ImagePlan) -> str | None:
        """An image of ``plan``'s hash built on the parents this build uses, if there is one;
        the one the image's tag points at first (after a --no-cache rebuild, the new one)."""
        if self.config.no_cache:
            return None
        candidates = self._by_hash.get(plan.hash, [])
        if len(candidates) > 1:
            tagged = self.engine.image(plan.ref)
            if tagged is not None and tagged.id in candidates:
                candidates = [tagged.id, *(c for c in candidates if c != tagged.id)]
        for image_id in candidates:
            if self._on_top_of_parents(image_id, plan):
                return image_id
        return None

    def _built_by_us(self, image_id: str, hash_: str) -> bool:
        try:
            history = self.engine.image_history(image_id)
        except EngineError:
            # removed meanwhile, or not inspectable: not a cache hit, build instead
            return False
        # the engine writes the build's labels as LABEL entries on top (one per label, or one for
        # all); anything else on top (even a LABEL from a Dockerfile) means a child's image, or one
        # of its intermediate layers while it builds, which inherits our hash label
        for entry in history:
            created_by = entry.get("CreatedBy") or ""
            labels = _label_keys(created_by)
            if not labels or not labels <= _BUILD_LABELS:
                return False
            if f"{HASH_LABEL}={hash_}" in created_by:
                return True
        return False

    def _local_ref_exists(self, ref: str) -> bool:
        return self.engine.image(ref) is not None

    def _registry_hit(self, plan: ImagePlan) -> str | None:
        """When pushing, an image already in the registry with our hash is a hit."""
        try:
            image_id = self.engine.pull(plan.ref)
        except EngineError:
            return None  # not in the registry (or unreachable): build it
        image = self.engine.image(image_id)
        if image is not None and image.labels.get(HASH_LABEL) == plan.hash \
                and self._built_by_us(image.id, plan.hash):
            return image.id
        return None

    def _parent_ids(self, plan: ImagePlan) -> str | None:
        ids = []
        for parent in plan.parents:
            res = self.results.get(parent)
            parent_id = res.image_id if res and res.image_id else None
            if parent_id is None and parent in self.selected:
                # before the build (needs_build): the parent's cache hit
                parent_id = self._cache_hit(self.plans[parent])
            if parent_id is None:
                image = self.engine.image(self.plans[parent].ref)
                if image is None:
                    return None
                parent_id = image.id
            ids.append(parent_id)
        return ",".join(ids)

    def _on_top_of_parents(self, image_id: str, plan: ImagePlan) -> bool:
        """A cached child must have been built on its parents' current images."""
        if not plan.parents:
            return True
        image = self.engine.image(image_id)
        if image is None:
            return False
        return image.labels.get(PARENT_LABEL) == self._parent_ids(plan)

    # -- one image ---------------------------------------------------------
    def _build_one(self, name: str) -> ImageResult:
        plan = self.plans[name]
        start = time.monotonic()
        result = ImageResult(name=name, status=FAILED, ref=plan.ref, hash=plan.hash)
        existing = self.engine.image(plan.ref) if self.config.skip_existing else None
        if existing is not None:
            result.status = SKIPPED
            result.reason = "image exists (--skip-existing)"
            result.image_id = existing.id
            return self._finish(result, start)
        image_id = self._cache_hit(plan)
        if image_id is None and self.config.push and not self.config.no_cache:
            image_id = self._registry_hit(plan)
            if image_id is not None and not self._on_top_of_parents(image_id, plan):
                image_id = None
        if image_id is not None:
            self.engine.tag(image_id, plan.ref)
            result.status = CACHED
            result.image_id = image_id
            if self.config.push:
                self._push(plan)
            return self._finish(result, start)
        self.progress.event(name, "building")
        log_path = self.config.log_path / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        attempts = 0
        while True:
            attempts += 1
            try:
                with open(log_path, "a" if attempts > 1 else "w") as log:
                    result.image_id = self._docker_build(plan, log)
                break
            except BuildFailed as exc:
                if exc.transient and attempts <= self.config.retries:
                    self.progress.event(name, "retrying", f"attempt {attempts} failed: {exc.reason}")
                    time.sleep(min(2 ** attempts, 10))
                    continue
                result.reason = f"{exc.reason} (log: {log_path})"
                result.attempts = attempts
                return self._finish(result, start)
        result.attempts = attempts
        result.status = BUILT
        with self._lock:
            self._by_hash[plan.hash] = [result.image_id, *self._by_hash.get(plan.hash, [])]
        if self.config.push:
            self._push(plan)
        return self._finish(result, start)

    def _docker_build(self, plan: ImagePlan, log: Any) -> str:
        context = make_context(plan)
        labels = {HASH_LABEL: plan.hash, NAME_LABEL: plan.name}
        parent_ids = self._parent_ids(plan)
        if parent_ids:
            labels[PARENT_LABEL] = parent_ids
        image_id = ""
        last_lines: list[str] = []
        pending = ""  # the engine streams partial lines (apt's "E:" arrives in pieces)
        stream: Iterator[dict[str, Any]] = iter(())
        try:
            buildargs = {**plan.build_args, **self.extra_args}
            stream = self.engine.build(context, plan.ref, labels=labels, nocache=self.config.no_cache,
                                       buildargs=buildargs or None, network_mode="host")
            for chunk in stream:
                if "stream" in chunk:
                    text = chunk["stream"]
                    log.write(text)
                    pending += _ANSI.sub("", text)
                    *complete, pending = pending.split("\n")
                    last_lines = (last_lines + complete)[-30:]
                if "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
                if "error" in chunk:
                    err = chunk["error"].strip()
                    if pending:
                        last_lines = (last_lines + [pending])[-30:]
                    log.write(f"ERROR: {err}\n")
                    context_text = "\n".join(last_lines) + "\n" + err
                    raise BuildFailed(_short(err, last_lines), is_transient(context_text))
        except EngineError as exc:
            # the request itself failed (engine unreachable, bad context): retry only network trouble
            msg = str(exc)
            log.write(f"ERROR: {msg}\n")
            raise BuildFailed(msg, is_transient(msg)) from None
        finally:
            _close(stream)
        if not image_id:
            image = self.engine.image(plan.ref)
            if image is None:
                raise BuildFailed(f"the engine reported a successful build but has no image {plan.ref}", False)
            image_id = image.id
        return image_id

    def _push(self, plan: ImagePlan) -> None:
        try:
            self.engine.push(plan.ref)
        except EngineError as exc:
            raise BuildFailed(f"push of {plan.ref} failed: {exc}", False) from None

    def _finish(self, result: ImageResult, start: float) -> ImageResult:
        result.seconds = round(time.monotonic() - start, 2)
        if result.image_id:
            image = self.engine.image(result.image_id)
            if image is not None:
                result.size = image.size
        detail = f"{result.seconds:.1f}s"
        if result.reason:
            detail += f"  {result.reason}"
        self.progress.event(result.name, result.status, detail)
        return result

    # -- scheduling --------------------------------------------------------
    def run(self) -> dict[str, ImageResult]:
        self._index_local()
        order = [n for n in self.graph.order() if n in self.selected]
        pending = set(order)
        # parents outside the selection (--skip-parents) must already exist
        for name in order:
            for parent in self.plans[name].parents:
                if parent not in self.selected and not self._local_ref_exists(self.plans[parent].ref):
                    self._fail_subtree(name, f"parent '{parent}' was not selected and its image "
                                             f"{self.plans[parent].ref} does not exist")
        pending -= set(self.results)
        running: dict[Future[ImageResult], str] = {}
        with ThreadPoolExecutor(max_workers=self.config.threads) as pool:
            while pending or running:
                for name in [n for n in order if n in pending]:
                    parents = [p for p in self.plans[name].parents if p in self.selected]
                    if all(self.results.get(p) and self.results[p].status in (BUILT, CACHED, SKIPPED)
                           for p in parents):
                        pending.discard(name)
                        running[pool.submit(self._guarded, name)] = name
                if not running:
                    break
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in done:
                    name = running.pop(fut)
                    res = fut.result()
                    self.results[name] = res
                    if res.status == FAILED:
                        self._fail_subtree(name, None)
                        pending -= set(self.results)
        return self.results

    def _guarded(self, name: str) -> ImageResult:
        try:
            return self._build_one(name)
        except BuildFailed as exc:
            return ImageResult(name=name, status=FAILED, ref=self.plans[name].ref,
                               hash=self.plans[name].hash, reason=exc.reason)
        except EngineError as exc:
            return ImageResult(name=name, status=FAILED, ref=self.plans[name].ref,
                               hash=self.plans[name].hash, reason=f"engine error: {exc}")

    def _fail_subtree(self, name: str, own_reason: str | None) -> None:
        if own_reason is not None:
            self.results[name] = ImageResult(name=name, status=FAILED, ref=self.plans[name].ref,
                                             hash=self.plans[name].hash, reason=own_reason)
            self.progress.event(name, FAILED, own_reason)
        for child in sorted(self.graph.descendants(name)):
            if child in self.selected and child not in self.results:
                self.results[child] = ImageResult(
                    name=child, status=PARENT_FAILED, ref=self.plans[child].ref,
                    hash=self.plans[child].hash, reason=f"parent '{name}' failed",
                )
                self.progress.event(child, PARENT_FAILED, f"parent '{name}' failed")


def _close(stream: Iterator[dict[str, Any]]) -> None:
    """Stop a build stream we left early (at an error), so its engine connection is released now."""
    close = getattr(stream, "close", None)
    if callable(close):
        close()


def _short(err: str, last_lines: Iterable[str]) -> str:
    """One line that says why: the failing step plus apt's own error if present."""
    # the engine wraps a step's stderr in ANSI colour codes (ESC[91m ... ESC[0m)
    plain = (_ANSI.sub("", l).strip() for l in last_lines)
    apt_errors = [l for l in plain if l.startswith("E: ")]
    first = err.splitlines()[0] if err else "build failed"
    if apt_errors:
        return f"{first}: {apt_errors[-1]}"
    return first


def summary(results: dict[str, ImageResult], all_names: Iterable[str], selected: set[str]) -> dict[str, Any]:
    """JSON-ready summary: every image as built, cached, failed, skipped or unmatched."""
    out: dict[str, Any] = {
        BUILT: [], CACHED: [], FAILED: [], SKIPPED: [], UNMATCHED: [], PARENT_FAILED: [],
        "images": {},
    }
    for name in sorted(all_names):
        if name not in selected:
            out[UNMATCHED].append(name)
            continue
        res = results.get(name)
        if res is None:
            continue
        out[res.status].append(name)
        out["images"][name] = res.to_dict()
    out["failed_reasons"] = {n: out["images"][n]["reason"] for n in out[FAILED] + out[PARENT_FAILED]}
    return out

