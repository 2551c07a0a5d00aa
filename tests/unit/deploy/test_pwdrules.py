"""The kind rules of passwords.yml keys (stackyard.deploy.pwdrules), as a table."""

from __future__ import annotations

import pytest

from stackyard.deploy import pwdrules, services
from stackyard.deploy.services.base import Password, PasswordKind

K = PasswordKind
EMPTY_PAIR = {"private_key": None, "public_key": None}


@pytest.mark.parametrize("key, value, declared, kind", [
    # a service's declaration wins: it knows what it reads
    ("rabbitmq_cluster_cookie", None, {"rabbitmq_cluster_cookie": K.LETTERS}, K.LETTERS),
    ("heat_auth_encryption_key", None, {"heat_auth_encryption_key": K.KEY32}, K.KEY32),
    # kolla-ansible's rules for keys stackyard's services do not declare
    ("nova_ssh_key", None, {}, K.SSH_KEY),
    ("octavia_amp_ssh_key", EMPTY_PAIR, {}, K.SSH_KEY),
    ("gnocchi_user_id", None, {}, K.UUID),
    ("designate_rndc_key", None, {}, K.HEX),
    ("barbican_crypto_key", None, {}, K.FERNET),
    ("prometheus_bcrypt_salt", None, {}, K.BCRYPT_SALT),
    ("docker_registry_password", None, {}, K.BLANK),
    # the value's shape: an empty key pair under any name
    ("my_ssh_key", EMPTY_PAIR, {}, K.SSH_KEY),
    ("my_mapping", {"a": None}, {}, K.PLAIN),
    # anything else is a random password
    ("aodh_database_password", None, {}, K.PLAIN),
])
def test_kind_of(key, value, declared, kind):
    assert pwdrules.kind_of(key, value, {k: Password(k, v) for k, v in declared.items()}) == kind


@pytest.mark.parametrize("value, kind, unset", [
    (None, K.PLAIN, True),
    ("", K.PLAIN, True),
    ("x", K.PLAIN, False),
    (0, K.PLAIN, False),
    (None, K.SSH_KEY, True),
    (EMPTY_PAIR, K.SSH_KEY, True),
    ({"private_key": "", "public_key": ""}, K.SSH_KEY, True),
    ({}, K.SSH_KEY, True),
    ({"private_key": None, "public_key": "ssh-rsa AAAA"}, K.SSH_KEY, False),
    ({"a": None}, K.PLAIN, False),
])
def test_is_unset(value, kind, unset):
    assert pwdrules.is_unset(value, kind) is unset


def test_keys_to_fill_covers_file_and_declared_keys_but_not_blank_or_set_ones():
    data = {"set_key": "value", "empty_key": None, "docker_registry_password": None, "nova_ssh_key": EMPTY_PAIR}
    declared = {"database_password": Password("database_password"),
                "set_key": Password("set_key"),
                "rbd_secret_uuid": Password("rbd_secret_uuid", K.UUID)}
    assert pwdrules.keys_to_fill(data, declared) == {
        "empty_key": K.PLAIN, "nova_ssh_key": K.SSH_KEY, "database_password": K.PLAIN, "rbd_secret_uuid": K.UUID}


def test_declared_kinds_agree_with_kollas_rules():
    """A key both name must get the same kind, or files would differ between the tools."""
    declared = services.passwords()
    clashes = {k: (p.kind, pwdrules.KOLLA_KINDS[k]) for k, p in declared.items()
               if k in pwdrules.KOLLA_KINDS and p.kind != pwdrules.KOLLA_KINDS[k]}
    assert clashes == {}


@pytest.mark.parametrize("old, new, carried", [
    ({"redis_master_password": "r"}, {"valkey_master_password": None}, {"valkey_master_password": "r"}),
    # the old file already has the new key: its own value stays
    ({"redis_master_password": "r", "valkey_master_password": "v"}, {"valkey_master_password": None}, {}),
    # nothing to carry: empty old value, or the new release does not have the new key
    ({"redis_master_password": None}, {"valkey_master_password": None}, {}),
    ({"redis_master_password": "r"}, {"other": None}, {}),
])
def test_carried_over(old, new, carried):
    assert pwdrules.carried_over(old, new) == carried
