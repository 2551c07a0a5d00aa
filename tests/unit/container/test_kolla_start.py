"""kolla_start with fake set_configs/copy_cacerts/hooks in a temp dir.

start() execs, so most tests run it in a child Python process."""

import importlib.util
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[3] / "stackyard" / "container" / "start.py"


def _load():
    spec = importlib.util.spec_from_file_location("kolla_start_under_test", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ks = _load()


def _exe(path, body):
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


class Box:
    def __init__(self, tmp):
        self.tmp = tmp
        self.log = tmp / "calls.log"
        self.hooks = tmp / "hooks"
        self.hooks.mkdir()
        self.run_command = tmp / "run_command"
        self.set_configs = _exe(tmp / "set_configs", """
            echo "set_configs strategy=$KOLLA_CONFIG_STRATEGY" >> %s
            exit ${FAKE_SET_CONFIGS_RC:-0}
        """ % self.log)
        self.copy_cacerts = _exe(tmp / "copy_cacerts", """
            echo copy_cacerts >> %s
            exit ${FAKE_CACERTS_RC:-0}
        """ % self.log)

    def hook(self, name, body):
        return _exe(self.hooks / name, body)

    def start(self, command=None, **env):
        if command is not None:
            self.run_command.write_text(command)
        code = textwrap.dedent("""
            import importlib.util, os, sys
            spec = importlib.util.spec_from_file_location("ks", %r)
            ks = importlib.util.module_from_spec(spec); spec.loader.exec_module(ks)
            sys.exit(ks.start(dict(os.environ), set_configs=%r, copy_cacerts=%r,
                              hooks_dir=%r, run_command=%r))
        """ % (str(SCRIPT), str(self.set_configs), str(self.copy_cacerts),
               str(self.hooks), str(self.run_command)))
        full_env = {"PATH": os.environ["PATH"], "KOLLA_CONFIG_STRATEGY": "COPY_ALWAYS"}
        full_env.update(env)
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=full_env, timeout=30)

    def calls(self):
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def box(tmp_path):
    return Box(tmp_path)


def test_runs_set_configs_then_cacerts_then_execs_command(box):
    r = box.start("sh -c 'echo service-ran; exit 7'")
    assert r.returncode == 7  # the exec'd command's own status
    assert "service-ran" in r.stdout
    assert box.calls() == ["set_configs strategy=COPY_ALWAYS", "copy_cacerts"]


def test_exec_replaces_the_process(box):
    # the command runs with kolla_start's own pid: exec, not a child
    r = box.start("sh -c 'echo $$ $PPID'")
    assert r.returncode == 0
    pid, ppid = r.stdout.split()
    assert ppid == str(os.getpid())  # the parent is the test, not kolla_start


def test_quoted_arguments_survive(box):
    r = box.start("""printf '[%s]' "a b" 'c  d' e\\"f ''""")
    assert r.returncode == 0
    assert r.stdout == '[a b][c  d][e"f][]'


def test_set_configs_failure_stops_everything(box):
    r = box.start("sh -c 'echo service-ran'", FAKE_SET_CONFIGS_RC="5")
    assert r.returncode == 5
    assert "service-ran" not in r.stdout
    assert box.calls() == ["set_configs strategy=COPY_ALWAYS"]


def test_cacerts_failure_stops_everything(box):
    r = box.start("sh -c 'echo service-ran'", FAKE_CACERTS_RC="4")
    assert r.returncode == 4
    assert "service-ran" not in r.stdout


def test_bootstrap_hook_exit_status_propagates(box):
    box.hook("bootstrap", 'echo "bootstrap FOO=$FOO"; exit 3\n')
    r = box.start("sh -c 'echo service-ran'", KOLLA_BOOTSTRAP="1", FOO="bar")
    assert r.returncode == 3
    assert "bootstrap FOO=bar" in r.stdout  # same environment
    assert "service-ran" not in r.stdout
    assert box.calls()[0].startswith("set_configs")  # config first


