"""The one adapter to the container engine: every engine call stackyard makes goes through here.

Why one module: callers (the deploy executor, the image builder, the test bed)
deal in plain data (:class:`CreateRequest`, :class:`ContainerState`) and in
:class:`~.errors.EngineError`, never in SDK objects or SDK exceptions. A
second backend (Podman, whose service speaks the same API on its own socket)
then means a second :class:`Engine` factory, not a change in every caller.

Only the docker SDK's public API is used: the low-level ``APIClient`` calls
(``create_host_config``, ``create_container``, ``inspect_*`` …), so options the
high-level API lacks (``ReadonlyPaths``) need no private helpers.

Standard library and the docker SDK only: this module ships to remote hosts
inside the agent package.
"""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import docker
import docker.errors

from .errors import EngineError

#: container engines stackyard can drive (kolla_container_engine)
SUPPORTED_ENGINES = ("docker",)


@dataclass
class CreateRequest:
    """Everything the engine needs to create one container (plain data, engine-neutral)."""

    name: str
    image: str
    command: list[str] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    #: "source:destination[:mode]"; a source without a leading / is a named volume
    binds: list[str] = field(default_factory=list)
    network_mode: str = "host"
    hostname: str | None = None
    user: str | None = None
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    #: "host:container:permissions"
    devices: list[str] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=list)
    cgroupns: str | None = None
    tmpfs: dict[str, str] = field(default_factory=dict)
    #: None: the engine's restart policy default (no restart)
    restart_policy: str | None = None
    #: the engine's healthcheck shape (durations in nanoseconds)
    healthcheck: dict[str, Any] | None = None
    stop_signal: str = "SIGTERM"
    stop_timeout: int | None = None
    #: None keeps the engine's defaults; a list replaces them ([] unmasks everything)
    readonly_paths: list[str] | None = None
    masked_paths: list[str] | None = None


@dataclass
class ContainerState:
    """What the executor and the operations need to know about one container."""

    name: str
    id: str
    image_id: str = ""
    #: created, running, restarting, paused, exited, dead
    status: str = ""
    exit_code: int = 0
    #: healthy, unhealthy, starting, or none (no healthcheck)
    health: str = "none"
    labels: dict[str, str] = field(default_factory=dict)
    started_at: str = ""
    pid: int = 0

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass
class ImageInfo:
    id: str
    labels: dict[str, str] = field(default_factory=dict)
    size: int = 0
    tags: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _errors(what: str) -> Iterator[None]:
    """Turn SDK and connection errors into one-line EngineErrors naming the operation."""
    try:
        yield
    except docker.errors.APIError as exc:
        detail = str(exc.explanation or exc).strip().splitlines()
        raise EngineError(f"{what}: {detail[0] if detail else exc}") from None
    except docker.errors.DockerException as exc:
        raise EngineError(f"{what}: {exc}") from None
    except OSError as exc:  # socket errors from requests/urllib3 surface as OSError subclasses
        raise EngineError(f"{what}: {exc}") from None


def _split_ref(ref: str) -> tuple[str, str]:
    """``registry:5000/ns/name:tag`` -> (repository, tag); a missing tag is ``latest``."""
    repo, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, "latest"
    return repo, tag


