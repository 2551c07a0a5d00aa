"""Operations on a deployed host: stop, destroy, check, prechecks, database dumps.

One implementation for both ways of reaching a host: the local CLI calls
these functions with the local engine, and the ``stackyard_host`` Ansible
module calls the very same functions on each remote host. Each works from
the plan stored on the host by the last deploy (or the plan given) and from
the deployment label, so it touches only that deployment's containers,
volumes, files and host resources.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import resources
from .engine import ContainerState, CreateRequest, Engine
from .errors import DeployError, EngineError
from .hostapply import STATE_DIR, container_health, has_registry
from .model import DEPLOYMENT_LABEL, MANAGED_LABEL, ContainerSpec, HostPlan


def deployment_filter(deployment: str) -> list[str]:
    """The engine label filters selecting one deployment's containers and volumes."""
    return [MANAGED_LABEL, f"{DEPLOYMENT_LABEL}={deployment}"]


def deployment_containers(engine: Engine, deployment: str) -> list[ContainerState]:
    return engine.containers(deployment_filter(deployment))


def stop(engine: Engine, deployment: str, names: list[str] | None = None, timeout: int = 60,
         dry_run: bool = False) -> list[str]:
    """Stop the deployment's running containers (all, or those named); returns the names.

    In parallel: an OpenStack service may take its whole graceful-shutdown
    time (60 s) to go, and one after the other that added minutes to a
    rollback's API outage.
    """
    stopped = [c.name for c in deployment_containers(engine, deployment)
               if c.running and (names is None or c.name in names)]
    if stopped and not dry_run:
        with ThreadPoolExecutor(max_workers=min(8, len(stopped))) as pool:
            list(pool.map(lambda name: engine.stop(name, timeout), stopped))
    return stopped


def prune(engine: Engine, deployment: str, plan: HostPlan, dry_run: bool = False) -> list[str]:
    """Remove the deployment's containers this host's plan no longer has; returns their names.

    After an upgrade or a rollback the plan is another release's: a rollback
    from 2026.1 must not leave 2026.1's extra services (Neutron's RPC server)
    running against 2025.1's databases. Left-over one-off containers of an
    interrupted job go too.
    """
    planned = {spec.name for spec in plan.containers()}
    gone = []
    for c in deployment_containers(engine, deployment):
        if c.name not in planned:
            if not dry_run:
                engine.remove(c.name)
            gone.append(c.name)
    return gone


@dataclass
class Destroyed:
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return ([f"removed container {n}" for n in self.containers]
                + [f"removed volume {n}" for n in self.volumes]
                + [f"removed {p}" for p in self.paths]
                + [f"removed {r}" for r in self.resources])


def rendered_dirs(plan: HostPlan | None, config_root: str) -> list[Path]:
    """Every directory the deployer rendered into on this host, and its state dir.

    From the stored plan; without one (a deploy that never got that far), the
    service directories under ``config_root`` that hold a config.json.
    """
    root = Path(config_root)
    dirs = {root / STATE_DIR}
    if plan is not None:
        dirs |= {Path(f.path).parent for f in plan.files}
    elif root.is_dir():
        dirs |= {p for p in root.iterdir() if (p / "config.json").exists()}
    return sorted(dirs)


def destroy(engine: Engine, deployment: str, plan: HostPlan | None, config_root: str,
            include_volumes: bool = False, dry_run: bool = False) -> Destroyed:
    """Remove the deployment's containers, rendered config, state, host resources
    and (``include_volumes``) volumes. Other deployments on the engine are not touched."""
    out = Destroyed()
    for c in deployment_containers(engine, deployment):
        if not dry_run:
            engine.remove(c.name)
        out.containers.append(c.name)
    for d in rendered_dirs(plan, config_root):
        if d.is_dir():
            if not dry_run:
                shutil.rmtree(d)
            out.paths.append(str(d))
    if plan is not None:
        out.resources = resources.teardown(plan.resources, dry_run)
    if include_volumes:
        for vol in engine.volumes(deployment_filter(deployment)):
            if not dry_run:
                engine.remove_volume(vol)
            out.volumes.append(vol)
    return out


@dataclass
class Health:
    name: str
    verdict: str   # healthy, starting, unhealthy, stopped, missing
    state: str

    @property
    def ok(self) -> bool:
        return self.verdict == "healthy"

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.verdict} ({self.state})"


