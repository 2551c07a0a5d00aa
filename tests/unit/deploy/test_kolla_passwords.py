"""genpwd and mergepwd against kolla-ansible's own: its shipped passwords.yml, run
through ``kolla-genpwd`` / ``kolla-mergepwd`` and through stackyard, must come
out with the same keys holding the same kinds of values.

kolla-ansible is a test dependency (the ``test`` extra); without it these tests
fail with a message saying so (the ``kolla`` fixture in conftest.py).
"""

from __future__ import annotations

import base64
import binascii
import re
import shutil
import string
from pathlib import Path
from typing import Any

import pytest
import yaml

from stackyard.deploy import services
from stackyard.deploy.passwords import genpwd, load_passwords, mergepwd

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
BCRYPT = set("./" + string.ascii_letters + string.digits)


def shape(value: Any) -> str:
    """What kind of value this is, told from the value alone (not from any table)."""
    if value is None:
        return "blank"
    if isinstance(value, dict):
        if (set(value) == {"private_key", "public_key"} and "PRIVATE KEY-----" in str(value["private_key"])
                and str(value["public_key"]).startswith("ssh-rsa ")):
            return "ssh-rsa key pair"
        return f"mapping {sorted(value)}"
    if not isinstance(value, str):
        return type(value).__name__
    if UUID.fullmatch(value):
        return "uuid"
    if re.fullmatch(r"[0-9a-f]{32}", value):
        return "hex32"
    if len(value) == 44:
        try:
            if len(base64.urlsafe_b64decode(value)) == 32:
                return "fernet"
        except (binascii.Error, ValueError):
            pass
    if len(value) == 22 and set(value) <= BCRYPT:
        return "bcrypt salt"
    if value.isascii() and value.isalnum():
        return f"alnum{len(value)}"
    return f"other{len(value)}"


def read(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def generated(kolla, tmp_path_factory) -> dict[str, dict[str, Any]]:
    """kolla's shipped file after kolla-genpwd ("kolla") and after stackyard genpwd ("ours"),
    and the keys stackyard's genpwd reported ("reported")."""
    tmp = tmp_path_factory.mktemp("genpwd")
    theirs, ours = tmp / "kolla.yml", tmp / "ours.yml"
    shutil.copy(kolla.passwords, theirs)
    shutil.copy(kolla.passwords, ours)
    wait = kolla.start_genpwd(theirs)  # both make 4096-bit RSA keys: in parallel
    reported = genpwd(ours)
    wait()
    return {"shipped": read(kolla.passwords), "kolla": read(theirs), "ours": read(ours),
            "reported": dict.fromkeys(reported)}


def stackyard_only_keys(shipped: dict[str, Any]) -> set[str]:
    """Keys stackyard's services need that kolla-ansible's file does not have."""
    return set(services.passwords()) - set(shipped)


def test_genpwd_fills_every_key_kolla_genpwd_fills_with_the_same_kind(generated):
    shipped, theirs, ours = generated["shipped"], generated["kolla"], generated["ours"]
    assert set(ours) == set(theirs) | stackyard_only_keys(shipped)
    differ = {k: (shape(ours[k]), shape(theirs[k])) for k in theirs if shape(ours[k]) != shape(theirs[k])}
    assert differ == {}, "key: (stackyard's kind, kolla-genpwd's kind)"
    # the same keys are left blank, and the reported keys are exactly those that got a value
    assert {k for k, v in ours.items() if v is None} == {k for k, v in theirs.items() if v is None}
    assert set(generated["reported"]) == {k for k, v in ours.items() if v is not None}


def test_kinds_on_kollas_file_include_every_kind_kolla_makes(generated):
    """Guards the comparison above: kolla's file really exercises SSH pairs, UUIDs, hex,
    Fernet, bcrypt salts, blanks and plain passwords."""
    kinds = {shape(v) for v in generated["kolla"].values()}
    assert {"ssh-rsa key pair", "uuid", "hex32", "fernet", "bcrypt salt", "blank", "alnum40"} <= kinds


def test_ssh_keys_are_mappings_of_a_matching_pair(generated):
    from cryptography.hazmat.primitives import serialization

    pairs = {k: v for k, v in generated["ours"].items() if shape(v) == "ssh-rsa key pair"}
    assert set(pairs) == {k for k, v in generated["kolla"].items() if shape(v) == "ssh-rsa key pair"}
    for key, pair in pairs.items():
        private = serialization.load_pem_private_key(pair["private_key"].encode(), password=None,
                                                     unsafe_skip_rsa_key_validation=True)  # validation is slow; the match is checked below
        public = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                   serialization.PublicFormat.OpenSSH).decode()
        assert public == pair["public_key"], key
    assert len({p["public_key"] for p in pairs.values()}) == len(pairs)  # one pair per key


