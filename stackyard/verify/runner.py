"""Tempest's own virtualenv, one directory per run, and the run itself.

Tempest (pinned: :data:`~.tempestconf.TEMPEST_VERSION`) is installed from PyPI
with the newest upper constraints stackyard carries into
``<work>/tempest-<version>/``, once; a marker file records a finished install,
so an interrupted one is redone. Each run gets ``<work>/runs/<UTC time>/``
(mode 0700): ``tempest.conf`` (0600, it holds the admin password),
``exclude-list.txt``, ``tempest-run.log``, ``tempest.log``, ``results.subunit``,
``summary.json`` and ``summary.txt``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from stackyard.errors import StackyardError
from stackyard.imagebuild.sources import constraints_file
from stackyard.verify import selection as selection_mod
from stackyard.verify.selection import Selection
from stackyard.verify.tempestconf import TEMPEST_VERSION

DEFAULT_WORK_DIR = Path("/var/lib/stackyard/verify")
#: the constraints Tempest's libraries are installed with (the newest release stackyard knows)
CONSTRAINTS_RELEASE = "2026.1"
MARKER = ".stackyard-tempest"


class VerifyError(StackyardError):
    """Tempest could not be installed or run (not: tests failed)."""


def venv_dir(work_dir: Path, version: str = TEMPEST_VERSION) -> Path:
    return work_dir / f"tempest-{version}"


#: programs Tempest runs on this host, and the Debian package that has each
HOST_PROGRAMS = {"ping": "iputils-ping"}


def check_host_programs(which: Callable[[str], str | None] = shutil.which) -> None:
    """Tempest's scenario tests ping servers' floating IPs with the host's own ``ping``;
    without it they fail one by one, minutes in. Say so before anything runs."""
    missing = sorted(f"{prog} (apt-get install {pkg})" for prog, pkg in HOST_PROGRAMS.items() if which(prog) is None)
    if missing:
        raise VerifyError(f"verify: Tempest needs on this host: {', '.join(missing)}")


def ensure_venv(work_dir: Path, say: Callable[[str], None], version: str = TEMPEST_VERSION) -> Path:
    """The virtualenv with Tempest ``version`` (made when missing or unfinished); returns its bin dir."""
    venv = venv_dir(work_dir, version)
    marker = venv / MARKER
    if marker.is_file() and marker.read_text().strip() == version:
        return venv / "bin"
    say(f"verify: installing tempest {version} into {venv}")
    work_dir.mkdir(parents=True, exist_ok=True)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(venv / "bin" / "pip"), "install", "--quiet", "--upgrade", "pip"],
        [str(venv / "bin" / "pip"), "install", "--quiet", f"tempest=={version}",
         "--constraint", str(constraints_file(CONSTRAINTS_RELEASE))],
    ]
    for cmd in steps:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise VerifyError(f"verify: {' '.join(cmd[:3])} failed: {exc}") from None
        if proc.returncode != 0:
            last = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("WARNING: Location")]
            raise VerifyError(f"verify: installing tempest {version} failed: {(last or ['?'])[-1]}")
    marker.write_text(version + "\n")
    return venv / "bin"


def new_run_dir(work_dir: Path) -> Path:
    """``<work>/runs/<UTC time>`` (a suffix when two runs start in the same second), mode 0700."""
    runs = work_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for n in range(100):
        path = runs / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            path.mkdir(mode=0o700)
            return path
        except FileExistsError:
            continue
    raise VerifyError(f"verify: cannot make a run directory under {runs}")


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the start (it may hold secrets)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def tempest_command(bin_dir: Path, run_dir: Path, sel: Selection, concurrency: int,
                    list_only: bool = False) -> list[str]:
    cmd = [str(bin_dir / "tempest"), "run", "--config-file", str(run_dir / "tempest.conf"), *sel.args]
    if sel.exclusions:
        cmd += ["--exclude-list", str(run_dir / "exclude-list.txt")]
    if list_only:
        cmd.append("--list-tests")
    else:
        cmd += ["--concurrency", str(concurrency)]
    return cmd


def run(bin_dir: Path, run_dir: Path, sel: Selection, concurrency: int, say: Callable[[str], None],
        list_only: bool = False) -> tuple[int, float]:
    """Run Tempest in ``run_dir`` (its workspace), its output streamed to ``say`` and to
    tempest-run.log; returns (exit code, seconds). ``list_only``: the test ids, nothing run."""
    if sel.exclusions:
        (run_dir / "exclude-list.txt").write_text(selection_mod.exclude_file_text(sel.exclusions))
    (run_dir / "locks").mkdir(exist_ok=True)
    if not (run_dir / ".stestr").exists():  # the run's test repository (``--list-tests`` needs one too)
        init = subprocess.run([str(bin_dir / "stestr"), "init"], cwd=run_dir, capture_output=True, text=True)
        if init.returncode != 0:
            raise VerifyError(f"verify: stestr init in {run_dir} failed: "
                              f"{(init.stderr.strip().splitlines() or ['?'])[-1]}")
    cmd = tempest_command(bin_dir, run_dir, sel, concurrency, list_only)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ.get('PATH', '')}", PYTHONUNBUFFERED="1")
    env.pop("OS_CLOUD", None)  # tempest.conf says which cloud, nothing else
    start = time.monotonic()
    with open(run_dir / "tempest-run.log", "w") as log:
        try:
            proc = subprocess.Popen(cmd, cwd=run_dir, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
        except OSError as exc:
            raise VerifyError(f"verify: cannot run {cmd[0]}: {exc.strerror}") from None
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            log.flush()  # tail -f tempest-run.log follows the run
            say(line.rstrip("\n"))
        code = proc.wait()
    return code, time.monotonic() - start


def collect_subunit(bin_dir: Path, run_dir: Path) -> Path:
    """The last run's subunit stream, from the workspace's stestr repository."""
    out = run_dir / "results.subunit"
    with open(out, "wb") as f:
        proc = subprocess.run([str(bin_dir / "stestr"), "last", "--subunit"], cwd=run_dir, stdout=f,
                              stderr=subprocess.PIPE)
    if proc.returncode != 0 or out.stat().st_size == 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise VerifyError(f"verify: no results in {run_dir} ({(err or ['stestr found no run'])[-1]}); "
                          f"see {run_dir / 'tempest-run.log'}")
    return out