def check(engine: Engine, plan: HostPlan) -> list[Health]:
    """Every planned service container: running and healthy?"""
    out = []
    for spec in plan.containers():
        verdict, state = container_health(engine, spec)
        out.append(Health(spec.name, verdict, state))
    return out


def bind_error(address: str, port: int) -> str | None:
    """Why a TCP listener could not bind ``address:port`` now (``Address already in use``), or
    None when it could: what a service or a Ceph monitor about to start would meet."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def prechecks(engine: Engine, address: str, ports: dict[int, str], images: list[str],
              deployment: str = "") -> list[str]:
    """Before a deploy: each port free on ``address`` unless its owning container
    (``ports``: port -> container name) of this deployment already holds it, and
    every image on the host or, for an image named with a registry, in that registry."""
    problems = []
    labels = deployment_filter(deployment) if deployment else [MANAGED_LABEL]
    running = {c.name for c in engine.containers(labels) if c.running}
    for port, owner in sorted(ports.items()):
        if owner in running:
            continue  # ours already holds it
        error = bind_error(address, port)
        if error:
            problems.append(f"port {address}:{port} for {owner} is in use ({error})")
    for ref in images:
        if engine.image_id(ref) is not None:
            continue
        if not has_registry(ref):
            problems.append(f"image {ref} is missing (run 'stackyard build')")
            continue
        try:
            engine.in_registry(ref)
        except EngineError as exc:
            problems.append(f"image {ref} is neither on the host nor in its registry ({exc}): "
                            f"push it with 'stackyard build --push'")
    return problems


def galera_position(engine: Engine, spec: ContainerSpec) -> dict:
    """uuid/seqno of a stopped member's data, read by galera-recover in a one-off
    container on the member's volume and config (it may need mariadbd --wsrep-recover)."""
    req = CreateRequest(name=f"{spec.name}_galera_recover", image=spec.image, command=["galera-recover"],
                        binds=list(spec.volumes), environment={"KOLLA_CONFIG_STRATEGY": "COPY_ALWAYS"},
                        network_mode="host")
    code, out, err = engine.run(req)
    if code != 0:
        raise DeployError(f"galera-recover failed (exit {code}): {err.strip() or out.strip()}")
    lines = out.strip().splitlines()
    try:
        return dict(json.loads(lines[-1]))
    except (IndexError, ValueError):
        raise DeployError(f"galera-recover printed no position: {out.strip()[-200:]}") from None


def running_images(engine: Engine, plan: HostPlan) -> dict[str, dict[str, str]]:
    """Every planned service container that exists: the image reference it is planned
    with, the image ID it runs (``id``) and the ID that reference names on this host
    now (``ref_id``; they differ when the container was not recreated on a new image)."""
    out = {}
    for spec in plan.containers():
        current = engine.container(spec.name)
        if current is not None:
            out[spec.name] = {"ref": spec.image, "id": current.image_id, "ref_id": engine.image_id(spec.image) or ""}
    return out


def image_version(engine: Engine, ref: str, kind: str) -> str:
    """MariaDB's or RabbitMQ's version in an image (a one-off container); an image named
    with a registry and not on this host yet is pulled first (the deploy would pull it)."""
    if engine.image_id(ref) is None and has_registry(ref):
        engine.pull(ref)
    command = {"mariadb": ["mariadbd", "--version"],
               "rabbitmq": ["sh", "-c", "ls /usr/lib/rabbitmq/lib"]}[kind]
    code, out, err = engine.run(CreateRequest(name=f"stackyard-version-{kind}-{int(time.time())}", image=ref,
                                              command=command, network_mode="none"), timeout=120)
    pattern = r"Ver (\d+\.\d+\.\d+)" if kind == "mariadb" else r"rabbitmq_server-(\d+\.\d+\.\d+)"
    m = re.search(pattern, out + err)
    if code != 0 or not m:
        raise DeployError(f"cannot read the {kind} version of {ref}: {(out + err).strip()[-200:]}")
    return m.group(1)


# ----------------------------------------------------------------------------- database dumps
#: where a dump sits inside the MariaDB container while it is copied out or in
DUMP_IN_CONTAINER = "/tmp/stackyard-backup.sql"
#: a dump's file name on a host, under <config_root>/.stackyard/
DUMP_NAME = "backup-{id}.sql.gz"


def list_databases_command(user: str) -> list[str]:
    return ["mariadb", "-u", user, "-N", "-B", "-e", "SHOW DATABASES"]


