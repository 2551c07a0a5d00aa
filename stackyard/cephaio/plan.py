"""The test Ceph cluster as plain data: options, files, containers, pools, users.

Everything here is a pure function of its arguments (no engine, no file
system, no clock, no randomness: keys come in through :class:`Secrets`), so
the whole cluster can be checked by unit tests. :mod:`stackyard.cephaio.run`
applies the result.

The cluster: one monitor (``mon.a``), one manager (``mgr.x``) and one OSD
(``osd.0``, BlueStore in a sparse file in its volume), host networking on
127.0.0.1. The clients' side follows kolla-ansible's external Ceph guide:
pools and users named by the ``ceph_*`` options of globals.yml, and each
service's ``ceph.conf`` and keyrings under ``<configdir>/config/``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stackyard.agent.model import Healthcheck
from stackyard.deploy import services
from stackyard.deploy.options import GLOBAL_OPTIONS
from stackyard.engine import CreateRequest
from stackyard.errors import ConfigError

MON_ID = "a"
MGR_ID = "x"
OSD_ID = 0
#: the daemons' cluster name; the clients' file names follow ``ceph_cluster`` instead
DAEMON_CLUSTER = "ceph"
#: on every container and volume of a cluster; the value is its config dir (absolute)
LABEL = "org.stackyard.ceph-aio"
#: the hash of a container's request and config files: a different hash recreates it
SPEC_LABEL = "org.stackyard.ceph-aio.spec"
#: under the config dir: the daemons' config directories and state.json
STATE_DIRNAME = "ceph-aio"
STATE_FILE = "state.json"
ROLES = ("mon", "mgr", "osd")
IMAGES = ("ceph-base", "ceph-mon", "ceph-mgr", "ceph-osd")
GiB = 1 << 30
#: pg_num of each client pool: 4 pools x 8 + .mgr stays far below mon_max_pg_per_osd for one OSD
POOL_PG_NUM = 8
#: the capabilities kolla_set_configs needs (through sudo) to install the config as the ceph user;
#: the daemons themselves run as ceph with none
CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID")

#: the external Ceph keys ceph-aio reads; their defaults (kolla-ansible's) are the ones the
#: services declare, so the cluster and the services' files agree. ceph_nova_user follows the
#: cinder user (options_from_globals).
_CEPH_KEYS = ("ceph_cluster", "ceph_glance_user", "ceph_cinder_user", "ceph_cinder_backup_user",
              "ceph_glance_pool_name", "ceph_cinder_pool_name", "ceph_nova_pool_name",
              "ceph_cinder_backup_pool_name")


def kolla_defaults() -> dict[str, str]:
    """The defaults of the external Ceph keys, as globals.yml's options declare them."""
    declared = {o.name: o.default for o in (*GLOBAL_OPTIONS, *services.options())}
    return {k: declared[k] for k in _CEPH_KEYS}
#: the globals.yml lines that turn the services' Ceph backends on
BACKEND_LINES = ('glance_backend_ceph: "yes"', 'cinder_backend_ceph: "yes"', 'nova_backend_ceph: "yes"')
#: kolla-ansible's multi-cluster backend lists: ceph-aio makes one cluster, so only entries that
#: name it (with the ceph_* users and pools) are accepted
_BACKEND_LISTS = ("glance_ceph_backends", "cinder_ceph_backends", "cinder_backup_ceph_backend")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# --------------------------------------------------------------------------- options
@dataclass(frozen=True)
class CephOptions:
    """kolla-ansible's external Ceph options: the cluster's file name, users and pools."""

    cluster: str = "ceph"
    glance_user: str = "glance"
    cinder_user: str = "cinder"
    cinder_backup_user: str = "cinder-backup"
    nova_user: str = "cinder"
    glance_pool: str = "images"
    cinder_pool: str = "volumes"
    nova_pool: str = "vms"
    cinder_backup_pool: str = "backups"

    @property
    def pools(self) -> list[str]:
        """The client pools, each once, in kolla's order (images, volumes, vms, backups)."""
        return list(dict.fromkeys([self.glance_pool, self.cinder_pool, self.nova_pool, self.cinder_backup_pool]))

    @property
    def users(self) -> list[str]:
        """The client users, each once."""
        return list(dict.fromkeys([self.glance_user, self.cinder_user, self.cinder_backup_user, self.nova_user]))


def options_from_globals(variables: Mapping[str, Any], source: str = "globals.yml") -> CephOptions:
    """The ceph_* options of a loaded globals.yml, kolla-ansible's defaults for those not set.

    ``variables`` is what :func:`stackyard.deploy.config.load_globals` returns
    (templates rendered). A value that is not a usable Ceph name is an error
    naming ``source`` and the key.
    """
    def get(key: str, default: str) -> str:
        value = variables.get(key, default)
        if value is None or value == "":
            value = default
        if not isinstance(value, str) or not _NAME_RE.match(value):
            raise ConfigError(f"{source}: '{key}' is {value!r}; expected a Ceph name "
                              f"(letters, digits, '.', '_', '-')")
        return value

    values = {k: get(k, d) for k, d in kolla_defaults().items()}
    nova_user = get("ceph_nova_user", values["ceph_cinder_user"])
    opts = CephOptions(
        cluster=values["ceph_cluster"], glance_user=values["ceph_glance_user"],
        cinder_user=values["ceph_cinder_user"], cinder_backup_user=values["ceph_cinder_backup_user"],
        nova_user=nova_user, glance_pool=values["ceph_glance_pool_name"],
        cinder_pool=values["ceph_cinder_pool_name"], nova_pool=values["ceph_nova_pool_name"],
        cinder_backup_pool=values["ceph_cinder_backup_pool_name"])
    _check_backend_lists(variables, opts, source)
    return opts


def _check_backend_lists(variables: Mapping[str, Any], opts: CephOptions, source: str) -> None:
    """Refuse kolla's per-backend lists when they name another cluster, user or pool.

    ceph-aio makes one cluster and writes one ``<ceph_cluster>.conf`` per
    service; a second cluster in ``cinder_ceph_backends`` would find no files.
    """
    allowed = {
        "glance_ceph_backends": ({opts.glance_user}, {opts.glance_pool}),
        "cinder_ceph_backends": ({opts.cinder_user}, {opts.cinder_pool}),
        "cinder_backup_ceph_backend": ({opts.cinder_backup_user}, {opts.cinder_backup_pool}),
    }
    for key in _BACKEND_LISTS:
        value = variables.get(key)
        if value is None:
            continue
        entries = [value] if isinstance(value, dict) else value
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ConfigError(f"{source}: '{key}' must be a list of mappings (kolla-ansible's backend list)")
        users, pools = allowed[key]
        for index, entry in enumerate(entries):
            if entry.get("enabled") in (False, "no", "false", "False"):
                continue
            for field_name, want in (("cluster", {opts.cluster}), ("user", users), ("pool", pools)):
                if field_name in entry and entry[field_name] not in want:
                    raise ConfigError(
                        f"{source}: '{key}[{index}].{field_name}' is {entry[field_name]!r}, but stackyard "
                        f"ceph-aio makes one test cluster with {field_name} {sorted(want)[0]!r} "
                        f"(set it with the ceph_* options, or use an external Ceph for several clusters)")


# --------------------------------------------------------------------------- caps
@dataclass(frozen=True)
class Caps:
    mon: str
    osd: str
    mgr: str

    def as_dict(self) -> dict[str, str]:
        return {"mgr": self.mgr, "mon": self.mon, "osd": self.osd}


def client_caps(opts: CephOptions) -> dict[str, Caps]:
    """``client.<user>`` -> caps, as Ceph's "Block Devices and OpenStack" guide grants them.

    Each service needs read-write on its pools and (Cinder and Nova, for
    copy-on-write clones of Glance images) read-only on the images pool. A
    user that serves several services (``ceph_nova_user`` is the Cinder user
    by default) gets the union.
    """
    needs: dict[str, tuple[list[str], list[str]]] = {}

    def need(user: str, rw: list[str], ro: list[str] = []) -> None:  # noqa: B006 (never mutated)
        have_rw, have_ro = needs.setdefault(user, ([], []))
        have_rw += [p for p in rw if p not in have_rw]
        have_ro += [p for p in ro if p not in have_ro]

    need(opts.glance_user, [opts.glance_pool])
    need(opts.cinder_user, [opts.cinder_pool, opts.nova_pool], [opts.glance_pool])
    need(opts.cinder_backup_user, [opts.cinder_backup_pool])
    need(opts.nova_user, [opts.nova_pool], [opts.glance_pool])
    out = {}
    for user, (rw, ro) in needs.items():
        ro = [p for p in ro if p not in rw]
        osd = [f"profile rbd pool={p}" for p in rw] + [f"profile rbd-read-only pool={p}" for p in ro]
        out[f"client.{user}"] = Caps(mon="profile rbd", osd=", ".join(osd),
                                     mgr=", ".join(f"profile rbd pool={p}" for p in rw))
    return out


#: the daemons' and the admin's caps (fixed)
DAEMON_CAPS: dict[str, dict[str, str]] = {
    "mon.": {"mon": "allow *"},
    "client.admin": {"mds": "allow *", "mgr": "allow *", "mon": "allow *", "osd": "allow *"},
    "client.bootstrap-osd": {"mon": "allow profile bootstrap-osd"},
    f"mgr.{MGR_ID}": {"mds": "allow *", "mon": "allow profile mgr", "osd": "allow *"},
}


# --------------------------------------------------------------------------- secrets
def cephx_key(secret: bytes, created: int = 0) -> str:
    """A cephx key as keyrings hold it: base64 of type (AES), creation time, length, secret.

    The same encoding as ``ceph-authtool --gen-print-key``, so keys need no
    Ceph binary on the host and are made before the cluster exists.
    """
    if len(secret) != 16:
        raise ValueError("a cephx AES key is 16 bytes")
    return base64.b64encode(struct.pack("<hIIH", 1, created, 0, len(secret)) + secret).decode()


@dataclass
class Secrets:
    """What makes a cluster itself: its fsid, the OSD's uuid and every key. Kept in state.json."""

    fsid: str
    osd_uuid: str
    #: entity (``mon.``, ``client.admin``, ``osd.0``, ``client.glance`` ...) -> cephx key
    keys: dict[str, str] = field(default_factory=dict)

    def key(self, entity: str) -> str:
        try:
            return self.keys[entity]
        except KeyError:
            raise ConfigError(f"ceph-aio state has no key for {entity}") from None


def daemon_entities() -> list[str]:
    return [*DAEMON_CAPS, f"osd.{OSD_ID}"]


