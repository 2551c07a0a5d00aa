"""Backups of an all-in-one deployment: its databases, its config and what it ran.

A backup is a directory ``<config dir>/backups/<id>/`` (0700, every file 0600):

- ``databases.sql.gz``: one ``mariadb-dump --single-transaction`` of every
  database the enabled services declare (a consistent snapshot of InnoDB
  while the cloud runs), with ``DROP DATABASE`` first so a restore replaces;
- ``config.tar.gz``: globals.yml, globals.d/, passwords.yml and config/;
- ``deployed.json``: the release, and the image and spec hash of every container;
- ``manifest.json``: id, time, release, reason, databases and each file's sha256.

Restoring puts the config and the databases back; the caller then converges
the deployment to them (the containers go back to the images the restored
config names). Backups live beside the config, outside ``.stackyard/``, so
``destroy`` keeps them.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import secrets
import shutil
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from stackyard.agent.hostapply import write_atomic
from stackyard.agent.model import SPEC_LABEL
from stackyard.deploy import state
from stackyard.deploy.plan import Deployment
from stackyard.engine import Engine
from stackyard.errors import DeployError

BACKUP_DIR = "backups"
DUMP_IN_CONTAINER = "/tmp/stackyard-backup.sql"


@dataclass
class Backup:
    id: str
    created: str
    release: str
    reason: str
    databases: list[str]
    files: dict[str, str] = field(default_factory=dict)  # name -> sha256
    dir: str = ""

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


def require_all_in_one(dep: Deployment, what: str) -> None:
    if dep.remote_hosts:
        raise DeployError(f"{what} works on an all-in-one deployment; this inventory has remote hosts "
                          f"({', '.join(dep.remote_hosts)}): not implemented for multi-host deployments yet")


def _mysql(dep: Deployment, engine: Engine) -> tuple[str, dict[str, str]]:
    """The running MariaDB container and the environment giving its client the root password."""
    if not dep.variables.get("enable_mariadb"):
        raise DeployError("this deployment runs no MariaDB: nothing to back up or restore")
    name = str(dep.variables.get("stackyard_name_prefix") or "") + "mariadb"
    current = engine.container(name)
    if current is None or not current.running:
        raise DeployError(f"container {name} is not running: start the deployment first (stackyard deploy)")
    # the password reaches the client through its environment, never a command line
    return name, {"MYSQL_PWD": str(dep.passwords["database_password"])}


def create(dep: Deployment, engine: Engine, reason: str, say: Callable[[str], None] = print) -> Backup:
    """Back up the deployment now; returns the backup (its id names it)."""
    require_all_in_one(dep, "backup")
    mysql, env = _mysql(dep, engine)
    user = str(dep.variables["database_user"])
    code, out = engine.exec(mysql, ["mariadb", "-u", user, "-N", "-B", "-e", "SHOW DATABASES"], environment=env)
    if code != 0:
        raise DeployError(f"backup: cannot list databases in {mysql}: {out.strip()}")
    present = set(out.split())
    dbs = [d for d in databases(dep) if d in present]
    backup_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)
    _private_dir(root(dep.configdir))
    target = root(dep.configdir) / backup_id
    _private_dir(target)
    try:
        if dbs:
            code, out = engine.exec(mysql, ["sh", "-c", "umask 077; u=$1; shift; mariadb-dump -u \"$u\" "
                                                        "--single-transaction --routines --triggers --events "
                                                        "--add-drop-database --databases \"$@\" > " + DUMP_IN_CONTAINER,
                                            "mariadb-dump", user, *dbs], user="root", environment=env)
            if code != 0:
                raise DeployError(f"backup: mariadb-dump failed in {mysql}: {out.strip()[-500:]}")
            dump = engine.get_file(mysql, DUMP_IN_CONTAINER)
            engine.exec(mysql, ["rm", "-f", DUMP_IN_CONTAINER], user="root")
            _write(target / "databases.sql.gz", gzip.compress(dump, mtime=0))
        # the config the running cloud was deployed from (the operator may have edited
        # globals.yml for an upgrade since), else the files as they are
        deployed_config = state.config_path(dep.configdir)
        _write(target / "config.tar.gz", deployed_config.read_bytes() if deployed_config.is_file()
               else state.config_archive(dep.configdir))
        deployed = state.load(dep.configdir)
        spec_hashes = {}
        for plan in dep.plans.values():
            for spec in plan.containers():
                current = engine.container(spec.name)
                if current is not None:
                    spec_hashes[spec.name] = current.labels.get(SPEC_LABEL, "")
        _write(target / "deployed.json", json.dumps({
            "deployed": deployed.to_dict() if deployed else None, "spec_hashes": spec_hashes,
        }, indent=2, sort_keys=True).encode() + b"\n")
        backup = Backup(id=backup_id, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        release=deployed.release if deployed else str(dep.variables["openstack_release"]),
                        reason=reason, databases=dbs,
                        files={p.name: _sha256(p) for p in sorted(target.iterdir())}, dir=str(target))
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


def restore_databases(dep: Deployment, engine: Engine, backup: Backup) -> None:
    """Replace the backed-up databases with their dumped content (DROP, CREATE, rows)."""
    dump_file = Path(backup.dir) / "databases.sql.gz"
    if not backup.databases:
        return
    mysql, env = _mysql(dep, engine)
    engine.put_file(mysql, DUMP_IN_CONTAINER, gzip.decompress(dump_file.read_bytes()))
    try:
        code, out = engine.exec(mysql, ["sh", "-c", "mariadb -u \"$1\" < " + DUMP_IN_CONTAINER, "mariadb",
                                        str(dep.variables["database_user"])], user="root", environment=env)
    finally:
        engine.exec(mysql, ["rm", "-f", DUMP_IN_CONTAINER], user="root")
    if code != 0:
        raise DeployError(f"restore of backup {backup.id}: loading the databases failed: {out.strip()[-500:]}")
