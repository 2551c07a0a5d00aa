"""passwords.yml: generation, merging, loading."""

from __future__ import annotations

import base64
import stat
import string
import uuid

import pytest
import yaml

from stackyard.deploy import services
from stackyard.deploy.passwords import (
    genpwd,
    load_passwords,
    mergepwd,
    password_keys,
    required_passwords,
)
from stackyard.deploy.services.base import Password, PasswordKind
from stackyard.errors import ConfigError

PASSWORD_KEYS = list(password_keys())


def svcs(*names: str) -> list:
    """The Service records of ``names`` (what the deploy passes: the enabled services)."""
    return [services.get(n) for n in names]


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def read(path) -> dict:
    return yaml.safe_load(path.read_text())


def test_password_keys_use_kolla_names():
    for key in ("database_password", "keystone_admin_password", "keystone_database_password",
                "rabbitmq_password", "rabbitmq_cluster_cookie", "memcache_secret_key",
                "glance_database_password", "glance_keystone_password",
                "placement_database_password", "placement_keystone_password",
                "nova_database_password", "nova_api_database_password",
                "nova_keystone_password", "neutron_database_password",
                "neutron_keystone_password", "metadata_secret", "horizon_secret_key",
                "horizon_database_password"):
        assert key in PASSWORD_KEYS
    assert len(PASSWORD_KEYS) == len(set(PASSWORD_KEYS))


def test_password_keys_carry_their_kind():
    keys = password_keys()
    assert all(isinstance(p, Password) and p.key == k for k, p in keys.items())
    # the Erlang cookie becomes an atom: letters only
    assert keys["rabbitmq_cluster_cookie"].kind == PasswordKind.LETTERS
    assert keys["database_password"].kind == PasswordKind.PLAIN
    # every key some service needs is one genpwd fills
    assert required_passwords(services.ALL.values()) == set(keys)


def test_required_passwords_per_service():
    assert required_passwords(svcs("keystone")) == {"keystone_admin_password", "keystone_fernet_secret",
                                                    "keystone_database_password"}
    assert required_passwords(svcs("cron")) == set()
    assert required_passwords([]) == set()
    core = required_passwords(svcs("mariadb", "rabbitmq", "memcached"))
    assert core == {"database_password", "rabbitmq_password", "rabbitmq_cluster_cookie",
                    "memcache_secret_key"}
    assert "metadata_secret" in required_passwords(svcs("neutron"))


def test_genpwd_creates_file_with_strong_values_and_mode_0600(tmp_path):
    path = tmp_path / "passwords.yml"
    generated = genpwd(path)
    assert sorted(generated) == sorted(PASSWORD_KEYS)
    data = read(path)
    assert set(data) == set(PASSWORD_KEYS)
    assert mode(path) == 0o600
    safe = set(string.ascii_letters + string.digits + "-_")
    for value in data.values():
        assert isinstance(value, str) and len(value) >= 32
        assert set(value) <= safe
    assert set(data["rabbitmq_cluster_cookie"]) <= set(string.ascii_letters)
    assert len(set(data.values())) == len(data)  # all distinct


def test_genpwd_generates_each_kind(tmp_path):
    path = tmp_path / "passwords.yml"
    keys = {k.value: Password(k.value, k) for k in PasswordKind if k != PasswordKind.BLANK}
    generated = genpwd(path, keys)
    assert sorted(generated) == sorted(keys)
    data = read(path)
    assert set(data) == set(keys)
    assert mode(path) == 0o600
    plain, letters = data["plain"], data["letters"]
    assert isinstance(plain, str) and len(plain) >= 32
    assert set(plain) <= set(string.ascii_letters + string.digits)
    assert isinstance(letters, str) and len(letters) >= 32 and set(letters) <= set(string.ascii_letters)
    assert str(uuid.UUID(data["uuid"])) == data["uuid"]
    assert len(base64.urlsafe_b64decode(data["fernet"])) == 32  # a valid Fernet key
    assert len(data["key32"]) == 32 and data["key32"].isalnum()
    assert len(bytes.fromhex(data["hex"])) == 16  # an MD5 digest's size
    assert len(data["bcrypt_salt"]) == 22
    assert set(data["bcrypt_salt"]) <= set("./" + string.ascii_letters + string.digits)
    pair = data["ssh_key"]
    assert set(pair) == {"private_key", "public_key"}
    assert "PRIVATE KEY-----" in pair["private_key"]
    assert pair["public_key"].startswith("ssh-rsa ")
    # a second run keeps every kind as it is
    assert genpwd(path, keys) == []
    assert read(path) == data


def test_genpwd_leaves_blank_keys_empty(tmp_path):
    path = tmp_path / "passwords.yml"
    path.write_text("docker_registry_password:\nsome_other_password:\n")
    generated = genpwd(path, {"operator_thing": Password("operator_thing", PasswordKind.BLANK)})
    data = read(path)
    assert generated == ["some_other_password"]
    assert data["docker_registry_password"] is None and "operator_thing" not in data
    assert len(data["some_other_password"]) == 40


def test_genpwd_fills_keys_no_service_declares_by_kollas_rules(tmp_path):
    path = tmp_path / "passwords.yml"
    path.write_text("aodh_database_password:\ndesignate_pool_id:\nosprofiler_secret:\n"
                    "barbican_crypto_key:\nprometheus_bcrypt_salt:\n"
                    "some_ssh_key: {private_key: null, public_key: null}\n")
    assert sorted(genpwd(path, {})) == ["aodh_database_password", "barbican_crypto_key", "designate_pool_id",
                                        "osprofiler_secret", "prometheus_bcrypt_salt", "some_ssh_key"]
    data = read(path)
    assert len(data["aodh_database_password"]) == 40 and data["aodh_database_password"].isalnum()
    assert str(uuid.UUID(data["designate_pool_id"])) == data["designate_pool_id"]
    assert len(bytes.fromhex(data["osprofiler_secret"])) == 16
    assert len(base64.urlsafe_b64decode(data["barbican_crypto_key"])) == 32
    assert len(data["prometheus_bcrypt_salt"]) == 22
    assert data["some_ssh_key"]["public_key"].startswith("ssh-rsa ")


def test_genpwd_keeps_a_half_filled_ssh_key_pair(tmp_path):
    path = tmp_path / "passwords.yml"
    path.write_text("nova_ssh_key: {private_key: null, public_key: ssh-rsa AAAA}\n")
    assert genpwd(path, {}) == []
    assert read(path)["nova_ssh_key"] == {"private_key": None, "public_key": "ssh-rsa AAAA"}


def test_genpwd_never_overwrites_and_keeps_other_keys(tmp_path):
    path = tmp_path / "passwords.yml"
    path.write_text("database_password: keepme\nkeystone_admin_password: ''\n"
                    "nova_keystone_password:\ncustom_thing: {a: 1}\n")
    generated = genpwd(path)
    data = read(path)
    assert data["database_password"] == "keepme"
    assert data["custom_thing"] == {"a": 1}
    assert "database_password" not in generated
    assert "keystone_admin_password" in generated and len(data["keystone_admin_password"]) >= 32
    assert "nova_keystone_password" in generated and data["nova_keystone_password"]


def test_genpwd_twice_changes_nothing(tmp_path):
    path = tmp_path / "passwords.yml"
    genpwd(path)
    first = path.read_text()
    assert genpwd(path) == []
    assert path.read_text() == first


def test_genpwd_tightens_loose_mode(tmp_path):
    path = tmp_path / "passwords.yml"
    path.write_text("database_password: x\n")
    path.chmod(0o644)
    genpwd(path)
    assert mode(path) == 0o600


def test_genpwd_leaves_no_temp_files(tmp_path):
    genpwd(tmp_path / "passwords.yml")
    assert [p.name for p in tmp_path.iterdir()] == ["passwords.yml"]


def test_genpwd_creates_parent_directory(tmp_path):
    path = tmp_path / "etc" / "kolla" / "passwords.yml"
    genpwd(path)
    assert path.is_file()


def test_genpwd_rejects_bad_file(tmp_path):
    path = tmp_path / "passwords.yml"
    path.write_text("- a\n")
    with pytest.raises(ConfigError, match="passwords.yml.*mapping"):
        genpwd(path)
    path.write_text("a: [\n")
    with pytest.raises(ConfigError, match="passwords.yml.*invalid YAML"):
        genpwd(path)


