#!/usr/bin/python3
"""kolla_start: the default command of every stackyard image.

Standalone (Python standard library only); installed as
/usr/local/bin/kolla_start and run by `dumb-init --single-child --`.

1. kolla_set_configs, then kolla_copy_cacerts (as root: directly when we are
   root, else through `sudo -n`, allowed by /etc/sudoers.d/kolla_sudoers).
2. KOLLA_BOOTSTRAP set (non-empty): exec the image's bootstrap hook and exit
   with its status.  KOLLA_UPGRADE set: the same with the upgrade hook.
   A missing hook means "nothing to do": exit 0 (but exit 1 for a named step
   of stackyard's upgrade, STACKYARD_UPGRADE_STEP: it must never pass for done).
3. Otherwise run the prestart hook if the image has one (failure: exit with
   its status), then exec the command from /run_command, parsed with shlex,
   so the service replaces this process and gets dumb-init's signals.
"""

import os
import shlex
import subprocess
import sys

SET_CONFIGS = "/usr/local/bin/kolla_set_configs"
COPY_CACERTS = "/usr/local/bin/kolla_copy_cacerts"
SUDO = "/usr/bin/sudo"
RUN_COMMAND = "/run_command"
HOOKS_DIR = "/usr/local/lib/stackyard/hooks"
BOOTSTRAP_HOOK = "bootstrap"
UPGRADE_HOOK = "upgrade"
PRESTART_HOOK = "prestart"
UMASK = 0o022


def log(msg):
    print("kolla_start: %s" % msg, file=sys.stderr, flush=True)


def status_of(returncode):
    """subprocess return code -> shell-style exit status."""
    return 128 - returncode if returncode < 0 else returncode


def privileged(path, euid):
    """argv running `path` as root."""
    if euid == 0:
        return [path]
    # KOLLA_CONFIG_STRATEGY passes through sudo by the sudoers env_keep
    # rule for kolla_set_configs; sudo resets everything else.
    return [SUDO, "-n", path]


def parse_command(text):
    argv = shlex.split(text)
    if not argv:
        raise ValueError("the command is empty")
    return argv


def start(env, *, set_configs=SET_CONFIGS, copy_cacerts=COPY_CACERTS,
          hooks_dir=HOOKS_DIR, run_command=RUN_COMMAND, euid=None,
          execvpe=os.execvpe, execve=os.execve):
    """Run the contract; returns an exit status, or does not return (exec)."""
    if euid is None:
        euid = os.geteuid()
    for step in (set_configs, copy_cacerts):
        rc = status_of(subprocess.call(privileged(step, euid), env=env))
        if rc != 0:
            log("%s failed with exit status %d" % (os.path.basename(step), rc))
            return rc

    os.umask(UMASK)
    for var, hook in (("KOLLA_BOOTSTRAP", BOOTSTRAP_HOOK),
                      ("KOLLA_UPGRADE", UPGRADE_HOOK)):
        if env.get(var):
            path = os.path.join(hooks_dir, hook)
            if not os.path.exists(path):
                if var == "KOLLA_UPGRADE" and env.get("STACKYARD_UPGRADE_STEP"):
                    # a step of stackyard's upgrade must not pass for done
                    log("upgrade step %s asked, but this image has no upgrade hook"
                        % env["STACKYARD_UPGRADE_STEP"])
                    return 1
                log("%s is set but this image has no %s hook: nothing to do"
                    % (var, hook))
                return 0
            if not os.access(path, os.X_OK):
                log("%s hook %s is not executable" % (hook, path))
                return 1
            log("%s is set: running the %s hook" % (var, hook))
            execve(path, [path], dict(env))

    prestart = os.path.join(hooks_dir, PRESTART_HOOK)
    if os.path.exists(prestart):
        log("running the prestart hook")
        rc = status_of(subprocess.call([prestart], env=env))
        if rc != 0:
            log("prestart hook failed with exit status %d" % rc)
            return rc

    try:
        with open(run_command, encoding="utf-8") as f:
            argv = parse_command(f.read())
    except FileNotFoundError:
        log("%s does not exist (kolla_set_configs writes it)" % run_command)
        return 1
    except ValueError as e:
        log("cannot parse %s: %s" % (run_command, e))
        return 1
    log("Running command: %s" % shlex.join(argv))
    try:
        execvpe(argv[0], argv, dict(env))
    except OSError as e:
        log("cannot execute %s: %s" % (argv[0], e.strerror))
        return 127 if e.errno == 2 else 126
    return 0  # only reached with a test double for execvpe


def main():
    sys.stdout.flush()
    return start(dict(os.environ))


if __name__ == "__main__":
    sys.exit(main())
