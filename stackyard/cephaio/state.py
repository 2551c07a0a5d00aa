"""state.json: what a cluster was made with and which files it wrote.

``<configdir>/ceph-aio/state.json`` (0600) holds the fsid, the OSD's uuid and
every key, the settings the cluster was made with, the client users it made
and the digest of each client file it wrote. It lives as long as the
cluster's volumes: ``down`` keeps it, ``down --include-volumes`` removes it
with the volumes. So a second ``up`` finds the same keys (the files written
for Glance, Cinder and Nova stay valid), and ``down`` removes only files that
are still as it wrote them.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackyard.cephaio.plan import STATE_FILE, Secrets, cephx_key
from stackyard.errors import ConfigError

VERSION = 1


@dataclass
class State:
    secrets: Secrets
    #: Settings.to_dict() of the cluster when it was made
    settings: dict[str, Any] = field(default_factory=dict)
    #: client entities an ``up`` made (``client.glance`` ...), removed when no longer wanted
    users: list[str] = field(default_factory=list)
    #: client pools an ``up`` made or initialised (never removed: they hold data)
    pools: list[str] = field(default_factory=list)
    #: client files written: absolute path -> sha256 of the content written
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"version": VERSION, "fsid": self.secrets.fsid, "osd_uuid": self.secrets.osd_uuid,
                "keys": dict(sorted(self.secrets.keys.items())), "settings": self.settings,
                "users": sorted(self.users), "pools": list(self.pools), "files": dict(sorted(self.files.items()))}


def new_secrets(random: Callable[[int], bytes] = os.urandom) -> Secrets:
    """A new cluster identity (no keys yet: :func:`add_keys` makes them)."""
    return Secrets(fsid=str(uuid.UUID(bytes=random(16), version=4)),
                   osd_uuid=str(uuid.UUID(bytes=random(16), version=4)))


def add_keys(secrets: Secrets, entities: list[str], created: int,
             random: Callable[[int], bytes] = os.urandom) -> list[str]:
    """Give every entity in ``entities`` that has none a new key; returns those it made."""
    made = []
    for entity in entities:
        if entity not in secrets.keys:
            secrets.keys[entity] = cephx_key(random(16), created)
            made.append(entity)
    return made


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def load(path: Path) -> State | None:
    """The state in ``path``, or None when there is none; a damaged file is an error naming it."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the ceph-aio state: {exc}") from None
    try:
        if data.get("version") != VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {VERSION}")
        secrets = Secrets(fsid=str(data["fsid"]), osd_uuid=str(data["osd_uuid"]),
                          keys={str(k): str(v) for k, v in data["keys"].items()})
        return State(secrets=secrets, settings=dict(data.get("settings") or {}),
                     users=[str(u) for u in data.get("users") or []],
                     pools=[str(p) for p in data.get("pools") or []],
                     files={str(k): str(v) for k, v in (data.get("files") or {}).items()})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{path}: not a ceph-aio state file ({exc})") from None


def save(path: Path, state: State) -> None:
    """Write atomically, 0600 (it holds every key of the cluster)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(state.to_dict(), fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE
