"""The service definition: one declarative record per service, plus its ``plan()``.

Each module in this package defines ``SERVICE = Service(...)``. The record holds
every fact about the service that some other part of stackyard needs: its
enable flag and options (the globals.yml schema), passwords (genpwd and the
password check), databases and RabbitMQ user (MariaDB and RabbitMQ setup),
Keystone registrations, HAProxy frontends, inventory groups (the built-in
all-in-one inventory and group fallbacks), images and build profile, service
users and their UIDs (images and file ownership), the ports it binds
(prechecks) and the override files it reads. Every such registry is derived
from these records by :mod:`stackyard.deploy.services` (the package), so adding
a service is adding one module here plus its ``images/`` folders.

``plan`` holds what cannot be declared: the config files and the ordered steps
of the service's phase for one host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Callable

from stackyard.deploy.options import Option

if TYPE_CHECKING:  # the context imports nothing from here at run time
    from stackyard.agent.model import Phase
    from stackyard.deploy.context import PlanContext


class PasswordKind(str, Enum):
    """How genpwd makes a value (kolla-ansible's kinds of passwords.yml keys)."""

    PLAIN = "plain"          # 40 letters and digits: safe in URLs, INI, YAML and shells
    LETTERS = "letters"      # letters only (the Erlang cookie becomes an atom)
    UUID = "uuid"            # a random UUID (libvirt secret IDs)
    SSH_KEY = "ssh_key"      # {private_key, public_key}: an RSA key pair
    FERNET = "fernet"        # a Fernet key: 32 random bytes, urlsafe base64
    KEY32 = "key32"          # exactly 32 letters and digits (Heat's auth_encryption_key)
    HEX = "hex"              # 32 hex digits: an HMAC-MD5 digest (Designate's rndc key, OSProfiler)
    BCRYPT_SALT = "bcrypt_salt"  # 22 characters of bcrypt's alphabet (Prometheus' password hashes)
    BLANK = "blank"          # left empty for the operator to set (a registry password is theirs)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Password:
    key: str
    kind: PasswordKind = PasswordKind.PLAIN


@dataclass(frozen=True)
class Database:
    """A database and the user owning it (created before the service's bootstrap)."""

    name: str
    user: str
    password_key: str
    #: inventory group of the hosts that need it (whose plan carries the step)
    group: str = ""


@dataclass(frozen=True)
class RabbitUser:
    """The service's RabbitMQ user; its vhost has the same name."""

    user: str
    password_key: str = "rabbitmq_password"


@dataclass(frozen=True)
class Registration:
    """A Keystone catalog entry (service, public/internal/admin endpoints) and service user."""

    name: str
    type: str
    #: the option holding the API port
    port: str
    path: str = ""
    description: str = ""
    user: str | None = None
    password_key: str | None = None
    roles: tuple[str, ...] = ("admin",)
    group: str = ""


@dataclass(frozen=True)
class Domain:
    """A Keystone domain of the service's own, and its domain admin.

    Services that make Keystone users and projects at run time (Heat's stack
    users) keep them in a domain of their own, managed by an admin user that
    holds the ``admin`` role on that domain only.
    """

    name: str
    description: str = ""
    #: the domain admin (created in the domain), and the password key holding its password
    admin_user: str | None = None
    password_key: str | None = None


@dataclass(frozen=True)
class Role:
    """A Keystone role the service's policies or its users need (created if missing)."""

    name: str
    #: also grant it to the cloud admin (``keystone_admin_user``) in its project,
    #: as kolla-ansible's ``<service>_ks_user_roles`` do
    grant_admin: bool = False


@dataclass(frozen=True)
class Frontend:
    """An HAProxy listener on the internal VIP, forwarding to the hosts of ``group``."""

    name: str
    group: str
    #: the option holding the port (same on the VIP and the backends)
    port: str
    mode: str = "http"
    #: HTTP health check path; empty: TCP connect
    check_path: str = ""
    #: one server at a time (Galera: avoids write conflicts between members)
    active_backup: bool = False


@dataclass(frozen=True)
class User:
    """A fixed service user (Kolla's UID/GID numbers): images create it, files are owned by it."""

    name: str
    uid: int
    home: str
    groups: tuple[str, ...] = ("kolla",)

    @property
    def gid(self) -> int:
        return self.uid


@dataclass(frozen=True)
class Group:
    """An inventory group and the groups whose hosts it holds when the inventory lacks it.

    kolla-ansible's inventories spell these out as ``[nova-compute:children]
    compute``; the built-in all-in-one is generated from them, and a
    hand-written inventory without the group falls back to its parents.
    """

    name: str
    parents: tuple[str, ...] = ("control",)


@dataclass(frozen=True)
class Port:
    """A port (option name) the container ``container`` binds on the host's API address."""

    option: str
    container: str


@dataclass(frozen=True)
class UpgradeJob:
    """One step of a project's upgrade: a one-off container of the *new* release's
    image (the ``container``'s image, config and volumes) running the image's
    upgrade hook with ``STACKYARD_UPGRADE_STEP=step``."""

    name: str
    container: str
    step: str
    #: "before": while the old release's containers still run; "after": once every
    #: container of the service runs the new release
    when: str = "before"


@dataclass(frozen=True)
class Upgrade:
    """How a project goes from one release to the next, as its upgrade docs prescribe.

    The service's containers are recreated (new image, new config) between the
    ``before`` and ``after`` jobs, in ``order`` (the others follow in plan
    order); ``replaces`` names the bootstrap jobs the upgrade jobs do the work
    of (recorded as done, not run: a full db_sync would contract too early).
    """

    jobs: tuple[UpgradeJob, ...] = ()
    order: tuple[str, ...] = ()
    replaces: tuple[str, ...] = ()
    #: empty memcached before the new containers start (what the old release cached)
    flush_caches: bool = False


@dataclass(frozen=True)
class Service:
    name: str
    #: one line for the enable flag's help
    summary: str
    #: default of ``enable_<name>`` (a bool, or a template such as "{{ enable_neutron }}")
    enabled: bool | str = False
    #: services that must be enabled too, and deployed first
    requires: tuple[str, ...] = ()
    #: services deployed first when they are enabled (ordering only)
    after: tuple[str, ...] = ()
    #: inventory groups, the service's own first, then its per-container child groups
    groups: tuple[Group, ...] = ()
    #: groups whose hosts get the service's phase (each step then stays on its own group's hosts)
    placed_by: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    #: build profile: "infra" (databases, queues, load balancer) or "core" (OpenStack services)
    profile: str = "core"
    options: tuple[Option, ...] = ()
    passwords: tuple[Password, ...] = ()
    databases: tuple[Database, ...] = ()
    rabbitmq: RabbitUser | None = None
    registrations: tuple[Registration, ...] = ()
    #: Keystone domains and roles it needs (made before its containers start)
    domains: tuple[Domain, ...] = ()
    roles: tuple[Role, ...] = ()
    frontends: tuple[Frontend, ...] = ()
    users: tuple[User, ...] = ()
    ports: tuple[Port, ...] = ()
    #: override files (relative to config/, least specific first) for the service's
    #: oslo.config files; {project}, {service} (the container's config dir) and
    #: {host} are filled in. Empty: the service reads no override.
    overrides: tuple[str, ...] = ()
    #: the project name in override paths (config/<project>.conf …)
    project: str = ""
    #: how it upgrades between releases; None: its containers are simply recreated
    upgrade: Upgrade | None = None
    #: containers that carry the tenants' traffic or servers (libvirt's QEMU processes):
    #: a rollback leaves them running while it stops the rest of the service
    data_plane: tuple[str, ...] = ()
    plan: Callable[["PlanContext"], "Phase"] | None = field(default=None, compare=False)

    @property
    def enable_flag(self) -> str:
        return f"enable_{self.name}"

    @property
    def placement_groups(self) -> tuple[str, ...]:
        """``placed_by``, else the service's own group."""
        if self.placed_by:
            return self.placed_by
        return (self.groups[0].name,) if self.groups else (self.name,)

    def enable_option(self) -> Option:
        return Option(self.enable_flag, bool, self.enabled, f"Deploy {self.summary}")


#: oslo.config override files in kolla-ansible's lookup order, least specific first; the
#: per-host <project>.conf is kolla-ansible's name, the per-host <service>.conf the most specific
OSLO_OVERRIDES = (
    "global.conf",
    "{project}.conf",
    "{project}/{service}.conf",
    "{project}/{host}/{project}.conf",
    "{project}/{host}/{service}.conf",
)
