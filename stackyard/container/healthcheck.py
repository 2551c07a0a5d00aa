#!/usr/bin/python3
"""Container healthchecks (Python standard library only, no external tools).

Installed as /usr/local/bin/healthcheck_curl with the symlinks
healthcheck_port, healthcheck_listen and healthcheck_socket; the check is
chosen by the name it is called by (or `healthcheck.py KIND ARGS...`).

  healthcheck_curl [--insecure|-k] [--timeout S] URL
      healthy when URL answers with an HTTP status below 500.  4xx counts as
      alive (the service answered; e.g. 401 on an API root); 5xx, a
      connection error or a timeout (default 10 s, env check_timeout) do
      not.  Redirects are not followed (a 3xx is an answer).  TLS
      certificates are verified unless --insecure is given.
  healthcheck_port PROCESS PORT [PORT...]
      a process named PROCESS has an established TCP connection to a remote
      PORT (e.g. nova-compute to RabbitMQ on 5672).
  healthcheck_listen PROCESS PORT [PORT...]
      a process named PROCESS has a listening TCP socket on PORT.
  healthcheck_socket PROCESS SOCKET
      a process named PROCESS has the unix socket SOCKET open: bound to it
      (server or accepted connection) or connected to it (client).

A process "is named" PROCESS when its /proc/PID/comm equals PROCESS (which the
kernel truncates to 15 characters), or the basename of the first word of
argv[0] is PROCESS (a trailing ':' of a process title is ignored), or argv[0]
is an interpreter (python, sh, perl, ...) and the basename of argv[1] is
PROCESS.

Exit status 0 = healthy (one line on stdout), 1 = unhealthy or usage error
(one line on stderr).  Docker reserves exit status 2.
"""

import os
import socket
import ssl
import struct
import sys
import time
import urllib.error
import urllib.request

PROC = "/proc"
DEFAULT_TIMEOUT = 10.0
USER_AGENT = "stackyard-healthcheck"

TCP_ESTABLISHED = 0x01
TCP_LISTEN = 0x0A

INTERPRETERS = ("python", "sh", "bash", "dash", "perl", "ruby", "node", "php")


class Unhealthy(Exception):
    pass


# ---------------------------------------------------------------------------
# /proc readers

def _read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def process_names(pid, proc=PROC):
    """The names a process answers to (see the module docstring)."""
    names = set()
    try:
        names.add(_read(os.path.join(proc, str(pid), "comm")).rstrip("\n"))
    except OSError:
        pass
    try:
        raw = _read(os.path.join(proc, str(pid), "cmdline"), "rb")
    except OSError:
        raw = b""
    args = [a.decode("utf-8", "replace") for a in raw.split(b"\0")]
    if args and args[0]:
        first = args[0].split()[0] if args[0].split() else ""
        base = os.path.basename(first.rstrip(":"))
        names.add(base)
        if any(base.startswith(i) for i in INTERPRETERS):
            for arg in args[1:]:
                if not arg:
                    continue
                if arg.startswith("-"):
                    # python -m module, python -u script ...
                    continue
                names.add(os.path.basename(arg))
                break
    names.discard("")
    return names


def name_matches(process, names):
    if process in names:
        return True
    # The kernel truncates comm to 15 characters.
    return len(process) > 15 and process[:15] in names


def find_pids(process, proc=PROC):
    pids = []
    for entry in os.listdir(proc):
        if entry.isdigit() and name_matches(process, process_names(entry, proc)):
            pids.append(int(entry))
    return sorted(pids)


def socket_inodes(pid, proc=PROC):
    """Inodes of the sockets a process has open."""
    inodes = set()
    fd_dir = os.path.join(proc, str(pid), "fd")
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def tcp_sockets(proc=PROC):
    """Rows (local_port, remote_port, state, inode) of /proc/net/tcp{,6}."""
    rows = []
    for name in ("tcp", "tcp6"):
        try:
            lines = _read(os.path.join(proc, "net", name)).splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) < 10:
                continue
            local_port = int(f[1].rsplit(":", 1)[1], 16)
            remote_port = int(f[2].rsplit(":", 1)[1], 16)
            rows.append((local_port, remote_port, int(f[3], 16), int(f[9])))
    return rows


