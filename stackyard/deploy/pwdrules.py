"""Which kind of value each passwords.yml key takes, and keys renamed between releases.

kolla-ansible's ``passwords.yml`` holds keys for every service it can deploy,
most of which stackyard does not deploy. ``stackyard genpwd`` still fills all
of them, as ``kolla-genpwd`` does, so one file serves both tools and a service
enabled later (or a switch back to kolla-ansible) finds its secret. The
services stackyard deploys declare their own keys' kinds
(:class:`~stackyard.deploy.services.base.Password`); this module holds the
rules for every other key, as data:

* ``KOLLA_KINDS``: the keys kolla-ansible gives a kind other than a random
  password (SSH key pairs, UUIDs, HMAC digests, Fernet keys, bcrypt salts) or
  leaves blank for the operator;
* an empty ``{private_key, public_key}`` mapping is an SSH key pair whatever
  its name (that is how kolla's file marks one);
* anything else is a random password (:data:`DEFAULT_KIND`).

``tests/unit/deploy/test_kolla_passwords.py`` checks these rules against
``kolla-genpwd`` run on kolla-ansible's shipped file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stackyard.deploy.services.base import Password, PasswordKind

#: the fields of an SSH key pair value
SSH_FIELDS = ("private_key", "public_key")

#: key -> kind, for the keys kolla-ansible does not fill with a random password
KOLLA_KINDS: Mapping[str, PasswordKind] = {
    # SSH key pairs: Nova's migration, kolla's deploy user, Keystone's fernet
    # key sync, Bifrost, Octavia's amphorae, Neutron, HAProxy's certificate sync
    **dict.fromkeys(("kolla_ssh_key", "nova_ssh_key", "keystone_ssh_key", "bifrost_ssh_key",
                     "octavia_amp_ssh_key", "neutron_ssh_key", "haproxy_ssh_key"),
                    PasswordKind.SSH_KEY),
    # identifiers other services look up, so they must be UUID-shaped
    **dict.fromkeys(("rbd_secret_uuid", "cinder_rbd_secret_uuid", "gnocchi_project_id",
                     "gnocchi_resource_id", "gnocchi_user_id", "designate_pool_id"),
                    PasswordKind.UUID),
    # HMAC keys kolla makes as an MD5 hex digest (BIND's rndc, OSProfiler)
    **dict.fromkeys(("designate_rndc_key", "osprofiler_secret"), PasswordKind.HEX),
    # Barbican's simple-crypto KEK is a Fernet key
    "barbican_crypto_key": PasswordKind.FERNET,
    # the salt of Prometheus' bcrypt password hashes
    "prometheus_bcrypt_salt": PasswordKind.BCRYPT_SALT,
    # the registry's password is the operator's (blank: no registry login)
    "docker_registry_password": PasswordKind.BLANK,
}

#: the kind of a key no rule names
DEFAULT_KIND = PasswordKind.PLAIN

#: new key -> the key that held its value in an older release; mergepwd carries
#: the old value over when the new file has the new key and the old file only
#: the old one (kolla-ansible replaced Redis by Valkey)
RENAMED_KEYS: Mapping[str, str] = {
    "valkey_master_password": "redis_master_password",
}


def is_ssh_pair(value: Any) -> bool:
    """A mapping shaped like an SSH key pair (kolla's file ships them with both fields null)."""
    return isinstance(value, dict) and bool(value) and set(value) <= set(SSH_FIELDS)


def kind_of(key: str, value: Any, declared: Mapping[str, Password]) -> PasswordKind:
    """The kind of ``key``: a stackyard service's declaration first (it knows
    what it reads), then kolla-ansible's rules, then the value's shape."""
    if key in declared:
        return declared[key].kind
    if key in KOLLA_KINDS:
        return KOLLA_KINDS[key]
    if is_ssh_pair(value):
        return PasswordKind.SSH_KEY
    return DEFAULT_KIND


def is_unset(value: Any, kind: PasswordKind) -> bool:
    """True if ``value`` holds no secret yet.

    kolla writes unset keys as ``key:`` (null); "" counts as unset too. An SSH
    key pair is unset when both of its fields are, as kolla-genpwd judges it;
    a half-filled pair is the operator's and is kept.
    """
    if value is None or value == "":
        return True
    if kind == PasswordKind.SSH_KEY and isinstance(value, dict):
        return all(value.get(f) in (None, "") for f in SSH_FIELDS)
    return False


def keys_to_fill(data: Mapping[str, Any], declared: Mapping[str, Password]) -> dict[str, PasswordKind]:
    """key -> kind for every key of the file or of ``declared`` that needs a value.

    Pure (the plan of genpwd): keys with a value are left alone, and keys of
    kind ``BLANK`` stay empty.
    """
    out: dict[str, PasswordKind] = {}
    for key in [*data, *(k for k in declared if k not in data)]:
        value = data.get(key)
        kind = kind_of(key, value, declared)
        if kind != PasswordKind.BLANK and is_unset(value, kind):
            out[key] = kind
    return out


def carried_over(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Values of renamed keys to put into ``new`` before merging ``old`` in.

    Only when ``new`` has the new name, ``old`` lacks it and holds a value
    under the old name: the cloud keeps using the same secret after the rename.
    """
    return {new_key: old[old_key] for new_key, old_key in RENAMED_KEYS.items()
            if new_key in new and new_key not in old and old.get(old_key)}
