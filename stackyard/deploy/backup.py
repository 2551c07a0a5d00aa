"""Backups of a deployment: its databases, its config and what it ran.

A backup is a directory ``<config dir>/backups/<id>/`` (0700, every file 0600):

- ``databases.sql.gz``: one ``mariadb-dump --single-transaction`` of every
  database the enabled services declare (a consistent snapshot of InnoDB
  while the cloud runs), with ``DROP DATABASE`` first so a restore replaces;
- ``config.tar.gz``: globals.yml, globals.d/, passwords.yml and config/;
- ``deployed.json``: the release, and the image and spec hash of every container;
- ``manifest.json``: id, time, release, reason, databases and each file's sha256.

On a multi-host deployment the dump is made on the first host running
MariaDB (``db_dump`` of the ``stackyard_host`` module: the same code as the
all-in-one's, in :mod:`stackyard.agent.ops`), fetched into the backup by
Ansible in the same play and removed from the host; a restore copies it back
there (0600), loads it (``db_load``) and removes it again.

Restoring puts the config and the databases back; the caller then converges
the deployment to them (the containers go back to the images the restored
config names). Backups live beside the config, outside ``.stackyard/``, so
``destroy`` keeps them.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from stackyard.agent import ops as agent_ops
from stackyard.agent.hostapply import STATE_DIR, write_atomic
from stackyard.agent.model import SPEC_LABEL
from stackyard.ansible import runner
from stackyard.deploy import multihost, state
from stackyard.deploy.plan import Deployment, hosts_for
from stackyard.engine import Engine
from stackyard.errors import DeployError

BACKUP_DIR = "backups"
DUMP_FILE = "databases.sql.gz"


@dataclass
class Backup:
    id: str
    created: str
    release: str
    reason: str
    databases: list[str]
    files: dict[str, str] = field(default_factory=dict)  # name -> sha256
    dir: str = ""
    #: what it was taken of (a restore refuses another deployment's backup)
    deployment: str = ""
    hosts: list[str] = field(default_factory=list)
    name_prefix: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("dir")
        return d


def root(configdir: Path) -> Path:
    return Path(configdir) / BACKUP_DIR


def databases(dep: Deployment) -> list[str]:
    """Every database the enabled services declare, in deploy order."""
    return list(dict.fromkeys(d.name for s in dep.services for d in s.databases))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _write(path: Path, data: bytes) -> None:
    path.touch(mode=0o600, exist_ok=True)
    os.chmod(path, 0o600)
    path.write_bytes(data)


def _mysql(dep: Deployment) -> tuple[str, str, str]:
    """The MariaDB container's name, and the database user and password its client logs in with."""
    if not dep.variables.get("enable_mariadb"):
        raise DeployError("this deployment runs no MariaDB: nothing to back up or restore")
    name = str(dep.variables.get("stackyard_name_prefix") or "") + "mariadb"
    # the password reaches the client through its environment, never a command line
    return name, str(dep.variables["database_user"]), str(dep.passwords["database_password"])


def host_running(dep: Deployment, container: str, group: str) -> str:
    """The first host of ``group`` (inventory order) whose plan runs ``container``."""
    for host in hosts_for(dep.inventory, group):
        plan = dep.plans.get(host)
        if plan is not None and plan.spec_of(container) is not None:
            return host
    holders = [h for h, p in dep.plans.items() if p.spec_of(container) is not None]
    if holders:
        return holders[0]
    raise DeployError(f"no host runs {container}")


def mariadb_host(dep: Deployment) -> str:
    """Where a multi-host backup dumps and a restore loads the databases: the first host
    of the mariadb group (a Galera member replicates a load to the others)."""
    container, _, _ = _mysql(dep)
    return host_running(dep, container, "mariadb")


def _dump_file_play(name: str, host: str, remote: str, tasks: list[dict]) -> str:
    """One play on ``host`` running ``tasks`` around the dump file ``remote``, which is
    removed from the host whatever happened (it holds every database)."""
    play = {"name": name, "hosts": [host], "gather_facts": False, "tasks": [{
        "block": tasks,
        "always": [{"name": "remove the dump from the host", "ansible.builtin.file": {"path": remote,
                                                                                       "state": "absent"}}],
    }]}
    return yaml.safe_dump([play], sort_keys=False, width=1000)


