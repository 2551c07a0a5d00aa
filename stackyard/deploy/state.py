"""What is deployed now: the release, its images and the plan's container hashes.

Written after every successful deploy, upgrade or rollback of a whole
deployment (``<config dir>/.stackyard/deployed.json``, 0600), and read by
``stackyard upgrade`` (which release it upgrades from) and by backups (what
to go back to). ``destroy`` removes it with the rest of the deployment's state.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stackyard.agent.hostapply import STATE_DIR, write_atomic
from stackyard.deploy.plan import Deployment
from stackyard.engine import Engine
from stackyard.errors import DeployError

DEPLOYED = "deployed.json"
#: the config the deployment runs, as of its last successful deploy (what a rollback restores)
DEPLOYED_CONFIG = "deployed-config.tar.gz"
#: what of the config dir that is (kolla-ansible's files)
CONFIG_ENTRIES = ("globals.yml", "globals.d", "passwords.yml", "config")


@dataclass
class Deployed:
    release: str
    tag: str
    #: container name -> image reference and engine image ID it was created from
    images: dict[str, dict[str, str]] = field(default_factory=dict)
    time: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def path(configdir: Path) -> Path:
    return Path(configdir) / STATE_DIR / DEPLOYED


def observe(dep: Deployment, engine: Engine) -> Deployed:
    """The deployment as the engine runs it now (after a deploy succeeded)."""
    images = {}
    for plan in dep.plans.values():
        for spec in plan.containers():
            current = engine.container(spec.name)
            if current is not None:
                images[spec.name] = {"ref": spec.image, "id": current.image_id}
    return _deployed(dep, images)


def _deployed(dep: Deployment, images: dict[str, dict[str, str]]) -> Deployed:
    v = dep.variables
    return Deployed(release=str(v["openstack_release"]), tag=str(v["openstack_tag"]), images=images,
                    time=time.time())


def from_plans(dep: Deployment, running: dict[str, dict[str, dict[str, str]]] | None = None) -> Deployed:
    """A multi-host deployment as planned: every container's image by reference, and its
    image ID where ``running`` (host -> container -> {ref, id}: the ``check`` op's
    ``images``) reports one (the first host in plan order that runs it)."""
    images: dict[str, dict[str, str]] = {}
    for host, plan in dep.plans.items():
        for spec in plan.containers():
            seen = (running or {}).get(host, {}).get(spec.name) or {}
            entry = images.setdefault(spec.name, {"ref": spec.image, "id": ""})
            if not entry["id"] and seen.get("id"):
                entry["id"] = str(seen["id"])
    return _deployed(dep, images)


def config_path(configdir: Path) -> Path:
    return Path(configdir) / STATE_DIR / DEPLOYED_CONFIG


def record(dep: Deployment, engine: Engine | None,
           running: dict[str, dict[str, dict[str, str]]] | None = None) -> Deployed:
    """Remember what runs now and the config it runs from (after a successful deploy).

    The all-in-one asks its engine; a multi-host deployment (``engine`` None)
    records its plans' images by reference, with the IDs ``running`` reports
    (see :func:`from_plans`).
    """
    deployed = observe(dep, engine) if engine is not None else from_plans(dep, running)
    write_atomic(path(dep.configdir), json.dumps(deployed.to_dict(), indent=2, sort_keys=True) + "\n", 0o600)
    archive = config_archive(dep.configdir)
    target = config_path(dep.configdir)
    target.touch(mode=0o600, exist_ok=True)
    os.chmod(target, 0o600)
    target.write_bytes(archive)
    return deployed


def config_archive(configdir: Path) -> bytes:
    """globals.yml, globals.d/, passwords.yml and config/ as a tar.gz (sorted, no owners: reproducible)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for entry in CONFIG_ENTRIES:
            path = Path(configdir) / entry
            if not path.exists():
                continue
            for p in [path, *sorted(path.rglob("*"))] if path.is_dir() else [path]:
                info = tar.gettarinfo(str(p), arcname=str(p.relative_to(configdir)))
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                with open(p, "rb") if p.is_file() else io.BytesIO() as fh:
                    tar.addfile(info, fh if p.is_file() else None)
    return buf.getvalue()



def load(configdir: Path) -> Deployed | None:
    """The last recorded deployment, or None when nothing was deployed (or it was destroyed)."""
    try:
        data = json.loads(path(configdir).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DeployError(f"{path(configdir)}: unreadable ({exc})") from None
    return Deployed(**data)
