"""The sudoers drop-in grants exactly two commands, without SETENV."""

import pathlib
import shutil
import subprocess

SUDOERS = pathlib.Path(__file__).resolve().parents[3] / "stackyard" / "container" / "sudoers"


def _rules():
    return [line.strip() for line in SUDOERS.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_grants_only_the_two_commands():
    rules = _rules()
    grants = [r for r in rules if not r.startswith("Defaults")]
    assert grants == ["%kolla ALL=(root) NOPASSWD: /usr/local/bin/kolla_set_configs, "
                      "/usr/local/bin/kolla_copy_cacerts"]
    text = " ".join(rules)
    assert "SETENV" not in text and "ALL:" not in text.replace("ALL=(root)", "")
    assert 'Defaults!/usr/local/bin/kolla_set_configs env_keep += "KOLLA_CONFIG_STRATEGY"' in rules


def test_syntax_with_visudo_when_available():
    visudo = shutil.which("visudo") or "/usr/sbin/visudo"
    if not pathlib.Path(visudo).exists():
        # checked for real in the e2e tests (the base image has sudo)
        return
    r = subprocess.run([visudo, "-c", "-f", str(SUDOERS)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