def unix_sockets(proc=PROC):
    """Map inode -> path (bound name) from /proc/net/unix."""
    out = {}
    try:
        lines = _read(os.path.join(proc, "net", "unix")).splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        f = line.split(None, 7)
        if len(f) >= 8:
            out[int(f[6])] = f[7]
    return out


def unix_peers():
    """Map inode -> peer inode for unix sockets (netlink sock_diag).

    /proc/net/unix does not name the socket a client is connected to; the
    kernel's sock_diag interface does.  Returns {} where it is unavailable.
    """
    NETLINK_SOCK_DIAG = 4
    SOCK_DIAG_BY_FAMILY = 20
    NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
    NLMSG_ERROR, NLMSG_DONE = 2, 3
    UDIAG_SHOW_PEER = 0x4
    UNIX_DIAG_PEER = 2
    peers = {}
    try:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    except OSError:
        return peers
    with s:
        req = struct.pack("=BBHIIIII", socket.AF_UNIX, 0, 0, 0xFFFFFFFF, 0,
                          UDIAG_SHOW_PEER, 0xFFFFFFFF, 0xFFFFFFFF)
        hdr = struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY,
                          NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
        try:
            s.sendto(hdr + req, (0, 0))
        except OSError:
            return peers
        while True:
            try:
                data = s.recv(65536)
            except OSError:
                return peers
            if not data:
                return peers
            off = 0
            while off + 16 <= len(data):
                length, mtype = struct.unpack_from("=IH", data, off)
                if length < 16:
                    return peers
                if mtype in (NLMSG_DONE, NLMSG_ERROR):
                    return peers
                body = off + 16
                ino = struct.unpack_from("=I", data, body + 4)[0]
                attr = body + 16
                end = off + length
                while attr + 4 <= end:
                    alen, atype = struct.unpack_from("=HH", data, attr)
                    if alen < 4:
                        break
                    if atype == UNIX_DIAG_PEER and alen >= 8:
                        peers[ino] = struct.unpack_from("=I", data, attr + 4)[0]
                    attr += (alen + 3) & ~3
                off += (length + 3) & ~3


# ---------------------------------------------------------------------------
# Checks (raise Unhealthy, return a one-line description when healthy)

def _pids(process, proc):
    pids = find_pids(process, proc)
    if not pids:
        raise Unhealthy("no process named %s is running" % process)
    return pids


def _ports(ports):
    try:
        out = {int(p) for p in ports}
    except ValueError:
        raise Unhealthy("ports must be numbers: %s" % " ".join(ports))
    if not out:
        raise Unhealthy("no port given")
    return out


def check_tcp(pids, ports, state, proc=PROC):
    """True when one of pids holds a TCP socket in `state` on one of ports
    (remote port for ESTABLISHED, local port for LISTEN)."""
    inodes = set()
    for pid in pids:
        inodes |= socket_inodes(pid, proc)
    for local_port, remote_port, st, inode in tcp_sockets(proc):
        if st != state or inode not in inodes:
            continue
        port = remote_port if state == TCP_ESTABLISHED else local_port
        if port in ports:
            return True
    return False


def check_unix(pids, path, proc=PROC):
    inodes = set()
    for pid in pids:
        inodes |= socket_inodes(pid, proc)
    names = unix_sockets(proc)
    if any(names.get(i) == path for i in inodes):
        return True
    peers = unix_peers()
    return any(names.get(peers.get(i)) == path for i in inodes)


def healthcheck_port(process, *ports, proc=PROC):
    wanted = _ports(ports)
    pids = _pids(process, proc)
    if not check_tcp(pids, wanted, TCP_ESTABLISHED, proc):
        raise Unhealthy("%s (pids %s) has no established connection to port %s"
                        % (process, ",".join(map(str, pids)),
                           "/".join(map(str, sorted(wanted)))))
    return "%s is connected to port %s" % (process, "/".join(map(str, sorted(wanted))))