class Engine:
    """A connection to one container engine (the Docker API, local socket or DOCKER_HOST)."""

    def __init__(self, api: docker.APIClient):
        self.api = api

    # -- connection ----------------------------------------------------------------
    @classmethod
    def connect(cls, kind: str = "docker", timeout: int = 600) -> "Engine":
        """Connect and check the engine answers; raises EngineError naming the cause."""
        if kind not in SUPPORTED_ENGINES:
            raise EngineError(f"container engine '{kind}' is not supported "
                              f"(supported: {', '.join(SUPPORTED_ENGINES)})")
        try:
            api = docker.from_env(timeout=timeout).api
            api.ping()
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot reach the container engine: {exc}") from None
        return cls(api)

    def close(self) -> None:
        self.api.close()

    # -- containers ----------------------------------------------------------------
    def container(self, name: str) -> ContainerState | None:
        """The container ``name`` (or ID), or None when there is none."""
        try:
            data = self.api.inspect_container(name)
        except docker.errors.NotFound:
            return None
        except docker.errors.DockerException as exc:
            raise EngineError(f"inspect container {name}: {exc}") from None
        state = data.get("State") or {}
        return ContainerState(
            name=str(data.get("Name", name)).lstrip("/"), id=data["Id"], image_id=data.get("Image", ""),
            status=state.get("Status", ""), exit_code=int(state.get("ExitCode") or 0),
            health=(state.get("Health") or {}).get("Status", "none"),
            labels=dict((data.get("Config") or {}).get("Labels") or {}),
            started_at=state.get("StartedAt", ""), pid=int(state.get("Pid") or 0))

    def containers(self, labels: list[str] | None = None, all: bool = True) -> list[ContainerState]:
        """Containers carrying every label filter (``key`` or ``key=value``), by name.

        Built from the list call alone (no health, no start time): enough to
        choose what to stop or remove; :meth:`container` gives the full state.
        """
        with _errors("list containers"):
            found = self.api.containers(all=all, filters={"label": labels} if labels else None)
        out = [ContainerState(name=(c.get("Names") or ["/?"])[0].lstrip("/"), id=c["Id"],
                              image_id=c.get("ImageID", ""), status=c.get("State", ""),
                              labels=dict(c.get("Labels") or {}))
               for c in found]
        return sorted(out, key=lambda c: c.name)

    def create(self, req: CreateRequest) -> str:
        """Create (not start) a container; returns its ID."""
        restart = {"Name": req.restart_policy} if req.restart_policy and req.restart_policy != "no" else None
        # only the settings given: older SDKs (Debian bookworm's 5.0) lack some keywords
        options: dict[str, Any] = {"binds": req.binds, "network_mode": req.network_mode, "cap_add": req.cap_add,
                                   "cap_drop": req.cap_drop, "devices": req.devices,
                                   "security_opt": req.security_opt, "cgroupns": req.cgroupns,
                                   "tmpfs": req.tmpfs, "restart_policy": restart}
        with _errors(f"create container {req.name}"):
            host_config = self.api.create_host_config(**{k: v for k, v in options.items() if v})
            if req.readonly_paths is not None:
                host_config["ReadonlyPaths"] = list(req.readonly_paths)
            if req.masked_paths is not None:
                host_config["MaskedPaths"] = list(req.masked_paths)
            created = self.api.create_container(
                image=req.image, name=req.name, command=req.command, environment=req.environment,
                labels=req.labels, hostname=req.hostname, user=req.user, healthcheck=req.healthcheck,
                stop_signal=req.stop_signal, stop_timeout=req.stop_timeout,
                volumes=[b.split(":")[1] for b in req.binds if ":" in b] or None, host_config=host_config)
        return str(created["Id"])

    def start(self, name: str) -> None:
        with _errors(f"start container {name}"):
            self.api.start(name)

    def stop(self, name: str, timeout: int = 30) -> None:
        """Stop ``name``; a container that is already gone is not an error."""
        try:
            self.api.stop(name, timeout=timeout)
        except docker.errors.NotFound:
            pass
        except docker.errors.DockerException as exc:
            raise EngineError(f"stop container {name}: {exc}") from None

    def remove(self, name: str) -> bool:
        """Force-remove ``name``; False when there was nothing to remove."""
        try:
            self.api.remove_container(name, force=True)
            return True
        except docker.errors.NotFound:
            return False
        except docker.errors.DockerException as exc:
            raise EngineError(f"remove container {name}: {exc}") from None

    def wait(self, name: str, timeout: float) -> int:
        """Wait for ``name`` to exit; returns its exit code."""
        with _errors(f"wait for container {name}"):
            status = self.api.wait(name, timeout=timeout)
        return int(status.get("StatusCode", 1))

    def logs(self, name: str, tail: int | None = None, stdout: bool = True, stderr: bool = True,
             since: int | None = None) -> str:
        with _errors(f"logs of container {name}"):
            data = self.api.logs(name, stdout=stdout, stderr=stderr, tail=tail if tail is not None else "all",
                                 since=since)
        return data.decode(errors="replace") if isinstance(data, bytes) else str(data)

    def exec(self, name: str, command: list[str], user: str = "",
             environment: dict[str, str] | None = None) -> tuple[int, str]:
        """Run ``command`` in the running container ``name``; returns (exit code, output).

        ``environment`` reaches only this process (a secret given here is in no
        command line and not in the container's configuration).
        """
        with _errors(f"exec in container {name}"):
            exec_id = self.api.exec_create(name, command, stdout=True, stderr=True, user=user,
                                           environment=environment or None)["Id"]
            output = self.api.exec_start(exec_id)
            code = self.api.exec_inspect(exec_id).get("ExitCode")
        text = output.decode(errors="replace") if isinstance(output, bytes) else str(output)
        return (int(code) if code is not None else 1), text

    def put_file(self, name: str, path: str, data: bytes, mode: int = 0o600) -> None:
        """Write ``data`` to ``path`` (its directory must exist) in container ``name``."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(os.path.basename(path))
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
        with _errors(f"copy {path} into container {name}"):
            if not self.api.put_archive(name, os.path.dirname(path) or "/", buf.getvalue()):
                raise EngineError(f"copy {path} into container {name}: refused")

    def get_file(self, name: str, path: str) -> bytes:
        """The content of the regular file ``path`` in container ``name``."""
        with _errors(f"copy {path} out of container {name}"):
            stream, _stat = self.api.get_archive(name, path)
            buf = io.BytesIO(b"".join(stream))
        with tarfile.open(fileobj=buf) as tar:
            member = tar.next()
            handle = tar.extractfile(member) if member is not None else None
            if handle is None:
                raise EngineError(f"copy {path} out of container {name}: not a regular file")
            return handle.read()

    def run(self, req: CreateRequest, timeout: float = 600) -> tuple[int, str, str]:
        """Create, start and wait for a one-off container; returns (code, stdout, stderr) and removes it."""
        self.remove(req.name)
        self.create(req)
        try:
            self.start(req.name)
            code = self.wait(req.name, timeout)
            out = self.logs(req.name, stderr=False)
            err = self.logs(req.name, stdout=False)
        finally:
            self.remove(req.name)
        return code, out, err

    # -- images --------------------------------------------------------------------
    def image(self, ref: str) -> ImageInfo | None:
        try:
            data = self.api.inspect_image(ref)
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.DockerException as exc:
            raise EngineError(f"inspect image {ref}: {exc}") from None
        return ImageInfo(id=data["Id"], labels=dict((data.get("Config") or {}).get("Labels") or {}),
                         size=int(data.get("Size") or 0), tags=list(data.get("RepoTags") or []))

    def image_id(self, ref: str) -> str | None:
        info = self.image(ref)
        return info.id if info else None

    def images(self, label: str | None = None) -> list[ImageInfo]:
        with _errors("list images"):
            found = self.api.images(filters={"label": label} if label else None)
        return [ImageInfo(id=i["Id"], labels=dict(i.get("Labels") or {}), size=int(i.get("Size") or 0),
                          tags=list(i.get("RepoTags") or [])) for i in found]

    def image_history(self, image_id: str) -> list[dict[str, Any]]:
        with _errors(f"history of image {image_id}"):
            return list(self.api.history(image_id))

    def pull(self, ref: str) -> str:
        """Pull ``ref``; returns the image ID. Raises EngineError with the registry's reason."""
        repo, tag = _split_ref(ref)
        with _errors(f"pull {ref}"):
            for chunk in self.api.pull(repo, tag=tag, stream=True, decode=True):
                if "error" in chunk:
                    raise EngineError(f"pull {ref}: {str(chunk['error']).strip()}")
        found = self.image_id(ref)
        if not found:
            raise EngineError(f"pull {ref}: the engine reported success but has no such image")
        return found

    def in_registry(self, ref: str) -> None:
        """Raise EngineError unless ``ref``'s registry holds it (no download)."""
        with _errors(f"registry lookup of {ref}"):
            self.api.inspect_distribution(ref)

    def tag(self, image_id: str, ref: str) -> None:
        repo, tag = _split_ref(ref)
        with _errors(f"tag {image_id} as {ref}"):
            self.api.tag(image_id, repo, tag)

    def remove_image(self, ref: str) -> bool:
        try:
            self.api.remove_image(ref, force=True)
            return True
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.DockerException as exc:
            raise EngineError(f"remove image {ref}: {exc}") from None

    def push(self, ref: str) -> None:
        repo, tag = _split_ref(ref)
        with _errors(f"push {ref}"):
            for chunk in self.api.push(repo, tag=tag, stream=True, decode=True):
                if "error" in chunk:
                    raise EngineError(f"push {ref}: {str(chunk['error']).strip()}")

    def build(self, context: IO[bytes], tag: str, *, labels: dict[str, str] | None = None,
              nocache: bool = False, buildargs: dict[str, str] | None = None,
              network_mode: str = "host") -> Iterator[dict[str, Any]]:
        """Build from a tar ``context`` (holding a Dockerfile); yields the engine's progress messages.

        Messages are dicts with ``stream`` (output), ``aux`` (``{"ID": …}``) or
        ``error``; the caller decides what an ``error`` means. Errors of the
        request itself raise EngineError.
        """
        with _errors(f"build {tag}"):
            yield from self.api.build(fileobj=context, custom_context=True, tag=tag, labels=labels,
                                      network_mode=network_mode, rm=True, forcerm=True, pull=False,
                                      nocache=nocache, decode=True, buildargs=buildargs or None)

    def import_image(self, tarball: str, ref: str, changes: list[str]) -> None:
        repo, tag = _split_ref(ref)
        with _errors(f"import {ref}"):
            self.api.import_image_from_file(tarball, repository=repo, tag=tag, changes=changes)

    # -- volumes -------------------------------------------------------------------
    def volume_exists(self, name: str) -> bool:
        try:
            self.api.inspect_volume(name)
            return True
        except docker.errors.NotFound:
            return False
        except docker.errors.DockerException as exc:
            raise EngineError(f"inspect volume {name}: {exc}") from None

    def volume_mountpoint(self, name: str) -> str:
        with _errors(f"inspect volume {name}"):
            return str(self.api.inspect_volume(name).get("Mountpoint", ""))

    def create_volume(self, name: str, labels: dict[str, str]) -> None:
        with _errors(f"create volume {name}"):
            self.api.create_volume(name, labels=labels)

    def volumes(self, labels: list[str] | None = None) -> list[str]:
        """Names of the volumes carrying every label filter (``key`` or ``key=value``)."""
        with _errors("list volumes"):
            found = self.api.volumes(filters={"label": labels} if labels else None) or {}
        return sorted(v["Name"] for v in found.get("Volumes") or [])

    def remove_volume(self, name: str) -> bool:
        for attempt in range(5):
            try:
                self.api.remove_volume(name, force=True)
                return True
            except docker.errors.NotFound:
                return False
            except docker.errors.APIError as exc:
                # a container removed a moment ago may still hold it
                if exc.status_code == 409 and attempt < 4:
                    time.sleep(1)
                    continue
                raise EngineError(f"remove volume {name}: {exc.explanation or exc}") from None
        return False
