"""build.yml loading, validation and flag precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackyard.imagebuild.config import (
    DEFAULT_PROFILES,
    BuildConfig,
    load_config_file,
    make_config,
)
from stackyard.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "build.yml"
    p.write_text(text)
    return p


def test_defaults():
    c = BuildConfig()
    assert (c.base_ref, c.tag, c.openstack_release, c.namespace) == ("debian:trixie", "2025.1", "2025.1", "stackyard")
    assert c.image_ref("keystone") == "stackyard/keystone:2025.1"
    assert BuildConfig(base_tag="bookworm").tag == "zed"
    assert BuildConfig(base_tag="sid").openstack_release == "master"
    assert BuildConfig(registry="r:5000", namespace="").image_ref("x") == "r:5000/x:2025.1"
    assert BuildConfig(work_dir="/w").log_path == Path("/w/logs")
    assert BuildConfig(logs_dir="/l").log_path == Path("/l")


def test_load_valid_file(tmp_path):
    p = write(tmp_path, "base-tag: bookworm\nthreads: 4\nprofiles:\n  mine: [keystone]\n"
                        "template_vars:\n  keystone_packages_append: [less]\npush: true\n")
    values = load_config_file(p, required=True)
    assert values == {"base_tag": "bookworm", "threads": 4, "profiles": {"mine": ["keystone"]},
                      "template_vars": {"keystone_packages_append": ["less"]}, "push": True}
    c = make_config(values, {}, {"profiles": {"infra": ["mariadb-server"], "all": []}})
    assert c.tag == "zed" and c.threads == 4 and c.push
    assert c.profiles == {"infra": ["mariadb-server"], "all": [], "mine": ["keystone"]}


def test_missing_file(tmp_path):
    assert load_config_file(tmp_path / "none.yml", required=False) == {}
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "none.yml", required=True)


def test_empty_file(tmp_path):
    assert load_config_file(write(tmp_path, ""), required=True) == {}


def test_bad_yaml_names_line(tmp_path):
    p = write(tmp_path, "threads: 2\ntag: [unclosed\nregistry: x\n")
    with pytest.raises(ConfigError) as err:
        load_config_file(p, required=True)
    msg = str(err.value)
    assert msg.startswith(f"{p}:3: ")
    assert "invalid YAML" in msg and "\n" not in msg


def test_bad_yaml_line_number(tmp_path):
    p = write(tmp_path, "threads: 2\ntag: x\n  bad: indent\n")
    with pytest.raises(ConfigError, match=r"build.yml:3: "):
        load_config_file(p, required=True)


def test_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config_file(write(tmp_path, "- a\n- b\n"), required=True)


def test_unknown_key_with_suggestion(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config_file(write(tmp_path, "thread: 4\n"), required=True)
    assert "unknown key 'thread'" in str(err.value)
    assert "did you mean 'threads'?" in str(err.value)
    with pytest.raises(ConfigError, match="unknown key 'zzzz'$"):
        load_config_file(write(tmp_path, "zzzz: 4\n"), required=True)


@pytest.mark.parametrize(
    "text, key",
    [
        ("threads: two\n", "threads"),
        ("threads: true\n", "threads"),
        ("push: 'yes please'\n", "push"),
        ("docker_dirs: /srv/images\n", "docker_dirs"),
        ("template_vars: [a]\n", "template_vars"),
        ("tag: 1\n", "tag"),
    ],
)
def test_wrong_type_names_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as err:
        load_config_file(write(tmp_path, text), required=True)
    assert f"key '{key}' must be" in str(err.value)
    assert str(tmp_path / "build.yml") in str(err.value)


def test_bad_profile_members(tmp_path):
    with pytest.raises(ConfigError, match="profile 'p' must be a list of image names"):
        load_config_file(write(tmp_path, "profiles:\n  p: keystone\n"), required=True)


def test_bad_values_after_merge():
    with pytest.raises(ConfigError, match="threads: must be at least 1"):
        make_config({"threads": 0}, {})
    with pytest.raises(ConfigError, match="format: 'xml'"):
        make_config({"format": "xml"}, {})


def test_flags_override_file(tmp_path):
    values = load_config_file(write(tmp_path, "tag: fromfile\nthreads: 3\nnamespace: filens\n"
                                              "docker_dirs: [/a]\npush: true\n"), required=True)
    c = make_config(values, {"tag": "fromflag", "threads": None, "namespace": None,
                             "docker_dirs": [], "push": None, "registry": "127.0.0.1:5000"})
    assert c.tag == "fromflag"            # flag wins
    assert c.threads == 3                 # flag not given: file value
    assert c.namespace == "filens"
    assert c.docker_dirs == ["/a"]         # empty repeatable flag means "not given"
    assert c.push is True
    assert c.registry == "127.0.0.1:5000"  # flag only
    c2 = make_config(values, {"docker_dirs": ["/b"]})
    assert c2.docker_dirs == ["/b"]


def test_every_flag_is_a_file_key():
    from stackyard.imagebuild.config import _FIELD_TYPES
    from stackyard.commands.build import _BUILD_KEYS

    assert set(_BUILD_KEYS) <= set(_FIELD_TYPES)


# ----------------------------------------------------------------- defaults from the caller
def test_make_config_without_defaults():
    c = make_config({}, {})
    assert c.profiles == DEFAULT_PROFILES
    assert c.users == {}


def test_caller_profiles_replace_builtin_ones_and_file_still_wins():
    c = make_config({"profiles": {"mine": ["keystone"], "core": ["keystone"]}}, {},
                    {"profiles": {"core": ["memcached", "keystone"], "infra": ["memcached"]}})
    assert c.profiles == {"core": ["keystone"], "infra": ["memcached"], "mine": ["keystone"]}


def test_caller_profiles_are_copied():
    given = {"core": ["memcached"]}
    c = make_config({}, {}, {"profiles": given})
    c.profiles["core"].append("keystone")
    assert given == {"core": ["memcached"]}


def test_caller_users_are_used_and_normalised(service_users):
    c = make_config({}, {}, {"users": service_users})
    assert c.users == service_users
    c = make_config({}, {}, {"users": {"svc": {"uid": 5, "gid": 6, "home": "/srv/svc", "groups": ("kolla",)}}})
    assert c.users == {"svc": {"uid": 5, "gid": 6, "home": "/srv/svc", "groups": ["kolla"]}}
    c = make_config({}, {}, {"users": {"svc": {"uid": 5, "gid": 6, "home": "/srv/svc"}}})
    assert c.users["svc"]["groups"] == []


def test_flags_cannot_set_users_or_profiles(service_users):
    c = make_config({}, {"users": {"x": {}}, "profiles": {"x": []}}, {"users": service_users})
    assert c.users == service_users and "x" not in c.profiles


def test_unknown_default_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown default 'userz'"):
        make_config({}, {}, {"userz": {}})


@pytest.mark.parametrize(
    "users, needle",
    [
        ({"nova": {"uid": "42436", "gid": 1, "home": "/var/lib/nova"}}, "user 'nova': 'uid' must be"),
        ({"nova": {"uid": True, "gid": 1, "home": "/var/lib/nova"}}, "user 'nova': 'uid' must be"),
        ({"nova": {"uid": 1, "home": "/var/lib/nova"}}, "user 'nova': 'gid' must be"),
        ({"nova": {"uid": 1, "gid": -1, "home": "/var/lib/nova"}}, "user 'nova': 'gid' must be"),
        ({"nova": {"uid": 1, "gid": 1, "home": "var/lib/nova"}}, "user 'nova': 'home' must be an absolute"),
        ({"nova": {"uid": 1, "gid": 1, "home": "/n", "groups": "kolla"}}, "'groups' must be a list"),
        ({"nova": {"uid": 1, "gid": 1, "home": "/n", "shell": "/bin/sh"}}, "unknown key 'shell'"),
        ({"nova": 42436}, "user 'nova' must be a mapping"),
        (["nova"], "users: must be a mapping"),
    ],
)
def test_bad_users_table(users, needle):
    with pytest.raises(ConfigError) as err:
        make_config({}, {}, {"users": users})
    assert needle in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError):
        BuildConfig(users=users)


def test_users_cannot_come_from_the_config_file(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config_file(write(tmp_path, "users:\n  nova: {uid: 1, gid: 1, home: /n}\n"), required=True)
    assert "key 'users' is not a build setting" in str(err.value)
    assert str(tmp_path / "build.yml") in str(err.value)