def test_genpwd_keeps_existing_values_of_kollas_file(kolla, tmp_path):
    data = read(kolla.passwords)
    pair = {"private_key": "-----BEGIN PRIVATE KEY-----\nkept\n", "public_key": "ssh-rsa kept"}
    kept = {"database_password": "mine", "keystone_admin_password": "admin-secret",
            "rbd_secret_uuid": "not-a-uuid-but-mine", "docker_registry_password": "registry",
            **{k: dict(pair) for k, v in data.items() if isinstance(v, dict)}}
    path = tmp_path / "passwords.yml"
    path.write_text(yaml.safe_dump({**data, **kept}))
    reported = genpwd(path)
    after = read(path)
    assert {k: after[k] for k in kept} == kept
    assert not set(kept) & set(reported)
    assert set(after) == set(data) | stackyard_only_keys(data)


def test_a_file_made_by_kolla_genpwd_gains_only_stackyards_keys(kolla, generated, tmp_path):
    path = tmp_path / "passwords.yml"
    path.write_text(yaml.safe_dump(generated["kolla"]))
    reported = genpwd(path)
    after = read(path)
    assert set(reported) == stackyard_only_keys(generated["shipped"])
    assert {k: after[k] for k in generated["kolla"]} == generated["kolla"]
    # and the result deploys: every enabled-or-not service finds its passwords
    assert load_passwords(path, services.ALL.values()) == after


def _mergepwd_cases(shipped: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, old, new): upgrades as operators run them, and the corner cases."""
    filled = {k: (None if v is None else f"old-{k}") for k, v in shipped.items()}
    next_release = {k: None for k in list(shipped)[5:]} | {"brand_new_password": None}
    return [
        ("kolla's file onto the next release's", filled, next_release),
        ("the same release", filled, dict.fromkeys(shipped)),
        ("corner cases",
         {"both": "old", "old_null": None, "only_old": "gone?", "ssh": {"private_key": "p", "public_key": "q"},
          "redis_master_password": "r"},
         {"both": "new", "old_null": "new-value", "only_new": None, "ssh": {"private_key": None, "public_key": None},
          "valkey_master_password": None}),
        ("a renamed key already set in the old file",
         {"redis_master_password": "r", "valkey_master_password": "v"}, {"valkey_master_password": None}),
        ("empty old value of a renamed key", {"redis_master_password": ""}, {"valkey_master_password": None}),
    ]


@pytest.mark.parametrize("clean", [False, True], ids=["merge", "clean"])
def test_mergepwd_matches_kolla_mergepwd(kolla, tmp_path, clean):
    for name, old, new in _mergepwd_cases(read(kolla.passwords)):
        case = tmp_path / name.replace(" ", "-").replace("'", "")
        case.mkdir()
        (case / "old.yml").write_text(yaml.safe_dump(old))
        (case / "new.yml").write_text(yaml.safe_dump(new))
        kolla.mergepwd(case / "old.yml", case / "new.yml", case / "kolla.yml", clean)
        mergepwd(case / "old.yml", case / "new.yml", case / "ours.yml", clean=clean)
        assert read(case / "ours.yml") == read(case / "kolla.yml"), name
