#!/usr/bin/python3 -I
"""kolla_copy_cacerts: trust the CA certificates mounted with the config.

Standalone (Python standard library only); installed as
/usr/local/bin/kolla_copy_cacerts and run as root by kolla_start (through
sudo when the container runs as a service user).  When
/var/lib/kolla/config_files/ca-certificates/ holds *.crt files they are
copied into /usr/local/share/ca-certificates/ and update-ca-certificates is
run; with no such files it does nothing, silently.  Paths are constants:
nothing in the environment or the arguments changes them.
"""

import glob
import os
import shutil
import subprocess
import sys

CA_SOURCE_DIR = "/var/lib/kolla/config_files/ca-certificates"
CA_DEST_DIR = "/usr/local/share/ca-certificates"
UPDATE_CA_CERTIFICATES = "/usr/sbin/update-ca-certificates"
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def log(msg):
    print("kolla_copy_cacerts: %s" % msg, file=sys.stderr, flush=True)


def copy_cacerts(source_dir=CA_SOURCE_DIR, dest_dir=CA_DEST_DIR,
                 update_command=(UPDATE_CA_CERTIFICATES,)):
    """Returns the exit status."""
    certs = sorted(p for p in glob.glob(os.path.join(source_dir, "*.crt"))
                   if os.path.isfile(p))
    if not certs:
        return 0
    os.makedirs(dest_dir, mode=0o755, exist_ok=True)
    for src in certs:
        dest = os.path.join(dest_dir, os.path.basename(src))
        log("installing CA certificate %s" % os.path.basename(src))
        tmp = dest + ".tmp"
        shutil.copyfile(src, tmp)
        os.chown(tmp, 0, 0)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    try:
        rc = subprocess.call(list(update_command),
                             env={"PATH": SAFE_PATH, "LANG": "C.UTF-8"},
                             stdout=subprocess.DEVNULL)
    except OSError as e:
        log("cannot run %s: %s" % (update_command[0], e.strerror))
        return 1
    if rc != 0:
        log("%s failed with exit status %d" % (update_command[0], rc))
        return 1
    return 0


def main():
    return copy_cacerts()


if __name__ == "__main__":
    sys.exit(main())
