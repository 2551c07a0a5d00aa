"""kolla_set_configs on temporary directories, run as root so owners and
modes are real.  The script is standalone, so it is loaded from its path."""

import importlib.util
import json
import logging
import os
import pathlib
import stat
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[3] / "stackyard" / "container" / "set_configs.py"


def _load():
    spec = importlib.util.spec_from_file_location("kolla_set_configs_under_test", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


sc = _load()

DAEMON = (1, 1)          # daemon:daemon
NOBODY = (65534, 65534)  # nobody:nogroup
SECRET = "s3cr3t-Passw0rd-never-logged"

@pytest.fixture(autouse=True, scope="module")
def _need_root():
    assert os.geteuid() == 0, "these tests must run as root (owners are real)"


class Env:
    """A fake container filesystem under tmp_path."""

    def __init__(self, tmp_path):
        self.root = tmp_path
        self.cfg = tmp_path / "config_files"
        self.cfg.mkdir()
        self.etc = tmp_path / "etc"
        self.etc.mkdir()
        self.paths = sc.Paths(
            config_dir=str(self.cfg),
            run_command=str(tmp_path / "run_command"),
            configured=str(tmp_path / "configured"),
            defaults_dir=str(tmp_path / "defaults"),
            defaults_state=str(tmp_path / "defaults" / ".state.json"),
        )

    def src(self, name, text="x\n", mode=0o644):
        p = self.cfg / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        os.chmod(p, mode)
        return str(p)

    def write_config(self, config):
        (self.cfg / "config.json").write_text(
            config if isinstance(config, str) else json.dumps(config))

    def run(self, config=None, strategy="COPY_ALWAYS", argv=()):
        if config is not None:
            self.write_config(config)
        env = {} if strategy is None else {"KOLLA_CONFIG_STRATEGY": strategy}
        return sc.run(list(argv), env, self.paths)

    def check(self):
        return sc.run(["--check"], {}, self.paths)

    def snapshot(self):
        """Everything under root except the config sources."""
        out = {}
        for p in sorted(self.root.rglob("*")):
            if self.cfg in p.parents or p == self.cfg:
                continue
            st = os.lstat(p)
            out[str(p)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid,
                           st.st_gid, p.read_bytes() if p.is_file() else None)
        return out


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


def owner_mode(path):
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def cf(source, dest, owner="daemon", perm="0640", **kw):
    entry = {"source": source, "dest": dest, "owner": owner, "perm": perm}
    entry.update(kw)
    return entry


# ---------------------------------------------------------------------------
# perm / owner parsing

@pytest.mark.parametrize("spelling", ["0600", "600", "0o600", "0O600", "00600"])
def test_perm_spellings_are_equivalent(spelling):
    assert sc.parse_perm(spelling, "x") == 0o600


@pytest.mark.parametrize("bad", ["", "999", "abc", "0o", "0x600", "77777", "-600", 600, None])
def test_bad_perm_is_rejected(bad):
    with pytest.raises(sc.ConfigError):
        sc.parse_perm(bad, "x")


def test_owner_forms():
    assert sc.parse_owner("daemon", "x") == DAEMON
    assert sc.parse_owner("daemon:nogroup", "x") == (1, 65534)
    # no group named nobody on Debian: falls back to the primary group
    assert sc.parse_owner("nobody", "x") == NOBODY
    assert sc.parse_owner("1:65534", "x") == (1, 65534)
    for bad in ("", "daemon:", ":daemon", "no-such-user-xyz", "daemon:no-such-group-xyz"):
        with pytest.raises(sc.ConfigError):
            sc.parse_owner(bad, "x")


# ---------------------------------------------------------------------------
# copying: every config_files field

@pytest.mark.parametrize("perm", ["0600", "600", "0o600"])
def test_copy_file_owner_perm_and_check(env, perm):
    src = env.src("nova.conf", "[DEFAULT]\n")
    dest = env.etc / "nova" / "nova.conf"
    assert env.run({"command": "nova-api", "config_files": [cf(src, str(dest), "daemon", perm)]}) == 0
    assert dest.read_text() == "[DEFAULT]\n"
    assert owner_mode(dest) == (1, 1, 0o600)
    assert pathlib.Path(env.paths.run_command).read_text() == "nova-api"
    assert env.check() == 0


def test_dest_with_trailing_slash_copies_into_directory(env):
    src = env.src("policy.yaml", "p: 1\n")
    assert env.run({"command": "c", "config_files": [cf(src, str(env.etc) + "/keystone/")]}) == 0
    assert (env.etc / "keystone" / "policy.yaml").read_text() == "p: 1\n"
    assert env.check() == 0


def test_glob_source(env):
    env.src("a.conf", "a")
    env.src("b.conf", "b")
    env.src("c.txt", "c")
    assert env.run({"command": "c", "config_files": [
        cf(str(env.cfg / "*.conf"), str(env.etc) + "/d/", "nobody", "0644")]}) == 0
    assert sorted(os.listdir(env.etc / "d")) == ["a.conf", "b.conf"]
    assert owner_mode(env.etc / "d" / "b.conf") == (65534, 65534, 0o644)
    assert env.check() == 0


def test_optional_missing_source_is_skipped(env):
    src = env.src("a.conf")
    assert env.run({"command": "c", "config_files": [
        cf(str(env.cfg / "absent.conf"), str(env.etc / "absent.conf"), optional=True),
        cf(src, str(env.etc / "a.conf"))]}) == 0
    assert not (env.etc / "absent.conf").exists()
    assert (env.etc / "a.conf").exists()
    assert env.check() == 0


def _make_src_tree(env):
    d = env.cfg / "tree"
    (d / "sub").mkdir(parents=True)
    (d / "one.conf").write_text("1")
    (d / "sub" / "two.conf").write_text("2")
    return str(d)


def test_directory_source_replaces_and_check_is_clean(env):
    src = _make_src_tree(env)
    dest = env.etc / "tree"
    (dest / "old").mkdir(parents=True)
    (dest / "stale.conf").write_text("stale")
    assert env.run({"command": "c", "config_files": [cf(src, str(dest), "daemon", "0640")]}) == 0
    assert sorted(os.listdir(dest)) == ["one.conf", "sub"]
    assert (dest / "sub" / "two.conf").read_text() == "2"
    assert owner_mode(dest / "sub" / "two.conf") == (1, 1, 0o640)
    # directories get search permission wherever read is granted
    assert owner_mode(dest) == (1, 1, 0o750)
    assert owner_mode(dest / "sub") == (1, 1, 0o750)
    # no false alarm for a directory source right after the copy
    assert env.check() == 0
    # ... but an extra file in a replaced directory is a difference
    (dest / "sub" / "extra").write_text("e")
    assert env.check() == 1


def test_merge_keeps_existing_files(env):
    src = _make_src_tree(env)
    dest = env.etc / "tree"
    (dest / "sub").mkdir(parents=True)
    (dest / "mine.conf").write_text("keep")
    (dest / "sub" / "two.conf").write_text("old")
    assert env.run({"command": "c", "config_files": [
        cf(src, str(dest), "daemon", "0600", merge=True)]}) == 0
    assert (dest / "mine.conf").read_text() == "keep"
    assert (dest / "sub" / "two.conf").read_text() == "2"
    assert (dest / "one.conf").read_text() == "1"
    assert env.check() == 0
    (dest / "sub" / "two.conf").write_text("changed")
    assert env.check() == 1


def test_preserve_properties(env):
    src = env.src("keyring", "k", mode=0o751)
    os.chown(src, 65534, 1)
    assert env.run({"command": "c", "config_files": [
        {"source": src, "dest": str(env.etc / "keyring"), "preserve_properties": True}]}) == 0
    assert owner_mode(env.etc / "keyring") == (65534, 1, 0o751)
    assert env.check() == 0
    os.chmod(env.etc / "keyring", 0o644)
    assert env.check() == 1


def test_later_entry_overrides_file_inside_earlier_directory(env):
    src = _make_src_tree(env)
    over = env.src("override.conf", "o")
    dest = env.etc / "tree"
    assert env.run({"command": "c", "config_files": [
        cf(src, str(dest), "daemon", "0640"),
        cf(over, str(dest / "one.conf"), "root", "0600"),
        cf(over, str(dest) + "/"),
    ]}) == 0
    assert (dest / "one.conf").read_text() == "o"
    assert owner_mode(dest / "one.conf") == (0, 0, 0o600)
    assert env.check() == 0


# ---------------------------------------------------------------------------
# permissions[]

def _perm_tree(env):
    d = env.etc / "logs"
    for sub in ("keep", "skip-a", "skip-b", "keep/deeper"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    for f in ("keep/x.log", "keep/deeper/y.log", "skip-a/x.log", "skip-b/x.log", "top.log"):
        (d / f).write_text("log")
    return d


def test_permissions_recurse_and_all_excludes_honoured(env):
    d = _perm_tree(env)
    assert env.run({"command": "c", "permissions": [{
        "path": str(env.etc / "lo*"), "owner": "daemon:nogroup", "perm": "0750",
        "recurse": True, "exclude": ["skip-a", "skip-b$"]}]}) == 0
    for p in ("", "keep", "keep/x.log", "keep/deeper", "keep/deeper/y.log", "top.log"):
        assert owner_mode(d / p) == (1, 65534, 0o750), p
    for p in ("skip-a", "skip-a/x.log", "skip-b", "skip-b/x.log"):
        assert os.lstat(d / p).st_uid == 0, p
        assert stat.S_IMODE(os.lstat(d / p).st_mode) != 0o750, p
    assert env.check() == 0
    os.chown(d, 0, 0)
    assert env.check() == 1


def test_permissions_without_recurse_and_without_perm(env):
    d = _perm_tree(env)
    os.chmod(d, 0o700)
    assert env.run({"command": "c", "permissions": [{"path": str(d), "owner": "nobody"}]}) == 0
    assert owner_mode(d) == (65534, 65534, 0o700)
    assert os.lstat(d / "top.log").st_uid == 0


def test_permissions_recurse_does_not_follow_symlinks(env):
    d = _perm_tree(env)
    outside = env.root / "outside"
    outside.write_text("root only")
    os.chmod(outside, 0o600)
    (d / "evil").symlink_to(outside)
    assert env.run({"command": "c", "permissions": [
        {"path": str(d), "owner": "nobody", "perm": "0777", "recurse": True}]}) == 0
    assert owner_mode(outside) == (0, 0, 0o600)


def test_permissions_on_a_config_dest_do_not_cause_false_alarms(env):
    src = env.src("a.conf")
    assert env.run({"command": "c",
                    "config_files": [cf(src, str(env.etc / "a.conf"), "daemon", "0640")],
                    "permissions": [{"path": str(env.etc), "owner": "nobody", "perm": "0755",
                                     "recurse": True}]}) == 0
    assert owner_mode(env.etc / "a.conf") == (65534, 65534, 0o755)
    assert env.check() == 0


# ---------------------------------------------------------------------------
# strategies

def test_copy_always_copies_on_every_start(env):
    src = env.src("a.conf", "one")
    conf = {"command": "c", "config_files": [cf(src, str(env.etc / "a.conf"))]}
    assert env.run(conf, "COPY_ALWAYS") == 0
    env.src("a.conf", "two")
    assert env.run(conf, "COPY_ALWAYS") == 0
    assert (env.etc / "a.conf").read_text() == "two"
    assert not os.path.exists(env.paths.configured)


def test_copy_once_copies_only_on_first_start(env, caplog):
    src = env.src("a.conf", "one")
    conf = {"command": "first", "config_files": [cf(src, str(env.etc / "a.conf"))]}
    assert env.run(conf, "COPY_ONCE") == 0
    assert os.path.exists(env.paths.configured)
    env.src("a.conf", "two")
    conf["command"] = "second"
    caplog.set_level(logging.INFO)
    assert env.run(conf, "COPY_ONCE") == 0
    assert (env.etc / "a.conf").read_text() == "one"
    assert pathlib.Path(env.paths.run_command).read_text() == "first"
    assert "immutable" in caplog.text
    # --check tells the truth about the skipped change
    assert env.check() == 1


@pytest.mark.parametrize("strategy", [None, "", "COPY_SOMETIMES", "copy_always"])
def test_bad_strategy_exits_1_and_changes_nothing(env, strategy, caplog):
    src = env.src("a.conf")
    before = env.snapshot()
    assert env.run({"command": "c", "config_files": [cf(src, str(env.etc / "a.conf"))]},
                   strategy) == 1
    assert env.snapshot() == before
    assert "KOLLA_CONFIG_STRATEGY" in caplog.text


# ---------------------------------------------------------------------------
# image defaults

def test_image_default_saved_and_restored(env):
    dest = env.etc / "api-paste.ini"
    dest.write_text("image default")
    os.chown(dest, 1, 1)
    os.chmod(dest, 0o604)
    src = env.src("api-paste.ini", "override")
    new = env.etc / "new.conf"
    both = {"command": "c", "config_files": [
        cf(src, str(dest), "root", "0600", optional=True),
        cf(src, str(new), "root", "0600")]}
    assert env.run(both) == 0
    assert dest.read_text() == "override"
    # a second start must not save our own copy as the "default"
    assert env.run(both) == 0
    # the config no longer manages either dest
    assert env.run({"command": "c"}) == 0
    assert dest.read_text() == "image default"
    assert owner_mode(dest) == (1, 1, 0o604)
    assert not new.exists()  # the image had nothing there
    # managed again later: works the same
    assert env.run(both) == 0
    assert dest.read_text() == "override"


def test_optional_source_disappearing_restores_default(env):
    dest = env.etc / "policy.yaml"
    dest.write_text("shipped")
    src = env.src("policy.yaml", "mine")
    conf = {"command": "c", "config_files": [cf(src, str(dest), optional=True)]}
    assert env.run(conf) == 0
    assert dest.read_text() == "mine"
    os.unlink(src)
    assert env.run(conf) == 0
    assert dest.read_text() == "shipped"


def test_image_default_directory_restored(env):
    dest = env.etc / "conf.d"
    dest.mkdir()
    (dest / "shipped.conf").write_text("s")
    src = _make_src_tree(env)
    assert env.run({"command": "c", "config_files": [cf(src, str(dest))]}) == 0
    assert not (dest / "shipped.conf").exists()
    assert env.run({"command": "c"}) == 0
    assert sorted(os.listdir(dest)) == ["shipped.conf"]


# ---------------------------------------------------------------------------
# --check

def test_check_outcomes(env):
    src = env.src("a.conf", "one")
    conf = {"command": "svc --flag", "config_files": [cf(src, str(env.etc / "a.conf"), "daemon", "600")]}
    env.write_config(conf)
    assert env.check() == 1  # nothing installed yet
    assert env.run() == 0
    assert env.check() == 0
    env.src("a.conf", "two")  # content
    assert env.check() == 1
    env.src("a.conf", "one")
    assert env.check() == 0
    os.chmod(env.etc / "a.conf", 0o644)  # mode
    assert env.check() == 1
    os.chmod(env.etc / "a.conf", 0o600)
    os.chown(env.etc / "a.conf", 0, 1)  # owner
    assert env.check() == 1
    os.chown(env.etc / "a.conf", 1, 1)
    assert env.check() == 0
    # the same perm spelled differently is not a difference
    conf["config_files"][0]["perm"] = "0o600"
    env.write_config(conf)
    assert env.check() == 0
    conf["command"] = "svc --other"  # command
    env.write_config(conf)
    assert env.check() == 1


def test_check_prints_what_differs(env, capsys):
    src = env.src("a.conf", SECRET)
    env.run({"command": "c", "config_files": [cf(src, str(env.etc / "a.conf"))]})
    env.src("a.conf", SECRET + "2")
    capsys.readouterr()
    assert env.check() == 1
    out = capsys.readouterr().out
    assert str(env.etc / "a.conf") in out and "content" in out
    assert SECRET not in out


def test_check_internal_error_exit_2(env):
    env.write_config("{not json")
    assert env.check() == 2
    env.write_config({"config_files": []})
    assert env.check() == 2
    os.unlink(env.cfg / "config.json")
    assert env.check() == 2


def test_check_does_not_need_a_strategy_or_write(env):
    src = env.src("a.conf")
    env.run({"command": "c", "config_files": [cf(src, str(env.etc / "a.conf"))]})
    before = env.snapshot()
    assert sc.run(["--check"], {}, env.paths) == 0
    assert env.snapshot() == before


# ---------------------------------------------------------------------------
# all or nothing / bad input

def _bad_configs(env):
    good = env.src("good.conf")
    dest = str(env.etc / "good.conf")
    g = cf(good, dest)
    return {
        "bad json": '{"command": "c", "config_files": [',
        "not an object": "[]",
        "missing command": {"config_files": [g]},
        "empty command": {"command": "  ", "config_files": [g]},
        "missing source": {"command": "c", "config_files": [g, cf(str(env.cfg / "nope"), dest + "2")]},
        "unknown user": {"command": "c", "config_files": [g, cf(good, dest + "2", "no-such-user-xyz")]},
        "unknown group": {"command": "c", "config_files": [g, cf(good, dest + "2", "daemon:no-such-grp")]},
        "bad perm": {"command": "c", "config_files": [g, cf(good, dest + "2", perm="0999")]},
        "int perm": {"command": "c", "config_files": [g, cf(good, dest + "2", perm=600)]},
        "missing owner": {"command": "c", "config_files": [g, {"source": good, "dest": dest + "2", "perm": "0600"}]},
        "missing perm": {"command": "c", "config_files": [g, {"source": good, "dest": dest + "2", "owner": "root"}]},
        "optional not bool": {"command": "c", "config_files": [g, cf(good, dest + "2", optional="yes")]},
        "relative dest": {"command": "c", "config_files": [g, cf(good, "etc/x")]},
        "config_files not list": {"command": "c", "config_files": {"a": 1}},
        "permission unknown user": {"command": "c", "config_files": [g],
                                    "permissions": [{"path": dest, "owner": "no-such-user-xyz"}]},
        "permission bad regex": {"command": "c", "config_files": [g],
                                 "permissions": [{"path": dest, "owner": "root", "exclude": ["("]}]},
        "permission missing owner": {"command": "c", "config_files": [g], "permissions": [{"path": dest}]},
    }


BAD_CASES = ["bad json", "not an object", "missing command", "empty command", "missing source",
             "unknown user", "unknown group", "bad perm", "int perm", "missing owner",
             "missing perm", "optional not bool", "relative dest", "config_files not list",
             "permission unknown user", "permission bad regex", "permission missing owner"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_changes_nothing(env, case, caplog):
    # an installed previous config and an image default, to see nothing moves
    (env.etc / "good.conf").write_text("image default")
    prev = env.src("prev.conf", "prev")
    assert env.run({"command": "prev", "config_files": [cf(prev, str(env.etc / "prev.conf"))]}) == 0
    before = env.snapshot()
    conf = _bad_configs(env)[case]
    assert env.run(conf) == 1
    assert env.snapshot() == before
    assert "nothing was changed" in caplog.text
    assert env.check() == 2


def test_bad_json_error_does_not_echo_content(env, caplog):
    assert env.run('{"command": "c", "password": "%s" oops}' % SECRET) == 1
    assert "not valid JSON" in caplog.text
    assert SECRET not in caplog.text


def test_logs_name_files_never_contents(env, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    src = env.src("secret.conf", "password = %s\n" % SECRET)
    assert env.run({"command": "c", "config_files": [cf(src, str(env.etc / "secret.conf"))]}) == 0
    env.src("secret.conf", "password = other\n")
    assert env.check() == 1
    captured = capsys.readouterr()
    assert "secret.conf" in caplog.text
    for text in (caplog.text, captured.out, captured.err):
        assert SECRET not in text


# ---------------------------------------------------------------------------
# YAML, CLI, fixed paths

def test_config_yaml_is_used_when_present(env):
    src = env.src("a.conf", "y")
    (env.cfg / "config.json").write_text('{"command": "from-json"}')
    (env.cfg / "config.yaml").write_text(
        "command: from-yaml\nconfig_files:\n  - source: %s\n    dest: %s\n"
        "    owner: daemon\n    perm: '0600'\n" % (src, env.etc / "a.conf"))
    assert env.run() == 0
    assert pathlib.Path(env.paths.run_command).read_text() == "from-yaml"
    assert owner_mode(env.etc / "a.conf") == (1, 1, 0o600)


def test_config_yaml_without_parser_is_a_clear_error(env, monkeypatch, caplog):
    (env.cfg / "config.yaml").write_text("command: x\n")
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml -> ImportError
    assert env.run() == 1
    assert "no YAML parser" in caplog.text
    assert not os.path.exists(env.paths.run_command)


def test_arguments_cannot_redirect_the_config(env):
    assert env.run({"command": "c"}, argv=["--config", str(env.cfg / "config.json")]) == 1
    assert env.run({"command": "c"}, argv=["--check", "--config", "x"]) == 2
    assert not os.path.exists(env.paths.run_command)


def test_main_uses_only_the_constants():
    p = sc.Paths()
    assert (p.config_dir, p.run_command, p.configured, p.defaults_dir) == (
        "/var/lib/kolla/config_files", "/run_command", "/configured", "/var/lib/kolla/defaults")
    assert p.defaults_state.startswith("/var/lib/kolla/defaults/")


def test_script_check_without_config_exits_2(tmp_path):
    # the real entry point, pointed at the real (absent on this host) path;
    # a config file named by the environment is ignored.
    if os.path.exists(sc.CONFIG_DIR):
        pytest.fail("%s exists on the test host; refusing to run" % sc.CONFIG_DIR)
    fake = tmp_path / "config.json"
    fake.write_text('{"command": "evil"}')
    r = subprocess.run([sys.executable, "-I", str(SCRIPT), "--check"], capture_output=True,
                       text=True, env={"KOLLA_CONFIG_FILE": str(fake), "PATH": os.environ["PATH"]})
    assert r.returncode == 2
    assert "/var/lib/kolla/config_files/config.json does not exist" in r.stderr


def test_script_is_standalone():
    text = SCRIPT.read_text()
    assert text.startswith("#!/usr/bin/python3")
    assert "stackyard" not in "".join(l for l in text.splitlines() if l.startswith(("import", "from")))