def test_bootstrap_without_hook_exits_0_with_message(box):
    r = box.start("sh -c 'echo service-ran'", KOLLA_BOOTSTRAP="yes")
    assert r.returncode == 0
    assert "no bootstrap hook" in r.stderr
    assert "service-ran" not in r.stdout


def test_empty_bootstrap_is_not_set(box):
    box.hook("bootstrap", "exit 3\n")
    r = box.start("sh -c 'echo service-ran'", KOLLA_BOOTSTRAP="")
    assert r.returncode == 0
    assert "service-ran" in r.stdout


def test_upgrade_hook(box):
    box.hook("upgrade", "echo upgrading; exit 9\n")
    box.hook("bootstrap", "echo bootstrapping; exit 3\n")
    r = box.start("true", KOLLA_UPGRADE="1")
    assert (r.returncode, r.stdout.strip()) == (9, "upgrading")


def test_an_upgrade_step_without_an_upgrade_hook_fails(box):
    """Kolla's KOLLA_UPGRADE without a hook is "nothing to do"; a named step of
    stackyard's upgrade is not: it would pass for done with the schema untouched."""
    assert box.start("true", KOLLA_UPGRADE="1").returncode == 0
    r = box.start("true", KOLLA_UPGRADE="1", STACKYARD_UPGRADE_STEP="expand")
    assert r.returncode == 1 and "no upgrade hook" in r.stderr


def test_non_executable_hook_is_an_error(box):
    (box.hooks / "upgrade").write_text("#!/bin/sh\nexit 0\n")
    os.chmod(box.hooks / "upgrade", 0o644)
    r = box.start("true", KOLLA_UPGRADE="1")
    assert r.returncode == 1
    assert "not executable" in r.stderr


def test_prestart_hook_runs_before_the_command(box):
    box.hook("prestart", "echo prestart >> %s\n" % box.log)
    r = box.start("sh -c 'echo service >> %s'" % box.log)
    assert r.returncode == 0
    assert box.calls()[-2:] == ["prestart", "service"]


def test_prestart_failure_exits_with_its_status(box):
    box.hook("prestart", "exit 6\n")
    r = box.start("sh -c 'echo service-ran'")
    assert r.returncode == 6
    assert "service-ran" not in r.stdout


def test_missing_or_empty_run_command(box):
    r = box.start()
    assert r.returncode == 1 and "does not exist" in r.stderr
    r = box.start("   ")
    assert r.returncode == 1 and "empty" in r.stderr


def test_command_not_found_is_127(box):
    r = box.start("/nonexistent/program --x")
    assert r.returncode == 127


def test_privileged_argv():
    assert ks.privileged("/usr/local/bin/kolla_set_configs", 0) == ["/usr/local/bin/kolla_set_configs"]
    assert ks.privileged("/usr/local/bin/kolla_set_configs", 42400) == [
        "/usr/bin/sudo", "-n", "/usr/local/bin/kolla_set_configs"]


def test_in_process_with_exec_double(box, monkeypatch):
    box.run_command.write_text("svc --name 'two words'")
    seen = []
    rc = ks.start({"PATH": os.environ["PATH"], "KOLLA_CONFIG_STRATEGY": "COPY_ALWAYS"},
                  set_configs=str(box.set_configs), copy_cacerts=str(box.copy_cacerts),
                  hooks_dir=str(box.hooks), run_command=str(box.run_command), euid=0,
                  execvpe=lambda f, argv, env: seen.append((f, argv)))
    assert rc == 0
    assert seen == [("svc", ["svc", "--name", "two words"])]


def test_constants():
    assert ks.SET_CONFIGS == "/usr/local/bin/kolla_set_configs"
    assert ks.COPY_CACERTS == "/usr/local/bin/kolla_copy_cacerts"
    assert ks.HOOKS_DIR == "/usr/local/lib/stackyard/hooks"
    assert ks.RUN_COMMAND == "/run_command"