def render_dump_playbook(host: str, config_root: str, deployment: str, backup_id: str, container: str,
                         user: str, wanted: list[str], dest: Path) -> str:
    """Dump the databases on ``host`` to a 0600 file under <config_root>/.stackyard/ and fetch
    it to ``dest`` on the deploy host. The password is the extra var ``stackyard_db_password``
    (never in the playbook)."""
    remote = str(agent_ops.dump_path(config_root, backup_id))
    return _dump_file_play(f"back up the databases on {host}", host, remote, [
        {"name": "dump the databases", "stackyard_host": {
            "op": "db_dump", "config_root": config_root, "deployment": deployment, "container": container,
            "user": user, "password": "{{ stackyard_db_password }}", "databases": list(wanted),
            "backup_id": backup_id}},
        {"name": "fetch the dump", "ansible.builtin.fetch": {
            "src": remote, "dest": str(dest), "flat": True, "validate_checksum": True}},
    ])


def render_load_playbook(host: str, config_root: str, deployment: str, backup_id: str, container: str,
                         user: str, source: Path) -> str:
    """Copy the dump ``source`` to ``host`` (0600) and load it into MariaDB there."""
    remote = str(agent_ops.dump_path(config_root, backup_id))
    return _dump_file_play(f"restore the databases on {host}", host, remote, [
        {"name": "copy the dump", "ansible.builtin.copy": {"src": str(source), "dest": remote, "mode": "0600"}},
        {"name": "load the dump", "stackyard_host": {
            "op": "db_load", "config_root": config_root, "deployment": deployment, "container": container,
            "user": user, "password": "{{ stackyard_db_password }}", "path": remote}},
    ])


def _run_db_play(dep: Deployment, inventories: list[Path], what: str, text: str) -> Any:
    playbook = dep.configdir / STATE_DIR / f"{what}.yml"
    multihost.write_private(playbook, text)
    result = runner.run_playbook(playbook, inventories, quiet=True,
                                 extra_vars={"stackyard_db_password": _mysql(dep)[2]})
    if result.rc != 0:
        raise DeployError(result.first_error() or f"ansible-playbook {playbook.name} failed (rc {result.rc})")
    return result


def remote_dump(dep: Deployment, inventories: list[Path], backup_id: str, target: Path) -> list[str]:
    """Dump the databases on the MariaDB host into ``target``/databases.sql.gz; the databases in it."""
    container, user, _ = _mysql(dep)
    host = mariadb_host(dep)
    dest = target / DUMP_FILE
    root = str(dep.variables["node_config_directory"])
    try:
        result = _run_db_play(dep, inventories, "db-dump", render_dump_playbook(
            host, root, dep.label, backup_id, container, user, databases(dep), dest))
    except DeployError as exc:
        raise DeployError(f"backup: dumping the databases on {host} failed: {exc}") from None
    dumped = next(((t.get("result") or {}) for t in result.tasks
                   if t["host"] == host and "sha256" in (t.get("result") or {})), None)
    if dumped is None or not dest.is_file():
        raise DeployError(f"backup: {host} reported no dump (db_dump), or it was not fetched to {dest}")
    os.chmod(dest, 0o600)
    if _sha256(dest) != dumped["sha256"]:
        raise DeployError(f"backup: the dump fetched from {host} does not match the sha256 {host} reported")
    dbs = list(dumped.get("databases") or [])
    if not dbs:
        dest.unlink()
    return dbs


def remote_load(dep: Deployment, inventories: list[Path], backup: Backup) -> str:
    """Load the backup's dump into MariaDB on the MariaDB host; returns that host."""
    container, user, _ = _mysql(dep)
    host = mariadb_host(dep)
    root = str(dep.variables["node_config_directory"])
    try:
        _run_db_play(dep, inventories, "db-load", render_load_playbook(
            host, root, dep.label, backup.id, container, user, Path(backup.dir) / DUMP_FILE))
    except DeployError as exc:
        raise DeployError(f"restore of backup {backup.id}: loading the databases on {host} failed: {exc}") from None
    return host


