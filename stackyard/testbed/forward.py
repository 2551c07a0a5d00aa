"""TCP forwarder from the test bed namespace to a port in the root namespace.

Nodes live in a namespace with no route out, but must pull images from the
registry that listens on 127.0.0.1 in the root namespace (where ``docker push``
from this machine's engine reaches it as an insecure localhost registry).
This process opens its listening socket inside the test bed namespace
(``setns`` on /run/netns/<name>), switches back, and opens every upstream
connection in its original namespace: a socket stays in the namespace it was
created in. Each connection gets two threads copying 256 KiB chunks, so
parallel layer downloads are not serialised.

Run as ``python -m stackyard.testbed.forward --netns NS --listen ADDR:PORT
--target ADDR:PORT --pid-file FILE``; the pid file is written once listening.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import sys
import threading
from pathlib import Path

CLONE_NEWNET = 0x40000000
CHUNK = 256 << 10


def setns(path: str) -> None:
    """Move the calling thread into the network namespace at ``path``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def listen_in(netns: str, host: str, port: int) -> socket.socket:
    """A listening socket inside ``netns``; the thread returns to its own namespace."""
    own = f"/proc/{os.getpid()}/task/{threading.get_native_id()}/ns/net"
    own_fd = os.open(own, os.O_RDONLY)
    try:
        setns(f"/run/netns/{netns}")
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(512)
        finally:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.setns(own_fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the original namespace failed")
    finally:
        os.close(own_fd)
    return sock


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    try:
        while True:
            n = src.recv_into(buf)
            if not n:
                break
            dst.sendall(view[:n])
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _serve_one(client: socket.socket, target: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    for s in (client, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
    back.start()
    _pipe(client, upstream)
    back.join()
    client.close()
    upstream.close()


def serve(sock: socket.socket, target: tuple[str, int]) -> None:
    while True:
        client, _ = sock.accept()
        threading.Thread(target=_serve_one, args=(client, target), daemon=True).start()


def _hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--netns", required=True)
    parser.add_argument("--listen", required=True, type=_hostport)
    parser.add_argument("--target", required=True, type=_hostport)
    parser.add_argument("--pid-file", required=True)
    args = parser.parse_args(argv)
    try:
        sock = listen_in(args.netns, *args.listen)
    except OSError as exc:
        print(f"forward: cannot listen on {args.listen} in {args.netns}: {exc}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    Path(args.pid_file).write_text(f"{os.getpid()}\n")
    serve(sock, args.target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