def healthcheck_listen(process, *ports, proc=PROC):
    wanted = _ports(ports)
    pids = _pids(process, proc)
    if not check_tcp(pids, wanted, TCP_LISTEN, proc):
        raise Unhealthy("%s (pids %s) is not listening on port %s"
                        % (process, ",".join(map(str, pids)),
                           "/".join(map(str, sorted(wanted)))))
    return "%s is listening on port %s" % (process, "/".join(map(str, sorted(wanted))))


def healthcheck_socket(process, path, proc=PROC):
    pids = _pids(process, proc)
    if not check_unix(pids, path, proc):
        raise Unhealthy("%s (pids %s) does not have socket %s open"
                        % (process, ",".join(map(str, pids)), path))
    return "%s has socket %s open" % (process, path)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def healthcheck_curl(url, timeout=DEFAULT_TIMEOUT, insecure=False):
    if not url.startswith(("http://", "https://")):
        raise Unhealthy("not an http(s) URL: %s" % url)
    handlers = [_NoRedirect()]
    if url.startswith("https://"):
        ctx = ssl.create_default_context()
        if insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        handlers.append(urllib.request.HTTPSHandler(context=ctx))
    opener = urllib.request.build_opener(*handlers)
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    started = time.monotonic()
    try:
        with opener.open(req, timeout=timeout) as resp:
            status = resp.status
    except urllib.error.HTTPError as e:
        status = e.code
        e.close()
    except urllib.error.URLError as e:
        raise Unhealthy("%s: %s" % (url, e.reason))
    except (OSError, ValueError) as e:
        raise Unhealthy("%s: %s" % (url, e))
    elapsed = time.monotonic() - started
    if status >= 500:
        raise Unhealthy("%s answered HTTP %d" % (url, status))
    return "%d %s %.3f seconds" % (status, url, elapsed)


# ---------------------------------------------------------------------------
# Command line

KINDS = ("curl", "port", "listen", "socket")


def _curl_args(args, env):
    insecure = False
    try:
        timeout = float(env.get("check_timeout", DEFAULT_TIMEOUT))
    except ValueError:
        timeout = DEFAULT_TIMEOUT
    urls = []
    it = iter(args)
    for a in it:
        if a in ("-k", "--insecure"):
            insecure = True
        elif a in ("--timeout", "-m", "--max-time"):
            try:
                timeout = float(next(it))
            except (StopIteration, ValueError):
                raise Unhealthy("usage: healthcheck_curl [--insecure] [--timeout S] URL")
        else:
            urls.append(a)
    if len(urls) != 1:
        raise Unhealthy("usage: healthcheck_curl [--insecure] [--timeout S] URL")
    return healthcheck_curl(urls[0], timeout=timeout, insecure=insecure)


def run(kind, args, env):
    """Returns (exit status, one line)."""
    try:
        if kind == "curl":
            line = _curl_args(args, env)
        elif kind in ("port", "listen"):
            if len(args) < 2:
                raise Unhealthy("usage: healthcheck_%s PROCESS PORT [PORT...]" % kind)
            fn = healthcheck_port if kind == "port" else healthcheck_listen
            line = fn(args[0], *args[1:])
        elif kind == "socket":
            if len(args) != 2:
                raise Unhealthy("usage: healthcheck_socket PROCESS SOCKET")
            line = healthcheck_socket(args[0], args[1])
        else:
            raise Unhealthy("unknown healthcheck %r (one of %s)" % (kind, ", ".join(KINDS)))
    except Unhealthy as e:
        return 1, "unhealthy: %s" % e
    except Exception as e:  # noqa: BLE001 - one line, never a traceback
        return 1, "unhealthy: internal error: %s: %s" % (type(e).__name__, e)
    return 0, "healthy: %s" % line


def kind_from_argv(argv):
    """(kind, args): by the name called (healthcheck_KIND) or argv[1]."""
    base = os.path.basename(argv[0])
    if base.startswith("healthcheck_"):
        return base[len("healthcheck_"):], argv[1:]
    if len(argv) < 2:
        return "", []
    return argv[1], argv[2:]


def main(argv=None):
    argv = sys.argv if argv is None else argv
    kind, args = kind_from_argv(argv)
    status, line = run(kind, args, os.environ)
    print(line, file=sys.stdout if status == 0 else sys.stderr, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