def create(dep: Deployment, engine: Engine | None, reason: str, say: Callable[[str], None] = print,
           inventories: list[Path] | None = None) -> Backup:
    """Back up the deployment now; returns the backup (its id names it).

    An all-in-one is reached through ``engine``; a multi-host deployment
    through Ansible and ``inventories`` (``engine`` unused).
    """
    remote = bool(dep.remote_hosts)
    container, user, password = _mysql(dep)
    dbs: list[str] = []
    if not remote:
        assert engine is not None
        try:
            dbs = agent_ops.present_databases(engine, container, user, password, databases(dep))
        except DeployError as exc:
            raise DeployError(f"backup: {exc}") from None
    backup_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)
    _private_dir(root(dep.configdir))
    target = root(dep.configdir) / backup_id
    _private_dir(target)
    try:
        if remote:
            dbs = remote_dump(dep, inventories or [], backup_id, target)
        elif dbs:
            assert engine is not None
            try:
                _write(target / DUMP_FILE, agent_ops.dump_databases(engine, container, user, password, dbs))
            except DeployError as exc:
                raise DeployError(f"backup: {exc}") from None
        # the config the running cloud was deployed from (the operator may have edited
        # globals.yml for an upgrade since), else the files as they are
        deployed_config = state.config_path(dep.configdir)
        _write(target / "config.tar.gz", deployed_config.read_bytes() if deployed_config.is_file()
               else state.config_archive(dep.configdir))
        deployed = state.load(dep.configdir)
        spec_hashes = {}
        for plan in dep.plans.values() if engine is not None and not remote else []:
            for spec in plan.containers():
                current = engine.container(spec.name)
                if current is not None:
                    spec_hashes[spec.name] = current.labels.get(SPEC_LABEL, "")
        _write(target / "deployed.json", json.dumps({
            "deployed": deployed.to_dict() if deployed else None, "spec_hashes": spec_hashes,
            "hosts": sorted(dep.plans),
        }, indent=2, sort_keys=True).encode() + b"\n")
        backup = Backup(id=backup_id, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        release=deployed.release if deployed else str(dep.variables["openstack_release"]),
                        reason=reason, databases=dbs,
                        files={p.name: _sha256(p) for p in sorted(target.iterdir())}, dir=str(target),
                        deployment=dep.label, hosts=sorted(dep.plans),
                        name_prefix=str(dep.variables.get("stackyard_name_prefix") or ""))
        write_atomic(target / "manifest.json", json.dumps(backup.to_dict(), indent=2, sort_keys=True) + "\n", 0o600)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    say(f"backup {backup_id}: {len(dbs)} databases, config and images of release {backup.release} in {target}")
    return backup


def list_backups(configdir: Path) -> list[Backup]:
    out = []
    base = root(configdir)
    for d in sorted(base.iterdir()) if base.is_dir() else []:
        try:
            data = json.loads((d / "manifest.json").read_text())
        except (FileNotFoundError, ValueError):
            continue  # an interrupted backup: never listed, never restored
        out.append(Backup(**data, dir=str(d)))
    return out


def get(configdir: Path, backup_id: str) -> Backup:
    """A backup by id, checked against its manifest's checksums."""
    for b in list_backups(configdir):
        if b.id == backup_id:
            for name, digest in b.files.items():
                path = Path(b.dir) / name
                if not path.is_file() or _sha256(path) != digest:
                    raise DeployError(f"backup {backup_id}: {path} is missing or does not match its checksum")
            return b
    raise DeployError(f"backup {backup_id} not found in {root(configdir)} (stackyard backup --list)")


def check_matches(dep: Deployment, backup: Backup) -> None:
    """A backup goes back only into the deployment it was taken of: the same config dir,
    hosts and container names (else its databases would land in another cloud)."""
    problems = []
    if backup.deployment and backup.deployment != dep.label:
        problems.append(f"it was taken of the deployment in {backup.deployment}, not {dep.label}")
    if backup.hosts and sorted(backup.hosts) != sorted(dep.plans):
        problems.append(f"it was taken of hosts {', '.join(backup.hosts)}, this deployment has "
                        f"{', '.join(sorted(dep.plans))}")
    prefix = str(dep.variables.get("stackyard_name_prefix") or "")
    if backup.deployment and backup.name_prefix != prefix:
        problems.append(f"its containers are named {backup.name_prefix or '(no prefix)'}*, "
                        f"this deployment's {prefix or '(no prefix)'}*")
    if problems:
        raise DeployError(f"backup {backup.id} does not match this deployment: " + "; ".join(problems))


def restore_config(configdir: Path, backup: Backup) -> None:
    """Put the backed-up config files back; files of those entries made since are removed."""
    for entry in state.CONFIG_ENTRIES:
        path = Path(configdir) / entry
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    with tarfile.open(Path(backup.dir) / "config.tar.gz") as tar:
        for member in tar.getmembers():
            if member.name.startswith("/") or ".." in Path(member.name).parts:
                raise DeployError(f"backup {backup.id}: config.tar.gz holds an unsafe path {member.name}")
        tar.extractall(configdir, filter="data")
    pw = Path(configdir) / "passwords.yml"
    if pw.exists():
        os.chmod(pw, 0o600)


def restore_databases(dep: Deployment, engine: Engine | None, backup: Backup,
                      inventories: list[Path] | None = None) -> None:
    """Replace the backed-up databases with their dumped content (DROP, CREATE, rows):
    through ``engine`` on an all-in-one, on the MariaDB host through Ansible otherwise."""
    if not backup.databases:
        return
    if dep.remote_hosts:
        remote_load(dep, inventories or [], backup)
        return
    assert engine is not None
    container, user, password = _mysql(dep)
    try:
        agent_ops.load_databases(engine, container, user, password, (Path(backup.dir) / DUMP_FILE).read_bytes())
    except DeployError as exc:
        raise DeployError(f"restore of backup {backup.id}: {exc}") from None
