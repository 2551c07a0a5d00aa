"""Multi-node test bed: Debian "node" containers on a private bridge.

Each node is a container that looks like a bare Debian host (sshd, python3,
its own dockerd once bootstrapped) wired to a bridge inside a network
namespace that stackyard creates, so multi-host deploys can be tested on one
machine without touching any real network. See docs/multinode.md.
"""
