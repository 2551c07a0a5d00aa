"""The node image and node containers, through the Docker SDK.

Nodes run without ``--privileged`` but with every capability except
CAP_SYS_RESOURCE, no seccomp/AppArmor filtering, unmasked /proc and /sys paths
and the host's cgroup tree: that is what a nested dockerd needs, and nothing
more. /var/lib/docker lives on a named volume (an ext4-backed directory on
this machine, so nested overlay2 works; overlay-on-overlay would not) that
survives ``stop``/``start`` and is removed by ``down``.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import time
from pathlib import Path
from typing import Any, Callable

from stackyard.errors import TestbedError
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


def ensure_image(client: Any, log: Log, force: bool = False) -> str:
    """Build the node image unless one with the current context hash exists; returns its ref."""
    import docker.errors

    digest = context_hash()
    ref = image_ref(digest)
    if not force:
        try:
            image = client.images.get(ref)
            if image.labels.get(HASH_LABEL) == digest:
                return ref
        except docker.errors.ImageNotFound:
            pass
    log(f"building node image {ref} (apt needs the Debian mirror)")
    start = time.monotonic()
    tail: list[str] = []
    try:
        stream = client.api.build(fileobj=_context_tar(NODE_DIR), custom_context=True, tag=ref,
                                  labels={HASH_LABEL: digest, LABEL: "node-image"},
                                  network_mode="host", rm=True, forcerm=True, nocache=force,
                                  decode=True)
        for chunk in stream:
            if "error" in chunk:
                raise TestbedError(f"node image build failed: {chunk['error'].strip()}\n"
                                   + "".join(tail[-15:]))
            if "stream" in chunk:
                tail.append(chunk["stream"])
    except docker.errors.APIError as exc:
        raise TestbedError(f"node image build failed: {exc}") from None
    client.api.tag(ref, IMAGE_REPO, "latest")
    log(f"node image built in {time.monotonic() - start:.1f}s")
    return ref


def container_spec(cfg: TestbedConfig, index: int, image: str,
                   devices: tuple[str, ...] = DEVICES) -> dict[str, Any]:
    """Arguments for the low-level ``create_container`` (pure, so it can be unit tested).

    ``host_config`` holds ``create_host_config`` keyword arguments. The CLI's
    ``--security-opt systempaths=unconfined`` is not an API option: the CLI
    turns it into empty MaskedPaths/ReadonlyPaths, which :func:`create` sets.
    """
    present = [d for d in devices if os.path.exists(d)]
    return {
        "image": image,
        "name": cfg.container(index),
        "hostname": cfg.hostname(index),
        "labels": {LABEL: cfg.prefix, f"{LABEL}.node": str(index)},
        "stop_signal": "SIGTERM",
        "stop_timeout": STOP_TIMEOUT,
        "host_config": {
            "network_mode": "none",
            "cap_add": ["ALL"],
            "cap_drop": ["SYS_RESOURCE"],
            "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
            "cgroupns": "host",
            "binds": {
                "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
                cfg.volume(index): {"bind": "/var/lib/docker", "mode": "rw"},
            },
            # a fresh /run per boot, like a real host: no stale pid files
            "tmpfs": {"/run": "rw,nosuid,nodev,exec,mode=755,size=512m"},
            "devices": [f"{d}:{d}:rwm" for d in present],
            "restart_policy": {"Name": "no"},
        },
        "unmask_system_paths": True,
    }


def create(client: Any, spec: dict[str, Any]) -> Any:
    """Create a node container from :func:`container_spec`; returns the SDK container."""
    host_config = client.api.create_host_config(**spec["host_config"])
    if spec.get("unmask_system_paths"):
        host_config["MaskedPaths"] = []
        host_config["ReadonlyPaths"] = []
    created = client.api.create_container(
        image=spec["image"], name=spec["name"], hostname=spec["hostname"], labels=spec["labels"],
        stop_signal=spec["stop_signal"], stop_timeout=spec["stop_timeout"],
        volumes=[b["bind"] for b in spec["host_config"]["binds"].values()],
        host_config=host_config)
    return client.containers.get(created["Id"])


def get_container(client: Any, cfg: TestbedConfig, index: int) -> Any | None:
    import docker.errors

    try:
        return client.containers.get(cfg.container(index))
    except docker.errors.NotFound:
        return None


def list_nodes(client: Any, cfg: TestbedConfig) -> dict[int, Any]:
    """Every node container of this test bed, running or not, by index."""
    found = client.containers.list(all=True, filters={"label": f"{LABEL}={cfg.prefix}"})
    out = {}
    for c in found:
        try:
            out[int(c.labels.get(f"{LABEL}.node", ""))] = c
        except ValueError:
            continue
    return dict(sorted(out.items()))


def ensure_running(client: Any, cfg: TestbedConfig, index: int, image: str) -> tuple[Any, bool]:
    """Create and/or start node ``index``; returns (container, was_already_running).

    A container from an older node image is kept (its volume holds state);
    ``down`` then ``up`` picks up a new image.
    """
    import docker.errors

    container = get_container(client, cfg, index)
    try:
        if container is None:
            container = create(client, container_spec(cfg, index, image))
        container.reload()
        if container.status == "running":
            return container, True
        container.start()
        container.reload()
    except docker.errors.APIError as exc:
        raise TestbedError(f"node{index}: cannot start container {cfg.container(index)}: "
                           f"{exc.explanation or exc}") from None
    if container.status != "running":
        raise TestbedError(f"node{index}: container {container.name} exited at once: "
                           f"{container.logs(tail=20).decode(errors='replace')}")
    return container, False


def pid_of(container: Any) -> int:
    container.reload()
    pid = int(container.attrs["State"]["Pid"])
    if pid <= 0:
        raise TestbedError(f"container {container.name} is not running")
    return pid


def exec_in(container: Any, cmd: list[str]) -> str:
    """Run ``cmd`` in the node; raises with its output when it fails."""
    rc, out = container.exec_run(cmd)
    text = out.decode(errors="replace") if out else ""
    if rc != 0:
        raise TestbedError(f"{container.name}: '{' '.join(cmd)}' failed (rc {rc}): {text.strip()}")
    return text


def write_file(container: Any, path: str, text: str) -> None:
    """Write ``text`` into ``path`` in place (works for Docker's bind-mounted /etc/hosts)."""
    rc, out = container.exec_run(["sh", "-c", 'printf "%s" "$1" > "$2"', "sh", text, path])
    if rc != 0:
        raise TestbedError(f"{container.name}: cannot write {path}: {out.decode(errors='replace')}")


def remove_node(client: Any, cfg: TestbedConfig, index: int, container: Any | None) -> None:
    import docker.errors

    if container is not None:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
    try:
        client.volumes.get(cfg.volume(index)).remove(force=True)
    except docker.errors.NotFound:
        pass
