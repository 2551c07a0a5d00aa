"""The wheel cache of source builds: filled by the builder image, served to image builds on loopback.

Why this shape: the classic image builder has no cache mounts, and a wheel
copied into an image layer stays in it even when a later layer deletes it.
So wheels never enter a runtime image. ``stackyard build`` runs the
``openstack-builder`` image (compilers, -dev headers, the host's CA bundle
for PyPI) as a one-off container that fills ``<work_dir>/wheels/<release>/``
on the host, then serves that directory on 127.0.0.1 while the runtime
images build (their ``pip install --no-index --find-links`` reads it; builds
use the host's network). The cache is shared by every image and every build
of the release: oslo.* is fetched and built once per build host.

A stamp per requirement set (``.done-<key>``) makes an unchanged build skip
the builder entirely.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from stackyard.engine import CreateRequest, Engine
from stackyard.errors import EngineError, StackyardError
from stackyard.imagebuild.sources import ProjectSource

#: where the host keeps its CA bundle (Debian's ca-certificates), handed to pip in the builder only
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CA_IN_BUILDER = "/etc/stackyard/pip-ca.crt"


class WheelBuildError(StackyardError):
    """A wheel could not be built or fetched: the message names the package."""


def normalize(name: str) -> str:
    """A distribution name as wheel file names spell it (``openstack-placement`` -> ``openstack_placement``)."""
    return re.sub(r"[-_.]+", "_", name).lower()


@dataclass
class WheelSet:
    """What one build needs from the cache."""

    release: str
    constraints: Path
    requirements: list[str]
    locals: dict[str, ProjectSource] = field(default_factory=dict)

    def key(self) -> str:
        h = hashlib.sha256()
        h.update(self.constraints.read_bytes())
        for r in sorted(set(self.requirements)):
            h.update(b"req\0" + r.encode())
        for name, src in sorted(self.locals.items()):
            h.update(f"local\0{name}\0{src.digest}".encode())
        return h.hexdigest()[:20]


def local_dir(name: str, src: ProjectSource) -> str:
    """The cache subdirectory holding the one wheel built from a local source."""
    return f"local/{name}-{src.digest[:16]}"


class WheelCache:
    def __init__(self, work_dir: str | Path, release: str):
        self.dir = Path(work_dir) / "wheels" / release

    def stamp(self, wanted: WheelSet) -> Path:
        return self.dir / f".done-{wanted.key()}"

    def local_version(self, name: str, src: ProjectSource) -> str:
        """The version of the wheel built from a local source (pip installs exactly that)."""
        found = sorted((self.dir / local_dir(name, src)).glob(f"{normalize(name)}-*.whl"))
        if len(found) != 1:
            raise WheelBuildError(f"sources.{name}: expected one wheel built from {src.location}, "
                                  f"found {len(found)} in {self.dir / local_dir(name, src)}")
        return found[0].name.split("-")[1]

    def ensure(self, engine: Engine, builder_ref: str, wanted: WheelSet,
               log: Callable[[str], None]) -> bool:
        """Fill the cache for ``wanted`` (a no-op when its stamp exists); returns whether the builder ran."""
        stamp = self.stamp(wanted)
        if stamp.exists():
            return False
        self.dir.mkdir(parents=True, exist_ok=True)
        binds = [f"{self.dir}:/wheels", f"{wanted.constraints}:/constraints.txt:ro"]
        env = {"HOME": "/tmp"}
        if HOST_CA_BUNDLE.is_file():
            binds.append(f"{HOST_CA_BUNDLE}:{CA_IN_BUILDER}:ro")
            env["PIP_CERT"] = CA_IN_BUILDER
        command = ["build-wheels", "/wheels", "/constraints.txt"]
        for name, src in sorted(wanted.locals.items()):
            inside = f"/src/{name}" + (f"/{Path(src.location).name}" if Path(src.location).is_file() else "")
            binds.append(f"{src.location}:{inside}:ro")
            command += ["--local", f"{name}={inside}={local_dir(name, src)}"]
        command += sorted(set(wanted.requirements))
        log(f"building wheels for {len(set(wanted.requirements))} requirements into {self.dir}")
        req = CreateRequest(name=f"stackyard-wheels-{os.getpid()}", image=builder_ref, command=command,
                            environment=env, binds=binds, network_mode="host", user="root")
        try:
            code, out, err = engine.run(req, timeout=7200)
        except EngineError as exc:
            raise WheelBuildError(f"wheel builder: {exc}") from None
        text = (out + err).strip().splitlines()
        (self.dir / "build-wheels.log").write_text("\n".join(text) + "\n")
        if code != 0:
            failed = next((ln.split("failed:", 1)[1].strip() for ln in reversed(text)
                           if ln.startswith("build-wheels: failed:")), "unknown package")
            tail = "\n".join(ln for ln in text[-15:] if not ln.startswith("build-wheels:"))
            raise WheelBuildError(f"wheel build failed for {failed} (log: {self.dir / 'build-wheels.log'}):\n"
                                  f"{tail}")
        stamp.write_text(json.dumps({"requirements": sorted(set(wanted.requirements)),
                                     "locals": sorted(wanted.locals)}) + "\n")
        return True


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (a free port) for pip's ``--find-links``; yields the URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="stackyard-wheels", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


VERSIONS_SCRIPT = ("import importlib.metadata as m, json; "
                   "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}, sort_keys=True))")


def installed_versions(engine: Engine, image_ref: str, image_hash: str, work_dir: str | Path,
                       venv: str = "/var/lib/kolla/venv") -> dict[str, str]:
    """Every distribution in an image's virtualenv, read once per image hash (then from the work dir)."""
    record = Path(work_dir) / "versions" / f"{image_hash}.json"
    try:
        return dict(json.loads(record.read_text()))
    except (FileNotFoundError, ValueError):
        pass
    req = CreateRequest(name=f"stackyard-versions-{os.getpid()}-{image_hash[:8]}", image=image_ref,
                        command=[f"{venv}/bin/python3", "-c", VERSIONS_SCRIPT], network_mode="none")
    code, out, err = engine.run(req, timeout=120)
    if code != 0:
        raise EngineError(f"reading the installed versions of {image_ref}: {err.strip() or out.strip()}")
    versions = dict(json.loads(out.strip().splitlines()[-1]))
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(versions, indent=1, sort_keys=True) + "\n")
    return versions