def test_mergepwd_semantics(tmp_path):
    old, new, final = tmp_path / "old.yml", tmp_path / "new.yml", tmp_path / "final.yml"
    old.write_text("both: old-value\nonly_old: kept\nold_empty:\n")
    new.write_text("both: new-value\nonly_new: fresh\nnew_empty:\nold_empty: from-new\n")
    mergepwd(old, new, final)
    # the old file wins for every key it has, even an empty one (kolla-mergepwd's rule)
    assert read(final) == {"both": "old-value", "only_old": "kept", "only_new": "fresh",
                           "new_empty": None, "old_empty": None}
    assert mode(final) == 0o600


def test_mergepwd_clean_drops_keys_only_in_old(tmp_path):
    old, new, final = tmp_path / "old.yml", tmp_path / "new.yml", tmp_path / "final.yml"
    old.write_text("both: old-value\nonly_old: gone\n")
    new.write_text("both:\nonly_new:\n")
    mergepwd(old, new, final, clean=True)
    assert read(final) == {"both": "old-value", "only_new": None}


def test_mergepwd_carries_a_renamed_key_over(tmp_path):
    old, new, final = tmp_path / "old.yml", tmp_path / "new.yml", tmp_path / "final.yml"
    old.write_text("redis_master_password: in-use\n")
    new.write_text("valkey_master_password:\n")
    mergepwd(old, new, final, clean=True)
    assert read(final) == {"valkey_master_password": "in-use"}
    mergepwd(old, new, final)
    assert read(final) == {"valkey_master_password": "in-use", "redis_master_password": "in-use"}
    old.write_text("redis_master_password: in-use\nvalkey_master_password: own\n")
    mergepwd(old, new, final, clean=True)
    assert read(final) == {"valkey_master_password": "own"}


def test_mergepwd_then_genpwd_fills_new_keys(tmp_path):
    old, new = tmp_path / "old.yml", tmp_path / "new.yml"
    old.write_text("database_password: secret\n")
    new.write_text("".join(f"{k}:\n" for k in PASSWORD_KEYS))
    mergepwd(old, new, new)
    genpwd(new)
    data = read(new)
    assert data["database_password"] == "secret"
    assert all(data[k] for k in PASSWORD_KEYS)


def test_mergepwd_missing_input_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="old.yml"):
        mergepwd(tmp_path / "old.yml", tmp_path / "new.yml", tmp_path / "f.yml")


def test_load_passwords_missing_file_says_run_genpwd(tmp_path):
    path = tmp_path / "passwords.yml"
    with pytest.raises(ConfigError) as exc:
        load_passwords(path, svcs("keystone"))
    assert str(path) in str(exc.value) and "stackyard genpwd" in str(exc.value)


def test_load_passwords_names_missing_and_empty_keys(tmp_path):
    path = tmp_path / "passwords.yml"
    path.write_text("keystone_admin_password: ''\ndatabase_password: x\n")
    with pytest.raises(ConfigError) as exc:
        load_passwords(path, svcs("mariadb", "keystone"))
    msg = str(exc.value)
    assert "keystone_admin_password" in msg and "keystone_database_password" in msg
    assert "database_password," not in msg.replace("keystone_database_password", "")
    assert "stackyard genpwd" in msg and str(path) in msg


def test_load_passwords_only_checks_enabled_services(tmp_path):
    path = tmp_path / "passwords.yml"
    path.write_text("database_password: x\nextra: y\n")
    assert load_passwords(path, svcs("mariadb", "cron")) == {"database_password": "x",
                                                        "extra": "y"}


def test_load_passwords_rejects_non_string(tmp_path):
    path = tmp_path / "passwords.yml"
    path.write_text("database_password: 12345\n")
    with pytest.raises(ConfigError, match="database_password"):
        load_passwords(path, svcs("mariadb"))


def test_load_after_genpwd_succeeds_for_all_services(tmp_path):
    path = tmp_path / "passwords.yml"
    genpwd(path)
    data = load_passwords(path, services.ALL.values())
    assert set(PASSWORD_KEYS) <= set(data)
