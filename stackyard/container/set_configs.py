#!/usr/bin/python3 -I
"""kolla_set_configs: install a container's configuration from config.json.

Standalone (Python standard library only): the image builder copies this file
verbatim to /usr/local/bin/kolla_set_configs.  It runs as root (directly, or
through sudo from kolla_start) and therefore trusts nothing but its own
constants: no environment variable and no argument can change which
configuration file is read.  The only environment input is
KOLLA_CONFIG_STRATEGY (COPY_ALWAYS or COPY_ONCE).

Usage:  kolla_set_configs           apply config.json (per the strategy)
        kolla_set_configs --check   0 = installed as described,
                                    1 = something differs (printed),
                                    2 = internal error / invalid config

The file format is Kolla's; see docs/runtime-contract.md.
"""

import glob
import grp
import json
import logging
import os
import pwd
import re
import shutil
import stat
import sys
import tempfile

# ---------------------------------------------------------------------------
# Image paths (fixed on purpose: see the module docstring).
CONFIG_DIR = "/var/lib/kolla/config_files"
CONFIG_JSON = "config.json"
CONFIG_YAML = "config.yaml"
RUN_COMMAND = "/run_command"
CONFIGURED_MARKER = "/configured"
DEFAULTS_DIR = "/var/lib/kolla/defaults"
DEFAULTS_STATE = "/var/lib/kolla/defaults/.state.json"

STRATEGY_ENV = "KOLLA_CONFIG_STRATEGY"
STRATEGIES = ("COPY_ALWAYS", "COPY_ONCE")

EXIT_OK = 0
EXIT_ERROR = 1
CHECK_DIFFERS = 1
CHECK_ERROR = 2

LOG = logging.getLogger("kolla_set_configs")

_CONFIG_FILE_KEYS = {"source", "dest", "owner", "perm", "optional", "merge",
                     "preserve_properties"}
_PERMISSION_KEYS = {"path", "owner", "perm", "recurse", "exclude"}
_TOP_KEYS = {"command", "config_files", "permissions"}


class Paths:
    """Where things live.  main() only ever uses the defaults (constants)."""

    def __init__(self, config_dir=CONFIG_DIR, run_command=RUN_COMMAND,
                 configured=CONFIGURED_MARKER, defaults_dir=DEFAULTS_DIR,
                 defaults_state=DEFAULTS_STATE):
        self.config_dir = config_dir
        self.run_command = run_command
        self.configured = configured
        self.defaults_dir = defaults_dir
        self.defaults_state = defaults_state


class ConfigError(Exception):
    """config.json (or the environment) is invalid: nothing was changed."""


# ---------------------------------------------------------------------------
# Loading and validation (no side effects)