def dump_command(user: str, databases: list[str]) -> list[str]:
    """mariadb-dump of ``databases`` into :data:`DUMP_IN_CONTAINER` (a consistent InnoDB
    snapshot while the cloud runs; DROP DATABASE first, so loading it replaces them).
    Names and user are arguments of ``sh``, never parsed by it; the password comes from
    the exec's MYSQL_PWD."""
    return ["sh", "-c", "umask 077; u=$1; shift; mariadb-dump -u \"$u\" --single-transaction --routines "
                        "--triggers --events --add-drop-database --databases \"$@\" > " + DUMP_IN_CONTAINER,
            "mariadb-dump", user, *databases]


def load_command(user: str) -> list[str]:
    """Load :data:`DUMP_IN_CONTAINER` with the mariadb client (password from MYSQL_PWD)."""
    return ["sh", "-c", "mariadb -u \"$1\" < " + DUMP_IN_CONTAINER, "mariadb", user]


def _running(engine: Engine, container: str) -> None:
    current = engine.container(container)
    if current is None or not current.running:
        raise DeployError(f"container {container} is not running: start the deployment first (stackyard deploy)")


def present_databases(engine: Engine, container: str, user: str, password: str, wanted: list[str]) -> list[str]:
    """Those of ``wanted`` that exist in the running MariaDB ``container``, in ``wanted``'s order."""
    _running(engine, container)
    code, out = engine.exec(container, list_databases_command(user), environment={"MYSQL_PWD": password})
    if code != 0:
        raise DeployError(f"cannot list databases in {container}: {out.strip()[-500:]}")
    present = set(out.split())
    return [d for d in wanted if d in present]


def dump_databases(engine: Engine, container: str, user: str, password: str, databases: list[str]) -> bytes:
    """One gzip-compressed mariadb-dump of ``databases`` from the running ``container``."""
    _running(engine, container)
    try:
        code, out = engine.exec(container, dump_command(user, databases), user="root",
                                environment={"MYSQL_PWD": password})
        if code != 0:
            raise DeployError(f"mariadb-dump failed in {container}: {out.strip()[-500:]}")
        dump = engine.get_file(container, DUMP_IN_CONTAINER)
    finally:
        engine.exec(container, ["rm", "-f", DUMP_IN_CONTAINER], user="root")
    return gzip.compress(dump, mtime=0)


def load_databases(engine: Engine, container: str, user: str, password: str, dump_gz: bytes) -> None:
    """Load a gzip-compressed dump (DROP, CREATE, rows) into the running ``container``."""
    _running(engine, container)
    engine.put_file(container, DUMP_IN_CONTAINER, gzip.decompress(dump_gz))
    try:
        code, out = engine.exec(container, load_command(user), user="root", environment={"MYSQL_PWD": password})
    finally:
        engine.exec(container, ["rm", "-f", DUMP_IN_CONTAINER], user="root")
    if code != 0:
        raise DeployError(f"loading the databases into {container} failed: {out.strip()[-500:]}")


def dump_path(config_root: str, backup_id: str) -> Path:
    """Where a host keeps a dump between db_dump and the deploy host's fetch (or copy and db_load)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", backup_id):
        raise DeployError(f"backup id {backup_id!r}: letters, digits, '.', '_' and '-' only")
    return Path(config_root) / STATE_DIR / DUMP_NAME.format(id=backup_id)


def write_private_bytes(path: Path, data: bytes) -> None:
    """``data`` into ``path``, mode 0600 from its creation (directory 0700 if made here)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(data)
    os.replace(tmp, path)


def db_dump(engine: Engine, container: str, user: str, password: str, wanted: list[str], config_root: str,
            backup_id: str) -> dict:
    """Dump those of ``wanted`` that exist to this host's dump file (0600); its path, sha256,
    size and the databases in it."""
    dbs = present_databases(engine, container, user, password, wanted)
    data = dump_databases(engine, container, user, password, dbs) if dbs else b""
    path = dump_path(config_root, backup_id)
    write_private_bytes(path, data)
    return {"path": str(path), "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "databases": dbs}


def db_load(engine: Engine, container: str, user: str, password: str, path: str) -> int:
    """Load the dump file ``path`` (gzip-compressed SQL) into ``container``; returns its size."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DeployError(f"cannot read the dump {path}: {exc.strerror}") from None
    load_databases(engine, container, user, password, data)
    return len(data)
