"""The agent runs on remote hosts where only Python's standard library and the
docker SDK exist: it must import under another name, with stackyard absent,
and pull in nothing else."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from stackyard.ansible import runner

AGENT = Path(runner.__file__).resolve().parents[1] / "agent"

PROBE = textwrap.dedent("""
    import importlib, importlib.abc, json, pkgutil, sys

    class NoStackyard(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "stackyard" or name.startswith("stackyard."):
                raise ImportError("stackyard is not installed on this host")
            return None

    sys.meta_path.insert(0, NoStackyard())
    sys.path.insert(0, sys.argv[1])
    import docker  # noqa: F401  (what the agent may use besides the standard library)
    before = {m.split(".")[0] for m in sys.modules}
    import stackyard_agent
    names = [m.name for m in pkgutil.iter_modules(stackyard_agent.__path__)]
    for name in names:
        importlib.import_module("stackyard_agent." + name)
    after = {m.split(".")[0] for m in sys.modules}
    print(json.dumps({"modules": names, "new": sorted(after - before - set(sys.stdlib_module_names))}))
""")


def test_agent_imports_without_stackyard_and_needs_only_stdlib_and_docker(tmp_path: Path) -> None:
    staged = runner.stage_module_utils(tmp_path / "module_utils")
    assert sorted(p.name for p in (staged / runner.AGENT_NAME).glob("*.py")) == \
        sorted(p.name for p in AGENT.glob("*.py"))
    proc = subprocess.run([sys.executable, "-c", PROBE, str(staged)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert {"engine", "hostapply", "ops", "model", "galera", "decide"} <= set(result["modules"])
    assert result["new"] == ["stackyard_agent"]


def test_agent_modules_import_each_other_relatively() -> None:
    """An absolute ``stackyard.agent`` import would break under ansible.module_utils."""
    for path in AGENT.glob("*.py"):
        text = path.read_text()
        assert "from stackyard" not in text and "import stackyard" not in text, path.name
