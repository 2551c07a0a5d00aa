"""Build settings: defaults, the YAML config file, and command-line flags.

The config file (default ``/etc/stackyard/build.yml``) mirrors the CLI flags one
to one (``--base-tag`` is ``base_tag:``), so an operator can move any flag into
the file. Precedence: built-in defaults < config file < flags.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from stackyard.errors import ConfigError
from stackyard.imagebuild import sources
from stackyard.yamlfile import parse_yaml

DEFAULT_CONFIG_FILE = Path("/etc/stackyard/build.yml")

#: OpenStack release shipped by each Debian suite (Debian's own packages).
DEBIAN_RELEASES: dict[str, str] = {
    "bookworm": "zed",
    "trixie": "2025.1",
}

INSTALL_TYPES = ("binary", "source")

#: Built-in profiles; the config file may add or replace entries.
#: The builder's own profile; the named sets (infra, core) come from the service
#: definitions (the CLI passes them in ``make_config``'s defaults), and the
#: config file may add or replace entries.
DEFAULT_PROFILES: dict[str, list[str]] = {
    "all": [],  # empty means every image
}

#: keys of one service user in :attr:`BuildConfig.users`
USER_KEYS = ("uid", "gid", "home", "groups")
#: built-in defaults :func:`make_config` accepts from its caller
DEFAULT_KEYS = ("profiles", "users")


@dataclass
class BuildConfig:
    """Every setting of one ``stackyard build`` run."""

    base_image: str = "debian"
    base_tag: str = "trixie"
    install_type: str = "binary"
    registry: str = ""
    namespace: str = "stackyard"
    tag: str = ""  # empty: the OpenStack release of base_tag
    openstack_release: str = ""  # empty: derived from base_tag
    threads: int = 2
    retries: int = 2
    docker_dirs: list[str] = field(default_factory=list)
    template_overrides: list[str] = field(default_factory=list)
    template_vars: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, list[str]] = field(default_factory=lambda: dict(DEFAULT_PROFILES))
    apt_mirror: str = "http://deb.debian.org/debian"
    apt_security_mirror: str = "http://deb.debian.org/debian-security"
    apt_proxy: str = ""
    push: bool = False
    skip_parents: bool = False
    skip_existing: bool = False
    no_cache: bool = False  # rebuild every selected image, ignoring hashes and Docker's layer cache
    regex: bool = False
    work_dir: str = "/var/lib/stackyard/build"
    logs_dir: str = ""  # empty: <work_dir>/logs
    summary_file: str = ""
    format: str = "text"
    debootstrap_include: list[str] = field(default_factory=lambda: ["ca-certificates"])
    #: service users the images create, name -> {"uid", "gid", "home", "groups"}. Passed in by
    #: the caller (the same table the deployer uses for volume and config file owners), never
    #: read from the build config file: images and deploy must agree on every number.
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: source builds: project -> {"version": …} or {"type": "local", "location": …} (see sources.py)
    sources: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.finalise()

    def finalise(self) -> None:
        """Fill derived values; validate values that have a fixed set of choices."""
        if self.install_type not in INSTALL_TYPES:
            raise ConfigError(
                f"install_type: '{self.install_type}' is not one of {', '.join(INSTALL_TYPES)}"
            )
        debian = DEBIAN_RELEASES.get(self.base_tag)
        if self.install_type == "binary":
            if not self.openstack_release:
                self.openstack_release = debian or "master"
            elif debian and self.openstack_release != debian:
                raise ConfigError(
                    f"openstack_release: binary images are Debian {self.base_tag}'s packages (OpenStack "
                    f"{debian}); '{self.openstack_release}' needs install_type source")
        else:
            if not self.openstack_release:
                self.openstack_release = sources.DEFAULT_RELEASE
            sources.resolve(self.openstack_release, self.sources)  # one-line errors before any build
        if not self.tag:
            self.tag = self.openstack_release
        if self.threads < 1:
            raise ConfigError(f"threads: must be at least 1, got {self.threads}")
        if self.format not in ("text", "json"):
            raise ConfigError(f"format: '{self.format}' is not one of text, json")
        self.users = check_users("users", self.users)

    @property
    def base_ref(self) -> str:
        return f"{self.base_image}:{self.base_tag}"

    @property
    def image_prefix(self) -> str:
        """``<registry>/<namespace>/`` (registry part omitted when empty)."""
        parts = [p for p in (self.registry, self.namespace) if p]
        return "/".join(parts) + "/" if parts else ""

    def image_ref(self, name: str) -> str:
        return f"{self.image_prefix}{name}:{self.tag}"

    @property
    def log_path(self) -> Path:
        return Path(self.logs_dir) if self.logs_dir else Path(self.work_dir) / "logs"


_FIELD_TYPES: dict[str, type] = {
    "base_image": str, "base_tag": str, "install_type": str, "registry": str,
    "namespace": str, "tag": str, "openstack_release": str, "threads": int,
    "retries": int, "docker_dirs": list, "template_overrides": list,
    "template_vars": dict, "profiles": dict, "apt_mirror": str,
    "apt_security_mirror": str, "apt_proxy": str, "push": bool,
    "skip_parents": bool, "skip_existing": bool, "no_cache": bool, "regex": bool, "work_dir": str,
    "logs_dir": str, "summary_file": str, "format": str, "debootstrap_include": list,
    "sources": dict,
}
#: settings the config file may not set (see :attr:`BuildConfig.users`), with the reason
_NOT_IN_FILE: dict[str, str] = {
    "users": "service users come from stackyard's users table, not the build config "
             "(images and the deployer must agree on every UID/GID)",
}
assert set(_FIELD_TYPES) | set(_NOT_IN_FILE) == {f.name for f in fields(BuildConfig)}


def check_users(source: str, users: Any) -> dict[str, dict[str, Any]]:
    """Validate a service-user table and return a normalised copy (``groups`` a list).

    Checked here, not at render time, so a bad table fails with one line naming
    the user and key instead of a Jinja error deep inside the base image.
    """
    if not isinstance(users, Mapping):
        raise ConfigError(f"{source}: must be a mapping of user name to uid/gid/home/groups, "
                          f"got {type(users).__name__}")
    out: dict[str, dict[str, Any]] = {}
    for name, entry in users.items():
        where = f"{source}: user '{name}'"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where} must be a mapping with uid, gid, home, got {type(entry).__name__}")
        unknown = sorted(set(entry) - set(USER_KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown key '{unknown[0]}' (expected {', '.join(USER_KEYS)})")
        for key in ("uid", "gid"):
            value = entry.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{where}: '{key}' must be a non-negative integer, got {value!r}")
        home = entry.get("home")
        if not isinstance(home, str) or not home.startswith("/"):
            raise ConfigError(f"{where}: 'home' must be an absolute path, got {home!r}")
        groups = entry.get("groups", [])
        if isinstance(groups, str) or not isinstance(groups, (list, tuple)) \
                or not all(isinstance(g, str) for g in groups):
            raise ConfigError(f"{where}: 'groups' must be a list of group names, got {groups!r}")
        out[str(name)] = {"uid": entry["uid"], "gid": entry["gid"], "home": home, "groups": list(groups)}
    return out


def _check_type(source: str, key: str, value: Any) -> Any:
    expected = _FIELD_TYPES[key]
    if expected is int and isinstance(value, bool):
        raise ConfigError(f"{source}: key '{key}' must be an integer, got {value!r}")
    if not isinstance(value, expected):
        raise ConfigError(
            f"{source}: key '{key}' must be {expected.__name__}, got {type(value).__name__} {value!r}"
        )
    if key == "profiles":
        for name, members in value.items():
            if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
                raise ConfigError(f"{source}: profile '{name}' must be a list of image names")
    return value


def load_config_file(path: Path, *, required: bool) -> dict[str, Any]:
    """Read and validate a build.yml; returns only the keys it sets."""
    if not path.exists():
        if required:
            raise ConfigError(f"{path}: config file does not exist")
        return {}
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    data = parse_yaml(text, str(path)) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of settings, got {type(data).__name__}")
    out: dict[str, Any] = {}
    for key, value in data.items():
        norm = str(key).replace("-", "_")
        if norm in _NOT_IN_FILE:
            raise ConfigError(f"{path}: key '{key}' is not a build setting: {_NOT_IN_FILE[norm]}")
        if norm not in _FIELD_TYPES:
            close = difflib.get_close_matches(norm, list(_FIELD_TYPES), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{path}: unknown key '{key}'{hint}")
        out[norm] = _check_type(str(path), norm, value)
    return out


def make_config(file_values: dict[str, Any], flag_values: dict[str, Any],
                defaults: Mapping[str, Any] | None = None) -> BuildConfig:
    """Combine built-in defaults, file values and flag values (flags win; ``None`` flags mean "not given").

    ``defaults`` holds what the caller knows and this module must not import:
    ``profiles`` (replacing :data:`DEFAULT_PROFILES`; the config file still adds
    or replaces entries) and ``users`` (the service-user table; empty when not
    given, so only images that need no service user render).
    """
    defaults = defaults or {}
    unknown = sorted(set(defaults) - set(DEFAULT_KEYS))
    if unknown:
        raise ValueError(f"make_config: unknown default '{unknown[0]}' (accepted: {', '.join(DEFAULT_KEYS)})")
    merged: dict[str, Any] = dict(file_values)
    for key, value in flag_values.items():
        if value is None:
            continue
        if key in ("docker_dirs", "template_overrides") and value == []:
            continue
        if key in DEFAULT_KEYS:
            continue
        merged[key] = value
    base_profiles = defaults.get("profiles", DEFAULT_PROFILES)
    profiles = {name: list(members) for name, members in base_profiles.items()}
    profiles.update(file_values.get("profiles", {}))
    merged["profiles"] = profiles
    merged["users"] = check_users("users", defaults.get("users", {}))
    return BuildConfig(**merged)