def missing_entities(secrets: Secrets, opts: CephOptions) -> list[str]:
    """Entities (daemons, admin, client users) that need a key and have none yet."""
    wanted = daemon_entities() + list(client_caps(opts))
    return [e for e in wanted if e not in secrets.keys]


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Settings:
    """How a cluster runs on this machine (recorded in state.json when it is made)."""

    #: absolute; the label value and the root of every file written
    configdir: str
    name_prefix: str = ""
    registry: str = ""
    namespace: str = "stackyard"
    tag: str = "2025.1"
    address: str = "127.0.0.1"
    mon_port: int = 3300
    mon_v1_port: int = 6789
    #: the OSD's BlueStore file (sparse: blocks are used only when written)
    osd_block_size: int = 10 * GiB

    def image(self, name: str) -> str:
        parts = [p for p in (self.registry, self.namespace) if p]
        return "/".join(parts + [name]) + f":{self.tag}"

    def container(self, role: str) -> str:
        return f"{self.name_prefix}ceph_aio_{role}"

    def volume(self, role: str) -> str:
        return f"{self.name_prefix}ceph_aio_{role}"

    @property
    def state_dir(self) -> Path:
        return Path(self.configdir) / STATE_DIRNAME

    @property
    def overrides_dir(self) -> Path:
        return Path(self.configdir) / "config"

    @property
    def mon_host(self) -> str:
        return f"[v2:{self.address}:{self.mon_port}/0,v1:{self.address}:{self.mon_v1_port}/0]"

    def check(self) -> None:
        """Settings the daemons cannot work with are errors naming the setting."""
        for name in ("mon_port", "mon_v1_port"):
            port = getattr(self, name)
            if not 1 <= port <= 65535:
                raise ConfigError(f"ceph-aio: {name} {port} is not a TCP port")
            if 6800 <= port <= 7300:
                raise ConfigError(f"ceph-aio: {name} {port} is inside the OSD and manager port range 6800-7300")
        if self.mon_port == self.mon_v1_port:
            raise ConfigError("ceph-aio: mon_port and mon_v1_port must differ")
        if self.osd_block_size < 2 * GiB:
            raise ConfigError(f"ceph-aio: osd_block_size {self.osd_block_size} is below 2 GiB "
                              f"(BlueStore needs room for its metadata)")
        if self.name_prefix and not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", self.name_prefix):
            raise ConfigError(f"ceph-aio: name prefix {self.name_prefix!r} is not a valid container name start")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: what must stay as the cluster was made with (the monitor map and the OSD's file hold them)
FIXED_SETTINGS = ("name_prefix", "address", "mon_port", "mon_v1_port", "osd_block_size")


def changed_fixed_settings(made: Mapping[str, Any], wanted: Settings) -> list[str]:
    """Fixed settings that differ from those the existing cluster was made with."""
    now = wanted.to_dict()
    return [f"{k}: made with {made[k]!r}, asked for {now[k]!r}" for k in FIXED_SETTINGS
            if k in made and made[k] != now[k]]


# --------------------------------------------------------------------------- files
def _ini(sections: list[tuple[str, dict[str, Any]]], header: str) -> str:
    """INI without leading whitespace: kolla-ansible's (and oslo.config's) parser reads it."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for name, values in sections:
        lines.append(f"[{name}]")
        lines += [f"{k} = {v}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def _auth_settings() -> dict[str, str]:
    return {"auth_cluster_required": "cephx", "auth_service_required": "cephx", "auth_client_required": "cephx"}


def client_conf(settings: Settings, fsid: str) -> str:
    """The ``ceph.conf`` given to Glance, Cinder and Nova (kolla's external Ceph layout)."""
    header = (f"Written by `stackyard ceph-aio up`: the test Ceph cluster {fsid}.\n"
              "Test and demo infrastructure only; production uses an existing Ceph.")
    return _ini([("global", {"fsid": fsid, "mon_host": settings.mon_host, **_auth_settings()})], header)


def daemon_conf(settings: Settings, fsid: str) -> str:
    """The daemons' ``ceph.conf``: a one-node cluster on loopback whose pools keep one copy."""
    glob: dict[str, Any] = {
        "fsid": fsid,
        "mon_initial_members": MON_ID,
        "mon_host": settings.mon_host,
        "public_addr": settings.address,
        "cluster_addr": settings.address,
        # OSD and manager ports (6800-7300 is Ceph's default, spelt out: no OpenStack service uses it)
        "ms_bind_port_min": 6800,
        "ms_bind_port_max": 7300,
        **_auth_settings(),
        "auth_allow_insecure_global_id_reclaim": "false",
        # one OSD: pools of one copy, placed on OSDs rather than hosts, no warning about it
        "osd_pool_default_size": 1,
        "osd_pool_default_min_size": 1,
        "mon_allow_pool_size_one": "true",
        "mon_warn_on_pool_no_redundancy": "false",
        "osd_crush_chooseleaf_type": 0,
        "osd_pool_default_pg_num": POOL_PG_NUM,
        "osd_pool_default_pgp_num": POOL_PG_NUM,
        "osd_pool_default_pg_autoscale_mode": "off",
        # a shared development disk is often fuller than the 30 % free Ceph warns at
        "mon_data_avail_warn": 5,
        # Reef enables restful (the pre-dashboard REST API) on a new cluster; nothing here uses it
        "mgr_initial_modules": "iostat",
        # daemons report to the manager, and the manager to the monitor, every second (5 s by
        # default): PG states and health follow within a second or two on a cluster this small
        "mgr_stats_period": 1,
        "mon_mgr_digest_period": 1,
        # every daemon logs to stderr only: `docker logs` shows it, nothing fills the container
        "log_to_file": "false",
        "log_to_stderr": "true",
        "err_to_stderr": "true",
        "mon_cluster_log_to_file": "false",
        "mon_cluster_log_to_stderr": "false",
    }
    sections = [
        ("global", glob),
        # the monitor binds the ports of mon_host (public_addr alone gives it Ceph's 3300/6789);
        # a lone monitor has no peers to batch map changes for: it proposes them at once (Ceph
        # waits 1 s), which takes `rbd pool init` (three map changes) from 3 s to a fraction of one
        ("mon", {"public_addrv": settings.mon_host, "debug_rocksdb": "1/5", "paxos_propose_interval": 0.1}),
        ("mgr", {"keyring": "/etc/ceph/$cluster.$name.keyring",
                 "mgr/devicehealth/enable_monitoring": "false"}),
        ("osd", {"keyring": "/etc/ceph/$cluster.$name.keyring",
                 "osd_objectstore": "bluestore",
                 "bluestore_block_create": "true",
                 "bluestore_block_size": settings.osd_block_size,
                 "osd_memory_target": GiB,
                 "debug_rocksdb": "1/5",
                 "debug_bluestore": "1/5",
                 "debug_bluefs": "1/5"}),
    ]
    header = (f"ceph-aio daemons of the test cluster {fsid} (written by `stackyard ceph-aio up`).\n"
              "Test and demo infrastructure only.")
    return _ini(sections, header)


def keyring(entities: Mapping[str, str], caps: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """A keyring: one ``[entity]`` with its key (and caps, for an import) per entity.

    No indentation: kolla-ansible reads keyrings with an INI parser that takes
    a leading tab for a continuation line.
    """
    lines = []
    for entity, key in entities.items():
        lines += [f"[{entity}]", f"key = {key}"]
        for kind, cap in sorted((caps or {}).get(entity, {}).items()):
            lines.append(f'caps {kind} = "{cap}"')
    return "\n".join(lines) + "\n"


def client_file_layout(opts: CephOptions) -> dict[str, tuple[str, ...]]:
    """kolla-ansible's external Ceph files under ``config/``: relative path -> what it holds.

    ``("conf",)`` is the cluster's ceph.conf, ``("key", user)`` a user's
    keyring. From kolla-ansible's external Ceph guide (2025.1): Glance's
    keyring beside its ceph.conf; Cinder's ceph.conf shared by cinder-volume
    and cinder-backup with the keyrings in their own directories (backup needs
    the volumes user too); Nova's keyring of ``ceph_nova_user`` and the Cinder
    user's (to attach volumes), which are one file when the users are one.
    """
    c = opts.cluster

    def key(user: str) -> tuple[str, str]:
        return ("key", user)

    layout: dict[str, tuple[str, ...]] = {
        f"glance/{c}.conf": ("conf",),
        f"glance/{c}.client.{opts.glance_user}.keyring": key(opts.glance_user),
        f"cinder/{c}.conf": ("conf",),
        f"cinder/cinder-volume/{c}.client.{opts.cinder_user}.keyring": key(opts.cinder_user),
        f"cinder/cinder-backup/{c}.client.{opts.cinder_user}.keyring": key(opts.cinder_user),
        f"cinder/cinder-backup/{c}.client.{opts.cinder_backup_user}.keyring": key(opts.cinder_backup_user),
        f"nova/{c}.conf": ("conf",),
        f"nova/{c}.client.{opts.nova_user}.keyring": key(opts.nova_user),
        f"nova/{c}.client.{opts.cinder_user}.keyring": key(opts.cinder_user),
    }
    return layout


def client_files(settings: Settings, opts: CephOptions, secrets: Secrets) -> dict[str, str]:
    """Relative path under ``<configdir>/config/`` -> content, for every file of the layout."""
    conf = client_conf(settings, secrets.fsid)
    out = {}
    for rel, what in client_file_layout(opts).items():
        if what[0] == "conf":
            out[rel] = conf
        else:
            entity = f"client.{what[1]}"
            out[rel] = keyring({entity: secrets.key(entity)})
    return out


# --------------------------------------------------------------------------- containers
@dataclass
class DaemonPlan:
    """One daemon container: its engine request and the config files it is given."""

    role: str
    request: CreateRequest
    #: file name in the container's config dir -> content (config.json included)
    files: dict[str, str]
    #: named volume -> mount point (also in request.binds)
    volumes: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.request.name


def _config_json(command: str, files: list[str], permissions: list[dict[str, Any]]) -> str:
    entries = [{"source": f"/var/lib/kolla/config_files/{f}", "dest": f"/etc/ceph/{f}",
                "owner": "ceph", "perm": "0600"} for f in files]
    return json.dumps({"command": command, "config_files": entries, "permissions": permissions},
                      indent=2, sort_keys=True) + "\n"


def config_dir(settings: Settings, role: str) -> Path:
    return settings.state_dir / settings.container(role)


def daemons(settings: Settings, secrets: Secrets) -> list[DaemonPlan]:
    """mon, mgr and osd, each with its ceph.conf, keyrings and config.json.

    The monitor gets the mkfs keyring (every daemon key with its caps, imported
    into its store on the first start) and client.admin's key (the executor's
    ``stackyard-ceph-admin`` runs in it); the OSD gets its own key and the
    bootstrap-osd key (its first start registers it); the manager only its key.
    """
    conf = daemon_conf(settings, secrets.fsid)
    k = secrets.key
    mkfs_entities = {e: k(e) for e in DAEMON_CAPS}
    specs = {
        "mon": (f"ceph-mon -f -i {MON_ID}", {
            "ceph.mon-mkfs.keyring": keyring(mkfs_entities, DAEMON_CAPS),
            "ceph.client.admin.keyring": keyring({"client.admin": k("client.admin")}),
        }, {"CEPH_MON_ID": MON_ID}, {settings.volume("mon"): "/var/lib/ceph/mon"},
            Healthcheck(["CMD", "healthcheck_listen", "ceph-mon", str(settings.mon_port)])),
        "mgr": (f"ceph-mgr -f -i {MGR_ID}", {
            f"ceph.mgr.{MGR_ID}.keyring": keyring({f"mgr.{MGR_ID}": k(f"mgr.{MGR_ID}")}),
        }, {"CEPH_MGR_ID": MGR_ID}, {},
            Healthcheck(["CMD", "healthcheck_socket", "ceph-mgr", f"/var/run/ceph/ceph-mgr.{MGR_ID}.asok"])),
        "osd": (f"ceph-osd -f -i {OSD_ID}", {
            f"ceph.osd.{OSD_ID}.keyring": keyring({f"osd.{OSD_ID}": k(f"osd.{OSD_ID}")}),
            "ceph.client.bootstrap-osd.keyring": keyring({"client.bootstrap-osd": k("client.bootstrap-osd")}),
        }, {"CEPH_OSD_ID": str(OSD_ID), "CEPH_OSD_UUID": secrets.osd_uuid}, {settings.volume("osd"): "/var/lib/ceph/osd"},
            Healthcheck(["CMD", "healthcheck_socket", "ceph-osd", f"/var/run/ceph/ceph-osd.{OSD_ID}.asok"])),
    }
    out = []
    for role in ROLES:
        command, keyrings, env, volumes, health = specs[role]
        files = {"ceph.conf": conf, **keyrings}
        permissions = [{"path": mount, "owner": "ceph:ceph"} for mount in volumes.values()]
        files["config.json"] = _config_json(command, sorted(f for f in files), permissions)
        cdir = config_dir(settings, role)
        request = CreateRequest(
            name=settings.container(role), image=settings.image(f"ceph-{role}"),
            environment={"KOLLA_CONFIG_STRATEGY": "COPY_ALWAYS", **env},
            labels={LABEL: settings.configdir},
            binds=[f"{cdir}:/var/lib/kolla/config_files:ro"] + [f"{v}:{m}" for v, m in volumes.items()],
            network_mode="host", hostname=None, cap_add=list(CAPABILITIES), cap_drop=["ALL"],
            restart_policy="unless-stopped", healthcheck=health.to_docker(), stop_timeout=30)
        request.labels[SPEC_LABEL] = spec_hash(request, files)
        out.append(DaemonPlan(role=role, request=request, files=files, volumes=volumes))
    return out


def spec_hash(request: CreateRequest, files: Mapping[str, str]) -> str:
    """A digest of everything that makes the container what it is (request and config files)."""
    data = asdict(request)
    data["labels"] = {k: v for k, v in data["labels"].items() if k != SPEC_LABEL}
    data["files"] = {name: hashlib.sha256(text.encode()).hexdigest() for name, text in sorted(files.items())}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- pools and users
Command = dict[str, Any]


def mon(prefix: str, **args: Any) -> Command:
    return {"mon": {"prefix": prefix, **args}}


def observe_commands() -> list[Command]:
    """What the converge decision needs: the auth database and the pools."""
    return [mon("auth ls", format="json"), mon("osd pool ls", detail="detail", format="json")]


def pool_commands(pools: list[str], observed: list[dict[str, Any]]) -> list[Command]:
    """Create the missing pools and ``rbd pool init`` the ones not initialised for RBD.

    Existing pools are never changed or removed (their data stays): a pool
    renamed in globals.yml is a new pool beside the old one.
    """
    have = {p.get("pool_name"): p for p in observed}
    # every pool first, then the inits: each init waits for its pool's PGs, and the OSD
    # creates the PGs of all new pools at once
    creates = [mon("osd pool create", pool=pool, pg_num=POOL_PG_NUM, pgp_num=POOL_PG_NUM)
               for pool in pools if pool not in have]
    inits: list[Command] = [{"rbd_pool_init": pool} for pool in pools
                            if "rbd" not in (have.get(pool, {}).get("application_metadata") or {})]
    return creates + inits


def user_commands(wanted: Mapping[str, tuple[str, Caps]], observed: list[dict[str, Any]],
                  managed: list[str]) -> list[Command]:
    """Import the users whose key or caps differ (one ``auth import``), remove ours no longer wanted.

    ``managed`` are the client users an earlier ``up`` made (from state.json):
    only those are removed when globals.yml stops naming them.
    """
    have = {a.get("entity"): a for a in observed}
    changed = {e: kc for e, kc in wanted.items()
               if e not in have or have[e].get("key") != kc[0] or dict(have[e].get("caps") or {}) != kc[1].as_dict()}
    out: list[Command] = []
    if changed:
        text = keyring({e: kc[0] for e, kc in changed.items()}, {e: kc[1].as_dict() for e, kc in changed.items()})
        out.append({"mon": {"prefix": "auth import"}, "inbuf": text})
    for entity in managed:
        if entity not in wanted and entity in have:
            out.append(mon("auth rm", entity=entity))
    return out


def wanted_users(opts: CephOptions, secrets: Secrets) -> dict[str, tuple[str, Caps]]:
    return {e: (secrets.key(e), caps) for e, caps in client_caps(opts).items()}


def describe(command: Command) -> str:
    """One line for the report (never a key)."""
    if "rbd_pool_init" in command:
        return f"rbd pool init {command['rbd_pool_init']}"
    m = command["mon"]
    if m["prefix"] == "auth import":
        entities = re.findall(r"^\[(.+)\]$", command.get("inbuf", ""), re.MULTILINE)
        return "set key and caps of " + ", ".join(entities)
    args = " ".join(str(v) for k, v in m.items() if k not in ("prefix", "format"))
    return f"{m['prefix']} {args}".strip()


# --------------------------------------------------------------------------- readiness
@dataclass
class Readiness:
    """What ``ceph status`` says, reduced to what ``up`` waits for."""

    ready: bool
    #: (daemon role to blame, what is missing), in the order they come up
    waiting: list[tuple[str, str]]
    health: str
    checks: dict[str, str]

    def summary(self) -> str:
        return "; ".join(w for _, w in self.waiting) or "ready"


def readiness(status: Mapping[str, Any], pools: int) -> Readiness:
    """Monitor in quorum, manager available, every OSD up and in, every PG active+clean.

    ``pools`` is how many pools must exist (the client pools; the manager's
    ``.mgr`` pool comes on top): PG states mean nothing before the pools exist.
    """
    waiting: list[tuple[str, str]] = []
    if MON_ID not in (status.get("quorum_names") or []):
        waiting.append(("mon", f"mon.{MON_ID} not in quorum"))
    if not (status.get("mgrmap") or {}).get("available"):
        waiting.append(("mgr", f"mgr.{MGR_ID} not available"))
    osdmap = status.get("osdmap") or {}
    # Quincy and later: osdmap holds the counts; older releases nested them in osdmap.osdmap
    osdmap = osdmap.get("osdmap", osdmap)
    total, up, inside = (int(osdmap.get(k) or 0) for k in ("num_osds", "num_up_osds", "num_in_osds"))
    if total < 1 or up < total or inside < total:
        waiting.append(("osd", f"OSDs up {up}/{max(total, 1)}, in {inside}/{max(total, 1)}"))
    pgmap = status.get("pgmap") or {}
    num_pgs = int(pgmap.get("num_pgs") or 0)
    clean = sum(int(s.get("count") or 0) for s in pgmap.get("pgs_by_state") or []
                if s.get("state_name") == "active+clean")
    if int(pgmap.get("num_pools") or 0) < pools + 1 or num_pgs == 0 or clean < num_pgs:
        states = ", ".join(f"{s.get('count')} {s.get('state_name')}" for s in pgmap.get("pgs_by_state") or [])
        waiting.append(("osd", f"PGs active+clean {clean}/{num_pgs} in {pgmap.get('num_pools') or 0} pools"
                               + (f" ({states})" if states else "")))
    health = status.get("health") or {}
    checks = {name: str(((c or {}).get("summary") or {}).get("message", ""))
              for name, c in (health.get("checks") or {}).items()}
    return Readiness(ready=not waiting, waiting=waiting, health=str(health.get("status") or "unknown"),
                     checks=checks)