def load_config(config_dir):
    """Return the parsed config.yaml (when present) or config.json."""
    yaml_path = os.path.join(config_dir, CONFIG_YAML)
    json_path = os.path.join(config_dir, CONFIG_JSON)
    if os.path.exists(yaml_path):
        try:
            import yaml  # noqa: PLC0415 - optional, not stdlib
        except ImportError:
            raise ConfigError(
                "%s exists but no YAML parser (python3-yaml) is installed in "
                "this image; provide %s instead" % (yaml_path, CONFIG_JSON))
        LOG.info("Loading config file at %s", yaml_path)
        try:
            with open(yaml_path, encoding="utf-8") as f:
                data = yaml.safe_load(f)
        except OSError as e:
            raise ConfigError("cannot read %s: %s" % (yaml_path, e.strerror))
        except yaml.YAMLError as e:
            # Never echo the offending text: it may hold secrets.
            mark = getattr(e, "problem_mark", None)
            where = (" at line %d column %d" % (mark.line + 1, mark.column + 1)
                     if mark is not None else "")
            raise ConfigError("%s is not valid YAML%s" % (yaml_path, where))
        return data
    LOG.info("Loading config file at %s", json_path)
    try:
        with open(json_path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError("%s does not exist" % json_path)
    except OSError as e:
        raise ConfigError("cannot read %s: %s" % (json_path, e.strerror))
    except UnicodeDecodeError:
        raise ConfigError("%s is not UTF-8 text" % json_path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        # e.msg/lineno/colno describe the position only, never the content.
        raise ConfigError("%s is not valid JSON: %s at line %d column %d"
                          % (json_path, e.msg, e.lineno, e.colno))


def parse_perm(perm, where):
    """'0600', '600' and '0o600' all mean 0o600."""
    if not isinstance(perm, str):
        raise ConfigError("%s: perm must be an octal string such as \"0640\", "
                          "got %s" % (where, type(perm).__name__))
    text = perm.strip().lower()
    if text.startswith("0o"):
        text = text[2:]
    if not text or len(text) > 5 or any(c not in "01234567" for c in text):
        raise ConfigError("%s: perm %r is not an octal mode" % (where, perm))
    mode = int(text, 8)
    if mode > 0o7777:
        raise ConfigError("%s: perm %r is out of range" % (where, perm))
    return mode


def _lookup_user(name):
    if name.isdigit():
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


def _lookup_group(name):
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def parse_owner(owner, where):
    """'user' or 'user:group' -> (uid, gid).

    Without a group, the group of the same name is used (Kolla), or the user's
    primary group when no such group exists.  Numeric ids are accepted.
    """
    if not isinstance(owner, str) or not owner.strip():
        raise ConfigError("%s: owner must be \"user\" or \"user:group\"" % where)
    user, sep, group = owner.strip().partition(":")
    if not user or (sep and not group):
        raise ConfigError("%s: owner %r must be \"user\" or \"user:group\""
                          % (where, owner))
    uid = _lookup_user(user)
    if uid is None:
        raise ConfigError("%s: user %r does not exist" % (where, user))
    if sep:
        gid = _lookup_group(group)
        if gid is None:
            raise ConfigError("%s: group %r does not exist" % (where, group))
    else:
        gid = _lookup_group(user)
        if gid is None:
            try:
                gid = pwd.getpwuid(uid).pw_gid
            except KeyError:
                raise ConfigError("%s: user %r has no group; use \"user:group\""
                                  % (where, user))
    return uid, gid


def _bool(entry, key, where):
    value = entry.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError("%s: %s must be true or false" % (where, key))
    return value


def _path(entry, key, where):
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError("%s: %s is required (a path)" % (where, key))
    if not value.startswith("/"):
        raise ConfigError("%s: %s %r must be an absolute path" % (where, key, value))
    return value


def dir_mode(mode):
    """Mode given to directories copied under a file perm: every class that
    may read also gets search (x) permission, so "0640" gives dirs 0750."""
    return mode | ((mode & 0o444) >> 2)


class ConfigFile:
    def __init__(self, index, entry):
        where = "config_files[%d]" % index
        if not isinstance(entry, dict):
            raise ConfigError("%s must be an object" % where)
        unknown = set(entry) - _CONFIG_FILE_KEYS
        if unknown:
            LOG.warning("%s: ignoring unknown keys %s", where, sorted(unknown))
        self.where = where
        self.source = _path(entry, "source", where)
        self.dest = _path(entry, "dest", where)
        self.optional = _bool(entry, "optional", where)
        self.merge = _bool(entry, "merge", where)
        self.preserve = _bool(entry, "preserve_properties", where)
        self.uid = self.gid = self.mode = None
        if not self.preserve:
            for key in ("owner", "perm"):
                if key not in entry:
                    raise ConfigError("%s: %s is required unless "
                                      "preserve_properties is true" % (where, key))
        if "owner" in entry:
            self.uid, self.gid = parse_owner(entry["owner"], where)
        if "perm" in entry:
            self.mode = parse_perm(entry["perm"], where)
        # Resolved once, so that validation and copying see the same files.
        self.sources = sorted(glob.glob(self.source))
        if not self.sources and not self.optional:
            raise ConfigError("%s: source %s does not exist and is not optional"
                              % (where, self.source))

    def targets(self):
        """(source, effective dest) pairs.  A dest ending in '/' is a
        directory to copy into; otherwise it is the destination path."""
        out = []
        for src in self.sources:
            if self.dest.endswith("/"):
                out.append((src, os.path.join(self.dest, os.path.basename(src.rstrip("/")))))
            else:
                out.append((src, self.dest))
        return out

    def props_for(self, src_stat, is_dir):
        """(uid, gid, mode) the copy of a source with src_stat must have."""
        if self.preserve:
            return src_stat.st_uid, src_stat.st_gid, stat.S_IMODE(src_stat.st_mode)
        return self.uid, self.gid, dir_mode(self.mode) if is_dir else self.mode


class Permission:
    def __init__(self, index, entry):
        where = "permissions[%d]" % index
        if not isinstance(entry, dict):
            raise ConfigError("%s must be an object" % where)
        unknown = set(entry) - _PERMISSION_KEYS
        if unknown:
            LOG.warning("%s: ignoring unknown keys %s", where, sorted(unknown))
        self.where = where
        self.path = _path(entry, "path", where)
        if "owner" not in entry:
            raise ConfigError("%s: owner is required" % where)
        self.uid, self.gid = parse_owner(entry["owner"], where)
        self.mode = parse_perm(entry["perm"], where) if "perm" in entry else None
        self.recurse = _bool(entry, "recurse", where)
        exclude = entry.get("exclude", [])
        if isinstance(exclude, str):
            exclude = [exclude]
        if not isinstance(exclude, list) or not all(isinstance(x, str) for x in exclude):
            raise ConfigError("%s: exclude must be a list of regular expressions" % where)
        try:
            self.exclude = [re.compile(x) for x in exclude]
        except re.error as e:
            raise ConfigError("%s: bad exclude regex: %s" % (where, e))

    def excluded(self, path):
        return any(rx.search(path) for rx in self.exclude)

    def matches(self):
        """Paths this entry applies to, in order (top first)."""
        out = []
        for top in sorted(glob.glob(self.path)):
            out.append(top)
            if self.recurse and os.path.isdir(top) and not os.path.islink(top):
                for root, dirs, files in os.walk(top):
                    # Excluded directories are pruned: nothing below them changes.
                    keep = []
                    for d in sorted(dirs):
                        full = os.path.join(root, d)
                        if not self.excluded(full):
                            keep.append(d)
                            out.append(full)
                    dirs[:] = keep
                    for name in sorted(files):
                        full = os.path.join(root, name)
                        if not self.excluded(full):
                            out.append(full)
        return out


class Config:
    def __init__(self, data):
        if not isinstance(data, dict):
            raise ConfigError("the configuration must be a JSON object")
        unknown = set(data) - _TOP_KEYS
        if unknown:
            LOG.warning("ignoring unknown top-level keys %s", sorted(unknown))
        command = data.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ConfigError("command is required (a non-empty string)")
        self.command = command
        files = data.get("config_files", [])
        perms = data.get("permissions", [])
        if not isinstance(files, list):
            raise ConfigError("config_files must be a list")
        if not isinstance(perms, list):
            raise ConfigError("permissions must be a list")
        self.config_files = [ConfigFile(i, e) for i, e in enumerate(files)]
        self.permissions = [Permission(i, e) for i, e in enumerate(perms)]

    def managed_dests(self):
        return sorted({dest for cf in self.config_files for _, dest in cf.targets()})


def read_config(config_dir):
    """Load and validate; raises ConfigError and changes nothing."""
    return Config(load_config(config_dir))


def get_strategy(env):
    strategy = env.get(STRATEGY_ENV)
    if strategy not in STRATEGIES:
        raise ConfigError("%s must be one of %s (got %s)"
                          % (STRATEGY_ENV, ", ".join(STRATEGIES),
                             "nothing" if strategy is None else repr(strategy)))
    return strategy


# ---------------------------------------------------------------------------
# Filesystem helpers

def _remove(path):
    if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def _makedirs_for(path):
    parent = os.path.dirname(path)
    if parent and not os.path.isdir(parent):
        os.makedirs(parent, exist_ok=True)


def _copy_file(src, dest, uid, gid, mode):
    """Atomically replace dest with a copy of src with the given properties."""
    _makedirs_for(dest)
    if os.path.isdir(dest) and not os.path.islink(dest):
        shutil.rmtree(dest)
    fd, tmp = tempfile.mkstemp(prefix=".kolla-", dir=os.path.dirname(dest))
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out)
        os.chown(tmp, uid, gid)
        os.chmod(tmp, mode)  # after chown: chown clears setuid bits
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _copy_tree(cf, src, dest):
    """Copy src (file or directory, symlinks followed) to dest, merging into
    an existing directory (the caller removed dest unless cf.merge)."""
    st = os.stat(src)
    if stat.S_ISDIR(st.st_mode):
        uid, gid, mode = cf.props_for(st, True)
        if os.path.lexists(dest) and not (os.path.isdir(dest) and not os.path.islink(dest)):
            _remove(dest)
        if not os.path.isdir(dest):
            _makedirs_for(dest)
            os.mkdir(dest, 0o700)
        os.chown(dest, uid, gid)
        os.chmod(dest, mode)
        for name in sorted(os.listdir(src)):
            _copy_tree(cf, os.path.join(src, name), os.path.join(dest, name))
    else:
        uid, gid, mode = cf.props_for(st, False)
        _copy_file(src, dest, uid, gid, mode)
        if cf.preserve:
            shutil.copystat(src, dest)


def _save_copy(src, dest):
    """Copy src to dest keeping symlinks, modes, owners and times."""
    _makedirs_for(dest)
    if os.path.isdir(src) and not os.path.islink(src):
        shutil.copytree(src, dest, symlinks=True)
        for root, dirs, files in os.walk(src):
            for name in [""] + dirs + files:
                s = os.path.join(root, name) if name else root
                d = os.path.join(dest, os.path.relpath(s, src))
                st = os.lstat(s)
                os.lchown(d, st.st_uid, st.st_gid)
        shutil.copystat(src, dest)
    elif os.path.islink(src):
        os.symlink(os.readlink(src), dest)
        st = os.lstat(src)
        os.lchown(dest, st.st_uid, st.st_gid)
    else:
        shutil.copy2(src, dest)
        st = os.stat(src)
        os.chown(dest, st.st_uid, st.st_gid)
        os.chmod(dest, stat.S_IMODE(st.st_mode))


def _write_atomic(path, text, mode=0o644):
    _makedirs_for(path)
    fd, tmp = tempfile.mkstemp(prefix=".kolla-", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# ---------------------------------------------------------------------------
# Image defaults: save what the image shipped at a dest, restore it when the
# dest stops being managed.

def _default_copy_path(paths, dest):
    return os.path.join(paths.defaults_dir, "files", dest.lstrip("/"))


def load_defaults_state(paths):
    try:
        with open(paths.defaults_state, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ConfigError("cannot read defaults state %s: %s"
                          % (paths.defaults_state, e))
    dests = data.get("dests") if isinstance(data, dict) else None
    if not isinstance(dests, dict):
        raise ConfigError("defaults state %s is malformed" % paths.defaults_state)
    return dests


def _save_defaults_state(paths, dests):
    _write_atomic(paths.defaults_state,
                  json.dumps({"version": 1, "dests": dests}, indent=1, sort_keys=True) + "\n",
                  mode=0o600)


def handle_defaults(config, paths):
    """Restore image defaults of dests no longer managed; save the image's
    file for dests managed for the first time.  Returns the new state."""
    state = load_defaults_state(paths)
    managed = config.managed_dests()
    for dest in sorted(set(state) - set(managed), reverse=True):
        saved = _default_copy_path(paths, dest)
        if state[dest].get("existed"):
            if os.path.lexists(saved):
                LOG.info("Restoring image default of %s", dest)
                if os.path.lexists(dest):
                    _remove(dest)
                _save_copy(saved, dest)
                _remove(saved)
            else:
                LOG.warning("Saved image default of %s is missing; leaving it", dest)
        else:
            if os.path.lexists(dest):
                LOG.info("Removing %s (no longer managed, not in the image)", dest)
                _remove(dest)
        del state[dest]
    for dest in managed:
        if dest in state:
            continue
        existed = os.path.lexists(dest)
        if existed:
            saved = _default_copy_path(paths, dest)
            if os.path.lexists(saved):
                _remove(saved)
            LOG.info("Saving image default of %s", dest)
            _save_copy(dest, saved)
        state[dest] = {"existed": existed}
    _save_defaults_state(paths, state)
    return state


# ---------------------------------------------------------------------------
# Applying

def copy_config(config, paths):
    handle_defaults(config, paths)
    for cf in config.config_files:
        if not cf.sources:
            LOG.info("%s is optional and absent; skipping", cf.source)
            continue
        for src, dest in cf.targets():
            if not cf.merge and os.path.lexists(dest):
                LOG.info("Deleting %s", dest)
                _remove(dest)
            LOG.info("Copying %s to %s", src, dest)
            _copy_tree(cf, src, dest)
    LOG.info("Writing out command to execute")
    _write_atomic(paths.run_command, config.command)


def handle_permissions(config):
    for perm in config.permissions:
        for path in perm.matches():
            if not os.path.lexists(path):
                continue
            LOG.info("Setting permission for %s", path)
            os.lchown(path, perm.uid, perm.gid)
            if perm.mode is not None and not os.path.islink(path):
                os.chmod(path, perm.mode)


def apply(config, strategy, paths):
    """Apply an already validated config under a strategy.  Returns True
    when files were installed, False when COPY_ONCE kept the old ones."""
    if strategy == "COPY_ONCE" and os.path.exists(paths.configured):
        LOG.info("The config strategy COPY_ONCE prevents copying new configs: "
                 "the configuration is immutable after the first start")
        return False
    copy_config(config, paths)
    handle_permissions(config)
    if strategy == "COPY_ONCE":
        _write_atomic(paths.configured, "", mode=0o644)
    return True


# ---------------------------------------------------------------------------
# --check

def _files_equal(a, b):
    try:
        if os.path.getsize(a) != os.path.getsize(b):
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                ca = fa.read(1 << 16)
                cb = fb.read(1 << 16)
                if ca != cb:
                    return False
                if not ca:
                    return True
    except OSError:
        return False


def expected_state(config):
    """Map dest path -> (source, is_dir, uid, gid, mode) after applying the
    config in order, plus the set of directories that must hold nothing
    else (replaced, not merged)."""
    expected = {}
    exact_dirs = set()

    def drop_under(dest):
        prefix = dest.rstrip("/") + "/"
        for key in [k for k in expected if k == dest or k.startswith(prefix)]:
            del expected[key]
        for key in [k for k in exact_dirs if k == dest or k.startswith(prefix)]:
            exact_dirs.discard(key)

    def add(cf, src, dest, replace, exact):
        st = os.stat(src)
        is_dir = stat.S_ISDIR(st.st_mode)
        if replace or not is_dir:
            drop_under(dest)
        uid, gid, mode = cf.props_for(st, is_dir)
        expected[dest] = [src, is_dir, uid, gid, mode]
        if is_dir:
            if exact:
                exact_dirs.add(dest)
            for name in os.listdir(src):
                add(cf, os.path.join(src, name), os.path.join(dest, name), False, exact)

    for cf in config.config_files:
        for src, dest in cf.targets():
            add(cf, src, dest, not cf.merge, not cf.merge)

    # permissions[] are applied after copying: fold them in.
    for perm in config.permissions:
        for path in perm.matches():
            if path in expected:
                entry = expected[path]
                entry[2], entry[3] = perm.uid, perm.gid
                if perm.mode is not None:
                    entry[4] = perm.mode
    return expected, exact_dirs


def _describe_props(uid, gid, mode):
    return "%d:%d %04o" % (uid, gid, mode)


def check(config, paths):
    """Return a list of human readable differences (empty: all installed)."""
    diffs = []
    expected, exact_dirs = expected_state(config)
    for dest in sorted(expected):
        src, is_dir, uid, gid, mode = expected[dest]
        try:
            st = os.lstat(dest)
        except FileNotFoundError:
            diffs.append("%s is missing (source %s)" % (dest, src))
            continue
        if is_dir:
            if not stat.S_ISDIR(st.st_mode):
                diffs.append("%s should be a directory (source %s)" % (dest, src))
                continue
        else:
            if not stat.S_ISREG(st.st_mode):
                diffs.append("%s should be a regular file (source %s)" % (dest, src))
                continue
            if not _files_equal(src, dest):
                diffs.append("%s content differs from %s" % (dest, src))
        have = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
        if have != (uid, gid, mode):
            diffs.append("%s has owner/mode %s, expected %s"
                         % (dest, _describe_props(*have), _describe_props(uid, gid, mode)))
    for d in sorted(exact_dirs):
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            full = os.path.join(d, name)
            if full not in expected:
                diffs.append("%s is not in the source %s" % (full, expected[d][0]))
    # permissions[] targets that no config file covers: the matched paths
    # themselves (not their contents: services create files there).
    for perm in config.permissions:
        for path in sorted(glob.glob(perm.path)):
            if path in expected or not os.path.lexists(path):
                continue
            st = os.lstat(path)
            if (st.st_uid, st.st_gid) != (perm.uid, perm.gid):
                diffs.append("%s has owner %d:%d, expected %d:%d (%s)"
                             % (path, st.st_uid, st.st_gid, perm.uid, perm.gid, perm.where))
            if perm.mode is not None and not stat.S_ISLNK(st.st_mode) \
                    and stat.S_IMODE(st.st_mode) != perm.mode:
                diffs.append("%s has mode %04o, expected %04o (%s)"
                             % (path, stat.S_IMODE(st.st_mode), perm.mode, perm.where))
    try:
        with open(paths.run_command, encoding="utf-8") as f:
            installed = f.read()
        if installed != config.command:
            diffs.append("%s differs from the command in the config" % paths.run_command)
    except FileNotFoundError:
        diffs.append("%s is missing" % paths.run_command)
    return diffs


# ---------------------------------------------------------------------------
# Entry points

def run(argv, env, paths):
    """The whole program; returns the exit status."""
    args = list(argv)
    if args in (["-h"], ["--help"]):
        print(__doc__.strip())
        return EXIT_OK
    check_mode = args == ["--check"]
    if args and not check_mode:
        print("usage: kolla_set_configs [--check]", file=sys.stderr)
        return CHECK_ERROR if "--check" in args else EXIT_ERROR
    if check_mode:
        try:
            config = read_config(paths.config_dir)
            diffs = check(config, paths)
        except ConfigError as e:
            LOG.error("%s", e)
            return CHECK_ERROR
        except Exception as e:  # noqa: BLE001 - report, never a traceback with data
            LOG.error("internal error while checking: %s: %s", type(e).__name__, e)
            return CHECK_ERROR
        for d in diffs:
            print(d)
        if diffs:
            LOG.info("The installed configuration differs (%d difference(s))", len(diffs))
            return CHECK_DIFFERS
        LOG.info("The installed configuration matches %s", paths.config_dir)
        return EXIT_OK
    try:
        strategy = get_strategy(env)
        config = read_config(paths.config_dir)
        if os.geteuid() != 0:
            raise ConfigError("must run as root (kolla_start uses sudo)")
        apply(config, strategy, paths)
    except ConfigError as e:
        LOG.error("%s", e)
        LOG.error("nothing was changed")
        return EXIT_ERROR
    except OSError as e:
        LOG.error("failed to install the configuration: %s (%s)",
                  e.strerror or e, e.filename or "")
        return EXIT_ERROR
    return EXIT_OK


def setup_logging():
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    LOG.propagate = False


def main():
    setup_logging()
    # Only constants: nothing from the environment or argv selects the file.
    return run(sys.argv[1:], os.environ, Paths())


if __name__ == "__main__":
    sys.exit(main())
