"""The node image and node containers, through the engine adapter.

Nodes run without ``--privileged`` but with every capability except
CAP_SYS_RESOURCE, no seccomp/AppArmor filtering, unmasked /proc and /sys paths
and the host's cgroup tree: that is what a nested dockerd needs, and nothing
more. /var/lib/docker lives on a named volume (an ext4-backed directory on
this machine, so nested overlay2 works; overlay-on-overlay would not) that
survives ``stop``/``start`` and is removed by ``down``.

Engine calls go through :class:`stackyard.engine.Engine` (plain data in and
out, :class:`~stackyard.errors.EngineError` on failure); containers are named
by :meth:`TestbedConfig.container`, so functions take the engine and a name.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import time
from pathlib import Path
from typing import Callable

from stackyard.engine import ContainerState, CreateRequest, Engine
from stackyard.errors import EngineError, TestbedError
from stackyard.testbed.config import LABEL, TestbedConfig

NODE_DIR = Path(__file__).resolve().parent / "node"
IMAGE_REPO = "stackyard/testbed-node"
HASH_LABEL = "org.stackyard.testbed.node-hash"
#: seconds docker waits after SIGTERM: node-init stops nested dockerd first
STOP_TIMEOUT = 30
DEVICES = ("/dev/net/tun", "/dev/kvm")

Log = Callable[[str], None]


def context_hash(node_dir: Path = NODE_DIR) -> str:
    """Hash of every file in the build context: the image is rebuilt when it changes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in node_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(node_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def image_ref(digest: str) -> str:
    return f"{IMAGE_REPO}:{digest}"


def _context_tar(node_dir: Path) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(p for p in node_dir.rglob("*") if p.is_file()):
            info = tar.gettarinfo(str(path), arcname=path.relative_to(node_dir).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            with path.open("rb") as fh:
                tar.addfile(info, fh)
    buf.seek(0)
    return buf


def ensure_image(engine: Engine, log: Log, force: bool = False) -> str:
    """Build the node image unless one with the current context hash exists; returns its ref."""
    digest = context_hash()
    ref = image_ref(digest)
    if not force:
        image = engine.image(ref)
        if image is not None and image.labels.get(HASH_LABEL) == digest:
            return ref
    log(f"building node image {ref} (apt needs the Debian mirror)")
    start = time.monotonic()
    tail: list[str] = []
    try:
        for chunk in engine.build(_context_tar(NODE_DIR), ref, labels={HASH_LABEL: digest, LABEL: "node-image"},
                                  nocache=force, network_mode="host"):
            if "error" in chunk:
                raise TestbedError(f"node image build failed: {chunk['error'].strip()}\n"
                                   + "".join(tail[-15:]))
            if "stream" in chunk:
                tail.append(chunk["stream"])
        engine.tag(ref, f"{IMAGE_REPO}:latest")
    except EngineError as exc:
        raise TestbedError(f"node image build failed: {exc}") from None
    log(f"node image built in {time.monotonic() - start:.1f}s")
    return ref


def container_spec(cfg: TestbedConfig, index: int, image: str,
                   devices: tuple[str, ...] = DEVICES) -> CreateRequest:
    """The node container to create (pure, so it can be unit tested).

    The CLI's ``--security-opt systempaths=unconfined`` is not an API option:
    the CLI turns it into empty MaskedPaths/ReadonlyPaths, which is what
    ``masked_paths=[]`` and ``readonly_paths=[]`` ask for. Devices this machine
    lacks are left out (a node without /dev/kvm still runs, with emulation).
    """
    present = [d for d in devices if os.path.exists(d)]
    return CreateRequest(
        name=cfg.container(index),
        image=image,
        hostname=cfg.hostname(index),
        labels={LABEL: cfg.prefix, f"{LABEL}.node": str(index)},
        network_mode="none",
        cap_add=["ALL"],
        cap_drop=["SYS_RESOURCE"],
        security_opt=["seccomp=unconfined", "apparmor=unconfined"],
        cgroupns="host",
        binds=["/sys/fs/cgroup:/sys/fs/cgroup:rw", f"{cfg.volume(index)}:/var/lib/docker:rw"],
        # a fresh /run per boot, like a real host: no stale pid files
        tmpfs={"/run": "rw,nosuid,nodev,exec,mode=755,size=512m"},
        devices=[f"{d}:{d}:rwm" for d in present],
        restart_policy="no",
        stop_signal="SIGTERM",
        stop_timeout=STOP_TIMEOUT,
        masked_paths=[],
        readonly_paths=[],
    )


def create(engine: Engine, req: CreateRequest) -> ContainerState:
    """Create (not start) a node container from :func:`container_spec`; returns its state."""
    engine.create(req)
    state = engine.container(req.name)
    if state is None:
        raise TestbedError(f"container {req.name} vanished right after it was created")
    return state


def get_container(engine: Engine, cfg: TestbedConfig, index: int) -> ContainerState | None:
    """Node ``index``'s container, or None when it does not exist."""
    return engine.container(cfg.container(index))


def list_nodes(engine: Engine, cfg: TestbedConfig) -> dict[int, ContainerState]:
    """Every node container of this test bed, running or not, by index."""
    out = {}
    for c in engine.containers(labels=[f"{LABEL}={cfg.prefix}"]):
        try:
            out[int(c.labels.get(f"{LABEL}.node", ""))] = c
        except ValueError:
            continue
    return dict(sorted(out.items()))


def ensure_running(engine: Engine, cfg: TestbedConfig, index: int, image: str) -> tuple[ContainerState, bool]:
    """Create and/or start node ``index``; returns (its state, was_already_running).

    A container from an older node image is kept (its volume holds state);
    ``down`` then ``up`` picks up a new image.
    """
    name = cfg.container(index)
    try:
        container = engine.container(name)
        if container is None:
            container = create(engine, container_spec(cfg, index, image))
        if container.running:
            return container, True
        engine.start(name)
        container = engine.container(name)
    except EngineError as exc:
        raise TestbedError(f"node{index}: cannot start container {name}: {exc}") from None
    if container is None:
        raise TestbedError(f"node{index}: container {name} vanished right after it was started")
    if not container.running:
        raise TestbedError(f"node{index}: container {name} exited at once: {engine.logs(name, tail=20)}")
    return container, False


def pid_of(engine: Engine, name: str) -> int:
    """PID (in this machine's namespace) of the running container ``name``: the handle to its netns."""
    container = engine.container(name)
    if container is None or container.pid <= 0:
        raise TestbedError(f"container {name} is not running")
    return container.pid


def exec_in(engine: Engine, name: str, cmd: list[str]) -> str:
    """Run ``cmd`` in the node ``name``; raises with its output when it fails."""
    rc, text = engine.exec(name, cmd)
    if rc != 0:
        raise TestbedError(f"{name}: '{' '.join(cmd)}' failed (rc {rc}): {text.strip()}")
    return text


def write_file(engine: Engine, name: str, path: str, text: str) -> None:
    """Write ``text`` into ``path`` in place (works for Docker's bind-mounted /etc/hosts)."""
    rc, out = engine.exec(name, ["sh", "-c", 'printf "%s" "$1" > "$2"', "sh", text, path])
    if rc != 0:
        raise TestbedError(f"{name}: cannot write {path}: {out.strip()}")


def remove_node(engine: Engine, cfg: TestbedConfig, index: int, container: ContainerState | None) -> None:
    """Remove node ``index``'s container (when given) and its volume; whatever is gone already is fine."""
    if container is not None:
        engine.remove(container.name)
    engine.remove_volume(cfg.volume(index))
